"""The benchmarks still run against the code as it is now, shrunk to a few dozen nodes and calls.

Nothing here times anything (speed is the benchmarks' own business, on a quiet machine): each benchmark's
own checks run (every system must compute the expected result), and what it writes as JSON must hold a
figure for every system and goal it promises. LangGraph is absent from the test environment, so its rows
must say so instead of holding a number.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Imports a benchmark module fresh from ``benchmarks/`` (its siblings importable, as when run as a script)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


def test_the_runtime_benchmark_runs_every_case_and_checks_every_system(
    bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = bench("bench_runtime")
    # A full collection before every sample keeps one sample's garbage out of the next one's time; here,
    # with the test session's heap, it would cost more than the samples themselves.
    monkeypatch.setattr(runtime, "gc", SimpleNamespace(collect=lambda: 0))
    monkeypatch.setattr(runtime, "N", 24)
    monkeypatch.setattr(runtime, "SLEEP_S", 0.001)
    monkeypatch.setattr(runtime, "CALLS", 20)
    monkeypatch.setattr(runtime, "CALL_LATENCY_S", 0.005)
    out = tmp_path / "runtime.json"
    assert runtime.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    cases = {r["case"]: r for r in data["results"]}
    assert set(cases) == {"chain", "fan", "sleep", "agent", "calls"}
    for case in ("chain", "fan", "sleep"):
        systems = cases[case]["systems"]
        dagwright = ["dagwright", "dagwright +listener", "dagwright +timeouts", "dagwright +checkpoint"]
        for system in ["floor", *dagwright, "dagwright 1st run"]:
            assert systems[system]["value"] > 0 and systems[system]["samples"] >= 3, (case, system)
        assert "not_run" in systems["langgraph"] or systems["langgraph"]["value"] > 0
        assert systems["kailash" if case != "sleep" else "kailash async"]["value"] > 0
        goals = cases[case]["goals"]
        assert goals and all(g["name"].startswith(f"{case}: ") and g["value"] > 0 for g in goals)
    assert "not_run" not in cases["agent"]
    printed = capsys.readouterr().out
    assert "runtime goals" in printed and "1 000 agent calls" not in printed  # CALLS=20 is said as it is


def test_the_compile_benchmark_measures_both_shapes_in_fresh_interpreters(bench: Any, tmp_path: Path) -> None:
    compile_bench = bench("bench_compile")
    out = tmp_path / "compile.json"
    assert compile_bench.main(["--sizes", "300", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {(r["shape"], r["nodes"]) for r in rows} == {("chain", 300), ("fan", 300)}
    assert all(r["compile_us_per_node"] > 0 and r["peak_rss_mb"] > 0 for r in rows)


@pytest.fixture
def no_full_collections(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared helpers' full collection before every sample: here it would cost more than the samples."""
    monkeypatch.setattr(bench("_util"), "gc", SimpleNamespace(collect=lambda: 0))


@pytest.mark.usefixtures("no_full_collections")
def test_the_signature_benchmark_runs(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "signature.json"
    assert bench("bench_signature").main(["--quick", "--json", str(out)]) == 0
    measured = json.loads(out.read_text())
    assert measured["text"] == "question: str -> answer: str, confidence: float" and measured["dagwright"]


def test_the_tool_round_benchmark_runs(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "tools.json"
    assert bench("bench_tools").main(["--quick", "--json", str(out)]) == 0
    tools = json.loads(out.read_text())
    assert set(tools["wall_p50_ms"]) == {"raw_tools", "agent_tools", "raw_plain", "agent_plain"}


@pytest.mark.usefixtures("no_full_collections")
def test_the_kailash_lowering_benchmark_runs(bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kailash = bench("bench_kailash")
    monkeypatch.setattr(kailash, "gc", SimpleNamespace(collect=lambda: 0))
    out = tmp_path / "kailash.json"
    assert kailash.main(["--quick", "--sizes", "40", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {(r["shape"], r["nodes"]) for r in rows} == {("chain", 40), ("fan", 40)}
    assert all(r["ours"]["median_s"] > 0 and r["direct"]["median_s"] > 0 for r in rows)


def test_the_local_model_benchmark_says_it_skipped_without_a_model() -> None:
    # Run as a script, as run.py runs it: without a model file or a server it says so and succeeds.
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_local_model.py")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "skipped" in done.stdout + done.stderr
