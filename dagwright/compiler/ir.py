"""The intermediate representation: one typed DAG that every back end and view reads.

A :class:`Graph` holds :class:`Node` s (a stable string id, a kind, typed input
and output :class:`Port` s, JSON config, a group path) and :class:`Edge` s from an
output port to an input port. Everything is immutable; config is deep-frozen.

A Graph may be *unchecked*: it can hold dangling edges or duplicate ids, so the
validation passes have something to report on (a flow that does not compile, a
hand-edited JSON file). ``Flow.compile()`` returns only graphs that passed.

JSON form: ``Graph.to_json()`` / ``Graph.from_json()`` round-trip exactly and carry
``schema_version``. Loading never imports code: a function node names its
function by reference, resolved only through :mod:`dagwright.compiler.registry`.
"""

from __future__ import annotations

import functools
import json
import json.encoder
import keyword
import operator
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, NamedTuple, TypeVar

from dagwright.compiler._gc import gc_paused
from dagwright.compiler.index import EdgeColumns, Index
from dagwright.compiler.signature import MISSING
from dagwright.compiler.suggest import suggest
from dagwright.compiler.types import ANY, TypeExpr
from dagwright.compiler.types import from_json as type_from_json

__all__ = [
    "INPUT_KIND",
    "OUTPUT_KIND",
    "SCHEMA_VERSION",
    "Edge",
    "FrozenDict",
    "Graph",
    "IRFormatError",
    "Node",
    "NodeFields",
    "Port",
    "SourceLocation",
    "freeze_json",
    "make_edges",
    "make_nodes",
    "portable_path",
    "run_lengths",
    "spread",
    "thaw_json",
]

SCHEMA_VERSION = 1
INPUT_KIND = "input"
OUTPUT_KIND = "output"


class IRFormatError(ValueError):
    """IR JSON that does not describe a graph; the message names the path (``nodes[3].inputs[0]``)."""


# --------------------------------------------------------------------------- frozen JSON


