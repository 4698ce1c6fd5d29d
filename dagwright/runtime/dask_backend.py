"""Running a checked flow on a Dask cluster, with dagwright's :class:`~dagwright.runtime.events.RunResult` back.

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

import asyncio
import concurrent.futures
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.nodes.io import output_name
from dagwright.runtime._recent import Recent
from dagwright.runtime.errors import NodeExecutionError
from dagwright.runtime.events import Event, NodeRecord, RunResult
from dagwright.runtime.policy import FailureMode, NodePolicy
from dagwright.runtime.scheduler import (
    ExecutionPlan,
    Scheduler,
    _fanout,
    _Slot,
    attempt_node,
    gather_inputs,
    output_problem,
)

if TYPE_CHECKING:
    from dagwright.compiler.flow import Flow
    from dagwright.compiler.registry import FunctionRegistry
    from dagwright.runtime.checkpoint import CheckpointStore

__all__ = ["WORKER_THREADS", "DaskLowering", "WorkerImportError", "build_graph", "lower_plan", "run_on_dask"]

WORKER_THREADS = 32
"""Threads per worker of the LocalCluster made for a run: agents spend their time waiting on the network."""

# Node kinds whose executors finish without waiting on anything: safe to run back to back in one task.
_CHEAP_KINDS = frozenset({"vote", "route", "assign", "gate", "select", "gather"})


# --------------------------------------------------------------------------- the lowering (client side)


@dataclass(slots=True)
class _StepSpec:
    """One node as a worker runs it; the executor and policy stay pickled until the worker needs them."""

    index: int
    node: Any  # the IR Node (only dagwright types and JSON inside)
    slots: list[_Slot]
    output_names: frozenset[str]
    blob: bytes


@dataclass(slots=True)
class _Group:
    """The nodes of one Dask task (one node, or a fused chain of cheap ones), in order."""

    key_name: str
    steps: list[_StepSpec]
    deps: list[int]  # indexes of the groups it reads from
    cheap: bool


@dataclass(slots=True)
class _TaskSpec:
    """Everything one task needs besides its upstream records: opaque to Dask, so nothing inside is a key."""

    token: str
    run_id: str
    failure_mode: FailureMode
    group_id: int
    # The group pickled once per lowering: bytes cost nothing to send again, a Node with its ports would.
    # (Shipping every group to the workers once instead, as a scattered dependency of each task, measured
    # slower: the scheduler pays for the extra dependency of every task more than the bytes cost.)
    payload: bytes
    inputs: dict[int, dict[str, Any]]
    cached: dict[int, dict[str, Any]]  # outputs restored from a checkpoint: these nodes do not run

    def __dask_tokenize__(self) -> tuple[str, str, int]:
        # Dask tokenizes every argument of a submitted graph by walking it, payload bytes included: a third of
        # the per-task cost. Each task's key is already unique to its run, and so is this.
        return (self.token, self.run_id, self.group_id)


@dataclass(slots=True)
class DaskLowering:
    """A plan lowered for Dask: its task groups in dependency order, made once per plan."""

    plan: ExecutionPlan
    token: str
    groups: list[_Group]
    group_of: dict[int, int]
    payloads: list[bytes]

    @property
    def task_count(self) -> int:
        return len(self.groups)


def _is_cheap(plan: ExecutionPlan, index: int) -> bool:
    step = plan.steps[index]
    if step.policy.timeout is not None:
        return False  # a sync function cannot be interrupted in place: keep it where a timeout can act
    if step.kind in _CHEAP_KINDS:
        return True
    executor = step.executor
    # A sync function node: dagwright.nodes.function builds its executor as ``run_sync``.
    return (
        step.kind == "function"
        and executor is not None
        and getattr(executor, "__module__", "") == "dagwright.nodes.function"
        and getattr(executor, "__name__", "") == "run_sync"
    )


def _order(plan: ExecutionPlan) -> list[int]:
    """The task nodes of ``plan`` in a dependency order (Kahn's)."""
    waiting = [s.n_preds for s in plan.steps]
    ready = [s.index for s in plan.steps if s.n_preds == 0]
    order: list[int] = []
    while ready:
        idx = ready.pop()
        order.append(idx)
        for dep in plan.steps[idx].dependents:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                ready.append(dep)
    if len(order) != len(plan.steps):
        raise ValueError(f"graph {plan.graph.name!r} is not a DAG")
    return [i for i in order if plan.steps[i].kind not in (INPUT_KIND, OUTPUT_KIND)]


_LOCKS: dict[type, Callable[[], Any]] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
}


