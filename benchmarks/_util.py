"""Timing, memory, subprocess and table helpers shared by the benchmarks.

Every figure the benchmarks print is a median of repeated samples: the machines
they run on are small and noisy, and a median ignores the odd slow sample where
a mean would not. Each sample records wall time (what a user waits) and the
process's CPU time (what the code costs, much less disturbed by other processes
competing for the cores). The garbage collector stays enabled while timing, as
users run with it, but a full collection runs before each sample so no sample
pays for the garbage of the previous one.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HERE",
    "PEAK_RSS_SOURCE",
    "Goal",
    "Samples",
    "Table",
    "fmt_ms",
    "fmt_us",
    "goals_table",
    "load_average",
    "machine_note",
    "peak_rss_mb",
    "python_json",
    "reference_ms",
    "time_calls",
    "time_each",
    "write_json",
]

HERE = Path(__file__).resolve().parent


@dataclass
class Samples:
    """Seconds per call, one value per sample (``values`` wall clock, ``cpu`` process CPU time)."""

    values: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the samples were."""
        if len(self.values) < 2 or self.median == 0:
            return 0.0
        return (max(self.values) - min(self.values)) / self.median

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"median_s": self.median, "samples_s": self.values}
        if self.cpu:
            out["cpu_median_s"] = self.cpu_median
            out["cpu_samples_s"] = self.cpu
        return out


def time_each(prepare: Callable[[], Any], run: Callable[[Any], Any], repeat: int) -> Samples:
    """Time ``run(prepare())`` ``repeat`` times; only ``run`` is timed.

    ``prepare`` makes a fresh subject for every sample (a new flow, a graph
    without its cached index), so no sample profits from a cache the previous
    one filled.
    """
    samples = Samples()
    for _ in range(repeat):
        subject = prepare()
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        run(subject)
        samples.cpu.append(time.process_time() - cpu)
        samples.values.append(time.perf_counter() - wall)
        del subject
    return samples


def time_calls(fn: Callable[[], Any], number: int, repeat: int) -> Samples:
    """Seconds per call of ``fn``: ``repeat`` samples of ``number`` back-to-back calls each."""
    samples = Samples()
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        samples.cpu.append((time.process_time() - cpu) / number)
        samples.values.append((time.perf_counter() - wall) / number)
    return samples


def _vm_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# Linux keeps a forked parent's ru_maxrss across exec, so in a subprocess started
# by a large benchmark process ru_maxrss reports the parent's size; VmHWM belongs
# to the new process image only.
PEAK_RSS_SOURCE = "VmHWM (/proc/self/status)" if _vm_hwm_kb() is not None else "getrusage ru_maxrss"


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far, in MB."""
    kb = _vm_hwm_kb()
    if kb is not None:
        return kb / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


def reference_ms() -> float:
    """A fixed pure-Python workload (200 000 dict stores), fastest of 5, in ms.

    The figures of two runs compare only on equally fast machines; this one shows
    how fast the machine (or the virtual machine's share of it) was at the time.
    """
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        d: dict[int, int] = {}
        for i in range(200_000):
            d[i] = i
        best = min(best, time.perf_counter() - start)
    return best * 1000


def machine_note() -> str:
    """Load average and the reference workload's time, for the header of a benchmark's output."""
    return f"{load_average()}; reference loop {reference_ms():.1f} ms"


def load_average() -> str:
    """The 1-minute load average and the core count, to judge how busy the machine was."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return "load average unknown"
    return f"load average {load:.2f} on {os.cpu_count()} cores"


def python_json(
    python: str, args: Sequence[str], *, timeout: float = 1800, env: Mapping[str, str] | None = None
) -> Any:
    """Run ``python args...`` and parse the JSON object it prints last on stdout."""
    proc = subprocess.run(
        [python, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else dict(env),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{python} {' '.join(args)} printed nothing")
    return json.loads(lines[-1])


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write benchmark figures as JSON (``benchmarks/results/`` is git-ignored)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def fmt_ms(seconds: float) -> str:
    """Milliseconds with three significant digits, at least one decimal."""
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_us(seconds: float) -> str:
    """Microseconds: two decimals below 100 µs, one below 1 000, none above."""
    us = seconds * 1e6
    if us >= 1000:
        return f"{us:.0f}"
    if us >= 100:
        return f"{us:.1f}"
    return f"{us:.2f}"


class Table:
    """A plain-text table: the first column names the row, the others are right-aligned."""

    def __init__(self, title: str, headers: Sequence[str]) -> None:
        self.title = title
        self.headers = list(headers)
        self.rows: list[list[str]] = []

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"{self.title}: expected {len(self.headers)} cells, got {len(cells)}")
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [max([len(h)] + [len(r[i]) for r in self.rows]) for i, h in enumerate(self.headers)]

        def line(cells: Sequence[str]) -> str:
            parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [self.title, "", line(self.headers), rule]
        out.extend(line(r) for r in self.rows)
        return "\n".join(out)

    def print(self) -> None:
        print(self.render(), flush=True)
        print(flush=True)


@dataclass
class Goal:
    """One performance goal: what was measured, against what, and whether it is met.

    ``value`` and ``target`` are in the same unit (a ratio, µs per node, seconds); a goal is met
    when ``value <= target`` (``value >= target`` with ``at_least``). ``peers`` says what stood
    beside it in the same run.
    """

    name: str
    value: float
    target: float
    unit: str
    peers: str = ""
    at_least: bool = False

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.at_least else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "unit": self.unit,
            "peers": self.peers,
            "at_least": self.at_least,
            "met": self.met,
        }


def _fmt_goal_value(value: float, unit: str) -> str:
    return f"{value:.2f}{unit}" if unit in ("x", "") else f"{value:.2f} {unit}"


def goals_table(title: str, goals: Sequence[Mapping[str, Any]]) -> Table:
    """A table of goals (as ``Goal.to_dict()`` gives them): measured, target, peers, met / not met."""
    table = Table(title, ["goal", "measured", "target", "beside it (same run)", "verdict"])
    for g in goals:
        table.add(
            g["name"],
            _fmt_goal_value(g["value"], g["unit"]),
            (">= " if g.get("at_least") else "<= ") + _fmt_goal_value(g["target"], g["unit"]),
            g["peers"] or "-",
            "met" if g["met"] else "NOT MET",
        )
    return table