class FrozenDict(Mapping[str, Any]):
    """A read-only, hashable mapping used for node config."""

    __slots__ = ("_data", "_hash")
    _data: dict[str, Any]
    _hash: int | None

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_hash", None)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("FrozenDict is immutable")

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        # Pickling (to run on another process) would otherwise restore the slots through __setattr__.
        return (FrozenDict, (self._data,))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    # Mapping's own get and __contains__ go through __getitem__ and catch its KeyError: several times slower,
    # and a plan reads every node's config.
    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        cached = self._hash
        if cached is None:
            cached = hash(tuple(sorted(self._data.items())))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return bool(self._data == other._data)
        if isinstance(other, Mapping):
            return bool(self._data == dict(other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


EMPTY = FrozenDict()


_FROZEN_SCALARS = frozenset({str, int, bool, type(None)})  # floats are checked for NaN and infinities
_MAX_JSON_DEPTH = 100  # deeper data is malformed (or refers to itself); hashing it would overflow the stack


def freeze_json(value: Any, where: str = "value", _depth: int = 0) -> Any:
    """Deep-freeze JSON data (dicts -> FrozenDict, lists -> tuples); reject anything else."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"{where}: {value!r} is not valid JSON")
        return value
    if _depth >= _MAX_JSON_DEPTH and isinstance(value, (list, tuple, Mapping)):
        raise TypeError(f"{where}: nested more than {_MAX_JSON_DEPTH} levels deep")
    if isinstance(value, (list, tuple)):
        return tuple(freeze_json(v, f"{where}[{i}]", _depth + 1) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            # Most config values are plain strings, ints and flags: no path to build for them.
            out[k] = v if type(v) in _FROZEN_SCALARS else freeze_json(v, f"{where}.{k}", _depth + 1)
        return FrozenDict(out)
    raise TypeError(f"{where}: {type(value).__name__} is not JSON data ({value!r})")


_SCALARS = frozenset({str, int, float, bool, type(None)})


def thaw_json(value: Any) -> Any:
    """The inverse of :func:`freeze_json`: plain dicts and lists."""
    # Exact type checks for the scalars that most config values are, and the
    # FrozenDict's own dict: every node's config passes through here on export and hashing.
    if isinstance(value, FrozenDict):
        return {k: v if type(v) in _SCALARS else thaw_json(v) for k, v in value._data.items()}
    if isinstance(value, tuple):
        return [v if type(v) in _SCALARS else thaw_json(v) for v in value]
    return value


# --------------------------------------------------------------------------- elements


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where in user code a node was added or an edge connected."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}"


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


_PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")


@functools.lru_cache(maxsize=1024)
def portable_path(path: str) -> str:
    """``path`` as the IR writes it: relative to its project's root (the nearest directory above it holding
    ``.git``, ``pyproject.toml``, ``setup.py`` or ``setup.cfg``), with '/' separators, so an exported graph
    holds no machine's absolute paths; unchanged when it is relative already or no project holds it."""
    if not os.path.isabs(path):
        return path
    directory = os.path.dirname(path)
    while True:
        if any(os.path.exists(os.path.join(directory, marker)) for marker in _PROJECT_MARKERS):
            return os.path.relpath(path, directory).replace(os.sep, "/")
        parent = os.path.dirname(directory)
        if parent == directory:
            return path
        directory = parent


@dataclass(frozen=True, slots=True)
class Port:
    """A typed input or output of a node.

    An input is ``required`` unless it has a default (``default`` holds it when it
    is JSON data; a function's non-JSON default leaves ``default`` MISSING and
    ``required`` False). A ``collect`` input takes any number of edges and
    receives a list, in edge order; its type is ``list[T]`` and each edge carries
    a ``T``.
    """

    name: str
    type: TypeExpr = ANY
    required: bool = True
    default: Any = MISSING
    collect: bool = False
    description: str = ""

    def item_type(self) -> TypeExpr:
        """What one edge into this port carries: ``T`` for a collect ``list[T]``, else the type."""
        if self.collect and self.type.kind == "list":
            return self.type.args[0]
        return self.type if not self.collect else ANY

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type.to_json()}
        if not self.required:
            out["required"] = False
        if self.default is not MISSING:
            out["default"] = thaw_json(self.default)
        if self.collect:
            out["collect"] = True
        if self.description:
            out["description"] = self.description
        return out


class Node(NamedTuple):
    """A step of the graph. ``id`` is stable: it is also the checkpoint key, the
    Kailash node id and the DOT id. ``group`` is the pattern path it came from.

    A named tuple (change one with ``node._replace(...)``): a large flow makes hundreds of thousands of nodes
    and edges while compiling, and a tuple is made from its fields in one C call (see :func:`make_nodes`).
    Equality and hashing leave ``location`` out, as they do for :class:`Edge`: where a node was written is not
    part of the graph.
    """

    id: str
    kind: str
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    config: FrozenDict = EMPTY
    group: tuple[str, ...] = ()
    location: SourceLocation | None = None

    # Not equal to anything but a Node, a plain tuple of the same fields included.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self[:6] == other[:6]

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, Node) or self[:6] != other[:6]

    def __hash__(self) -> int:
        return hash(self[:6])

    def input(self, name: str) -> Port | None:
        """The input port called ``name``, or None."""
        for port in self.inputs:
            if port.name == name:
                return port
        return None

    def output(self, name: str) -> Port | None:
        """The output port called ``name``, or None."""
        for port in self.outputs:
            if port.name == name:
                return port
        return None

    def to_dict(self, *, locations: bool = True) -> dict[str, Any]:
        return _node_json(self, locations, _made_fresh)

    @property
    def content_hash(self) -> str:
        """A hash of everything that defines this node (not where it was written)."""
        return _sha256(self.to_dict(locations=False))


class Edge(NamedTuple):
    """Data flowing from ``source``'s output ``source_port`` into ``target``'s input ``target_port``.

    A named tuple, as :class:`Node` is (see there); equality and hashing leave ``location`` out.
    """

    source: str
    source_port: str
    target: str
    target_port: str
    location: SourceLocation | None = None

    # Not equal to anything but an Edge, a plain tuple of the same fields included.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Edge) and self[:4] == other[:4]

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, Edge) or self[:4] != other[:4]

    def __hash__(self) -> int:
        return hash(self[:4])

    def __str__(self) -> str:
        return f"{self.source}.{self.source_port} -> {self.target}.{self.target_port}"

    def to_dict(self, *, locations: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "source_port": self.source_port,
            "target": self.target,
            "target_port": self.target_port,
        }
        if locations and self.location is not None:
            out["location"] = _location_json(self.location)
        return out


