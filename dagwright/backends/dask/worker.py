"""The worker side of a Dask run: each task runs its group's nodes on an event loop of its worker thread.

One loop per thread is kept, so LLM clients and their connections are reused; a
fused chain of cheap nodes runs its sync functions inline. A task returns its nodes'
records; in ``fail_fast`` a task whose node failed raises :class:`GroupFailed`
instead, carrying its records, so the client sees the failure from the task's status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dagwright.backends.dask.tasks import Group, StepSpec, TaskSpec
from dagwright.execution._recent import Recent
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import NodeRecord
from dagwright.execution.policy import NodePolicy
from dagwright.execution.resources import RunResources, reset_resources, using_resources
from dagwright.execution.steps import attempt_node, gather_inputs, output_problem

__all__ = ["GroupFailed", "WorkerImportError", "run_group"]


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
_groups: Recent[tuple[str, int], Group] = Recent(4096)


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


def _load(token: str, spec: StepSpec) -> tuple[Any, NodePolicy]:
    key = (token, spec.index)
    found = _executors.get(key)
    if found is not None:
        return found
    import cloudpickle  # type: ignore[import-untyped]

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


async def _run_step(task: TaskSpec, spec: StepSpec, args: dict[str, Any], record: NodeRecord) -> None:
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
        record.error_location = exc.location if isinstance(exc, NodeExecutionError) else None
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


async def _run_steps(task: TaskSpec, group: Group, upstream: dict[int, NodeRecord]) -> list[tuple[int, NodeRecord]]:
    """The group's nodes in order. They share what they open (an MCP server the agents of the group name is
    connected once), and the task closes it when it ends: a worker's connections do not outlive its task."""
    resources = RunResources()
    token = using_resources(resources)
    try:
        return await _run_group(task, group, upstream)
    finally:
        reset_resources(token)
        await resources.aclose()


async def _run_group(task: TaskSpec, group: Group, upstream: dict[int, NodeRecord]) -> list[tuple[int, NodeRecord]]:
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


def _group(task: TaskSpec) -> Group:
    key = (task.token, task.group_id)
    group = _groups.get(key)
    if group is None:
        import pickle

        # Only dagwright types inside (executors stay pickled in their steps), so this never imports user code.
        group = pickle.loads(task.payload)
        _groups.put(key, group)
    return group


class GroupFailed(Exception):
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

    def __call__(self, task: TaskSpec, *upstream: list[tuple[int, NodeRecord]]) -> list[tuple[int, NodeRecord]]:
        by_index = {index: record for records in upstream for index, record in records}
        group = _group(task)
        loop = _thread_loop(group.cheap)
        mine = loop.run_until_complete(_run_steps(task, group, by_index))
        if task.failure_mode == "fail_fast" and any(record.status == "failed" for _, record in mine):
            raise GroupFailed(task.group_id, mine)
        return mine

    def __dask_tokenize__(self) -> str:
        return "dagwright.run_group"


run_group = _GroupRunner()
