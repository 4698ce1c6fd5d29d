"""Connections: what ``connect()`` records and how it becomes edges.

An endpoint is ``"node"``, ``"node.port"``, a :class:`NodeRef` or a :class:`PortRef`.
:func:`resolve_connections` turns the recorded connections into IR edges when a
flow compiles: port to port as given, node to node by matching names (or a
mapping), and endpoints of inlined sub-flows (``prefix.name``) rewritten to the
nodes behind them. What does not resolve becomes a diagnostic, never an exception.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.diagnostics import Diagnostic
from dagwright.compiler.index import EdgeColumns
from dagwright.compiler.ir import Edge, Node, Port, SourceLocation, make_edges
from dagwright.compiler.pending import PendingNodes
from dagwright.compiler.suggest import suggest
from dagwright.compiler.types import ANY, TypeExpr

__all__ = [
    "Connection",
    "Declarations",
    "Endpoint",
    "FlowInput",
    "FlowOutput",
    "NodeRef",
    "PlainConnection",
    "PortRef",
    "SubFlow",
    "resolve_connections",
    "split_endpoint",
    "unknown_io",
    "virtual_ports",
]


@dataclass(frozen=True, slots=True)
class PortRef:
    """An explicit ``node.port`` endpoint (unambiguous even when ids contain dots)."""

    node: str
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass(frozen=True, slots=True, init=False)
class NodeRef:
    """What ``add_*`` returns: the node's id; ``ref["port"]`` is a :class:`PortRef`."""

    id: str

    def __init__(self, id: str) -> None:
        # Through the slot's own setter (a frozen dataclass's __init__ sets fields by name): a large flow adds many
        # nodes, each returning one.
        _set_ref_id(self, id)

    def __getitem__(self, port: str) -> PortRef:
        return PortRef(self.id, port)

    def __str__(self) -> str:
        return self.id


_set_ref_id: Callable[[object, object], None] = vars(NodeRef)["id"].__set__

Endpoint = str | NodeRef | PortRef


class Connection(NamedTuple):
    """One ``connect()`` call with a ref endpoint or a mapping (see :data:`PlainConnection` for the others)."""

    source: Endpoint
    target: Endpoint
    mapping: tuple[tuple[str, str], ...] | None
    location: SourceLocation | None


PlainConnection = tuple[str, str, int]
"""The usual ``connect("a.out", "b.in")`` as recorded: the two endpoint strings and where the call was, as an
index into :attr:`Declarations.positions`. A plain tuple of strings and an int, because a large flow records
hundreds of thousands: it costs less to make than a :class:`Connection`, and the garbage collector stops tracking
it at its first collection (it holds no container), so the collections a long build triggers do not walk them
all."""


@dataclass(frozen=True, slots=True)
class FlowInput:
    """A declared flow input; ``targets`` None feeds every unconnected input port of that name."""

    name: str
    type: TypeExpr | None
    default: Any
    description: str
    targets: tuple[Endpoint, ...] | None
    location: SourceLocation | None


@dataclass(frozen=True, slots=True)
class FlowOutput:
    """A declared flow output, read from ``source``."""

    name: str
    source: Endpoint
    location: SourceLocation | None


@dataclass(frozen=True, slots=True)
class SubFlow:
    """An inlined sub-flow: its inputs and outputs as endpoints of the parent (``prefix.name``)."""

    prefix: str
    inputs: dict[str, list[tuple[str, str]]]
    outputs: dict[str, tuple[str, str]]


@dataclass(slots=True)
class Declarations:
    """Everything a builder has recorded, as the compile passes read it.

    The nodes ``add_function`` declares wait in :attr:`pending` (see :mod:`~dagwright.compiler.pending`):
    reading :attr:`nodes`, :attr:`by_id` or :attr:`bindings` makes them first, in order (:meth:`materialize`).
    """

    declared_nodes: list[Node] = field(default_factory=list)
    declared_by_id: dict[str, Node] = field(default_factory=dict)
    declared_bindings: dict[str, object] = field(default_factory=dict)
    connections: list[Connection | PlainConnection] = field(default_factory=list)
    inputs: dict[str, FlowInput] = field(default_factory=dict)
    outputs: dict[str, FlowOutput] = field(default_factory=dict)
    subflows: dict[str, SubFlow] = field(default_factory=dict)
    inlined_edges: list[Edge] = field(default_factory=list)
    inherited_inputs: list[FlowInput] = field(default_factory=list)
    # How many of ``connections`` are Connection objects rather than plain ones.
    special_connections: int = 0
    pending: PendingNodes = field(default_factory=PendingNodes)
    # Where plain connections were made (see PlainConnection), each once; ``position_of`` finds a location's index.
    positions: list[SourceLocation | None] = field(default_factory=list)
    position_of: dict[SourceLocation | None, int] = field(default_factory=dict)
    # What the nodes made from pending ones run, by id, not yet in ``declared_bindings``: filled when read (a run
    # reads them; compiling does not).
    unbound: list[tuple[list[str], Iterable[object]]] = field(default_factory=list)

    def position(self, location: SourceLocation | None) -> int:
        """The index of ``location`` in :attr:`positions`, added if new."""
        index = self.position_of.get(location)
        if index is None:
            index = self.position_of[location] = len(self.positions)
            self.positions.append(location)
        return index

    @property
    def nodes(self) -> list[Node]:
        """Every declared node, in order (the first of a duplicate id included)."""
        if self.pending.ids:
            self.materialize()
        return self.declared_nodes

    @property
    def by_id(self) -> dict[str, Node]:
        """The first node declared under each id."""
        if self.pending.ids:
            self.materialize()
        return self.declared_by_id

    @property
    def bindings(self) -> dict[str, object]:
        """What the first node of each id runs (nodes that run nothing of the caller's have none)."""
        if self.pending.ids:
            self.materialize()
        if self.unbound:
            for ids, bindings in self.unbound:
                deque(map(self.declared_bindings.setdefault, ids, bindings), maxlen=0)
            self.unbound.clear()
        return self.declared_bindings

    def materialize(self) -> None:
        """Make the pending nodes, as if each had been added on its own."""
        if not self.pending.ids:
            return
        ids, nodes, bindings = self.pending.take()
        self.declared_nodes += nodes
        deque(map(self.declared_by_id.setdefault, ids, nodes), maxlen=0)
        self.unbound.append((ids, bindings))


