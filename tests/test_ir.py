"""The IR: JSON round trip, content hash, immutability, loading errors, and function references."""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs, json_values, nodes, type_exprs, type_like_json, wired_graphs

from dagwright.compiler.ir import (
    SCHEMA_VERSION,
    Edge,
    FrozenDict,
    Graph,
    IRFormatError,
    Node,
    Port,
    SourceLocation,
    freeze_json,
    make_nodes,
    run_lengths,
    spread,
    thaw_json,
)
from dagwright.compiler.passes import validate
from dagwright.compiler.registry import FunctionRegistry, UnresolvedReferenceError, function_ref
from dagwright.compiler.types import INT, STR, list_of
from dagwright.flow import Flow

# --------------------------------------------------------------------------- making nodes in bulk


@settings(max_examples=100)
@given(st.lists(nodes(), max_size=12))
def test_nodes_made_column_by_column_equal_those_made_one_by_one(made_one_by_one: list[Node]) -> None:
    fields = [(n.kind, n.inputs, n.outputs, n.config, n.group, n.location) for n in made_one_by_one]
    columns = [list(column) for column in zip(*fields, strict=True)] if fields else [[]] * 6
    made = make_nodes([n.id for n in made_one_by_one], columns)
    assert made == made_one_by_one
    assert [n.location for n in made] == [n.location for n in made_one_by_one]  # not part of ==
    assert all(type(n) is Node for n in made)


@given(st.dictionaries(st.text(max_size=3), st.integers(), max_size=5), st.text(max_size=3))
def test_a_frozen_dict_reads_keys_as_a_dict_does(data: dict[str, int], key: str) -> None:
    frozen = FrozenDict(data)
    assert frozen.get(key) == data.get(key) and frozen.get(key, -1) == data.get(key, -1)
    assert (key in frozen) == (key in data) and (1 in frozen) is False


@given(st.lists(st.tuples(st.integers(), st.integers(0, 5)), max_size=8))
def test_runs_spread_their_values_over_their_lengths(runs: list[tuple[int, int]]) -> None:
    values, lengths = [v for v, _ in runs], [n for _, n in runs]
    assert list(spread(values, lengths)) == [v for v, n in runs for _ in range(n)]
    starts = list(itertools.accumulate(lengths, initial=0))
    assert run_lengths(starts[:-1], starts[-1]) == lengths


# --------------------------------------------------------------------------- round trip


def _locations(g: Graph) -> tuple[list[SourceLocation | None], list[SourceLocation | None]]:
    return [n.location for n in g.nodes], [e.location for e in g.edges]


@settings(max_examples=150)
@given(graphs())
def test_json_round_trip(g: Graph) -> None:
    text = g.to_json()
    back = Graph.from_json(text)
    assert back == g
    assert _locations(back) == _locations(g)  # locations do not take part in ==, so compare them apart
    assert back.to_json() == text
    assert back.content_hash == g.content_hash
    assert Graph.from_dict(json.loads(text)) == g
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION


@settings(max_examples=100)
@given(graphs(), st.sampled_from([None, 0, 2, 4]))
def test_json_text_has_a_line_per_field_node_and_edge(g: Graph, indent: int | None) -> None:
    text = g.to_json(indent)
    assert Graph.from_json(text) == g
    assert json.loads(text) == g.to_dict()
    if indent is None:
        assert "\n" not in text  # JSON escapes newlines inside strings
        return
    lines = text.split("\n")  # not splitlines(): a string may hold U+0085 or U+2028, which it splits at
    pad = " " * indent
    nodes = [json.loads(line.removesuffix(",")) for line in lines if line.startswith(pad * 2 + '{"id": ')]
    edges = [json.loads(line.removesuffix(",")) for line in lines if line.startswith(pad * 2 + '{"source": ')]
    assert nodes == [n.to_dict() for n in g.nodes]
    assert edges == [e.to_dict() for e in g.edges]
    fields = 3 + bool(g.metadata)  # schema_version, name, [metadata,] nodes and edges (brackets on lines of their own)
    assert len(lines) == 2 + fields + 1 + len(g.nodes) + bool(g.nodes) + len(g.edges) + bool(g.edges)


