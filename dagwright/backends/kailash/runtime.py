"""Running a flow on Kailash's runtimes, with dagwright's :class:`~dagwright.execution.events.RunResult` back.

``run_on_kailash(flow, inputs)`` lowers the checked flow (once per change), runs it on
``LocalRuntime`` (or ``AsyncLocalRuntime`` with ``runtime="async"``, or a runtime you
made), and reports what dagwright's scheduler reports: the flow's outputs by name, one
record per node (status, attempts, tokens, cost, the model that answered, errors).

Kailash keeps going when a node without dependents fails and reports it only as
``{"failed": True}`` inside its results; here every failure makes ``success`` False
and ``error`` names the node and the cause. When Kailash stops at a failed node, the
nodes it never ran are reported ``cancelled``.

The runtimes made here use Kailash's fast settings: ``enable_monitoring=False`` (no
SQLite tracking file per execute), ``connection_validation="off"`` and
``content_aware_success_detection=False`` (an output called ``success`` is data, not a
verdict). ``AsyncLocalRuntime`` also gets ``execution_timeout=0`` (no 300 s cap on a
whole run; per-node timeouts come from the flow's policies).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.compiler.registry import FunctionRegistry
from dagwright.execution._sync import run_sync
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import NodeRecord, RunResult
from dagwright.execution.inputs import run_values

if TYPE_CHECKING:
    from dagwright.backends.kailash.lowering import Lowering

__all__ = ["FAST_SETTINGS", "arun_on_kailash", "async_runtime", "local_runtime", "lowering_of", "run_on_kailash"]

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
) -> RunResult:
    """Run ``target`` on Kailash and return a :class:`RunResult` (see the module docstring).

    ``runtime`` is ``"local"`` (``LocalRuntime``), ``"async"`` (``AsyncLocalRuntime``: independent
    nodes run concurrently) or a Kailash runtime instance, which is used as it is and left open.
    """
    from dagwright.backends.kailash.nodes import RunRecorder, recording, stop_recording

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
    started = time.time()
    failure: BaseException | None = None
    results: Mapping[str, Any] = {}
    token = recording(recorder)
    try:
        results, _ = await engine.execute_async(workflow, parameters=parameters)
    except Exception as exc:
        failure = exc
    finally:
        stop_recording(token)
        if owned:
            engine.close()
    return _result(lowering, values, recorder.records, results, failure, recorder.run_id, started)


def run_on_kailash(
    target: object,
    inputs: Mapping[str, Any] | None = None,
    *,
    runtime: Any = "local",
    registry: FunctionRegistry | None = None,
    run_id: str | None = None,
) -> RunResult:
    """:func:`arun_on_kailash` from sync code (also inside a running event loop)."""
    return run_sync(arun_on_kailash(target, inputs, runtime=runtime, registry=registry, run_id=run_id))


def _result(
    lowering: Lowering,
    values: Mapping[str, Any],
    recorded: Mapping[str, NodeRecord],
    results: Mapping[str, Any],
    failure: BaseException | None,
    run_id: str,
    started: float,
) -> RunResult:
    graph = lowering.graph
    records: dict[str, NodeRecord] = {}
    for node in graph.nodes:
        record = recorded.get(node.id)
        if record is None:
            record = NodeRecord(node.id, node.kind)
            if node.kind == INPUT_KIND:
                record.status = "done"
        records[node.id] = record
    # A failed end node: Kailash keeps {"failed": True, "error": ..., "_exception": ...} and goes on.
    for node_id, outcome in results.items():
        record = records.get(node_id)
        if record is None or not isinstance(outcome, Mapping) or not outcome.get("failed") or record.status == "failed":
            continue
        cause = _cause(outcome.get("_exception"))
        record.status = "failed"
        record.error_type = type(cause).__name__ if cause is not None else str(outcome.get("error_type", "Error"))
        record.error = (str(cause) or type(cause).__name__) if cause is not None else str(outcome.get("error", ""))
    failed = [r for r in records.values() if r.status == "failed"]
    why = ""
    if failure is not None or failed:
        # The built-in scheduler's wording for what a failure kept from running.
        why = f"cancelled: {failed[0].node_id} failed" if failed else f"cancelled: {type(failure).__name__}"
        for record in records.values():
            if record.status in ("pending", "running") and record.kind != OUTPUT_KIND:
                record.status = "cancelled"
                record.skip_reason = why
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
        elif failure is not None or failed:
            record.status = "cancelled"
            record.skip_reason = why
        else:
            record.status = "skipped"
            reason = upstream.status if upstream.status != "done" else "did not produce it"
            record.skip_reason = f"input {out.inputs[0].name!r} has no value: {source}.{port} {reason}"
    error: str | None = None
    if failed:
        error = "; ".join(f"{r.node_id}: {r.error_type}: {r.error}" for r in failed)
    elif failure is not None:
        error = f"{type(failure).__name__}: {failure}"
    return RunResult(
        run_id=run_id,
        flow=graph.name,
        outputs={name: outputs[name] for name in lowering.outputs if name in outputs},
        nodes=records,
        success=failure is None and not failed,
        error=error,
        started_at=started,
        ended_at=time.time(),
        graph_hash=graph.content_hash,
    )


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
