"""Running async work from sync code, also when the caller is already inside an event loop.

A thread with no running loop runs the coroutine on its own loop, kept for the
thread's life (so LLM clients and their connections are reused across calls) and
entered directly: no hand-off to another thread, which costs about half a
millisecond per call. ``asyncio.run`` fails inside a running loop (Jupyter, an
async web handler) and blocking that loop on its own work would hang: there the
coroutine runs on one long-lived background loop in a daemon thread and the
caller's thread waits on a future. Either way, Ctrl-C while waiting cancels the
coroutine, lets it clean up (a run cancels its nodes), and re-raises; no task is
left to wake up in a later call.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _runner_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="dagwright-sync-runner", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


_local = threading.local()


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    if sys.version_info >= (3, 11):
        # A Runner kept for the thread's life: one loop across calls, and on Ctrl-C in the main thread it
        # cancels the running coroutine (which cancels its nodes and lets them clean up), then raises.
        runner: asyncio.Runner | None = getattr(_local, "runner", None)
        if runner is None:
            runner = asyncio.Runner()
            _local.runner = runner
            if threading.current_thread() is threading.main_thread():
                # Shut down at exit as asyncio.run would: the LLM clients close their connections, the loop closes.
                atexit.register(runner.close)
        return runner.run(coro)
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        if threading.current_thread() is threading.main_thread():
            atexit.register(_shut_down, loop)
    try:
        return loop.run_until_complete(coro)
    except KeyboardInterrupt:
        # No task may outlive the call: a node left pending would wake up inside the thread's next run.
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        raise


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.Runner.close`` does with its loop, for Python 3.10."""
    if loop.is_closed() or loop.is_running():
        return
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from any thread, loop or not."""
    try:
        asyncio.get_running_loop()
        inside_a_loop = True
    except RuntimeError:
        inside_a_loop = False
    if not inside_a_loop:
        # Outside the except block: a failure of the run must not carry "no running event loop" as its context.
        return _run_here(coro)
    loop = _runner_loop()
    if threading.current_thread() is _thread:
        # Called from code already running on the runner loop (a node calling a sync API):
        # waiting here would block the loop that must do the work, so use a fresh thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result()
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise
