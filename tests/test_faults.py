"""Faults at the flow level, with checkpoints: the error names the node and the cause, and nothing finished is lost.

LLM faults are injected by the loopback server (``Fault(match=...)`` aims one at one agent of a
three-step chain); node exceptions and cancellation use function nodes. After each failure the
run is resumed from its checkpoint: finished nodes are not called again (the server's requests and
the functions' own counters say so) and the final outputs equal an uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dagwright.agent import BaseAgent
from dagwright.compiler.signature import make_signature
from dagwright.execution.errors import RunFailedError
from dagwright.execution.events import RunResult
from dagwright.flow import Flow
from dagwright.ops.checkpoint import CheckpointMismatchError, CheckpointStore
from dagwright.testing import Fault, OpenAITestServer

STEPS = 3
GUARD = 10.0


def chain(base_url: str, *, urls: dict[str, str] | None = None, **config: Any) -> Flow:
    """topic -> step0 -> step1 -> step2 -> final; ``urls`` overrides one agent's server."""
    flow = Flow("chain")
    flow.input("topic", str, to="step0.text")
    for i in range(STEPS):
        settings = {
            "provider": "openai",
            "base_url": (urls or {}).get(f"step{i}", base_url),
            "api_key": "sk-test",
            "model": "gpt-4o-mini",
            "retry_initial_delay": 0.01,
            "max_retries": 2,
            **config,
        }
        sig = make_signature("text: str -> result: str", f"Step marker step{i}.")
        flow.add_agent(f"step{i}", BaseAgent(config=settings, signature=sig, name=f"step{i}"))
        if i:
            flow.connect(f"step{i - 1}.result", f"step{i}.text")
    flow.output("final", f"step{STEPS - 1}.result")
    return flow


def per_step(server: OpenAITestServer) -> Counter[str]:
    counts: Counter[str] = Counter()
    for request in server.requests:
        text = " ".join(str(m.get("content")) for m in request["messages"])
        counts.update(f"step{i}" for i in range(STEPS) if f"Step marker step{i}." in text)
    return counts


def statuses(result: RunResult) -> dict[str, str]:
    return {node_id: r.status for node_id, r in result.nodes.items() if ":" not in node_id}


def clean_output(server: OpenAITestServer) -> Any:
    expected = chain(server.base_url).run(topic="faults")
    assert expected.success, expected.error
    server.reset()
    return expected.outputs


def stored(db: Path, run_id: str) -> list[str]:
    with CheckpointStore(db) as store:
        return store.finished_nodes(run_id)


# ----------------------------------------------------------------------------- LLM faults that fail a node


FAILING = {
    "5xx burst past the retries": (
        [Fault(status=500, match="step1"), Fault(status=503, match="step1"), Fault(status=502, match="step1")],
        "LLMError",
        "failed after 3 attempt(s) (HTTP 502): injected fault: HTTP 502",
        3,
    ),
    "malformed JSON": (
        [Fault(malformed=True, match="step1")] * 2,
        "OutputParseError",
        "step1: the reply of gpt-4o-mini does not match the signature after one repair: the reply is not valid JSON",
        2,
    ),
    "empty replies": (
        [Fault(empty=True, match="step1")] * 2,
        "OutputParseError",
        "the reply is empty; a JSON object with the output fields was expected. Raw reply: ''",
        2,
    ),
    "schema-violating replies": (
        [Fault(schema_violation=True, match="step1")] * 2,
        "OutputParseError",
        "does not match the signature after one repair: result: Field required. Raw reply: '{}'",
        2,
    ),
}


@pytest.mark.parametrize("case", list(FAILING), ids=list(FAILING))
def test_llm_fault_names_node_and_cause_and_resume_loses_nothing(
    server: OpenAITestServer, tmp_path: Path, case: str
) -> None:
    faults, error_type, detail, requests = FAILING[case]
    expected = clean_output(server)
    db = tmp_path / "runs.db"
    server.enqueue(*faults)
    result = chain(server.base_url).run(topic="faults", checkpoint=str(db), run_id="r")
    assert not result.success
    assert statuses(result) == {"step0": "done", "step1": "failed", "step2": "cancelled"}
    record = result.nodes["step1"]
    assert record.error_type == error_type
    assert detail in (record.error or "")
    assert result.error is not None and result.error.startswith(f"step1: {error_type}: ")
    with pytest.raises(RunFailedError) as info:
        result.raise_for_failure()
    assert f"\n  step1: {error_type}: " in str(info.value)
    assert result.nodes["step2"].skip_reason == "cancelled: step1 failed"
    assert per_step(server) == Counter({"step0": 1, "step1": requests})
    assert stored(db, "r") == ["step0"]

    assert server.pending_faults == []
    resumed = chain(server.base_url).resume("r", checkpoint=str(db))
    assert resumed.success, resumed.error
    assert resumed.outputs == expected
    assert statuses(resumed) == {"step0": "cached", "step1": "done", "step2": "done"}
    assert per_step(server) == Counter({"step0": 1, "step1": requests + 1, "step2": 1})


