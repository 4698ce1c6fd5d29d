"""Kailash lowering benchmark: what lowering a checked graph adds to building the same workflow by hand.

For each shape (see ``shapes.py``: a chain of ``n`` function nodes, and a fan of ``n - 2``
branches joined by a collect port) at ``n`` = 1 000 nodes, one sample of each of these, in turn:

* ``lower``: dagwright's part, from the checked IR to the calls to make: ``_lower(graph)``
  (node configs, input names, connections);
* ``calls``: those calls on a ``dagwright.WorkflowBuilder``: ``add_node`` per node, ``bind``
  per function, ``add_connection`` per connection (``Lowering.builder()``);
* ``build``: Kailash's own ``WorkflowBuilder.build()`` of that builder;
* ``direct``: the same workflow written directly against the builder (the same ``add_node``,
  ``bind`` and ``add_connection`` calls with ready-made arguments) plus its ``build()``: what
  a Kailash user pays without dagwright.

``ours`` is ``lower + calls + build``; ``adds`` is ``ours / direct - 1``, the target being
at most 10 %, taken as the median over pairs of samples run back to back. Other figures
are medians of the interleaved samples (the machines are noisy; a median ignores the odd
slow sample). Run alone: ``python benchmarks/bench_kailash.py [--quick]
[--sizes 1000 2000] [--shapes chain fan] [--json FILE]``.

``--runs 200`` also times whole runs of both shapes at that size, side by side: the built-in
scheduler (``flow.run()``), and the whole Kailash path (``flow.run_kailash()`` on ``LocalRuntime``
and on ``AsyncLocalRuntime``: a runtime made, the cached lowered workflow executed, the results
read back into a ``RunResult``), interleaved, with each Kailash median as a ratio of the built-in one.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import Samples, Table, fmt_ms

SIZES = (1000,)
REPEAT = 11
QUICK_REPEAT = 5


@dataclass
class Row:
    shape: str
    nodes: int
    connections: int
    lower: Samples = field(default_factory=Samples)
    calls: Samples = field(default_factory=Samples)
    build: Samples = field(default_factory=Samples)
    direct: Samples = field(default_factory=Samples)
    direct_build: Samples = field(default_factory=Samples)
    ours: Samples = field(default_factory=Samples)

    @property
    def adds(self) -> float:
        """The median over sample pairs of ``ours / direct - 1`` (a pair ran back to back, under the same load)."""
        return statistics.median(o / d for o, d in zip(self.ours.values, self.direct.values, strict=True)) - 1.0

    @property
    def own_share(self) -> float:
        """dagwright's own step (``lower``) as a share of the direct path, paired the same way."""
        return statistics.median(lo / d for lo, d in zip(self.lower.values, self.direct.values, strict=True))

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": self.shape, "nodes": self.nodes, "connections": self.connections}
        for name in ("lower", "calls", "build", "direct", "direct_build", "ours"):
            samples: Samples = getattr(self, name)
            out[name] = {"median_s": samples.median, "samples_s": samples.values}
        out["adds"] = self.adds
        out["own_share"] = self.own_share
        return out


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure(shape: str, n: int, repeat: int) -> Row:
    """Interleaved samples of the lowering path and the direct path for one shape and size."""
    from shapes import SHAPES

    import dagwright
    from dagwright.backends.kailash.lowering import _lower

    flow = SHAPES[shape](n)
    graph = flow.compile()
    bindings, policies = flow._bindings, flow._policies
    reference = _lower(graph, bindings, policies)
    row = Row(shape, sum(1 for s in reference.nodes), len(reference.connections))
    # The direct path's arguments, made before timing: a user's script has them as literals.
    node_calls = [(s.type, s.id, s.config, s.binding) for s in reference.nodes]
    connection_calls = [(c.source, c.source_output, c.target, c.target_input) for c in reference.connections]

    def direct_calls(configs: list[dict[str, Any]]) -> Any:
        builder = dagwright.WorkflowBuilder()
        for (kind, node_id, _, binding), config in zip(node_calls, configs, strict=True):
            builder.add_node(kind, node_id, config)
            if binding is not None:
                builder.bind(node_id, binding)
        for call in connection_calls:
            builder.add_connection(*call)
        return builder

    def ours_sample() -> tuple[float, float, float]:
        t_lower, lowering = _timed(lambda: _lower(graph, bindings, policies))
        t_calls, builder = _timed(lowering.builder)
        t_build, _ = _timed(builder.build)
        return t_lower, t_calls, t_build

    def direct_sample() -> tuple[float, float]:
        configs = [copy.deepcopy(c[2]) for c in node_calls]
        t_calls, builder = _timed(lambda: direct_calls(configs))
        t_build, _ = _timed(builder.build)
        return t_calls, t_build

    for i in range(repeat):
        # Alternate which path goes first, so neither always runs on a freshly collected heap.
        if i % 2 == 0:
            t_lower, t_calls, t_build = ours_sample()
            t_direct_calls, t_direct_build = direct_sample()
        else:
            t_direct_calls, t_direct_build = direct_sample()
            t_lower, t_calls, t_build = ours_sample()
        row.lower.values.append(t_lower)
        row.calls.values.append(t_calls)
        row.build.values.append(t_build)
        row.ours.values.append(t_lower + t_calls + t_build)
        row.direct_build.values.append(t_direct_build)
        row.direct.values.append(t_direct_calls + t_direct_build)
    return row


