"""What every back end does to run one node: gather its inputs, attempt it under its policy, check its outputs.

The built-in scheduler, the Dask workers and the Kailash node classes all run a node
through these functions, so a node is retried, timed out, skipped and checked the same
way wherever it runs, and each attempt of a node gets its own copy of the lists and
dicts it receives (:func:`own_inputs`).
"""

from __future__ import annotations

import asyncio
import copy
import marshal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from dagwright.compiler.ir import Node, thaw_json
from dagwright.compiler.signature import MISSING
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import Event, NodeRecord
from dagwright.execution.executor import Executor, NodeContext
from dagwright.execution.policy import NodePolicy

__all__ = [
    "IMMUTABLE",
    "Slot",
    "attempt_node",
    "emitter",
    "fanout",
    "gather_inputs",
    "json_copy",
    "output_problem",
    "own_inputs",
]

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

    Each attempt receives :func:`own_inputs` of ``args``: what one attempt does to its lists and
    dicts reaches neither the producer's record, nor another consumer, nor the next attempt.
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
            # Copied inside the try: a value that cannot be copied fails this node instead of killing its task.
            # The scan for a container is inlined (no call) because it runs for every node, scalars or not.
            inputs = args
            for value in args.values():
                if type(value) not in IMMUTABLE:
                    inputs = own_inputs(args)
                    break
            if policy.timeout is None:
                return await executor(inputs, ctx)
            if sys.version_info >= (3, 11):
                # In this task, as without a timeout: wait_for runs the attempt in a task of its own (before 3.12),
                # several times the cost of a plain node.
                async with asyncio.timeout(policy.timeout):
                    return await executor(inputs, ctx)
            return await asyncio.wait_for(executor(inputs, ctx), policy.timeout)
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


# Values no node can change in place: handed over as they are, after one set lookup.
IMMUTABLE: frozenset[type] = frozenset((str, int, float, bool, type(None), bytes))
_PLAIN_CONTAINERS: frozenset[type] = frozenset((list, dict, tuple))


def own_inputs(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with every list and dict in its values copied (:func:`json_copy`); ``args`` itself when none holds one.

    Every value a node receives is also kept elsewhere: in its producer's record (every back end keeps
    one per node, and the run's result shows it), in the caller's hands (a flow input), or in another
    consumer's arguments. So the consumer always gets the copy; a node taking only scalars pays one set
    lookup per input and builds nothing.
    """
    for value in args.values():
        if type(value) not in IMMUTABLE:
            return {name: v if type(v) in IMMUTABLE else json_copy(v) for name, v in args.items()}
    return args


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data's lists and dicts (and of tuples holding them); other objects are returned as they are.

    As JSON would carry it: an object that occurs twice in ``value`` (one list gathered twice by a
    collect port) becomes two independent copies. Plain data (built-in lists, dicts, tuples, str,
    int, float, bool, None and bytes all the way down) makes a round trip through ``marshal``, which
    is written in C: faster than a copy in Python, and four to eight times as fast as
    ``copy.deepcopy``. Anything else (a pydantic model, an ``OrderedDict`` inside) is copied part
    by part instead.
    """
    if type(value) in _PLAIN_CONTAINERS:
        try:
            # Format 2, the last without back-references: a repeated object is written, and read back, twice.
            return marshal.loads(marshal.dumps(value, 2))
        except ValueError:  # something in it is not plain data, or it is nested too deep for marshal
            pass
    return _copy_parts(value)


def _copy_parts(value: Any) -> Any:
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    if kind is list:
        return [v if type(v) in IMMUTABLE else _copy_parts(v) for v in value]
    if kind is dict:
        return {k: v if type(v) in IMMUTABLE else _copy_parts(v) for k, v in value.items()}
    if kind is tuple:
        if all(type(v) in IMMUTABLE for v in value):
            return value
        return tuple(_copy_parts(v) for v in value)
    if isinstance(value, (list, dict, set, bytearray)):  # a subclass (defaultdict, OrderedDict), a set
        return copy.deepcopy(value)
    # Not JSON data (a model, a client, an array): the sender's to manage, handed over as it is.
    return value


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


def emitter(observers: Sequence[Callable[[Event], None]], run_id: str) -> Callable[..., None] | None:
    """``emit(kind, node_id, **fields)``: an event of run ``run_id`` stamped now and told to every observer;
    None without observers, so a back end that reports after the fact builds no events nobody reads."""
    if not observers:
        return None
    listen = fanout(list(observers))

    def emit(kind: Any, node_id: str | None = None, **extra: Any) -> None:
        listen(Event(kind, run_id, node_id, time.time(), **extra))

    return emit
