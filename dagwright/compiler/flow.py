"""The Flow builder: agents and functions wired together, compiled into a checked Graph.

Building records declarations and never fails on wiring: a bad connection is a
diagnostic of ``compile()``, which reports every problem at once. ``compile()``
is an explicit chain of passes over the declarations::

    resolve connections -> bind flow inputs -> bind flow outputs -> Graph -> validation passes

Only the call itself fails at once when it is malformed (a function with
``*args``, a config that is not a mapping): those are mistakes in Python, not in
the graph.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dagwright.compiler import diagnostics as dg
from dagwright.compiler._gc import gc_paused
from dagwright.compiler.diagnostics import CompileError, Diagnostic, has_errors
from dagwright.compiler.ir import (
    EMPTY,
    INPUT_KIND,
    OUTPUT_KIND,
    Edge,
    FrozenDict,
    Graph,
    Node,
    Port,
    SourceLocation,
    freeze_json,
)
from dagwright.compiler.passes import validate
from dagwright.compiler.redact import config_to_dict, redact_config
from dagwright.compiler.registry import function_ref
from dagwright.compiler.signature import MISSING, SignatureSpec, as_signature
from dagwright.compiler.types import ANY, TypeExpr, callable_hints, from_python

if typing.TYPE_CHECKING:
    from pathlib import Path

    from dagwright.visualize.model import RunLike

__all__ = ["Flow", "NodeRef", "PortRef"]

# Frames in these files are the builder's own; a node's location is the first
# frame outside them (the user's line, or a pattern factory's caller).
_INTERNAL_PATHS: tuple[str, ...] = (os.path.dirname(os.path.abspath(__file__)) + os.sep,)


def register_internal_path(path: str) -> None:
    """Treat frames in ``path`` (a directory ending in a separator, or a file) as the builder's own."""
    global _INTERNAL_PATHS
    if path not in _INTERNAL_PATHS:
        _INTERNAL_PATHS = (*_INTERNAL_PATHS, path)


@dataclass(frozen=True, slots=True)
class PortRef:
    """An explicit ``node.port`` endpoint (unambiguous even when ids contain dots)."""

    node: str
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass(frozen=True, slots=True)
class NodeRef:
    """What ``add_*`` returns: the node's id; ``ref["port"]`` is a :class:`PortRef`."""

    id: str

    def __getitem__(self, port: str) -> PortRef:
        return PortRef(self.id, port)

    def __str__(self) -> str:
        return self.id


Endpoint = str | NodeRef | PortRef


class _Connection(NamedTuple):
    # A tuple: a large flow records hundreds of thousands, and a frozen dataclass costs twice as much to make.
    source: Endpoint
    target: Endpoint
    mapping: tuple[tuple[str, str], ...] | None
    location: SourceLocation | None


@dataclass(frozen=True, slots=True)
class _FlowInput:
    name: str
    type: TypeExpr | None
    default: Any
    description: str
    targets: tuple[Endpoint, ...] | None
    location: SourceLocation | None


@dataclass(frozen=True, slots=True)
class _SubFlow:
    """An inlined sub-flow: its inputs and outputs as endpoints of the parent (``prefix.name``)."""

    prefix: str
    inputs: dict[str, list[tuple[str, str]]]
    outputs: dict[str, tuple[str, str]]


def _prefixed(d: Diagnostic, prefix: str) -> Diagnostic:
    def p(node_id: str | None) -> str | None:
        return None if node_id is None else f"{prefix}.{node_id}"

    return Diagnostic(
        d.code,
        d.severity,
        d.message,
        p(d.node),
        d.port,
        d.hint,
        tuple(f"{prefix}.{r}" for r in d.related),
        d.edge,
        d.location,
    )


@dataclass(frozen=True, slots=True)
class _FlowOutput:
    name: str
    source: Endpoint
    location: SourceLocation | None


