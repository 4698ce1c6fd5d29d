"""The built-in asyncio scheduler: ordering, concurrency, data passing, retries, timeouts, failures and events.

Most tests run twice, through ``flow.run(...)`` and through ``await flow.arun(...)``.
Orderings are asserted from sequence numbers recorded by the node bodies, and
concurrency from counters and barriers inside them, never from wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import subprocess
import sys
import threading
from typing import Any, TypedDict

import pytest
from helpers_runtime import (
    MODES,
    InFlight,
    Trace,
    registered_kind,
    restore_ctrl_c,
    run_flow,
    run_in_thread,
    stream_events,
)

from dagwright.backends.builtin.runner import Runtime
from dagwright.compiler.ir import FrozenDict, Graph, Node, Port
from dagwright.compiler.registry import FunctionRegistry, UnresolvedReferenceError
from dagwright.compiler.types import INT, list_of
from dagwright.execution.errors import RunFailedError
from dagwright.execution.events import Event, RunResult
from dagwright.execution.executor import Executor, NodeContext
from dagwright.execution.policy import NodePolicy, RetryPolicy, RunOptions
from dagwright.flow import Flow

mode_param = pytest.mark.parametrize("mode", MODES)

# Long enough to never be reached in a passing test, short enough that a broken scheduler fails the test
# instead of hanging the suite.
GUARD = 5.0


def kinds(events: list[Event], node: str) -> list[str]:
    return [e.kind for e in events if e.node_id == node]


# ----------------------------------------------------------------------------- module-level functions
# (a graph loaded from JSON binds its functions by reference, so these live at module level)


def add(a: int, b: int = 10) -> int:
    return a + b


async def double(x: int) -> int:
    return x * 2


def arithmetic_flow() -> Flow:
    flow = Flow("arith")
    flow.add_function("add", add)
    flow.add_function("double", double)
    flow.connect("add.output", "double.x")
    flow.input("a", int)
    flow.output("result", "double.output")
    return flow


# ----------------------------------------------------------------------------- ordering and concurrency


@mode_param
def test_a_node_starts_as_soon_as_its_inputs_are_ready(mode: str) -> None:
    # `slow` only finishes once the end of the fast chain has run: a level-by-level scheduler,
    # which would hold f2 until every level-0 node (slow included) is done, deadlocks into a timeout.
    trace = Trace()
    fast_done = asyncio.Event()

    async def slow(x: int) -> int:
        trace.start("slow")
        await asyncio.wait_for(fast_done.wait(), GUARD)
        trace.end("slow")
        return x

    async def f1(x: int) -> int:
        trace.start("f1")
        trace.end("f1")
        return x + 1

    def f2(y: int) -> int:
        trace.start("f2")
        trace.end("f2")
        return y + 1

    async def f3(z: int) -> int:
        trace.start("f3")
        fast_done.set()
        trace.end("f3")
        return z + 1

    def join(a: int, b: int) -> int:
        trace.start("join")
        trace.end("join")
        return a * 100 + b

    flow = Flow("ready-queue")
    for name, fn in (("slow", slow), ("f1", f1), ("f2", f2), ("f3", f3), ("join", join)):
        flow.add_function(name, fn)
    flow.connect("f1.output", "f2.y").connect("f2.output", "f3.z")
    flow.connect("slow.output", "join.a").connect("f3.output", "join.b")
    flow.input("x", int)
    flow.output("total", "join.output")

    result = run_flow(mode, flow, x=1)

    assert result.success, result.error
    assert result.outputs == {"total": 104}
    seq = trace.seq
    assert seq("start", "f2") < seq("end", "slow")
    assert seq("end", "f3") < seq("end", "slow")
    assert seq("end", "f1") < seq("start", "f2") < seq("end", "f2") < seq("start", "f3")
    assert seq("start", "join") > max(seq("end", "slow"), seq("end", "f3"))


@mode_param
def test_independent_async_nodes_run_concurrently(mode: str) -> None:
    width = 5
    inflight = InFlight()
    barrier = asyncio.Barrier(width)  # passes only when all of them are in flight at once

    flow = Flow("fan")
    for i in range(width):

        async def node(x: int, i: int = i) -> int:
            with inflight.inside():
                await asyncio.wait_for(barrier.wait(), GUARD)
            return x + i

        flow.add_function(f"n{i}", node)
        flow.output(f"o{i}", f"n{i}.output")
    flow.input("x", int)

    result = run_flow(mode, flow, x=10)

    assert result.success, result.error
    assert result.outputs == {f"o{i}": 10 + i for i in range(width)}
    assert inflight.most == width


@mode_param
def test_max_concurrency_one_serializes_async_nodes(mode: str) -> None:
    inflight = InFlight()
    trace = Trace()
    flow = Flow("serial")
    for i in range(4):

        async def node(x: int, i: int = i) -> int:
            with inflight.inside():
                trace.start(f"n{i}")
                await asyncio.sleep(0.002)
                trace.end(f"n{i}")
            return x * i

        flow.add_function(f"n{i}", node)
        flow.output(f"o{i}", f"n{i}.output")
    flow.input("x", int)

    result = run_flow(mode, flow, x=3, max_concurrency=1)

    assert result.success, result.error
    assert result.outputs == {"o0": 0, "o1": 3, "o2": 6, "o3": 9}
    assert inflight.entered == 4
    assert inflight.most == 1
    order = trace.order()
    # Serialized: every start is directly followed by the end of the same node.
    assert [m.split(":")[1] for m in order[0::2]] == [m.split(":")[1] for m in order[1::2]]


@mode_param
def test_max_concurrency_bounds_sync_nodes(mode: str) -> None:
    inflight = InFlight()
    pair = threading.Barrier(2, timeout=GUARD)  # two must be in flight together to get through

    def node(x: int) -> int:
        with inflight.inside():
            pair.wait()
        return x

    flow = Flow("bounded")
    for i in range(4):
        flow.add_function(f"n{i}", node)
        flow.output(f"o{i}", f"n{i}.output")
    flow.input("x", int)

    result = run_flow(mode, flow, x=7, max_concurrency=2)

    assert result.success, result.error
    assert result.outputs == {"o0": 7, "o1": 7, "o2": 7, "o3": 7}
    assert inflight.entered == 4
    assert inflight.most == 2


@mode_param
def test_sync_functions_run_in_worker_threads(mode: str) -> None:
    seen: dict[str, int] = {}

    async def on_loop(x: int) -> int:
        seen["loop"] = threading.get_ident()
        return x + 1

    def in_worker(y: int) -> int:
        seen["worker"] = threading.get_ident()
        return y + 1

    flow = Flow("threads")
    flow.add_function("on_loop", on_loop)
    flow.add_function("in_worker", in_worker)
    flow.connect("on_loop.output", "in_worker.y")
    flow.input("x", int)

    result = run_flow(mode, flow, x=1)

    assert result.success, result.error
    assert result.outputs == {"output": 3}
    assert seen["worker"] != seen["loop"]
    caller = threading.get_ident()
    # Both run the loop in the caller's thread: arun() on the caller's loop, run() on the thread's own loop.
    assert seen["loop"] == caller


_INTERRUPTED_RUN = """
import asyncio, os, signal, threading
from dagwright import Flow

