"""What the nodes of one run share and the run closes at its end: connections to MCP servers.

A :class:`RunResources` is made by the back end for each run (the built-in scheduler, one Dask task on
a worker, one ``run_kailash`` call) and is the run's for as long as it lasts: an agent asking for a
resource under a key gets the one already opened for that key, or opens it, once, for every node of
the run. The opening runs in a task of its own, not in the task of the node that asked first, for
two reasons: a node cancelled while it waits (``fail_fast``) does not take the resource down with it,
and a resource bound to the task that entered it (an MCP stdio session lives in anyio cancel scopes,
which must be left by the task that entered them) is entered and left by that one task. ``aclose()``
at the end of the run closes what was opened, most recent first.

:func:`current_resources` is the run's, for code running inside it (node tasks copy it from the run);
it is ``None`` outside a run, and for code running on another event loop than the run's (a resource
opened on one loop cannot serve another).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

__all__ = ["Opened", "RunResources", "current_resources", "reset_resources", "using_resources"]

T = TypeVar("T")

Opened = tuple[Any, Callable[[], Awaitable[None]]]
"""What an opener returns: the resource, and how to close it."""

_current: contextvars.ContextVar[RunResources | None] = contextvars.ContextVar("dagwright_run_resources", default=None)


class RunResources:
    """Resources shared by the nodes of one run, by key; opened on first use, closed by :meth:`aclose`."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._opening: dict[Hashable, asyncio.Task[Opened]] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.closed = False
        self.opened = 0  # how many resources were opened: one per key, unless an opening failed

    def __bool__(self) -> bool:
        return True

    async def get(self, key: Hashable, opener: Callable[[], Awaitable[Opened]], *, forget_failure: bool = True) -> Any:
        """The resource under ``key``, opened by ``opener()`` the first time. A failed opening is raised to
        everyone waiting for it and forgotten: the next ``get`` (a retried node) opens again. With
        ``forget_failure=False`` (a look ahead at the start of a run) it is kept for the next ``get``, which
        raises it without trying again, so that one silent server does not cost its timeout twice."""
        if self.closed:
            raise RuntimeError("the run is over: its connections are closed")
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        task = self._opening.get(key)
        if task is None:
            task = loop.create_task(self._open(opener))
            self._opening[key] = task
        try:
            resource, _ = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except BaseException:
            if forget_failure and self._opening.get(key) is task:
                del self._opening[key]
            raise
        return resource

    def forget(self, key: Hashable, resource: object) -> None:
        """Drop ``resource`` (found dead) from ``key``: the next ``get`` opens a new one. It is still closed
        with the others at the end."""
        task = self._opening.get(key)
        opened = task is not None and task.done() and not task.cancelled() and task.exception() is None
        if opened and task is not None and task.result()[0] is resource:
            del self._opening[key]

    async def _open(self, opener: Callable[[], Awaitable[Opened]]) -> Opened:
        opened = await opener()
        self.opened += 1
        self._closers.append(opened[1])
        return opened

    async def aclose(self) -> None:
        """Close every resource opened (most recent first); wait for openings still under way, then close them."""
        self.closed = True
        pending = list(self._opening.values())
        self._opening.clear()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        closers, self._closers = self._closers[::-1], []
        for close in closers:
            # A connection that fails to close must not fail a finished run.
            with contextlib.suppress(Exception):
                await close()


def current_resources() -> RunResources | None:
    """The resources of the run this code runs in, if it runs on that run's event loop."""
    resources = _current.get()
    if resources is None or resources.loop is None:
        return resources
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return resources if running is resources.loop else None


def using_resources(resources: RunResources) -> contextvars.Token[RunResources | None]:
    """Make ``resources`` the current run's (``_current.reset(token)`` undoes it); binds it to this loop."""
    if resources.loop is None:
        resources.loop = asyncio.get_running_loop()
    return _current.set(resources)


def reset_resources(token: contextvars.Token[RunResources | None]) -> None:
    """Undo :func:`using_resources`."""
    _current.reset(token)
