"""Nodes the scheduler runs without a task of their own: async functions that await nothing, run in place,
and the next node of a chain, run by the task of the node before it. Same records, events and failures."""

from __future__ import annotations

import asyncio
import dis
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright.backends.builtin.plan import _SUSPENDING_OPS, never_suspends
from dagwright.backends.builtin.scheduler import INLINE_BUDGET
from dagwright.execution.events import Event
from dagwright.execution.policy import NodePolicy, RetryPolicy
from dagwright.flow import Flow


async def plain(x: int) -> int:
    return x + 1


async def napping(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


async def in_context(x: int) -> int:
    async with asyncio.Lock():
        return x


def sync_step(x: int) -> int:
    return x + 1


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x


def test_only_async_functions_without_any_await_count_as_never_suspending() -> None:
    assert never_suspends(plain)
    assert not never_suspends(napping)
    assert not never_suspends(in_context)
    assert not never_suspends(sync_step)
    assert not never_suspends(AsyncCallable())
    assert not never_suspends(None)


# Statements of an async function body: some suspend, some only look as if they might, and the long ones push
# later instructions past 256 constants and names (EXTENDED_ARG before their opcodes).
_STATEMENTS = [
    "x = x + 1",
    "await asyncio.sleep(0)",
    "async with asyncio.Lock():\n    x = x + 1",
    "async for _ in agen():\n    pass",
    "[y async for y in agen()]",
    "lambda: x",
    "def inner():\n    yield x",
    "x = [" + ", ".join(f"'c{i}'" for i in range(300)) + "]",
    "x = {" + ", ".join(f"'k{i}': v{i}" for i in range(300)) + "}",
    "if x:\n    await asyncio.sleep(0)",
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_STATEMENTS), max_size=6))
def test_never_suspends_reads_the_opcodes_as_the_disassembler_does(body: list[str]) -> None:
    source = "async def fn(x):\n" + textwrap.indent("\n".join([*body, "return x"]), "    ")
    namespace: dict[str, Any] = {"asyncio": asyncio, **{f"v{i}": i for i in range(300)}}
    exec(compile(source, "<generated>", "exec"), namespace)
    fn = namespace["fn"]
    by_disassembly = not any(ins.opname in _SUSPENDING_OPS for ins in dis.get_instructions(fn.__code__))
    assert never_suspends(fn) == by_disassembly
    assert by_disassembly == (not any("await" in s or "async" in s for s in body))


def chain(n: int, fn: Any = plain) -> Flow:
    flow = Flow(f"chain{n}")
    flow.add_function("n0", fn)
    for i in range(1, n):
        flow.add_function(f"n{i}", fn)
        flow.connect(f"n{i - 1}.output", f"n{i}.x")
    flow.input("x", int)
    flow.output("last", f"n{n - 1}.output")
    return flow


def test_in_place_nodes_record_and_announce_as_task_nodes_do() -> None:
    inline, tasks = chain(5), chain(5, napping)
    for flow in (inline, tasks):
        events: list[Event] = []

        async def go(flow: Flow = flow, events: list[Event] = events) -> Any:
            return await flow._scheduler().run({"x": 0}, None, events.append)

        result = asyncio.run(go())
        assert result.success and result.outputs == {"last": 5}
        assert [r.status for r in result.nodes.values()] == ["done"] * 7
        assert all(r.attempts == 1 and r.duration_ms is not None for r in result.nodes.values() if r.kind == "function")
        started = [e for e in events if e.kind == "node_started"]
        finished = [e for e in events if e.kind == "node_finished"]
        assert [e.node_id for e in started] == [e.node_id for e in finished] == [f"n{i}" for i in range(5)]
        # The started event holds a snapshot: the node was running then, whatever it became since.
        assert {e.record.status for e in started if e.record is not None} == {"running"}
    assert all(s.inline for s in inline._scheduler().plan.steps if s.kind == "function")
    assert not any(s.inline for s in tasks._scheduler().plan.steps)