finished = []

async def slow(x: int) -> int:
    await asyncio.sleep(0.5)
    finished.append(x)
    return x

flow = Flow("interrupted")
flow.add_function("a", slow)
flow.add_function("b", slow)
flow.input("x", int, to=["a.x", "b.x"])
threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    flow.run(x=1)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted", finished)
result = flow.run(x=2)
print("again", result.success, finished)
"""


def test_ctrl_c_during_a_sync_run_leaves_no_node_behind() -> None:
    """Ctrl-C in flow.run() raises KeyboardInterrupt; the run's nodes do not wake up in the next run."""
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_RUN], capture_output=True, text=True, timeout=60, preexec_fn=restore_ctrl_c
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted []", "again True [2, 2]"]


@mode_param
def test_a_blocking_sync_node_does_not_block_async_nodes(mode: str) -> None:
    blocker_started = threading.Event()
    released = threading.Event()

    def blocker(x: int) -> bool:
        blocker_started.set()
        return released.wait(GUARD)  # False only if nothing else could run meanwhile

    async def releaser(x: int) -> int:
        for _ in range(int(GUARD / 0.001)):
            if blocker_started.is_set():
                break
            await asyncio.sleep(0.001)
        released.set()
        return x

    flow = Flow("nonblocking")
    flow.add_function("blocker", blocker)
    flow.add_function("releaser", releaser)
    flow.input("x", int)
    flow.output("unblocked", "blocker.output")
    flow.output("x", "releaser.output")

    result = run_flow(mode, flow, x=4)

    assert result.success, result.error
    assert result.outputs == {"unblocked": True, "x": 4}


# ----------------------------------------------------------------------------- data passing


@mode_param
def test_collect_port_receives_values_in_edge_order(mode: str) -> None:
    a_done = asyncio.Event()
    b_done = asyncio.Event()

    # Completion order is forced to a, b, c; the edges are declared c, a, b.
    async def src_a() -> int:
        a_done.set()
        return 1

    async def src_b() -> int:
        await asyncio.wait_for(a_done.wait(), GUARD)
        b_done.set()
        return 2

    async def src_c() -> int:
        await asyncio.wait_for(b_done.wait(), GUARD)
        return 3

    def gather(items: list[int]) -> list[int]:
        return items

    flow = Flow("collect")
    for name, fn in (("a", src_a), ("b", src_b), ("c", src_c)):
        flow.add_function(name, fn)
    flow.add_node(
        Node(
            "gather",
            "function",
            (Port("items", list_of(INT), collect=True),),
            (Port("output", list_of(INT)),),
            FrozenDict({"function": "test_scheduler:gather"}),
        ),
        gather,
    )
    for src in ("c", "a", "b"):
        flow.connect(f"{src}.output", "gather.items")
    flow.output("items", "gather.output")

    result = run_flow(mode, flow)

    assert result.success, result.error
    assert result.outputs == {"items": [3, 1, 2]}


class _Unit:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol


METRE = _Unit("m")  # not JSON data: a port default cannot hold it


@mode_param
def test_unconnected_optional_inputs_take_their_defaults(mode: str) -> None:
    def scale(x: int, factor: int = 10, tags: list[str] = ["n"], unit: _Unit = METRE) -> str:  # noqa: B006
        # A JSON default reaches the function as a fresh copy each run; a non-JSON one stays the function's own.
        tags.append(str(x * factor))
        return f"{'/'.join(tags)}{unit.symbol}"

    flow = Flow("defaults")
    flow.add_function("scale", scale)
    flow.input("x", int)

    first = run_flow(mode, flow, x=2)
    second = run_flow(mode, flow, x=3)

    assert first.outputs == {"output": "n/20m"}
    assert second.outputs == {"output": "n/30m"}


class Parts(TypedDict):
    low: int
    high: int


def _scale(x: int, factor: int) -> int:
    return x * factor


class _Offset:
    """A callable object: its __call__'s annotations give the ports."""

    def __init__(self, by: int) -> None:
        self.by = by

    def __call__(self, x: int) -> int:
        return x + self.by


class _AsyncOffset(_Offset):
    async def __call__(self, x: int) -> int:  # type: ignore[override]
        await asyncio.sleep(0)
        return x + self.by


@mode_param
def test_partials_and_callable_objects_are_nodes(mode: str) -> None:
    flow = Flow("callables")
    flow.add_function("triple", functools.partial(_scale, factor=3))
    flow.add_function("offset", _Offset(10))
    flow.add_function("later", _AsyncOffset(100))
    flow.connect("triple.output", "offset.x")
    flow.connect("offset.output", "later.x")
    flow.input("x", int, to="triple.x")
    graph = flow.compile()
    assert [(p.name, str(p.type), p.required) for p in graph.node("triple").inputs] == [
        ("x", "int", True),
        ("factor", "int", False),  # bound by the partial: its value is the default
    ]
    assert graph.node("later").config.get("async") is True
    result = run_flow(mode, flow, x=2)
    assert result.success, result.error
    assert result.outputs == {"output": 116}


def test_a_generator_function_is_refused_as_a_node() -> None:
    def numbers(n: int) -> Any:
        yield from range(n)

    async def stream(n: int) -> Any:
        yield n

    for fn in (numbers, stream):
        with pytest.raises(TypeError, match="is a generator function; a node returns its outputs once"):
            Flow("g").add_function("g", fn)


@mode_param
def test_typeddict_function_gives_one_output_per_key(mode: str) -> None:
    def split(x: int) -> Parts:
        return {"low": x % 10, "high": x // 10}

    def negate(v: int) -> int:
        return -v

    flow = Flow("typed-dict")
    flow.add_function("split", split)
    flow.add_function("negate", negate)
    flow.connect("split.high", "negate.v")
    flow.input("x", int)
    flow.output("low", "split.low")
    flow.output("minus_high", "negate.output")

    result = run_flow(mode, flow, x=42)

    assert result.success, result.error
    assert result.outputs == {"low": 2, "minus_high": -4}
    assert result.nodes["split"].outputs == {"low": 2, "high": 4}


@mode_param
def test_a_dict_missing_a_key_fails_that_node_clearly(mode: str) -> None:
    def split(x: int) -> Parts:
        return {"low": x}  # type: ignore[typeddict-item]

    def negate(v: int) -> int:
        return -v

    flow = Flow("missing-key")
    flow.add_function("split", split)
    flow.add_function("negate", negate)
    flow.connect("split.high", "negate.v")
    flow.input("x", int)
    flow.output("low", "split.low")

    result = run_flow(mode, flow, x=1)

    record = result.nodes["split"]
    assert not result.success
    assert (record.status, record.error_type) == ("failed", "TypeError")
    assert record.error == "function node 'split' returned no value for 'high'"
    assert result.error == "split: TypeError: function node 'split' returned no value for 'high'"
    assert result.nodes["negate"].status == "cancelled"
    assert result.outputs == {}


# ----------------------------------------------------------------------------- retry policy


def test_retry_delay_follows_exponential_backoff_capped_by_max_delay() -> None:
    policy = RetryPolicy(max_attempts=6, initial_delay=0.5, backoff=2.0, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    flat = RetryPolicy(initial_delay=0.25, backoff=1.0, jitter=0.0)
    assert [flat.delay(n) for n in (1, 2, 5)] == [0.25, 0.25, 0.25]
    assert RetryPolicy(initial_delay=0.0, jitter=0.5).delay(3) == 0.0


def test_retry_delay_jitter_spreads_around_the_base() -> None:
    policy = RetryPolicy(initial_delay=1.0, backoff=3.0, jitter=0.2)
    expected_rng = random.Random(7)
    got = [policy.delay(n, random.Random(7)) for n in (1, 2)]
    spread = expected_rng.uniform(-0.2, 0.2)
    assert got[0] == 1.0 * (1 + spread)
    assert got[1] == 3.0 * (1 + spread)
    rng = random.Random(1)
    samples = [policy.delay(2, rng) for _ in range(200)]
    assert all(3.0 * 0.8 <= s <= 3.0 * 1.2 for s in samples)
    assert len(set(samples)) == 200


def test_should_retry_respects_attempts_and_exception_types() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=(ConnectionError, TimeoutError))
    assert policy.should_retry(ConnectionResetError("reset"), 1)
    assert policy.should_retry(TimeoutError(), 2)
    assert not policy.should_retry(TimeoutError(), 3)
    assert not policy.should_retry(ValueError("bad"), 1)
    assert not RetryPolicy().should_retry(RuntimeError("x"), 1)  # default: a single attempt


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "RetryPolicy.max_attempts must be at least 1, got 0"),
        ({"initial_delay": -1.0}, "RetryPolicy delays must not be negative"),
        ({"max_delay": -0.5}, "RetryPolicy delays must not be negative"),
        ({"backoff": 0.5}, "RetryPolicy.backoff must be at least 1, got 0.5"),
        ({"jitter": 1.5}, "RetryPolicy.jitter is a fraction between 0 and 1, got 1.5"),
        ({"jitter": -0.1}, "RetryPolicy.jitter is a fraction between 0 and 1, got -0.1"),
    ],
)
def test_invalid_retry_policies_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        RetryPolicy(**kwargs)
    assert str(info.value) == message


def test_invalid_timeouts_and_run_options_raise() -> None:
    with pytest.raises(ValueError, match=r"^a timeout must be positive, got 0$"):
        NodePolicy(timeout=0)
    with pytest.raises(ValueError, match=r"^max_concurrency must be at least 1, got 0$"):
        RunOptions(max_concurrency=0)
    with pytest.raises(ValueError, match=r"^failure_mode must be 'fail_fast' or 'continue', got 'later'$"):
        RunOptions(failure_mode="later")  # type: ignore[arg-type]


