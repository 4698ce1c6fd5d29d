"""Progress displays: ``dagwright run``'s live node counts, ``--verbose``'s event log, and batch progress bars.

The live displays are captured from a rich ``Console`` writing to a ``StringIO`` with
``force_terminal=True``, so they draw as on a terminal; its control codes are stripped
before the text is read. Off a terminal (pytest's captured stderr) nothing is printed per
event. The batch runs (``Flow.run_batch``, ``BaseAgent.run_batch``) are checked for order,
their concurrency bound and their failures as well as for their bars.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from typing import Any

import pytest
from rich.console import Console

from dagwright import Flow
from dagwright.agent import BaseAgent
from dagwright.cli.progress import NodeCounts, RunDisplay
from dagwright.cli.run import run_flow
from dagwright.execution.events import Event, NodeRecord, Usage
from dagwright.testing import OpenAITestServer

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal() -> Console:
    """A console that draws as on a terminal, into a string."""
    return Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)


def drawn(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return _CONTROL.sub("", file.getvalue())


def inc(x: int) -> int:
    return x + 1


def shout(answer: str) -> str:
    return answer.upper()


def chain(n: int, *, fail_last: bool = False) -> Flow:
    """``x -> n0 -> n1 -> ... -> n{n-1}``; with ``fail_last`` a node after them that raises."""
    flow = Flow("chain")
    flow.input("x", int)
    for i in range(n):
        flow.add_function(f"n{i}", inc)
        flow.connect("input:x" if i == 0 else f"n{i - 1}.output", f"n{i}.x")
    last = f"n{n - 1}.output"
    if fail_last:

        def broken(x: int) -> int:
            raise RuntimeError(f"no good: {x}")

        flow.add_function("broken", broken)
        flow.connect(last, "broken.x")
        last = "broken.output"
    flow.output("y", last)
    return flow


# --------------------------------------------------------------------------- dagwright run


def test_off_a_terminal_a_200_node_run_prints_its_summary_and_no_line_per_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_flow(chain(200), {"x": 1}, as_json=False, progress=True) == 0
    out, err = capsys.readouterr()
    assert out == "y: 201\n"
    lines = err.splitlines()
    assert len(lines) == 1, lines  # was 1 + 2 per node + 1 = 402 lines
    assert lines[0].startswith("ok: run ") and "200/200 nodes done, 0 tokens, $0.0000" in lines[0]


def test_verbose_keeps_the_line_per_event_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_flow(chain(200), {"x": 1}, as_json=False, progress=False, verbose=True) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "running chain (200 nodes)"
    assert sum(line.startswith("  ... n") for line in lines) == 200
    assert sum(line.startswith("  ok  n") for line in lines) == 200
    assert lines[-2].startswith("  ok  n199 (") and lines[-2].endswith("[200/200]")
    assert lines[-1].startswith("ok: run ")


def test_the_live_display_shows_the_counts_of_a_failed_run(capsys: pytest.CaptureFixture[str]) -> None:
    console = terminal()
    assert run_flow(chain(10, fail_last=True), {"x": 1}, as_json=False, progress=True, console=console) == 1
    text = drawn(console)
    assert "chain" in text and "11/11 nodes" in text
    assert "done 10 · running 0 · failed 1 · skipped 0 · 0 tokens · $0.0000" in text
    assert "  ... n0" not in text  # counts, not a log
    err = capsys.readouterr().err
    assert "FAILED: run " in err and "10/11 nodes done, 1 failed" in err
    assert "node broken failed: RuntimeError: no good: 11" in err


def test_the_live_display_counts_tokens_and_cost(server: OpenAITestServer, capsys: pytest.CaptureFixture[str]) -> None:
    # gpt-4's price makes one short call cost more than $0.0001, so the cost shows at four decimals.
    agent = BaseAgent(
        config={"provider": "openai", "base_url": server.base_url, "api_key": "sk-test", "model": "gpt-4"},
        signature="question: str -> answer: str",
        name="qa",
    )
    flow = Flow("asked")
    flow.input("question", str)
    flow.add_agent("qa", agent)
    flow.add_function("shout", shout)
    flow.connect("input:question", "qa.question")
    flow.connect("qa.answer", "shout.answer")
    flow.output("loud", "shout.output")
    console = terminal()
    assert run_flow(flow, {"question": "why?"}, as_json=False, progress=True, console=console) == 0
    summary = capsys.readouterr().err
    found = re.search(r"2/2 nodes done, (\d+) tokens, \$([\d.]+)", summary)
    assert found is not None, summary
    tokens, cost = int(found.group(1)), found.group(2)
    assert tokens > 0 and float(cost) > 0
    assert f"done 2 · running 0 · failed 0 · skipped 0 · {tokens:,} tokens · ${cost}" in drawn(console)


def test_verbose_on_a_terminal_logs_above_the_live_display() -> None:
    console = terminal()
    assert run_flow(chain(5), {"x": 1}, as_json=False, progress=True, verbose=True, console=console) == 0
    text = drawn(console)
    assert "running chain (5 nodes)" in text and "  ... n0" in text and "[5/5]" in text
    assert "done 5 · running 0 · failed 0" in text


def test_the_display_counts_running_cached_and_skipped_nodes_from_events() -> None:
    counts = NodeCounts(total=6)

    def event(
        kind: Any, node: str, status: Any = "done", usage: Usage | None = None, kind_of: str = "function"
    ) -> None:
        counts(Event(kind, "r", node, record=NodeRecord(node, kind_of, status=status, usage=usage)))

    event("node_started", "a")
    event("node_finished", "a", usage=Usage(prompt=1000, completion=234, cost=0.012, calls=1))
    event("node_finished", "b", status="cached")
    event("node_started", "c")
    event("node_started", "d")
    event("node_failed", "d", status="failed")
    event("node_skipped", "e", status="skipped")
    event("node_skipped", "output:y", status="skipped", kind_of="output")  # not work: not counted
    assert (counts.done, counts.cached, len(counts.running), counts.failed, counts.skipped) == (2, 1, 1, 1, 1)
    display = RunDisplay(terminal(), "demo", 6, progress=True)
    display.counts = counts
    display.console.print(display.render())
    text = drawn(display.console)
    assert "demo" in text and "4/6 nodes" in text
    assert "done 2 (cached 1) · running 1 · failed 1 · skipped 1 · 1,234 tokens · $0.0120" in text


def test_an_interrupted_run_shows_its_running_nodes_as_cancelled() -> None:
    console = terminal()
    with pytest.raises(KeyboardInterrupt), RunDisplay(console, "demo", 3, progress=True) as display:
        for node in ("a", "b"):
            display.counts(Event("node_started", "r", node, record=NodeRecord(node, "function", status="running")))
        raise KeyboardInterrupt
    assert "done 0 · running 0 · failed 0 · skipped 0 · cancelled 2" in drawn(console)


def test_progress_is_off_for_a_console_that_is_not_a_terminal() -> None:
    display = RunDisplay(Console(file=io.StringIO()), "demo", 3, progress=True)
    assert display.listener is None  # the scheduler builds no events at all


# --------------------------------------------------------------------------- Flow.run_batch


class Gauge:
    """How many calls are inside at once, at most."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.calls = 0

    async def double(self, x: int) -> int:
        self.calls += 1
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await asyncio.sleep(0.02)
            if x == 3:
                raise ValueError("three is not allowed")
            return x * 2
        finally:
            self.inside -= 1


