"""Async function nodes the scheduler calls itself (``_Step.direct``): the function's coroutine awaited, or run
in place, without the executor's coroutine around it. Everything a run shows must be what the executor gives."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dagwright.execution.events import Event, RunResult
from dagwright.execution.policy import RetryPolicy
from dagwright.flow import Flow


async def plain(x: int) -> int:
    return x + 1


async def napping(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


class Pair(TypedDict):
    a: int
    b: int


async def pair(x: int) -> Pair:
    return {"a": x, "b": x}


class Point(BaseModel):
    x: int


async def point(x: int) -> Point:
    return Point(x=x)


def sync_step(x: int) -> int:
    return x + 1


def one_node(fn: Any, **configure: Any) -> Flow:
    flow = Flow("one")
    flow.add_function("f", fn)
    if configure:
        flow.configure("f", **configure)
    flow.input("x", int)
    return flow


def test_only_simple_async_functions_with_one_plain_output_are_called_directly() -> None:
    def direct(flow: Flow) -> bool:
        return flow._scheduler().plan.steps[flow._scheduler().plan.by_id["f"]].direct is not None

    assert direct(one_node(plain)) and direct(one_node(napping))
    assert not direct(one_node(pair))  # a TypedDict: one output per key
    assert not direct(one_node(point))  # a model dumped to JSON data on the way out
    assert not direct(one_node(sync_step))  # runs in a worker thread
    assert not direct(one_node(napping, retry=RetryPolicy(max_attempts=2, initial_delay=0)))
    assert not direct(one_node(napping, timeout=5))
    assert not direct(one_node(napping, cache=True))


def without_direct(flow: Flow) -> Flow:
    """``flow`` with every node run through its executor, as before direct calls."""
    for step in flow._scheduler().plan.steps:
        step.direct = None
    return flow


def comparable(result: RunResult) -> list[tuple[Any, ...]]:
    return [
        (r.node_id, r.status, r.outputs, r.attempts, r.error_type, r.error, r.skip_reason, r.error_location)
        for r in result.nodes.values()
    ]


@pytest.mark.parametrize("fn", [plain, napping], ids=["in place", "task"])
def test_a_wrong_output_fails_the_node_as_its_executor_does(fn: Any) -> None:
    async def wrong(x: int) -> int:
        if fn is napping:
            await asyncio.sleep(0)
        return "not an int"  # type: ignore[return-value]

    def build() -> Flow:
        flow = Flow("wrong")
        flow.add_function("a", fn)
        flow.add_function("b", wrong)
        flow.add_function("c", fn)
        flow.connect("a.output", "b.x")
        flow.connect("b.output", "c.x")
        flow.input("x", int)
        return flow

    direct, through_executor = build().run(x=1), without_direct(build()).run(x=1)
    assert comparable(direct) == comparable(through_executor)
    b = direct.nodes["b"]
    assert b.status == "failed" and b.error_type == "TypeError"
    assert "function node 'b' returned 'not an int' (str) for output 'output', declared int" in (b.error or "")
    assert direct.nodes["c"].status == "cancelled"


@pytest.mark.parametrize("fn_awaits", [False, True], ids=["in place", "task"])
def test_an_error_in_a_direct_node_names_the_line_that_raised_it(fn_awaits: bool) -> None:
    async def fails(x: int) -> int:
        if fn_awaits:
            await asyncio.sleep(0)
        raise ValueError("bad input")

    flow = one_node(fails)
    result = flow.run(x=1)
    record = result.nodes["f"]
    assert (record.status, record.error_type, record.error) == ("failed", "ValueError", "bad input")
    assert record.error_location is not None and "test_scheduler_direct.py" in record.error_location
    assert record.error_location.endswith("in fails")
    assert comparable(result) == comparable(without_direct(one_node(fails)).run(x=1))


def test_a_direct_node_gets_its_own_copy_of_a_list() -> None:
    async def source(x: int) -> list[int]:
        return [x]

    async def grows(values: list[int]) -> list[int]:
        values.append(99)
        return values

    async def grows_later(values: list[int]) -> list[int]:
        await asyncio.sleep(0)
        values.append(7)
        return values

    flow = Flow("copies")
    flow.add_function("s", source)
    flow.add_function("g", grows)
    flow.add_function("h", grows_later)
    flow.connect("s.output", "g.values")
    flow.connect("s.output", "h.values")
    flow.input("x", int)
    result = flow.run(x=1)
    assert result.nodes["s"].outputs == {"output": [1]}
    assert result.nodes["g"].outputs == {"output": [1, 99]}
    assert result.nodes["h"].outputs == {"output": [1, 7]}


def test_a_direct_node_whose_input_was_not_produced_is_skipped_and_a_default_still_applies() -> None:
    async def fails(x: int) -> int:
        raise RuntimeError("no")

    async def with_default(x: int, y: int = 5) -> int:
        return x + y

    flow = Flow("skips")
    flow.add_function("a", fails)
    flow.add_function("b", plain)
    flow.add_function("c", napping)
    flow.add_function("d", with_default)
    flow.connect("a.output", "b.x")
    flow.connect("a.output", "c.x")
    flow.input("x", int, to=["a.x", "d.x"])
    result = flow.run(x=1, failure_mode="continue")
    assert result.nodes["b"].status == result.nodes["c"].status == "skipped"
    assert result.nodes["b"].skip_reason == "input 'x' has no value: a.output failed"
    assert result.nodes["d"].outputs == {"output": 6}


def test_a_sleeping_direct_node_is_cancelled_by_a_failure_and_by_the_run_being_cancelled() -> None:
    async def sleeps(x: int) -> int:
        await asyncio.sleep(30)
        return x

    async def fails(x: int) -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("stop")

    flow = Flow("cancel")
    flow.add_function("slow", sleeps)
    flow.add_function("bad", fails)
    flow.input("x", int)
    result = flow.run(x=1)
    assert result.nodes["slow"].status == "cancelled" and result.nodes["bad"].status == "failed"

    alone = one_node(sleeps)
    events: list[Event] = []

    async def cancelled() -> None:
        run = asyncio.ensure_future(alone._scheduler().run({"x": 1}, None, events.append))
        await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(asyncio.wait_for(cancelled(), 10))
    heard = [(e.kind, e.node_id) for e in events]
    assert heard[:2] == [("run_started", None), ("node_started", "f")]
    assert ("node_finished", "f") not in heard and ("node_failed", "f") not in heard


def test_a_listener_hears_direct_nodes_as_it_hears_the_others() -> None:
    def events_of(flow: Flow) -> list[tuple[str, str | None, str | None]]:
        heard: list[Event] = []

        async def go() -> RunResult:
            return await flow._scheduler().run({"x": 0}, None, heard.append)

        assert asyncio.run(go()).success
        return [(e.kind, e.node_id, e.record.status if e.record is not None else None) for e in heard]

    def build() -> Flow:
        flow = Flow("heard")
        flow.add_function("a", plain)
        flow.add_function("b", napping)
        flow.connect("a.output", "b.x")
        flow.input("x", int)
        return flow

    heard = events_of(build())
    assert heard == events_of(without_direct(build()))
    assert [k for k, _, _ in heard] == ["run_started", *["node_started", "node_finished"] * 2, "run_finished"]


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(
        st.sampled_from(["plain", "napping", "fails", "wrong", "sleeps_fails", "timed"]), min_size=1, max_size=8
    ),
    links=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=12),
    mode=st.sampled_from(["fail_fast", "continue"]),
)
def test_direct_calls_and_executors_give_the_same_records(
    kinds: list[str], links: list[tuple[int, int]], mode: str
) -> None:
    async def fails(x: int) -> int:
        raise RuntimeError("fails")

    async def wrong(x: int) -> int:
        return "x"  # type: ignore[return-value]

    async def sleeps_fails(x: int) -> int:
        await asyncio.sleep(0)
        raise RuntimeError("fails later")

    # "timed" has a timeout, so its executor runs it: a task that ran a direct node goes on with it, and the reverse.
    bodies = {
        "plain": plain,
        "napping": napping,
        "fails": fails,
        "wrong": wrong,
        "sleeps_fails": sleeps_fails,
        "timed": napping,
    }
    edges = sorted({(min(a, b), max(a, b)) for a, b in links if a != b and max(a, b) < len(kinds)})

    def build() -> Flow:
        flow = Flow("random")
        fed: set[int] = set()
        for i, kind in enumerate(kinds):
            flow.add_function(f"n{i}", bodies[kind])
            if kind == "timed":
                flow.configure(f"n{i}", timeout=30)
        for a, b in edges:
            if b not in fed:  # one connection per input: x
                flow.connect(f"n{a}.output", f"n{b}.x")
                fed.add(b)
        flow.input("x", int, to=[f"n{i}.x" for i in range(len(kinds)) if i not in fed])
        return flow

    if mode == "fail_fast":
        # Which of two concurrent failures comes first depends on timing alone: compare single-failure runs only.
        failing = [k for k in kinds if k in ("fails", "wrong", "sleeps_fails")]
        if len(failing) > 1:
            return
    direct = build().run(x=1, failure_mode=mode)
    through_executor = without_direct(build()).run(x=1, failure_mode=mode)
    assert comparable(direct) == comparable(through_executor)
    assert direct.outputs == through_executor.outputs and direct.error == through_executor.error


async def wrong_past_three(x: int) -> int:
    return "too far" if x >= 3 else x + 1  # type: ignore[return-value]


async def sleepy_wrong(x: int) -> int:
    await asyncio.sleep(0)
    return "too far" if x >= 3 else x + 1  # type: ignore[return-value]


@pytest.mark.parametrize("fn", [wrong_past_three, sleepy_wrong])
def test_nodes_sharing_a_function_and_ports_fail_each_under_its_own_id(fn: Any) -> None:
    # The nodes a loop adds share one way of being called, worked out once; each failure still names its node.
    flow = Flow("shared")
    flow.input("x", int, to=["n0.x"])
    for i in range(6):
        flow.add_function(f"n{i}", fn)
        if i:
            flow.connect(f"n{i - 1}.output", f"n{i}.x")
    result = flow.run(x=0)
    assert [nid for nid, r in result.nodes.items() if r.status == "failed"] == ["n3"]
    assert "function node 'n3' returned 'too far'" in (result.nodes["n3"].error or "")
    assert [nid for nid, r in result.nodes.items() if r.status == "done"] == ["input:x", "n0", "n1", "n2"]