def test_configure_names_an_unknown_node_and_checks_the_policy_type() -> None:
    flow = arithmetic_flow()
    with pytest.raises(KeyError, match=r"flow 'arith' has no node 'dubble'; did you mean 'double'\?"):
        flow.configure("dubble", timeout=1.0)
    with pytest.raises(TypeError, match=r"^retry must be a RetryPolicy, got dict$"):
        flow.configure("double", retry={"max_attempts": 3})


def _flaky(kind: str, calls: list[int], failures: int) -> Any:
    def sync_flaky(x: int) -> int:
        calls.append(x)
        if len(calls) <= failures:
            raise ConnectionError(f"flaky {len(calls)}")
        return x * 10

    async def async_flaky(x: int) -> int:
        return sync_flaky(x)

    return sync_flaky if kind == "sync" else async_flaky


@mode_param
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_fail_twice_then_succeed_takes_exactly_three_attempts(mode: str, kind: str) -> None:
    calls: list[int] = []
    flow = Flow("retry")
    flow.add_function("flaky", _flaky(kind, calls, failures=2))
    flow.input("x", int)
    flow.configure("flaky", retry=RetryPolicy(max_attempts=5, initial_delay=0.001, jitter=0.0))

    result = run_flow(mode, flow, x=4)

    assert result.success, result.error
    assert result.outputs == {"output": 40}
    assert calls == [4, 4, 4]
    record = result.nodes["flaky"]
    assert (record.status, record.attempts) == ("done", 3)


def test_retries_are_reported_as_events() -> None:
    calls: list[int] = []
    flow = Flow("retry-events")
    flow.add_function("flaky", _flaky("async", calls, failures=2))
    flow.input("x", int)
    flow.configure("flaky", retry=RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=0.0))

    events = stream_events(flow, x=1)

    assert kinds(events, "flaky") == ["node_started", "node_retried", "node_retried", "node_finished"]
    retried = [(e.attempt, e.error) for e in events if e.kind == "node_retried"]
    assert retried == [(1, "ConnectionError: flaky 1"), (2, "ConnectionError: flaky 2")]
    assert events[-1].kind == "run_finished"
    finished = next(e for e in events if e.kind == "node_finished")
    assert finished.attempt == 3


@mode_param
def test_an_exception_type_not_listed_is_not_retried(mode: str) -> None:
    calls: list[int] = []

    def picky(x: int) -> int:
        calls.append(x)
        raise ValueError("bad input")

    flow = Flow("no-retry")
    flow.add_function("picky", picky)
    flow.input("x", int)
    flow.configure("picky", retry=RetryPolicy(max_attempts=4, initial_delay=0.001, retry_on=(ConnectionError,)))

    result = run_flow(mode, flow, x=1)

    record = result.nodes["picky"]
    assert calls == [1]
    assert (record.status, record.attempts, record.error_type, record.error) == ("failed", 1, "ValueError", "bad input")


@mode_param
def test_retries_stop_after_max_attempts(mode: str) -> None:
    calls: list[int] = []
    flow = Flow("exhausted")
    flow.add_function("flaky", _flaky("sync", calls, failures=99))
    flow.input("x", int)
    flow.configure("flaky", retry=RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=0.0))

    result = run_flow(mode, flow, x=2)

    record = result.nodes["flaky"]
    assert calls == [2, 2, 2]
    assert (record.status, record.attempts, record.error) == ("failed", 3, "flaky 3")
    assert result.error == "flaky: ConnectionError: flaky 3"


# ----------------------------------------------------------------------------- timeouts


@mode_param
def test_a_node_past_its_timeout_fails_naming_node_and_seconds(mode: str) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(GUARD)
        return x

    flow = Flow("timeout")
    flow.add_function("slow", slow)
    flow.input("x", int)
    flow.configure("slow", timeout=0.05)

    result = run_flow(mode, flow, x=1)

    record = result.nodes["slow"]
    assert (record.status, record.attempts, record.error_type) == ("failed", 1, "TimeoutError")
    assert record.error == "node 'slow' timed out after 0.05 s"
    assert result.error == "slow: TimeoutError: node 'slow' timed out after 0.05 s"


@mode_param
def test_a_sync_node_past_its_timeout_fails_too(mode: str) -> None:
    release = threading.Event()

    def stuck(x: int) -> int:
        release.wait(GUARD)
        return x

    flow = Flow("sync-timeout")
    flow.add_function("stuck", stuck)
    flow.input("x", int)
    flow.configure("stuck", timeout=0.05)

    # A worker thread cannot be interrupted: let it go as soon as the run is over (asyncio.run would
    # otherwise wait for it when it shuts the loop's thread pool down).
    async def main() -> RunResult:
        try:
            outcome: RunResult = await flow.arun(x=1)
            return outcome
        finally:
            release.set()

    if mode == "sync":
        try:
            result = flow.run(x=1)
        finally:
            release.set()
    else:
        result = asyncio.run(main())

    record = result.nodes["stuck"]
    assert (record.status, record.error_type, record.error) == (
        "failed",
        "TimeoutError",
        "node 'stuck' timed out after 0.05 s",
    )


def test_a_cancelled_run_cancels_a_node_under_a_timeout_instead_of_timing_it_out() -> None:
    started = asyncio.Event()

    async def slow(x: int) -> int:
        started.set()
        await asyncio.sleep(GUARD)
        return x

    flow = Flow("timeout-cancel")
    flow.add_function("slow", slow)
    flow.input("x", int)
    flow.configure("slow", timeout=GUARD * 2)
    events: list[Event] = []

    async def main() -> None:
        run = asyncio.ensure_future(flow._scheduler().run({"x": 1}, None, events.append))
        await started.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        # The node's own timeout is still pending while its task unwinds: nothing of it may fire later.
        await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(main(), GUARD))
    assert ("node_failed", "slow") not in [(e.kind, e.node_id) for e in events]


