"""Running flows on Dask: the same results as the built-in scheduler, on a real local cluster.

One ``LocalCluster`` (2 worker processes x 2 threads, 127.0.0.1) serves the whole module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster
from function_flows import async_unary, random_function_flows, unary
from hypothesis import given, settings
from pattern_cases import pattern_cases

from dagwright import BaseAgent, Flow, Kaizen, RetryPolicy
from dagwright.backends.dask.client import run_on_dask
from dagwright.backends.dask.lowering import build_graph, lower_plan
from dagwright.execution._recent import Recent
from dagwright.execution.events import RunResult
from dagwright.ops.cache import SqliteCache
from dagwright.testing import OpenAITestServer


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # a free port: never collide with a cluster already running
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster, set_as_default=False) as c:
        yield c


def statuses(result: RunResult) -> dict[str, str]:
    return {node_id: record.status for node_id, record in result.nodes.items()}


def assert_same(dask: RunResult, builtin: RunResult) -> None:
    assert dask.success == builtin.success, (dask.error, builtin.error)
    assert dask.outputs == builtin.outputs
    assert statuses(dask) == statuses(builtin)
    assert dask.error == builtin.error
    for node_id, record in builtin.nodes.items():
        mine = dask.nodes[node_id]
        assert (mine.outputs, mine.attempts, mine.skip_reason) == (record.outputs, record.attempts, record.skip_reason)
        assert (mine.usage, mine.model, mine.error_type) == (record.usage, record.model, record.error_type)


# ----------------------------------------------------------------------------- random DAGs


@settings(max_examples=15)
@given(random_function_flows(max_nodes=8, max_join=3, async_steps=True))
def test_random_dags_give_the_same_result_as_the_builtin_scheduler(
    client: Client, case: tuple[Flow, dict[str, int]]
) -> None:
    flow, values = case
    builtin = flow.run(values)
    dask = flow.run(values, backend="dask", client=client)
    assert builtin.success
    assert_same(dask, builtin)


def test_chains_of_sync_functions_fuse_and_agents_and_async_functions_break_them() -> None:
    flow = Flow("chain")
    flow.add_function("a", unary(1))
    flow.add_function("b", unary(2))
    flow.add_function("c", async_unary(3))
    flow.add_function("d", unary(4))
    flow.add_function("e", unary(5))
    flow.add_agent("f", BaseAgent(signature="x: int -> y: int", name="f"))
    flow.add_function("g", unary(6))
    for src, dst in (("a", "b.x"), ("b", "c.x"), ("c", "d.x"), ("d", "e.x"), ("e", "f.x")):
        flow.connect(f"{src}.output", dst)
    flow.connect("f.y", "g.x")
    flow.input("x", int, to=["a.x"])
    groups = lower_plan(flow._scheduler().plan).groups
    assert [[s.node.id for s in g.steps] for g in groups] == [["a", "b"], ["c"], ["d", "e"], ["f"], ["g"]]
    assert [g.key_name for g in groups] == ["b", "c", "e", "f", "g"]
    assert [len(g.steps) for g in lower_plan(flow._scheduler().plan, fuse=False).groups] == [1] * 7


# ----------------------------------------------------------------------------- keys and inputs


def plan_step(topic: str, plan: str) -> str:
    return f"{topic}/{plan}"


def test_a_string_input_equal_to_a_node_key_is_a_value_not_a_dependency(client: Client) -> None:
    flow = Flow("keys")
    flow.add_function("plan", plan_step)
    flow.add_function("echo", _join_like_text)
    flow.connect("plan.output", "echo.text")
    flow.input("topic")
    flow.input("plan", str, to=["plan.plan"])
    flow.input("word", str, to=["echo.word"])
    dsk, keys = build_graph(
        lower_plan(flow._scheduler().plan), {"topic": "plan", "plan": "plan", "word": "x"}, "r", "fail_fast"
    )
    assert [k.split("@")[0] for k in keys] == ["n:echo"]  # plan and echo fused; the key has the prefix
    # Inputs spelled like keys, including this run's own key, stay plain values.
    for word in ("plan", "n:plan", keys[0]):
        result = flow.run(topic="plan", plan="n:echo", word=word, backend="dask", client=client)
        assert result.success, result.error
        assert result.outputs == {"output": f"plan/n:echo+{word}"}
    assert set(dsk) == set(keys)


def _join_like_text(text: str, word: str) -> str:
    return f"{text}+{word}"


# ----------------------------------------------------------------------------- failures, retries, timeouts


def flaky() -> Callable[[int], int]:
    """A step failing its first call in each process, then answering."""
    calls: list[int] = []

    def step(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ConnectionError("transient")
        return x + 1

    return step


def broken(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


async def slow(x: int) -> int:
    await asyncio.sleep(5)
    return x


def failing_flow() -> Flow:
    flow = Flow("failing")
    flow.add_function("bad", broken)
    flow.add_function("after_bad", unary(1))
    flow.add_function("good", unary(2))
    flow.add_function("after_good", async_unary(3))
    flow.connect("bad.output", "after_bad.x")
    flow.connect("good.output", "after_good.x")
    flow.input("x", int, to=["bad.x", "good.x"])
    return flow


def test_a_failing_node_in_continue_mode_skips_only_its_descendants(client: Client) -> None:
    flow = failing_flow()
    builtin = flow.run(x=2, failure_mode="continue")
    dask = flow.run(x=2, failure_mode="continue", backend="dask", client=client)
    assert_same(dask, builtin)
    assert dask.error == "bad: ValueError: cannot handle 2"
    assert dask.nodes["after_bad"].skip_reason == "input 'x' has no value: bad.output failed"
    assert dask.outputs == {"after_good.output": (2 * 3 + 2) * 7 - 3}


def test_a_failing_node_in_fail_fast_mode_fails_the_run_and_cancels_its_descendants(client: Client) -> None:
    flow = failing_flow()
    dask = flow.run(x=2, backend="dask", client=client)
    assert dask.success is False
    assert dask.error == "bad: ValueError: cannot handle 2"
    assert dask.nodes["bad"].status == "failed"
    assert dask.nodes["after_bad"].status == "cancelled"
    assert dask.nodes["after_bad"].skip_reason == "cancelled: bad failed"
    assert dask.nodes["output:after_bad.output"].status == "cancelled"
    # The independent branch may finish before the failure is seen, or be cancelled: never skipped or failed.
    assert dask.nodes["good"].status in ("done", "cancelled")


def test_retry_and_timeout_policies_apply_on_workers(client: Client) -> None:
    flow = Flow("policies")
    flow.add_function("flaky", flaky())
    flow.add_function("slow", slow)
    flow.input("x", int)
    flow.configure("flaky", retry=RetryPolicy(max_attempts=3, initial_delay=0.0, retry_on=(ConnectionError,)))
    flow.configure("slow", timeout=0.2)
    dask = flow.run(x=1, failure_mode="continue", backend="dask", client=client)
    assert dask.nodes["flaky"].attempts == 2
    assert dask.nodes["flaky"].outputs == {"output": 2}
    assert dask.nodes["slow"].status == "failed"
    assert dask.error == "slow: TimeoutError: node 'slow' timed out after 0.2 s"
    assert_same(dask, Flow.run(flow, x=1, failure_mode="continue"))


def test_a_worker_that_cannot_import_a_function_names_the_module(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module exists on this side only: the workers were started before its directory was on sys.path.
    (tmp_path / "client_only_steps.py").write_text("def double(x: int) -> int:\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import client_only_steps  # type: ignore[import-not-found]

    try:
        flow = Flow("missing")
        flow.add_function("double", client_only_steps.double)
        flow.input("x", int)
        assert flow.run(x=4).outputs == {"output": 8}
        result = flow.run(x=4, backend="dask", client=client)
    finally:
        sys.modules.pop("client_only_steps", None)
    record = result.nodes["double"]
    assert result.success is False
    assert record.status == "failed"
    assert record.error_type == "ModuleNotFoundError"
    assert record.error is not None
    assert "cannot import module 'client_only_steps', needed by node 'double'" in record.error
    assert "importable on every worker" in record.error


def test_bad_run_options_are_refused_clearly(client: Client) -> None:
    flow = Flow("opts")
    flow.add_function("a", unary(0))
    flow.input("x", int)
    with pytest.raises(ValueError, match="max_concurrency is not supported with backend='dask'"):
        flow.run(x=1, backend="dask", client=client, max_concurrency=2)
    with pytest.raises(ValueError, match="backend must be 'builtin' or 'dask', got 'spark'"):
        flow.run(x=1, backend="spark")
    with pytest.raises(ValueError, match="client= is a run option of backend='dask'"):
        flow.run(x=1, client=client)
    with pytest.raises(ValueError, match="needs input"):
        run_on_dask(flow, {}, client=client)
    with pytest.raises(TypeError, match=r"client must be None, a scheduler address or a distributed\.Client"):
        run_on_dask(flow, {"x": 1}, client=42)


# ----------------------------------------------------------------------------- patterns and agents


@pytest.mark.parametrize(("name", "make", "inputs"), list(pattern_cases()), ids=[c[0] for c in pattern_cases()])
def test_every_pattern_gives_the_same_result_with_the_offline_model(
    client: Client, name: str, make: Callable[[Kaizen], Flow], inputs: dict[str, Any]
) -> None:
    flow = make(Kaizen())
    builtin = flow.run(inputs)
    assert builtin.success, builtin.error
    dask = flow.run(inputs, backend="dask", client=client)
    assert_same(dask, builtin)
    assert dask.usage.total == builtin.usage.total > 0
    if name == "router":
        assert sorted(s for s in statuses(dask).values() if s == "skipped") != []


def test_agents_call_a_loopback_server_from_the_workers(client: Client) -> None:
    with OpenAITestServer(latency=0.01) as server:
        config = {"base_url": server.base_url, "api_key": "test-key", "model": "gpt-4o-mini"}
        kaizen = Kaizen()
        flow = Flow("pair")
        flow.add_agent("a", kaizen.create_agent("a", signature="topic: str -> summary: str", config=config))
        flow.add_agent("b", kaizen.create_agent("b", signature="summary: str -> title: str", config=config))
        flow.connect("a.summary", "b.summary")
        flow.input("topic")
        builtin = flow.run(topic="tides")
        dask = flow.run(topic="tides", backend="dask", client=client)
    assert_same(dask, builtin)
    assert dask.nodes["a"].model == "gpt-4o-mini"
    assert dask.usage.cost == builtin.usage.cost > 0


def shout(summary: str) -> str:
    return summary.upper()


def test_a_flow_monitor_records_runs_on_dask_as_on_the_builtin_scheduler(client: Client) -> None:
    with OpenAITestServer(latency=0.01) as server:
        config = {"base_url": server.base_url, "api_key": "test-key", "model": "gpt-4o-mini"}
        flow = Flow("watched")
        flow.add_agent("a", Kaizen().create_agent("a", signature="topic: str -> summary: str", config=config))
        flow.add_function("shout", shout)
        flow.add_function("bad", broken)
        flow.add_function("after_bad", unary(1))
        flow.connect("a.summary", "shout.summary")
        flow.connect("bad.output", "after_bad.x")
        flow.input("topic")
        flow.input("x", int, to="bad.x")
        monitor = flow.monitor()
        seen: list[str] = []
        monitor.enable_real_time_tracking(lambda e: seen.append(f"{e.kind}:{e.node_id or ''}"))
        events: list[list[str]] = []

        def watched(**options: Any) -> RunResult:
            result = flow.run(topic="tides", x=1, failure_mode="continue", **options)
            events.append(list(seen))
            seen.clear()
            return result

        builtin = watched()
        dask_runs = [watched(backend="dask", client=client) for _ in range(2)]
    # What happens on the workers (node_started, node_retried) stays there; everything else arrives.
    told = [Counter(e for e in seen if not e.startswith(("node_started", "node_retried"))) for seen in events]
    assert told[1] == told[2] == told[0]
    assert told[0]["node_failed:bad"] == 1 and told[0]["node_skipped:after_bad"] == 1
    assert all(seen[0] == "run_started:" and seen[-1] == "run_finished:" for seen in events)

    runs = [builtin, *dask_runs]
    metrics = monitor.metrics()
    assert metrics["runs"]["count"] == 3 and metrics["runs"]["failures"] == 3
    assert metrics["runs"]["tokens"]["total"] == sum(r.usage.total for r in runs) > 0
    assert metrics["runs"]["cost"] == pytest.approx(sum(r.usage.cost for r in runs), abs=1e-15)
    assert set(metrics["nodes"]) == {"a", "shout", "bad"}
    assert metrics["nodes"]["bad"]["failures"] == 3 and metrics["nodes"]["a"]["llm_calls"] == 3
    assert [r.run_id for r in monitor.runs] == [r.run_id for r in runs]
    assert [r.duration_ms for r in monitor.node_history("a")] == [r.nodes["a"].duration_ms for r in runs]
    assert monitor.runs[1].error == "bad: ValueError: cannot handle 1"


def test_a_node_cache_travels_with_its_node(client: Client, tmp_path: Path) -> None:
    """A SqliteCache on a path the workers share is one cache; a memory cache becomes one per worker."""
    log = tmp_path / "calls.log"

    def double(x: int) -> int:
        with open(log, "a") as calls:
            calls.write(f"{x}\n")
        return 2 * x

    for cache, most_calls in ((SqliteCache(tmp_path / "cache.db"), 1), (True, 2)):
        log.write_text("")
        flow = Flow("cached")
        flow.add_function("double", double)
        flow.input("x", int)
        flow.configure("double", cache=cache)
        results = [flow.run(x=3, backend="dask", client=client) for _ in range(6)]
        assert [r.outputs for r in results] == [{"output": 6}] * 6
        assert 1 <= len(log.read_text().split()) <= most_calls


def test_a_worker_keeps_the_most_recently_used_plans() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") == 1  # now the most recent
    recent.put("c", 3)
    assert (recent.get("b"), recent.get("a"), recent.get("c")) == (None, 1, 3)
    recent.put("a", 4)
    recent.put("d", 5)
    assert (recent.get("c"), recent.get("a"), recent.get("d")) == (None, 4, 5)


# ----------------------------------------------------------------------------- command line


def test_cli_runs_on_the_given_scheduler(client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dagwright.cli import main

    script = tmp_path / "cli_flow.py"
    script.write_text(
        "from dagwright import Flow\n\n"
        "def shout(text: str) -> str:\n    return text.upper()\n\n"
        "flow = Flow('cli')\nflow.add_function('shout', shout)\nflow.input('text')\n"
    )
    code = main(["run", str(script), "-i", "text=hi", "--backend", "dask", "--scheduler", client.scheduler.address])
    assert code == 0
    assert capsys.readouterr().out == "output: HI\n"
    assert main(["run", str(script), "-i", "text=hi", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "use it with --backend dask" in capsys.readouterr().err


def test_cli_resumes_a_checkpointed_run_on_dask(
    client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run stored with --checkpoint on Dask fails at its second node; --resume on Dask runs only that node."""
    from dagwright.cli import main

    marker = tmp_path / "fixed"
    calls = tmp_path / "calls"
    script = tmp_path / "resume_flow.py"
    script.write_text(
        "import os\nfrom dagwright import Flow\n\n"
        f"MARKER, CALLS = {str(marker)!r}, {str(calls)!r}\n\n"
        "def first(text: str) -> str:\n"
        "    with open(CALLS, 'a') as f:\n        f.write('first\\n')\n"
        "    return text.upper()\n\n"
        "def second(text: str) -> str:\n"
        "    with open(CALLS, 'a') as f:\n        f.write('second\\n')\n"
        "    if not os.path.exists(MARKER):\n        raise RuntimeError('not yet')\n"
        "    return text + '!'\n\n"
        "flow = Flow('resume')\nflow.add_function('first', first)\nflow.add_function('second', second)\n"
        "flow.connect('first.output', 'second.text')\nflow.input('text')\n"
    )
    db = str(tmp_path / "runs.db")
    common = ["--backend", "dask", "--scheduler", client.scheduler.address, "--checkpoint", db]
    assert main(["run", str(script), "-i", "text=hi", "--json", *common]) == 1
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    marker.write_text("")
    assert main(["run", str(script), "--resume", run_id, "--json", *common]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert (resumed["run_id"], resumed["outputs"]) == (run_id, {"output": "HI!"})
    assert calls.read_text().split() == ["first", "second", "second"]


# ----------------------------------------------------------------------------- a worker lost mid-run


async def hold(x: int) -> int:
    await asyncio.sleep(1.5)
    return x


def test_a_worker_killed_mid_run_still_gives_every_output_once(client: Client) -> None:
    flow = Flow("resilient")
    for i in range(4):
        flow.add_function(f"h{i}", hold)
    flow.input("x", int)
    outcome: list[RunResult] = []
    runner = threading.Thread(target=lambda: outcome.append(flow.run(x=3, backend="dask", client=client)))
    runner.start()
    deadline = time.monotonic() + 10
    busy: list[str] = []
    while not busy and time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items() if keys]
        time.sleep(0.05)
    assert busy, "no task started on the cluster"
    pids = client.run(os.getpid, workers=[busy[0]])
    os.kill(pids[busy[0]], signal.SIGKILL)
    runner.join(30)
    assert not runner.is_alive()
    (result,) = outcome
    assert result.success, result.error
    assert result.outputs == {"h0.output": 3, "h1.output": 3, "h2.output": 3, "h3.output": 3}
    assert statuses(result) == {"input:x": "done"} | {f"h{i}": "done" for i in range(4)} | {
        f"output:h{i}.output": "done" for i in range(4)
    }
    client.wait_for_workers(2, timeout=30)  # the nanny restarts the killed worker for the tests after this one