@settings(max_examples=60)
@given(graphs(), st.randoms(use_true_random=False))
def test_content_hash_ignores_insertion_order(g: Graph, rnd: Any) -> None:
    nodes = list(g.nodes)
    rnd.shuffle(nodes)
    # Interleave the edges differently, but keep each input port's edges in their order:
    # that order is what a collect port receives, so it belongs to the graph.
    by_port: dict[tuple[str, str], list[Any]] = {}
    for edge in g.edges:
        by_port.setdefault((edge.target, edge.target_port), []).append(edge)
    queues = list(by_port.values())
    edges = []
    while queues:
        queue = rnd.choice(queues)
        edges.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    shuffled = Graph(g.name, tuple(nodes), tuple(edges), g.metadata)
    assert shuffled.content_hash == g.content_hash


def test_content_hash_sees_the_order_of_a_collect_port() -> None:
    voters = [Node(n, "agent", (), (Port("vote", STR),)) for n in ("a", "b")]
    tally = Node("tally", "gather", (Port("values", list_of(STR), False, collect=True),), ())
    forward = Graph("g", (*voters, tally), (Edge("a", "vote", "tally", "values"), Edge("b", "vote", "tally", "values")))
    backward = Graph("g", forward.nodes, tuple(reversed(forward.edges)))
    assert forward.content_hash != backward.content_hash


@settings(max_examples=40)
@given(graphs())
def test_content_hash_ignores_locations(g: Graph) -> None:
    moved = Graph(
        g.name,
        tuple(n._replace(location=SourceLocation("elsewhere.py", 1)) for n in g.nodes),
        tuple(e._replace(location=None) for e in g.edges),
        g.metadata,
    )
    assert moved.content_hash == g.content_hash


@settings(max_examples=60)
@given(graphs().filter(lambda g: any(n.inputs for n in g.nodes)), type_exprs(models=True, named=True), st.data())
def test_content_hash_sees_a_changed_port_type(g: Graph, new_type: Any, data: st.DataObject) -> None:
    i = data.draw(st.sampled_from([i for i, n in enumerate(g.nodes) if n.inputs]))
    node = g.nodes[i]
    if node.inputs[0].type == new_type:
        return
    changed = node._replace(inputs=(dataclasses.replace(node.inputs[0], type=new_type), *node.inputs[1:]))
    other = Graph(g.name, (*g.nodes[:i], changed, *g.nodes[i + 1 :]), g.edges, g.metadata)
    assert other != g
    assert other.content_hash != g.content_hash


@settings(max_examples=60)
@given(graphs().filter(lambda g: bool(g.nodes)), json_values, st.data())
def test_content_hash_sees_a_changed_config(g: Graph, value: Any, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(g.nodes) - 1))
    node = g.nodes[i]
    config = thaw_json(node.config)
    if config.get("__probe__", object()) == value:
        return
    config["__probe__"] = value
    changed = node._replace(config=freeze_json(config))
    other = Graph(g.name, (*g.nodes[:i], changed, *g.nodes[i + 1 :]), g.edges, g.metadata)
    assert other.content_hash != g.content_hash


def _count(findings: list[str]) -> int:
    return len(findings)


def _small_flow(findings_type: str = "list[str]", model: str = "gpt-4o-mini") -> Flow:
    flow = Flow("small")
    flow.input("topic", str)
    flow.add_agent("research", f"topic -> findings: {findings_type}", config={"model": model})
    flow.add_function("count", _count)
    flow.connect("research.findings", "count.findings")
    flow.output("n", "count.output")
    return flow


def test_content_hash_is_pinned() -> None:
    """Checkpoints are keyed by this hash: a change to the canonical form would orphan every stored run."""
    g = Graph(
        "pinned",
        (
            Node("b", "function", (Port("x", INT),), (Port("y", INT),), FrozenDict({"function": "m:f"})),
            Node("a", "function", (), (Port("y", INT),)),
            Node("j", "vote", (Port("values", list_of(INT), collect=True),), (Port("out", STR),), group=("g",)),
            Node("a", "agent"),  # a duplicate id: ties are broken by content
        ),
        (Edge("b", "y", "j", "values"), Edge("a", "y", "j", "values"), Edge("a", "y", "b", "x")),
    )
    assert g.content_hash == "a0770224fba309763dcaa99d60cbb2389bab5ede1f20769c8917499adb2d48b3"
    unique = Graph(g.name, g.nodes[:3], g.edges)
    assert unique.content_hash == "e747262d8f923b2dbd02653ca468b736417936a82e55df76b7dde24e09ea6928"


