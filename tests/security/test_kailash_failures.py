"""A failed node on Kailash: the other branches keep their work, as on the built-in scheduler.

The defect: on ``flow.run_kailash()`` / ``run_on_kailash()`` one failed node ended the whole run,
so an independent branch that had finished, or would have, came back ``cancelled`` with its
outputs dropped (``outputs == {}``), while the built-in scheduler and Dask keep it. Kailash
itself offers no way to go on (``AsyncLocalRuntime`` ends the run at any failed node,
``LocalRuntime`` at one with dependents), so during these runs a dagwright node reports its
failure as data; ``failure_mode`` then means what it means on the built-in scheduler.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from kailash.runtime.local import LocalRuntime
from kailash.sdk_exceptions import RuntimeExecutionError

from dagwright import Flow
from dagwright.backends.kailash.runtime import FAST_SETTINGS, async_runtime, lowering_of, run_on_kailash
from dagwright.execution.events import RunResult

MODES = ("fail_fast", "continue")


pytestmark = pytest.mark.usefixtures("quiet_kailash")


def inc(x: int) -> int:
    return x + 1


def two_branches() -> Flow:
    """``x -> a -> b -> good`` beside ``x -> pre -> boom -> after -> bad``; ``boom`` raises.

    ``boom`` waits until ``b`` has run, and a little more, so that in every runtime the good branch
    has finished before the failure: ``fail_fast`` then keeps it ``done`` everywhere, and the runs
    compare exactly. (``LocalRuntime`` runs the nodes one at a time in the order a, pre, b, boom,
    after; the other two run a and pre, then b and boom, at once.)
    """
    b_ran = threading.Event()

    def b(x: int) -> int:
        b_ran.set()
        return x * 10

    def boom(x: int) -> int:
        b_ran.wait(10)
        time.sleep(0.1)
        raise ValueError(f"boom on {x}")

    flow = Flow("two_branches")
    flow.add_function("a", inc)
    flow.add_function("b", b)
    flow.add_function("pre", inc)
    flow.add_function("boom", boom)
    flow.add_function("after", inc)
    flow.input("x", to=["a.x", "pre.x"])
    flow.connect("a.output", "b.x")
    flow.connect("pre.output", "boom.x")
    flow.connect("boom.output", "after.x")
    flow.output("good", "b.output")
    flow.output("bad", "after.output")
    return flow


def run_on(where: str, flow: Flow, mode: str, **inputs: Any) -> RunResult:
    if where == "builtin":
        return flow.run(failure_mode=mode, **inputs)
    return flow.run_kailash(runtime=where, failure_mode=mode, **inputs)


def summary(result: RunResult) -> dict[str, tuple[str, str | None, dict[str, Any]]]:
    """Each node's status, skip reason and outputs: what must match between runtimes."""
    return {node_id: (r.status, r.skip_reason, r.outputs) for node_id, r in result.nodes.items()}


EXPECTED = {
    "fail_fast": {
        "after": ("cancelled", "cancelled: boom failed"),
        "output:bad": ("cancelled", "cancelled: boom failed"),
    },
    "continue": {
        "after": ("skipped", "input 'x' has no value: boom.output failed"),
        "output:bad": ("skipped", "input 'bad' has no value: after.output skipped"),
    },
}


@pytest.mark.parametrize("mode", MODES)
def test_an_independent_branch_keeps_its_outputs_on_every_runtime(mode: str) -> None:
    results = {where: run_on(where, two_branches(), mode, x=1) for where in ("builtin", "local", "async")}
    builtin = results["builtin"]
    # The built-in scheduler's own verdict, the reference.
    assert builtin.outputs == {"good": 20}
    assert {n: r.status for n, r in builtin.nodes.items() if n not in EXPECTED[mode]} == {
        "input:x": "done",
        "a": "done",
        "b": "done",
        "pre": "done",
        "boom": "failed",
        "output:good": "done",
    }
    assert {n: (builtin.nodes[n].status, builtin.nodes[n].skip_reason) for n in EXPECTED[mode]} == EXPECTED[mode]
    for where, result in results.items():
        assert result.success is False, where
        assert result.error == "boom: ValueError: boom on 2", where
        assert result.outputs == builtin.outputs, where
        assert summary(result) == summary(builtin), where
        failed = result.nodes["boom"]
        assert (failed.error_type, failed.error, failed.attempts) == ("ValueError", "boom on 2", 1), where


