"""A graph's lookup index: its nodes by id, and what the validation passes decide from.

:class:`Index` is built on first use and kept with its :class:`~dagwright.compiler.ir.Graph`. The passes look
endpoints up by position, not by ``(node id, port name)`` keys: each node has its position in the graph (the
first node of an id counts), and each port a number in a :class:`PortTable`, one for the inputs and one for the
outputs. An edge's end is then two integers (its node's position, its port's number), found through the name
of the node's port when no node has more than one on that side, else through a dict of port names shared by
every node that shares its tuple of ports (the nodes ``add_function`` adds from one line do). Sets of ints,
comparisons of positions and list indexing replace hashing a key tuple per port and per edge end; the cycle
check reads the same positions.

The module imports nothing of dagwright at run time (the IR types only for type checking): :mod:`ir
<dagwright.compiler.ir>` builds an :class:`Index` for its graphs.
"""

from __future__ import annotations

import functools
import operator
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate, chain, compress
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from dagwright.compiler.ir import Edge, Graph, Node, Port

__all__ = ["EdgeColumns", "Endpoints", "Index", "PortKey", "PortTable"]

PortKey = tuple[str, str]
"""(node id, port name)."""

_ID_OF = attrgetter("id")
_KIND = attrgetter("kind")
_COLLECT = attrgetter("collect")
_INPUTS = attrgetter("inputs")
_OUTPUTS = attrgetter("outputs")
_NAME = attrgetter("name")
_SOURCE = attrgetter("source")
_SOURCE_PORT = attrgetter("source_port")
_TARGET = attrgetter("target")
_TARGET_PORT = attrgetter("target_port")


class EdgeColumns(NamedTuple):
    """The four names of every edge of a graph, field by field, in edge order: what the passes look endpoints up
    by. The compiler hands over the columns it resolved connections into (see :meth:`Graph._with_columns
    <dagwright.compiler.ir.Graph>`); otherwise :meth:`of` reads them off the edges."""

    sources: list[str]
    source_ports: list[str]
    targets: list[str]
    target_ports: list[str]

    @classmethod
    def of(cls, edges: Sequence[Edge]) -> EdgeColumns:
        """The columns of ``edges``."""
        return cls(
            list(map(_SOURCE, edges)),
            list(map(_SOURCE_PORT, edges)),
            list(map(_TARGET, edges)),
            list(map(_TARGET_PORT, edges)),
        )


