"""What every back end does to run one node: gather its inputs, attempt it under its policy, check its outputs.

The built-in scheduler, the Dask workers and the Kailash node classes all run a node
through these functions, so a node is retried, timed out, skipped and checked the same
way wherever it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from dagwright.compiler.ir import Node, thaw_json
from dagwright.compiler.signature import MISSING
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import Event, NodeRecord
from dagwright.execution.executor import Executor, NodeContext
from dagwright.execution.policy import NodePolicy

__all__ = ["Slot", "attempt_node", "fanout", "gather_inputs", "output_problem"]

_T_co = TypeVar("_T_co", covariant=True)


class _Indexed(Protocol[_T_co]):
    """A list, or a mapping by step index: what input gathering reads."""

    def __getitem__(self, index: int, /) -> _T_co: ...


@dataclass(slots=True)
class Slot:
    """One input port's wiring: where its value(s) come from."""

    name: str
    sources: list[tuple[int, str]]
    collect: bool
    required: bool
    default: Any


def gather_inputs(
    slots: Sequence[Slot], values: _Indexed[Mapping[str, Any] | None], records: _Indexed[NodeRecord]
) -> tuple[dict[str, Any], str | None]:
    """A node's input values, or why it cannot run (an upstream value was not produced).

    ``values[i]`` is what step ``i`` produced (None: nothing), ``records[i]`` its record. Every
    back end gathers inputs through this.
    """
    args: dict[str, Any] = {}
    for slot in slots:
        if slot.collect:
            items = []
            for src, port in slot.sources:
                produced = values[src]
                if produced is not None and port in produced:
                    items.append(produced[port])
            args[slot.name] = items
            continue
        if not slot.sources:
            if slot.default is not MISSING:
                args[slot.name] = thaw_json(slot.default)
            continue
        src, port = slot.sources[0]
        produced = values[src]
        if produced is not None and port in produced:
            args[slot.name] = produced[port]
        elif slot.required:
            upstream = records[src]
            reason = upstream.status if upstream.status != "done" else "did not produce it"
            return args, f"input {slot.name!r} has no value: {upstream.node_id}.{port} {reason}"
        elif slot.default is not MISSING:
            args[slot.name] = thaw_json(slot.default)
    return args, None


async def attempt_node(
    executor: Executor,
    policy: NodePolicy,
    args: dict[str, Any],
    run_id: str,
    node: Node,
    record: NodeRecord,
    on_retry: Callable[[str, int, Exception], None] | None = None,
) -> Any:
    """What ``executor`` returns for ``args``, under the node's retry policy and per-attempt timeout.

    ``record.attempts`` counts the attempts; a timeout is a ``TimeoutError`` naming the node;
    ``on_retry(node id, attempt, error)`` hears of each failed attempt that is retried. The last
    failure raises :class:`NodeExecutionError`. Every back end runs its nodes through this.
    """
    attempt = 0
    while True:
        attempt += 1
        record.attempts = attempt
        ctx = NodeContext(run_id, node, attempt, record)
        try:
            if policy.timeout is None:
                return await executor(args, ctx)
            return await asyncio.wait_for(executor(args, ctx), policy.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error: Exception = exc
            if isinstance(exc, asyncio.TimeoutError) and policy.timeout is not None:
                error = TimeoutError(f"node {node.id!r} timed out after {policy.timeout:g} s")
            if not policy.retry.should_retry(error, attempt):
                raise NodeExecutionError(node.id, error, attempt) from error
            if on_retry is not None:
                on_retry(node.id, attempt, error)
            await asyncio.sleep(policy.retry.delay(attempt))


def output_problem(outputs: object, output_names: frozenset[str]) -> str | None:
    """Why what a node returned is not its outputs (not a dict, or names it does not declare), or None."""
    if not isinstance(outputs, dict):
        # Iterating a non-dict would kill the node's task before the node resolves, and a run would hang.
        return f"returned {type(outputs).__name__}, not a dict of output name -> value"
    unknown = [k for k in outputs if k not in output_names]
    return f"returned unknown output(s) {', '.join(map(repr, unknown))}" if unknown else None


def fanout(listeners: list[Callable[[Event], None]]) -> Callable[[Event], None]:
    """One listener that calls each of ``listeners`` in turn."""

    def listen(event: Event) -> None:
        for fn in listeners:
            fn(event)

    return listen