_Once = Callable[[Any, Callable[[Any], Any]], Any]
"""How the JSON of a part of a node (its tuple of ports, config, group or location) is made from it."""


def _made_fresh(part: Any, make: Callable[[Any], Any]) -> Any:
    return make(part)


class _Shared:
    """A :data:`_Once` that writes the JSON of each part as text once, then gives that text again for the same part
    object: the nodes a loop adds share their tuples of ports, config, group and location."""

    def __init__(self, write: Callable[[Any], str]) -> None:
        self._made: dict[int, str] = {}
        self._write = write

    def __call__(self, part: Any, make: Callable[[Any], Any]) -> str:
        key = id(part)  # parts live as long as the graph holding them
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = self._write(make(part))
        return found


def _node_json(node: Node, locations: bool, once: _Once) -> dict[str, Any]:
    """:meth:`Node.to_dict`, each part's JSON made by ``once``."""
    out: dict[str, Any] = {"id": node.id, "kind": node.kind}
    if node.inputs:
        out["inputs"] = once(node.inputs, _ports_json)
    if node.outputs:
        out["outputs"] = once(node.outputs, _ports_json)
    if node.config:
        out["config"] = once(node.config, thaw_json)
    if node.group:
        out["group"] = once(node.group, list)
    if locations and node.location is not None:
        out["location"] = once(node.location, _location_json)
    return out


def _ports_json(ports: tuple[Port, ...]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in ports]


def _location_json(location: SourceLocation) -> dict[str, Any]:
    return {"file": portable_path(location.file), "line": location.line}


def _element_texts(graph: Graph, encode: Callable[[Any], str]) -> tuple[list[str], list[str]]:
    """``encode(element.to_dict())`` for each node and each edge of ``graph`` (``encode`` being a JSON encoder's
    with the separators ``", "`` and ``": "``), the text of a part that elements share (a tuple of ports, config,
    group or location) encoded once. Encoding each node's dict whole took most of writing a large graph, and nodes
    added from one line differ only by their ids."""
    once = _Shared(encode)
    string = json.encoder.encode_basestring  # what such an encoder writes a string with
    nodes = []
    for node in graph.nodes:
        # The keys and their order of _node_json.
        text = '{"id": ' + string(node.id) + ', "kind": ' + string(node.kind)
        if node.inputs:
            text += ', "inputs": ' + once(node.inputs, _ports_json)
        if node.outputs:
            text += ', "outputs": ' + once(node.outputs, _ports_json)
        if node.config:
            text += ', "config": ' + once(node.config, thaw_json)
        if node.group:
            text += ', "group": ' + once(node.group, list)
        if node.location is not None:
            text += ', "location": ' + once(node.location, _location_json)
        nodes.append(text + "}")
    edges = []
    for edge in graph.edges:
        text = (
            '{"source": '
            + string(edge.source)
            + ', "source_port": '
            + string(edge.source_port)
            + ', "target": '
            + string(edge.target)
            + ', "target_port": '
            + string(edge.target_port)
        )
        if edge.location is not None:
            text += ', "location": ' + once(edge.location, _location_json)
        edges.append(text + "}")
    return nodes, edges


def make_edges(
    sources: Iterable[str],
    source_ports: Iterable[str],
    targets: Iterable[str],
    target_ports: Iterable[str],
    locations: Iterable[SourceLocation | None],
) -> list[Edge]:
    """``[Edge(*fields) for fields in zip(...)]`` (every iterable as long as ``sources``), each edge made from its
    fields' tuple in one C call: no Python call per edge, for the hundreds of thousands of a large flow."""
    return list(
        map(_new_tuple, repeat(Edge), zip(sources, source_ports, targets, target_ports, locations, strict=True))
    )