def in_flight_flow(slow_seconds: float) -> tuple[Flow, threading.Event]:
    """``slow`` (an async function) runs while ``boom`` fails; the event says ``slow`` saw a cancellation."""
    cancelled = threading.Event()

    async def slow(x: int) -> int:
        try:
            await asyncio.sleep(slow_seconds)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x + 100

    async def boom(x: int) -> int:
        await asyncio.sleep(0.05)
        raise ValueError(f"boom on {x}")

    flow = Flow("in_flight")
    flow.add_function("slow", slow)
    flow.add_function("boom", boom)
    flow.input("x", to=["slow.x", "boom.x"])
    flow.output("slow", "slow.output")
    flow.output("bad", "boom.output")
    return flow, cancelled


def test_fail_fast_cancels_a_node_in_flight_on_async_local_runtime() -> None:
    # AsyncLocalRuntime used to give up on the run and leave `slow` running behind it, its record to
    # change after the RunResult was returned; now it is cancelled, as the built-in scheduler does.
    for where in ("builtin", "async"):
        flow, cancelled = in_flight_flow(slow_seconds=10)
        started = time.monotonic()
        result = run_on(where, flow, "fail_fast", x=1)
        assert time.monotonic() - started < 5, where
        assert cancelled.is_set(), where
        assert result.outputs == {}, where
        assert {n: r.status for n, r in result.nodes.items()} == {
            "input:x": "done",
            "slow": "cancelled",
            "boom": "failed",
            "output:slow": "cancelled",
            "output:bad": "cancelled",
        }, where
        assert result.error == "boom: ValueError: boom on 1", where


def test_continue_lets_a_node_in_flight_finish_on_async_local_runtime() -> None:
    results = []
    for where in ("builtin", "async"):
        flow, cancelled = in_flight_flow(slow_seconds=0.3)
        results.append(run_on(where, flow, "continue", x=1))
        assert not cancelled.is_set(), where
    builtin, kailash = results
    assert builtin.outputs == kailash.outputs == {"slow": 101}
    assert summary(kailash) == summary(builtin)
    assert kailash.nodes["output:bad"].skip_reason == "input 'bad' has no value: boom.output failed"
    assert kailash.error == "boom: ValueError: boom on 1"


def test_run_on_kailash_takes_failure_mode_with_a_runtime_instance() -> None:
    runtime = async_runtime()
    try:
        result = run_on_kailash(two_branches(), {"x": 1}, runtime=runtime, failure_mode="continue")
    finally:
        runtime.close()
    assert result.outputs == {"good": 20}
    assert (result.nodes["after"].status, result.nodes["boom"].status) == ("skipped", "failed")
    assert result.error == "boom: ValueError: boom on 2"


def test_failure_mode_is_checked_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="failure_mode must be 'fail_fast' or 'continue', got 'ignore'"):
        two_branches().run_kailash(x=1, failure_mode="ignore")


def test_the_workflow_run_by_kailash_directly_still_fails_as_kailash_makes_it() -> None:
    # The failure-as-data guard applies inside run_on_kailash only: the same workflow object,
    # executed by Kailash itself afterwards, stops at the failed node as Kailash decides.
    flow = two_branches()
    assert flow.run_kailash(x=1, failure_mode="continue").outputs == {"good": 20}
    workflow = lowering_of(flow).cached_workflow()
    parameters = flow.kailash_parameters(x=1)
    with pytest.raises(RuntimeExecutionError, match="boom on 2"), LocalRuntime(**FAST_SETTINGS) as runtime:
        runtime.execute(workflow, parameters=parameters)
