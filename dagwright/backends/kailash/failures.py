"""A failed dagwright node inside a ``run_on_kailash`` run: data under the run's failure mode, not an exception.

Kailash has no failure mode: ``AsyncLocalRuntime`` ends the whole run at any failed node
(and leaves the failed node's siblings running behind it), ``LocalRuntime`` ends it at a
failed node with dependents. So while :func:`guarding` holds a :class:`FailureGuard`, each
dagwright node of the guarded workflow runs through :func:`run_guarded` (its
``execute_async`` reads the guard): a failure is recorded and returns no outputs, which is
how a dagwright node says "not produced", so the nodes that need them skip themselves with
the built-in wording; ``"fail_fast"`` also cancels what runs beside it and starts nothing
more. Any other workflow (``flow.build()`` run by Kailash directly, a sub-workflow run inside
a node) fails as Kailash makes it fail.

Importing this module does not import ``kailash``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagwright.execution.events import NodeRecord
    from dagwright.execution.policy import FailureMode

__all__ = ["FailureGuard", "current_guard", "guarding", "run_guarded", "stop_guarding"]


@dataclass(eq=False)
class FailureGuard:
    """What the dagwright nodes of one run share to apply its failure mode.

    ``nodes`` are the ``id()`` of the node instances it guards (those of one workflow),
    ``records`` the run's node records by node id.
    """

    nodes: Collection[int]
    records: Mapping[str, NodeRecord]
    failure_mode: FailureMode
    first_failed: str | None = None
    # The nodes running now (AsyncLocalRuntime runs independent ones at once), and those this run cancelled.
    running: set[asyncio.Task[Any]] = field(default_factory=set)
    stopped: set[asyncio.Task[Any]] = field(default_factory=set)

    def failed(self, node_id: str) -> None:
        if self.first_failed is not None:
            return
        self.first_failed = node_id
        if self.failure_mode == "fail_fast":
            # As the built-in scheduler does: what runs beside the failed node is cancelled, not awaited.
            for task in self.running:
                if not task.done():
                    self.stopped.add(task)
                    task.cancel()


_guard: contextvars.ContextVar[FailureGuard | None] = contextvars.ContextVar("dagwright_kailash_guard", default=None)


def guarding(guard: FailureGuard) -> contextvars.Token[FailureGuard | None]:
    """Apply ``guard`` to its nodes run in this context (and tasks it starts); undo with :func:`stop_guarding`."""
    return _guard.set(guard)


def stop_guarding(token: contextvars.Token[FailureGuard | None]) -> None:
    _guard.reset(token)


def current_guard(node: object) -> FailureGuard | None:
    """The guard that applies to ``node`` now, if any."""
    guard = _guard.get()
    return guard if guard is not None and id(node) in guard.nodes else None


async def run_guarded(
    guard: FailureGuard, node_id: str, execute: Callable[[], Awaitable[Any]], nothing: Callable[[], Any]
) -> Any:
    """``execute()`` for node ``node_id`` under ``guard``: its failure returns ``nothing()`` instead of raising.

    The node has recorded its failure in ``guard.records`` before raising it. A node started after
    a ``fail_fast`` failure does not run (reported cancelled, as on the built-in scheduler); one
    cancelled by it is recorded ``cancelled``.
    """
    if guard.first_failed is not None and guard.failure_mode == "fail_fast":
        return nothing()
    # A task of its own, so that a failure elsewhere can cancel this node alone, not Kailash's gather.
    task = asyncio.ensure_future(execute())
    guard.running.add(task)
    try:
        return await task
    except asyncio.CancelledError:
        if task not in guard.stopped or _cancelling():
            raise
        record = guard.records.get(node_id)
        if record is not None:
            record.status = "cancelled"
            record.skip_reason = f"cancelled: {guard.first_failed} failed"
        return nothing()
    except Exception:
        record = guard.records.get(node_id)
        if record is None or record.status != "failed":
            raise
        guard.failed(node_id)
        return nothing()
    finally:
        guard.running.discard(task)


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (the whole run is): that is never swallowed.

    Python 3.10 cannot tell (no ``Task.cancelling``); there a run cancelled at the very moment a
    failure cancels its other nodes finishes those nodes as cancelled instead of stopping at once.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling is not None and cancelling())
