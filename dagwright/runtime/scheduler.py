"""The built-in back end: runs a checked Graph on asyncio.

A node starts the moment its last predecessor is resolved (a ready queue, not
level by level), so independent branches run concurrently; flow inputs and
outputs are resolved inline, without a task. Each node runs under its
:class:`NodePolicy` (retries with backoff, a per-attempt timeout). A failure either
cancels everything still running (``fail_fast``; cancellation reaches in-flight
LLM calls) or skips only the failed node's descendants (``continue``).

The plan (executors, input wiring, dependents) is computed once per graph and
bindings, so repeated runs of one flow pay only for execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node
from dagwright.compiler.signature import MISSING
from dagwright.nodes.base import Executor, NodeContext
from dagwright.nodes.io import check_input_types, input_default, input_name, output_name
from dagwright.runtime.errors import NodeExecutionError
from dagwright.runtime.events import Event, NodeRecord, RunResult
from dagwright.runtime.policy import FailureMode, NodePolicy
from dagwright.runtime.telemetry import run_listener

if TYPE_CHECKING:
    from dagwright.runtime.checkpoint import CheckpointStore

__all__ = ["ExecutionPlan", "RunOptions", "Scheduler", "attempt_node", "gather_inputs", "output_problem"]

_T_co = TypeVar("_T_co", covariant=True)


class _Indexed(Protocol[_T_co]):
    """A list, or a mapping by step index: what input gathering reads."""

    def __getitem__(self, index: int, /) -> _T_co: ...


_DEFAULT_POLICY = NodePolicy()


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Per-run settings: ``max_concurrency`` (None: unlimited), the failure mode, the run id.

    ``checkpoint`` (a :class:`~dagwright.runtime.checkpoint.CheckpointStore`) stores each
    finished node's outputs; with ``resume`` the run continues the stored run ``run_id``:
    nodes with stored outputs are marked ``cached`` and not run again.
    """

    max_concurrency: int | None = None
    failure_mode: FailureMode = "fail_fast"
    run_id: str | None = None
    checkpoint: CheckpointStore | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.failure_mode not in ("fail_fast", "continue"):
            raise ValueError(f"failure_mode must be 'fail_fast' or 'continue', got {self.failure_mode!r}")
        if self.resume and (self.checkpoint is None or self.run_id is None):
            raise ValueError("resume needs a checkpoint and the run_id of the run to resume")


@dataclass(slots=True)
class _Slot:
    """One input port's wiring: where its value(s) come from."""

    name: str
    sources: list[tuple[int, str]]
    collect: bool
    required: bool
    default: Any


@dataclass(slots=True)
class _Step:
    index: int
    node: Node
    kind: str
    executor: Executor | None
    slots: list[_Slot]
    dependents: list[int]
    n_preds: int
    policy: NodePolicy
    # Precomputed so that running a node formats no string and scans no port list.
    task_name: str = ""
    output_names: frozenset[str] = frozenset()


@dataclass(slots=True)
class ExecutionPlan:
    """A graph prepared for running: one step per node, wired by index."""

    graph: Graph
    steps: list[_Step]
    inputs: dict[str, int]
    outputs: dict[str, int]
    by_id: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        graph: Graph,
        executors: Mapping[str, Executor],
        policies: Mapping[str, NodePolicy] | None = None,
    ) -> ExecutionPlan:
        """Wire ``graph``'s nodes to their executors (every non-I/O node needs one)."""
        index = {node.id: i for i, node in enumerate(graph.nodes)}
        slots: list[dict[str, _Slot]] = []
        steps: list[_Step] = []
        policies = policies or {}
        missing = [n.id for n in graph.nodes if n.kind not in (INPUT_KIND, OUTPUT_KIND) and n.id not in executors]
        if missing:
            raise ValueError(f"no executor for node(s) {', '.join(map(repr, missing))} of graph {graph.name!r}")
        for i, node in enumerate(graph.nodes):
            port_slots = {
                p.name: _Slot(p.name, [], p.collect, p.required and not p.collect, p.default) for p in node.inputs
            }
            slots.append(port_slots)
            steps.append(
                _Step(
                    i,
                    node,
                    node.kind,
                    executors.get(node.id),
                    list(port_slots.values()),
                    [],
                    0,
                    policies.get(node.id, _DEFAULT_POLICY),
                    f"dagwright:{node.id}",
                    frozenset(p.name for p in node.outputs),
                )
            )
        preds: list[set[int]] = [set() for _ in steps]
        for edge in graph.edges:
            src, dst = index[edge.source], index[edge.target]
            slots[dst][edge.target_port].sources.append((src, edge.source_port))
            if src not in preds[dst]:
                preds[dst].add(src)
                steps[src].dependents.append(dst)
        for step, p in zip(steps, preds, strict=True):
            step.n_preds = len(p)
        inputs = {input_name(s.node): s.index for s in steps if s.kind == INPUT_KIND}
        outputs = {output_name(s.node): s.index for s in steps if s.kind == OUTPUT_KIND}
        return cls(graph, steps, inputs, outputs, index)