def test_content_hash_of_flows() -> None:
    base = _small_flow().compile().content_hash
    assert len(base) == 64
    assert _small_flow().compile().content_hash == base
    assert _small_flow(findings_type="list[str] | None").to_graph().content_hash != base
    assert _small_flow(model="gpt-4o").compile().content_hash != base


HASH_SCRIPT = """
from dagwright.flow import Flow
from dagwright.cli.demo import build_research_flow

flow = Flow("agents")
flow.input("question", str)
flow.add_agent("a", "question -> answer: str, score: float", config={"model": "m", "temperature": 0.5})
flow.add_agent("b", "answer: str, score: float = 0.5 -> verdict: Literal['yes', 'no']")
flow.connect("a", "b")
flow.output("verdict", "b.verdict")
print(flow.compile().content_hash)
print(build_research_flow().compile().content_hash)
"""


def test_content_hash_is_equal_across_processes() -> None:
    namespace: dict[str, Any] = {}
    lines: list[str] = []
    namespace["print"] = lines.append
    exec(HASH_SCRIPT, namespace)
    assert len(lines) == 2
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT], capture_output=True, text=True, env=env, check=True, timeout=120
        )
        assert result.stdout.split() == lines


def test_content_hash_of_text_that_is_not_valid_unicode() -> None:
    g = Graph.from_json('{"schema_version": 1, "nodes": [{"id": "\\ud800", "kind": "function"}]}')
    assert g.nodes[0].id == "\ud800"
    assert len(g.content_hash) == 64
    assert Graph.from_json(g.to_json()) == g


# --------------------------------------------------------------------------- immutability


def test_graph_elements_are_immutable() -> None:
    g = _small_flow().compile()
    node = g.node("research")
    with pytest.raises(AttributeError):
        node.id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.inputs[0].type = INT  # type: ignore[misc]
    with pytest.raises(AttributeError):
        g.edges[0].target = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.nodes = ()  # type: ignore[misc]
    assert isinstance(g.nodes, tuple)
    assert isinstance(g.edges, tuple)


def test_nodes_and_edges_compare_without_their_locations() -> None:
    here, there = SourceLocation("a.py", 1), SourceLocation("b.py", 2)
    node = Node("n", "function", (Port("x", INT),), (Port("output", INT),), location=here)
    moved = node._replace(location=there)
    assert node == moved and (node != moved) is False and hash(node) == hash(moved)
    assert node != node._replace(kind="agent") and node != node._replace(group=("g",))
    edge = Edge("a", "out", "b", "in", here)
    assert edge == Edge("a", "out", "b", "in", there) and hash(edge) == hash(Edge("a", "out", "b", "in"))
    assert edge != Edge("a", "out", "b", "other", here)
    # Neither equals the plain tuple of its fields, nor the other kind of element.
    assert node != tuple(node) and edge != tuple(edge) and edge != Node(*edge)


def test_config_is_deep_frozen() -> None:
    config = freeze_json({"model": "m", "stop": ["a", "b"], "nested": {"k": [1, {"x": 2}]}})
    assert isinstance(config, FrozenDict)
    assert config["stop"] == ("a", "b")
    assert isinstance(config["nested"], FrozenDict)
    assert config["nested"]["k"][1] == {"x": 2}
    with pytest.raises(TypeError):
        config["model"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError, match="FrozenDict is immutable"):
        config._data = {}
    assert hash(config) == hash(freeze_json({"nested": {"k": [1, {"x": 2}]}, "stop": ["a", "b"], "model": "m"}))
    assert thaw_json(config) == {"model": "m", "stop": ["a", "b"], "nested": {"k": [1, {"x": 2}]}}


