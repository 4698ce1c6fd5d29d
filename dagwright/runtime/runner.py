"""Running graphs and flows: the public entry points of the built-in back end.

``Runtime().execute(graph, inputs)`` returns ``(results, run_id)`` the way Kailash's
LocalRuntime does; ``Runtime().run(...)`` returns the full :class:`RunResult`.
Executors come from the node kinds in :mod:`dagwright.nodes`; a function node of a
graph loaded from JSON is bound through a :class:`FunctionRegistry`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.compiler.registry import FunctionRegistry
from dagwright.nodes import EXECUTORS
from dagwright.nodes.base import Executor
from dagwright.runtime._sync import run_sync
from dagwright.runtime.events import Event, RunResult
from dagwright.runtime.policy import FailureMode, NodePolicy
from dagwright.runtime.scheduler import ExecutionPlan, RunOptions, Scheduler

__all__ = ["Runtime", "build_plan"]


def build_plan(
    graph: Graph,
    bindings: Mapping[str, object] | None = None,
    policies: Mapping[str, NodePolicy] | None = None,
    registry: FunctionRegistry | None = None,
) -> ExecutionPlan:
    """Bind every node of ``graph`` to an executor and wire the plan.

    ``bindings`` maps node ids to agents/functions; function nodes without a binding
    are resolved through ``registry`` (all failures reported together).
    """
    bindings = dict(bindings or {})
    unbound_functions = [n for n in graph.nodes if n.kind == "function" and n.id not in bindings]
    if unbound_functions:
        if registry is None:
            names = ", ".join(repr(n.id) for n in unbound_functions)
            raise ValueError(
                f"function node(s) {names} have no function bound; pass registry=FunctionRegistry(...) to bind "
                "the functions of a graph loaded from JSON"
            )
        bindings.update(registry.bind(Graph(graph.name, tuple(unbound_functions))))
    executors: dict[str, Executor] = {}
    unknown: list[str] = []
    for node in graph.nodes:
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            continue
        factory = EXECUTORS.get(node.kind)
        if factory is None:
            unknown.append(f"{node.id!r} ({node.kind})")
            continue
        executor = factory(node, bindings.get(node.id))
        policy = (policies or {}).get(node.id)
        if policy is not None and policy.cache is not None:
            from dagwright.runtime.cache import cached_executor

            executor = cached_executor(executor, node, policy.cache)
        executors[node.id] = executor
    if unknown:
        raise ValueError(f"no runtime support for the kind of node(s) {', '.join(unknown)}")
    return ExecutionPlan.build(graph, executors, policies)


class Runtime:
    """The built-in asyncio runtime.

    ``max_concurrency`` bounds how many nodes run at once (None: unlimited);
    ``failure_mode`` is ``"fail_fast"`` or ``"continue"``; ``registry`` binds the
    functions of graphs loaded from JSON.
    """

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        failure_mode: FailureMode = "fail_fast",
        registry: FunctionRegistry | None = None,
    ) -> None:
        self.options = RunOptions(max_concurrency=max_concurrency, failure_mode=failure_mode)
        self.registry = registry

    def _scheduler(self, target: object) -> Scheduler:
        from dagwright.compiler.flow import Flow

        if isinstance(target, Flow):
            scheduler: Scheduler = target._scheduler()
            return scheduler
        if isinstance(target, Graph):
            return Scheduler(build_plan(target, registry=self.registry))
        raise TypeError(f"Runtime runs a Flow or a compiled Graph, got {type(target).__name__}")

    def _options(self, run_id: str | None) -> RunOptions:
        if run_id is None:
            return self.options
        return RunOptions(self.options.max_concurrency, self.options.failure_mode, run_id)

    async def arun(
        self, target: object, inputs: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> RunResult:
        """Run a Flow or Graph on the running event loop."""
        return await self._scheduler(target).run(inputs or {}, self._options(run_id))

    def run(self, target: object, inputs: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> RunResult:
        """Run a Flow or Graph and wait for the result (works inside a running event loop too)."""
        return run_sync(self.arun(target, inputs, run_id=run_id))

    async def astream(self, target: object, inputs: Mapping[str, Any] | None = None) -> AsyncIterator[Event]:
        """Run, yielding :class:`Event` s as nodes start, finish, fail and retry."""
        async for event in self._scheduler(target).stream(inputs or {}, self.options):
            yield event

    def execute(self, target: object, inputs: Mapping[str, Any] | None = None) -> tuple[dict[str, dict[str, Any]], str]:
        """Kailash's shape: ``(results, run_id)`` with ``results = {node_id: {output: value}}``.

        Raises :class:`~dagwright.runtime.errors.RunFailedError` when a node failed,
        rather than hiding the failure inside the results.
        """
        result = self.run(target, inputs).raise_for_failure()
        results = {nid: dict(rec.outputs) for nid, rec in result.nodes.items() if rec.status in ("done", "cached")}
        return results, result.run_id