class Index:
    """Lookups over one graph, built on first use and kept with it.

    ``nodes`` holds the first node of each id, in graph order, and ``position`` each id's place among them;
    ``by_id`` (each id's node) is made from the two when first asked for, since checking a graph needs only
    positions. ``valid`` holds the edges whose both ends (node and port) exist; only they enter ``in_edges`` /
    ``succ`` / ``pred``, so one bad edge is reported once (by the endpoint pass) instead of cascading through
    every other pass. ``endpoints`` is what only the validation passes read; :func:`validate
    <dagwright.compiler.passes.validate>` drops it when done (see :meth:`drop_endpoints`), so a compiled graph
    keeps just what running it needs.
    """

    def __init__(self, graph: Graph, columns: EdgeColumns | None = None) -> None:
        nodes = graph.nodes
        position: dict[str, int] = dict(zip(map(_ID_OF, nodes), range(len(nodes)), strict=True))
        firsts: Sequence[Node] = nodes
        duplicates: list[Node] = []
        if len(position) != len(nodes):  # the first node of an id counts, the others are reported
            position, firsts = {}, []
            for node in nodes:
                if node.id in position:
                    duplicates.append(node)
                else:
                    position[node.id] = len(firsts)
                    firsts.append(node)
        self.nodes = firsts
        self.position = position
        self.duplicates = duplicates
        self._all_nodes = nodes
        self._edges = graph.edges
        self._columns = columns

    @functools.cached_property
    def kinds(self) -> list[str]:
        """The kind of each of the graph's nodes, in graph order (a repeated id's later nodes included): the passes
        pick the nodes of a kind out of a large graph through ``compress``, without a loop over every node."""
        return list(map(_KIND, self._all_nodes))

    @functools.cached_property
    def kind_set(self) -> frozenset[str]:
        """The kinds the graph's nodes have: a pass looking at one kind returns at once when no node has it."""
        return frozenset(self.kinds)

    @functools.cached_property
    def by_id(self) -> dict[str, Node]:
        """The first node of each id."""
        return dict(zip(self.position, self.nodes, strict=True))

    @functools.cached_property
    def endpoints(self) -> Endpoints:
        """Every edge's two ports, and what the passes derive from them."""
        columns, self._columns = self._columns, None  # read once: a rebuild reads the edges
        return Endpoints(self.nodes, self.position, self._edges, columns)

    def drop_endpoints(self) -> None:
        """Forget :attr:`endpoints` (rebuilt if asked for again): it holds a number per port and per
        edge end, a large share of a compiled graph's memory that nothing after validation reads."""
        self.__dict__.pop("endpoints", None)

    @functools.cached_property
    def valid(self) -> Sequence[Edge]:
        """The edges whose both ends exist, in edge order."""
        return self.endpoints.valid

    @functools.cached_property
    def in_edges(self) -> dict[PortKey, list[Edge]]:
        """Valid edges into each input port, in edge order."""
        return _edges_by_port(self.valid, _TARGET, _TARGET_PORT)

    @functools.cached_property
    def out_edges(self) -> dict[PortKey, list[Edge]]:
        """Valid edges out of each output port, in edge order."""
        return _edges_by_port(self.valid, _SOURCE, _SOURCE_PORT)

    @functools.cached_property
    def succ(self) -> dict[str, list[str]]:
        """Each node's successors through valid edges (repeated once per edge)."""
        return _neighbours(self.position, self.valid, _SOURCE, _TARGET)

    @functools.cached_property
    def pred(self) -> dict[str, list[str]]:
        """Each node's predecessors through valid edges (repeated once per edge)."""
        return _neighbours(self.position, self.valid, _TARGET, _SOURCE)

    @functools.cached_property
    def forward(self) -> bool:
        """True when every valid edge goes from a node to a later one: then node order
        is a topological order, and the graph has no cycle."""
        ends = self.endpoints
        return all(map(operator.lt, ends.valid_source_positions, ends.valid_target_positions))


def _edges_by_port(
    edges: Sequence[Edge], node_of: Callable[[Edge], str], port_of: Callable[[Edge], str]
) -> dict[PortKey, list[Edge]]:
    grouped: dict[PortKey, list[Edge]] = {}
    for key, edge in zip(zip(map(node_of, edges), map(port_of, edges), strict=True), edges, strict=True):
        bucket = grouped.get(key)
        if bucket is None:
            grouped[key] = [edge]
        else:
            bucket.append(edge)
    return grouped


def _neighbours(
    node_ids: Iterable[str], edges: Sequence[Edge], start: Callable[[Edge], str], end: Callable[[Edge], str]
) -> dict[str, list[str]]:
    around: dict[str, list[str]] = {nid: [] for nid in node_ids}
    for a, b in zip(map(start, edges), map(end, edges), strict=True):
        around[a].append(b)
    return around


def _offsets(ports: tuple[Port, ...]) -> dict[str, int]:
    """Each port name's offset in ``ports``: the first port of a name counts, as ``Node.input()`` says."""
    names = list(map(_NAME, ports))
    return dict(zip(reversed(names), range(len(names) - 1, -1, -1), strict=True))


