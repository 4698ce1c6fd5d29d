"""Running a checked graph on a Dask cluster, with dagwright's :class:`~dagwright.execution.events.RunResult` back.

``run_on_dask(flow, inputs)`` (or ``flow.run(..., backend="dask")``) lowers the whole
graph up front into one Dask task graph and submits it at once:

* one task per node, keyed ``"n:<node id>@<run>"``; chains of cheap nodes (sync
  functions and coordination steps without a timeout) are fused into one task, since
  a Dask hop costs milliseconds. A fused chain never includes an agent, an async
  function or a ``map`` node: those are where the waiting happens, and they keep a
  task (a worker thread) each;
* flow input values travel inside an opaque holder, never as bare task arguments:
  Dask reads a string argument equal to a key as a dependency, so an input ``"plan"``
  next to a node ``plan`` would otherwise become a false edge;
* a node's executor and policy are pickled on the client (``cloudpickle``) and loaded
  on the worker, once per worker and plan. A worker that cannot import the module of
  a node's function fails that node with a message naming the module;
* each task runs its nodes on an event loop of its worker thread (one loop per thread,
  kept, so LLM clients and their connections are reused), under the node's retry and
  timeout policy. A task returns its node records, and the nodes downstream skip
  (``continue``) or cancel (``fail_fast``) exactly as on the built-in scheduler. In
  ``fail_fast`` a task whose node failed raises instead, carrying its records, so the
  client sees the failure without fetching results and cancels every task still queued.

Listeners of the run (``observers``: a flow's monitors) get ``run_started``, then
``node_finished`` / ``node_failed`` / ``node_skipped`` for each node as its task's
result reaches the client, then ``run_finished``: the records carry the attempts,
timings, tokens and cost measured on the worker. ``node_started`` and
``node_retried`` happen on the workers and are not sent back.

With ``client=None`` a ``LocalCluster`` on 127.0.0.1 (worker processes, many threads
each, since agents wait on I/O) is started for the run and shut down afterwards; an
address (``"tcp://host:8786"``) or a ``distributed.Client`` uses that cluster and leaves
it running. Workers need the user's code importable: install it on the workers, put it
on their ``PYTHONPATH``, or send a module with ``client.upload_file``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagwright.backends.builtin.plan import ExecutionPlan, Schedulable, build_plan
from dagwright.backends.dask.lowering import DaskLowering, build_graph, lowering_of_plan
from dagwright.backends.dask.worker import GroupFailed
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.execution.events import Event, NodeRecord, RunResult
from dagwright.execution.inputs import output_name, run_values
from dagwright.execution.policy import FailureMode, check_run_id
from dagwright.execution.steps import emitter

if TYPE_CHECKING:
    from dagwright.compiler.registry import FunctionRegistry
    from dagwright.ops.checkpoint import CheckpointStore

__all__ = ["WORKER_THREADS", "require_dask", "run_on_dask"]

WORKER_THREADS = 32
"""Threads per worker of the LocalCluster made for a run: agents spend their time waiting on the network."""


def _plan_of(target: object, registry: FunctionRegistry | None) -> ExecutionPlan:
    """The plan to lower: as given, or built for a compiled Graph (functions bound through ``registry``)."""
    if isinstance(target, ExecutionPlan):
        return target
    if isinstance(target, Graph):
        return build_plan(target, registry=registry)
    if callable(getattr(target, "_scheduler", None)):  # a Flow: it prepares its own plan
        schedulable: Schedulable = target  # type: ignore[assignment]
        return schedulable._scheduler().plan
    raise TypeError(f"Dask runs a Flow or a compiled Graph, got {type(target).__name__}")


def require_dask() -> None:
    """Raise an ImportError that names the extra to install when dask, distributed or cloudpickle is missing."""
    missing = []
    for module in ("dask", "distributed", "cloudpickle"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"backend='dask' needs the 'dask' extra ({', '.join(missing)} cannot be imported): "
            "pip install 'dagwright[dask]'"
        )


def _connect(client: object) -> tuple[Any, Callable[[], None] | None]:
    """The client to submit to, and how to close what was opened for this run (None: nothing)."""
    from distributed import Client, LocalCluster

    if client is None:
        import logging

        cluster = LocalCluster(
            n_workers=min(4, os.cpu_count() or 1),
            threads_per_worker=WORKER_THREADS,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # a free port: never collide with a cluster already running
            silence_logs=logging.ERROR,
        )
        local = Client(cluster, set_as_default=False)

        def close() -> None:
            local.close()
            cluster.close()

        return local, close
    if isinstance(client, str):
        try:
            remote = Client(client, set_as_default=False, timeout="10s")
        except OSError as exc:
            raise ConnectionError(f"cannot reach the Dask scheduler at {client!r}: {exc}") from None
        return remote, remote.close
    if isinstance(client, Client):
        return client, None
    raise TypeError(f"client must be None, a scheduler address or a distributed.Client, got {type(client).__name__}")


def run_on_dask(
    target: object,
    inputs: Mapping[str, Any] | None = None,
    *,
    client: object = None,
    failure_mode: FailureMode = "fail_fast",
    run_id: str | None = None,
    max_concurrency: int | None = None,
    registry: FunctionRegistry | None = None,
    checkpoint: CheckpointStore | None = None,
    resume: bool = False,
    observers: Sequence[Callable[[Event], None]] = (),
) -> RunResult:
    """Run ``target`` on Dask and return a :class:`RunResult` (see the module docstring).

    ``client``: None (a LocalCluster for this run), a scheduler address, or a ``distributed.Client``.
    With ``checkpoint``, the client stores each finished node's outputs as its task's result
    arrives, in the built-in scheduler's format: a run resumes on either back end. ``resume``
    continues the stored run ``run_id`` (its stored nodes are ``cached``). ``observers`` are
    called with the run's events (see the module docstring).
    """
    require_dask()
    if max_concurrency is not None:
        raise ValueError(
            "max_concurrency is not supported with backend='dask': the cluster's worker threads bound how many "
            "nodes run at once"
        )
    if failure_mode not in ("fail_fast", "continue"):
        raise ValueError(f"failure_mode must be 'fail_fast' or 'continue', got {failure_mode!r}")
    if resume and (checkpoint is None or run_id is None):
        raise ValueError("resume needs a checkpoint and the run_id of the run to resume")
    check_run_id(run_id)
    plan = _plan_of(target, registry)
    values = run_values(plan.graph.name, (plan.steps[i].node for i in plan.inputs.values()), inputs or {})
    lowering = lowering_of_plan(plan)
    run_id = run_id or uuid.uuid4().hex
    started = time.time()
    saver: Callable[[NodeRecord], None] | None = None
    cached: dict[int, dict[str, Any]] = {}
    if checkpoint is not None:
        cached, saver = _open_checkpoint(plan, checkpoint, run_id, values, resume)
    emit = emitter(observers, run_id)
    on_record = saver
    if emit is not None:
        emit("run_started")
        on_record = _reporting(emit, saver)
    dsk, keys = build_graph(lowering, values, run_id, failure_mode, cached)
    submitter, close = _connect(client)
    try:
        # as_completed looks the client up as "the current one"; a caller's own default must not win.
        with submitter.as_current():
            records = _collect(submitter, lowering, dsk, keys, failure_mode, on_record)
    finally:
        if close is not None:
            close()
    result = _result(lowering, values, records, failure_mode, run_id, started)
    if checkpoint is not None:
        checkpoint.finish_run(run_id, "succeeded" if result.success else "failed")
    if emit is not None:
        for step in plan.steps:  # output nodes are settled here, on the client
            record = result.nodes[step.node.id]
            if step.kind == OUTPUT_KIND and record.status == "skipped":
                emit("node_skipped", record.node_id, error=record.skip_reason, record=record)
        emit("run_finished")
    return result


def _reporting(emit: Callable[..., None], saver: Callable[[NodeRecord], None] | None) -> Callable[[NodeRecord], None]:
    """Each node record as it reaches the client: stored (with a checkpoint), then told to the observers
    with the event the built-in scheduler sends for it (none for a node cancelled by a failure)."""

    def on_record(record: NodeRecord) -> None:
        if saver is not None:
            saver(record)
        if record.status in ("done", "cached"):
            emit("node_finished", record.node_id, attempt=record.attempts, record=record)
        elif record.status == "failed":
            emit("node_failed", record.node_id, attempt=record.attempts, error=record.error, record=record)
        elif record.status == "skipped":
            emit("node_skipped", record.node_id, error=record.skip_reason, record=record)

    return on_record


def _open_checkpoint(
    plan: ExecutionPlan, store: CheckpointStore, run_id: str, values: Mapping[str, Any], resume: bool
) -> tuple[dict[int, dict[str, Any]], Callable[[NodeRecord], None]]:
    """The nodes a resume restores (by step index), and the saver of finished nodes."""
    from dagwright.ops.checkpoint import node_fingerprints, restorable

    graph = plan.graph
    fingerprints = node_fingerprints(graph)
    cached: dict[int, dict[str, Any]] = {}
    if resume:
        restored = restorable(graph, store.node_outputs(run_id, graph.content_hash))
        cached = {plan.by_id[node_id]: outputs for node_id, outputs in restored.items()}
    else:
        store.begin_run(run_id, graph, dict(values))

    def save(record: NodeRecord) -> None:
        if record.status == "done":
            store.save_node(run_id, graph.content_hash, record.node_id, fingerprints[record.node_id], record.outputs)

    return cached, save


class _Records:
    """The node records of a run as its tasks' results reach the client."""

    def __init__(
        self, client: Any, lowering: DaskLowering, keys: list[str], on_record: Callable[[NodeRecord], None] | None
    ) -> None:
        self.client = client
        self.lowering = lowering
        self.group_of_key = {key: i for i, key in enumerate(keys)}
        self.on_record = on_record
        self.records: dict[int, NodeRecord] = {}
        self.failed = False

    def take(self, result: list[tuple[int, NodeRecord]]) -> None:
        for index, record in result:
            self.add(index, record)

    def add(self, index: int, record: NodeRecord) -> None:
        self.records[index] = record
        self.failed = self.failed or record.status == "failed"
        if self.on_record is not None:
            self.on_record(record)

    def fetch(self, futures: list[Any]) -> None:
        """The records of the finished tasks among ``futures``; the others settled as failed or cancelled."""
        finished = [f for f in futures if f.status == "finished"]
        if finished:
            for result in self.client.gather(finished):
                self.take(result)
        for future in futures:
            if future.status != "finished":
                self.settle(future)

    def settle(self, future: Any) -> None:
        """The records of a task that did not finish: failed, downstream of a failure, or cancelled."""
        group_id = self.group_of_key[future.key]
        error = future.exception() if future.status == "error" else None
        if isinstance(error, GroupFailed) and error.group_id == group_id:
            self.take(error.records)
            return
        # Downstream of a failed fail_fast task (it carries that task's error), cancelled, or the cluster
        # failing the task itself (a worker lost too often): the task never raises for a node otherwise.
        for spec in self.lowering.groups[group_id].steps:
            record = NodeRecord(spec.node.id, spec.node.kind, status="cancelled")
            if error is not None and not isinstance(error, GroupFailed):
                record.status = "failed"
                record.error_type = type(error).__name__
                record.error = str(error) or type(error).__name__
            self.add(spec.index, record)