def gauged_flow(gauge: Gauge) -> Flow:
    flow = Flow("doubler")
    flow.input("x", int)
    flow.add_function("double", gauge.double)
    flow.connect("input:x", "double.x")
    flow.output("y", "double.output")
    return flow


def test_run_batch_keeps_input_order_within_the_concurrency_bound() -> None:
    gauge = Gauge()
    flow = gauged_flow(gauge)
    batch = [{"x": x} for x in (9, 1, 7, 5, 8, 2, 6, 4, 0, 10)]
    results = flow.run_batch(batch, concurrency=3, progress=False)
    assert [r.outputs["y"] for r in results] == [x["x"] * 2 for x in batch]
    assert gauge.most == 3 and gauge.calls == 10
    assert len({r.run_id for r in results}) == 10


def test_a_failing_run_gives_a_failed_result_and_the_others_go_on() -> None:
    gauge = Gauge()
    results = gauged_flow(gauge).run_batch([{"x": x} for x in range(6)], concurrency=2, progress=False)
    assert [r.success for r in results] == [True, True, True, False, True, True]
    assert results[3].error == "double: ValueError: three is not allowed"
    assert [r.outputs.get("y") for r in results] == [0, 2, 4, None, 8, 10]
    assert gauge.calls == 6


def test_an_input_set_that_does_not_fit_is_refused_before_anything_runs() -> None:
    gauge = Gauge()
    flow = gauged_flow(gauge)
    with pytest.raises(ValueError, match=r"run_batch\(\) item 1: flow 'doubler': input 'x' is typed int"):
        flow.run_batch([{"x": 1}, {"x": "two"}], progress=False)
    with pytest.raises(ValueError, match=r"item 0: flow 'doubler' has no input 'y'"):
        flow.run_batch([{"y": 1}])
    with pytest.raises(TypeError, match="item 0 is a int"):
        flow.run_batch([1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        flow.run_batch([{"x": 1}], concurrency=0)
    assert gauge.calls == 0


async def test_arun_batch_runs_on_the_current_loop() -> None:
    gauge = Gauge()
    results = await gauged_flow(gauge).arun_batch([{"x": 1}, {"x": 2}], concurrency=1)
    assert [r.outputs["y"] for r in results] == [2, 4] and gauge.most == 1


def test_run_batch_draws_a_progress_bar_of_runs_and_failures() -> None:
    console = terminal()
    results = gauged_flow(Gauge()).run_batch([{"x": x} for x in range(8)], concurrency=4, progress=console)
    assert sum(not r.success for r in results) == 1
    text = drawn(console)
    assert "doubler" in text and "8/8 runs · 1 failed · 0 tokens · $0.0000" in text


def test_run_batch_shows_no_bar_off_a_terminal_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    flow = gauged_flow(Gauge())
    flow.run_batch([{"x": 1}, {"x": 2}])  # progress=None: stderr is captured, not a terminal
    flow.run_batch([{"x": 1}, {"x": 2}], progress=False)
    assert capsys.readouterr().err == ""
    flow.run_batch([{"x": 1}, {"x": 2}], progress=True)  # asked for: the last frame, once
    assert "2/2 runs · 0 failed" in capsys.readouterr().err


# --------------------------------------------------------------------------- BaseAgent.run_batch


def test_agent_run_batch_draws_its_progress_with_tokens(server: OpenAITestServer) -> None:
    agent = BaseAgent(
        config={"provider": "openai", "base_url": server.base_url, "api_key": "sk-test", "model": "gpt-4o-mini"},
        signature="question: str -> answer: str",
        name="qa",
    )
    console = terminal()
    questions = [{"question": f"question {i}"} for i in range(5)]
    outs = agent.run_batch(questions, concurrency=2, progress=console)
    assert len(outs) == 5 and all(o["answer"] for o in outs)
    tokens = sum(o["_tokens"]["total"] for o in outs)
    assert tokens > 0
    text = drawn(console)
    assert "qa" in text and f"5/5 runs · 0 failed · {tokens:,} tokens" in text


def test_agent_run_batch_stops_at_an_error_and_counts_it(server: OpenAITestServer) -> None:
    agent = BaseAgent(
        config={"provider": "openai", "base_url": server.base_url, "api_key": "sk-test", "model": "gpt-4o-mini"},
        signature="question: str -> answer: str",
        name="qa",
    )
    console = terminal()
    with pytest.raises(ValueError, match="question"):
        agent.run_batch([{"question": "fine"}, {"wrong": 1}], concurrency=1, progress=console)
    assert "1 failed" in drawn(console)


# --------------------------------------------------------------------------- rich stays out of light imports


def test_rich_is_imported_only_when_a_display_is_drawn() -> None:
    code = (
        "import sys, dagwright, dagwright.compiler, dagwright.patterns, dagwright.flow, dagwright.agent\n"
        "loaded = 'rich' in sys.modules\n"
        "flow = dagwright.Flow('f')\n"
        "flow.input('x', int)\n"
        "flow.add_function('inc', lambda x: x + 1)\n"
        "flow.connect('input:x', 'inc.x')\n"
        "flow.output('y', 'inc.output')\n"
        "assert [r.outputs['y'] for r in flow.run_batch([{'x': 1}, {'x': 2}])] == [2, 3]\n"
        "print(loaded, 'rich' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"], done.stderr
