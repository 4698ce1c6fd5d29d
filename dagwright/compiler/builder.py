"""The flow builder: agents and functions wired together, compiled into a checked Graph.

Building records declarations and never fails on wiring: a bad connection is a
diagnostic of ``compile()``, which reports every problem at once. ``compile()``
is an explicit chain of passes over the declarations::

    resolve connections -> bind flow inputs -> bind flow outputs -> Graph -> validation passes

Only the call itself fails at once when it is malformed (a function with
``*args``, a config that is not a mapping): those are mistakes in Python, not in
the graph. :class:`FlowBuilder` is the pure part of :class:`dagwright.Flow`: it
knows nothing of running, lowering or drawing.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import CodeType, FrameType
from typing import Any, TypeVar

from dagwright.compiler import diagnostics as dg
from dagwright.compiler import location as where
from dagwright.compiler._gc import gc_paused
from dagwright.compiler.connections import (
    Connection,
    Declarations,
    Endpoint,
    FlowInput,
    FlowOutput,
    NodeRef,
    PortRef,
    SubFlow,
    _set_ref_id,
    resolve_connections,
    virtual_ports,
)
from dagwright.compiler.diagnostics import CompileError, Diagnostic, has_errors
from dagwright.compiler.flow_io import bind_inputs, bind_outputs
from dagwright.compiler.index import EdgeColumns
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
from dagwright.compiler.location import caller_location, location_at
from dagwright.compiler.passes import validate
from dagwright.compiler.pending import MAX_KINDS
from dagwright.compiler.ports import function_ports, is_signature_like, signature_ports
from dagwright.compiler.redact import AgentBinding, check_safe_keys, config_to_dict, safe_settings
from dagwright.compiler.signature import MISSING, as_signature
from dagwright.compiler.tools import DEFAULT_MAX_TOOL_STEPS, describe_sources, tool_config
from dagwright.compiler.types import from_python

__all__ = ["NOTE_KEYS", "FlowBuilder"]

NOTE_KEYS = ("access_policy", "in_process")
"""Agent node config keys an agent object's ``ir_notes()`` sets: a named access policy; what only the
building process holds (a callable access policy, a custom strategy)."""
TOOL_KEYS = ("tools", "mcp_servers", "max_tool_steps")
"""What the notes of an agent with MCP servers also replace: its tools, listed or not yet."""

_Self = TypeVar("_Self", bound="FlowBuilder")


class FlowBuilder:
    """A workflow under construction; ``compile()`` turns it into a checked :class:`Graph`.

    ::

        flow = FlowBuilder("research")
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
        self._declared = Declarations()
        # The same objects as in the declarations, under the names the builder's hot paths use.
        pending = self._declared.pending
        self._pending_ids, self._pending_runs, self._sites = pending.ids, pending.runs, pending.sites
        # connect()'s call sites (see there): instruction -> its code, the internal paths then, a position index.
        self._connect_sites: dict[int, tuple[CodeType, tuple[str, ...], int]] = {}
        self._connections = self._declared.connections
        self._inputs = self._declared.inputs
        self._outputs = self._declared.outputs
        self._subflows = self._declared.subflows
        # Per-node run settings (retry, timeout, cache): opaque here, carried along by add_flow.
        self._policies: dict[str, Any] = {}
        self._reported: list[Diagnostic] = []
        self._group: tuple[str, ...] = ()
        self._version = 0
        self._built: tuple[object, Graph, list[Diagnostic]] | None = None
        # Agent nodes whose object says more about itself than its config (an access policy, a custom
        # strategy): asked at each build, since such settings may change after add_agent.
        self._noted: dict[str, Callable[[], Mapping[str, Any]]] = {}
        self._exposed: dict[str, str] = {}
        self._declaration_problems: list[Diagnostic] = []
        # What add_function made last (see there).
        self._last_function: tuple[object, str, tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]] = (
            None,
            "",
            ((), (), EMPTY),
        )
        self._last_location: tuple[str | None, int, SourceLocation | None] = (None, 0, None)

    @property
    def _nodes(self) -> list[Node]:
        """Every node declared, in order (the pending ones made first)."""
        return self._declared.nodes

    @property
    def _by_id(self) -> dict[str, Node]:
        """The first node declared under each id."""
        return self._declared.by_id

    @property
    def _bindings(self) -> dict[str, object]:
        """What each node runs: the agent or function given for the first node of its id."""
        return self._declared.bindings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, nodes={len(self._nodes)}, connections={len(self._connections)})"

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
            node = Node(node.id, node.kind, node.inputs, node.outputs, node.config, node.group, caller_location())
        return _append(self, node, binding)

    def add_agent(
        self,
        node_id: str,
        agent: object = None,
        *,
        signature: object = None,
        config: object = None,
        collect: Sequence[str] = (),
        safe_keys: Iterable[str] = (),
        tools: Sequence[object] = (),
    ) -> NodeRef:
        """Add an agent node.

        ``agent`` is an agent object (anything with a ``signature`` and optionally a
        ``config``), or directly a signature (text, class or instance). The IR, and so
        every export and drawing, takes from the config only the settings known to be
        safe (see :mod:`dagwright.compiler.redact`); ``safe_keys`` names more keys the
        caller vouches for (``safe_keys=["region"]``). The full config, API key
        included, stays in the process and is what the agent runs with.
        ``collect`` names list inputs that take many connections (a transcript of
        turns, a set of votes), delivered in connection order. ``tools`` are the tool
        sources of a signature-only agent (an agent object brings its own ``tools``):
        the IR lists each tool's name, schema and origin.
        """
        if agent is not None and signature is None and is_signature_like(agent):
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
        full = config_to_dict(config)
        vouched = check_safe_keys(safe_keys)
        settings = safe_settings(full, vouched)
        node_config: dict[str, Any] = {}
        if spec.name:
            node_config["signature"] = spec.name
        if spec.instructions:
            node_config["instructions"] = spec.instructions
        if settings:
            node_config["agent"] = settings
        if agent is not None and tools:
            raise TypeError(f"add_agent({node_id!r}): give the tools to the agent itself (tools=... when making it)")
        sources = tuple(tools) or tuple(getattr(agent, "tools", None) or ())
        steps = getattr(config, "max_tool_steps", full.get("max_tool_steps", DEFAULT_MAX_TOOL_STEPS))
        node_config.update(tool_config(*describe_sources(sources), steps))  # empty without tools
        inputs, outputs = signature_ports(spec)
        if collect:
            inputs = _collecting(node_id, inputs, collect)
        node = Node(node_id, "agent", inputs, outputs, freeze_json(node_config), self._group, caller_location())
        # A bare signature is bound with the caller's whole config: the IR holds only its safe part.
        binding = agent if agent is not None else AgentBinding(spec, full, vouched, tuple(tools))
        ref = self.add_node(node, binding)
        if self._bindings.get(node_id) is binding:  # not a duplicate id, whose first node's notes stay
            _note_agent(self._noted, node_id, getattr(agent, "ir_notes", None), sources, steps)
        return ref

    def add_function(
        self,
        node_id: str,
        fn: Callable[..., Any],
        *,
        output: str = "output",
        collect: Sequence[str] = (),
    ) -> NodeRef:
        """Add a typed Python function (sync or async) as a node.

        Inputs are its parameters, typed by their annotations. A return annotation
        gives one output port called ``output`` (rename it with ``output=``); a
        ``TypedDict`` return gives one port per key; ``-> None`` gives none.
        ``collect`` names ``list[T]`` parameters taking one ``T`` per connection, as a list in connection order.
        """
        frame = sys._getframe(1)
        site = self._sites.get(frame.f_lasti)
        if (
            site is not None
            and site[0] is frame.f_code
            and site[1] is fn
            and site[2] == output
            and site[3] is self._group
            and site[4] is where.INTERNAL_PATHS
            and not collect
        ):
            # Declared from where, and as, a pending node of this kind was (a loop adding a function from a line):
            # just its id, made with the others when the declarations are read (Declarations.materialize).
            kind = site[5]
            runs = self._pending_runs
            if runs[-1][1] != kind:
                runs.append((len(self._pending_ids), kind))
            self._pending_ids.append(node_id)
            self._version += 1
            ref = _new(NodeRef)
            _set_ref_id(ref, node_id)
            return ref
        _declare_function(self, node_id, fn, output, collect, frame)
        return NodeRef(node_id)

    def add_flow(self, prefix: str, flow: FlowBuilder) -> NodeRef:
        """Inline another flow (a pattern, a reusable sub-workflow) under ``prefix``.

        Its nodes get ids ``prefix.<id>``; its inputs and outputs become endpoints
        ``prefix.<name>`` of this flow (``connect("research", "debate")`` matches
        names against them). Its inputs are also declared on this flow, merged by
        name, for whatever nothing else connects.
        """
        if not isinstance(flow, FlowBuilder):
            raise TypeError(f"add_flow({prefix!r}) takes a Flow, got {type(flow).__name__}")
        if flow is self:
            raise ValueError(f"add_flow({prefix!r}): a flow cannot contain itself")
        if prefix in self._subflows or prefix in self._by_id:
            raise ValueError(f"add_flow({prefix!r}): {prefix!r} is already used in flow {self.name!r}")
        graph, _ = flow._build()
        location = caller_location()
        for node in graph.nodes:
            if node.kind in (INPUT_KIND, OUTPUT_KIND):
                continue
            group = (*self._group, *node.group)
            inlined = Node(
                f"{prefix}.{node.id}", node.kind, node.inputs, node.outputs, node.config, group, node.location
            )
            self.add_node(inlined, flow._bindings.get(node.id))
            if node.id in flow._noted:
                self._noted[inlined.id] = flow._noted[node.id]
            if node.id in flow._policies:
                self._policies[inlined.id] = flow._policies[node.id]
        inputs, outputs = _inline_edges(self, prefix, graph)
        for node in graph.input_nodes:
            port = node.outputs[0]
            default = node.config.get("default", MISSING)
            targets = tuple(PortRef(n, p) for n, p in inputs[port.name])
            self._declared.inherited_inputs.append(
                FlowInput(port.name, port.type, default, port.description, targets, location)
            )
        self._reported.extend(_prefixed(d, prefix) for d in flow._declaration_problems)
        self._subflows[prefix] = SubFlow(prefix, inputs, outputs)
        self._version += 1
        return NodeRef(prefix)

    def add(self, node_id: str, obj: object, **options: Any) -> NodeRef:
        """Add an agent or a function, whichever ``obj`` is."""
        if hasattr(obj, "signature") or is_signature_like(obj):
            return self.add_agent(node_id, obj, **options)
        if callable(obj):
            return self.add_function(node_id, obj, **options)
        raise TypeError(f"add({node_id!r}): expected an agent, a signature or a function, got {type(obj).__name__}")

    # ------------------------------------------------------------------ wiring

    def connect(self: _Self, source: Endpoint, target: Endpoint, *, mapping: Mapping[str, str] | None = None) -> _Self:
        """Connect an output to an input.

        * port to port: ``connect("research.findings", "writer.findings")``;
        * node to node, by matching names: ``connect("research", "writer")`` joins
          every output of ``research`` to the input of ``writer`` with the same name;
        * node to node with a mapping (output -> input): ``mapping={"summary": "text"}``.

        A string that is a node id names the node; otherwise its last dot separates
        node and port. Returns the flow, so calls chain.
        """
        if type(source) is str and type(target) is str and mapping is None:  # the usual call: nothing to check
            # Where the call was, as an index into the declarations' positions: a loop connects from one line,
            # known by the caller's instruction.
            frame = sys._getframe(1)
            site = self._connect_sites.get(frame.f_lasti)
            if site is not None and site[0] is frame.f_code and site[1] is where.INTERNAL_PATHS:
                self._connections.append((source, target, site[2]))
            else:
                self._connections.append((source, target, _connect_position(self, frame)))
            self._version += 1
            return self
        for end in (source, target):
            if not isinstance(end, (str, NodeRef, PortRef)):
                raise TypeError(f"connect() endpoints are 'node', 'node.port' or refs, got {end!r}")
        pairs: tuple[tuple[str, str], ...] | None = None
        if mapping is not None:
            if not isinstance(mapping, Mapping) or not mapping:
                raise TypeError("mapping must be a non-empty dict of output name -> input name")
            pairs = tuple((str(k), str(v)) for k, v in mapping.items())
        self._connections.append(Connection(source, target, pairs, caller_location()))
        self._declared.special_connections += 1
        self._version += 1
        return self

    def input(
        self: _Self,
        name: str,
        type: object = None,
        *,
        default: Any = MISSING,
        description: str = "",
        to: Endpoint | Sequence[Endpoint] | None = None,
    ) -> _Self:
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
        self._inputs[name] = FlowInput(name, ptype, default, description, targets, caller_location())
        self._version += 1
        return self

    def output(self: _Self, name: str, source: Endpoint | None = None) -> _Self:
        """Declare a flow output read from ``source`` (``"node.port"``; default: ``name`` itself)."""
        self._outputs[name] = FlowOutput(name, source if source is not None else name, caller_location())
        self._version += 1
        return self

    def report(self, diagnostic: Diagnostic) -> None:
        """Attach a diagnostic found while building (used by patterns for their configuration)."""
        self._reported.append(diagnostic)
        self._version += 1

    def _virtual_ports(self, name: str) -> tuple[list[Port], list[Port]] | None:
        """The ports of a node, or of an inlined sub-flow seen as one node (what patterns wire by)."""
        return virtual_ports(self._declared, name)

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

    def to_graph(self) -> Graph:
        """The graph as declared, checked or not (for drawing or exporting a broken flow)."""
        return self._build()[0]

    def _build(self) -> tuple[Graph, list[Diagnostic]]:
        notes = self._agent_notes()
        key = (self._version, notes) if notes else self._version
        if self._built is not None and self._built[0] == key:
            return self._built[1], self._built[2]
        with gc_paused():
            return self._build_now(key, dict(notes))

    def _agent_notes(self) -> tuple[tuple[str, Any], ...]:
        """Each noted agent node's notes now, frozen (comparable: part of the build's cache key)."""
        return tuple(
            (node_id, freeze_json(dict(notes()), f"agent node {node_id!r}")) for node_id, notes in self._noted.items()
        )

    def _noted_nodes(self, notes: Mapping[str, Any]) -> tuple[Node, ...]:
        """The declared nodes, an agent's notes (see :data:`NOTE_KEYS`) replacing those in its config."""
        if not notes:
            return tuple(self._nodes)
        nodes = []
        for node in self._nodes:
            if node.id in notes and self._by_id.get(node.id) is node:
                replaced = (*NOTE_KEYS, *TOOL_KEYS) if "mcp_servers" in notes[node.id] else NOTE_KEYS
                config = {k: v for k, v in node.config.items() if k not in replaced}
                config.update(notes[node.id])
                node = Node(
                    node.id, node.kind, node.inputs, node.outputs, FrozenDict(config), node.group, node.location
                )
            nodes.append(node)
        return tuple(nodes)

    def _build_now(self, key: object, notes: Mapping[str, Any]) -> tuple[Graph, list[Diagnostic]]:
        found: list[Diagnostic] = list(self._reported)
        edges, columns = resolve_connections(self._declared, found)
        input_nodes, input_edges = bind_inputs(self._declared, edges)
        output_nodes, output_edges = bind_outputs(self._declared, edges, found)
        self._declaration_problems = list(found)
        metadata = FrozenDict({"description": self.description}) if self.description else EMPTY
        nodes = tuple(input_nodes) + self._noted_nodes(notes) + tuple(output_nodes)
        graph = _graph(self.name, nodes, (input_edges, edges, output_edges), columns, metadata)
        found.extend(_refine(self, validate(graph), found))
        found.sort(key=dg.sort_key)
        self._built = (key, graph, found)
        return graph, found


