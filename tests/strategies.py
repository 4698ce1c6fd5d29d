"""Hypothesis strategies shared by the compiler tests: identifiers, type expressions, JSON data and IR graphs."""

from __future__ import annotations

import json
import keyword
import zlib
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from dagwright.compiler.ir import Edge, FrozenDict, Graph, Node, Port, SourceLocation, freeze_json
from dagwright.compiler.signature import MISSING
from dagwright.compiler.types import (
    ANY,
    BOOL,
    BYTES,
    FLOAT,
    INT,
    NONE,
    STR,
    ModelField,
    TypeExpr,
    list_of,
    optional,
    union,
)

# --------------------------------------------------------------------------- names

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))

# --------------------------------------------------------------------------- JSON data

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)

# --------------------------------------------------------------------------- types

PRIMITIVES = (ANY, NONE, STR, INT, FLOAT, BOOL, BYTES)

literal_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=1000),
    st.text(max_size=4),
)


def literals() -> st.SearchStrategy[TypeExpr]:
    """``Literal[...]`` with 1-3 distinct values (``1`` and ``True`` are distinct values)."""
    return st.lists(literal_values, min_size=1, max_size=3, unique_by=lambda v: (type(v).__name__, v)).map(
        lambda vs: TypeExpr("literal", values=tuple(vs))
    )


# JSON shaped like a type (or a model field), so fuzzing reaches the corners of the type loader.
type_like_json: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from(["str", "int", "any", "list", "dict", "tuple", "union", "literal", "model", "named", "bogus"])
    | st.none()
    | st.booleans()
    | st.integers(-2, 2),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["kind", "args", "values", "name", "fields", "bases", "variadic", "schema", "required"]),
            inner,
            max_size=5,
        )
        | st.fixed_dictionaries({"name": st.sampled_from(["a", "b"]), "type": inner})
    ),
    max_leaves=12,
)

# A small, consistent class hierarchy for named types: a subclass lists every base.
NAMED = (
    TypeExpr("named", name="app.Base"),
    TypeExpr("named", name="app.Child", bases=("app.Base",)),
    TypeExpr("named", name="app.GrandChild", bases=("app.Child", "app.Base")),
    TypeExpr("named", name="app.Other"),
)


def model(fields: Iterable[ModelField], schema: str = "") -> TypeExpr:
    """A model type named after its fields: one name is one class, as in a real program."""
    fields = tuple(fields)
    shape = json.dumps([[f.name, f.type.to_json(), f.required] for f in fields])
    return TypeExpr("model", name=f"app.models.M{zlib.crc32(shape.encode()):08x}", fields=fields, schema=schema)


def _models(inner: st.SearchStrategy[TypeExpr], optional_fields: bool = True) -> st.SearchStrategy[TypeExpr]:
    required = st.booleans() if optional_fields else st.just(True)
    fields = st.lists(
        st.builds(ModelField, st.sampled_from(["a", "b", "c", "d"]), inner, required),
        max_size=3,
        unique_by=lambda f: f.name,
    )
    return st.builds(model, fields, st.sampled_from(["", '{"type":"object"}']))


def type_exprs(
    *,
    models: bool = False,
    named: bool = False,
    any_: bool = True,
    max_leaves: int = 6,
    optional_fields: bool = True,
) -> st.SearchStrategy[TypeExpr]:
    """Random type expressions, always in normal form (unions built with :func:`union`).

    ``models`` / ``named`` add pydantic-model and custom-class types, which have
    no text form; ``any_=False`` leaves ``Any`` out everywhere; ``optional_fields=False``
    gives models only required fields.
    """
    prims = [p for p in PRIMITIVES if any_ or p.kind != "any"]
    leaves: st.SearchStrategy[TypeExpr] = st.sampled_from(prims) | literals()
    if named:
        leaves = leaves | st.sampled_from(NAMED)

    def extend(inner: st.SearchStrategy[TypeExpr]) -> st.SearchStrategy[TypeExpr]:
        options = [
            inner.map(list_of),
            st.tuples(inner, inner).map(lambda kv: TypeExpr("dict", kv)),
            st.lists(inner, max_size=3).map(lambda items: TypeExpr("tuple", tuple(items))),
            inner.map(lambda item: TypeExpr("tuple", (item,), variadic=True)),
            st.lists(inner, min_size=2, max_size=3).map(union),
            inner.map(optional),
        ]
        if models:
            options.append(_models(inner, optional_fields))
        return st.one_of(*options)

    return st.recursive(leaves, extend, max_leaves=max_leaves)


# --------------------------------------------------------------------------- graphs

# Small pools, so random graphs hit duplicate ids, dangling edges and unknown ports.
NODE_IDS = ("a", "b", "c", "d.e", "input:x", "output:y", "", "bad id", "ü")
PORT_NAMES = ("x", "y", "text", "out", "in")
KINDS = ("function", "agent", "input", "output", "vote")

locations = st.none() | st.builds(SourceLocation, st.sampled_from(["flow.py", "/abs/app.py"]), st.integers(1, 500))


