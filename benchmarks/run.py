"""Run every benchmark: ``python benchmarks/run.py [--quick] [--only NAME ...]``.

Each benchmark runs in its own interpreter, one after the other, so the heap one
leaves behind cannot slow the garbage collector in the next; tables go to
stdout, progress to stderr. At the end, one table gathers every goal the
benchmarks measured (``runtime`` and ``compile``): the figure, its target, what
stood beside it in the same run, and met / not met. Nothing is kept unless
``--json DIR`` is given (``benchmarks/results/`` is git-ignored, a good place for
it); without it the figures pass through a temporary directory.

Benchmarks (those whose file is present):

* ``compile``: build, compile, validate and JSON round trip of 1 000 / 10 000 /
  100 000-node graphs, peak memory (``bench_compile.py``);
* ``signature``: signature parsing, with ``dspy.Signature`` beside it when an
  interpreter with dspy is given (``bench_signature.py``);
* ``import``: ``import dagwright`` in fresh interpreters, beside installed peers
  (``bench_import.py``);
* ``runtime``: scheduler and agent-call overhead beside the peers (``bench_runtime.py``);
* ``kailash``: the Kailash lowering (``bench_kailash.py``);
* any other ``bench_NAME.py`` in this directory, as ``NAME``, after those.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

ORDER = ("compile", "signature", "import", "runtime", "kailash")
TAKES_DSPY = frozenset({"signature", "import"})


def available() -> dict[str, Path]:
    """Benchmark name -> script: the known ones in ORDER, then any other ``bench_*.py``."""
    found = {path.stem.removeprefix("bench_"): path for path in sorted(HERE.glob("bench_*.py"))}
    return {name: found[name] for name in (*[n for n in ORDER if n in found], *[n for n in found if n not in ORDER])}


def _takes_json(script: Path) -> bool:
    # Every benchmark takes --quick; --json only some of them.
    return '"--json"' in script.read_text(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer samples")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these ({', '.join(available())})")
    parser.add_argument(
        "--dspy-python",
        metavar="PYTHON",
        help="an interpreter with dspy installed, to measure dspy beside dagwright "
        "(default: $DAGWRIGHT_BENCH_DSPY_PYTHON)",
    )
    parser.add_argument("--json", metavar="DIR", help="also write each benchmark's figures to DIR/NAME.json")
    args = parser.parse_args(argv)
    present = available()
    unknown = [n for n in (args.only or []) if n not in present]
    if unknown:
        parser.error(f"no benchmark named {', '.join(map(repr, unknown))}; there are: {', '.join(present)}")
    names = args.only or list(present)
    dspy_python = args.dspy_python or os.environ.get("DAGWRIGHT_BENCH_DSPY_PYTHON")
    failed: list[str] = []
    # Every benchmark that writes JSON writes it somewhere, so that the goals can be gathered at the end.
    json_dir = Path(args.json) if args.json else Path(tempfile.mkdtemp(prefix="dagwright-bench-"))
    for name in names:
        script = present[name]
        command = [sys.executable, str(script)]
        if args.quick:
            command.append("--quick")
        if name in TAKES_DSPY and dspy_python:
            command += ["--dspy-python", dspy_python]
        if _takes_json(script):
            command += ["--json", str(json_dir / f"{name}.json")]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(command, check=False).returncode
        print(f"== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - start:.0f} s\n")
        if code != 0:
            failed.append(name)
    print_goals(json_dir, names)
    if not args.json:
        shutil.rmtree(json_dir, ignore_errors=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def print_goals(json_dir: Path, names: Sequence[str]) -> None:
    """Every goal the benchmarks reported, measured, with what stood beside it, met or not met."""
    from _util import goals_table, load_average

    goals: list[dict[str, Any]] = []
    for name in names:
        path = json_dir / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):  # a benchmark without goals may write a plain list (kailash does)
                continue
            goals.extend(data.get("goals", ()))
            goals.extend(g for r in data.get("results", ()) for g in r.get("goals", ()))
    if not goals:
        return
    met = sum(1 for g in goals if g["met"])
    goals_table(f"== goals: {met} of {len(goals)} met ({load_average()} at the end)", goals).print()


if __name__ == "__main__":
    sys.exit(main())