class PortTable:
    """One side's ports (inputs or outputs) of a graph's nodes, numbered.

    ``ports`` holds them all in node order, then declaration order; ``numbers`` gives each its number, and
    ``by_number`` each number's port. Two layouts:

    * when no node has more than one port on this side (``single``), a port's number is its node's position,
      and ``names[i]`` is the name of the port of the node at position *i* (None if it has none): an edge end
      is checked with one comparison of names, and its number is the position already looked up;
    * otherwise the ports of the node at position *i* are numbers ``base[i]`` to ``base[i + 1] - 1``, and
      ``offsets[i]`` maps that node's port names to offsets from ``base[i]`` (the first port of a name only).

    Nodes with the same tuple of ports share its name, or its dict of offsets.
    """

    def __init__(self, nodes: Sequence[Node], side: Callable[[Node], tuple[Port, ...]]) -> None:
        tuples = list(map(side, nodes))
        keys = list(map(id, tuples))
        distinct = dict(zip(keys, tuples, strict=True))
        self.nodes = nodes
        self._tuples, self._keys, self._distinct = tuples, keys, distinct
        # Each tuple of ports that some node has, once (few when nodes share them).
        self.tuples = list(distinct.values())
        self.single = max(map(len, self.tuples), default=0) <= 1
        self.base: list[int] = []
        self.offsets: list[dict[str, int]] = []
        self.names: list[str | None] = []
        self._port_of: dict[int, Port | None] = {}
        if self.single:
            self._port_of = port_of = {key: ports[0] if ports else None for key, ports in distinct.items()}
            self.names = list(map({k: p.name if p else None for k, p in port_of.items()}.__getitem__, keys))
            # Whether some node repeats a port name (DW014): its later ports have no name to find them by.
            self.duplicated = False
            # How many ports can be found by name (all but the later ports of a repeated name): here, every node's
            # one port, counted by a C-level scan for the nodes without one.
            self.named = len(keys) - self.names.count(None)
            return
        shared = {key: _offsets(ports) for key, ports in distinct.items()}
        self.base = list(accumulate(map(len, tuples), initial=0))
        self.offsets = list(map(shared.__getitem__, keys))
        self.duplicated = any(map(operator.ne, map(len, shared.values()), map(len, distinct.values())))
        self.named = sum(map(len, self.offsets)) if self.duplicated else len(self.ports)

    @functools.cached_property
    def ports(self) -> list[Port]:
        """Every port, in node order, then declaration order."""
        return list(chain.from_iterable(self._tuples))

    @functools.cached_property
    def by_number(self) -> Sequence[Port | None]:
        """Each number's port (None at the position of a node without one, when ``single``)."""
        if self.single:
            return list(map(self._port_of.__getitem__, self._keys))
        return self.ports

    @functools.cached_property
    def numbers(self) -> Sequence[int]:
        """The number of each port of :attr:`ports`."""
        if self.single:
            return list(compress(range(len(self.nodes)), self._tuples))
        return range(len(self.ports))

    def any(self, test: Callable[[Port], object]) -> bool:
        """Whether some port passes ``test`` (asked of each distinct tuple's ports once)."""
        return any(map(test, chain.from_iterable(self.tuples)))

    def where(self, test: Callable[[Port], object]) -> list[int]:
        """The numbers of the ports that pass ``test``, in order."""
        if self.single:  # the tuples whose port passes, then the positions of the nodes that have one of them
            wanted = {key for key, ports in self._distinct.items() if ports and test(ports[0])}
            return list(compress(range(len(self.nodes)), map(wanted.__contains__, self._keys))) if wanted else []
        return list(compress(self.numbers, map(test, self.ports)))

    def port(self, number: int) -> Port:
        """Port ``number``."""
        # One port of a single table is read through its tuple's key: the list of them all is made for many.
        port = self._port_of[self._keys[number]] if self.single else self.ports[number]
        assert port is not None  # a number is only ever given to a port
        return port

    def find(self, positions: list[int], names: list[str]) -> list[int]:
        """The number of the port called ``names[k]`` on the node at ``positions[k]``, for every k; raises
        KeyError when one has no such port."""
        if self.single:
            # Two lists compared in one C loop, item by item (identical strings are not even read).
            if list(map(self.names.__getitem__, positions)) != names:
                raise KeyError("a port that does not exist")
            return positions
        return list(
            map(
                operator.add,
                map(self.base.__getitem__, positions),
                map(operator.getitem, map(self.offsets.__getitem__, positions), names),
            )
        )

    def number(self, position: int | None, name: str) -> int | None:
        """The number of the port called ``name`` on the node at ``position``, or None."""
        if position is None:
            return None
        if self.single:
            return position if self.names[position] == name else None
        offset = self.offsets[position].get(name)
        return None if offset is None else self.base[position] + offset

    def owner(self, number: int) -> Node:
        """The node port ``number`` belongs to."""
        return self.nodes[number if self.single else bisect_right(self.base, number) - 1]

    def key(self, number: int) -> PortKey:
        """``(node id, port name)`` of port ``number``."""
        return self.owner(number).id, self.port(number).name

    def findable(self, number: int) -> bool:
        """Whether port ``number`` is the first of its name on its node (the one edges reach)."""
        if self.single:
            return True
        position = bisect_right(self.base, number) - 1
        return self.offsets[position][self.port(number).name] == number - self.base[position]