# ----------------------------------------------------------------------------- LLM faults that are survived


def test_429_retry_after_is_honored_in_a_checkpointed_flow(server: OpenAITestServer, tmp_path: Path) -> None:
    expected = clean_output(server)
    db = tmp_path / "runs.db"
    server.enqueue(Fault(status=429, retry_after=0.3, match="step1"))
    result = chain(server.base_url).run(topic="faults", checkpoint=str(db), run_id="r")
    assert result.success, result.error
    assert result.outputs == expected
    assert per_step(server) == Counter({"step0": 1, "step1": 2, "step2": 1})
    duration = result.nodes["step1"].duration_ms
    # The wait the server asked for, not the 0.01 s backoff of the configuration.
    assert duration is not None and duration >= 300.0
    assert stored(db, "r") == ["step0", "step1", "step2"]


def test_a_5xx_burst_within_the_retries_is_survived(server: OpenAITestServer, tmp_path: Path) -> None:
    expected = clean_output(server)
    server.enqueue(Fault(status=500, match="step2"), Fault(status=503, match="step2"))
    result = chain(server.base_url).run(topic="faults", checkpoint=str(tmp_path / "runs.db"))
    assert result.success, result.error
    assert result.outputs == expected
    assert per_step(server) == Counter({"step0": 1, "step1": 1, "step2": 3})


def test_connection_refused_names_node_and_server_then_rerun_changed_resumes(
    server: OpenAITestServer, tmp_path: Path
) -> None:
    expected = clean_output(server)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    db = str(tmp_path / "runs.db")
    result = chain(server.base_url, urls={"step1": dead}).run(topic="faults", checkpoint=db, run_id="r")
    assert statuses(result) == {"step0": "done", "step1": "failed", "step2": "cancelled"}
    assert result.nodes["step1"].error_type == "LLMError"
    assert result.nodes["step1"].error == (
        f"cannot reach gpt-4o-mini at {dead} after 3 attempt(s): All connection attempts failed"
    )

    fixed = chain(server.base_url)
    # The server address is part of the node, so the fixed flow is a changed graph: refused unless asked.
    with pytest.raises(CheckpointMismatchError, match=r"different version of flow 'chain': changed: step1\. "):
        fixed.resume("r", checkpoint=db)
    resumed = fixed.resume("r", checkpoint=db, rerun_changed=True)
    assert resumed.outputs == expected
    assert statuses(resumed) == {"step0": "cached", "step1": "done", "step2": "done"}
    assert per_step(server) == Counter({"step0": 1, "step1": 1, "step2": 1})


def test_a_reply_slower_than_the_timeout_fails_the_node_and_resume_finishes(
    server: OpenAITestServer, tmp_path: Path
) -> None:
    expected = clean_output(server)
    db = str(tmp_path / "runs.db")
    server.enqueue(Fault(delay=0.6, match="step2"))
    flow = chain(server.base_url)
    flow.configure("step2", timeout=0.15)
    result = flow.run(topic="faults", checkpoint=db, run_id="r")
    assert statuses(result) == {"step0": "done", "step1": "done", "step2": "failed"}
    assert result.error == "step2: TimeoutError: node 'step2' timed out after 0.15 s"
    assert stored(db, "r") == ["step0", "step1"]
    resumed = flow.resume("r", checkpoint=db)
    assert resumed.outputs == expected
    assert statuses(resumed) == {"step0": "cached", "step1": "cached", "step2": "done"}
    assert per_step(server) == Counter({"step0": 1, "step1": 1, "step2": 2})


# ----------------------------------------------------------------------------- node exceptions and cancellation


