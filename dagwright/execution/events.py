"""What a run leaves behind: per-node records, the run's result, and the event stream.

``RunResult.nodes`` maps node id to a :class:`NodeRecord` (status, outputs,
attempts, timing, tokens, cost); the drawings read the same records for their
run overlay. Events (:class:`Event`) are emitted while a run progresses, for
progress displays and monitors.

``RunResult.to_json()`` saves a result and ``RunResult.from_json()`` reads it back equal
to the original (``dagwright render --run RUN.json`` draws a saved run on its flow).
Only plain JSON values can round-trip that way, so a result whose outputs hold other
objects is saved with ``outputs=False``: statuses, timing, tokens and cost, no values.
"""

from __future__ import annotations

import copy
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RUN_FORMAT", "Event", "EventKind", "NodeRecord", "NodeStatus", "RunResult", "Usage"]

NodeStatus = Literal["pending", "running", "done", "failed", "skipped", "cached", "cancelled"]
EventKind = Literal[
    "run_started", "run_finished", "node_started", "node_finished", "node_failed", "node_retried", "node_skipped"
]


@dataclass(slots=True)
class Usage:
    """Tokens and cost of LLM calls. ``cost_known`` is False when a model's price is not in the table."""

    prompt: int = 0
    completion: int = 0
    cost: float = 0.0
    cost_known: bool = True
    calls: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def add(self, other: Usage) -> None:
        self.prompt += other.prompt
        self.completion += other.completion
        self.cost += other.cost
        self.cost_known = self.cost_known and other.cost_known
        self.calls += other.calls

    def tokens(self) -> dict[str, int]:
        """``{"prompt": n, "completion": n, "total": n}``."""
        return {"prompt": self.prompt, "completion": self.completion, "total": self.total}


@dataclass(slots=True)
class NodeRecord:
    """One node's execution in a run."""

    node_id: str
    kind: str
    status: NodeStatus = "pending"
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    error_type: str | None = None
    usage: Usage | None = None
    model: str | None = None
    skip_reason: str | None = None
    # Where a failed node's own code raised its error (``file:line in function``), when it did.
    error_location: str | None = None
    # An agent's tool calls, in order: name, arguments, result, duration_ms, round (and error).
    tool_calls: list[dict[str, Any]] | None = None

    def __copy__(self) -> NodeRecord:
        # copy.copy() of a slots dataclass goes through __reduce_ex__; a run with a listener snapshots every node.
        return NodeRecord(
            self.node_id,
            self.kind,
            self.status,
            self.outputs,
            self.attempts,
            self.started_at,
            self.ended_at,
            self.error,
            self.error_type,
            self.usage,
            self.model,
            self.skip_reason,
            self.error_location,
            self.tool_calls,
        )

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at) * 1000.0

    @property
    def tokens(self) -> dict[str, int] | None:
        return self.usage.tokens() if self.usage is not None else None

    @property
    def cost(self) -> float | None:
        return self.usage.cost if self.usage is not None else None