def _caller_location() -> SourceLocation | None:
    """The first frame outside this package: where the user's code made the call."""
    internal = _INTERNAL_PATHS
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(internal):
            return _location(filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return None


@functools.lru_cache(maxsize=4096)
def _location(filename: str, line: int) -> SourceLocation:
    # A loop adding many nodes calls from one line: they share one (immutable) location.
    return SourceLocation(filename, line)


class Flow:
    """A workflow under construction; ``compile()`` turns it into a checked :class:`Graph`.

    ::

        flow = Flow("research")
        flow.add_agent("research", "topic -> findings: list[str]")
        flow.add_function("summarize", summarize)
        flow.connect("research.findings", "summarize.findings")
        flow.input("topic")
        flow.output("summary", "summarize.output")
        graph = flow.compile()
    """

    def __init__(self, name: str = "flow", *, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a flow needs a non-empty name")
        self.name = name
        self.description = description
        self._nodes: list[Node] = []
        self._by_id: dict[str, Node] = {}
        self._bindings: dict[str, object] = {}
        self._connections: list[_Connection] = []
        self._inputs: dict[str, _FlowInput] = {}
        self._outputs: dict[str, _FlowOutput] = {}
        self._reported: list[Diagnostic] = []
        self._group: tuple[str, ...] = ()
        self._version = 0
        self._built: tuple[int, Graph, list[Diagnostic]] | None = None
        self._policies: dict[str, Any] = {}
        self._plan: tuple[int, Any] | None = None
        self._subflows: dict[str, _SubFlow] = {}
        self._inlined_edges: list[Edge] = []
        self._inherited_inputs: list[_FlowInput] = []
        self._exposed: dict[str, str] = {}
        self._declaration_problems: list[Diagnostic] = []
        self._observers: list[Any] = []
        self._monitor: Any = None

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, nodes={len(self._nodes)}, connections={len(self._connections)})"

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

    # ------------------------------------------------------------------ nodes

    @property
    def node_ids(self) -> list[str]:
        """Ids of the nodes added so far, in order."""
        return [n.id for n in self._nodes]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def binding(self, node_id: str) -> object:
        """The agent or function behind a node (what a runtime calls)."""
        return self._bindings[node_id]

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Nodes added inside ``with flow.group("debate"):`` carry that group path (drawn as a cluster)."""
        previous = self._group
        self._group = (*previous, name)
        try:
            yield
        finally:
            self._group = previous

    def add_node(self, node: Node, binding: object = None) -> NodeRef:
        """Add a ready-made IR node (coordination nodes, custom kinds)."""
        if not isinstance(node, Node):
            raise TypeError(f"add_node() takes a Node, got {type(node).__name__}")
        if self._group and not node.group:
            node = Node(node.id, node.kind, node.inputs, node.outputs, node.config, self._group, node.location)
        if node.location is None:
            node = Node(node.id, node.kind, node.inputs, node.outputs, node.config, node.group, _caller_location())
        self._nodes.append(node)
        self._by_id.setdefault(node.id, node)
        if binding is not None:
            self._bindings.setdefault(node.id, binding)
        self._version += 1
        return NodeRef(node.id)

    def add_agent(
        self,
        node_id: str,
        agent: object = None,
        *,
        signature: object = None,
        config: object = None,
        collect: Sequence[str] = (),
    ) -> NodeRef:
        """Add an agent node.

        ``agent`` is an agent object (anything with a ``signature`` and optionally a
        ``config``), or directly a signature (text, class or instance). Secrets in
        the config (API keys, tokens, URL credentials) never enter the IR.
        ``collect`` names list inputs that take many connections (a transcript of
        turns, a set of votes), delivered in connection order.
        """
        if agent is not None and signature is None and _is_signature_like(agent):
            signature, agent = agent, None
        if agent is not None:
            if signature is None:
                signature = getattr(agent, "signature", None)
                if signature is None:
                    raise TypeError(
                        f"add_agent({node_id!r}): {type(agent).__name__} has no 'signature'; pass signature=..."
                    )
            if config is None:
                config = getattr(agent, "config", None)
        if signature is None:
            raise TypeError(f"add_agent({node_id!r}) needs an agent or a signature")
        spec = as_signature(signature)
        settings = redact_config(config_to_dict(config))
        node_config: dict[str, Any] = {}
        if spec.name:
            node_config["signature"] = spec.name
        if spec.instructions:
            node_config["instructions"] = spec.instructions
        if settings:
            node_config["agent"] = settings
        inputs, outputs = _signature_ports(spec)
        if collect:
            names = {p.name for p in inputs}
            unknown = [c for c in collect if c not in names]
            if unknown:
                raise ValueError(
                    f"add_agent({node_id!r}): collect names unknown input(s) {', '.join(map(repr, unknown))}; "
                    f"inputs are: {', '.join(sorted(names)) or 'none'}"
                )
            inputs = tuple(
                Port(p.name, p.type, False, p.default, True, p.description) if p.name in collect else p for p in inputs
            )
        node = Node(node_id, "agent", inputs, outputs, freeze_json(node_config), self._group, _caller_location())
        return self.add_node(node, agent if agent is not None else spec)

    def add_function(
        self,
        node_id: str,
        fn: Callable[..., Any],
        *,
        output: str = "output",
    ) -> NodeRef:
        """Add a typed Python function (sync or async) as a node.

        Inputs are its parameters, typed by their annotations. A return annotation
        gives one output port called ``output`` (rename it with ``output=``); a
        ``TypedDict`` return gives one port per key; ``-> None`` gives none.
        """
        if not callable(fn):
            raise TypeError(f"add_function({node_id!r}) takes a callable, got {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"add_function({node_id!r}): {getattr(fn, '__qualname__', fn)!r} is a generator function; a node "
                "returns its outputs once (return a list to give many values)"
            )
        inputs, outputs, config = _function_ports(fn, output)
        node = Node(node_id, "function", inputs, outputs, config, self._group, _caller_location())
        return self.add_node(node, fn)

    def add_flow(self, prefix: str, flow: Flow) -> NodeRef:
        """Inline another flow (a pattern, a reusable sub-workflow) under ``prefix``.

        Its nodes get ids ``prefix.<id>``; its inputs and outputs become endpoints
        ``prefix.<name>`` of this flow (``connect("research", "debate")`` matches
        names against them). Its inputs are also declared on this flow, merged by
        name, for whatever nothing else connects.
        """
        if not isinstance(flow, Flow):
            raise TypeError(f"add_flow({prefix!r}) takes a Flow, got {type(flow).__name__}")
        if flow is self:
            raise ValueError(f"add_flow({prefix!r}): a flow cannot contain itself")
        if prefix in self._subflows or prefix in self._by_id:
            raise ValueError(f"add_flow({prefix!r}): {prefix!r} is already used in flow {self.name!r}")
        graph, _ = flow._build()
        location = _caller_location()
        kinds = {n.id: n.kind for n in graph.nodes}
        for node in graph.nodes:
            if node.kind in (INPUT_KIND, OUTPUT_KIND):
                continue
            inlined = Node(
                f"{prefix}.{node.id}",
                node.kind,
                node.inputs,
                node.outputs,
                node.config,
                (*self._group, *node.group),
                node.location,
            )
            self.add_node(inlined, flow._bindings.get(node.id))
            if node.id in flow._policies:
                self._policies[inlined.id] = flow._policies[node.id]
        inputs: dict[str, list[tuple[str, str]]] = {n.outputs[0].name: [] for n in graph.input_nodes}
        outputs: dict[str, tuple[str, str]] = {}
        for edge in graph.edges:
            if kinds.get(edge.source) == INPUT_KIND:
                inputs.setdefault(edge.source_port, []).append((f"{prefix}.{edge.target}", edge.target_port))
            elif kinds.get(edge.target) == OUTPUT_KIND:
                outputs[edge.target_port] = (f"{prefix}.{edge.source}", edge.source_port)
                self._exposed[f"{prefix}.{edge.source}"] = prefix
            else:
                self._inlined_edges.append(
                    Edge(
                        f"{prefix}.{edge.source}",
                        edge.source_port,
                        f"{prefix}.{edge.target}",
                        edge.target_port,
                        edge.location,
                    )
                )
        for node in graph.input_nodes:
            port = node.outputs[0]
            default = node.config.get("default", MISSING)
            targets = tuple(PortRef(n, p) for n, p in inputs[port.name])
            self._inherited_inputs.append(
                _FlowInput(port.name, port.type, default, port.description, targets, location)
            )
        for d in flow._declaration_problems:
            self._reported.append(_prefixed(d, prefix))
        self._subflows[prefix] = _SubFlow(prefix, inputs, outputs)
        self._version += 1
        return NodeRef(prefix)

    def add(self, node_id: str, obj: object, **options: Any) -> NodeRef:
        """Add an agent or a function, whichever ``obj`` is."""
        if hasattr(obj, "signature") or _is_signature_like(obj):
            return self.add_agent(node_id, obj, **options)
        if callable(obj):
            return self.add_function(node_id, obj, **options)
        raise TypeError(f"add({node_id!r}): expected an agent, a signature or a function, got {type(obj).__name__}")

    # ------------------------------------------------------------------ wiring

    def connect(self, source: Endpoint, target: Endpoint, *, mapping: Mapping[str, str] | None = None) -> Flow:
        """Connect an output to an input.

        * port to port: ``connect("research.findings", "writer.findings")``;
        * node to node, by matching names: ``connect("research", "writer")`` joins
          every output of ``research`` to the input of ``writer`` with the same name;
        * node to node with a mapping (output -> input): ``mapping={"summary": "text"}``.

        A string that is a node id names the node; otherwise its last dot separates
        node and port. Returns the flow, so calls chain.
        """
        for end in (source, target):
            if not isinstance(end, (str, NodeRef, PortRef)):
                raise TypeError(f"connect() endpoints are 'node', 'node.port' or refs, got {end!r}")
        pairs: tuple[tuple[str, str], ...] | None = None
        if mapping is not None:
            if not isinstance(mapping, Mapping) or not mapping:
                raise TypeError("mapping must be a non-empty dict of output name -> input name")
            pairs = tuple((str(k), str(v)) for k, v in mapping.items())
        self._connections.append(_Connection(source, target, pairs, _caller_location()))
        self._version += 1
        return self

    def input(
        self,
        name: str,
        type: object = None,
        *,
        default: Any = MISSING,
        description: str = "",
        to: Endpoint | Sequence[Endpoint] | None = None,
    ) -> Flow:
        """Declare a flow input.

        Without ``to`` it feeds every input port called ``name`` that nothing else
        connects; with ``to`` it feeds exactly those ports. Its type defaults to
        the type of the first port it feeds. A ``default`` makes it optional.
        """
        ptype = None if type is None else from_python(type)
        targets: tuple[Endpoint, ...] | None
        if to is None:
            targets = None
        elif isinstance(to, (str, NodeRef, PortRef)):
            targets = (to,)
        else:
            targets = tuple(to)
        if default is not MISSING:
            freeze_json(default, f"default of flow input {name!r}")
        self._inputs[name] = _FlowInput(name, ptype, default, description, targets, _caller_location())
        self._version += 1
        return self

    def output(self, name: str, source: Endpoint | None = None) -> Flow:
        """Declare a flow output read from ``source`` (``"node.port"``; default: ``name`` itself)."""
        self._outputs[name] = _FlowOutput(name, source if source is not None else name, _caller_location())
        self._version += 1
        return self

    def report(self, diagnostic: Diagnostic) -> None:
        """Attach a diagnostic found while building (used by patterns for their configuration)."""
        self._reported.append(diagnostic)
        self._version += 1

    # ------------------------------------------------------------------ compiling

    def validate(self) -> list[Diagnostic]:
        """Every problem of the flow (errors, warnings, infos); never raises for graph problems."""
        return list(self._build()[1])

    def compile(self, *, strict: bool = False) -> Graph:
        """The checked :class:`Graph`; raises :class:`CompileError` with all diagnostics
        when there is an error (or, with ``strict``, a warning)."""
        graph, diagnostics = self._build()
        if has_errors(diagnostics, strict=strict):
            raise CompileError(self.name, diagnostics)
        return graph

    # ------------------------------------------------------------------ running (built-in runtime)

    def configure(self, node_id: str, *, retry: Any = None, timeout: float | None = None, cache: Any = None) -> Flow:
        """Set a node's retry policy (a ``RetryPolicy``), per-attempt timeout (seconds) and result cache.

        ``cache=True`` (or ``"memory"``) gives the node its own in-memory cache, a
        ``ResultCache`` (``SqliteCache("cache.db")``) is used as given, ``cache=False`` removes it:
        a node with a cache answers inputs it has answered before without running again.
        """
        from dagwright.runtime.policy import NodePolicy, RetryPolicy

        if node_id not in self._by_id:
            close = difflib.get_close_matches(node_id, list(self._by_id), n=1)
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
            from dagwright.runtime.cache import make_cache

            node_cache = make_cache(cache, owner=f"flow {self.name!r}, node {node_id!r}")
        self._policies[node_id] = NodePolicy(
            retry if retry is not None else current.retry,
            timeout if timeout is not None else current.timeout,
            node_cache,
        )
        self._version += 1
        return self

    def monitor(self) -> Any:
        """This flow's :class:`~dagwright.runtime.monitor.FlowMonitor`, made on the first call.

        From then on every run is recorded (on Dask too): ``monitor().metrics()`` gives
        per-run and per-node latency percentiles, tokens, cost, retries, failures and cache hits;
        ``set_performance_alerts(latency_threshold=ms, hook=...)`` and ``enable_real_time_tracking()``
        work as on an agent's monitor.
        """
        if self._monitor is None:
            from dagwright.runtime.monitor import FlowMonitor

            monitor = FlowMonitor(self.name)
            monitor._cache_counts = lambda: {
                node_id: (policy.cache.hits, policy.cache.misses)
                for node_id, policy in self._policies.items()
                if policy.cache is not None
            }
            self._monitor = monitor
            self._observers.append(monitor)
        return self._monitor

    def _scheduler(self) -> Any:
        from dagwright.runtime.runner import build_plan
        from dagwright.runtime.scheduler import Scheduler

        cached = self._plan
        if cached is not None and cached[0] == self._version:
            return cached[1]
        graph = self.compile()
        scheduler = Scheduler(build_plan(graph, self._bindings, self._policies))
        # Shared, not copied: a monitor made after this plan still sees its runs.
        scheduler.observers = self._observers
        self._plan = (self._version, scheduler)
        return scheduler

    def _split_run_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        from dagwright.runtime.scheduler import RunOptions

        option_names = ("max_concurrency", "failure_mode", "run_id", "checkpoint")
        declared = {decl.name for decl in self._inputs.values()}
        options = {k: kwargs.pop(k) for k in option_names if k in kwargs and k not in declared}
        if options.get("checkpoint") is not None:
            options["checkpoint"] = _open_checkpoint(options["checkpoint"])
        inputs: dict[str, Any] = {}
        if len(args) > 1:
            raise TypeError("run() takes one positional argument: a mapping of inputs")
        if args:
            if not isinstance(args[0], Mapping):
                raise TypeError(f"run()'s positional argument is a mapping of inputs, got {type(args[0]).__name__}")
            inputs.update(args[0])
        if "inputs" in kwargs and "inputs" not in declared and isinstance(kwargs["inputs"], Mapping):
            inputs.update(kwargs.pop("inputs"))
        inputs.update(kwargs)
        return inputs, RunOptions(**options)

    def run(self, *args: Any, **inputs: Any) -> Any:
        """Compile (once per change) and run on the built-in scheduler; returns a ``RunResult``.

        Inputs by name (``flow.run(question="...")``) or as a mapping (``flow.run({"q": ...})``,
        ``flow.run(inputs={...})``). ``max_concurrency=``, ``failure_mode=``, ``run_id=`` and
        ``checkpoint=`` (a SQLite path or a ``CheckpointStore``: each finished node's outputs are
        stored, see :meth:`resume`) are run options unless the flow has an input of that name.
        ``backend="dask"`` runs on a Dask cluster instead (``client=``: None for a local cluster,
        a scheduler address or a ``distributed.Client``; see :mod:`dagwright.runtime.dask_backend`).
        Works inside a running event loop too.
        """
        from dagwright.runtime._sync import run_sync

        backend, client = self._pop_backend(inputs)
        values, options = self._split_run_args(args, inputs)
        if backend == "dask":
            return self._run_dask(values, options, client)
        with _closing_checkpoint(options):
            scheduler = self._scheduler()
            return run_sync(scheduler.run(values, options))

    async def arun(self, *args: Any, **inputs: Any) -> Any:
        """``run()`` for async code: awaits the run on the current event loop."""
        backend, client = self._pop_backend(inputs)
        values, options = self._split_run_args(args, inputs)
        if backend == "dask":
            import asyncio  # here, not at the top: importing asyncio costs ~40 ms of `import dagwright`

            return await asyncio.to_thread(self._run_dask, values, options, client)
        with _closing_checkpoint(options):
            return await self._scheduler().run(values, options)

    def _pop_backend(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """The ``backend=`` (``"builtin"`` or ``"dask"``) and ``client=`` run options, unless they are inputs."""
        declared = {decl.name for decl in self._inputs.values()}
        backend = kwargs.pop("backend", "builtin") if "backend" not in declared else "builtin"
        client = kwargs.pop("client", None) if "client" not in declared else None
        if backend not in ("builtin", "dask"):
            raise ValueError(f"backend must be 'builtin' or 'dask', got {backend!r}")
        if client is not None and backend != "dask":
            raise ValueError("client= is a run option of backend='dask'")
        return backend, client

    def _run_dask(self, values: dict[str, Any], options: Any, client: Any) -> Any:
        """Run on Dask (:mod:`dagwright.runtime.dask_backend`): ``client`` is None, an address or a Client."""
        from dagwright.runtime.dask_backend import run_on_dask

        with _closing_checkpoint(options):
            return run_on_dask(
                self,
                values,
                client=client,
                failure_mode=options.failure_mode,
                run_id=options.run_id,
                max_concurrency=options.max_concurrency,
                checkpoint=options.checkpoint,
                resume=options.resume,
                observers=self._observers,
            )

    async def stream(self, *args: Any, **inputs: Any) -> Any:
        """Run, yielding events (node started / finished / failed / retried / skipped) as they happen."""
        values, options = self._split_run_args(args, inputs)
        with _closing_checkpoint(options):
            async for event in self._scheduler().stream(values, options):
                yield event

    def _resume_args(
        self, run_id: str, checkpoint: Any, rerun_changed: bool, options: dict[str, Any]
    ) -> tuple[Any, dict[str, Any], Any]:
        from dagwright.runtime.scheduler import RunOptions

        unknown = [k for k in options if k not in ("max_concurrency", "failure_mode")]
        if unknown:
            raise TypeError(
                f"resume() got unexpected argument(s) {', '.join(map(repr, unknown))}: the run's inputs are stored "
                "in the checkpoint; only max_concurrency= and failure_mode= may be given"
            )
        if checkpoint is None:
            raise TypeError("resume() needs checkpoint=: the SQLite path (or CheckpointStore) the run was stored in")
        store = _open_checkpoint(checkpoint)
        try:
            scheduler = self._scheduler()
            stored = store.prepare_resume(run_id, scheduler.plan.graph, rerun_changed=rerun_changed)
            run_options = RunOptions(**options, run_id=run_id, checkpoint=store, resume=True)
        except BaseException:
            if store.close_after_run:
                store.close()
            raise
        return scheduler, stored.inputs, run_options

    def resume(self, run_id: str, *, checkpoint: Any = None, rerun_changed: bool = False, **options: Any) -> Any:
        """Continue run ``run_id`` stored in ``checkpoint``: nodes whose outputs are stored are marked
        ``cached`` and not run again; the rest run with the run's stored inputs. Returns a ``RunResult``.

        A flow that changed since the run started is refused with a ``CheckpointMismatchError`` naming
        the changed, added and removed nodes; ``rerun_changed=True`` re-runs those nodes and everything
        downstream of them instead.
        """
        from dagwright.runtime._sync import run_sync

        scheduler, inputs, run_options = self._resume_args(run_id, checkpoint, rerun_changed, options)
        with _closing_checkpoint(run_options):
            return run_sync(scheduler.run(inputs, run_options))

    async def aresume(self, run_id: str, *, checkpoint: Any = None, rerun_changed: bool = False, **options: Any) -> Any:
        """:meth:`resume` for async code."""
        scheduler, inputs, run_options = self._resume_args(run_id, checkpoint, rerun_changed, options)
        with _closing_checkpoint(run_options):
            return await scheduler.run(inputs, run_options)

    # ------------------------------------------------------------------ Kailash (dagwright.compiler.lower_kailash)
    # Imported on use, so `import dagwright` does not import kailash.

    def to_kailash(self) -> Any:
        """The checked flow as a Kailash ``WorkflowBuilder`` (``dagwright.WorkflowBuilder``, a subclass).

        Raises the flow's ``CompileError`` when it does not compile. Node ids are kept; flow
        inputs become parameters of the nodes that consume them (``parameters={"research":
        {"topic": ...}}``); see :mod:`dagwright.compiler.lower_kailash` for the whole mapping.
        """
        from dagwright.compiler.lower_kailash import lower_flow

        return lower_flow(self).builder()

    def build(self, workflow_id: str | None = None, **metadata: Any) -> Any:
        """The checked flow as a Kailash ``Workflow``: ``LocalRuntime().execute(flow.build(), parameters=...)``."""
        return self.to_kailash().build(workflow_id, **metadata)

    def kailash_parameters(self, *args: Any, **inputs: Any) -> dict[str, dict[str, Any]]:
        """Kailash ``parameters`` (``{node_id: {input: value}}``) for flow inputs given by name."""
        from dagwright.compiler.lower_kailash import lower_flow

        if len(args) > 1 or (args and not isinstance(args[0], Mapping)):
            raise TypeError("kailash_parameters() takes one positional argument: a mapping of inputs")
        return lower_flow(self).parameters(args[0] if args else None, **inputs)

    def run_kailash(self, *args: Any, **inputs: Any) -> Any:
        """Run on Kailash and return a ``RunResult``, like :meth:`run` (works inside an event loop too).

        ``runtime="async"`` uses ``AsyncLocalRuntime``; a Kailash runtime instance is used as
        given; the default is ``LocalRuntime`` with its fast settings. A flow input called
        ``runtime`` or ``run_id`` goes in the mapping: ``run_kailash({"runtime": ...})``.
        """
        from dagwright.runtime._sync import run_sync

        return run_sync(self.arun_kailash(*args, **inputs))

    async def arun_kailash(self, *args: Any, **inputs: Any) -> Any:
        """:meth:`run_kailash` for async code."""
        from dagwright.runtime.kailash_backend import arun_on_kailash

        declared = {decl.name for decl in self._inputs.values()}
        options = {k: inputs.pop(k) for k in ("runtime", "run_id") if k in inputs and k not in declared}
        if len(args) > 1 or (args and not isinstance(args[0], Mapping)):
            raise TypeError("run_kailash() takes one positional argument: a mapping of inputs")
        values = {**(args[0] if args else {}), **inputs}
        return await arun_on_kailash(self, values, **options)

    def to_graph(self) -> Graph:
        """The graph as declared, checked or not (for drawing or exporting a broken flow)."""
        return self._build()[0]

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

    def _build(self) -> tuple[Graph, list[Diagnostic]]:
        if self._built is not None and self._built[0] == self._version:
            return self._built[1], self._built[2]
        with gc_paused():
            return self._build_now()

    def _build_now(self) -> tuple[Graph, list[Diagnostic]]:
        found: list[Diagnostic] = list(self._reported)
        edges = self._resolve_connections(found)
        input_nodes, input_edges = self._bind_inputs(edges, found)
        output_nodes, output_edges = self._bind_outputs(edges, found)
        self._declaration_problems = list(found)
        metadata = FrozenDict({"description": self.description}) if self.description else EMPTY
        graph = Graph(
            self.name,
            tuple(input_nodes) + tuple(self._nodes) + tuple(output_nodes),
            tuple(input_edges) + tuple(edges) + tuple(output_edges),
            metadata,
        )
        found.extend(self._refine(validate(graph), found))
        found.sort(key=dg.sort_key)
        self._built = (self._version, graph, found)
        return graph, found

    def _refine(self, graph_problems: list[Diagnostic], declared: list[Diagnostic]) -> list[Diagnostic]:
        """Graph diagnostics, minus what a declaration problem already says, in a sub-flow's terms."""
        claimed = {(d.node, d.port) for d in declared if d.port is not None}
        out: list[Diagnostic] = []
        for d in graph_problems:
            if d.code == "DW009" and (d.node, d.port) in claimed:
                continue  # e.g. a pipeline step whose input no step produces: DW201 says it better
            prefix = self._exposed.get(d.node or "")
            if d.code == "DW012" and prefix is not None:
                # An inlined pattern's outputs that this flow does not use: a note, not a warning.
                d = dg.make(
                    "DW013",
                    f"the outputs of {d.node!r}, which sub-flow {prefix!r} exposes, are not used",
                    node=d.node,
                    location=d.location,
                )
            out.append(d)
        return out

    def _split(self, end: Endpoint) -> tuple[str, str | None]:
        if isinstance(end, PortRef):
            return end.node, end.port
        if isinstance(end, NodeRef):
            return end.id, None
        if end in self._by_id:
            return end, None
        node, dot, port = end.rpartition(".")
        if dot and node:
            return node, port
        return end, None

    def _resolve_connections(self, found: list[Diagnostic]) -> list[Edge]:
        edges: list[Edge] = []
        if not self._subflows:  # nothing to rewrite: skip a copy of every edge
            by_id = self._by_id
            for conn in self._connections:
                source, target = conn.source, conn.target
                # The common case, "node.port" to "node.port", inline (what _split does for
                # strings that name no node): a large flow has hundreds of thousands.
                if conn.mapping is None and type(source) is str and type(target) is str:
                    src, _, src_port = source.rpartition(".")
                    dst, _, dst_port = target.rpartition(".")
                    if src and dst and source not in by_id and target not in by_id:
                        edges.append(Edge(src, src_port, dst, dst_port, conn.location))
                        continue
                edges.extend(self._resolve_connection(conn, found))
        else:
            for conn in self._connections:
                for edge in self._resolve_connection(conn, found):
                    edges.extend(self._through_subflows(edge, found))
        edges.extend(self._inlined_edges)
        return edges

    def _resolve_connection(self, conn: _Connection, found: list[Diagnostic]) -> list[Edge]:
        """The edges one ``connect()`` call makes (several for node-to-node and mappings)."""
        src, src_port = self._split(conn.source)
        dst, dst_port = self._split(conn.target)
        loc = conn.location
        if conn.mapping is not None:
            if src_port is not None or dst_port is not None:
                found.append(
                    dg.make(
                        "DW015",
                        f"connect({str(conn.source)!r}, {str(conn.target)!r}, mapping=...) mixes port "
                        "endpoints with a mapping; a mapping connects two nodes",
                        node=dst,
                        location=loc,
                    )
                )
                return []
            return [Edge(src, a, dst, b, loc) for a, b in conn.mapping]
        if src_port is not None and dst_port is not None:
            return [Edge(src, src_port, dst, dst_port, loc)]
        if src_port is not None or dst_port is not None:
            # One side names a port: the other side's port has the same name.
            name = src_port if src_port is not None else dst_port
            assert name is not None
            return [Edge(src, name, dst, name, loc)]
        source_ports = self._virtual_ports(src)
        target_ports = self._virtual_ports(dst)
        if source_ports is None or target_ports is None:
            known = [*self._by_id, *self._subflows]
            for name, ports in ((src, source_ports), (dst, target_ports)):
                if ports is None:
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                    found.append(
                        dg.make(
                            "DW003",
                            f"connect({src!r}, {dst!r}) names the unknown node {name!r}",
                            node=name,
                            hint=f"did you mean {close[0]!r}?" if close else "",
                            related=(dst if name == src else src,),
                            location=loc,
                        )
                    )
            return []
        wanted = {p.name for p in target_ports[0]}
        matched = [p.name for p in source_ports[1] if p.name in wanted]
        if not matched:
            outs = ", ".join(p.name for p in source_ports[1]) or "none"
            ins = ", ".join(p.name for p in target_ports[0]) or "none"
            found.append(
                dg.make(
                    "DW015",
                    f"connect({src!r}, {dst!r}) found no output of {src!r} named like an input of "
                    f"{dst!r} (outputs: {outs}; inputs: {ins})",
                    node=dst,
                    related=(src,),
                    hint="connect ports explicitly, or pass mapping={'output': 'input'}",
                    location=loc,
                )
            )
        return [Edge(src, name, dst, name, loc) for name in matched]

    def _virtual_ports(self, name: str) -> tuple[list[Port], list[Port]] | None:
        """The ports of a node, or of an inlined sub-flow seen as one node."""
        node = self._by_id.get(name)
        if node is not None:
            return list(node.inputs), list(node.outputs)
        subflow = self._subflows.get(name)
        if subflow is None:
            return None
        outs = []
        for out_name, (nid, port_name) in subflow.outputs.items():
            target = self._by_id.get(nid)
            port = target.output(port_name) if target is not None else None
            outs.append(Port(out_name, port.type if port is not None else ANY))
        return [Port(n) for n in subflow.inputs], outs

    def _through_subflows(self, edge: Edge, found: list[Diagnostic]) -> list[Edge]:
        """Replace sub-flow endpoints (``prefix.name``) by the nodes behind them."""
        source, source_port = edge.source, edge.source_port
        subflow = self._subflows.get(source)
        if subflow is not None:
            real = subflow.outputs.get(source_port)
            if real is None:
                found.append(self._unknown_io(subflow, source_port, "output", edge))
                return []
            source, source_port = real
        subflow = self._subflows.get(edge.target)
        if subflow is None:
            return [Edge(source, source_port, edge.target, edge.target_port, edge.location)]
        targets = subflow.inputs.get(edge.target_port)
        if targets is None:
            found.append(self._unknown_io(subflow, edge.target_port, "input", edge))
            return []
        return [Edge(source, source_port, n, p, edge.location) for n, p in targets]

    def _unknown_io(self, subflow: _SubFlow, name: str, side: str, edge: Edge) -> Diagnostic:
        names = list(subflow.inputs if side == "input" else subflow.outputs)
        close = difflib.get_close_matches(name, names, n=1)
        return dg.make(
            "DW004" if side == "output" else "DW005",
            f"sub-flow {subflow.prefix!r} has no {side} {name!r} (connection {edge})",
            node=subflow.prefix,
            port=name,
            hint=f"did you mean {close[0]!r}?" if close else f"its {side}s: {', '.join(names) or 'none'}",
            edge=edge,
            location=edge.location,
        )

    def _input_targets(self, end: Endpoint, name: str) -> list[tuple[str, str]]:
        nid, port_name = self._split(end)
        port_name = port_name if port_name is not None else name
        subflow = self._subflows.get(nid)
        if subflow is not None and port_name in subflow.inputs:
            return list(subflow.inputs[port_name])
        return [(nid, port_name)]

    def _bind_inputs(self, edges: list[Edge], found: list[Diagnostic]) -> tuple[list[Node], list[Edge]]:
        if not self._inputs and not self._inherited_inputs:
            return [], []
        connected = {(e.target, e.target_port) for e in edges}
        nodes: dict[str, Node] = {}
        new_edges: list[Edge] = []

        def make_node(decl: _FlowInput, targets: list[tuple[str, str]]) -> Node:
            ptype = decl.type
            if ptype is None:
                ptype = ANY
                for nid, port_name in targets:
                    node = self._by_id.get(nid)
                    port = node.input(port_name) if node is not None else None
                    if port is not None:
                        ptype = port.item_type()
                        break
            config: dict[str, Any] = {"name": decl.name}
            if decl.default is not MISSING:
                config["default"] = decl.default
            return Node(
                f"{INPUT_KIND}:{decl.name}",
                INPUT_KIND,
                (),
                (Port(decl.name, ptype, description=decl.description),),
                freeze_json(config),
                (),
                decl.location,
            )

        for decl in self._inputs.values():
            if decl.targets is None:
                targets = [
                    (node.id, port.name)
                    for node in self._nodes
                    for port in node.inputs
                    if port.name == decl.name and (node.id, port.name) not in connected
                ]
            else:
                targets = [t for end in decl.targets for t in self._input_targets(end, decl.name)]
            node = make_node(decl, targets)
            nodes[decl.name] = node
            new_edges.extend(Edge(node.id, decl.name, nid, port, decl.location) for nid, port in targets)
        connected.update((e.target, e.target_port) for e in new_edges)
        # Inputs of inlined sub-flows feed whatever nothing else feeds, merged by name
        # (two steps that both take `topic` share the flow's one `topic`).
        for decl in self._inherited_inputs:
            assert decl.targets is not None
            remaining = [
                (ref.node, ref.port)
                for ref in decl.targets
                if isinstance(ref, PortRef) and (ref.node, ref.port) not in connected
            ]
            if not remaining:
                continue
            existing = nodes.get(decl.name)
            if existing is None:
                existing = nodes[decl.name] = make_node(decl, remaining)
            new_edges.extend(Edge(existing.id, decl.name, nid, port, decl.location) for nid, port in remaining)
            connected.update(remaining)
        return list(nodes.values()), new_edges

    def _bind_outputs(self, edges: list[Edge], found: list[Diagnostic]) -> tuple[list[Node], list[Edge]]:
        declared: list[tuple[str, str, str, SourceLocation | None]] = []
        if self._outputs:
            for decl in self._outputs.values():
                nid, port_name = self._split(decl.source)
                subflow = self._subflows.get(nid)
                if subflow is not None:
                    if port_name is None and len(subflow.outputs) == 1:
                        port_name = next(iter(subflow.outputs))
                    real = subflow.outputs.get(port_name or "")
                    if real is None:
                        edge = Edge(nid, port_name or "", f"{OUTPUT_KIND}:{decl.name}", decl.name, decl.location)
                        found.append(self._unknown_io(subflow, port_name or "", "output", edge))
                        continue
                    nid, port_name = real
                if port_name is None:
                    node = self._by_id.get(nid)
                    if node is not None and len(node.outputs) == 1:
                        port_name = node.outputs[0].name
                    elif node is not None:
                        names = ", ".join(p.name for p in node.outputs) or "none"
                        found.append(
                            dg.make(
                                "DW018",
                                f"flow output {decl.name!r} reads node {nid!r}, which has "
                                f"{len(node.outputs)} outputs ({names}); name one",
                                node=nid,
                                hint=f"flow.output({decl.name!r}, '{nid}.<output>')",
                                location=decl.location,
                            )
                        )
                        continue
                    else:
                        port_name = decl.name
                declared.append((decl.name, nid, port_name, decl.location))
        else:
            used = {e.source for e in edges}
            sinks = [n for n in self._nodes if n.id not in used and n.outputs]
            ports = [(n, p) for n in sinks for p in n.outputs]
            counts: dict[str, int] = {}
            for _, p in ports:
                counts[p.name] = counts.get(p.name, 0) + 1
            for n, p in ports:
                name = p.name if counts[p.name] == 1 else f"{n.id}.{p.name}"
                declared.append((name, n.id, p.name, None))
        nodes: list[Node] = []
        new_edges: list[Edge] = []
        for name, nid, port_name, loc in declared:
            source = self._by_id.get(nid)
            port = source.output(port_name) if source is not None else None
            ptype = port.type if port is not None else ANY
            node_id = f"{OUTPUT_KIND}:{name}"
            nodes.append(Node(node_id, OUTPUT_KIND, (Port(name, ptype),), (), FrozenDict({"name": name}), (), loc))
            new_edges.append(Edge(nid, port_name, node_id, name, loc))
        return nodes, new_edges


def _is_signature_like(obj: object) -> bool:
    from dagwright.compiler.signature import Signature

    return isinstance(obj, (str, SignatureSpec, Signature)) or (isinstance(obj, type) and issubclass(obj, Signature))


def _signature_ports(spec: SignatureSpec) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    return _signature_ports_cached(spec)


@functools.lru_cache(maxsize=1024)
def _signature_ports_cached(spec: SignatureSpec) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    inputs = tuple(
        Port(
            f.name,
            f.type,
            f.default is MISSING,
            freeze_json(f.default) if f.default is not MISSING else MISSING,
            False,
            f.description,
        )
        for f in spec.inputs
    )
    outputs = tuple(Port(f.name, f.type, description=f.description) for f in spec.outputs)
    return inputs, outputs


def _function_ports(fn: Callable[..., Any], output: str) -> tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]:
    try:
        return _function_ports_cached(fn, output)
    except TypeError as exc:
        if "unhashable" in str(exc):
            return _derive_function_ports(fn, output)
        raise