def split_endpoint(decl: Declarations, end: Endpoint) -> tuple[str, str | None]:
    """``(node, port)``; port None for a whole node. A string that is a node id names the node;
    otherwise its last dot separates node and port."""
    if isinstance(end, PortRef):
        return end.node, end.port
    if isinstance(end, NodeRef):
        return end.id, None
    if end in decl.by_id:
        return end, None
    node, dot, port = end.rpartition(".")
    if dot and node:
        return node, port
    return end, None


def resolve_connections(decl: Declarations, found: list[Diagnostic]) -> tuple[list[Edge], EdgeColumns | None]:
    """The edges of every recorded connection and inlined sub-flow; problems go to ``found``. With them, their
    columns when the connections were resolved column by column (see :func:`_plain_edges`), else None."""
    if not decl.subflows and not decl.special_connections and decl.connections:
        plain = _plain_edges(decl)
        if plain is not None:
            made, columns = plain
            if decl.inlined_edges:
                made.extend(decl.inlined_edges)
                for column, more in zip(columns, EdgeColumns.of(decl.inlined_edges), strict=True):
                    column.extend(more)
            return made, columns
    edges: list[Edge] = []
    if not decl.subflows:  # nothing to rewrite: skip a copy of every edge
        by_id = decl.by_id
        for conn in decl.connections:
            if not isinstance(conn, Connection):
                source, target, position = conn
                # "node.port" to "node.port" inline (what split_endpoint does for strings that name no node).
                src, _, src_port = source.rpartition(".")
                dst, _, dst_port = target.rpartition(".")
                if src and dst and source not in by_id and target not in by_id:
                    edges.append(Edge(src, src_port, dst, dst_port, decl.positions[position]))
                    continue
            edges.extend(_resolve_connection(decl, _full(decl, conn), found))
    else:
        for conn in decl.connections:
            for edge in _resolve_connection(decl, _full(decl, conn), found):
                edges.extend(_through_subflows(decl, edge, found))
    edges.extend(decl.inlined_edges)
    return edges, None


def _full(decl: Declarations, conn: Connection | PlainConnection) -> Connection:
    if isinstance(conn, Connection):
        return conn
    return Connection(conn[0], conn[1], None, decl.positions[conn[2]])


_FIRST, _SECOND, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)


_CHUNK = 2048


def _plain_edges(decl: Declarations) -> tuple[list[Edge], EdgeColumns] | None:
    """The edges of a flow whose connections are all plain and all ``"node.port"`` to ``"node.port"`` (what
    a large flow is made of), and their columns; None when one needs a closer look. Column by column, through
    ``map``: an interpreted loop per connection costs more than the rest of the compiler at 100 000 nodes. A chunk
    of connections at a time, so that the columns and the edges they make stay in the processor's cache."""
    by_id = decl.by_id.keys()
    # An endpoint with a dot can name a whole node only when some node id has one too (one scan of the ids,
    # joined, instead of a lookup of every endpoint).
    dotted_ids = "." in "\n".join(by_id)
    conns: list[Any] = decl.connections
    location_of = decl.positions.__getitem__
    edges: list[Edge] = []
    columns = EdgeColumns([], [], [], [])
    for start in range(0, len(conns), _CHUNK):
        chunk = conns[start : start + _CHUNK]
        sources: list[str] = list(map(_FIRST, chunk))
        targets: list[str] = list(map(_SECOND, chunk))
        source_split = _split(sources)
        target_split = _split(targets)
        if source_split is None or target_split is None:
            return None  # no "node." part
        (source_nodes, source_ports), (target_nodes, target_ports) = source_split, target_split
        if dotted_ids and (not by_id.isdisjoint(sources) or not by_id.isdisjoint(targets)):
            return None  # an endpoint names a whole node
        made_at = list(map(_THIRD, chunk))  # each connection's location, as its index in decl.positions
        # Connections made in a loop come from one line: its location, repeated.
        one_line = made_at.count(made_at[0]) == len(made_at)
        locations = [location_of(made_at[0])] * len(made_at) if one_line else map(location_of, made_at)
        edges += make_edges(source_nodes, source_ports, target_nodes, target_ports, locations)
        columns.sources.extend(source_nodes)
        columns.source_ports.extend(source_ports)
        columns.targets.extend(target_nodes)
        columns.target_ports.extend(target_ports)
    return edges, columns


