"""Import-time benchmark: ``import dagwright`` in a fresh interpreter, next to its peers.

Also ``import dagwright.patterns``, which a flow file using a coordination pattern pays
for: it loads no agent runtime (the face hands patterns an agent factory).

Each figure is the median of several fresh interpreters, with a warm bytecode
cache (``PYTHONPYCACHEPREFIX`` points at a temporary directory filled by one
untimed run first, so nothing is written into the source tree and no run pays
for compiling sources):

* ``import wall ms``: ``time.perf_counter()`` around the ``import`` statement,
  interpreter start-up excluded;
* ``-X importtime ms``: the cumulative time ``python -X importtime`` reports for
  the module (its own share of the imports; modules the interpreter loaded at
  start-up are not counted, and the tracing itself adds a little).

Peers are measured when they are installed, each by the module its users import
(``langgraph.graph`` for ``StateGraph``: ``langgraph`` itself is an empty namespace
package that loads nothing); kailash is a dependency of dagwright, dspy is measured
through ``--dspy-python``. The figures quoted in the project's anchors are printed
beside them, marked as quoted, never as measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from _util import Table, machine_note, write_json

# module -> seconds quoted in the anchors (measured elsewhere, on other machines)
ANCHORS_S = {"langgraph.graph": 1.6, "kailash": 0.8, "dspy": 1.5}
ENV_DSPY_PYTHON = "DAGWRIGHT_BENCH_DSPY_PYTHON"

_SNIPPET = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


@dataclass
class ImportTime:
    module: str
    python: str
    wall_s: list[float]
    importtime_s: list[float]
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"module": self.module, "python": self.python}
        if self.error:
            out["error"] = self.error
        else:
            out["wall_median_s"] = statistics.median(self.wall_s)
            out["wall_samples_s"] = self.wall_s
            out["importtime_median_s"] = statistics.median(self.importtime_s)
            out["importtime_samples_s"] = self.importtime_s
        return out


def _cumulative(stderr: str, module: str) -> float | None:
    """The cumulative seconds ``-X importtime`` reports for ``module`` (lines ``self | cumulative | name``)."""
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) == 3 and parts[2].strip() == module:
            return int(parts[1]) / 1e6
    return None


def measure(python: str, module: str, runs: int, cache_dir: str) -> ImportTime:
    """Import ``module`` in ``runs`` fresh interpreters (after one untimed run that fills the cache)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    snippet = _SNIPPET.format(module=module)
    result = ImportTime(module, python, [], [])
    first = subprocess.run([python, "-c", snippet], capture_output=True, text=True, env=env, check=False)
    if first.returncode != 0:
        last = first.stderr.strip().splitlines()[-1] if first.stderr.strip() else f"exit {first.returncode}"
        result.error = last
        return result
    for _ in range(runs):
        plain = subprocess.run([python, "-c", snippet], capture_output=True, text=True, env=env, check=True)
        result.wall_s.append(float(plain.stdout.strip().splitlines()[-1]))
        traced = subprocess.run(
            [python, "-X", "importtime", "-c", snippet], capture_output=True, text=True, env=env, check=True
        )
        cumulative = _cumulative(traced.stderr, module)
        if cumulative is not None:
            result.importtime_s.append(cumulative)
    if not result.importtime_s:
        result.error = "-X importtime printed no line for the module"
    return result


def run(runs: int, dspy_python: str | None) -> list[ImportTime]:
    print(f"import benchmark: Python {sys.version.split()[0]}; {machine_note()}", flush=True)
    plan = [
        ("dagwright", sys.executable),
        ("dagwright.patterns", sys.executable),
        ("kailash", sys.executable),
        # langgraph alone is a namespace package that loads nothing; StateGraph comes from langgraph.graph.
        ("langgraph.graph", sys.executable),
    ]
    if dspy_python:
        plan.append(("dspy", dspy_python))
    results: list[ImportTime] = []
    with tempfile.TemporaryDirectory(prefix="dagwright-bench-pycache-") as cache_dir:
        for module, python in plan:
            results.append(measure(python, module, runs, cache_dir))
            print(f"  measured import {module}", file=sys.stderr, flush=True)
    table = Table(
        f"Import time: medians of {runs} fresh interpreters, warm bytecode cache",
        ["module", "import wall ms", "-X importtime ms", "anchor (quoted) ms"],
    )
    for r in results:
        anchor = ANCHORS_S.get(r.module)
        quoted = f"{anchor * 1000:.0f}" if anchor is not None else "-"
        if r.error:
            table.add(f"{r.module} (not measured: {r.error})", "-", "-", quoted)
        else:
            table.add(
                r.module,
                f"{statistics.median(r.wall_s) * 1000:.1f}",
                f"{statistics.median(r.importtime_s) * 1000:.1f}",
                quoted,
            )
    if not dspy_python:
        table.add("dspy (not measured: no --dspy-python)", "-", "-", f"{ANCHORS_S['dspy'] * 1000:.0f}")
    table.print()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 interpreters per module instead of 7")
    parser.add_argument("--runs", type=int, default=None, help="interpreters per module")
    parser.add_argument(
        "--dspy-python", metavar="PYTHON", help=f"an interpreter with dspy installed (default: ${ENV_DSPY_PYTHON})"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 7)
    results = run(runs, args.dspy_python or os.environ.get(ENV_DSPY_PYTHON))
    if args.json:
        write_json(args.json, {"benchmark": "import", "rows": [r.to_dict() for r in results]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