def _dumps(node_id: str, value: object) -> bytes:
    """Pickle what a node runs; a lock inside (an agent's monitor, a memory) arrives on the worker as a new one."""
    import io

    import cloudpickle  # type: ignore[import-untyped]

    class Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, obj: object) -> Any:
            make = _LOCKS.get(type(obj))
            if make is not None:
                return (make, ())
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    try:
        Pickler(buffer, protocol=5).dump(value)
    except Exception as exc:
        raise TypeError(
            f"node {node_id!r} cannot be sent to Dask workers: what it runs does not pickle ({exc})"
        ) from exc
    return buffer.getvalue()


def lower_plan(plan: ExecutionPlan, *, fuse: bool = True) -> DaskLowering:
    """Lower ``plan`` into task groups (``fuse=False``: one task per node, for measuring)."""
    task_preds: dict[int, list[int]] = {}
    task_deps: dict[int, list[int]] = {}
    steps = plan.steps
    for idx in _order(plan):
        preds: list[int] = []
        for slot in steps[idx].slots:
            for src, _ in slot.sources:
                if steps[src].kind != INPUT_KIND and src not in preds:
                    preds.append(src)
        task_preds[idx] = preds
        task_deps[idx] = [d for d in steps[idx].dependents if steps[d].kind != OUTPUT_KIND]
    groups: list[_Group] = []
    group_of: dict[int, int] = {}
    for idx in task_preds:
        step = steps[idx]
        spec = _StepSpec(
            idx, step.node, step.slots, step.output_names, _dumps(step.node.id, (step.executor, step.policy))
        )
        cheap = _is_cheap(plan, idx)
        preds = task_preds[idx]
        if fuse and cheap and len(preds) == 1:
            (pred,) = preds
            owner = groups[group_of[pred]]
            # A chain link: the predecessor ends its group and this node is its only consumer.
            if owner.cheap and owner.steps[-1].index == pred and task_deps[pred] == [idx]:
                owner.steps.append(spec)
                owner.key_name = step.node.id
                group_of[idx] = group_of[pred]
                continue
        deps = sorted({group_of[p] for p in preds})
        group_of[idx] = len(groups)
        groups.append(_Group(step.node.id, [spec], deps, cheap))
    payloads = [_dumps(g.key_name, g) for g in groups]
    return DaskLowering(plan, uuid.uuid4().hex[:12], groups, group_of, payloads)


_lowerings: dict[int, tuple[ExecutionPlan, DaskLowering]] = {}


def _lowering(plan: ExecutionPlan) -> DaskLowering:
    cached = _lowerings.get(id(plan))
    if cached is not None and cached[0] is plan:
        return cached[1]
    if len(_lowerings) >= 16:
        _lowerings.clear()
    lowering = lower_plan(plan)
    _lowerings[id(plan)] = (plan, lowering)
    return lowering


# --------------------------------------------------------------------------- running a task (worker side)


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs ``run_in_executor`` work in the calling thread: a fused chain is already on a worker thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the awaiting node, as a thread pool would
            future.set_exception(exc)
        return future


_local = threading.local()
# What a worker keeps of the plans it has run: bounded, and a busy node keeps its loaded executor (with its
# memory result cache) however many others pass through.
_executors: Recent[tuple[str, int], tuple[Any, NodePolicy]] = Recent(4096)
_groups: Recent[tuple[str, int], _Group] = Recent(4096)


def _thread_loop(inline: bool) -> asyncio.AbstractEventLoop:
    name = "inline_loop" if inline else "loop"
    loop: asyncio.AbstractEventLoop | None = getattr(_local, name, None)
    if loop is None:
        loop = asyncio.new_event_loop()
        if inline:
            loop.set_default_executor(_InlineExecutor(max_workers=1))
        setattr(_local, name, loop)
    return loop


class WorkerImportError(ImportError):
    """A worker cannot import the code a node runs."""