class Endpoints:
    """Every edge's two ends as positions and port numbers, and the ports edges reach for: what the
    validation passes decide from.

    The sweeps go through C-level ``map``/``zip``/set operations wherever they can: an interpreted loop per
    edge costs more than all of them together at 100 000 nodes. The ``valid_*`` lists run parallel to
    ``valid``; ``attempted_in`` / ``attempted_out`` hold the numbers of the ports some edge reaches for even
    when its other end is broken (the broken end is reported once, and the port is not also "not connected").
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        position: dict[str, int],
        edges: Sequence[Edge],
        columns: EdgeColumns | None = None,
    ) -> None:
        self.nodes = nodes
        self.position = position
        self.ins = ins = PortTable(nodes, _INPUTS)
        self.outs = outs = PortTable(nodes, _OUTPUTS)
        sources, source_ports, targets, target_ports = columns or EdgeColumns.of(edges)
        try:  # every end exists (what a flow that compiles has): no look at single edges
            src_at = list(map(position.__getitem__, sources))
            dst_at = list(map(position.__getitem__, targets))
            src = outs.find(src_at, source_ports)
            dst = ins.find(dst_at, target_ports)
        except KeyError:
            self._sort(edges)
            return
        self.valid: Sequence[Edge] = edges
        self.valid_source_positions = src_at
        self.valid_target_positions = dst_at
        self.valid_source_numbers = src
        self.valid_target_numbers = dst
        self.attempted_out = set(src)
        self.attempted_in = self.distinct_targets = set(dst)

    def _sort(self, edges: Sequence[Edge]) -> None:
        """Set the attributes edge by edge, when some end does not exist."""
        position, ins, outs = self.position.get, self.ins, self.outs
        valid: list[Edge] = []
        src_at: list[int] = []
        dst_at: list[int] = []
        src_numbers: list[int] = []
        dst_numbers: list[int] = []
        attempted_in: set[int] = set()
        attempted_out: set[int] = set()
        for edge in edges:
            source, target = position(edge.source), position(edge.target)
            src = outs.number(source, edge.source_port)
            dst = ins.number(target, edge.target_port)
            if src is not None:
                attempted_out.add(src)
            if dst is None:
                continue
            attempted_in.add(dst)
            if src is None:
                continue
            assert source is not None and target is not None  # a port number implies its node's position
            valid.append(edge)
            src_at.append(source)
            dst_at.append(target)
            src_numbers.append(src)
            dst_numbers.append(dst)
        self.valid = valid
        self.valid_source_positions = src_at
        self.valid_target_positions = dst_at
        self.valid_source_numbers = src_numbers
        self.valid_target_numbers = dst_numbers
        self.attempted_out = attempted_out
        self.attempted_in = attempted_in
        self.distinct_targets = set(dst_numbers)  # the input ports valid edges go into

    @functools.cached_property
    def collect_inputs(self) -> list[int]:
        """The numbers of the collect input ports, in order."""
        return self.ins.where(_COLLECT)

    @functools.cached_property
    def valid_sources(self) -> list[Port]:
        """The source port of each valid edge (a valid end's number is a port's: never None)."""
        return list(map(self.outs.by_number.__getitem__, self.valid_source_numbers))  # type: ignore[arg-type]

    @functools.cached_property
    def valid_targets(self) -> list[Port]:
        """The target port of each valid edge (a valid end's number is a port's: never None)."""
        return list(map(self.ins.by_number.__getitem__, self.valid_target_numbers))  # type: ignore[arg-type]

    @functools.cached_property
    def missing_inputs(self) -> list[int]:
        """Required (non-collect) inputs that no edge reaches for, by number, in node order."""
        ins = self.ins
        if len(self.attempted_in) == ins.named:  # attempted_in holds only ports found by name
            return []
        attempted = self.attempted_in
        return [
            number
            for number in ins.where(_needed)
            if number not in attempted and (not ins.duplicated or ins.findable(number))
        ]


def _needed(port: Port) -> bool:
    return port.required and not port.collect