def test_agent_config_cannot_change_the_graph_afterwards() -> None:
    settings_dict: dict[str, Any] = {"model": "m", "stop": ["x"]}
    flow = Flow("f")
    flow.input("q", str)
    flow.add_agent("a", "q -> answer", config=settings_dict)
    flow.output("answer", "a.answer")
    g = flow.compile()
    before = g.content_hash
    settings_dict["stop"].append("y")
    settings_dict["model"] = "changed"
    assert g.node("a").config["agent"]["stop"] == ("x",)
    assert Graph(g.name, g.nodes, g.edges, g.metadata).content_hash == before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1, 2}}, "value.a: set is not JSON data ({1, 2})"),
        ({"a": [1, float("nan")]}, "value.a[1]: nan is not valid JSON"),
        ({"a": {3: "x"}}, "value.a: keys must be strings, got 3"),
        ({"a": object}, "value.a: type is not JSON data (<class 'object'>)"),
    ],
)
def test_freeze_json_names_the_bad_part(value: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        freeze_json(value)
    assert str(info.value) == message


def test_freeze_json_refuses_data_that_contains_itself() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="nested more than 100 levels deep"):
        freeze_json(loop)


# --------------------------------------------------------------------------- graph lookups


def test_lookups() -> None:
    g = _small_flow().compile()
    assert g.node("count").kind == "function"
    with pytest.raises(KeyError, match="graph 'small' has no node 'cout'; did you mean 'count'"):
        g.node("cout")
    assert "research" in g
    assert "nope" not in g
    assert g.topological_order() == ["input:topic", "research", "count", "output:n"]
    assert g.successors("research") == ["count"]
    assert g.predecessors("count") == ["research"]
    assert [n.id for n in g.input_nodes] == ["input:topic"]
    assert [n.id for n in g.output_nodes] == ["output:n"]
    assert [str(e) for e in g.edges_into("count", "findings")] == ["research.findings -> count.findings"]


def test_topological_order_refuses_a_cycle() -> None:
    a = Node("a", "function", (Port("x"),), (Port("y"),))
    b = Node("b", "function", (Port("x"),), (Port("y"),))
    g = Graph("loop", (a, b), (Edge("a", "y", "b", "x"), Edge("b", "y", "a", "x")))
    with pytest.raises(ValueError, match="graph 'loop' has a cycle"):
        g.topological_order()


@settings(max_examples=200)
@given(graphs() | wired_graphs(), st.booleans())
def test_lookups_follow_the_edges_whose_ends_exist(g: Graph, validated_first: bool) -> None:
    if validated_first:
        validate(g)  # drops the passes' own lookups: what remains must still answer
    first = {n.id: n for n in reversed(g.nodes)}  # the first node of an id counts
    valid = [
        e
        for e in g.edges
        if e.source in first
        and e.target in first
        and first[e.source].output(e.source_port) is not None
        and first[e.target].input(e.target_port) is not None
    ]
    for nid in first:
        assert g.successors(nid) == [e.target for e in valid if e.source == nid]
        assert g.predecessors(nid) == [e.source for e in valid if e.target == nid]
        for port in first[nid].inputs:
            assert g.edges_into(nid, port.name) == [e for e in valid if (e.target, e.target_port) == (nid, port.name)]
    reference = nx.MultiDiGraph()
    reference.add_nodes_from(first)
    reference.add_edges_from((e.source, e.target) for e in valid)
    if not nx.is_directed_acyclic_graph(reference):
        with pytest.raises(ValueError, match="has a cycle"):
            g.topological_order()
        return
    order = g.topological_order()
    assert sorted(order) == sorted(first)
    position = {nid: i for i, nid in enumerate(order)}
    assert all(position[e.source] < position[e.target] for e in valid)


# --------------------------------------------------------------------------- loading errors


def _valid() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": "g",
        "nodes": [
            {"id": "a", "kind": "function", "outputs": [{"name": "y", "type": "int"}]},
            {"id": "b", "kind": "function", "inputs": [{"name": "x", "type": {"kind": "list", "args": ["str"]}}]},
        ],
        "edges": [{"source": "a", "source_port": "y", "target": "b", "target_port": "x"}],
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return apply