def _load(token: str, spec: _StepSpec) -> tuple[Any, NodePolicy]:
    key = (token, spec.index)
    found = _executors.get(key)
    if found is not None:
        return found
    import cloudpickle

    node_id = spec.node.id
    try:
        loaded: tuple[Any, NodePolicy] = cloudpickle.loads(spec.blob)
    except ModuleNotFoundError as exc:
        where = _worker_address()
        raise WorkerImportError(
            f"worker {where} cannot import module {exc.name!r}, needed by node {node_id!r}: make it importable on "
            "every worker (install it there, add its directory to the workers' PYTHONPATH, or send it with "
            "client.upload_file)"
        ) from None
    except (AttributeError, ImportError) as exc:
        raise WorkerImportError(
            f"worker {_worker_address()} cannot load the code of node {node_id!r}: {exc} (is the same version of "
            "the module installed on the workers?)"
        ) from None
    _executors.put(key, loaded)
    return loaded


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:
        return "(not a worker)"


class _Produced:
    """Upstream values by step index, for :func:`gather_inputs`: flow inputs, then finished records."""

    __slots__ = ("inputs", "records")

    def __init__(self, inputs: Mapping[int, Mapping[str, Any]], records: Mapping[int, NodeRecord]) -> None:
        self.inputs = inputs
        self.records = records

    def __getitem__(self, src: int) -> Mapping[str, Any] | None:
        given = self.inputs.get(src)
        if given is not None:
            return given
        record = self.records.get(src)
        return record.outputs if record is not None and record.status in ("done", "cached") else None


async def _run_step(task: _TaskSpec, spec: _StepSpec, args: dict[str, Any], record: NodeRecord) -> None:
    """One node under its policy, as the scheduler's ``run_node`` runs it; the outcome lands in ``record``."""
    record.status = "running"
    record.started_at = time.time()
    try:
        executor, policy = _load(task.token, spec)
        outputs = await attempt_node(executor, policy, args, task.run_id, spec.node, record)
    except Exception as exc:  # the node's last failure, or its code not loading on this worker
        cause = exc.error if isinstance(exc, NodeExecutionError) else exc
        record.ended_at = time.time()
        record.status = "failed"
        record.error = str(cause) or type(cause).__name__
        record.error_type = "ModuleNotFoundError" if isinstance(cause, WorkerImportError) else type(cause).__name__
        return
    record.ended_at = time.time()
    problem = output_problem(outputs, spec.output_names)
    if problem is not None:
        record.status = "failed"
        record.error_type = "ValueError"
        record.error = problem
        return
    record.outputs = outputs
    record.status = "done"


async def _run_steps(task: _TaskSpec, group: _Group, upstream: dict[int, NodeRecord]) -> list[tuple[int, NodeRecord]]:
    records = upstream
    mine: list[tuple[int, NodeRecord]] = []
    for spec in group.steps:
        record = NodeRecord(spec.node.id, spec.node.kind)
        mine.append((spec.index, record))
        restored = task.cached.get(spec.index)
        if restored is not None:
            record.status = "cached"
            record.outputs = restored
            records[spec.index] = record
            continue
        if task.failure_mode == "fail_fast":
            failed = next((r for r in records.values() if r.status in ("failed", "cancelled")), None)
            if failed is not None:
                record.status = "cancelled"
                record.skip_reason = (
                    f"cancelled: {failed.node_id} failed" if failed.status == "failed" else failed.skip_reason
                )
                records[spec.index] = record
                continue
        records[spec.index] = record
        args, why_not = gather_inputs(spec.slots, _Produced(task.inputs, records), records)
        if why_not is not None:
            record.status = "skipped"
            record.skip_reason = why_not
            continue
        await _run_step(task, spec, args, record)
    return mine


def _group(task: _TaskSpec) -> _Group:
    key = (task.token, task.group_id)
    group = _groups.get(key)
    if group is None:
        import pickle

        # Only dagwright types inside (executors stay pickled in their steps), so this never imports user code.
        group = pickle.loads(task.payload)
        _groups.put(key, group)
    return group