class Scheduler:
    """Runs an :class:`ExecutionPlan`. One instance per plan; each ``run`` is independent."""

    def __init__(self, plan: ExecutionPlan) -> None:
        self.plan = plan
        # Listeners of every run (a flow's monitors), on top of each run's own listener.
        self.observers: list[Callable[[Event], None]] = []

    def check_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The run's input values by input-node index; unknown or missing names raise ValueError."""
        plan = self.plan
        unknown = [k for k in inputs if k not in plan.inputs]
        if unknown:
            known = list(plan.inputs)
            parts = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(
                f"flow {plan.graph.name!r} has no input {', '.join(parts)}; its inputs are: "
                f"{', '.join(known) or 'none'}"
            )
        values: dict[str, Any] = {}
        absent = []
        for name, idx in plan.inputs.items():
            if name in inputs:
                values[name] = inputs[name]
                continue
            default = input_default(plan.steps[idx].node)
            if default is MISSING:
                absent.append(name)
            else:
                values[name] = default
        if absent:
            raise ValueError(f"flow {plan.graph.name!r} needs input(s) {', '.join(map(repr, absent))}")
        check_input_types(plan.graph.name, (plan.steps[idx].node for idx in plan.inputs.values()), inputs)
        return values

    async def run(
        self,
        inputs: Mapping[str, Any],
        options: RunOptions | None = None,
        listener: Callable[[Event], None] | None = None,
    ) -> RunResult:
        """Run once with ``inputs`` (flow input names -> values)."""
        values = self.check_inputs(inputs)
        listeners = [fn for fn in (listener, *self.observers, run_listener(self.plan.graph.name)) if fn is not None]
        if len(listeners) > 1:
            listener = _fanout(listeners)
        elif listeners:
            listener = listeners[0]
        return await _Run(self.plan, values, options or RunOptions(), listener).execute()

    async def stream(self, inputs: Mapping[str, Any], options: RunOptions | None = None) -> AsyncIterator[Event]:
        """Run once, yielding events as they happen; the last event is ``run_finished``."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        task = asyncio.ensure_future(self.run(inputs, options, queue.put_nowait))
        try:
            while True:
                event = await queue.get()
                yield event
                if event.kind == "run_finished":
                    break
            await task
        finally:
            if not task.done():
                task.cancel()


class _Run:
    """The state of one run. Methods run on the event loop thread only, so no locks."""

    def __init__(
        self,
        plan: ExecutionPlan,
        inputs: dict[str, Any],
        options: RunOptions,
        listener: Callable[[Event], None] | None,
    ) -> None:
        self.plan = plan
        self.inputs = inputs
        self.options = options
        self.listener = listener
        self.run_id = options.run_id or uuid.uuid4().hex
        steps = plan.steps
        self.records = [NodeRecord(s.node.id, s.kind) for s in steps]
        self.values: list[dict[str, Any] | None] = [None] * len(steps)
        self.waiting = [s.n_preds for s in steps]
        self.unresolved = len(steps)
        # Running node tasks by step index; a node leaves it when it resolves (cheaper than a done callback,
        # which costs one more event-loop callback per node).
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.semaphore = asyncio.Semaphore(options.max_concurrency) if options.max_concurrency else None
        self.first_error: NodeExecutionError | None = None
        self.finished: asyncio.Future[None] | None = None
        self.outputs: dict[str, Any] = {}
        self.backlog: list[int] = []
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None
        # None unless the run is checkpointed: the only thing the per-node path checks.
        self.checkpoint = options.checkpoint
        self.restored: dict[str, dict[str, Any]] = {}
        self.fingerprints: dict[str, str] = {}
        self.predecessors: list[list[int]] = []
        self.checkpoint_error: str | None = None

    def emit(self, kind: Any, node_id: str | None = None, **extra: Any) -> None:
        if self.listener is not None:
            self.listener(Event(kind, self.run_id, node_id, time.time(), **extra))

    async def execute(self) -> RunResult:
        started = time.time()
        self.loop = asyncio.get_running_loop()
        self.finished = self.loop.create_future()
        if self.checkpoint is not None:
            self.open_checkpoint()
        self.emit("run_started")
        ready = [s.index for s in self.plan.steps if s.n_preds == 0]
        if not ready and self.plan.steps:
            raise ValueError("graph has no node without predecessors; it is not a DAG")
        for idx in ready:
            self.start(idx)
        if self.unresolved:
            try:
                await self.finished
            except asyncio.CancelledError:
                self.cancel_all("the run was cancelled")
                await self.drain()
                if self.checkpoint is not None:
                    # Best effort: a sync caller interrupted by Ctrl-C may already have closed the store, and the
                    # node rows, not this status, are what a resume relies on.
                    with contextlib.suppress(Exception):
                        self.checkpoint.finish_run(self.run_id, "cancelled")
                raise
        await self.drain()
        failed = [r for r in self.records if r.status == "failed"]
        if self.checkpoint is not None:
            self.checkpoint.finish_run(self.run_id, "failed" if failed else "succeeded")
            if self.checkpoint_error is not None:
                from dagwright.runtime.checkpoint import CheckpointError

                raise CheckpointError(self.checkpoint_error)
        error = None
        if failed:
            error = "; ".join(f"{r.node_id}: {r.error_type}: {r.error}" for r in failed)
        result = RunResult(
            run_id=self.run_id,
            flow=self.plan.graph.name,
            # Declared order, not completion order: the same flow prints the same way every run.
            outputs={name: self.outputs[name] for name in self.plan.outputs if name in self.outputs},
            nodes={r.node_id: r for r in self.records},
            success=not failed,
            error=error,
            started_at=started,
            ended_at=time.time(),
            graph_hash=self.plan.graph.content_hash,
        )
        self.emit("run_finished")
        return result

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    # ---- node lifecycle

    def start(self, idx: int) -> None:
        """All predecessors of ``idx`` are resolved: gather its inputs, then run or skip it."""
        step = self.plan.steps[idx]
        record = self.records[idx]
        if self.first_error is not None and self.options.failure_mode == "fail_fast":
            record.status = "cancelled"
            record.skip_reason = f"cancelled: {self.first_error.node_id} failed"
            self.resolved(idx)
            return
        if step.kind == INPUT_KIND:
            name = input_name(step.node)
            self.values[idx] = {step.node.outputs[0].name: self.inputs[name]}
            record.status = "done"
            self.resolved(idx)
            return
        args, why_not = gather_inputs(step.slots, self.values, self.records)
        if why_not is not None:
            record.status = "skipped"
            record.skip_reason = why_not
            self.emit("node_skipped", step.node.id, error=why_not, record=record)
            self.resolved(idx)
            return
        if step.kind == OUTPUT_KIND:
            self.outputs[output_name(step.node)] = args[step.node.inputs[0].name]
            self.values[idx] = {}
            record.status = "done"
            self.resolved(idx)
            return
        if self.checkpoint is not None:
            self.start_checkpointed(step, args)
            return
        loop = self.loop or asyncio.get_running_loop()
        task = loop.create_task(self.run_node(step, args), name=step.task_name)
        self.tasks[idx] = task

    # ---- checkpoints (only when the run has a store)

    def open_checkpoint(self) -> None:
        from dagwright.runtime.checkpoint import node_fingerprints

        store = self.checkpoint
        assert store is not None
        graph = self.plan.graph
        self.fingerprints = node_fingerprints(graph)
        if self.options.resume:
            self.restored = store.node_outputs(self.run_id, graph.content_hash)
            preds: list[set[int]] = [set() for _ in self.plan.steps]
            for edge in graph.edges:
                preds[self.plan.by_id[edge.target]].add(self.plan.by_id[edge.source])
            self.predecessors = [sorted(p) for p in preds]
        else:
            store.begin_run(self.run_id, graph, self.inputs)

    def start_checkpointed(self, step: _Step, args: dict[str, Any]) -> None:
        idx = step.index
        stored = self.restored.get(step.node.id)
        # Stored outputs stand only when every input is restored too: a node that ran on a default because
        # its upstream failed (``continue`` mode) must see the value that upstream produces now.
        if (
            stored is not None
            and step.output_names.issuperset(stored)
            and all(
                self.records[p].status == "cached" or self.plan.steps[p].kind == INPUT_KIND
                for p in self.predecessors[idx]
            )
        ):
            record = self.records[idx]
            record.status = "cached"
            record.outputs = stored
            self.values[idx] = stored
            self.emit("node_finished", step.node.id, record=record)
            self.resolved(idx)
            return
        loop = self.loop or asyncio.get_running_loop()
        self.tasks[idx] = loop.create_task(self.run_checkpointed(step, args), name=step.task_name)

    async def run_checkpointed(self, step: _Step, args: dict[str, Any]) -> None:
        await self.run_node(step, args)
        record = self.records[step.index]
        if record.status != "done" or self.checkpoint is None:
            return
        # Synchronous on purpose: no await between the node finishing and its row being committed, so a
        # cancellation cannot leave a half-written checkpoint, and no dependent starts before the commit.
        try:
            self.checkpoint.save_node(
                self.run_id, self.plan.graph.content_hash, step.node.id, self.fingerprints[step.node.id], record.outputs
            )
        except Exception as exc:
            if self.checkpoint_error is None:
                self.checkpoint_error = (
                    f"checkpoint {self.checkpoint.path!r}: could not store the outputs of node {step.node.id!r}: "
                    f"{type(exc).__name__}: {exc}"
                )

    def retried(self, node_id: str, attempt: int, error: Exception) -> None:
        self.emit("node_retried", node_id, attempt=attempt, error=f"{type(error).__name__}: {error}")

    async def run_node(self, step: _Step, args: dict[str, Any]) -> None:
        record = self.records[step.index]
        node_id = step.node.id
        policy = step.policy
        executor = step.executor
        assert executor is not None
        # Fixed for the run: read once, and build no event at all when nobody listens.
        listener = self.listener
        try:
            if self.semaphore is not None:
                await self.semaphore.acquire()
            try:
                record.status = "running"
                record.started_at = time.time()
                if listener is not None:
                    self.emit("node_started", node_id, record=record)
                outputs = await attempt_node(executor, policy, args, self.run_id, step.node, record, self.retried)
            finally:
                if self.semaphore is not None:
                    self.semaphore.release()
        except asyncio.CancelledError:
            record.ended_at = time.time()
            record.status = "cancelled"
            record.skip_reason = record.skip_reason or "cancelled"
            self.resolved(step.index)
            raise
        except NodeExecutionError as failure:
            record.ended_at = time.time()
            record.status = "failed"
            cause = failure.error
            record.error = str(cause) or type(cause).__name__
            record.error_type = type(cause).__name__
            self.emit(
                "node_failed",
                node_id,
                attempt=record.attempts,
                error=f"{record.error_type}: {record.error}",
                record=record,
            )
            if self.first_error is None:
                self.first_error = failure
                if self.options.failure_mode == "fail_fast":
                    self.cancel_all(f"cancelled: {node_id} failed")
            self.resolved(step.index)
            return
        record.ended_at = time.time()
        if type(outputs) is dict and step.output_names.issuperset(outputs):
            # The usual outcome, without building the list of unknown outputs below.
            record.outputs = outputs
            self.values[step.index] = outputs
            record.status = "done"
            if listener is not None:
                self.emit("node_finished", node_id, attempt=record.attempts, record=record)
            self.resolved(step.index)
            return
        problem = output_problem(outputs, step.output_names)
        if problem is not None:
            record.status = "failed"
            record.error_type = "ValueError"
            record.error = problem
            self.emit("node_failed", node_id, attempt=record.attempts, error=f"ValueError: {problem}", record=record)
            if self.first_error is None:
                self.first_error = NodeExecutionError(node_id, ValueError(record.error), record.attempts)
                if self.options.failure_mode == "fail_fast":
                    self.cancel_all(f"cancelled: {node_id} failed")
            self.resolved(step.index)
            return
        record.outputs = outputs
        self.values[step.index] = outputs
        record.status = "done"
        self.emit("node_finished", node_id, attempt=record.attempts, record=record)
        self.resolved(step.index)

    def resolved(self, idx: int) -> None:
        # Inputs, outputs, skipped and cancelled nodes resolve inline, so a long chain of them would
        # recurse start -> resolved -> start past the recursion limit: drain a work list instead.
        self.tasks.pop(idx, None)
        backlog = self.backlog
        backlog.append(idx)
        if self.draining:
            return
        self.draining = True
        waiting = self.waiting
        steps = self.plan.steps
        try:
            while backlog:
                self.unresolved -= 1
                for dep in steps[backlog.pop()].dependents:
                    waiting[dep] -= 1
                    if waiting[dep] == 0:
                        self.start(dep)
        finally:
            self.draining = False
        if self.unresolved == 0 and self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    def cancel_all(self, reason: str) -> None:
        for idx, task in list(self.tasks.items()):
            if not task.done():
                task.cancel(reason)
                coro = task.get_coro()
                if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                    # Cancelled before its first step, the task never enters run_node's body, so nothing
                    # there would resolve the node and the run would wait for it forever.
                    record = self.records[idx]
                    record.status = "cancelled"
                    record.skip_reason = reason
                    self.resolved(idx)
        for record in self.records:
            if record.status == "pending":
                record.skip_reason = reason


def gather_inputs(
    slots: Sequence[_Slot], values: _Indexed[Mapping[str, Any] | None], records: _Indexed[NodeRecord]
) -> tuple[dict[str, Any], str | None]:
    """A node's input values, or why it cannot run (an upstream value was not produced).

    ``values[i]`` is what step ``i`` produced (None: nothing), ``records[i]`` its record. Every
    back end gathers inputs through this.
    """
    args: dict[str, Any] = {}
    for slot in slots:
        if slot.collect:
            items = []
            for src, port in slot.sources:
                produced = values[src]
                if produced is not None and port in produced:
                    items.append(produced[port])
            args[slot.name] = items
            continue
        if not slot.sources:
            if slot.default is not MISSING:
                args[slot.name] = _thaw(slot.default)
            continue
        src, port = slot.sources[0]
        produced = values[src]
        if produced is not None and port in produced:
            args[slot.name] = produced[port]
        elif slot.required:
            upstream = records[src]
            reason = upstream.status if upstream.status != "done" else "did not produce it"
            return args, f"input {slot.name!r} has no value: {upstream.node_id}.{port} {reason}"
        elif slot.default is not MISSING:
            args[slot.name] = _thaw(slot.default)
    return args, None


async def attempt_node(
    executor: Executor,
    policy: NodePolicy,
    args: dict[str, Any],
    run_id: str,
    node: Node,
    record: NodeRecord,
    on_retry: Callable[[str, int, Exception], None] | None = None,
) -> Any:
    """What ``executor`` returns for ``args``, under the node's retry policy and per-attempt timeout.

    ``record.attempts`` counts the attempts; a timeout is a ``TimeoutError`` naming the node;
    ``on_retry(node id, attempt, error)`` hears of each failed attempt that is retried. The last
    failure raises :class:`NodeExecutionError`. Every back end runs its nodes through this.
    """
    attempt = 0
    while True:
        attempt += 1
        record.attempts = attempt
        ctx = NodeContext(run_id, node, attempt, record)
        try:
            if policy.timeout is None:
                return await executor(args, ctx)
            return await asyncio.wait_for(executor(args, ctx), policy.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error: Exception = exc
            if isinstance(exc, asyncio.TimeoutError) and policy.timeout is not None:
                error = TimeoutError(f"node {node.id!r} timed out after {policy.timeout:g} s")
            if not policy.retry.should_retry(error, attempt):
                raise NodeExecutionError(node.id, error, attempt) from error
            if on_retry is not None:
                on_retry(node.id, attempt, error)
            await asyncio.sleep(policy.retry.delay(attempt))


def output_problem(outputs: object, output_names: frozenset[str]) -> str | None:
    """Why what a node returned is not its outputs (not a dict, or names it does not declare), or None."""
    if not isinstance(outputs, dict):
        # Iterating a non-dict would kill the node's task before the node resolves, and a run would hang.
        return f"returned {type(outputs).__name__}, not a dict of output name -> value"
    unknown = [k for k in outputs if k not in output_names]
    return f"returned unknown output(s) {', '.join(map(repr, unknown))}" if unknown else None


def _fanout(listeners: list[Callable[[Event], None]]) -> Callable[[Event], None]:
    def listen(event: Event) -> None:
        for fn in listeners:
            fn(event)

    return listen


def _thaw(value: Any) -> Any:
    from dagwright.compiler.ir import thaw_json

    return thaw_json(value)