def _collect(
    client: Any,
    lowering: DaskLowering,
    dsk: dict[str, Any],
    keys: list[str],
    failure_mode: FailureMode,
    on_record: Callable[[NodeRecord], None] | None = None,
) -> dict[int, NodeRecord]:
    """Submit the graph and collect every task's records; in ``fail_fast`` stop at the first failure.

    Without ``on_record`` the results come in one ``gather``, which returns early at the first task in
    error: a ``fail_fast`` task whose node failed raises :class:`GroupFailed` for that, carrying its
    records. Watching each task as it lands (``as_completed``) costs a fifth of a run of small tasks, so
    it is kept for ``on_record`` (checkpoint rows, observers' events), called as each node's record lands.
    """
    from distributed import as_completed, wait

    futures = client.get(dsk, keys, sync=False) if keys else []
    collected = _Records(client, lowering, keys, on_record)
    try:
        if on_record is None:
            try:
                for result in client.gather(futures):
                    collected.take(result)
                return collected.records
            except Exception:  # a task in error: its records are sorted out below
                pass
            if failure_mode == "fail_fast":
                client.cancel([f for f in futures if not f.done()])
            else:
                wait(futures)
            collected.fetch(futures)
            return collected.records
        for batch in as_completed(futures).batches():
            collected.fetch(list(batch))
            if collected.failed and failure_mode == "fail_fast":
                client.cancel([f for f in futures if not f.done()])
                break
    finally:
        unfinished = [f for f in futures if not f.done()]
        if unfinished:
            client.cancel(unfinished)
    return collected.records