@functools.lru_cache(maxsize=4096)
def _function_ports_cached(
    fn: Callable[..., Any], output: str
) -> tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]:
    return _derive_function_ports(fn, output)


def _derive_function_ports(
    fn: Callable[..., Any], output: str
) -> tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]:
    label = function_ref(fn)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {label}: {exc}") from None
    try:
        hints = callable_hints(fn)
    except Exception as exc:  # an annotation that does not evaluate (forward ref, missing import)
        raise TypeError(f"cannot evaluate the annotations of {label}: {exc}") from None
    inputs: list[Port] = []
    for param in sig.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{label}: parameter '{param}' cannot be a node input; name every input")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"{label}: parameter {param.name!r} is positional-only; inputs are passed by name")
        try:
            ptype = from_python(hints[param.name]) if param.name in hints else ANY
        except TypeError as exc:
            raise TypeError(f"{label}: parameter {param.name!r}: {exc}") from None
        default: Any = MISSING
        if param.default is not param.empty:
            try:
                default = freeze_json(param.default)
            except TypeError:
                default = MISSING  # a non-JSON default stays the function's own: the port is optional
        inputs.append(Port(param.name, ptype, param.default is param.empty, default))
    outputs: tuple[Port, ...]
    returns_dict = False
    returned = hints.get("return", inspect.Signature.empty if "return" not in hints else None)
    if returned is inspect.Signature.empty:
        outputs = (Port(output, ANY),)
    elif returned is None or returned is type(None):
        outputs = ()
    elif typing.is_typeddict(returned):
        fields = typing.get_type_hints(returned)
        outputs = tuple(Port(k, from_python(v)) for k, v in fields.items())
        returns_dict = True
    else:
        try:
            outputs = (Port(output, from_python(returned)),)
        except TypeError as exc:
            raise TypeError(f"{label}: return annotation: {exc}") from None
    config: dict[str, Any] = {"function": label}
    if returns_dict:
        config["returns"] = "dict"
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):  # or its __call__
        config["async"] = True
    return tuple(inputs), outputs, FrozenDict(config)


def _open_checkpoint(value: Any) -> Any:
    """A ``CheckpointStore`` from a path (closed after the run) or as given."""
    from dagwright.runtime.checkpoint import CheckpointStore

    if isinstance(value, CheckpointStore):
        return value
    if isinstance(value, (str, os.PathLike)):
        store = CheckpointStore(value)
        store.close_after_run = True
        return store
    raise TypeError(f"checkpoint must be a SQLite file path or a CheckpointStore, got {type(value).__name__}")


@contextlib.contextmanager
def _closing_checkpoint(options: Any) -> Iterator[None]:
    try:
        yield
    finally:
        store = options.checkpoint
        if store is not None and store.close_after_run:
            store.close()
