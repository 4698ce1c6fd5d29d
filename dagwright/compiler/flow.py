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
from typing import Any

from dagwright.compiler import diagnostics as dg
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
from dagwright.compiler.types import ANY, TypeExpr, from_python

__all__ = ["Flow", "NodeRef", "PortRef"]

# Frames in these files are the builder's own; a node's location is the first
# frame outside them (the user's line, or a pattern factory's caller).
_INTERNAL_DIRS: list[str] = [os.path.dirname(os.path.abspath(__file__)) + os.sep]


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


@dataclass(frozen=True, slots=True)
class _Connection:
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
class _FlowOutput:
    name: str
    source: Endpoint
    location: SourceLocation | None


def _caller_location() -> SourceLocation | None:
    """The first frame outside this package: where the user's code made the call."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(tuple(_INTERNAL_DIRS)):
            return SourceLocation(filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return None


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
    ) -> NodeRef:
        """Add an agent node.

        ``agent`` is an agent object (anything with a ``signature`` and optionally a
        ``config``), or directly a signature (text, class or instance). Secrets in
        the config (API keys, tokens, URL credentials) never enter the IR.
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
        inputs, outputs, config = _function_ports(fn, output)
        node = Node(node_id, "function", inputs, outputs, config, self._group, _caller_location())
        return self.add_node(node, fn)

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

    def configure(self, node_id: str, *, retry: Any = None, timeout: float | None = None) -> Flow:
        """Set a node's retry policy (a ``RetryPolicy``) and per-attempt timeout (seconds)."""
        from dagwright.runtime.policy import NodePolicy, RetryPolicy

        if node_id not in self._by_id:
            close = difflib.get_close_matches(node_id, list(self._by_id), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"flow {self.name!r} has no node {node_id!r}{hint}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        current = self._policies.get(node_id, NodePolicy())
        self._policies[node_id] = NodePolicy(
            retry if retry is not None else current.retry, timeout if timeout is not None else current.timeout
        )
        self._version += 1
        return self

    def _scheduler(self) -> Any:
        from dagwright.runtime.runner import build_plan
        from dagwright.runtime.scheduler import Scheduler

        cached = self._plan
        if cached is not None and cached[0] == self._version:
            return cached[1]
        graph = self.compile()
        scheduler = Scheduler(build_plan(graph, self._bindings, self._policies))
        self._plan = (self._version, scheduler)
        return scheduler

    def _split_run_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        from dagwright.runtime.scheduler import RunOptions

        option_names = ("max_concurrency", "failure_mode", "run_id")
        declared = {decl.name for decl in self._inputs.values()}
        options = {k: kwargs.pop(k) for k in option_names if k in kwargs and k not in declared}
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
        ``flow.run(inputs={...})``). ``max_concurrency=``, ``failure_mode=`` and ``run_id=``
        are run options unless the flow has an input of that name. Works inside a running
        event loop too.
        """
        from dagwright.runtime._sync import run_sync

        values, options = self._split_run_args(args, inputs)
        scheduler = self._scheduler()
        return run_sync(scheduler.run(values, options))

    async def arun(self, *args: Any, **inputs: Any) -> Any:
        """``run()`` for async code: awaits the run on the current event loop."""
        values, options = self._split_run_args(args, inputs)
        return await self._scheduler().run(values, options)

    async def stream(self, *args: Any, **inputs: Any) -> Any:
        """Run, yielding events (node started / finished / failed / retried / skipped) as they happen."""
        values, options = self._split_run_args(args, inputs)
        async for event in self._scheduler().stream(values, options):
            yield event

    def to_graph(self) -> Graph:
        """The graph as declared, checked or not (for drawing or exporting a broken flow)."""
        return self._build()[0]

    def _build(self) -> tuple[Graph, list[Diagnostic]]:
        if self._built is not None and self._built[0] == self._version:
            return self._built[1], self._built[2]
        found: list[Diagnostic] = list(self._reported)
        edges = self._resolve_connections(found)
        input_nodes, input_edges = self._bind_inputs(edges, found)
        output_nodes, output_edges = self._bind_outputs(edges, found)
        metadata = FrozenDict({"description": self.description}) if self.description else EMPTY
        graph = Graph(
            self.name,
            tuple(input_nodes) + tuple(self._nodes) + tuple(output_nodes),
            tuple(input_edges) + tuple(edges) + tuple(output_edges),
            metadata,
        )
        found.extend(validate(graph))
        found.sort(key=dg.sort_key)
        self._built = (self._version, graph, found)
        return graph, found

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
        for conn in self._connections:
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
                    continue
                edges.extend(Edge(src, a, dst, b, loc) for a, b in conn.mapping)
                continue
            if src_port is not None and dst_port is not None:
                edges.append(Edge(src, src_port, dst, dst_port, loc))
                continue
            if src_port is not None or dst_port is not None:
                # One side names a port: the other side's port has the same name.
                name = src_port if src_port is not None else dst_port
                assert name is not None
                edges.append(Edge(src, name, dst, name, loc))
                continue
            source_node = self._by_id.get(src)
            target_node = self._by_id.get(dst)
            if source_node is None or target_node is None:
                for name, node in ((src, source_node), (dst, target_node)):
                    if node is None:
                        close = difflib.get_close_matches(name, list(self._by_id), n=1, cutoff=0.5)
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
                continue
            wanted = {p.name for p in target_node.inputs}
            matched = [p.name for p in source_node.outputs if p.name in wanted]
            if not matched:
                outs = ", ".join(p.name for p in source_node.outputs) or "none"
                ins = ", ".join(p.name for p in target_node.inputs) or "none"
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
            edges.extend(Edge(src, name, dst, name, loc) for name in matched)
        return edges

    def _bind_inputs(self, edges: list[Edge], found: list[Diagnostic]) -> tuple[list[Node], list[Edge]]:
        connected = {(e.target, e.target_port) for e in edges}
        nodes: list[Node] = []
        new_edges: list[Edge] = []
        for decl in self._inputs.values():
            node_id = f"{INPUT_KIND}:{decl.name}"
            if decl.targets is None:
                targets = [
                    (node.id, port.name)
                    for node in self._nodes
                    for port in node.inputs
                    if port.name == decl.name and (node.id, port.name) not in connected
                ]
            else:
                targets = []
                for end in decl.targets:
                    nid, port_name = self._split(end)
                    targets.append((nid, port_name if port_name is not None else decl.name))
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
            nodes.append(
                Node(
                    node_id,
                    INPUT_KIND,
                    (),
                    (Port(decl.name, ptype, description=decl.description),),
                    freeze_json(config),
                    (),
                    decl.location,
                )
            )
            new_edges.extend(Edge(node_id, decl.name, nid, port_name, decl.location) for nid, port_name in targets)
        return nodes, new_edges

    def _bind_outputs(self, edges: list[Edge], found: list[Diagnostic]) -> tuple[list[Node], list[Edge]]:
        declared: list[tuple[str, str, str, SourceLocation | None]] = []
        if self._outputs:
            for decl in self._outputs.values():
                nid, port_name = self._split(decl.source)
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
        hints = typing.get_type_hints(fn)
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
    if inspect.iscoroutinefunction(fn):
        config["async"] = True
    return tuple(inputs), outputs, FrozenDict(config)