_new_tuple = tuple.__new__
_T = TypeVar("_T")


NodeFields = tuple[str, tuple[Port, ...], tuple[Port, ...], FrozenDict, tuple[str, ...], SourceLocation | None]
"""The fields of a :class:`Node` after its id: kind, inputs, outputs, config, group, location."""


def make_nodes(ids: Sequence[str], columns: Iterable[Iterable[Any]]) -> list[Node]:
    """``[Node(node_id, *fields) for node_id, fields in zip(ids, zip(*columns))]``, ``columns`` being the fields
    after the id (kind, inputs, outputs, config, group, location), each yielding a value per id; each node made
    from its fields' tuple in one C call. The many nodes of a large flow, added from one line, share every field
    but the id, and a column is then one value repeated."""
    return list(map(_new_tuple, repeat(Node), zip(ids, *columns, strict=True)))


def run_lengths(starts: Sequence[int], total: int) -> list[int]:
    """How many items each run holds, from the runs' ascending starts and the number of items in all."""
    return list(map(operator.sub, [*starts[1:], total], starts))


def spread(values: Sequence[_T], lengths: Sequence[int]) -> Iterator[_T]:
    """Each value repeated as many times as the length beside it."""
    if len(values) == 1:
        return repeat(values[0], lengths[0])
    return chain.from_iterable(map(repeat, values, lengths))


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class Graph:
    """A typed DAG of nodes and edges; immutable. See the module docstring."""

    name: str
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    metadata: FrozenDict = EMPTY

    @classmethod
    def _with_columns(
        cls, name: str, nodes: tuple[Node, ...], edges: tuple[Edge, ...], metadata: FrozenDict, columns: EdgeColumns
    ) -> Graph:
        """``Graph(name, nodes, edges, metadata)``, given also the columns of ``edges`` (what the compiler resolved
        connections into): checking the graph looks its endpoints up from them, instead of reading every edge
        again. For the compiler only: the columns are trusted to be those of ``edges``, not checked."""
        graph = cls(name, nodes, edges, metadata)
        graph.__dict__["_index"] = Index(graph, columns)  # the cached property's value, set before first use
        return graph

    # ---- lookups
    @functools.cached_property
    def _index(self) -> Index:
        return Index(self)

    def node(self, node_id: str) -> Node:
        """The node with this id; a KeyError names close matches."""
        found = self._index.by_id.get(node_id)
        if found is None:
            close = suggest(node_id, self._index.by_id, limit=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"graph {self.name!r} has no node {node_id!r}{hint}")
        return found

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index.position

    @property
    def input_nodes(self) -> tuple[Node, ...]:
        """The flow's inputs, one node of kind ``input`` each."""
        return tuple(n for n in self.nodes if n.kind == INPUT_KIND)

    @property
    def output_nodes(self) -> tuple[Node, ...]:
        """The flow's outputs, one node of kind ``output`` each."""
        return tuple(n for n in self.nodes if n.kind == OUTPUT_KIND)

    def edges_into(self, node_id: str, port: str) -> list[Edge]:
        """Valid edges into one input port, in edge order (the order a collect port receives)."""
        return list(self._index.in_edges.get((node_id, port), ()))

    def successors(self, node_id: str) -> list[str]:
        """Ids of nodes fed by this node (through valid edges; repeated once per edge)."""
        return list(self._index.succ.get(node_id, ()))

    def predecessors(self, node_id: str) -> list[str]:
        """Ids of nodes feeding this node (through valid edges; repeated once per edge)."""
        return list(self._index.pred.get(node_id, ()))

    def topological_order(self) -> list[str]:
        """Node ids in dependency order (Kahn, ties in insertion order). Raises on a cycle."""
        index = self._index
        indegree = {nid: len(preds) for nid, preds in index.pred.items()}
        ready = [nid for nid in index.position if indegree[nid] == 0]
        order: list[str] = []
        i = 0
        while i < len(ready):
            nid = ready[i]
            i += 1
            order.append(nid)
            for nxt in index.succ[nid]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
        if len(order) != len(index.position):
            raise ValueError(f"graph {self.name!r} has a cycle; run the validation passes for its path")
        return order

    # ---- serialization
    def to_dict(self, *, locations: bool = True) -> dict[str, Any]:
        out = self._json_head()
        out["nodes"] = [n.to_dict(locations=locations) for n in self.nodes]
        out["edges"] = [e.to_dict(locations=locations) for e in self.edges]
        return out

    def _json_head(self) -> dict[str, Any]:
        """The fields of :meth:`to_dict` before its nodes and edges."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "name": self.name}
        if self.metadata:
            out["metadata"] = thaw_json(self.metadata)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The graph as JSON text; ``Graph.from_json`` reads it back equal.

        With ``indent`` (the default), every top-level field, every node and every
        edge starts a line of its own, indented by that many spaces: the file diffs
        node by node. Each line is what the C encoder writes for that field, node or
        edge (an indented ``json.dumps`` takes the pure-Python one, ten times slower
        on a large graph), and the text of a part that nodes share is written once
        (see :func:`_element_texts`). With ``indent=None`` it is one line, as ``json.dumps`` writes it.
        """
        encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
        head = [f"{encode(key)}: {encode(value)}" for key, value in self._json_head().items()]
        listed = zip(("nodes", "edges"), _element_texts(self, encode), strict=True)
        if indent is None:  # what json.dumps(self.to_dict(), ensure_ascii=False) writes
            return "{" + ", ".join([*head, *(f"{encode(key)}: [{', '.join(items)}]" for key, items in listed)]) + "}"
        pad = " " * indent
        fields = [pad + field for field in head]
        for key, items in listed:
            if items:
                fields.append(f"{pad}{encode(key)}: [\n{pad}{pad}" + f",\n{pad}{pad}".join(items) + f"\n{pad}]")
            else:
                fields.append(f"{pad}{encode(key)}: []")
        return "{\n" + ",\n".join(fields) + "\n}"

    @classmethod
    def from_json(cls, text: str | bytes) -> Graph:
        """Read a graph from JSON text. Nothing is imported or executed."""
        try:
            with gc_paused():
                data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IRFormatError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except UnicodeDecodeError as exc:
            raise IRFormatError(f"not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except RecursionError:
            raise IRFormatError("not valid JSON: nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Graph:
        """Read a graph from :meth:`to_dict` data, checking its shape field by field."""
        try:
            with gc_paused():
                return _load_graph(data)
        except RecursionError:
            raise IRFormatError("graph: nested too deeply") from None

    def to_networkx(self) -> Any:
        """The graph as a ``networkx.MultiDiGraph``: node kinds, typed ports, config and groups as node
        attributes, edges keyed by their order (see :mod:`dagwright.compiler.networkx_io`)."""
        from dagwright.compiler.networkx_io import to_networkx

        return to_networkx(self.to_dict())

    @classmethod
    def from_networkx(cls, nx_graph: Any) -> Graph:
        """The Graph a ``MultiDiGraph`` from :meth:`to_networkx` describes (the same JSON as the graph it came from)."""
        from dagwright.compiler.networkx_io import from_networkx

        try:
            data = from_networkx(nx_graph, SCHEMA_VERSION)
        except ValueError as exc:
            raise IRFormatError(str(exc)) from None
        return cls.from_dict(data)

    @functools.cached_property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON (ids sorted, locations left out): equal across
        processes and independent of the order nodes and edges were added, except that
        edges into one port keep their order (a collect port receives values in it)."""
        return _sha256_of_text(_canonical_text(self))


def _canonical_text(graph: Graph) -> str:
    """The canonical JSON the content hash is of: ``graph.to_dict(locations=False)`` written with sorted keys and
    no spaces, its nodes sorted by id (then by their text, where ids repeat) and its edges by (target, port,
    position among the edges into that port), which is unique. Assembled from the text of each node's and edge's
    fields, the text of a part nodes share (a tuple of ports, config, group) made once: encoding the whole
    document took most of a first run's hashing."""
    once = _Shared(_canonical)
    string = json.encoder.encode_basestring
    nodes: list[tuple[str, str]] = []
    for node in graph.nodes:
        fields = []  # in the order of their keys: config, group, id, inputs, kind, outputs
        if node.config:
            fields.append('"config":' + once(node.config, thaw_json))
        if node.group:
            fields.append('"group":' + once(node.group, list))
        fields.append('"id":' + string(node.id))
        if node.inputs:
            fields.append('"inputs":' + once(node.inputs, _ports_json))
        fields.append('"kind":' + string(node.kind))
        if node.outputs:
            fields.append('"outputs":' + once(node.outputs, _ports_json))
        nodes.append((node.id, "{" + ",".join(fields) + "}"))
    nodes.sort()  # by id; by text only where ids repeat
    rank: dict[tuple[str, str], int] = {}
    edges: list[tuple[tuple[str, str, int], str]] = []
    for edge in graph.edges:
        port = (edge.target, edge.target_port)
        position = rank.get(port, 0)
        rank[port] = position + 1
        text = (
            '{"source":'
            + string(edge.source)
            + ',"source_port":'
            + string(edge.source_port)
            + ',"target":'
            + string(edge.target)
            + ',"target_port":'
            + string(edge.target_port)
            + "}"
        )
        edges.append(((*port, position), text))
    edges.sort(key=_FIRST)
    fields = ['"edges":[' + ",".join(text for _, text in edges) + "]"]
    if graph.metadata:
        fields.append('"metadata":' + _canonical(thaw_json(graph.metadata)))
    fields.append('"name":' + string(graph.name))
    fields.append('"nodes":[' + ",".join(text for _, text in nodes) + "]")
    fields.append('"schema_version":' + _canonical(SCHEMA_VERSION))
    return "{" + ",".join(fields) + "}"


_FIRST = operator.itemgetter(0)


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(data: Any) -> str:
    return _sha256_of_text(_canonical(data))


def _sha256_of_text(text: str) -> str:
    # surrogatepass: a lone surrogate (legal in JSON text, "\ud800") still hashes
    import hashlib  # on first use: loading OpenSSL's hashes is a tenth of `import dagwright`

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- loading


def _expect(cond: bool, where: str, what: str) -> None:  # for the few checks once per file
    if not cond:
        raise IRFormatError(f"{where}: {what}")


def _load_graph(data: Any) -> Graph:
    _expect(isinstance(data, dict), "graph", "expected a JSON object")
    version = data.get("schema_version")
    _expect(version is not None, "graph", "missing 'schema_version'")
    _expect(
        version == SCHEMA_VERSION,
        "schema_version",
        f"this dagwright reads schema version {SCHEMA_VERSION}, the file has {version!r}",
    )
    name = data.get("name", "")
    _expect(isinstance(name, str), "name", "expected a string")
    nodes_data = data.get("nodes", [])
    edges_data = data.get("edges", [])
    _expect(isinstance(nodes_data, list), "nodes", "expected a list")
    _expect(isinstance(edges_data, list), "edges", "expected a list")
    unknown = set(data) - {"schema_version", "name", "metadata", "nodes", "edges"}
    _expect(not unknown, "graph", f"unknown key(s) {sorted(unknown)}")
    try:
        metadata = freeze_json(data.get("metadata", {}), "metadata")
    except TypeError as exc:
        raise IRFormatError(str(exc)) from None
    loaded: dict[Hashable, tuple[Port, ...]] = {}  # tuples of ports by _ports_key
    nodes = tuple(_load_node(n, f"nodes[{i}]", loaded) for i, n in enumerate(nodes_data))
    edges = tuple(_load_edge(e, f"edges[{i}]") for i, e in enumerate(edges_data))
    return Graph(name, nodes, edges, metadata if isinstance(metadata, FrozenDict) else EMPTY)


# The loaders below run once per node, port and edge of a file: they check each
# field inline and build the path of a field ("nodes[3].inputs[0].name") only to
# report it, never on the way through.

_PORT_KEYS = frozenset({"name", "type", "required", "default", "collect", "description"})
_NODE_KEYS = frozenset({"id", "kind", "inputs", "outputs", "config", "group", "location"})
_EDGE_KEYS = frozenset({"source", "source_port", "target", "target_port", "location"})


def _unknown_keys(data: dict[str, Any], known: frozenset[str], where: str) -> IRFormatError:
    return IRFormatError(f"{where}: unknown key(s) {sorted(set(data) - known)}")


def _ports_key(data: list[Any]) -> Hashable | None:
    """A key two lists of port objects share exactly when they hold the same flat data: objects whose values are
    strings, integers, booleans or null, their types included (``1`` and ``true`` differ). None for anything else
    (a float, whose ``-0.0`` equals ``0.0``; a nested type or default), which is then loaded as it comes. The nodes
    a loop adds repeat their ports in the file: loading them once gives the loaded graph the shared tuples of ports
    a built one has, and takes half the time."""
    try:
        return tuple(map(_flat_items, data))
    except TypeError:  # an item not an object, a value not a scalar of _KEYED
        return None


_KEYED = frozenset({str, int, bool, type(None)})


def _flat_items(data: Any) -> tuple[tuple[tuple[str, Any], ...], tuple[type, ...]]:
    if type(data) is not dict:
        raise TypeError("not an object")
    types = tuple(map(type, data.values()))
    if not _KEYED.issuperset(types):
        raise TypeError("not flat")
    return tuple(data.items()), types


def _load_location(data: Any, where: str) -> SourceLocation | None:
    if data is None:
        return None
    if not (isinstance(data, dict) and isinstance(data.get("file"), str) and isinstance(data.get("line"), int)):
        raise IRFormatError(f"{where}.location: expected {{'file': str, 'line': int}}")
    return SourceLocation(data["file"], data["line"])


def _load_port(data: Any, where: str) -> Port:
    if not isinstance(data, dict):
        raise IRFormatError(f"{where}: expected a JSON object")
    name = data.get("name")
    if not (isinstance(name, str) and name):
        raise IRFormatError(f"{where}.name: expected a non-empty string")
    if not data.keys() <= _PORT_KEYS:
        raise _unknown_keys(data, _PORT_KEYS, where)
    try:
        ptype = type_from_json(data.get("type", "any"), f"{where}.type")
        default = freeze_json(data["default"], f"{where}.default") if "default" in data else MISSING
    except (TypeError, ValueError, KeyError) as exc:
        raise IRFormatError(str(exc)) from None
    required = data.get("required", True)
    collect = data.get("collect", False)
    description = data.get("description", "")
    if not isinstance(required, bool):
        raise IRFormatError(f"{where}.required: expected true or false")
    if not isinstance(collect, bool):
        raise IRFormatError(f"{where}.collect: expected true or false")
    if not isinstance(description, str):
        raise IRFormatError(f"{where}.description: expected a string")
    return Port(name, ptype, required, default, collect, description)


def _load_ports(data: Any, where: str, loaded: dict[Hashable, tuple[Port, ...]]) -> tuple[Port, ...]:
    if not isinstance(data, list):
        raise IRFormatError(f"{where}: expected a list")
    key = _ports_key(data)
    ports = None if key is None else loaded.get(key)
    if ports is None:
        ports = tuple(_load_port(p, f"{where}[{i}]") for i, p in enumerate(data))
        if key is not None:
            loaded[key] = ports
    return ports


def _load_node(data: Any, where: str, loaded: dict[Hashable, tuple[Port, ...]]) -> Node:
    if not isinstance(data, dict):
        raise IRFormatError(f"{where}: expected a JSON object")
    if not data.keys() <= _NODE_KEYS:
        raise _unknown_keys(data, _NODE_KEYS, where)
    node_id = data.get("id")
    kind = data.get("kind")
    if not isinstance(node_id, str):
        raise IRFormatError(f"{where}.id: expected a string")
    if not (isinstance(kind, str) and kind):
        raise IRFormatError(f"{where}.kind: expected a non-empty string")
    inputs = _load_ports(data["inputs"], f"{where}.inputs", loaded) if "inputs" in data else ()
    outputs = _load_ports(data["outputs"], f"{where}.outputs", loaded) if "outputs" in data else ()
    group = data.get("group", [])
    if not (isinstance(group, list) and all(isinstance(g, str) for g in group)):
        raise IRFormatError(f"{where}.group: expected strings")
    config = data.get("config")
    if config is None and "config" not in data:
        frozen_config = EMPTY
    elif not isinstance(config, dict):
        raise IRFormatError(f"{where}.config: expected a JSON object")
    else:
        try:
            frozen_config = freeze_json(config, f"{where}.config")
        except TypeError as exc:
            raise IRFormatError(str(exc)) from None
        if kind == "function" and "function" in config:
            _load_function_ref(config["function"], node_id, where)
    return Node(
        node_id, kind, inputs, outputs, frozen_config, tuple(group), _load_location(data.get("location"), where)
    )


# A function reference is text that other tools put into code: the script export writes
# ``from MODULE import QUALNAME``. So the loader admits only the shapes dagwright itself writes
# (see ``dagwright.compiler.registry.function_ref``), and never a quote, space or newline.
_REF_SUFFIXES = ("(partial)", "()")  # a functools.partial (repeatable) / a callable object, innermost first
_UNKNOWN_MODULE = "<unknown>"  # function_ref's module for a callable without __module__


def _dotted_name(text: str, *, placeholders: bool = False) -> bool:
    """Is ``text`` dotted Python identifiers (``pkg.mod``)? ``placeholders`` admits the parts Python puts in
    a ``__qualname__`` that are not names (``<locals>``, ``<lambda>``)."""
    for part in text.split("."):
        if placeholders and part[:1] == "<" and part[-1:] == ">":
            if not part[1:-1].isidentifier():  # <lambda>: a keyword inside the brackets is fine
                return False
        elif not part.isidentifier() or keyword.iskeyword(part):
            return False
    return True


@functools.lru_cache(maxsize=4096)  # a large graph names the same few functions over and over
def function_ref_problem(ref: str) -> str | None:
    """Why ``ref`` is not a function reference, or None when it is one.

    A reference is ``module:qualname``, both dotted Python names (the module may be ``<unknown>``, the
    qualname may hold ``<locals>`` / ``<lambda>`` and end in ``()`` or ``(partial)``), or a bare dotted
    name, which only a :class:`~dagwright.compiler.registry.FunctionRegistry` it was registered in knows.
    """
    module, colon, qualname = ref.partition(":")
    if not colon:
        return None if _dotted_name(ref) else "expected 'module:qualname', both dotted Python names"
    if module != _UNKNOWN_MODULE and not _dotted_name(module):
        return "its module (before ':') is not a dotted Python name"
    name = qualname
    while name.endswith(_REF_SUFFIXES[0]):
        name = name[: -len(_REF_SUFFIXES[0])]
    if name.endswith(_REF_SUFFIXES[1]):
        name = name[: -len(_REF_SUFFIXES[1])]
    if not _dotted_name(name, placeholders=True):
        return "its name (after ':') is not a dotted Python name"
    return None


def _load_function_ref(ref: Any, node_id: str, where: str) -> None:
    """Refuse a function node's reference unless it has a shape :func:`function_ref_problem` admits."""
    field_path = f"{where}.config.function (node {node_id!r})"
    if not isinstance(ref, str):
        raise IRFormatError(f"{field_path}: expected a 'module:qualname' string, got {type(ref).__name__}")
    problem = function_ref_problem(ref)
    if problem is not None:
        shown = ref if len(ref) <= 200 else ref[:200] + "..."
        raise IRFormatError(f"{field_path}: {shown!r} is not a function reference: {problem}")


def _load_edge(data: Any, where: str) -> Edge:
    if not isinstance(data, dict):
        raise IRFormatError(f"{where}: expected a JSON object")
    if not data.keys() <= _EDGE_KEYS:
        raise _unknown_keys(data, _EDGE_KEYS, where)
    source: Any = data.get("source")
    source_port: Any = data.get("source_port")
    target: Any = data.get("target")
    target_port: Any = data.get("target_port")
    if not (type(source) is str and type(source_port) is str and type(target) is str and type(target_port) is str):
        for key in ("source", "source_port", "target", "target_port"):
            if not isinstance(data.get(key), str):
                raise IRFormatError(f"{where}.{key}: expected a string")
    return Edge(source, source_port, target, target_port, _load_location(data.get("location"), where))
