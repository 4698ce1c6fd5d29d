"""Running a flow on Kailash's runtimes, with dagwright's :class:`~dagwright.execution.events.RunResult` back.

``run_on_kailash(flow, inputs)`` lowers the checked flow (once per change), runs it on
``LocalRuntime`` (or ``AsyncLocalRuntime`` with ``runtime="async"``, or a runtime you
made), and reports what dagwright's scheduler reports: the flow's outputs by name, one
record per node (status, attempts, tokens, cost, the model that answered, errors).

A failed node is handled as the built-in scheduler handles it, by ``failure_mode``:
``"fail_fast"`` (the default) cancels what is still running and starts nothing more,
``"continue"`` skips only the failed node's descendants and lets every other branch
finish; either way what finished keeps its record and its outputs, ``success`` is False
and ``error`` names the node and the cause. Kailash has no setting for either:
``AsyncLocalRuntime`` ends the whole run at any failed node (and leaves the failed node's
siblings running behind it), ``LocalRuntime`` ends it at a failed node with dependents.
So during these runs a dagwright node does not raise its failure to Kailash: its record
says ``failed`` and it returns no outputs, which is how a dagwright node says "not
produced" (a router's other branches), so the nodes that need them skip themselves with
the built-in wording (:mod:`dagwright.backends.kailash.failures`). When Kailash itself stops
a run (a problem outside the nodes), the nodes it never ran are reported ``cancelled``.

The runtimes made here use Kailash's fast settings: ``enable_monitoring=False`` (no
SQLite tracking file per execute), ``connection_validation="off"`` and
``content_aware_success_detection=False`` (an output called ``success`` is data, not a
verdict). ``AsyncLocalRuntime`` also gets ``execution_timeout=0`` (no 300 s cap on a
whole run; per-node timeouts come from the flow's policies).

Kailash's task tracking of a ``LocalRuntime`` run (a ``task_manager`` given, or a runtime
made with ``enable_monitoring=True``, which keeps its own) lists every node it ran as
COMPLETED, also a dagwright node that was skipped or cancelled and returned nothing: Kailash
moves a task to RUNNING before it runs the node and allows SKIPPED only from PENDING, and a
running node cannot reach its task. So once the run is over, such a node's task is marked the
way Kailash marks its own ``SwitchNode``'s branch not taken: still COMPLETED, with no result,
and ``metadata["skipped"]`` True, here with dagwright's reason (``metadata["reason"]``).
``AsyncLocalRuntime`` records no tasks, so there is nothing to mark.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagwright.backends.kailash.failures import FailureGuard, guarding, stop_guarding
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.compiler.registry import FunctionRegistry
from dagwright.execution._sync import run_sync
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import Event, NodeRecord, RunResult
from dagwright.execution.inputs import run_values
from dagwright.execution.policy import check_run_id
from dagwright.execution.resources import RunResources, reset_resources, using_resources
from dagwright.execution.steps import emitter

if TYPE_CHECKING:
    from dagwright.backends.kailash.lowering import Lowering
    from dagwright.backends.kailash.nodes import RunRecorder
    from dagwright.execution.policy import FailureMode

__all__ = ["FAST_SETTINGS", "arun_on_kailash", "async_runtime", "local_runtime", "lowering_of", "run_on_kailash"]

_log = logging.getLogger("dagwright")

FAST_SETTINGS: dict[str, Any] = {
    "enable_monitoring": False,
    "connection_validation": "off",
    "content_aware_success_detection": False,
}


def local_runtime(**overrides: Any) -> Any:
    """A Kailash ``LocalRuntime`` with the fast settings (``overrides`` win). Close it when done."""
    from kailash.runtime.local import LocalRuntime  # type: ignore[import-untyped]

    return LocalRuntime(**{**FAST_SETTINGS, **overrides})


def async_runtime(**overrides: Any) -> Any:
    """A Kailash ``AsyncLocalRuntime`` with the fast settings and no whole-run timeout (``overrides`` win)."""
    from kailash.runtime.async_local import AsyncLocalRuntime  # type: ignore[import-untyped]

    return AsyncLocalRuntime(**{**FAST_SETTINGS, "execution_timeout": 0, **overrides})


def lowering_of(target: object, registry: FunctionRegistry | None = None) -> Lowering:
    """The lowering of a Lowering (``Flow`` makes its own) or of a compiled Graph (functions bound through
    ``registry``)."""
    from dagwright.backends.builtin.plan import bind_nodes
    from dagwright.backends.kailash.lowering import Lowering, lower_graph

    if isinstance(target, Lowering):
        return target
    if isinstance(target, Graph):
        return lower_graph(target, bind_nodes(target, registry=registry))
    if callable(getattr(target, "_kailash_lowering", None)):
        lowering: Lowering = target._kailash_lowering()  # type: ignore[attr-defined]
        return lowering
    raise TypeError(f"Kailash runs a Flow or a compiled Graph, got {type(target).__name__}")


async def arun_on_kailash(
    target: object,
    inputs: Mapping[str, Any] | None = None,
    *,
    runtime: Any = "local",
    registry: FunctionRegistry | None = None,
    run_id: str | None = None,
    failure_mode: FailureMode = "fail_fast",
    observers: Sequence[Callable[[Event], None]] = (),
    resources: RunResources | None = None,
    task_manager: Any = None,
) -> RunResult:
    """Run ``target`` on Kailash and return a :class:`RunResult` (see the module docstring).

    ``runtime`` is ``"local"`` (``LocalRuntime``), ``"async"`` (``AsyncLocalRuntime``: independent
    nodes run concurrently) or a Kailash runtime instance, which is used as it is and left open.
    ``failure_mode`` is the built-in scheduler's: ``"fail_fast"`` (cancel the rest at the first
    failed node) or ``"continue"`` (skip only its descendants). ``observers`` (a flow's monitors)
    hear the run as the built-in scheduler tells it: ``run_started``, one event per node as the
    run ends (``node_finished``, ``node_failed``, ``node_skipped``), ``run_finished``.
    ``resources`` are what the run's nodes share (MCP connections: see :mod:`dagwright.execution.resources`);
    by default the run's own, closed when it ends. Kailash awaits the nodes of ``LocalRuntime`` and
    ``AsyncLocalRuntime`` on this event loop, so an MCP server is connected once per run there too.
    ``task_manager`` (a Kailash ``TaskManager``) is handed to the runtime for its task tracking; the
    tasks of the nodes that did not run are then marked skipped, with the reason (module docstring).
    """
    from dagwright.backends.kailash.nodes import RunRecorder, recording, stop_recording

    if failure_mode not in ("fail_fast", "continue"):
        raise ValueError(f"failure_mode must be 'fail_fast' or 'continue', got {failure_mode!r}")
    check_run_id(run_id)
    lowering = lowering_of(target, registry)
    values = run_values(lowering.name, lowering.graph.input_nodes, inputs or {})
    parameters = lowering.parameters(values)
    workflow = lowering.cached_workflow()
    owned = isinstance(runtime, str)
    if runtime == "local":
        engine = local_runtime()
    elif runtime == "async":
        engine = async_runtime()
    elif isinstance(runtime, str):
        raise ValueError(f"runtime must be 'local', 'async' or a Kailash runtime, got {runtime!r}")
    else:
        engine = runtime
    recorder = RunRecorder(run_id or uuid.uuid4().hex)
    emit = emitter(observers, recorder.run_id)
    if emit is not None:
        emit("run_started")
    started = time.time()
    failure: BaseException | None = None
    results: Mapping[str, Any] = {}
    tracked_run: str | None = None
    token = recording(recorder)
    guarded = guarding(FailureGuard(_dagwright_nodes(workflow), recorder.records, failure_mode))
    scope = resources if resources is not None else RunResources()
    shared = using_resources(scope)
    try:
        results, tracked_run = await engine.execute_async(workflow, task_manager=task_manager, parameters=parameters)
    except Exception as exc:
        failure = exc
    finally:
        reset_resources(shared)
        stop_guarding(guarded)
        stop_recording(token)
        if owned:
            engine.close()
        if resources is None:
            await scope.aclose()
    result = _result(lowering, values, recorder, results, failure, failure_mode, started)
    if tracked_run:
        _mark_tasks_not_run(engine, task_manager, tracked_run, result.nodes)
    if emit is not None:
        _tell(emit, result)
    return result


def _mark_tasks_not_run(engine: Any, manager: Any, run_id: str, records: Mapping[str, NodeRecord]) -> None:
    """Mark the Kailash tasks of the nodes that did not run (skipped, cancelled) the way Kailash marks a branch
    not taken: COMPLETED, no result, ``metadata={"skipped": True, "reason": ...}``.

    ``manager`` is the run's task manager; without one, a ``LocalRuntime`` with ``enable_monitoring`` kept
    its own and wrote it to Kailash's default SQLite store, which is updated there.
    ``AsyncLocalRuntime`` records no tasks.
    """
    not_run = {
        r.node_id: r.skip_reason or r.status
        for r in records.values()
        if r.status in ("skipped", "cancelled") and r.kind != INPUT_KIND
    }
    if not not_run:
        return
    from kailash.runtime.async_local import AsyncLocalRuntime
    from kailash.tracking import TaskManager, TaskStatus  # type: ignore[import-untyped]

    if isinstance(engine, AsyncLocalRuntime):
        return
    store = None
    try:
        if manager is None:
            if not getattr(engine, "enable_monitoring", False):
                return
            from kailash.tracking.storage.database import SQLiteStorage  # type: ignore[import-untyped]

            store = SQLiteStorage()
            manager = TaskManager(storage_backend=store)
        for task in manager.get_run_tasks(run_id):
            reason = not_run.get(task.node_id)
            if reason is None or task.status != TaskStatus.COMPLETED or task.result:
                continue
            metadata = {"skipped": True, "reason": reason}
            manager.update_task_status(task.task_id, TaskStatus.COMPLETED, ended_at=task.ended_at, metadata=metadata)
    except Exception as exc:  # Kailash's tracking is a record of the run: failing to amend it does not fail the run
        _log.warning("could not mark the skipped nodes in Kailash's task tracking of run %s: %s", run_id, exc)
    finally:
        if store is not None:
            store.close()


def _dagwright_nodes(workflow: Any) -> frozenset[int]:
    """The ``id()`` of each dagwright node instance of ``workflow``: the nodes a run's failure mode applies to."""
    from dagwright.backends.kailash.nodes import DagwrightNodeBase

    nodes = (workflow.get_node(node_id) for node_id in workflow.nodes)
    return frozenset(id(node) for node in nodes if isinstance(node, DagwrightNodeBase))


def _tell(emit: Callable[..., None], result: RunResult) -> None:
    """The nodes' events of a finished run, in the built-in scheduler's words, then ``run_finished``."""
    for record in result.nodes.values():
        if record.kind == INPUT_KIND:
            continue
        if record.status in ("done", "cached"):
            emit("node_finished", record.node_id, attempt=record.attempts, record=record)
        elif record.status == "failed":
            emit("node_failed", record.node_id, attempt=record.attempts, error=record.error, record=record)
        elif record.status == "skipped":
            emit("node_skipped", record.node_id, error=record.skip_reason, record=record)
    emit("run_finished")


def run_on_kailash(
    target: object,
    inputs: Mapping[str, Any] | None = None,
    *,
    runtime: Any = "local",
    registry: FunctionRegistry | None = None,
    run_id: str | None = None,
    failure_mode: FailureMode = "fail_fast",
    observers: Sequence[Callable[[Event], None]] = (),
    task_manager: Any = None,
) -> RunResult:
    """:func:`arun_on_kailash` from sync code (also inside a running event loop)."""
    return run_sync(
        arun_on_kailash(
            target,
            inputs,
            runtime=runtime,
            registry=registry,
            run_id=run_id,
            failure_mode=failure_mode,
            observers=observers,
            task_manager=task_manager,
        )
    )


# --------------------------------------------------------------------------- the RunResult


def _result(
    lowering: Lowering,
    values: Mapping[str, Any],
    recorder: RunRecorder,
    results: Mapping[str, Any],
    failure: BaseException | None,
    failure_mode: FailureMode,
    started: float,
) -> RunResult:
    graph = lowering.graph
    records = _records(graph, recorder.records, results)
    failed = [r for r in records.values() if r.status == "failed"]
    # Kailash stopped (failure), or fail_fast did: the nodes left were cancelled, with the built-in wording.
    why = ""
    if failure is not None:
        why = f"cancelled: {failed[0].node_id} failed" if failed else f"cancelled: {type(failure).__name__}"
    elif failed and failure_mode == "fail_fast":
        why = f"cancelled: {failed[0].node_id} failed"
    if why:
        for record in records.values():
            if record.status in ("pending", "running") and record.kind != OUTPUT_KIND:
                record.status = "cancelled"
                record.skip_reason = why
    outputs = _outputs(lowering, values, records, why)
    error: str | None = None
    if failed:
        error = "; ".join(f"{r.node_id}: {r.error_type}: {r.error}" for r in failed)
    elif failure is not None:
        error = f"{type(failure).__name__}: {failure}"
    return RunResult(
        run_id=recorder.run_id,
        flow=graph.name,
        outputs={name: outputs[name] for name in lowering.outputs if name in outputs},
        nodes=records,
        success=failure is None and not failed,
        error=error,
        started_at=started,
        ended_at=time.time(),
        graph_hash=graph.content_hash,
    )


def _records(graph: Graph, recorded: Mapping[str, NodeRecord], results: Mapping[str, Any]) -> dict[str, NodeRecord]:
    """One record per node of ``graph``: the recorded ones, flow inputs done, failures Kailash kept as data."""
    records: dict[str, NodeRecord] = {}
    for node in graph.nodes:
        record = recorded.get(node.id)
        if record is None:
            record = NodeRecord(node.id, node.kind)
            if node.kind == INPUT_KIND:
                record.status = "done"
        records[node.id] = record
    # A failed end node that raised to LocalRuntime: it keeps {"failed": True, "error": ..., "_exception": ...}
    # and goes on. Dagwright's own nodes do not raise during these runs; this is for any that still does.
    for node_id, outcome in results.items():
        record = records.get(node_id)
        if record is None or not isinstance(outcome, Mapping) or not outcome.get("failed") or record.status == "failed":
            continue
        cause = _cause(outcome.get("_exception"))
        record.status = "failed"
        record.error_type = type(cause).__name__ if cause is not None else str(outcome.get("error_type", "Error"))
        record.error = (str(cause) or type(cause).__name__) if cause is not None else str(outcome.get("error", ""))
    return records


def _outputs(
    lowering: Lowering, values: Mapping[str, Any], records: dict[str, NodeRecord], cancelled: str
) -> dict[str, Any]:
    """The flow's outputs by name, and each output node's record: done, cancelled (``cancelled`` says why,
    when the run was stopped) or skipped, as the built-in scheduler words it."""
    graph = lowering.graph
    outputs: dict[str, Any] = {}
    input_ids = {n.id: str(n.config.get("name", n.outputs[0].name)) for n in graph.input_nodes}
    for out in graph.output_nodes:
        name = str(out.config.get("name", out.inputs[0].name))
        record = records[out.id]
        where = lowering.outputs.get(name)
        if where is None:
            continue
        source, port = where
        if source in input_ids:
            outputs[name] = values[input_ids[source]]
            record.status = "done"
            continue
        upstream = records[source]
        if upstream.status == "done" and port in upstream.outputs:
            outputs[name] = upstream.outputs[port]
            record.status = "done"
        elif cancelled:
            record.status = "cancelled"
            record.skip_reason = cancelled
        else:
            record.status = "skipped"
            reason = upstream.status if upstream.status != "done" else "did not produce it"
            record.skip_reason = f"input {out.inputs[0].name!r} has no value: {source}.{port} {reason}"
    return outputs


def _cause(exc: object) -> BaseException | None:
    """The node's own exception inside Kailash's wrapping (dagwright's NodeExecutionError holds it)."""
    seen: set[int] = set()
    current = exc if isinstance(exc, BaseException) else None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NodeExecutionError):
            return current.error
        current = current.__cause__
    return exc if isinstance(exc, BaseException) else None