@dataclass(slots=True, repr=False)
class RunResult:
    """The result of running a flow.

    ``outputs`` holds the flow's outputs by name; ``nodes`` every node's record;
    ``success`` is False when any node failed (``error`` says which and why).
    """

    run_id: str
    flow: str
    outputs: dict[str, Any]
    nodes: dict[str, NodeRecord]
    success: bool
    error: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    graph_hash: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.ended_at - self.started_at) * 1000.0

    def __repr__(self) -> str:
        # Compact on purpose: asyncio formats a finished task's result when a run ends, and the
        # field-by-field repr of a 1 000-node result costs milliseconds.
        state = "success" if self.success else "failed"
        outputs = ", ".join(self.outputs)
        return (
            f"RunResult({self.flow!r}, run_id={self.run_id!r}, {state}, nodes={len(self.nodes)}, outputs=[{outputs}])"
        )

    @property
    def usage(self) -> Usage:
        """Tokens and cost summed over every node."""
        total = Usage()
        for record in self.nodes.values():
            if record.usage is not None:
                total.add(record.usage)
        return total

    @property
    def failed(self) -> list[NodeRecord]:
        return [r for r in self.nodes.values() if r.status == "failed"]

    def __getitem__(self, name: str) -> Any:
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(f"flow {self.flow!r} has no output {name!r}; outputs: {', '.join(self.outputs)}") from None

    def raise_for_failure(self) -> RunResult:
        """Raise :class:`RunFailedError` when the run did not succeed; returns self otherwise."""
        if not self.success:
            from dagwright.execution.errors import RunFailedError

            raise RunFailedError(self)
        return self

    def to_dict(self, *, outputs: bool = True) -> dict[str, Any]:
        """The result as plain JSON data; ``outputs=False`` leaves out the flow's and the nodes' values.

        Raises ValueError, naming the value, when an output is not plain JSON (``str``, ``int``,
        finite ``float``, ``bool``, ``None``, ``list``, ``dict`` with ``str`` keys): it would not
        come back as it was. Save such a run with ``outputs=False``.
        """
        return _run_to_dict(self, outputs)

    def to_json(self, *, outputs: bool = True, indent: int | None = 2) -> str:
        """The result as JSON text that :meth:`from_json` reads back equal; see :meth:`to_dict`."""
        return json.dumps(self.to_dict(outputs=outputs), ensure_ascii=False, allow_nan=False, indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """A result from :meth:`to_dict`'s data; raises ValueError saying what is wrong where."""
        return _run_from_dict(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunResult:
        """A result from :meth:`to_json`'s text; raises ValueError for text that is not such a result."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"run JSON: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"run JSON: not UTF-8 text: {exc.reason}") from None
        return _run_from_dict(data)

    def summary(self) -> Mapping[str, Any]:
        usage = self.usage
        return {
            "run_id": self.run_id,
            "success": self.success,
            "duration_ms": round(self.duration_ms, 3),
            "nodes": {s: sum(1 for r in self.nodes.values() if r.status == s) for s in _STATUSES},
            "tokens": usage.tokens(),
            "cost": usage.cost,
        }


_STATUSES: tuple[NodeStatus, ...] = ("done", "failed", "skipped", "cached", "cancelled")


# --------------------------------------------------------------------------- JSON form

RUN_FORMAT = "dagwright.run"
_RUN_FORMAT_VERSION = 1
_NODE_STATUSES: frozenset[str] = frozenset(typing.get_args(NodeStatus))


def _check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Raise ValueError unless ``value`` is JSON that loads back as an equal value of the same types."""
    # Exact types only: a str subclass, a tuple or a NaN would come back as something else.
    kind = type(value)
    if depth > 200:
        raise ValueError(f"run JSON: {where} is nested too deeply to save")
    if value is None or kind in (str, bool, int):
        return
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"run JSON: {where} is {value!r}, which JSON cannot hold; save with outputs=False")
        return
    if kind is list:
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"run JSON: {where} has a {type(key).__name__} key {key!r}; save with outputs=False")
            _check_plain(item, f"{where}[{key!r}]", depth + 1)
        return
    raise ValueError(
        f"run JSON: {where} is a {kind.__name__}, not plain JSON, so it would not load back as it was; "
        "save the run with to_json(outputs=False) (statuses, timing, tokens and cost only)"
    )


def _usage_to_dict(usage: Usage | None) -> dict[str, Any] | None:
    """``usage`` as JSON data (None stays None)."""
    if usage is None:
        return None
    return {
        "prompt": usage.prompt,
        "completion": usage.completion,
        "cost": usage.cost,
        "cost_known": usage.cost_known,
        "calls": usage.calls,
    }


def _record_to_dict(key: str, record: NodeRecord, outputs: bool) -> dict[str, Any]:
    """One node's record as JSON data; its outputs only with ``outputs`` (and then checked)."""
    if outputs:
        _check_plain(record.outputs, f"nodes[{key!r}].outputs")
    return {
        "node_id": record.node_id,
        "kind": record.kind,
        "status": record.status,
        "outputs": copy.deepcopy(record.outputs) if outputs else {},
        "attempts": record.attempts,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "error": record.error,
        "error_type": record.error_type,
        "usage": _usage_to_dict(record.usage),
        "model": record.model,
        "skip_reason": record.skip_reason,
        "error_location": record.error_location,
        **({} if record.tool_calls is None else {"tool_calls": _tool_calls_to_list(record.tool_calls, outputs)}),
    }


def _tool_calls_to_list(calls: list[dict[str, Any]], outputs: bool) -> list[dict[str, Any]]:
    """Tool calls as JSON data; their arguments and results are data like outputs, saved only with them."""
    if outputs:
        return copy.deepcopy(calls)
    return [{k: v for k, v in call.items() if k not in ("arguments", "result")} for call in calls]