def _inline_edges(
    builder: FlowBuilder, prefix: str, graph: Graph
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, tuple[str, str]]]:
    """Copy a sub-flow's inner edges under ``prefix``; returns what its inputs feed and its outputs read."""
    kinds = {n.id: n.kind for n in graph.nodes}
    inputs: dict[str, list[tuple[str, str]]] = {n.outputs[0].name: [] for n in graph.input_nodes}
    outputs: dict[str, tuple[str, str]] = {}
    for edge in graph.edges:
        if kinds.get(edge.source) == INPUT_KIND:
            inputs.setdefault(edge.source_port, []).append((f"{prefix}.{edge.target}", edge.target_port))
        elif kinds.get(edge.target) == OUTPUT_KIND:
            outputs[edge.target_port] = (f"{prefix}.{edge.source}", edge.source_port)
            builder._exposed[f"{prefix}.{edge.source}"] = prefix
        else:
            builder._declared.inlined_edges.append(
                Edge(
                    f"{prefix}.{edge.source}",
                    edge.source_port,
                    f"{prefix}.{edge.target}",
                    edge.target_port,
                    edge.location,
                )
            )
    return inputs, outputs


def _graph(
    name: str,
    nodes: tuple[Node, ...],
    edges: tuple[list[Edge], list[Edge], list[Edge]],
    columns: EdgeColumns | None,
    metadata: FrozenDict,
) -> Graph:
    """The graph of ``nodes`` and the edges from the flow's inputs, of the flow itself and to its outputs, in that
    order; given the columns of the flow's own edges, the graph gets those of them all."""
    from_inputs, own, to_outputs = edges
    every_edge = tuple(from_inputs) + tuple(own) + tuple(to_outputs)
    if columns is None:
        return Graph(name, nodes, every_edge, metadata)
    for column, more in zip(columns, EdgeColumns.of(to_outputs), strict=True):
        column.extend(more)
    if from_inputs:
        columns = EdgeColumns(*map(operator.add, EdgeColumns.of(from_inputs), columns))
    return Graph._with_columns(name, nodes, every_edge, metadata, columns)