def run(sizes: Sequence[int], shapes: Sequence[str], repeat: int) -> list[Row]:
    """Measure and print the table; returns the rows."""
    logging.getLogger("kailash").setLevel(logging.ERROR)  # its INFO/DEBUG chatter is not what is measured
    rows = []
    for shape in shapes:
        for n in sizes:
            rows.append(measure(shape, n, repeat))
            print(f"  measured {shape} {n}", file=sys.stderr, flush=True)
    table = Table(
        "Lowering to Kailash (medians, ms; ours = lower + calls + build; adds = ours / direct - 1, target <= 10 %)",
        ["shape", "nodes", "conns", "runs", "lower", "calls", "build", "ours", "direct", "its build", "adds"],
    )
    for r in rows:
        table.add(
            r.shape,
            f"{r.nodes}",
            f"{r.connections}",
            f"{len(r.ours.values)}",
            fmt_ms(r.lower.median),
            fmt_ms(r.calls.median),
            fmt_ms(r.build.median),
            fmt_ms(r.ours.median),
            fmt_ms(r.direct.median),
            fmt_ms(r.direct_build.median),
            f"{r.adds * 100:+.1f} %",
        )
    table.print()
    for r in rows:
        print(
            f"{r.shape} {r.nodes}: dagwright's own step (lower) is {r.own_share * 100:.1f} % of the direct path; "
            f"the calls and build() are the ones a direct Kailash user makes"
        )
    return rows


@dataclass
class RunRow:
    shape: str
    nodes: int
    samples: dict[str, Samples] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "nodes": self.nodes,
            **{name: {"median_s": s.median, "samples_s": s.values} for name, s in self.samples.items()},
        }


def measure_runs(shape: str, n: int, repeat: int) -> RunRow:
    """Interleaved whole runs: the built-in scheduler, then the Kailash path on each runtime."""
    from shapes import SHAPES

    flow = SHAPES[shape](n)
    subjects: dict[str, Callable[[], Any]] = {
        "builtin": flow.run,
        "kailash local": lambda: flow.run_kailash(runtime="local"),
        "kailash async": lambda: flow.run_kailash(runtime="async"),
    }
    expected = flow.run().outputs
    for name, call in subjects.items():  # warm: compiled, lowered, built once, as in repeated use
        result = call()
        if not result.success or result.outputs != expected:
            raise SystemExit(f"{shape} {n}: {name} gave {result.outputs} ({result.error}), expected {expected}")
    row = RunRow(shape, n, {name: Samples() for name in subjects})
    order = list(subjects)
    for i in range(repeat):
        for name in order[i % len(order) :] + order[: i % len(order)]:
            elapsed, _ = _timed(subjects[name])
            row.samples[name].values.append(elapsed)
    return row


def run_whole(size: int, shapes: Sequence[str], repeat: int) -> list[RunRow]:
    """Measure and print whole runs at ``size`` nodes; returns the rows."""
    logging.getLogger("kailash").setLevel(logging.ERROR)
    rows = [measure_runs(shape, size, repeat) for shape in shapes]
    table = Table(
        "Whole runs (medians, ms; x = the Kailash path's median / the built-in scheduler's)",
        ["shape", "nodes", "runs", "builtin", "kailash local", "x", "kailash async", "x"],
    )
    for r in rows:
        base = r.samples["builtin"].median
        local, remote = r.samples["kailash local"].median, r.samples["kailash async"].median
        table.add(
            r.shape,
            f"{r.nodes}",
            f"{len(r.samples['builtin'].values)}",
            fmt_ms(base),
            fmt_ms(local),
            f"{local / base:.1f}x",
            fmt_ms(remote),
            f"{remote / base:.1f}x",
        )
    table.print()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPEAT} samples instead of {REPEAT}")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="node counts (default: 1000)")
    parser.add_argument("--shapes", nargs="+", choices=("chain", "fan"), default=["chain", "fan"])
    parser.add_argument("--json", metavar="FILE", help="also write the samples as JSON")
    parser.add_argument("--runs", type=int, metavar="N", help="also time whole runs of N-node shapes (e.g. 200)")
    args = parser.parse_args(argv)
    repeat = QUICK_REPEAT if args.quick else REPEAT
    rows = run(args.sizes, args.shapes, repeat)
    runs = run_whole(args.runs, args.shapes, repeat) if args.runs else []
    if args.json:
        data = {"lowering": [r.as_json() for r in rows], "runs": [r.as_json() for r in runs]}
        Path(args.json).write_text(json.dumps(data if runs else data["lowering"], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