def _run_to_dict(result: RunResult, outputs: bool) -> dict[str, Any]:
    """See :meth:`RunResult.to_dict`; values are copied, so the data and the result never share a list."""
    if outputs:
        _check_plain(result.outputs, "outputs")
    return {
        "format": RUN_FORMAT,
        "version": _RUN_FORMAT_VERSION,
        "run_id": result.run_id,
        "flow": result.flow,
        "success": result.success,
        "error": result.error,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "graph_hash": result.graph_hash,
        "outputs_saved": outputs,
        "outputs": copy.deepcopy(result.outputs) if outputs else {},
        "nodes": {key: _record_to_dict(key, record, outputs) for key, record in result.nodes.items()},
    }


class _Fields:
    """Typed reads of one JSON object's fields, each failure a ValueError that says where."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"run JSON: {where} must be an object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def get(self, name: str, types: tuple[type, ...], *, optional: bool = False) -> Any:
        """Field ``name``, an instance of ``types`` (or None when ``optional`` and absent or null)."""
        if name not in self.data:
            if optional:
                return None
            raise ValueError(f"run JSON: {self.where} has no field {name!r}")
        value = self.data[name]
        if value is None and optional:
            return None
        # bool is an int: a count or a time given as true/false is a mistake, not a number.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types) + (" or null" if optional else "")
            raise ValueError(f"run JSON: {self.where}.{name} must be {names}, got {json.dumps(value)[:60]}")
        if float in types and isinstance(value, int):
            return float(value)  # a time or cost written as 3 is the float 3.0 it was
        return value


def _usage_from_dict(data: object, where: str) -> Usage | None:
    """A :class:`Usage` from ``_usage_to_dict``'s data."""
    if data is None:
        return None
    fields = _Fields(data, where)
    return Usage(
        fields.get("prompt", (int,)),
        fields.get("completion", (int,)),
        fields.get("cost", (float, int)),
        fields.get("cost_known", (bool,)),
        fields.get("calls", (int,)),
    )


def _record_from_dict(key: str, data: object) -> NodeRecord:
    """A :class:`NodeRecord` from ``_record_to_dict``'s data, ``key`` naming it in errors."""
    where = f"nodes[{json.dumps(key, ensure_ascii=False)}]"
    fields = _Fields(data, where)
    status = fields.get("status", (str,))
    if status not in _NODE_STATUSES:
        raise ValueError(f"run JSON: {where}.status must be one of {', '.join(sorted(_NODE_STATUSES))}, got {status!r}")
    return NodeRecord(
        fields.get("node_id", (str,)),
        fields.get("kind", (str,)),
        status,
        copy.deepcopy(dict(fields.get("outputs", (dict,)))),
        fields.get("attempts", (int,)),
        fields.get("started_at", (float, int), optional=True),
        fields.get("ended_at", (float, int), optional=True),
        fields.get("error", (str,), optional=True),
        fields.get("error_type", (str,), optional=True),
        _usage_from_dict(fields.get("usage", (dict,), optional=True), f"{where}.usage"),
        fields.get("model", (str,), optional=True),
        fields.get("skip_reason", (str,), optional=True),
        fields.get("error_location", (str,), optional=True),
        copy.deepcopy(fields.get("tool_calls", (list,), optional=True)),
    )


def _run_from_dict(data: object) -> RunResult:
    """See :meth:`RunResult.from_dict`."""
    fields = _Fields(data, "the run")
    fmt = fields.data.get("format")
    if fmt != RUN_FORMAT:
        raise ValueError(
            f"run JSON: not a saved run (format {fmt!r}, expected {RUN_FORMAT!r}); save one with RunResult.to_json()"
        )
    version = fields.get("version", (int,))
    if version > _RUN_FORMAT_VERSION:
        raise ValueError(
            f"run JSON: format version {version} is newer than this dagwright reads ({_RUN_FORMAT_VERSION})"
        )
    nodes = fields.get("nodes", (dict,))
    return RunResult(
        fields.get("run_id", (str,)),
        fields.get("flow", (str,)),
        copy.deepcopy(dict(fields.get("outputs", (dict,)))),
        {key: _record_from_dict(key, record) for key, record in nodes.items()},
        fields.get("success", (bool,)),
        fields.get("error", (str,), optional=True),
        fields.get("started_at", (float, int)),
        fields.get("ended_at", (float, int)),
        fields.get("graph_hash", (str,)),
    )


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened during a run, in the order it happened."""

    kind: EventKind
    run_id: str
    node_id: str | None = None
    time: float = 0.0
    attempt: int = 0
    error: str | None = None
    record: NodeRecord | None = None
