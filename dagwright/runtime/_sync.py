"""Running async work from sync code, also when the caller is already inside an event loop.

``asyncio.run`` fails inside a running loop (Jupyter, an async web handler) and
blocking that loop on its own work would hang. Sync calls therefore run their
coroutine on one long-lived background loop in a daemon thread: the caller's
thread waits on a future, its loop (if any) is never re-entered. Ctrl-C while
waiting cancels the coroutine before re-raising.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from any thread, loop or not."""
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