@mode_param
def test_a_timeout_is_retried_when_the_policy_retries_timeouts(mode: str) -> None:
    attempts: list[int] = []

    async def slow_once(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            await asyncio.sleep(GUARD)
        return x + 1

    flow = Flow("timeout-retry")
    flow.add_function("slow_once", slow_once)
    flow.input("x", int)
    flow.configure(
        "slow_once", retry=RetryPolicy(max_attempts=2, initial_delay=0.0, retry_on=(TimeoutError,)), timeout=0.05
    )

    result = run_flow(mode, flow, x=1)

    assert result.success, result.error
    assert result.outputs == {"output": 2}
    assert result.nodes["slow_once"].attempts == 2
    assert attempts == [1, 1]


@mode_param
def test_a_timeout_is_not_retried_when_the_policy_does_not_list_it(mode: str) -> None:
    attempts: list[int] = []

    async def slow(x: int) -> int:
        attempts.append(x)
        await asyncio.sleep(GUARD)
        return x

    flow = Flow("timeout-no-retry")
    flow.add_function("slow", slow)
    flow.input("x", int)
    flow.configure("slow", retry=RetryPolicy(max_attempts=3, retry_on=(ConnectionError,)), timeout=0.05)

    result = run_flow(mode, flow, x=1)

    assert attempts == [1]
    assert (result.nodes["slow"].status, result.nodes["slow"].error_type) == ("failed", "TimeoutError")


# ----------------------------------------------------------------------------- failure modes


def failing_flow(cancelled: list[str], *, long_waits: bool) -> Flow:
    """``boom`` fails once ``long`` is in flight and ``side`` is done; ``long`` sleeps until cancelled
    if ``long_waits``; ``side`` is independent of both."""
    long_started = asyncio.Event()
    side_done = asyncio.Event()

    async def long(x: int) -> int:
        long_started.set()
        try:
            await asyncio.sleep(GUARD if long_waits else 0)
        except asyncio.CancelledError:
            cancelled.append("long")
            raise
        return x

    async def boom(x: int) -> int:
        await asyncio.wait_for(long_started.wait(), GUARD)
        await asyncio.wait_for(side_done.wait(), GUARD)
        raise ValueError("kaboom")

    def after_long(y: int) -> int:
        return y + 1

    def after_boom(z: int) -> int:
        return z + 1

    def then(w: int) -> int:
        return w + 1

    async def side(x: int) -> int:
        side_done.set()
        return x * 3

    flow = Flow("failing")
    for name, fn in (
        ("long", long),
        ("boom", boom),
        ("after_long", after_long),
        ("after_boom", after_boom),
        ("then", then),
        ("side", side),
    ):
        flow.add_function(name, fn)
    flow.connect("long.output", "after_long.y")
    flow.connect("boom.output", "after_boom.z").connect("after_boom.output", "then.w")
    flow.input("x", int)
    flow.output("long", "after_long.output")
    flow.output("then", "then.output")
    flow.output("side", "side.output")
    return flow


@mode_param
def test_fail_fast_cancels_in_flight_nodes_and_pending_ones(mode: str) -> None:
    cancelled: list[str] = []
    flow = failing_flow(cancelled, long_waits=True)

    result = run_flow(mode, flow, x=1)

    assert not result.success
    assert cancelled == ["long"]
    statuses = {nid: rec.status for nid, rec in result.nodes.items() if ":" not in nid}
    assert statuses == {
        "long": "cancelled",
        "boom": "failed",
        "after_long": "cancelled",
        "after_boom": "cancelled",
        "then": "cancelled",
        "side": "done",
    }
    assert result.nodes["after_boom"].skip_reason == "cancelled: boom failed"
    assert result.error == "boom: ValueError: kaboom"
    assert result.outputs == {"side": 3}
    with pytest.raises(RunFailedError) as info:
        result.raise_for_failure()
    assert re.fullmatch(
        rf"run {result.run_id} of flow 'failing' failed: 1 node\(s\)\n  boom: ValueError: kaboom "
        r"\(at .*test_scheduler\.py:\d+ in boom\)",
        str(info.value),
    )
    assert info.value.result is result


@mode_param
def test_continue_skips_only_the_descendants_of_the_failed_node(mode: str) -> None:
    cancelled: list[str] = []
    flow = failing_flow(cancelled, long_waits=False)

    result = run_flow(mode, flow, x=1, failure_mode="continue")

    assert not result.success
    statuses = {nid: rec.status for nid, rec in result.nodes.items() if ":" not in nid}
    assert statuses == {
        "long": "done",
        "boom": "failed",
        "after_long": "done",
        "after_boom": "skipped",
        "then": "skipped",
        "side": "done",
    }
    assert result.nodes["after_boom"].skip_reason == "input 'z' has no value: boom.output failed"
    assert result.nodes["then"].skip_reason == "input 'w' has no value: after_boom.output skipped"
    assert result.outputs == {"long": 2, "side": 3}
    assert result.error == "boom: ValueError: kaboom"
    assert cancelled == []


@mode_param
def test_a_node_failing_before_its_siblings_started_cancels_them(mode: str) -> None:
    # `boom` raises within its task's first step, before the task of `other` has taken one:
    # a task cancelled that early never runs its body, and the run must still resolve it.
    ran: list[str] = []

    async def boom(x: int) -> int:
        raise RuntimeError("at once")

    async def other(x: int) -> int:
        ran.append("other")
        return x

    flow = Flow("early-failure")
    flow.add_function("boom", boom)
    flow.add_function("other", other)
    flow.input("x", int)

    result = run_in_thread(lambda: run_flow(mode, flow, x=1), timeout=GUARD)

    assert ran == []
    assert (result.nodes["other"].status, result.nodes["other"].skip_reason) == ("cancelled", "cancelled: boom failed")
    assert result.error == "boom: RuntimeError: at once"


@mode_param
def test_fail_fast_cancels_nodes_waiting_for_a_concurrency_slot(mode: str) -> None:
    ran: list[str] = []

    async def boom() -> int:
        ran.append("boom")
        raise RuntimeError("first")

    flow = Flow("queued")
    flow.add_function("boom", boom)
    for i in range(3):

        async def later(i: int = i) -> int:
            ran.append(f"later{i}")
            return i

        flow.add_function(f"later{i}", later)

    result = run_in_thread(lambda: run_flow(mode, flow, max_concurrency=1), timeout=GUARD)

    assert ran == ["boom"]
    assert [result.nodes[f"later{i}"].status for i in range(3)] == ["cancelled"] * 3
    assert result.error == "boom: RuntimeError: first"


# ----------------------------------------------------------------------------- router-style skipping


def _router_factory(node: Node, binding: object) -> Executor:
    async def route(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        x = inputs["x"]
        return {"small": x} if x < 10 else {"large": x}

    return route


def router_flow() -> Flow:
    def small_branch(v: int) -> str:
        return f"small {v}"

    def large_branch(v: int) -> str:
        return f"large {v}"

    def after_large(s: str) -> str:
        return s.upper()

    def pick(a: str | None = None, b: str | None = None) -> str:
        return a if a is not None else f"{b}"

    flow = Flow("routed")
    flow.add_node(Node("route", "test_router", (Port("x", INT),), (Port("small", INT), Port("large", INT))))
    flow.add_function("small_branch", small_branch)
    flow.add_function("large_branch", large_branch)
    flow.add_function("after_large", after_large)
    flow.add_function("pick", pick)
    flow.connect("route.small", "small_branch.v").connect("route.large", "large_branch.v")
    flow.connect("large_branch.output", "after_large.s")
    flow.connect("small_branch.output", "pick.a").connect("large_branch.output", "pick.b")
    flow.input("x", int)
    flow.output("picked", "pick.output")
    flow.output("shout", "after_large.output")
    return flow


@mode_param
def test_a_router_leaves_the_unchosen_branch_skipped(mode: str) -> None:
    with registered_kind("test_router", _router_factory):
        flow = router_flow()
        result = run_flow(mode, flow, x=3)
        large = run_flow(mode, flow, x=30)

    assert result.success, result.error
    statuses = {nid: rec.status for nid, rec in result.nodes.items() if ":" not in nid}
    assert statuses == {
        "route": "done",
        "small_branch": "done",
        "large_branch": "skipped",
        "after_large": "skipped",
        "pick": "done",
    }
    assert result.nodes["large_branch"].skip_reason == "input 'v' has no value: route.large did not produce it"
    assert result.nodes["after_large"].skip_reason == "input 's' has no value: large_branch.output skipped"
    assert result.nodes["output:shout"].status == "skipped"
    # `pick` takes optional inputs: the branch that did not run leaves its default.
    assert result.outputs == {"picked": "small 3"}

    assert large.success, large.error
    assert large.nodes["small_branch"].status == "skipped"
    assert large.outputs == {"picked": "large 30", "shout": "LARGE 30"}


def test_router_skips_appear_in_the_event_stream() -> None:
    with registered_kind("test_router", _router_factory):
        events = stream_events(router_flow(), x=3)

    skipped = [(e.node_id, e.error) for e in events if e.kind == "node_skipped"]
    assert skipped == [
        ("large_branch", "input 'v' has no value: route.large did not produce it"),
        ("after_large", "input 's' has no value: large_branch.output skipped"),
        ("output:shout", "input 'shout' has no value: after_large.output skipped"),
    ]


def test_an_executor_returning_an_unknown_port_or_a_non_dict_fails_the_node() -> None:
    def factory(node: Node, binding: object) -> Executor:
        async def run(inputs: dict[str, Any], ctx: NodeContext) -> Any:
            return binding

        return run

    with registered_kind("test_echo", factory):
        for returned, message in (
            ({"nope": 1}, "returned unknown output(s) 'nope'"),
            (5, "returned int, not a dict of output name -> value"),
        ):
            flow = Flow("bad-executor")
            flow.add_node(Node("echo", "test_echo", (Port("x", INT),), (Port("y", INT),)), returned)
            flow.input("x", int)
            flow.output("y", "echo.y")
            events = stream_events(flow, x=1)
            result = flow.run(x=1)
            record = result.nodes["echo"]
            assert (record.status, record.error_type, record.error) == ("failed", "ValueError", message)
            assert kinds(events, "echo") == ["node_started", "node_failed"]
            assert result.error == f"echo: ValueError: {message}"


# ----------------------------------------------------------------------------- events


def test_stream_reports_every_node_started_then_finished_in_dependency_order() -> None:
    flow = arithmetic_flow()
    flow.add_function("side", add)
    flow.connect("double.output", "side.a")
    flow.output("side", "side.output")

    events = stream_events(flow, a=1, run_id="r-42")

    assert events[0].kind == "run_started"
    assert events[-1].kind == "run_finished"
    assert [e.kind for e in events].count("run_finished") == 1
    assert {e.run_id for e in events} == {"r-42"}
    for node in ("add", "double", "side"):
        assert kinds(events, node) == ["node_started", "node_finished"]
    position = {(e.kind, e.node_id): i for i, e in enumerate(events)}
    assert position[("node_finished", "add")] < position[("node_started", "double")]
    assert position[("node_finished", "double")] < position[("node_started", "side")]
    finished = {e.node_id: e.record for e in events if e.kind == "node_finished"}
    assert finished["side"] is not None and finished["side"].outputs == {"output": 32}
    assert all(e.time > 0 for e in events)


def test_stream_reports_failures_retries_and_skips() -> None:
    calls: list[int] = []
    flow = Flow("mixed-events")
    flow.add_function("flaky", _flaky("sync", calls, failures=1))

    def broken(x: int) -> int:
        raise KeyError("missing")

    def after(y: int) -> int:
        return y

    flow.add_function("broken", broken)
    flow.add_function("after", after)
    flow.connect("broken.output", "after.y")
    flow.input("x", int)
    flow.configure("flaky", retry=RetryPolicy(max_attempts=2, initial_delay=0.0))

    events = stream_events(flow, x=2, failure_mode="continue")

    assert kinds(events, "flaky") == ["node_started", "node_retried", "node_finished"]
    assert kinds(events, "broken") == ["node_started", "node_failed"]
    assert kinds(events, "after") == ["node_skipped"]
    failed = next(e for e in events if e.kind == "node_failed")
    assert (failed.attempt, failed.error) == (1, "KeyError: 'missing'")
    assert events[-1].kind == "run_finished"


def test_runtime_astream_yields_the_same_events() -> None:
    async def main() -> list[str]:
        return [f"{e.kind}:{e.node_id}" async for e in Runtime().astream(arithmetic_flow(), {"a": 1})]

    assert asyncio.run(main()) == [
        "run_started:None",
        "node_started:add",
        "node_finished:add",
        "node_started:double",
        "node_finished:double",
        "run_finished:None",
    ]


# ----------------------------------------------------------------------------- inputs and options


@mode_param
def test_inputs_by_name_by_mapping_and_by_inputs_keyword(mode: str) -> None:
    flow = arithmetic_flow()
    assert run_flow(mode, flow, a=1).outputs == {"result": 22}
    assert run_flow(mode, flow, {"a": 2}).outputs == {"result": 24}
    assert run_flow(mode, flow, inputs={"a": 3}).outputs == {"result": 26}


@mode_param
def test_flow_input_defaults(mode: str) -> None:
    flow = Flow("input-default")
    flow.add_function("add", add)
    flow.input("a", int, default=3)
    flow.input("b", int, default=5)

    assert run_flow(mode, flow).outputs == {"output": 8}
    assert run_flow(mode, flow, b=1).outputs == {"output": 4}


@mode_param
def test_unknown_input_suggests_the_closest_name(mode: str) -> None:
    with pytest.raises(ValueError) as info:
        run_flow(mode, arithmetic_flow(), aa=1)
    assert str(info.value) == "flow 'arith' has no input 'aa' (did you mean 'a'?); its inputs are: a"


@mode_param
def test_missing_input_is_named(mode: str) -> None:
    with pytest.raises(ValueError) as info:
        run_flow(mode, arithmetic_flow())
    assert str(info.value) == "flow 'arith' needs input(s) 'a'"


def test_bad_positional_arguments_are_rejected() -> None:
    flow = arithmetic_flow()
    with pytest.raises(TypeError, match=r"^run\(\) takes one positional argument: a mapping of inputs$"):
        flow.run({"a": 1}, {"a": 2})
    with pytest.raises(TypeError, match=r"^run\(\)'s positional argument is a mapping of inputs, got int$"):
        flow.run(1)


@mode_param
def test_run_options_are_applied(mode: str) -> None:
    result = run_flow(mode, arithmetic_flow(), a=1, run_id="fixed-id", max_concurrency=1, failure_mode="continue")
    assert result.run_id == "fixed-id"
    assert result.flow == "arith"
    with pytest.raises(ValueError, match="max_concurrency must be at least 1"):
        run_flow(mode, arithmetic_flow(), a=1, max_concurrency=0)


@mode_param
def test_an_input_named_like_a_run_option_is_an_input(mode: str) -> None:
    def echo(run_id: str) -> str:
        return run_id.upper()

    flow = Flow("option-names")
    flow.add_function("echo", echo)
    flow.input("run_id", str)

    result = run_flow(mode, flow, run_id="abc")

    assert result.outputs == {"output": "ABC"}
    assert result.run_id != "abc"


def test_run_ids_are_unique_per_run() -> None:
    flow = arithmetic_flow()
    ids = {flow.run(a=1).run_id for _ in range(3)}
    assert len(ids) == 3


def test_run_result_records_timing_and_summary() -> None:
    result = arithmetic_flow().run(a=1)
    record = result.nodes["double"]
    assert record.started_at is not None and record.ended_at is not None
    assert record.started_at <= record.ended_at
    assert record.duration_ms is not None and record.duration_ms >= 0
    assert result.nodes["add"].ended_at <= record.started_at
    assert result.summary()["nodes"] == {"done": 4, "failed": 0, "skipped": 0, "cached": 0, "cancelled": 0}
    assert result["result"] == 22
    with pytest.raises(KeyError, match="flow 'arith' has no output 'nope'; outputs: result"):
        result["nope"]


# ----------------------------------------------------------------------------- Runtime and graphs from JSON


def test_runtime_execute_returns_results_by_node_and_run_id() -> None:
    results, run_id = Runtime().execute(arithmetic_flow(), {"a": 1})
    assert results["add"] == {"output": 11}
    assert results["double"] == {"output": 22}
    assert set(results) == {"input:a", "add", "double", "output:result"}
    assert isinstance(run_id, str) and len(run_id) == 32


def test_runtime_run_and_arun_accept_a_run_id() -> None:
    runtime = Runtime(max_concurrency=1)
    assert runtime.run(arithmetic_flow(), {"a": 2}, run_id="x1").run_id == "x1"
    result = asyncio.run(runtime.arun(arithmetic_flow(), {"a": 2}, run_id="x2"))
    assert (result.run_id, result.outputs) == ("x2", {"result": 24})


def test_runtime_execute_raises_when_a_node_failed() -> None:
    def broken(a: int) -> int:
        raise ZeroDivisionError("division by zero")

    flow = Flow("broken")
    flow.add_function("broken", broken)
    flow.input("a", int)
    with pytest.raises(RunFailedError, match=r"broken: ZeroDivisionError: division by zero"):
        Runtime().execute(flow, {"a": 1})


def test_a_graph_loaded_from_json_runs_with_a_registry() -> None:
    graph = Graph.from_json(arithmetic_flow().compile().to_json())

    results, _ = Runtime(registry=FunctionRegistry([add, double])).execute(graph, {"a": 5})

    assert results["double"] == {"output": 30}


def test_a_graph_loaded_from_json_without_a_registry_fails_clearly() -> None:
    graph = Graph.from_json(arithmetic_flow().compile().to_json())
    with pytest.raises(ValueError) as info:
        Runtime().execute(graph, {"a": 5})
    assert str(info.value) == (
        "function node(s) 'add', 'double' have no function bound; pass registry=FunctionRegistry(...) to bind "
        "the functions of a graph loaded from JSON"
    )
    with pytest.raises(
        UnresolvedReferenceError, match=r"node 'double': unknown function '[\w.]*test_scheduler:double'"
    ):
        Runtime(registry=FunctionRegistry([add])).execute(graph, {"a": 5})


def test_runtime_rejects_what_it_cannot_run() -> None:
    with pytest.raises(TypeError, match=r"^Runtime runs a Flow or a compiled Graph, got dict$"):
        Runtime().run({"nodes": []})
    with pytest.raises(ValueError, match=r"^failure_mode must be 'fail_fast' or 'continue', got 'never'$"):
        Runtime(failure_mode="never")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- sync front inside a running loop


def test_sync_run_inside_a_running_event_loop_does_not_hang() -> None:
    flow = arithmetic_flow()

    async def handler() -> tuple[int, int]:
        # What a notebook cell or an async web handler does: a blocking call with a loop running.
        inner = flow.run(a=1)
        outer = await flow.arun(a=2)
        return inner["result"], outer["result"]

    assert run_in_thread(lambda: asyncio.run(handler()), timeout=GUARD * 2) == (22, 24)


def test_a_node_may_run_another_flow_through_the_sync_front() -> None:
    inner = arithmetic_flow()

    async def nested_async(a: int) -> int:
        return int(inner.run(a=a)["result"])

    def nested_sync(a: int) -> int:
        return int(inner.run(a=a + 1)["result"])

    outer = Flow("outer")
    outer.add_function("nested_async", nested_async)
    outer.add_function("nested_sync", nested_sync)
    outer.input("a", int)
    outer.output("via_loop", "nested_async.output")
    outer.output("via_thread", "nested_sync.output")

    result = run_in_thread(lambda: outer.run(a=1), timeout=GUARD * 2)

    assert result.success, result.error
    assert result.outputs == {"via_loop": 22, "via_thread": 24}


# ----------------------------------------------------------------------------- scale


def chain(length: int) -> Flow:
    def first(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    async def step(x: int) -> int:
        return x + 1

    flow = Flow("chain")
    flow.add_function("n0", first)
    for i in range(1, length):
        flow.add_function(f"n{i}", step)
        flow.connect(f"n{i - 1}.output", f"n{i}.x")
    flow.input("x", int)
    flow.output("last", f"n{length - 1}.output")
    return flow


def test_a_2000_node_chain_runs() -> None:
    result = chain(2000).run(x=1)
    assert result.success, result.error
    assert result.outputs == {"last": 2000}
    assert all(r.status == "done" for r in result.nodes.values())


@pytest.mark.parametrize(("mode", "status"), [("fail_fast", "cancelled"), ("continue", "skipped")])
def test_a_failure_at_the_head_of_a_2000_node_chain_resolves_every_node(mode: str, status: str) -> None:
    # Skips and cancellations resolve without a task each; a long cascade of them must not recurse.
    flow = chain(2000)

    result = run_in_thread(lambda: flow.run(x=-1, failure_mode=mode), timeout=GUARD * 4)

    assert result.error == "n0: ValueError: negative"
    tail = [result.nodes[f"n{i}"].status for i in range(1, 2000)]
    assert tail == [status] * 1999
    assert result.outputs == {}


def _typed_inputs_flow() -> Flow:
    def add(a: int, b: float = 0.5) -> float:
        return a + b

    def count(items: list[str]) -> int:
        return len(items)

    flow = Flow("typed-inputs")
    flow.add_function("add", add)
    flow.add_function("count", count)
    flow.input("a", int)
    flow.input("items", list[str])
    return flow


@pytest.mark.parametrize("runner", ["run", "run_kailash"])
def test_values_given_to_flow_inputs_are_checked_against_their_types(runner: str) -> None:
    flow = _typed_inputs_flow()
    run = getattr(flow, runner)
    with pytest.raises(ValueError) as refused:
        run(a="1", items=["x", 2])
    assert str(refused.value) == (
        "flow 'typed-inputs': input 'a' is typed int, and '1' is not an int; "
        "input 'items' is typed list[str], and item 1: 2 is not a str"
    )
    assert run(a=1, items=("x", "y")).outputs == {"add.output": 1.5, "count.output": 2}