class Fan:
    """src -> (bad, slow) -> join: ``bad`` raises while ``broken``; ``slow`` waits for ``release``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.broken = True
        self.release: asyncio.Event | None = None
        self.slow_started: asyncio.Event | None = None

    def flow(self) -> Flow:
        def src(x: int) -> int:
            self.calls["src"] += 1
            return x + 1

        def bad(v: int) -> int:
            self.calls["bad"] += 1
            if self.broken:
                raise ValueError(f"bad cannot take {v}")
            return v * 2

        async def slow(v: int) -> int:
            self.calls["slow"] += 1
            if self.slow_started is not None:
                self.slow_started.set()
            if self.release is not None:
                await asyncio.wait_for(self.release.wait(), GUARD)
            return v * 3

        def join(a: int, b: int) -> int:
            self.calls["join"] += 1
            return a + b

        flow = Flow("fan")
        flow.add_function("src", src)
        flow.add_function("bad", bad)
        flow.add_function("slow", slow)
        flow.add_function("join", join)
        flow.input("x", int, to="src.x")
        flow.connect("src.output", "bad.v")
        flow.connect("src.output", "slow.v")
        flow.connect("bad.output", "join.a")
        flow.connect("slow.output", "join.b")
        flow.output("total", "join.output")
        return flow


async def test_fail_fast_cancels_in_flight_nodes_and_resume_reruns_only_them(tmp_path: Path) -> None:
    fan = Fan()
    fan.release = asyncio.Event()  # never set in the first run: slow is in flight when bad fails
    db = str(tmp_path / "runs.db")
    result = await fan.flow().arun(x=1, checkpoint=db, run_id="r")
    assert statuses(result) == {"src": "done", "bad": "failed", "slow": "cancelled", "join": "cancelled"}
    assert result.error == "bad: ValueError: bad cannot take 2"
    assert result.nodes["join"].skip_reason == "cancelled: bad failed"
    with pytest.raises(RunFailedError, match=r"run r of flow 'fan' failed: 1 node\(s\)\n  bad: ValueError: bad cannot"):
        result.raise_for_failure()
    with CheckpointStore(db) as store:
        assert store.finished_nodes("r") == ["src"]
        assert store.run("r").status == "failed"

    fan.broken = False
    fan.release = None
    resumed = await fan.flow().aresume("r", checkpoint=db)
    assert resumed.outputs == {"total": 10}
    assert statuses(resumed) == {"src": "cached", "bad": "done", "slow": "done", "join": "done"}
    assert fan.calls == Counter({"src": 1, "bad": 2, "slow": 2, "join": 1})


def test_continue_mode_keeps_the_other_branch_and_resume_reruns_the_failed_one(tmp_path: Path) -> None:
    fan = Fan()
    db = str(tmp_path / "runs.db")
    result = fan.flow().run(x=1, checkpoint=db, run_id="r", failure_mode="continue")
    assert statuses(result) == {"src": "done", "bad": "failed", "slow": "done", "join": "skipped"}
    assert result.error == "bad: ValueError: bad cannot take 2"
    assert result.nodes["join"].skip_reason == "input 'a' has no value: bad.output failed"
    assert sorted(stored(tmp_path / "runs.db", "r")) == ["slow", "src"]

    fan.broken = False
    resumed = fan.flow().resume("r", checkpoint=db)
    assert resumed.outputs == {"total": 10}
    assert statuses(resumed) == {"src": "cached", "bad": "done", "slow": "cached", "join": "done"}
    assert fan.calls == Counter({"src": 1, "bad": 2, "slow": 1, "join": 1})


async def test_a_cancelled_run_keeps_its_finished_nodes(tmp_path: Path) -> None:
    fan = Fan()
    fan.broken = False
    fan.release = asyncio.Event()
    fan.slow_started = asyncio.Event()
    db = str(tmp_path / "runs.db")
    task = asyncio.ensure_future(fan.flow().arun(x=1, checkpoint=db, run_id="r"))
    await asyncio.wait_for(fan.slow_started.wait(), GUARD)
    # Let bad finish too (it is synchronous, in a worker thread), so two nodes are done when the run is cancelled.
    while fan.calls["bad"] == 0 or "bad" not in stored(tmp_path / "runs.db", "r"):
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with CheckpointStore(db) as store:
        assert sorted(store.finished_nodes("r")) == ["bad", "src"]
        assert store.run("r").status == "cancelled"

    fan.release = None
    resumed = await fan.flow().aresume("r", checkpoint=db)
    assert resumed.outputs == {"total": 10}
    assert statuses(resumed) == {"src": "cached", "bad": "cached", "slow": "done", "join": "done"}
    assert fan.calls == Counter({"src": 1, "bad": 1, "slow": 2, "join": 1})