class _GroupFailed(Exception):
    """A ``fail_fast`` task whose node failed: raised so the client sees the failure from the task's status
    alone, without fetching results as they arrive; carries the group's records."""

    def __init__(self, group_id: int, records: list[tuple[int, NodeRecord]]) -> None:
        super().__init__(group_id, records)
        self.group_id = group_id
        self.records = records

    def __str__(self) -> str:
        # What a worker's "Compute Failed" log line shows: the node and its error, not the records.
        failed = [r for _, r in self.records if r.status == "failed"]
        return "; ".join(f"node {r.node_id!r} failed: {r.error_type}: {r.error}" for r in failed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"


class _GroupRunner:
    """The function of every Dask task: run one group's nodes on this thread's event loop and return
    ``(step index, record)`` pairs. An object rather than a function only for its token: Dask tokenizes a
    plain function by pickling it, once per task of every run."""

    def __call__(self, task: _TaskSpec, *upstream: list[tuple[int, NodeRecord]]) -> list[tuple[int, NodeRecord]]:
        by_index = {index: record for records in upstream for index, record in records}
        group = _group(task)
        loop = _thread_loop(group.cheap)
        mine = loop.run_until_complete(_run_steps(task, group, by_index))
        if task.failure_mode == "fail_fast" and any(record.status == "failed" for _, record in mine):
            raise _GroupFailed(task.group_id, mine)
        return mine

    def __dask_tokenize__(self) -> str:
        return "dagwright.run_group"


_run_group = _GroupRunner()


# --------------------------------------------------------------------------- running a flow (client side)


def _plan_of(target: object, registry: FunctionRegistry | None) -> ExecutionPlan:
    from dagwright.compiler.flow import Flow
    from dagwright.runtime.runner import build_plan

    if isinstance(target, Flow):
        plan: ExecutionPlan = target._scheduler().plan
        return plan
    if isinstance(target, Graph):
        return build_plan(target, registry=registry)
    if isinstance(target, ExecutionPlan):
        return target
    raise TypeError(f"Dask runs a Flow or a compiled Graph, got {type(target).__name__}")


def _connect(client: object) -> tuple[Any, Callable[[], None] | None]:
    """The client to submit to, and how to close what was opened for this run (None: nothing)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(
            "backend='dask' needs the 'dask' extra: pip install 'dagwright[dask]' (dask and distributed)"
        ) from None
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


def build_graph(
    lowering: DaskLowering,
    values: Mapping[str, Any],
    run_id: str,
    failure_mode: FailureMode,
    cached: Mapping[int, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The Dask task graph of one run (``{key: (function, task spec, *dependency keys)}``) and its keys."""
    plan = lowering.plan
    given = {idx: {plan.steps[idx].node.outputs[0].name: values[name]} for name, idx in plan.inputs.items()}
    suffix = uuid.uuid4().hex[:10]
    dsk: dict[str, Any] = {}
    keys: list[str] = []
    for group_id, group in enumerate(lowering.groups):
        consumed = {src for spec in group.steps for slot in spec.slots for src, _ in slot.sources if src in given}
        inputs = {i: given[i] for i in consumed}
        restored = {s.index: cached[s.index] for s in group.steps if s.index in cached} if cached else {}
        task = _TaskSpec(lowering.token, run_id, failure_mode, group_id, lowering.payloads[group_id], inputs, restored)
        key = f"n:{group.key_name}@{suffix}"
        dsk[key] = (_run_group, task, *(keys[d] for d in group.deps))
        keys.append(key)
    return dsk, keys


def run_on_dask(
    target: Flow | Graph | ExecutionPlan,
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
    if max_concurrency is not None:
        raise ValueError(
            "max_concurrency is not supported with backend='dask': the cluster's worker threads bound how many "
            "nodes run at once"
        )
    if failure_mode not in ("fail_fast", "continue"):
        raise ValueError(f"failure_mode must be 'fail_fast' or 'continue', got {failure_mode!r}")
    if resume and (checkpoint is None or run_id is None):
        raise ValueError("resume needs a checkpoint and the run_id of the run to resume")
    plan = _plan_of(target, registry)
    values = Scheduler(plan).check_inputs(inputs or {})
    lowering = _lowering(plan)
    run_id = run_id or uuid.uuid4().hex
    started = time.time()
    saver: Callable[[NodeRecord], None] | None = None
    cached: dict[int, dict[str, Any]] = {}
    if checkpoint is not None:
        cached, saver = _open_checkpoint(plan, checkpoint, run_id, values, resume)
    emit = _emitter(observers, run_id)
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


def _emitter(observers: Sequence[Callable[[Event], None]], run_id: str) -> Callable[..., None] | None:
    if not observers:
        return None
    listen = _fanout(list(observers))

    def emit(kind: Any, node_id: str | None = None, **extra: Any) -> None:
        listen(Event(kind, run_id, node_id, time.time(), **extra))

    return emit


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
    """The nodes a resume restores (as the built-in scheduler decides them), and the saver of finished nodes."""
    from dagwright.runtime.checkpoint import node_fingerprints

    graph = plan.graph
    fingerprints = node_fingerprints(graph)
    cached: dict[int, dict[str, Any]] = {}
    if resume:
        stored = store.node_outputs(run_id, graph.content_hash)
        preds: list[set[int]] = [set() for _ in plan.steps]
        for edge in graph.edges:
            preds[plan.by_id[edge.target]].add(plan.by_id[edge.source])
        for idx in _order(plan):
            step = plan.steps[idx]
            outputs = stored.get(step.node.id)
            # Stored outputs stand only when every input is restored too (the built-in scheduler's rule).
            if (
                outputs is not None
                and step.output_names.issuperset(outputs)
                and all(p in cached or plan.steps[p].kind == INPUT_KIND for p in preds[idx])
            ):
                cached[idx] = outputs
    else:
        store.begin_run(run_id, graph, dict(values))

    def save(record: NodeRecord) -> None:
        if record.status == "done":
            store.save_node(run_id, graph.content_hash, record.node_id, fingerprints[record.node_id], record.outputs)

    return cached, save


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
    error: a ``fail_fast`` task whose node failed raises :class:`_GroupFailed` for that, carrying its
    records. Watching each task as it lands (``as_completed``) costs a fifth of a run of small tasks, so
    it is kept for ``on_record`` (checkpoint rows, observers' events), called as each node's record lands.
    """
    from distributed import as_completed, wait

    group_of_key = {key: i for i, key in enumerate(keys)}
    futures = client.get(dsk, keys, sync=False) if keys else []
    records: dict[int, NodeRecord] = {}
    failed = False

    def take(result: list[tuple[int, NodeRecord]]) -> None:
        nonlocal failed
        for index, record in result:
            records[index] = record
            failed = failed or record.status == "failed"
            if on_record is not None:
                on_record(record)

    def fetch(finished: list[Any]) -> None:
        if finished:
            for result in client.gather(finished):
                take(result)

    def settle(future: Any) -> None:
        """The records of a task that did not finish: failed, downstream of a failure, or cancelled."""
        nonlocal failed
        group_id = group_of_key[future.key]
        error = future.exception() if future.status == "error" else None
        if isinstance(error, _GroupFailed) and error.group_id == group_id:
            take(error.records)
            return
        # Downstream of a failed fail_fast task (it carries that task's error), cancelled, or the cluster
        # failing the task itself (a worker lost too often): the task never raises for a node otherwise.
        for spec in lowering.groups[group_id].steps:
            record = NodeRecord(spec.node.id, spec.node.kind, status="cancelled")
            if error is not None and not isinstance(error, _GroupFailed):
                record.status = "failed"
                record.error_type = type(error).__name__
                record.error = str(error) or type(error).__name__
                failed = True
            records[spec.index] = record
            if on_record is not None:
                on_record(record)

    try:
        if on_record is None:
            try:
                for result in client.gather(futures):
                    take(result)
                return records
            except Exception:  # a task in error: its records are sorted out below
                pass
            if failure_mode == "fail_fast":
                client.cancel([f for f in futures if not f.done()])
            else:
                wait(futures)
            fetch([f for f in futures if f.status == "finished"])
            for future in futures:
                if future.status != "finished":
                    settle(future)
            return records
        for batch in as_completed(futures).batches():
            fetch([f for f in batch if f.status == "finished"])
            for future in batch:
                if future.status != "finished":
                    settle(future)
            if failed and failure_mode == "fail_fast":
                client.cancel([f for f in futures if not f.done()])
                break
    finally:
        unfinished = [f for f in futures if not f.done()]
        if unfinished:
            client.cancel(unfinished)
    return records


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
