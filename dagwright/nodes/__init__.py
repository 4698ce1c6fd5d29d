"""Node kinds: what each kind of IR node does when it runs.

:data:`EXECUTORS` maps a node kind to the factory of its executor; coordination
kinds register themselves here too. Flow inputs and outputs are resolved by the
scheduler directly and have no executor.
"""

from __future__ import annotations

from dagwright.execution.executor import Executor, ExecutorFactory, NodeContext
from dagwright.nodes import coordination
from dagwright.nodes.agent import agent_executor
from dagwright.nodes.function import function_executor

EXECUTORS: dict[str, ExecutorFactory] = {
    "agent": agent_executor,
    "function": function_executor,
    "vote": coordination.vote_executor,
    "route": coordination.route_executor,
    "assign": coordination.assign_executor,
    "gate": coordination.gate_executor,
    "select": coordination.select_executor,
    "gather": coordination.gather_executor,
    "map": coordination.map_executor,
}


def register_kind(kind: str, factory: ExecutorFactory) -> None:
    """Teach the runtimes a node kind: ``factory(node, binding)`` returns its executor."""
    EXECUTORS[kind] = factory


__all__ = ["EXECUTORS", "Executor", "ExecutorFactory", "NodeContext", "register_kind"]
