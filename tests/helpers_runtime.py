"""Helpers for the scheduler tests: run a flow the sync or the async way, and record what nodes did.

Node functions run on the event loop and in worker threads at once, so the recorders
take a lock; sequence numbers (not clock readings) give the order of starts and ends.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dagwright.agent import BaseAgent
from dagwright.execution.events import Event, RunResult
from dagwright.flow import Flow
from dagwright.nodes import EXECUTORS, ExecutorFactory, register_kind
from dagwright.testing import OpenAITestServer

MODES = ("sync", "async")
"""``sync``: ``flow.run(...)``; ``async``: ``await flow.arun(...)`` inside ``asyncio.run``."""


def run_flow(mode: str, flow: Flow, *args: Any, **kwargs: Any) -> RunResult:
    """Run ``flow`` through its sync front or its async one, with the same arguments."""
    if mode == "sync":
        result: RunResult = flow.run(*args, **kwargs)
        return result

    async def main() -> RunResult:
        outcome: RunResult = await flow.arun(*args, **kwargs)
        return outcome

    return asyncio.run(main())


def stream_events(flow: Flow, *args: Any, timeout: float = 10.0, **kwargs: Any) -> list[Event]:
    """Every event of one run of ``flow.stream(...)``, in order (a hung run fails after ``timeout``)."""

    async def collect() -> list[Event]:
        return [event async for event in flow.stream(*args, **kwargs)]

    async def main() -> list[Event]:
        return await asyncio.wait_for(collect(), timeout)

    return asyncio.run(main())


class Trace:
    """Starts and ends of node bodies, each with a global sequence number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self.marks: list[tuple[str, str, int]] = []

    def mark(self, what: str, node: str) -> int:
        with self._lock:
            self._seq += 1
            self.marks.append((what, node, self._seq))
            return self._seq

    def start(self, node: str) -> int:
        return self.mark("start", node)

    def end(self, node: str) -> int:
        return self.mark("end", node)

    def seq(self, what: str, node: str) -> int:
        """The sequence number of the only ``what`` mark of ``node``."""
        found = [s for w, n, s in self.marks if w == what and n == node]
        assert len(found) == 1, f"{node} has {len(found)} {what} marks: {self.marks}"
        return found[0]

    def count(self, what: str, node: str) -> int:
        return sum(1 for w, n, _ in self.marks if w == what and n == node)

    def order(self) -> list[str]:
        """Marks as ``"start:node"`` / ``"end:node"`` in sequence order."""
        return [f"{w}:{n}" for w, n, _ in sorted(self.marks, key=lambda m: m[2])]


class InFlight:
    """How many node bodies run at once, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.entered = 0

    @contextmanager
    def inside(self) -> Iterator[None]:
        with self._lock:
            self.now += 1
            self.entered += 1
            self.most = max(self.most, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1


@contextmanager
def registered_kind(kind: str, factory: ExecutorFactory) -> Iterator[None]:
    """Register a node kind for the duration of a test (the kind table is process-wide)."""
    assert kind not in EXECUTORS, f"kind {kind!r} is already registered"
    register_kind(kind, factory)
    try:
        yield
    finally:
        del EXECUTORS[kind]


def run_in_thread(target: Callable[[], Any], timeout: float) -> Any:
    """Call ``target`` in a fresh thread; fail (instead of hanging the suite) if it is not done in time."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:  # handed back to the test thread below
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def loopback_agent(server: OpenAITestServer, signature: str, **config: Any) -> BaseAgent:
    """An agent ``qa`` calling ``server`` with no retries (a fault is seen at once); ``config`` overrides."""
    settings = {
        "provider": "openai",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "model": "gpt-4o-mini",
        "retry_initial_delay": 0.01,
        "max_retries": 0,
        **config,
    }
    return BaseAgent(config=settings, signature=signature, name="qa")


def restore_ctrl_c() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT.

    A shell starts background jobs with SIGINT ignored, children inherit that,
    and Python then installs no KeyboardInterrupt handler: without this, a
    suite run in the background would see Ctrl-C do nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