port_types = type_exprs(models=True, named=True, max_leaves=4)
port_defaults = st.just(MISSING) | json_values.map(freeze_json)


@st.composite
def ports(draw: st.DrawFn) -> Port:
    """A port, with or without a JSON default; collect ports are not always well typed."""
    default = draw(port_defaults)
    return Port(
        draw(st.sampled_from(PORT_NAMES)),
        draw(port_types),
        draw(st.booleans()),
        default,
        draw(st.booleans()),
        draw(st.text(max_size=5)),
    )


@st.composite
def nodes(draw: st.DrawFn) -> Node:
    return Node(
        draw(st.sampled_from(NODE_IDS)),
        draw(st.sampled_from(KINDS)),
        tuple(draw(st.lists(ports(), max_size=2))),
        tuple(draw(st.lists(ports(), max_size=2))),
        freeze_json(draw(json_objects)),
        tuple(draw(st.lists(st.text(max_size=4), max_size=2))),
        draw(locations),
    )


@st.composite
def edges(draw: st.DrawFn) -> Edge:
    return Edge(
        draw(st.sampled_from(NODE_IDS)),
        draw(st.sampled_from(PORT_NAMES)),
        draw(st.sampled_from(NODE_IDS)),
        draw(st.sampled_from(PORT_NAMES)),
        draw(locations),
    )


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """Random, often broken graphs: anything the IR can hold."""
    metadata = freeze_json(draw(json_objects))
    return Graph(
        draw(st.text(max_size=8)),
        tuple(draw(st.lists(nodes(), max_size=5))),
        tuple(draw(st.lists(edges(), max_size=6))),
        metadata if isinstance(metadata, FrozenDict) else FrozenDict(),
    )


@st.composite
def digraphs(draw: st.DrawFn, max_nodes: int = 9) -> tuple[int, list[tuple[int, int]]]:
    """A random directed graph as (number of nodes, edge list); self-loops and parallel edges included."""
    n = draw(st.integers(1, max_nodes))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    return n, pairs


# Shared type objects, as a compiled flow has them (signatures and functions reuse their types).
_SHARED_TYPES = (INT, FLOAT, STR, ANY, optional(INT), list_of(INT), list_of(FLOAT))


@st.composite
def wired_graphs(draw: st.DrawFn, max_nodes: int = 8) -> Graph:
    """Graphs whose edges mostly join ports that exist: unique ids, types from a small
    shared pool (and some random ones), a few dangling ends, any edge direction."""
    types = st.sampled_from(_SHARED_TYPES) | port_types
    in_ports = st.builds(Port, st.sampled_from(("x", "y", "in")), types, st.booleans(), st.just(MISSING), st.booleans())
    out_ports = st.builds(Port, st.sampled_from(("out", "y")), types)
    nodes = []
    for i in range(draw(st.integers(1, max_nodes))):
        kind = draw(st.sampled_from(("function", "function", "agent", "input")))
        nid = f"input:n{i}" if kind == "input" else f"n{i}"
        ins = () if kind == "input" else tuple(draw(st.lists(in_ports, max_size=3)))
        nodes.append(Node(nid, kind, ins, tuple(draw(st.lists(out_ports, max_size=2)))))
    broken = st.tuples(st.sampled_from([n.id for n in nodes] + ["ghost"]), st.just("nope"))
    out_keys = [(n.id, p.name) for n in nodes for p in n.outputs]
    in_keys = [(n.id, p.name) for n in nodes for p in n.inputs]
    sources = st.sampled_from(out_keys) | broken if out_keys else broken
    targets = st.sampled_from(in_keys) | broken if in_keys else broken
    pairs = draw(st.lists(st.tuples(sources, targets), max_size=3 * len(nodes)))
    return Graph("wired", tuple(nodes), tuple(Edge(s, sp, t, tp) for (s, sp), (t, tp) in pairs))


def fitting_values(t: TypeExpr) -> st.SearchStrategy[Any]:
    """JSON values of type ``t`` (what a default of that type may be)."""
    kind = t.kind
    if kind in ("any", "named"):
        return json_values
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "none": st.none(),
        "str": st.text(max_size=5),
        "int": st.integers(-(2**40), 2**40),
        "float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-5, 5),
        "bool": st.booleans(),
    }
    if kind in scalars:
        return scalars[kind]
    if kind == "literal":
        return st.sampled_from(list(t.values))
    if kind == "union":
        return st.one_of(*(fitting_values(member) for member in t.args))
    if kind == "list" or (kind == "tuple" and t.variadic):
        return st.lists(fitting_values(t.args[0]), max_size=3)
    if kind == "tuple":
        return st.tuples(*(fitting_values(a) for a in t.args)).map(list)
    if kind == "dict":
        key_type, value_type = t.args
        keys = fitting_values(key_type).filter(lambda k: isinstance(k, str))
        return st.dictionaries(keys, fitting_values(value_type), max_size=3) | st.just({})
    if kind == "model":
        required = {f.name: fitting_values(f.type) for f in t.fields if f.required}
        optional = {f.name: fitting_values(f.type) for f in t.fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional)
    raise AssertionError(f"no values for {t}")  # bytes: JSON holds none
