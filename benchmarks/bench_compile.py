"""Compile-time benchmark: build, compile, validate and JSON round trip of large flows.

For each shape (see :mod:`shapes`: a chain, and a fan-out/fan-in into a collect
port) and size, a fresh interpreter measures, as medians of repeated samples:

* ``build``: ``Flow(...)`` plus every ``add_*`` / ``connect`` / ``output`` call;
* ``compile``: ``flow.compile()`` on a freshly built flow: resolving connections,
  binding flow inputs and outputs, making the IR ``Graph`` and running every
  validation pass. ``µs/node`` divides it by the node count (target: <= 10);
  ``cpu µs/node`` is the same from the process's CPU time, which other
  processes on a busy machine disturb much less than wall time;
* ``validate``: ``dagwright.compiler.passes.validate`` alone on an already-built
  ``Graph`` (a fresh ``Graph`` of the same nodes and edges, so the time includes
  the one linear sweep that builds the graph's lookup index);
* ``to_json`` / ``from_json``: ``graph.to_json()`` (the default layout, a line per node and edge) and
  ``Graph.from_json(text)``; the loaded graph is checked equal to the original
  once, untimed;
* ``peak MB``: the peak resident set size of that interpreter after importing
  dagwright, building the flow and compiling it once, read before anything else
  runs (target: <= 300 MB at 100 000 nodes); ``+MB`` is the growth over the
  peak right after the imports;
* ``ref ms``: a fixed pure-Python workload timed in that interpreter after the
  measurements (see ``_util.reference_ms``): how fast the machine was for that
  row, since a virtual machine's speed drifts over minutes.

One interpreter per shape and size keeps the heap of one measurement from
slowing the garbage collector in the next. Run alone:
``python benchmarks/bench_compile.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from _util import (
    HERE,
    PEAK_RSS_SOURCE,
    Goal,
    Samples,
    Table,
    fmt_ms,
    goals_table,
    machine_note,
    peak_rss_mb,
    python_json,
    reference_ms,
    time_each,
    write_json,
)

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
SHAPE_NAMES = ("chain", "fan")
TARGET_US_PER_NODE = 10.0
TARGET_PEAK_MB = 300.0
# Goals at the largest size measured (100 000 nodes in a full run), per node, CPU time.
GOAL_COMPILE_US = 3.0  # compile with every pass
GOAL_BUILD_US = 2.0  # Flow(...) plus every add_* / connect / output call
PHASES = ("build", "compile", "validate", "to_json", "from_json")


def repeats_for(n: int, scale: float = 1.0) -> int:
    """More samples for small graphs (cheap and noisy), fewer for large ones."""
    base = 21 if n <= 1_000 else 9 if n <= 10_000 else 5
    return max(3, round(base * scale))


def measure(shape: str, n: int, repeat: int) -> dict[str, Any]:
    """Every figure for one shape and size, in this process (meant to be a fresh one)."""
    from shapes import SHAPES

    from dagwright import Graph
    from dagwright.compiler.passes import validate

    baseline_mb = peak_rss_mb()
    build = SHAPES[shape]
    flow = build(n)
    graph = flow.compile()
    peak_mb = peak_rss_mb()

    if flow.validate():
        raise AssertionError(f"{shape}({n}) is expected to compile without diagnostics")
    text = graph.to_json()
    if Graph.from_json(text) != graph:
        raise AssertionError(f"{shape}({n}) does not survive a JSON round trip")

    def fresh_graph() -> Graph:
        # A new Graph object: its lookup index is built again inside the timed call.
        return Graph(graph.name, graph.nodes, graph.edges, graph.metadata)

    samples: dict[str, Samples] = {
        "build": time_each(lambda: n, build, repeat),
        "compile": time_each(lambda: build(n), lambda f: f.compile(), repeat),
        "validate": time_each(fresh_graph, validate, repeat),
        "to_json": time_each(lambda: graph, lambda g: g.to_json(), repeat),
        "from_json": time_each(lambda: text, Graph.from_json, repeat),
    }
    out: dict[str, Any] = {
        "shape": shape,
        "nodes": n,
        "graph_nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "runs": repeat,
        "peak_rss_mb": peak_mb,
        "peak_rss_growth_mb": peak_mb - baseline_mb,
        "peak_rss_source": PEAK_RSS_SOURCE,
        "json_bytes": len(text.encode("utf-8")),
    }
    for name, s in samples.items():
        out[name] = s.to_dict()
    out["compile_us_per_node"] = samples["compile"].median / n * 1e6
    out["compile_cpu_us_per_node"] = samples["compile"].cpu_median / n * 1e6
    out["reference_ms"] = reference_ms()
    return out


def measure_in_subprocess(shape: str, n: int, repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = python_json(
        sys.executable, [str(HERE / "bench_compile.py"), "--child", shape, str(n), str(repeat)]
    )
    return result


def table(rows: Sequence[dict[str, Any]]) -> Table:
    t = Table(
        f"Compile: medians, ms unless stated (targets: compile <= {TARGET_US_PER_NODE:g} µs/node, "
        f"peak <= {TARGET_PEAK_MB:g} MB at 100 000 nodes)",
        [
            "shape",
            "nodes",
            "edges",
            "runs",
            "build",
            "compile",
            "µs/node",
            "cpu µs/node",
            "validate",
            "to_json",
            "from_json",
            "peak MB",
            "+MB",
            "ref ms",
        ],
    )
    for r in rows:
        t.add(
            r["shape"],
            r["nodes"],
            r["edges"],
            r["runs"],
            fmt_ms(r["build"]["median_s"]),
            fmt_ms(r["compile"]["median_s"]),
            f"{r['compile_us_per_node']:.2f}",
            f"{r['compile_cpu_us_per_node']:.2f}",
            fmt_ms(r["validate"]["median_s"]),
            fmt_ms(r["to_json"]["median_s"]),
            fmt_ms(r["from_json"]["median_s"]),
            f"{r['peak_rss_mb']:.0f}",
            f"{r['peak_rss_growth_mb']:.0f}",
            f"{r['reference_ms']:.1f}",
        )
    return t


def run(sizes: Sequence[int], shapes: Sequence[str], scale: float = 1.0) -> list[dict[str, Any]]:
    """Measure every shape and size, each in a fresh interpreter, and print the table."""
    print(f"compile benchmark: Python {sys.version.split()[0]}; at start: {machine_note()}", flush=True)
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        for n in sizes:
            rows.append(measure_in_subprocess(shape, n, repeats_for(n, scale)))
            print(f"  measured {shape} {n}", file=sys.stderr, flush=True)
    print(file=sys.stderr, flush=True)
    table(rows).print()
    print(
        f"peak MB: {PEAK_RSS_SOURCE} of a fresh interpreter after import + build + compile.\n"
        f"at end: {machine_note()}\n",
        flush=True,
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="sizes 1 000 and 10 000 only, fewer runs")
    parser.add_argument("--sizes", type=int, nargs="+", help="node counts (default: 1000 10000 100000)")
    parser.add_argument("--shapes", nargs="+", choices=SHAPE_NAMES, default=list(SHAPE_NAMES))
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--child", nargs=3, metavar=("SHAPE", "N", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        shape, n, repeat = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(measure(shape, n, repeat)))
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rows = run(sizes, args.shapes, scale=0.5 if args.quick else 1.0)
    goals = [g.to_dict() for g in compile_goals(rows)]
    goals_table(f"compile goals, at {max(r['nodes'] for r in rows):,} nodes (CPU time)", goals).print()
    if args.json:
        write_json(args.json, {"benchmark": "compile", "rows": rows, "goals": goals})
    return 0


def compile_goals(rows: Sequence[dict[str, Any]]) -> list[Goal]:
    """Build and compile per node, in CPU time (what other processes disturb least), at the largest size."""
    largest = max(r["nodes"] for r in rows)
    goals: list[Goal] = []
    for r in rows:
        if r["nodes"] != largest:
            continue
        n = r["nodes"]
        beside = f"wall {r['build']['median_s'] / n * 1e6:.2f} / {r['compile']['median_s'] / n * 1e6:.2f} µs"
        goals.append(
            Goal(f"{r['shape']}: build, µs/node", r["build"]["cpu_median_s"] / n * 1e6, GOAL_BUILD_US, "µs", beside)
        )
        goals.append(
            Goal(f"{r['shape']}: compile, µs/node", r["compile_cpu_us_per_node"], GOAL_COMPILE_US, "µs", beside)
        )
    return goals


if __name__ == "__main__":
    sys.exit(main())