def _result(
    lowering: DaskLowering,
    values: Mapping[str, Any],
    records: dict[int, NodeRecord],
    failure_mode: FailureMode,
    run_id: str,
    started: float,
) -> RunResult:
    plan = lowering.plan
    steps = plan.steps
    failed = sorted((r for r in records.values() if r.status == "failed"), key=lambda r: r.ended_at or 0.0)
    why = f"cancelled: {failed[0].node_id} failed" if failed else "cancelled"
    by_index: dict[int, NodeRecord] = {}
    outputs: dict[str, Any] = {}
    input_values = {idx: values[name] for name, idx in plan.inputs.items()}
    for step in steps:
        record = records.get(step.index)
        if step.kind == INPUT_KIND:
            record = NodeRecord(step.node.id, step.kind, status="done")
        elif step.kind == OUTPUT_KIND:
            record = NodeRecord(step.node.id, step.kind)
            src, port = step.slots[0].sources[0]
            upstream = records.get(src)
            if src in input_values:
                outputs[output_name(step.node)] = input_values[src]
                record.status = "done"
            elif upstream is not None and upstream.status in ("done", "cached") and port in upstream.outputs:
                outputs[output_name(step.node)] = upstream.outputs[port]
                record.status = "done"
            elif failed and failure_mode == "fail_fast":
                record.status = "cancelled"
                record.skip_reason = why
            else:
                status = upstream.status if upstream is not None else "cancelled"
                reason = status if status != "done" else "did not produce it"
                record.status = "skipped"
                node_id = upstream.node_id if upstream is not None else steps[src].node.id
                record.skip_reason = f"input {step.slots[0].name!r} has no value: {node_id}.{port} {reason}"
        elif record is None:
            record = NodeRecord(step.node.id, step.kind, status="cancelled", skip_reason=why)
        elif record.status == "cancelled":
            record.skip_reason = why
        by_index[step.index] = record
    failures = [by_index[s.index] for s in steps if by_index[s.index].status == "failed"]
    error = "; ".join(f"{r.node_id}: {r.error_type}: {r.error}" for r in failures) if failures else None
    return RunResult(
        run_id=run_id,
        flow=plan.graph.name,
        outputs={name: outputs[name] for name in plan.outputs if name in outputs},
        nodes={r.node_id: r for r in by_index.values()},
        success=not failures,
        error=error,
        started_at=started,
        ended_at=time.time(),
        graph_hash=plan.graph.content_hash,
    )