def _refine(builder: FlowBuilder, graph_problems: list[Diagnostic], declared: list[Diagnostic]) -> list[Diagnostic]:
    """Graph diagnostics, minus what a declaration problem already says, in a sub-flow's terms."""
    claimed = {(d.node, d.port) for d in declared if d.port is not None}
    out: list[Diagnostic] = []
    for d in graph_problems:
        if d.code == "DW009" and (d.node, d.port) in claimed:
            continue  # e.g. a pipeline step whose input no step produces: DW201 says it better
        prefix = builder._exposed.get(d.node or "")
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


def _note_agent(
    noted: dict[str, Callable[[], Mapping[str, Any]]],
    node_id: str,
    notes: object,
    sources: Sequence[object],
    steps: int | None,
) -> None:
    """Record what an agent node's config takes from its objects at each build: the agent's ``ir_notes()``,
    and for an agent with MCP servers its tools, known once a server is listed (``connect()``, the start of
    a run): each build asks again, so the graph lists their schemas from then on."""
    own = notes if callable(notes) else None
    if not any(callable(getattr(source, "ir_entry", None)) for source in sources):
        if own is not None:
            noted[node_id] = own
        return

    def listing() -> dict[str, Any]:
        out = dict(own()) if own is not None else {}
        out.update(tool_config(*describe_sources(sources), steps))
        return out

    noted[node_id] = listing