_DELETE = object()

LOAD_ERRORS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_set("schema_version", 2), "schema_version: this dagwright reads schema version 1, the file has 2"),
    (_set("schema_version", "1"), "schema_version: this dagwright reads schema version 1, the file has '1'"),
    (_set("schema_version", _DELETE), "graph: missing 'schema_version'"),
    (_set("extra", 1), "graph: unknown key(s) ['extra']"),
    (_set("name", 3), "name: expected a string"),
    (_set("nodes", {}), "nodes: expected a list"),
    (_set("nodes/0", "a"), "nodes[0]: expected a JSON object"),
    (_set("nodes/1/id", 5), "nodes[1].id: expected a string"),
    (_set("nodes/1/kind", ""), "nodes[1].kind: expected a non-empty string"),
    (_set("nodes/1/inputs", "x"), "nodes[1].inputs: expected a list"),
    (_set("nodes/1/inputs/0/type", "strr"), "nodes[1].inputs[0].type: unknown type 'strr'"),
    (
        _set("nodes/1/inputs/0/type", {"kind": "list", "args": ["strr"]}),
        "nodes[1].inputs[0].type.args[0]: unknown type 'strr'",
    ),
    (
        _set("nodes/0/outputs/0/type", {"kind": "model", "name": "M", "fields": [{"name": "f"}]}),
        "nodes[0].outputs[0].type.fields[0]: expected an object with a 'name' string and a 'type'",
    ),
    (_set("nodes/1/inputs/0/name", ""), "nodes[1].inputs[0].name: expected a non-empty string"),
    (_set("nodes/1/inputs/0/required", "yes"), "nodes[1].inputs[0].required: expected true or false"),
    (_set("nodes/1/inputs/0/colect", True), "nodes[1].inputs[0]: unknown key(s) ['colect']"),
    (_set("nodes/1/config", []), "nodes[1].config: expected a JSON object"),
    (_set("nodes/1/group", ["a", 1]), "nodes[1].group: expected strings"),
    (_set("nodes/1/location", {"file": "f.py"}), "nodes[1].location: expected {'file': str, 'line': int}"),
    (_set("edges/0/target_port", None), "edges[0].target_port: expected a string"),
    (_set("edges/0/weight", 1), "edges[0]: unknown key(s) ['weight']"),
]


@pytest.mark.parametrize(("mutate", "message"), LOAD_ERRORS, ids=[m for _, m in LOAD_ERRORS])
def test_load_errors_name_the_path(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    data = _valid()
    Graph.from_dict(copy.deepcopy(data))  # the unmutated document loads
    mutate(data)
    with pytest.raises(IRFormatError) as info:
        Graph.from_json(json.dumps(data))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
        ("", "not valid JSON: Expecting value at line 1, column 1"),
        ("[1, 2]", "graph: expected a JSON object"),
        (b"\xff\xfe\x00", "not valid JSON: not UTF-8 text (truncated data at byte 2)"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
    ],
)
def test_invalid_json(text: str | bytes, message: str) -> None:
    with pytest.raises(IRFormatError) as info:
        Graph.from_json(text)
    assert str(info.value) == message


def test_nan_in_config_is_refused() -> None:
    data = _valid()
    text = json.dumps(data).replace(
        '"kind": "function", "outputs"', '"kind": "function", "config": {"t": NaN}, "outputs"'
    )
    with pytest.raises(IRFormatError) as info:
        Graph.from_json(text)
    assert str(info.value) == "nodes[0].config.t: nan is not valid JSON"


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A valid graph document with a few parts replaced by arbitrary JSON or removed."""
    doc = json.loads(draw(graphs()).to_json())
    for _ in range(draw(st.integers(1, 3))):
        parent: Any = None
        key: Any = None
        node = doc
        # go deep more often than not: the interesting parts (ports, types) are 4-6 levels down
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 5)) > 0:
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            parent, node = node, node[key]
        replacement = draw(json_values | type_like_json)
        if parent is None:
            doc = replacement
        elif isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = replacement
    return doc


@settings(max_examples=200)
@given(mutated_documents())
def test_any_document_loads_or_fails_with_a_format_error(doc: Any) -> None:
    try:
        g = Graph.from_json(json.dumps(doc))
    except IRFormatError as err:
        assert str(err)
        return
    # whatever loads can be checked, hashed, shown and written back
    validate(g)
    assert len(g.content_hash) == 64
    for node in g.nodes:
        for port in (*node.inputs, *node.outputs):
            str(port.type)
    assert Graph.from_json(g.to_json()) == g


# --------------------------------------------------------------------------- function references


@pytest.fixture
def side_effect_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A module on sys.path that leaves a marker file when it is imported."""
    name = f"dw_side_effect_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib
            pathlib.Path({str(marker)!r}).write_text("imported")

            def double(x: int) -> int:
                return 2 * x
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield name, marker
    finally:
        sys.modules.pop(name, None)


