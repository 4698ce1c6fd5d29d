"""Running graphs and flows: the public entry points of the built-in back end.

``Runtime().execute(graph, inputs)`` returns ``(results, run_id)`` the way Kailash's
LocalRuntime does; ``Runtime().run(...)`` returns the full :class:`RunResult`.
It runs a compiled Graph (a function node of a graph loaded from JSON is bound through a
:class:`FunctionRegistry`) or a Flow, which prepares its own plan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dagwright.backends.builtin.plan import Schedulable, build_plan
from dagwright.backends.builtin.scheduler import Scheduler
from dagwright.compiler.ir import Graph
from dagwright.compiler.registry import FunctionRegistry
from dagwright.execution._sync import run_sync
from dagwright.execution.events import Event, RunResult
from dagwright.execution.policy import FailureMode, RunOptions

__all__ = ["Runtime"]


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
        if isinstance(target, Graph):
            return Scheduler(build_plan(target, registry=self.registry))
        if callable(getattr(target, "_scheduler", None)):
            schedulable: Schedulable = target  # type: ignore[assignment]
            return schedulable._scheduler()
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

        Raises :class:`~dagwright.execution.errors.RunFailedError` when a node failed,
        rather than hiding the failure inside the results.
        """
        result = self.run(target, inputs).raise_for_failure()
        results = {nid: dict(rec.outputs) for nid, rec in result.nodes.items() if rec.status in ("done", "cached")}
        return results, result.run_id
