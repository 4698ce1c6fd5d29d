"""``Flow``: the builder plus everything a user does with a flow: run it, lower it, draw it.

The building and checking live in :class:`~dagwright.compiler.builder.FlowBuilder`;
this class adds the ends of the pipeline, each imported on first use so that
``import dagwright`` stays light:

* running on the built-in scheduler (``run``, ``arun``, ``stream``, ``resume``) or on
  Dask (``backend="dask"``): :mod:`dagwright.backends.builtin`, :mod:`dagwright.backends.dask`;
* lowering to Kailash (``to_kailash``, ``build``, ``run_kailash``): :mod:`dagwright.backends.kailash`;
* drawing (``to_dot``, ``to_mermaid``, ``render``): :mod:`dagwright.visualize`.

Back ends receive the compiled :class:`~dagwright.compiler.ir.Graph` with the flow's
bindings and policies, never the Flow itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from dagwright.compiler.builder import FlowBuilder
from dagwright.compiler.connections import NodeRef, PortRef
from dagwright.compiler.location import register_internal_path
from dagwright.compiler.signature import MISSING
from dagwright.compiler.suggest import suggest

if typing.TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from dagwright.backends.builtin.scheduler import Scheduler
    from dagwright.backends.kailash.lowering import Lowering
    from dagwright.compiler.ir import Graph
    from dagwright.execution.events import Event, RunResult
    from dagwright.execution.policy import FailureMode, RunOptions
    from dagwright.execution.resources import RunResources
    from dagwright.ops.monitor import FlowMonitor
    from dagwright.visualize.model import RunLike

__all__ = ["Flow", "NodeRef", "PortRef"]

# A node's location is where the user called, not this module's methods.
register_internal_path(os.path.abspath(__file__))

_RUN_OPTIONS = ("max_concurrency", "failure_mode", "run_id", "checkpoint")
_KAILASH_OPTIONS = ("runtime", "run_id", "failure_mode", "task_manager")


class Flow(FlowBuilder):
    """A workflow: declare it (see :class:`FlowBuilder`), then ``compile()``, ``run()``, ``build()`` or ``render()``.

    ::

        flow = Flow("research")
        flow.add_agent("research", "topic -> findings: list[str]")
        flow.add_function("summarize", summarize)
        flow.connect("research.findings", "summarize.findings")
        flow.input("topic")
        flow.output("summary", "summarize.output")
        result = flow.run(topic="Four-day weeks")
    """

    def __init__(self, name: str = "flow", *, description: str = "") -> None:
        super().__init__(name, description=description)
        self._plan: tuple[Graph, Scheduler] | None = None
        self._lowering: tuple[Graph, Lowering] | None = None
        self._observers: list[Any] = []
        self._monitor: FlowMonitor | None = None
        self._servers: tuple[int, list[Any]] | None = None

    @classmethod
    def from_agent(cls, agent: object, node_id: str = "agent") -> Flow:
        """A one-node flow around an agent: its inputs and outputs become the flow's."""
        flow = cls(node_id)
        flow.add_agent(node_id, agent)
        node = flow._by_id[node_id]
        for port in node.inputs:
            flow.input(port.name, default=port.default if not port.required else MISSING)
        for port in node.outputs:
            flow.output(port.name, PortRef(node_id, port.name))
        return flow

    # ------------------------------------------------------------------ run settings

    def add_agent(self, node_id: str, agent: object = None, *, tools: Sequence[object] = (), **options: Any) -> NodeRef:
        """:meth:`FlowBuilder.add_agent`; ``tools`` may be plain functions (typed, the docstring describing them)."""
        if tools:
            from dagwright.llm.tools import as_tools

            tools = as_tools(tools)
        return super().add_agent(node_id, agent, tools=tools, **options)

    def configure(self, node_id: str, *, retry: Any = None, timeout: float | None = None, cache: Any = None) -> Flow:
        """Set a node's retry policy (a ``RetryPolicy``), per-attempt timeout (seconds) and result cache.

        ``cache=True`` (or ``"memory"``) gives the node its own in-memory cache, a
        ``ResultCache`` (``SqliteCache("cache.db")``) is used as given, ``cache=False`` removes it:
        a node with a cache answers inputs it has answered before without running again.
        """
        from dagwright.execution.policy import NodePolicy, RetryPolicy

        if node_id not in self._by_id:
            close = suggest(node_id, self._by_id)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"flow {self.name!r} has no node {node_id!r}{hint}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        current = self._policies.get(node_id, NodePolicy())
        if cache is None:
            node_cache = current.cache
        elif cache is False:
            node_cache = None
        else:
            from dagwright.ops.cache import make_cache

            node_cache = make_cache(cache, owner=f"flow {self.name!r}, node {node_id!r}")
        self._policies[node_id] = NodePolicy(
            retry if retry is not None else current.retry,
            timeout if timeout is not None else current.timeout,
            node_cache,
        )
        self._version += 1
        return self

    def monitor(self) -> FlowMonitor:
        """This flow's :class:`~dagwright.ops.monitor.FlowMonitor`, made on the first call.

        From then on every run is recorded (on Dask and ``run_kailash`` too): ``monitor().metrics()`` gives
        per-run and per-node latency percentiles, tokens, cost, retries, failures and cache hits;
        ``set_performance_alerts(latency_threshold=ms, hook=...)`` and ``enable_real_time_tracking()``
        work as on an agent's monitor.
        """
        if self._monitor is None:
            from dagwright.ops.monitor import FlowMonitor

            monitor = FlowMonitor(self.name)
            monitor._cache_counts = lambda: {
                node_id: (policy.cache.hits, policy.cache.misses)
                for node_id, policy in self._policies.items()
                if policy.cache is not None
            }
            self._monitor = monitor
            self._observers.append(monitor)
        return self._monitor

    # ------------------------------------------------------------------ running (built-in scheduler, Dask)

    def _scheduler(self) -> Scheduler:
        from dagwright.backends.builtin.plan import build_plan
        from dagwright.backends.builtin.scheduler import Scheduler

        # Keyed by the compiled graph, which changes with the flow and with what its agents say of
        # themselves in the IR (an access policy set after add_agent).
        graph = self.compile()
        cached = self._plan
        if cached is not None and cached[0] is graph:
            return cached[1]
        scheduler = Scheduler(build_plan(graph, self._bindings, self._policies))
        # Shared, not copied: a monitor made after this plan still sees its runs.
        scheduler.observers = self._observers
        self._plan = (graph, scheduler)
        return scheduler

    def _list_servers_here(self) -> None:
        """For agents that connect elsewhere (Dask workers): list the MCP servers here first, as a built-in run
        does, so the graph submitted lists their tools and ``compile()`` checks their names beforehand."""
        _list_here(self)

    def _run_scope(self) -> typing.AsyncContextManager[RunResources | None]:
        """What one run shares, for a caller that runs the scheduler itself (the command line)."""
        return _run_scope(self)

    async def _run_listed(self, values: dict[str, Any], options: RunOptions) -> RunResult:
        async with _run_scope(self) as resources:
            return await self._scheduler().run(values, options, resources=resources)

    def _declared_inputs(self) -> set[str]:
        return {flow_input.name for flow_input in self._inputs.values()}

    def _split_run_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], RunOptions]:
        from dagwright.execution.policy import RunOptions

        declared = self._declared_inputs()
        options = {k: kwargs.pop(k) for k in _RUN_OPTIONS if k in kwargs and k not in declared}
        if options.get("checkpoint") is not None:
            options["checkpoint"] = _open_checkpoint(options["checkpoint"])
        inputs = _positional_inputs("run", args)
        if "inputs" in kwargs and "inputs" not in declared and isinstance(kwargs["inputs"], Mapping):
            inputs.update(kwargs.pop("inputs"))
        inputs.update(kwargs)
        return inputs, RunOptions(**options)

    def run(self, *args: Any, **inputs: Any) -> RunResult:
        """Compile (once per change) and run on the built-in scheduler; returns a ``RunResult``.

        Inputs by name (``flow.run(question="...")``) or as a mapping (``flow.run({"q": ...})``,
        ``flow.run(inputs={...})``). ``max_concurrency=``, ``failure_mode=``, ``run_id=`` and
        ``checkpoint=`` (a SQLite path or a ``CheckpointStore``: each finished node's outputs are
        stored, see :meth:`resume`) are run options unless the flow has an input of that name.
        ``backend="dask"`` runs on a Dask cluster instead (``client=``: None for a local cluster,
        a scheduler address or a ``distributed.Client``; see :mod:`dagwright.backends.dask`).
        Works inside a running event loop too.
        """
        from dagwright.execution._sync import run_sync

        backend, client = self._pop_backend(inputs)
        values, options = self._split_run_args(args, inputs)
        if backend == "dask":
            return self._run_dask(values, options, client)
        with _closing_checkpoint(options):
            if _mcp_servers(self):
                return run_sync(self._run_listed(values, options))
            scheduler = self._scheduler()
            return run_sync(scheduler.run(values, options))

    async def arun(self, *args: Any, **inputs: Any) -> RunResult:
        """``run()`` for async code: awaits the run on the current event loop."""
        backend, client = self._pop_backend(inputs)
        values, options = self._split_run_args(args, inputs)
        if backend == "dask":
            import asyncio  # here, not at the top: importing asyncio costs ~40 ms of `import dagwright`

            return await asyncio.to_thread(self._run_dask, values, options, client)
        with _closing_checkpoint(options):
            if _mcp_servers(self):
                return await self._run_listed(values, options)
            return await self._scheduler().run(values, options)

    def _pop_backend(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """The ``backend=`` (``"builtin"`` or ``"dask"``) and ``client=`` run options, unless they are inputs."""
        declared = self._declared_inputs()
        backend = kwargs.pop("backend", "builtin") if "backend" not in declared else "builtin"
        client = kwargs.pop("client", None) if "client" not in declared else None
        if backend not in ("builtin", "dask"):
            raise ValueError(f"backend must be 'builtin' or 'dask', got {backend!r}")
        if client is not None and backend != "dask":
            raise ValueError("client= is a run option of backend='dask'")
        return backend, client

    def _run_dask(self, values: dict[str, Any], options: RunOptions, client: Any) -> RunResult:
        """Run on Dask (:mod:`dagwright.backends.dask`): ``client`` is None, an address or a Client."""
        from dagwright.backends.dask.client import run_on_dask

        with _closing_checkpoint(options):
            self._list_servers_here()
            return run_on_dask(
                self._scheduler().plan,
                values,
                client=client,
                failure_mode=options.failure_mode,
                run_id=options.run_id,
                max_concurrency=options.max_concurrency,
                checkpoint=options.checkpoint,
                resume=options.resume,
                observers=self._observers,
            )

    async def stream(self, *args: Any, **inputs: Any) -> typing.AsyncIterator[Event]:
        """Run, yielding events (node started / finished / failed / retried / skipped) as they happen."""
        values, options = self._split_run_args(args, inputs)
        with _closing_checkpoint(options):
            async with _run_scope(self) as resources:
                async for event in self._scheduler().stream(values, options, resources):
                    yield event

    def resume(
        self,
        run_id: str,
        *,
        checkpoint: Any = None,
        rerun_changed: bool = False,
        inputs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RunResult:
        """Continue run ``run_id`` stored in ``checkpoint``: nodes whose outputs are stored are marked
        ``cached`` and not run again; the rest run with the run's stored inputs. Returns a ``RunResult``.

        The checkpoint does not store inputs named like secrets (``api_token``, ``password``, ...): give
        them again in ``inputs=``; a run that had one cannot resume without it, and no other input may
        be given.

        A flow that changed since the run started is refused with a ``CheckpointMismatchError`` naming
        the changed, added and removed nodes; ``rerun_changed=True`` re-runs those nodes and everything
        downstream of them instead.
        """
        from dagwright.execution._sync import run_sync

        if _mcp_servers(self):
            return run_sync(
                self.aresume(run_id, checkpoint=checkpoint, rerun_changed=rerun_changed, inputs=inputs, **options)
            )
        scheduler, values, run_options = _resume_args(
            self._scheduler(), run_id, checkpoint, rerun_changed, inputs, options
        )
        with _closing_checkpoint(run_options):
            return run_sync(scheduler.run(values, run_options))

    async def aresume(
        self,
        run_id: str,
        *,
        checkpoint: Any = None,
        rerun_changed: bool = False,
        inputs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RunResult:
        """:meth:`resume` for async code."""
        # The servers are listed before the run's graph is compared with the stored one: it lists their tools.
        async with _run_scope(self) as resources:
            scheduler, values, run_options = _resume_args(
                self._scheduler(), run_id, checkpoint, rerun_changed, inputs, options
            )
            with _closing_checkpoint(run_options):
                return await scheduler.run(values, run_options, resources=resources)

    # ------------------------------------------------------------------ batches

    def run_batch(
        self,
        batch: Sequence[Mapping[str, Any]],
        concurrency: int = 4,
        *,
        progress: bool | Console | None = None,
        max_concurrency: int | None = None,
        failure_mode: FailureMode = "fail_fast",
    ) -> list[RunResult]:
        """Run the flow once per input mapping in ``batch``, at most ``concurrency`` runs at once; returns
        the ``RunResult``s in input order. Works inside a running event loop too.

        A run that fails gives its failed ``RunResult`` (``success=False``) and the other runs go on.
        Every mapping is checked against the flow's inputs before anything runs: one that does not fit
        raises ValueError naming its position. ``progress=True`` draws a rich progress bar on stderr (runs
        done, failed, tokens, cost, time), ``False`` never, ``None`` (the default) only when stderr is a
        terminal; a rich ``Console`` draws on that console. ``max_concurrency=`` and ``failure_mode=``
        apply to each run, as in :meth:`run`.
        """
        from dagwright.execution._sync import run_sync

        return run_sync(
            self.arun_batch(
                batch, concurrency, progress=progress, max_concurrency=max_concurrency, failure_mode=failure_mode
            )
        )

    async def arun_batch(
        self,
        batch: Sequence[Mapping[str, Any]],
        concurrency: int = 4,
        *,
        progress: bool | Console | None = None,
        max_concurrency: int | None = None,
        failure_mode: FailureMode = "fail_fast",
    ) -> list[RunResult]:
        """:meth:`run_batch` for async code: the runs share the current event loop."""
        return await _run_batch(self, batch, concurrency, progress, max_concurrency, failure_mode)

    # ------------------------------------------------------------------ Kailash
    # Imported on use, so `import dagwright` does not import kailash.

    def _kailash_lowering(self) -> Lowering:
        """The checked flow lowered for Kailash (a flow with errors raises its ``CompileError``); kept until
        the flow changes."""
        from dagwright.backends.kailash.lowering import lower

        graph = self.compile()
        cached = self._lowering
        if cached is not None and cached[0] is graph:
            return cached[1]
        lowering = lower(graph, self._bindings, self._policies)
        self._lowering = (graph, lowering)
        return lowering

    def to_kailash(self) -> Any:
        """The checked flow as a Kailash ``WorkflowBuilder`` (``dagwright.WorkflowBuilder``, a subclass).

        Raises the flow's ``CompileError`` when it does not compile. Node ids are kept; flow
        inputs become parameters of the nodes that consume them (``parameters={"research":
        {"topic": ...}}``); see :mod:`dagwright.backends.kailash.lowering` for the whole mapping.
        """
        return self._kailash_lowering().builder()

    def build(self, workflow_id: str | None = None, **metadata: Any) -> Any:
        """The checked flow as a Kailash ``Workflow``, for ``runtime.execute(flow.build())`` in a ``LocalRuntime``."""
        return self.to_kailash().build(workflow_id, **metadata)

    def kailash_parameters(self, *args: Any, **inputs: Any) -> dict[str, dict[str, Any]]:
        """Kailash ``parameters`` (``{node_id: {input: value}}``) for flow inputs given by name."""
        return self._kailash_lowering().parameters(_positional_inputs("kailash_parameters", args), **inputs)

    def run_kailash(self, *args: Any, **inputs: Any) -> RunResult:
        """Run on Kailash and return a ``RunResult``, like :meth:`run` (works inside an event loop too).

        ``runtime="async"`` uses ``AsyncLocalRuntime``; a Kailash runtime instance is used as
        given; the default is ``LocalRuntime`` with its fast settings. ``failure_mode=`` is
        :meth:`run`'s: ``"fail_fast"`` (the default) or ``"continue"`` (only the failed node's
        descendants are skipped; other branches finish and keep their outputs). ``task_manager=`` gets
        Kailash's task tracking, skipped nodes marked ``metadata["skipped"]``. A flow input named as
        one of these options goes in the mapping: ``run_kailash({"runtime": ...})``.
        """
        from dagwright.execution._sync import run_sync

        return run_sync(self.arun_kailash(*args, **inputs))

    async def arun_kailash(self, *args: Any, **inputs: Any) -> RunResult:
        """:meth:`run_kailash` for async code."""
        from dagwright.backends.kailash.runtime import arun_on_kailash

        declared = self._declared_inputs()
        options = {k: inputs.pop(k) for k in _KAILASH_OPTIONS if k in inputs and k not in declared}
        values = {**_positional_inputs("run_kailash", args), **inputs}
        async with _run_scope(self) as resources:
            return await arun_on_kailash(
                self._kailash_lowering(), values, observers=self._observers, resources=resources, **options
            )

    # ------------------------------------------------------------------ drawing (dagwright.visualize)
    # Imported on use, so `import dagwright` does not import graphviz.

    def to_dot(self, *, collapse: Sequence[str] = (), diagnostics: bool = False, run: RunLike | None = None) -> str:
        """Graphviz DOT of the flow (no binary needed); ``diagnostics=True`` draws problems in red,
        ``run=`` a ``RunResult`` on the nodes, ``collapse=["debate"]`` a group as one box."""
        from dagwright.visualize.dot import to_dot

        found = self.validate() if diagnostics else None
        return to_dot(self.to_graph(), collapse=collapse, diagnostics=found, run=run)

    def to_mermaid(self, *, collapse: Sequence[str] = (), diagnostics: bool = False, run: RunLike | None = None) -> str:
        """A Mermaid ``flowchart LR`` of the flow (renders on GitHub); options as for :meth:`to_dot`."""
        from dagwright.visualize.mermaid import to_mermaid

        found = self.validate() if diagnostics else None
        return to_mermaid(self.to_graph(), collapse=collapse, diagnostics=found, run=run)

    def render(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        collapse: Sequence[str] = (),
        diagnostics: bool = False,
        run: RunLike | None = None,
    ) -> Path:
        """Draw the flow into ``path``: .svg/.png/.pdf (needs Graphviz's ``dot``), .dot, .mmd or .md;
        ``format`` overrides the suffix. Returns the path written."""
        from dagwright.visualize.render import render

        found = self.validate() if diagnostics else None
        return render(self.to_graph(), path, format=format, collapse=collapse, diagnostics=found, run=run)


def _mcp_servers(flow: Flow) -> list[Any]:
    """The MCP servers the flow's agents name (each object once), kept until the flow changes."""
    cached = flow._servers
    if cached is not None and cached[0] == flow._version:
        return cached[1]
    found: dict[int, Any] = {}
    for binding in flow._bindings.values():
        for source in getattr(binding, "tools", None) or ():
            if hasattr(source, "connection_key"):
                found.setdefault(id(source), source)
    flow._servers = (flow._version, list(found.values()))
    return flow._servers[1]


@contextlib.asynccontextmanager
async def _run_scope(flow: Flow) -> typing.AsyncIterator[RunResources | None]:
    """What one run (or one batch of runs) of the flow shares: with MCP servers, their connections,
    opened and listed once when the run starts (so the graph it runs lists their tools, and their
    names are checked by compile()), shared by every agent, closed when it ends. None without servers
    (the scheduler then gives each run its own, empty, scope)."""
    servers = _mcp_servers(flow)
    if not servers:
        yield None
        return
    from dagwright.execution.resources import RunResources, current_resources
    from dagwright.llm.mcp import list_servers

    current = current_resources()  # a flow run inside another run's node, on its loop: that run's
    resources = current if current is not None else RunResources()
    try:
        await list_servers(servers, resources)
        yield resources
    finally:
        if current is None:
            await resources.aclose()


def _list_here(flow: Flow) -> None:
    if _mcp_servers(flow):
        from dagwright.execution._sync import run_sync

        run_sync(_list_and_close(flow))


async def _list_and_close(flow: Flow) -> None:
    async with _run_scope(flow):
        pass


async def _run_batch(
    flow: Flow,
    batch: Sequence[Mapping[str, Any]],
    concurrency: int,
    progress: bool | Console | None,
    max_concurrency: int | None,
    failure_mode: FailureMode,
) -> list[RunResult]:
    """:meth:`Flow.arun_batch`."""
    from dagwright.execution.policy import RunOptions

    if concurrency < 1:
        raise ValueError(f"flow {flow.name!r}: concurrency must be at least 1, got {concurrency}")
    items = list(batch)
    scheduler = flow._scheduler()
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"run_batch() takes a list of input mappings; item {position} is a {type(item).__name__}")
        try:
            scheduler.check_inputs(item)
        except ValueError as exc:
            # Before anything runs, as for one run: a typo in item 900 must not cost 899 runs first.
            raise ValueError(f"run_batch() item {position}: {exc}") from None
    # Checked here, once, rather than by each run: a bad option fails the batch, not every run in it.
    RunOptions(max_concurrency, failure_mode)

    def tally(result: RunResult) -> tuple[bool, int, float]:
        usage = result.usage
        return result.success, usage.total, usage.cost

    # The runs of a batch share its MCP connections: connected and listed once for the whole batch.
    async with _run_scope(flow) as resources:
        if resources is not None:
            scheduler = flow._scheduler()  # the graph now lists the servers' tools

        async def one(item: Mapping[str, Any]) -> RunResult:
            return await scheduler.run(item, RunOptions(max_concurrency, failure_mode), resources=resources)

        return await bounded_batch(items, one, concurrency=concurrency, progress=progress, label=flow.name, tally=tally)


_T = TypeVar("_T")
_R = TypeVar("_R")

Tally = Callable[[bool, int, float], None]
"""Told of each finished item of a batch: whether it succeeded, its tokens, its cost."""


async def bounded_batch(
    items: Sequence[_T],
    run: Callable[[_T], Awaitable[_R]],
    *,
    concurrency: int,
    progress: bool | Console | None,
    label: str,
    tally: Callable[[_R], tuple[bool, int, float]],
) -> list[_R]:
    """``await run(item)`` for every item, at most ``concurrency`` at once; the results in item order.

    The batch runs of flows and agents (``Flow.run_batch``, ``BaseAgent.run_batch``). ``tally(result)``
    says whether a result succeeded and its tokens and cost, for the progress bar (see
    :func:`batch_progress`). An exception of ``run`` counts as a failure on the bar, cancels the items
    still running or waiting, and propagates.
    """
    import asyncio  # here, not at the top: importing asyncio costs ~40 ms of `import dagwright`

    semaphore = asyncio.Semaphore(concurrency)
    with batch_progress(progress, label, len(items)) as advance:

        async def one(item: _T) -> _R:
            async with semaphore:
                try:
                    result = await run(item)
                except Exception:
                    advance(False, 0, 0.0)
                    raise
            advance(*tally(result))
            return result

        tasks = [asyncio.ensure_future(one(item)) for item in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            # gather leaves the other tasks running when one raises: stop them, rather than paying for
            # runs (and LLM calls) whose results nobody will see.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


def _ignore(ok: bool, tokens: int, cost: float) -> None:
    """The progress callback when no bar is shown."""


@contextlib.contextmanager
def batch_progress(progress: bool | Console | None, label: str, total: int) -> Iterator[Tally]:
    """A rich progress bar over ``total`` batch items; yields the callback to call as each one ends.

    ``progress``: True draws on stderr, False never, None only when stderr is a terminal, a rich
    ``Console`` draws on it. rich is imported only when a bar is drawn, so ``import dagwright``
    and every batch without a bar stay without it.
    """
    if progress is False or (progress is None and not _stderr_is_terminal()):
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = progress if isinstance(progress, Console) else Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs · {task.fields[tally]}", markup=False),
        TimeElapsedColumn(),
        console=console,
    )
    failed, tokens, cost = 0, 0, 0.0

    def advance(ok: bool, used: int, spent: float) -> None:
        nonlocal failed, tokens, cost
        failed, tokens, cost = failed + (not ok), tokens + used, cost + spent
        bar.update(task, advance=1, tally=f"{failed} failed · {tokens:,} tokens · ${cost:.4f}")

    with bar:
        task = bar.add_task(label, total=total, tally=f"0 failed · 0 tokens · ${0:.4f}")
        yield advance


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def _positional_inputs(call: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """The one positional argument the run methods take: a mapping of inputs."""
    if len(args) > 1:
        raise TypeError(f"{call}() takes one positional argument: a mapping of inputs")
    if args and not isinstance(args[0], Mapping):
        raise TypeError(f"{call}()'s positional argument is a mapping of inputs, got {type(args[0]).__name__}")
    return dict(args[0]) if args else {}


def _resume_args(
    scheduler: Scheduler,
    run_id: str,
    checkpoint: Any,
    rerun_changed: bool,
    secret_inputs: Mapping[str, Any] | None,
    options: dict[str, Any],
) -> tuple[Scheduler, dict[str, Any], RunOptions]:
    """What a resume runs: the scheduler, the run's inputs (its secret ones given again), the run's options."""
    from dagwright.execution.policy import RunOptions

    unknown = [k for k in options if k not in ("max_concurrency", "failure_mode")]
    if unknown:
        raise TypeError(
            f"resume() got unexpected argument(s) {', '.join(map(repr, unknown))}: the run's inputs are stored "
            "in the checkpoint (its secret-named ones go in inputs=); only inputs=, max_concurrency= and "
            "failure_mode= may be given"
        )
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"resume() needs the id of a stored run; got {run_id!r}")
    if checkpoint is None:
        raise TypeError("resume() needs checkpoint=: the SQLite path (or CheckpointStore) the run was stored in")
    store = _open_checkpoint(checkpoint)
    try:
        stored = store.prepare_resume(run_id, scheduler.plan.graph, rerun_changed=rerun_changed, inputs=secret_inputs)
        run_options = RunOptions(**options, run_id=run_id, checkpoint=store, resume=True)
    except BaseException:
        if store.close_after_run:
            store.close()
        raise
    return scheduler, stored.inputs, run_options


def _open_checkpoint(value: Any) -> Any:
    """A ``CheckpointStore`` from a path (closed after the run) or as given."""
    from dagwright.ops.checkpoint import CheckpointStore

    if isinstance(value, CheckpointStore):
        return value
    if isinstance(value, (str, os.PathLike)):
        store = CheckpointStore(value)
        store.close_after_run = True
        return store
    raise TypeError(f"checkpoint must be a SQLite file path or a CheckpointStore, got {type(value).__name__}")


@contextlib.contextmanager
def _closing_checkpoint(options: RunOptions) -> Iterator[None]:
    try:
        yield
    finally:
        store = options.checkpoint
        if store is not None and store.close_after_run:
            store.close()