def _function_graph(*refs: str) -> Graph:
    nodes = [
        {
            "id": f"f{i}",
            "kind": "function",
            "inputs": [{"name": "x", "type": "int", "required": False}],
            "outputs": [{"name": "output", "type": "int"}],
            "config": {"function": ref},
        }
        for i, ref in enumerate(refs)
    ]
    return Graph.from_json(json.dumps({"schema_version": 1, "name": "fns", "nodes": nodes}))


def test_loading_never_imports_code(side_effect_module: tuple[str, Path]) -> None:
    name, marker = side_effect_module
    g = _function_graph(f"{name}:double")
    validate(g)
    assert len(g.content_hash) == 64
    g.to_json()
    with pytest.raises(UnresolvedReferenceError, match=f"FunctionRegistry\\(allow=\\['{name}'\\]\\)"):
        FunctionRegistry().bind(g)
    assert name not in sys.modules
    assert not marker.exists()
    # only an explicit allow-list imports it (which proves the marker would have shown an import)
    bound = FunctionRegistry(allow=[name]).bind(g)
    assert marker.read_text() == "imported"
    assert bound["f0"](x=4) == 8


def _triple(x: int) -> int:
    return 3 * x


def test_registry_registered_functions() -> None:
    ref = function_ref(_triple)
    assert ref == f"{__name__}:_triple"
    g = _function_graph(ref)
    assert FunctionRegistry([_triple]).bind(g) == {"f0": _triple}
    assert FunctionRegistry({"math.triple": _triple}).resolve("math.triple") is _triple
    registry = FunctionRegistry()
    assert registry.register(_triple) is _triple
    assert registry.resolve(ref, node="f0") is _triple
    with pytest.raises(TypeError, match="only callables can be registered"):
        registry.register(3)  # type: ignore[arg-type]


def test_registry_allow_list() -> None:
    registry = FunctionRegistry(allow=["json"])
    assert registry.resolve("json:dumps") is json.dumps
    assert registry.resolve("json.decoder:JSONDecoder.decode") is json.decoder.JSONDecoder.decode
    assert registry.allowed("json.decoder")
    assert not registry.allowed("jsonschema")
    with pytest.raises(UnresolvedReferenceError, match="unknown function 'jsonschema:validate'"):
        registry.resolve("jsonschema:validate")
    with pytest.raises(UnresolvedReferenceError, match="'json' has no importable 'nothing_here'"):
        registry.resolve("json:nothing_here")
    with pytest.raises(UnresolvedReferenceError, match="'json:__name__' is not callable"):
        registry.resolve("json:__name__")
    with pytest.raises(UnresolvedReferenceError, match=re.escape("cannot import 'json.nope' for 'json.nope:f'")):
        registry.resolve("json.nope:f")


def test_registry_unknown_reference_has_a_hint() -> None:
    registry = FunctionRegistry([_triple])
    with pytest.raises(UnresolvedReferenceError) as info:
        registry.resolve(f"{__name__}:_tripel", node="t")
    assert str(info.value) == (
        f"node 't': unknown function '{__name__}:_tripel' (did you mean '{__name__}:_triple'?): register it, "
        f"or allow its module with FunctionRegistry(allow=['{__name__}'])"
    )
    with pytest.raises(UnresolvedReferenceError, match="function reference 'no_colon' is not of the form"):
        registry.resolve("no_colon")