# ----------------------------------------------------------------------------- checkpoints across back ends


def test_a_run_checkpointed_on_dask_resumes_on_the_builtin_scheduler_and_back(client: Client, tmp_path: Path) -> None:
    gate = tmp_path / "open"
    flow = Flow("resumable")
    flow.add_function("first", unary(1))
    flow.add_function("second", _guarded(str(gate)))
    flow.add_function("third", unary(3))
    flow.add_function("fourth", async_unary(4))
    flow.connect("first.output", "second.x")
    flow.connect("second.output", "third.x")
    flow.connect("third.output", "fourth.x")
    flow.input("x", int, to=["first.x"])
    db = str(tmp_path / "runs.db")
    failed = flow.run(x=2, backend="dask", client=client, checkpoint=db, failure_mode="continue")
    assert failed.success is False
    assert statuses(failed)["first"] == "done"
    gate.write_text("")
    resumed = flow.resume(failed.run_id, checkpoint=db)
    assert resumed.success, resumed.error
    chain = ("first", "second", "third", "fourth")
    assert [resumed.nodes[n].status for n in chain] == ["cached", "done", "done", "done"]
    again = run_on_dask(flow, {"x": 2}, client=client, run_id=failed.run_id, checkpoint=_store(db), resume=True)
    assert [again.nodes[n].status for n in chain] == ["cached"] * 4
    assert again.outputs == resumed.outputs == flow.run(x=2).outputs


def _store(path: str) -> Any:
    from dagwright.ops.checkpoint import CheckpointStore

    return CheckpointStore(path)


def _guarded(gate: str) -> Callable[[int], int]:
    def second(x: int) -> int:
        if not os.path.exists(gate):
            raise RuntimeError("the gate is closed")
        return x * 5

    return second


def test_values_given_to_flow_inputs_are_checked_on_dask_too(client: Client) -> None:
    flow = Flow("typed")
    flow.add_function("double", unary(2))
    flow.input("x", int)
    with pytest.raises(ValueError, match="input 'x' is typed int, and True is not an int"):
        flow.run(x=True, backend="dask", client=client)
