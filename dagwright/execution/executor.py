"""The contract between the scheduler and node kinds.

An executor is an async callable ``(inputs, context) -> outputs``: ``inputs`` maps
input port names to values (a collect port gets a list, in edge order), the
returned dict maps output port names to values. A port left out of the result
is *not produced*: nodes that need it are skipped (this is how a router leaves
branches unrun). Executors record LLM usage and the answering model on
``context.record``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dagwright.compiler.ir import Node
from dagwright.execution.events import NodeRecord

__all__ = ["Executor", "ExecutorFactory", "NodeContext"]


@dataclass(slots=True)
class NodeContext:
    """What an executor may know about the execution it is part of."""

    run_id: str
    node: Node
    attempt: int
    record: NodeRecord


Executor = Callable[[dict[str, Any], NodeContext], Awaitable[dict[str, Any]]]


class ExecutorFactory(Protocol):
    """Builds the executor of one node from the node and what it is bound to (agent, function, ...)."""

    def __call__(self, node: Node, binding: object) -> Executor: ...