def _declare_function(
    builder: FlowBuilder, node_id: str, fn: Callable[..., Any], output: str, collect: Sequence[str], frame: FrameType
) -> None:
    """``add_function`` for a node of a new kind: check the function, make its ports and location, and remember
    where it was called from, so that nodes declared there the same way are that kind too."""
    if type(fn) is not types.FunctionType or fn.__code__.co_flags & _GENERATOR_FLAGS:  # not a plain function
        _check_function(node_id, fn)
    # A large flow adds one function many times, from one line: the last ports and location are kept.
    last = builder._last_function
    if last[0] is fn and last[1] == output:
        ports = last[2]
    else:
        ports = function_ports(fn, output)
        builder._last_function = (fn, output, ports)
    inputs, outputs, config = ports
    if collect:
        inputs = _collecting(node_id, inputs, collect, "add_function")
    # caller_location(), inline (see connect).
    filename = frame.f_code.co_filename
    internal = where.INTERNAL_PATHS
    reusable = not collect  # collect inputs are made for each node
    if filename.startswith(internal):
        location = caller_location()
        reusable = False  # the location depends on frames further out
    else:
        line = frame.f_lineno
        seen = builder._last_location
        if seen[1] == line and seen[0] is filename:
            location = seen[2]
        else:
            location = location_at(filename, line)
            builder._last_location = (filename, line, location)
    declared = builder._declared
    if len(declared.pending.kinds) >= MAX_KINDS:
        declared.materialize()
    group = builder._group
    kind = declared.pending.add(node_id, ("function", inputs, outputs, config, group, location), fn)
    if reusable:
        builder._sites[frame.f_lasti] = (frame.f_code, fn, output, group, internal, kind)
    builder._version += 1