def test_local_functions_must_be_registered() -> None:
    def inner(x: int) -> int:
        return x

    ref = function_ref(inner)
    assert ref == f"{__name__}:test_local_functions_must_be_registered.<locals>.inner"
    with pytest.raises(UnresolvedReferenceError, match="functions defined inside other functions must be registered"):
        FunctionRegistry(allow=[__name__]).resolve(ref)
    assert FunctionRegistry([inner]).resolve(ref) is inner


def test_bind_reports_every_failure_at_once() -> None:
    g = _function_graph(function_ref(_triple), "pkg.a:one", "pkg.b:two", "bad")
    with pytest.raises(UnresolvedReferenceError) as info:
        FunctionRegistry([_triple]).bind(g)
    lines = str(info.value).split("\n")
    assert len(lines) == 3
    assert lines[0].startswith("node 'f1': unknown function 'pkg.a:one'")
    assert lines[1].startswith("node 'f2': unknown function 'pkg.b:two'")
    assert lines[2] == "node 'f3': function reference 'bad' is not of the form 'module:name'"


def test_bind_reports_a_reference_that_is_not_text() -> None:
    g = Graph("g", (Node("f", "function", config=freeze_json({"function": ["x"]})),))
    with pytest.raises(
        UnresolvedReferenceError, match="node 'f': 'function' must be a reference string, got \\('x',\\)"
    ):
        FunctionRegistry().bind(g)


def test_compiled_flow_binds_through_its_registry() -> None:
    g = Graph.from_json(_small_flow().compile().to_json())
    ref = f"{_count.__module__}:_count"
    with pytest.raises(UnresolvedReferenceError, match=re.escape(f"unknown function {ref!r}")):
        FunctionRegistry().bind(g)
    bound = FunctionRegistry(allow=[_count.__module__]).bind(g)
    assert list(bound) == ["count"]
    assert bound["count"](findings=["a", "b"]) == 2


def test_types_survive_loading() -> None:
    g = Graph.from_json(_small_flow().compile().to_json())
    assert g.node("research").outputs[0].type == list_of(STR)
    assert g.node("count").outputs[0].type == INT
    assert validate(g) == []


def _triple(x: int, factor: int) -> int:
    return x * factor


class _Tripler:
    def __call__(self, x: int) -> int:
        return 3 * x


def test_partials_and_callable_objects_resolve_only_through_a_registry() -> None:
    """Their references name what they wrap, but an import would give the bare function or the class."""
    tripler, partial = _Tripler(), functools.partial(_triple, factor=3)
    flow = Flow("refs")
    flow.add_function("obj", tripler)
    flow.add_function("part", partial)
    flow.input("x", int, to=["obj.x", "part.x"])
    graph = Graph.from_json(flow.compile().to_json())
    refs = {n.id: n.config["function"] for n in graph.nodes if n.kind == "function"}
    assert refs == {"obj": f"{__name__}:_Tripler()", "part": f"{__name__}:_triple(partial)"}
    refused = r"_Tripler\(\)' is a callable object, which no import rebuilds: register it"
    with pytest.raises(UnresolvedReferenceError, match=refused):
        FunctionRegistry(allow=[__name__]).bind(graph)
    bound = FunctionRegistry({refs["obj"]: tripler, refs["part"]: partial}).bind(graph)
    assert bound == {"obj": tripler, "part": partial}


def _reference_json(g: Graph, indent: int | None) -> str:
    """One json.dumps of to_dict(), or the indented layout, each field, node and edge encoded whole by the C
    encoder."""
    if indent is None:
        return json.dumps(g.to_dict(), ensure_ascii=False)
    encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    pad = " " * indent
    fields = []
    for key, value in g.to_dict().items():
        if key in ("nodes", "edges") and value:
            items = f",\n{pad}{pad}".join(map(encode, value))
            fields.append(f"{pad}{encode(key)}: [\n{pad}{pad}{items}\n{pad}]")
        else:
            fields.append(f"{pad}{encode(key)}: {encode(value)}")
    return "{\n" + ",\n".join(fields) + "\n}"


