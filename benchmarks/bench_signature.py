"""Signature-parsing benchmark: dagwright's parser next to ``dspy.Signature``.

Measured, in µs per call (medians of repeated samples):

* ``_parse`` (uncached): ``dagwright.compiler.signature._parse`` on
  ``"question: str -> answer: str, confidence: float"``, the parser itself with
  no cache in front (target: <= 50 µs);
* ``parse_signature``, a new text each call: the public function on texts it has
  never seen (``question0: str -> ...``, ``question1: str -> ...``), so every
  call misses the cache;
* ``parse_signature``, cached: the same text again (the common case in a program
  that builds the same agent many times);
* ``make_signature``, a new text each call: text to a ``Signature`` subclass,
  which is what ``dspy.Signature(text)`` returns;
* ``dspy.Signature``, a new text each call, when an interpreter with dspy
  installed is available (``--dspy-python``, the ``DAGWRIGHT_BENCH_DSPY_PYTHON``
  variable, or this interpreter). It runs in a subprocess of that interpreter,
  which also times dagwright's ``_parse`` so the ratio compares two figures
  from one process. Without dspy the benchmark says so and prints no figure
  for it.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from _util import HERE, Samples, Table, fmt_us, machine_note, python_json, time_calls, write_json

TEXT = "question: str -> answer: str, confidence: float"
TARGET_US = 50.0
DSPY_ANCHOR_MS = 2.0  # the figure quoted for DSPy in the project's anchors
ENV_DSPY_PYTHON = "DAGWRIGHT_BENCH_DSPY_PYTHON"


def _fresh(prefix: str = "question") -> Callable[[], str]:
    """A function returning a new signature text of the same shape on every call."""
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter)}: str -> answer: str, confidence: float"


def measure_dagwright(scale: float = 1.0) -> dict[str, Samples]:
    """dagwright's figures in this process."""
    from dagwright.compiler.signature import _parse, make_signature, parse_signature

    repeat = max(5, round(15 * scale))
    # Same-text calls first warm nothing the uncached parser uses; run it once anyway
    # so imports done lazily on first use are not timed.
    _parse(TEXT, None)
    fresh = _fresh("warm")
    parse_signature(fresh())
    make_signature(fresh())
    new_text = _fresh()
    new_class_text = _fresh("q")
    return {
        "dagwright _parse (uncached)": time_calls(lambda: _parse(TEXT, None), 200, repeat),
        "dagwright parse_signature, new text each call": time_calls(lambda: parse_signature(new_text()), 200, repeat),
        "dagwright parse_signature, cached": time_calls(lambda: parse_signature(TEXT), 20_000, repeat),
        "dagwright make_signature, new text each call": time_calls(
            lambda: make_signature(new_class_text()), 200, repeat
        ),
    }


def measure_dspy(scale: float = 1.0) -> dict[str, Any]:
    """Body of the dspy subprocess: dspy.Signature and dagwright's _parse, side by side."""
    out: dict[str, Any] = {"python": sys.executable, "python_version": sys.version.split()[0]}
    try:
        import dspy  # type: ignore[import-not-found]  # optional: measured only where installed
    except Exception as exc:  # not installed, or broken in this interpreter: say which
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["dspy_version"] = getattr(dspy, "__version__", "unknown")
    repeat = max(5, round(11 * scale))
    warm = _fresh("warm")
    for _ in range(20):  # first calls import and build dspy's own machinery
        dspy.Signature(warm())
    new_text = _fresh()
    samples = time_calls(lambda: dspy.Signature(new_text()), 20, repeat)
    out["dspy.Signature, new text each call"] = samples.to_dict()
    try:
        from dagwright.compiler.signature import _parse
    except ImportError as exc:
        out["dagwright_error"] = f"{type(exc).__name__}: {exc}"
        return out
    _parse(TEXT, None)
    ours = time_calls(lambda: _parse(TEXT, None), 200, max(5, round(15 * scale)))
    out["dagwright _parse (uncached)"] = ours.to_dict()
    return out


def dspy_python(explicit: str | None) -> str | None:
    """The interpreter to measure dspy with, if any."""
    if explicit:
        return explicit
    from_env = os.environ.get(ENV_DSPY_PYTHON)
    if from_env:
        return from_env
    if importlib.util.find_spec("dspy") is not None:
        return sys.executable
    return None


def run(scale: float = 1.0, dspy_exe: str | None = None) -> dict[str, Any]:
    """Measure and print; returns the figures."""
    print(f"signature benchmark: Python {sys.version.split()[0]}; {machine_note()}", flush=True)
    ours = measure_dagwright(scale)
    table = Table(
        f"Signature parsing of {TEXT!r}: µs per call, medians (target <= {TARGET_US:g} µs)",
        ["case", "µs/call", "cpu µs/call", "samples"],
    )
    for name, s in ours.items():
        table.add(name, fmt_us(s.median), fmt_us(s.cpu_median), len(s.values))
    result: dict[str, Any] = {"text": TEXT, "dagwright": {k: v.to_dict() for k, v in ours.items()}}
    note: str
    exe = dspy_python(dspy_exe)
    if exe is None:
        note = (
            "dspy: not importable here and no --dspy-python given; no dspy figure measured "
            f"(the quoted anchor is {DSPY_ANCHOR_MS:g} ms)."
        )
        result["dspy"] = None
    else:
        args = [str(HERE / "bench_signature.py"), "--dspy-child", "--scale", str(scale)]
        try:
            theirs: dict[str, Any] = python_json(exe, args)
        except (OSError, RuntimeError) as exc:
            theirs = {"error": str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)}
        result["dspy"] = theirs
        if "error" in theirs:
            note = f"dspy: not importable by {exe} ({theirs['error']}); no dspy figure measured."
        else:
            d = theirs["dspy.Signature, new text each call"]
            table.add(
                f"dspy {theirs['dspy_version']} dspy.Signature, new text each call",
                fmt_us(d["median_s"]),
                fmt_us(d["cpu_median_s"]),
                len(d["samples_s"]),
            )
            p = theirs.get("dagwright _parse (uncached)")
            if p is not None:
                table.add(
                    "dagwright _parse (uncached), in the dspy process",
                    fmt_us(p["median_s"]),
                    fmt_us(p["cpu_median_s"]),
                    len(p["samples_s"]),
                )
                ratio = d["median_s"] / p["median_s"]
                result["dspy_over_dagwright"] = ratio
                note = (
                    f"dspy.Signature takes {ratio:.0f}x as long as dagwright's uncached parse "
                    f"(both measured in one process: {exe}, Python {theirs['python_version']})."
                )
            else:
                note = f"dagwright is not importable by {exe} ({theirs.get('dagwright_error')}); no ratio."
    table.print()
    print(note + "\n", flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument(
        "--dspy-python",
        metavar="PYTHON",
        help=f"an interpreter with dspy installed (default: ${ENV_DSPY_PYTHON}, or this one if it has dspy)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--dspy-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scale = args.scale if args.scale is not None else (0.4 if args.quick else 1.0)
    if args.dspy_child:
        print(json.dumps(measure_dspy(scale)))
        return 0
    result = run(scale, args.dspy_python)
    if args.json:
        write_json(args.json, {"benchmark": "signature", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
