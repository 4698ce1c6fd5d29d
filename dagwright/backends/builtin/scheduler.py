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
import copy
import inspect
import time
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import Event, NodeRecord, RunResult
from dagwright.execution.executor import NodeContext
from dagwright.execution.inputs import input_name, output_name, run_values
from dagwright.execution.policy import RunOptions
from dagwright.execution.resources import RunResources, current_resources, reset_resources, using_resources
from dagwright.execution.steps import IMMUTABLE, attempt_node, fanout, gather_inputs, output_problem, own_inputs
from dagwright.ops.telemetry import RunTracer, run_listener

if TYPE_CHECKING:
    # The plan module makes schedulers (a map node's step runs on one): it imports this module, not the reverse.
    from dagwright.backends.builtin.plan import ExecutionPlan, _Step
    from dagwright.nodes.function import DirectCall

__all__ = ["INLINE_BUDGET", "Scheduler"]

INLINE_BUDGET = 1024
"""At most this many nodes run in place (no task: their functions await nothing) in one step of the event
loop; the next ones start at the following step, so other tasks, and a cancellation, get in between."""


class Scheduler:
    """Runs an :class:`ExecutionPlan`. One instance per plan; each ``run`` is independent."""

    def __init__(self, plan: ExecutionPlan) -> None:
        self.plan = plan
        # Listeners of every run (a flow's monitors), on top of each run's own listener.
        self.observers: list[Callable[[Event], None]] = []

    def check_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The run's input values by name (defaults filled in); unknown, missing or mistyped ones raise ValueError."""
        plan = self.plan
        return run_values(plan.graph.name, (plan.steps[idx].node for idx in plan.inputs.values()), inputs)

    async def run(
        self,
        inputs: Mapping[str, Any],
        options: RunOptions | None = None,
        listener: Callable[[Event], None] | None = None,
        resources: RunResources | None = None,
    ) -> RunResult:
        """Run once with ``inputs`` (flow input names -> values).

        ``resources`` are what the run's nodes share (its MCP connections); by default the enclosing
        run's (a map node's steps run inside their run), else the run's own, closed when it ends."""
        values = self.check_inputs(inputs)
        tracing = run_listener(self.plan.graph.name)
        listeners = [fn for fn in (listener, *self.observers, tracing) if fn is not None]
        if len(listeners) > 1:
            listener = fanout(listeners)
        elif listeners:
            listener = listeners[0]
        scope = resources if resources is not None else current_resources()
        owned = scope is None
        if scope is None:
            scope = RunResources()
        token = using_resources(scope)
        try:
            return await _Run(self.plan, values, options or RunOptions(), listener, tracing).execute()
        finally:
            reset_resources(token)
            if owned:
                await scope.aclose()

    async def stream(
        self, inputs: Mapping[str, Any], options: RunOptions | None = None, resources: RunResources | None = None
    ) -> AsyncIterator[Event]:
        """Run once, yielding events as they happen; the last event is ``run_finished``."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        task = asyncio.ensure_future(self.run(inputs, options, queue.put_nowait, resources))
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
        tracing: RunTracer | None = None,
    ) -> None:
        self.plan = plan
        self.inputs = inputs
        self.options = options
        self.listener = listener
        # None unless a tracer provider is set: then each node's attempts run under its span (traced_attempts).
        self.tracing = tracing
        self.run_id = options.run_id or uuid.uuid4().hex
        steps = plan.steps
        self.records = list(map(NodeRecord, plan.node_ids, [s.kind for s in steps]))
        self.values: list[dict[str, Any] | None] = [None] * len(steps)
        self.waiting = plan.n_preds.copy()
        self.unresolved = len(steps)
        # Running node tasks by step index; a node leaves it when it resolves (cheaper than a done callback,
        # which costs one more event-loop callback per node).
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.semaphore = asyncio.Semaphore(options.max_concurrency) if options.max_concurrency else None
        self.fail_fast = options.failure_mode == "fail_fast"
        self.first_error: NodeExecutionError | None = None
        self.finished: asyncio.Future[None] | None = None
        self.outputs: dict[str, Any] = {}
        self.backlog: list[int] = []
        self.draining = False
        # Nodes run in place (see _Step.inline) left in this drain; the rest wait for the next loop step.
        self.inline_budget = INLINE_BUDGET
        self.deferred: list[int] = []
        # While a node's task resolves its node, it offers to run one newly ready node next, itself: the chain's
        # next link runs without a task of its own. ``handed`` is what it was given.
        self.offering = False
        self.handed: tuple[_Step, dict[str, Any]] | None = None
        self.closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        # None unless the run is checkpointed: the only thing the per-node path checks.
        self.checkpoint = options.checkpoint
        self.restored: dict[str, dict[str, Any]] = {}
        self.fingerprints: dict[str, str] = {}
        self.checkpoint_error: str | None = None
        # Nothing between the scheduler and a node's function (no checkpoint, concurrency bound or tracing): the
        # only case in which nodes run in place (see _Step.inline).
        self.plain = self.checkpoint is None and self.semaphore is None and tracing is None

    def emit(self, kind: Any, node_id: str | None = None, **extra: Any) -> None:
        if self.listener is not None:
            self.listener(Event(kind, self.run_id, node_id, time.time(), **extra))

    async def execute(self) -> RunResult:
        started = time.time()
        self.loop = asyncio.get_running_loop()
        self.finished = self.loop.create_future()
        if self.checkpoint is not None:
            _open_checkpoint(self)
        self.emit("run_started")
        ready = self.plan.roots
        if not ready and self.plan.steps:
            raise ValueError("graph has no node without predecessors; it is not a DAG")
        for idx in ready:
            self.start(idx)
        if self.unresolved:
            try:
                await self.finished
            except asyncio.CancelledError:
                self.closed = True
                self.cancel_all("the run was cancelled")
                await self.drain()
                if self.tracing is not None:
                    self.tracing.cancelled()
                if self.checkpoint is not None:
                    # Best effort: a sync caller interrupted by Ctrl-C may already have closed the store, and the
                    # node rows, not this status, are what a resume relies on.
                    with contextlib.suppress(Exception):
                        self.checkpoint.finish_run(self.run_id, "cancelled")
                raise
        await self.drain()
        # Every failure goes through first_failure: without one, no record needs a look.
        failed = [r for r in self.records if r.status == "failed"] if self.first_error is not None else []
        if self.checkpoint is not None:
            self.checkpoint.finish_run(self.run_id, "failed" if failed else "succeeded")
            if self.checkpoint_error is not None:
                from dagwright.ops.checkpoint import CheckpointError

                raise CheckpointError(self.checkpoint_error)
        error = None
        if failed:
            error = "; ".join(f"{r.node_id}: {r.error_type}: {r.error}" for r in failed)
        result = RunResult(
            run_id=self.run_id,
            flow=self.plan.graph.name,
            # Declared order, not completion order: the same flow prints the same way every run.
            outputs={name: self.outputs[name] for name in self.plan.outputs if name in self.outputs},
            nodes=dict(zip(self.plan.node_ids, self.records, strict=True)),
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
        if self.first_error is not None and self.fail_fast:
            record = self.records[idx]
            record.status = "cancelled"
            record.skip_reason = f"cancelled: {self.first_error.node_id} failed"
            self.resolved(idx)
            return
        if step.io:
            _start_io(self, step)
            return
        args: dict[str, Any] | None = None
        if step.sources is not None:
            # Every input from one connection: its value, when the source produced it (the usual case).
            values = self.values
            args = {}
            for name, src, port in step.sources:
                produced = values[src]
                if produced is None or port not in produced:
                    args = None  # gather_inputs says why, or finds a default
                    break
                args[name] = produced[port]
        if args is None:
            args, why_not = gather_inputs(step.slots, self.values, self.records)
            if why_not is not None:
                record = self.records[idx]
                record.status = "skipped"
                record.skip_reason = why_not
                self.emit("node_skipped", step.node.id, error=why_not, record=record)
                self.resolved(idx)
                return
        if step.inline and self.plain:
            if self.inline_budget > 0:
                self.inline_budget -= 1
                if step.direct is not None:
                    _run_direct(self, step, args)
                else:
                    _run_inline(self, step, args)
            else:
                self.defer(idx)
            return
        if self.checkpoint is not None:
            _start_checkpointed(self, step, args)
            return
        if self.offering:
            # Run by the task whose node just finished, after that node: no new task, no loop round trip.
            self.offering = False
            self.handed = (step, args)
            task = asyncio.current_task()
            if task is not None:
                self.tasks[idx] = task
            return
        loop = self.loop or asyncio.get_running_loop()
        if step.direct is not None and self.plain:
            self.tasks[idx] = loop.create_task(_direct_task(self, step, args), name=step.task_name)
        else:
            self.tasks[idx] = loop.create_task(self.run_node(step, args), name=step.task_name)

    def defer(self, idx: int) -> None:
        """Start ``idx`` at the next step of the loop: a long run of in-place nodes lets other tasks in."""
        self.deferred.append(idx)
        if len(self.deferred) == 1:
            loop = self.loop or asyncio.get_running_loop()
            loop.call_soon(self.start_deferred)

    def start_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        if self.closed:
            return
        self.inline_budget = INLINE_BUDGET
        for idx in deferred:
            # Counted as unresolved all along, so the run waits for these; start() sees a failure since.
            self.start(idx)

    def retried(self, node_id: str, attempt: int, error: Exception) -> None:
        self.emit("node_retried", node_id, attempt=attempt, error=f"{type(error).__name__}: {error}")

    async def traced_attempts(self, tracing: RunTracer, step: _Step, args: dict[str, Any]) -> Any:
        """The node's attempts under its span, the current span while the executor runs: an agent's span,
        or a map node's inner runs, nest under it (the task's own context, so no other node sees it)."""
        record = self.records[step.index]
        assert step.executor is not None
        with tracing.node(step.node.id, record):
            return await attempt_node(step.executor, step.policy, args, self.run_id, step.node, record, self.retried)

    async def run_node(self, step: _Step, args: dict[str, Any]) -> None:
        """The task of a node; when the node finishes, it runs the newly ready node it was handed, if any."""
        while True:
            record = self.records[step.index]
            executor = step.executor
            assert executor is not None
            try:
                if self.semaphore is not None:
                    await self.semaphore.acquire()
                try:
                    record.status = "running"
                    record.started_at = time.time()
                    if self.listener is not None:
                        # A snapshot: the record goes on changing, and a consumer reads the event later.
                        self.emit("node_started", step.node.id, record=copy.copy(record))
                    if self.tracing is not None:
                        outputs = await self.traced_attempts(self.tracing, step, args)
                    elif step.simple:
                        # attempt_node's work for one attempt without a timeout, minus its coroutine.
                        record.attempts = 1
                        try:
                            outputs = await executor(own_inputs(args), NodeContext(self.run_id, step.node, 1, record))
                        except Exception as exc:
                            raise NodeExecutionError(step.node.id, exc, 1) from exc
                    else:
                        outputs = await attempt_node(
                            executor, step.policy, args, self.run_id, step.node, record, self.retried
                        )
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
                self.node_failed(step, failure)
                return
            handed = self.finish(step, outputs)
            if handed is None or self.cancelled_before_start(handed[0]):
                return
            step, args = handed

    def finish(self, step: _Step, outputs: Any, check: bool = True) -> tuple[_Step, dict[str, Any]] | None:
        """``node_done`` for a node's task (``succeeded`` when ``check`` is False: outputs that are the node's by
        construction); returns the newly ready node it was handed to run next, if any."""
        self.offering = True
        try:
            if check:
                self.node_done(step, outputs)
            else:
                self.succeeded(step, outputs)
        except BaseException:
            handed = self.take_handed()
            if handed is not None:  # a listener raised: the handed node still gets a task of its own
                loop = self.loop or asyncio.get_running_loop()
                self.tasks[handed[0].index] = loop.create_task(self.run_node(*handed), name=handed[0].task_name)
            raise
        return self.take_handed()

    def cancelled_before_start(self, step: _Step) -> bool:
        """Was ``step`` handed over before a failure elsewhere cancelled the run? Then it never starts, as
        start() would have decided, and is resolved as cancelled."""
        if self.first_error is None or not self.fail_fast:
            return False
        record = self.records[step.index]
        record.status = "cancelled"
        record.skip_reason = f"cancelled: {self.first_error.node_id} failed"
        self.resolved(step.index)
        return True

    def take_handed(self) -> tuple[_Step, dict[str, Any]] | None:
        self.offering = False
        handed, self.handed = self.handed, None
        return handed

    def node_failed(self, step: _Step, failure: NodeExecutionError) -> None:
        record = self.records[step.index]
        record.ended_at = time.time()
        record.status = "failed"
        cause = failure.error
        record.error = str(cause) or type(cause).__name__
        record.error_type = type(cause).__name__
        record.error_location = failure.location
        self.emit(
            "node_failed",
            step.node.id,
            attempt=record.attempts,
            error=f"{record.error_type}: {record.error}",
            record=record,
        )
        self.first_failure(failure)
        self.resolved(step.index)

    def first_failure(self, failure: NodeExecutionError) -> None:
        if self.first_error is None:
            self.first_error = failure
            if self.fail_fast:
                self.cancel_all(f"cancelled: {failure.node_id} failed")

    def node_done(self, step: _Step, outputs: Any) -> None:
        """The node returned ``outputs``: check them, record them, resolve the node."""
        if type(outputs) is not dict or not step.output_names.issuperset(outputs):
            problem = output_problem(outputs, step.output_names)
            if problem is not None:
                record = self.records[step.index]
                node_id = step.node.id
                record.ended_at = time.time()
                record.status = "failed"
                record.error_type = "ValueError"
                record.error = problem
                self.emit(
                    "node_failed", node_id, attempt=record.attempts, error=f"ValueError: {problem}", record=record
                )
                self.first_failure(NodeExecutionError(node_id, ValueError(record.error), record.attempts))
                self.resolved(step.index)
                return
        self.succeeded(step, outputs)

    def succeeded(self, step: _Step, outputs: dict[str, Any]) -> None:
        """The node returned ``outputs``, checked: record them, resolve the node."""
        idx = step.index
        record = self.records[idx]
        record.ended_at = time.time()
        record.outputs = outputs
        self.values[idx] = outputs
        record.status = "done"
        if self.listener is not None:
            self.emit("node_finished", step.node.id, attempt=record.attempts, record=record)
        self.tasks.pop(idx, None)
        self.settle(idx)

    def resolved(self, idx: int) -> None:
        self.tasks.pop(idx, None)
        self.settle(idx)

    def settle(self, idx: int) -> None:
        """``idx`` is resolved and has no task (any more): count it and start the dependents it made ready."""
        # Inputs, outputs, skipped and cancelled nodes resolve inline, so a long chain of them would
        # recurse start -> resolved -> start past the recursion limit: drain a work list instead.
        backlog = self.backlog
        backlog.append(idx)
        if self.draining:
            return
        self.draining = True
        self.inline_budget = INLINE_BUDGET
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


# ---- nodes resolved or run in place, without a task


def _start_io(run: _Run, step: _Step) -> None:
    """Resolve a flow input or output node: nothing runs."""
    idx = step.index
    record = run.records[idx]
    if step.kind == INPUT_KIND:
        name = input_name(step.node)
        run.values[idx] = {step.node.outputs[0].name: run.inputs[name]}
        record.status = "done"
        run.resolved(idx)
        return
    args, why_not = gather_inputs(step.slots, run.values, run.records)
    if why_not is not None:
        record.status = "skipped"
        record.skip_reason = why_not
        run.emit("node_skipped", step.node.id, error=why_not, record=record)
        run.resolved(idx)
        return
    assert step.kind == OUTPUT_KIND
    run.outputs[output_name(step.node)] = args[step.node.inputs[0].name]
    run.values[idx] = {}
    record.status = "done"
    run.resolved(idx)


def _run_inline(run: _Run, step: _Step, args: dict[str, Any]) -> None:
    """Run a node whose executor never suspends, here and now: one attempt, its outcome recorded as a
    task would record it (same statuses, events, errors and checks)."""
    record = run.records[step.index]
    node = step.node
    record.status = "running"
    record.started_at = time.time()
    record.attempts = 1
    if run.listener is not None:
        run.emit("node_started", node.id, record=copy.copy(record))
    assert step.executor is not None
    try:
        # An async def function's coroutine, whatever the Executor type says of it (see never_suspends).
        outputs = _run_to_end(step.executor(own_inputs(args), NodeContext(run.run_id, node, 1, record)), node.id)
    except Exception as exc:
        run.node_failed(step, NodeExecutionError(node.id, exc, 1))
        return
    run.node_done(step, outputs)


def _run_to_end(awaitable: Any, node_id: str) -> Any:
    """The value of a coroutine that awaits nothing (see never_suspends), run to its end in one step."""
    coro = typing.cast("Coroutine[Any, Any, Any]", awaitable)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError(f"node {node_id!r} suspended, although its function awaits nothing")


def _run_direct(run: _Run, step: _Step, args: dict[str, Any]) -> None:
    """:func:`_run_inline` for a node whose function the scheduler calls itself (see _Step.direct): the
    function's own coroutine, run to its end in one step, its value checked and made the node's output."""
    idx = step.index
    record = run.records[idx]
    record.status = "running"
    record.started_at = time.time()
    record.attempts = 1
    if run.listener is not None:
        run.emit("node_started", step.node.id, record=copy.copy(record))
    direct = step.direct
    assert direct is not None
    try:
        value = _run_to_end(_call(direct, args), step.node.id)
        if direct.fits is not None and type(value) not in direct.fits:
            direct.check(value)
    except Exception as exc:
        run.node_failed(step, NodeExecutionError(step.node.id, exc, 1))
        return
    # node_done, less the check of the outputs' shape: this one is the node's by construction.
    run.succeeded(step, {direct.port: value})


def _call(direct: DirectCall, args: dict[str, Any]) -> Awaitable[Any]:
    """The coroutine of a direct node's function for ``args``, any list or dict among them copied first
    (:func:`own_inputs`, whose scan for one is inlined here: it runs for every node)."""
    for value in args.values():
        if type(value) not in IMMUTABLE:
            return direct.fn(**own_inputs(args))
    return direct.fn(**args)


async def _direct_task(run: _Run, step: _Step, args: dict[str, Any]) -> None:
    """The task of a direct node in a plain run (see _Step.direct, _Run.plain): :meth:`_Run.run_node` less what
    such a node never needs (a semaphore, a span, retries, the check of the outputs' shape). It runs the nodes it
    is handed after its own, as run_node does."""
    while True:
        idx = step.index
        record = run.records[idx]
        direct = step.direct
        assert direct is not None
        record.status = "running"
        record.started_at = time.time()
        if run.listener is not None:
            run.emit("node_started", step.node.id, record=copy.copy(record))
        record.attempts = 1
        try:
            value = await _call(direct, args)
            if direct.fits is not None and type(value) not in direct.fits:
                direct.check(value)
        except asyncio.CancelledError:
            record.ended_at = time.time()
            record.status = "cancelled"
            record.skip_reason = record.skip_reason or "cancelled"
            run.resolved(idx)
            raise
        except Exception as exc:
            run.node_failed(step, NodeExecutionError(step.node.id, exc, 1))
            return
        handed = run.finish(step, {direct.port: value}, check=False)
        if handed is None or run.cancelled_before_start(handed[0]):
            return
        step, args = handed
        if step.direct is None:
            # Awaited, not looped into: run_node runs whatever it is handed itself, so this nests once at most.
            await run.run_node(step, args)
            return


# ---- checkpoints (only when the run has a store)


def _open_checkpoint(run: _Run) -> None:
    from dagwright.ops.checkpoint import node_fingerprints, restorable

    store = run.checkpoint
    assert store is not None
    graph = run.plan.graph
    run.fingerprints = node_fingerprints(graph)
    if run.options.resume:
        run.restored = restorable(graph, store.node_outputs(run.run_id, graph.content_hash))
    else:
        store.begin_run(run.run_id, graph, run.inputs)


def _start_checkpointed(run: _Run, step: _Step, args: dict[str, Any]) -> None:
    idx = step.index
    stored = run.restored.get(step.node.id)
    if stored is not None:
        record = run.records[idx]
        record.status = "cached"
        record.outputs = stored
        run.values[idx] = stored
        run.emit("node_finished", step.node.id, record=record)
        run.resolved(idx)
        return
    loop = run.loop or asyncio.get_running_loop()
    run.tasks[idx] = loop.create_task(_run_checkpointed(run, step, args), name=step.task_name)


async def _run_checkpointed(run: _Run, step: _Step, args: dict[str, Any]) -> None:
    await run.run_node(step, args)
    record = run.records[step.index]
    if record.status != "done" or run.checkpoint is None:
        return
    # Synchronous on purpose: no await between the node finishing and its row being committed, so a
    # cancellation cannot leave a half-written checkpoint, and no dependent starts before the commit.
    try:
        run.checkpoint.save_node(
            run.run_id, run.plan.graph.content_hash, step.node.id, run.fingerprints[step.node.id], record.outputs
        )
    except Exception as exc:
        if run.checkpoint_error is None:
            run.checkpoint_error = (
                f"checkpoint {run.checkpoint.path!r}: could not store the outputs of node {step.node.id!r}: "
                f"{type(exc).__name__}: {exc}"
            )