@settings(max_examples=200)
@given(graphs(), st.sampled_from([None, 0, 2, 4]), st.data())
def test_json_text_is_what_the_encoder_writes_element_by_element(
    g: Graph, indent: int | None, data: st.DataObject
) -> None:
    # Copies sharing every part but the id, and ids and names of any text (quotes, escapes, surrogates).
    copies = tuple(n._replace(id=data.draw(st.text(max_size=6))) for n in g.nodes)
    names = st.text(max_size=6)
    odd_edges = tuple(e._replace(source=data.draw(names), target_port=data.draw(names)) for e in g.edges)
    g = Graph(g.name, g.nodes + copies, g.edges + odd_edges, g.metadata)
    assert g.to_json(indent) == _reference_json(g, indent)


def _reference_canonical(g: Graph) -> str:
    """The canonical text the content hash is of, made from to_dict() and one json.dumps of it all."""
    data = g.to_dict(locations=False)
    data["nodes"].sort(
        key=lambda n: (n["id"], json.dumps(n, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    )
    rank: dict[tuple[str, str], int] = {}
    keyed = []
    for edge in data["edges"]:
        port = (edge["target"], edge["target_port"])
        rank[port] = rank.get(port, -1) + 1
        keyed.append(((*port, rank[port]), edge))
    data["edges"] = [edge for _, edge in sorted(keyed, key=lambda k: k[0])]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=200)
@given(graphs(), st.data())
def test_canonical_text_is_one_dump_of_the_sorted_data(g: Graph, data: st.DataObject) -> None:
    from dagwright.compiler.ir import _canonical_text

    # Copies sharing every part but the id (some repeating an id), and names of any text.
    copies = tuple(n._replace(id=data.draw(st.sampled_from([n.id, *"ab"]) | st.text(max_size=6))) for n in g.nodes)
    names = st.text(max_size=6)
    odd_edges = tuple(e._replace(target=data.draw(names), source_port=data.draw(names)) for e in g.edges)
    g = Graph(g.name, g.nodes + copies, g.edges + odd_edges, g.metadata)
    assert _canonical_text(g) == _reference_canonical(g)


@settings(max_examples=60)
@given(graphs())
def test_graphs_survive_pickling_and_copying(g: Graph) -> None:
    # Dask ships nodes to its workers pickled; a deep copy must not lose the locations equality leaves out.
    for back in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        assert back == g and back.content_hash == g.content_hash
        assert [n.location for n in back.nodes] == [n.location for n in g.nodes]
        assert [e.location for e in back.edges] == [e.location for e in g.edges]
        assert all(type(n) is Node for n in back.nodes) and all(type(e) is Edge for e in back.edges)


def _two_nodes(first: dict[str, Any], second: dict[str, Any]) -> str:
    nodes = [{"id": "a", "kind": "k", "inputs": [first]}, {"id": "b", "kind": "k", "inputs": [second]}]
    return json.dumps({"schema_version": SCHEMA_VERSION, "name": "g", "nodes": nodes, "edges": []})


def test_loading_shares_equal_ports_and_tells_apart_values_that_only_compare_equal() -> None:
    shared = Graph.from_json(_two_nodes({"name": "x", "type": "int"}, {"name": "x", "type": "int"}))
    assert shared.nodes[0].inputs is shared.nodes[1].inputs  # loaded once, as a loop's nodes are built
    # true and 1 compare equal: the second port is still checked, and refused.
    with pytest.raises(IRFormatError, match=r"nodes\[1\]\.inputs\[0\]\.required: expected true or false"):
        Graph.from_json(_two_nodes({"name": "x", "required": True}, {"name": "x", "required": 1}))
    # So do 0.0 and -0.0, 1 and 1.0: each keeps its own default, and the graph its hash.
    for one, other in ((0.0, -0.0), (1, 1.0)):
        text = _two_nodes({"name": "x", "default": one}, {"name": "x", "default": other})
        loaded = Graph.from_json(text)
        assert [json.dumps(n.inputs[0].default) for n in loaded.nodes] == [json.dumps(one), json.dumps(other)]
        assert loaded.to_json(None) == Graph.from_json(loaded.to_json()).to_json(None)