def test_a_long_run_of_in_place_nodes_lets_other_tasks_in() -> None:
    n = 3 * INLINE_BUDGET
    flow = chain(n)
    done: list[str] = []
    seen: list[int] = []

    def listen(event: Event) -> None:
        if event.kind == "node_finished":
            done.append(event.node_id or "")

    async def meanwhile() -> None:
        await asyncio.sleep(0)
        seen.append(len(done))

    async def go() -> Any:
        other = asyncio.ensure_future(meanwhile())
        result = await flow._scheduler().run({"x": 0}, None, listen)
        await other
        return result

    result = asyncio.run(go())
    assert result.success and result.outputs == {"last": n}
    assert seen and 0 < seen[0] < n


def test_an_in_place_node_that_fails_cancels_the_run_and_says_why() -> None:
    async def bad(x: int) -> int:
        return "not an int"  # type: ignore[return-value]

    flow = Flow("bad")
    flow.add_function("a", plain)
    flow.add_function("b", bad)
    flow.add_function("c", napping)
    flow.connect("a.output", "b.x")
    flow.connect("b.output", "c.x")
    flow.input("x", int)
    flow.output("out", "c.output")
    result = flow.run(x=1)
    assert not result.success
    b = result.nodes["b"]
    assert b.status == "failed" and b.error_type == "TypeError" and "'b'" in (b.error or "")
    assert result.nodes["c"].status == "cancelled"


def test_a_node_handed_over_before_a_failure_elsewhere_never_runs() -> None:
    # a's task is handed b (it awaits, so it needs a task); c, in place, fails in the same step and cancels.
    ran: list[str] = []

    async def head(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async def follower(x: int) -> int:
        ran.append("b")
        await asyncio.sleep(0)
        return x

    async def failing(x: int) -> int:
        raise RuntimeError("c fails")

    flow = Flow("handoff")
    flow.add_function("a", head)
    flow.add_function("b", follower)
    flow.add_function("c", failing)
    flow.connect("a.output", "b.x")
    flow.connect("a.output", "c.x")
    flow.input("x", int)
    result = flow.run(x=1)
    assert not result.success and result.nodes["c"].status == "failed"
    assert result.nodes["b"].status == "cancelled" and ran == []


@pytest.mark.parametrize(
    "policy",
    [NodePolicy(retry=RetryPolicy(max_attempts=3, initial_delay=0)), NodePolicy(timeout=5)],
    ids=["retries", "timeout"],
)
def test_a_node_with_retries_or_a_timeout_keeps_its_task(policy: NodePolicy) -> None:
    calls: list[int] = []

    async def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 2 and policy.retry.max_attempts > 1:
            raise RuntimeError("once")
        return x

    flow = Flow("policies")
    flow.add_function("f", flaky)
    flow.configure("f", retry=policy.retry, timeout=policy.timeout)
    flow.input("x", int)
    flow.output("out", "f.output")
    assert not any(s.inline for s in flow._scheduler().plan.steps)
    result = flow.run(x=3)
    assert result.success and result.outputs == {"out": 3}
    assert result.nodes["f"].attempts == len(calls)


def test_a_record_snapshot_copies_every_field() -> None:
    import copy
    import dataclasses

    from dagwright.execution.events import NodeRecord, Usage

    values: dict[str, Any] = {
        "node_id": "n",
        "kind": "agent",
        "status": "failed",
        "outputs": {"a": 1},
        "attempts": 3,
        "started_at": 1.0,
        "ended_at": 2.0,
        "error": "boom",
        "error_type": "RuntimeError",
        "usage": Usage(1, 2, 0.5, False, 1),
        "model": "m",
        "skip_reason": "why",
        "error_location": "f.py:1 in g",
        "tool_calls": [{"name": "t"}],
    }
    assert set(values) == {f.name for f in dataclasses.fields(NodeRecord)}
    record = NodeRecord(**values)
    snapshot = copy.copy(record)
    assert snapshot == record and snapshot is not record
    record.status = "done"
    assert snapshot.status == "failed"