def _split(ends: list[str]) -> tuple[list[str], list[str]] | None:
    """The node and port parts of each of ``ends`` (``end.rpartition(".")``), as two lists; None when an end has
    no node part. A chunk that starts and ends with the same string object (a fan-out from one output, a fan-in to
    one collect input) is split once per distinct object: its edges then share their node and port strings too."""
    first = ends[0]
    if first is ends[-1] and ends.count(first) == len(ends):  # one string throughout: a C-level scan
        node, _, port = first.rpartition(".")
        return ([node] * len(ends), [port] * len(ends)) if node else None
    if first is not ends[-1]:
        parts = list(map(str.rpartition, ends, repeat(".")))
    else:
        distinct = dict(zip(map(id, ends), ends, strict=True))
        split = dict(zip(distinct, map(str.rpartition, distinct.values(), repeat(".")), strict=True))
        parts = list(map(split.__getitem__, map(id, ends)))
    nodes = list(map(_FIRST, parts))
    return (nodes, list(map(_THIRD, parts))) if all(nodes) else None


def _resolve_connection(decl: Declarations, conn: Connection, found: list[Diagnostic]) -> list[Edge]:
    """The edges one ``connect()`` call makes (several for node-to-node and mappings)."""
    src, src_port = split_endpoint(decl, conn.source)
    dst, dst_port = split_endpoint(decl, conn.target)
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
    return _match_by_name(decl, src, dst, loc, found)


def _match_by_name(
    decl: Declarations, src: str, dst: str, loc: SourceLocation | None, found: list[Diagnostic]
) -> list[Edge]:
    """Node to node: every output of ``src`` into the input of ``dst`` with the same name."""
    source_ports = virtual_ports(decl, src)
    target_ports = virtual_ports(decl, dst)
    if source_ports is None or target_ports is None:
        known = [*decl.by_id, *decl.subflows]
        for name, ports in ((src, source_ports), (dst, target_ports)):
            if ports is None:
                close = suggest(name, known, cutoff=0.5)
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


def virtual_ports(decl: Declarations, name: str) -> tuple[list[Port], list[Port]] | None:
    """The input and output ports of a node, or of an inlined sub-flow seen as one node; None if unknown."""
    node = decl.by_id.get(name)
    if node is not None:
        return list(node.inputs), list(node.outputs)
    subflow = decl.subflows.get(name)
    if subflow is None:
        return None
    outs = []
    for out_name, (nid, port_name) in subflow.outputs.items():
        target = decl.by_id.get(nid)
        port = target.output(port_name) if target is not None else None
        outs.append(Port(out_name, port.type if port is not None else ANY))
    return [Port(n) for n in subflow.inputs], outs


def _through_subflows(decl: Declarations, edge: Edge, found: list[Diagnostic]) -> list[Edge]:
    """Replace sub-flow endpoints (``prefix.name``) by the nodes behind them."""
    source, source_port = edge.source, edge.source_port
    subflow = decl.subflows.get(source)
    if subflow is not None:
        real = subflow.outputs.get(source_port)
        if real is None:
            found.append(unknown_io(subflow, source_port, "output", edge))
            return []
        source, source_port = real
    subflow = decl.subflows.get(edge.target)
    if subflow is None:
        return [Edge(source, source_port, edge.target, edge.target_port, edge.location)]
    targets = subflow.inputs.get(edge.target_port)
    if targets is None:
        found.append(unknown_io(subflow, edge.target_port, "input", edge))
        return []
    return [Edge(source, source_port, n, p, edge.location) for n, p in targets]


def unknown_io(subflow: SubFlow, name: str, side: str, edge: Edge) -> Diagnostic:
    """DW004/DW005 for an edge naming an input or output a sub-flow does not have."""
    names = list(subflow.inputs if side == "input" else subflow.outputs)
    close = suggest(name, names)
    return dg.make(
        "DW004" if side == "output" else "DW005",
        f"sub-flow {subflow.prefix!r} has no {side} {name!r} (connection {edge})",
        node=subflow.prefix,
        port=name,
        hint=f"did you mean {close[0]!r}?" if close else f"its {side}s: {', '.join(names) or 'none'}",
        edge=edge,
        location=edge.location,
    )
