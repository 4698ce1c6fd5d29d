"""The HTTP side of LLM calls: one ``AsyncOpenAI`` client per event loop, base URL and API key, over a bounded pool.

A client's connection pool belongs to the loop that made it, so clients are kept per loop. When the
loop shuts down (``asyncio.run`` and ``asyncio.Runner`` do, through ``loop.shutdown_asyncgens()``),
its clients close their connections; the clients of a loop closed without that, or left idle by a
thread that ended, are dropped when the next loop makes one, and their connections go with their
loop. Each has at most :func:`max_connections` connections, and requests beyond that wait their
turn in front of the pool, on a semaphore, rather than inside it.

Why: with the ``openai`` defaults (up to 1 000 connections, 100 kept alive), 1 000 concurrent
calls open 1 000 connections (a server thread or task each, and a TCP handshake each time, as
only 100 stay open), and the HTTP pool rescans every queued request against every connection
whenever one finishes, which grows with the square of the calls in flight. Past about a hundred
connections to one server, more of them only add client CPU time. ``DAGWRIGHT_MAX_CONNECTIONS``
(read when a client is made) raises or lowers the bound: a slow server that can answer many
requests at once is worth more connections.

Nothing else changes: the client is the ``openai`` one, with its own errors, types and timeouts
(its retries are off; :mod:`dagwright.llm.client` retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["DEFAULT_MAX_CONNECTIONS", "MAX_CONNECTIONS_ENV", "max_connections", "shared_client"]

MAX_CONNECTIONS_ENV = "DAGWRIGHT_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 100

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str | None, str], Any]] = (
    weakref.WeakKeyDictionary()
)


def max_connections() -> int:
    """The connection bound of a new client: ``DAGWRIGHT_MAX_CONNECTIONS``, else 100."""
    raw = os.environ.get(MAX_CONNECTIONS_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_CONNECTIONS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_CONNECTIONS_ENV}={raw!r}: give a whole number of connections, at least 1")
    return value


def shared_client(base_url: str | None, api_key: str) -> Any:
    """The ``AsyncOpenAI`` client of the running loop for ``base_url`` and ``api_key``, made on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.get(loop)
    if per_loop is None:
        # Loops of other threads make their first clients too: the scan of every loop must not see the maps change.
        with _first_use:
            _forget_abandoned_loops()
            per_loop = _clients[loop] = {}
            _closers[loop] = _close_at_shutdown(per_loop)
            _threads[loop] = weakref.ref(threading.current_thread())
    key = (base_url, api_key)
    client = per_loop.get(key)
    if client is None:
        client = _make_client(base_url, api_key)
        per_loop[key] = client
    return client


_first_use = threading.Lock()
# Per loop, the thread that made its first client (a loop left behind by an ended thread cannot shut down).
_threads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[threading.Thread]] = (
    weakref.WeakKeyDictionary()
)
# Per loop, what closes its clients when the loop shuts down: an async generator, since a loop's shutdown closes
# every async generator still open on it (and nothing else). Held here, as the loop itself holds it weakly.
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = weakref.WeakKeyDictionary()


async def _closing(clients: dict[tuple[str | None, str], Any]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for client in list(clients.values()):
            with contextlib.suppress(Exception):  # a shutdown goes on whatever one client says
                await client.close()
        clients.clear()


def _close_at_shutdown(clients: dict[tuple[str | None, str], Any]) -> AsyncIterator[None]:
    """:func:`_closing`, started on the running loop: the loop registers it as it does every async generator
    (and its finalizer leaves a closed loop alone)."""
    closer = _closing(clients)
    with contextlib.suppress(StopIteration):  # runs it to its yield, now: nothing before it awaits
        closer.__anext__().send(None)  # type: ignore[attr-defined]
    return closer


def _forget_abandoned_loops() -> None:
    """Drop the clients of loops that can no longer shut down: closed without a shutdown, or left idle by a thread
    that has ended (the loop of a worker thread's sync calls). A client's connections refer to their loop, so while
    it is kept here the loop is too, with every socket its pool holds open: dropped, they go with the loop."""
    for loop in list(_clients):
        if loop.is_closed() or (not loop.is_running() and not _alive(_threads.get(loop))):
            _clients.pop(loop, None)
            _closers.pop(loop, None)
            _threads.pop(loop, None)


def _alive(thread: weakref.ref[threading.Thread] | None) -> bool:
    user = thread() if thread is not None else None
    return user is not None and user.is_alive()


def _make_client(base_url: str | None, api_key: str) -> Any:
    import openai

    size = max_connections()
    http = _http_module(openai.DefaultAsyncHttpxClient)
    limits = http.Limits(max_connections=size, max_keepalive_connections=size)
    transport = _gated_transport(http, http.AsyncHTTPTransport(limits=limits), size)
    # DefaultAsyncHttpxClient keeps the openai defaults (timeout, redirects); only the transport is ours.
    http_client = openai.DefaultAsyncHttpxClient(transport=transport, limits=limits)
    # Both given explicitly: the client must not fall back on the environment it was made in.
    return openai.AsyncOpenAI(
        max_retries=0,
        base_url=base_url or "https://api.openai.com/v1",
        api_key=api_key,
        http_client=http_client,
    )


def _http_module(client_class: type) -> Any:
    """The HTTP package the installed ``openai`` is built on (``httpx``, or ``httpx2`` in later releases)."""
    for cls in client_class.__mro__:
        if cls.__name__ == "AsyncClient" and cls.__module__.split(".")[0] != "openai":
            return importlib.import_module(cls.__module__.split(".")[0])
    return importlib.import_module("httpx")


def _gated_transport(http: Any, inner: Any, size: int) -> Any:
    """``inner`` behind a semaphore of ``size`` slots: a request holds one until its response is closed."""

    class _Released(http.AsyncByteStream):  # type: ignore[misc]
        """A response body that gives its slot back once, when it is closed."""

        def __init__(self, stream: Any, release: Any) -> None:
            self._stream = stream
            self._release = release

        async def __aiter__(self) -> Any:
            async for chunk in self._stream:
                yield chunk

        async def aclose(self) -> None:
            try:
                await self._stream.aclose()
            finally:
                release, self._release = self._release, None
                if release is not None:
                    release()

    class _Gated(http.AsyncBaseTransport):  # type: ignore[misc]
        """Waits for a free slot before the pool sees a request."""

        def __init__(self) -> None:
            self._slots: asyncio.Semaphore | None = None

        async def handle_async_request(self, request: Any) -> Any:
            if self._slots is None:  # made on the client's own loop, at its first request
                self._slots = asyncio.Semaphore(size)
            slots = self._slots
            await slots.acquire()
            try:
                response = await inner.handle_async_request(request)
            except BaseException:
                slots.release()
                raise
            response.stream = _Released(response.stream, slots.release)
            return response

        async def aclose(self) -> None:
            await inner.aclose()

    return _Gated()
