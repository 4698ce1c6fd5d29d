"""What a run leaves behind: per-node records, the run's result, and the event stream.

``RunResult.nodes`` maps node id to a :class:`NodeRecord` (status, outputs,
attempts, timing, tokens, cost); the drawings read the same records for their
run overlay. Events (:class:`Event`) are emitted while a run progresses, for
progress displays and monitors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Event", "EventKind", "NodeRecord", "NodeStatus", "RunResult", "Usage"]

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