def _connect_position(builder: FlowBuilder, frame: FrameType) -> int:
    """Where ``connect()`` was called from ``frame``, as an index into the declarations' positions: the first frame
    outside the builder's own files (a pattern connects for its caller). A call from the user's code is remembered
    by its instruction, which always has that location."""
    internal = where.INTERNAL_PATHS
    outer: FrameType | None = frame
    while outer is not None and outer.f_code.co_filename.startswith(internal):
        outer = outer.f_back
    location = None if outer is None else location_at(outer.f_code.co_filename, outer.f_lineno)
    index = builder._declared.position(location)
    if outer is frame:
        builder._connect_sites[frame.f_lasti] = (frame.f_code, internal, index)
    return index


def _append(builder: FlowBuilder, node: Node, binding: object) -> NodeRef:
    """Record ``node``, complete (its group and location set), and what it runs (after the pending nodes)."""
    declared = builder._declared
    declared.materialize()
    declared.declared_nodes.append(node)
    declared.declared_by_id.setdefault(node.id, node)
    if binding is not None:
        declared.bindings.setdefault(node.id, binding)  # after those of the nodes made before it
    builder._version += 1
    return NodeRef(node.id)


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_new = object.__new__


def _check_function(node_id: str, fn: object) -> None:
    """Raise unless ``fn`` can be a function node: a callable, and no generator function. ``add_function`` tests
    a plain function's flags itself (the usual case, and a build adds many: ``inspect`` unwraps and tests twice)."""
    if not callable(fn):
        raise TypeError(f"add_function({node_id!r}) takes a callable, got {type(fn).__name__}")
    plain = isinstance(fn, types.FunctionType) and fn.__code__.co_flags & _GENERATOR_FLAGS
    if plain or inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"add_function({node_id!r}): {getattr(fn, '__qualname__', fn)!r} is a generator function; a node "
            "returns its outputs once (return a list to give many values)"
        )


def _collecting(
    node_id: str, inputs: tuple[Port, ...], collect: Sequence[str], call: str = "add_agent"
) -> tuple[Port, ...]:
    """``inputs`` with the ports named in ``collect`` made collect ports (optional, many edges)."""
    if isinstance(collect, str):
        raise TypeError(f"{call}({node_id!r}): collect takes a list of input names, got the string {collect!r}")
    names = {p.name for p in inputs}
    unknown = [c for c in collect if c not in names]
    if unknown:
        raise ValueError(
            f"{call}({node_id!r}): collect names unknown input(s) {', '.join(map(repr, unknown))}; "
            f"inputs are: {', '.join(sorted(names)) or 'none'}"
        )
    return tuple(
        Port(p.name, p.type, False, p.default, True, p.description) if p.name in collect else p for p in inputs
    )


def _prefixed(d: Diagnostic, prefix: str) -> Diagnostic:
    """A sub-flow's diagnostic in the terms of the flow that inlines it under ``prefix``."""

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
