"""Validation passes: one test per diagnostic code, no cascades, and graph properties checked against networkx."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import networkx as nx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import digraphs, graphs, wired_graphs

from dagwright.compiler.diagnostics import CODES, CompileError, Diagnostic
from dagwright.compiler.ir import Edge, Graph, Node, Port, SourceLocation, freeze_json
from dagwright.compiler.passes import PASSES, check_cycles, check_reachability, check_unused, validate
from dagwright.compiler.types import ANY, INT, STR, TypeExpr, is_assignable, list_of, optional, parse_type
from dagwright.flow import Flow

# --------------------------------------------------------------------------- helpers


def port(spec: str | Port) -> Port:
    """``"name: type"`` (optionally ``"name: type = default"``) or a ready Port."""
    if isinstance(spec, Port):
        return spec
    name, _, rest = spec.partition(":")
    type_text, eq, default = rest.partition("=")
    ptype = parse_type(type_text) if type_text.strip() else ANY
    if eq:
        return Port(name.strip(), ptype, False, freeze_json(eval(default)))  # test literals only
    return Port(name.strip(), ptype)


def node(nid: str, ins: Iterable[str | Port] = (), outs: Iterable[str | Port] = (), kind: str = "function") -> Node:
    return Node(nid, kind, tuple(map(port, ins)), tuple(map(port, outs)), location=SourceLocation("flow.py", 7))


def edge(text: str) -> Edge:
    """``"a.out -> b.in"``."""
    left, right = (s.strip() for s in text.split("->"))
    (src, sp), (dst, dp) = left.rsplit(".", 1), right.rsplit(".", 1)
    return Edge(src, sp, dst, dp)


def graph(nodes: Sequence[Node], edges: Iterable[str] = ()) -> Graph:
    return Graph("g", tuple(nodes), tuple(map(edge, edges)))


def found(g: Graph) -> list[tuple[str, str]]:
    return [(d.code, d.where) for d in validate(g)]


def only(g: Graph, code: str) -> Diagnostic:
    matches = [d for d in validate(g) if d.code == code]
    assert len(matches) == 1, matches
    return matches[0]


SRC = node("src", outs=["text: str"])
SINK = node("sink", ins=["text: str"])


def test_clean_graph() -> None:
    assert found(graph([SRC, SINK], ["src.text -> sink.text"])) == []


def test_every_code_is_documented() -> None:
    for code, info in CODES.items():
        assert info.code == code
        assert code.startswith("DW") and len(code) == 5
        assert info.severity in ("error", "warning", "info")
        assert info.name and info.summary
    assert len({info.name for info in CODES.values()}) == len(CODES)
    assert [p.name for p in PASSES] == [
        "ids",
        "ports",
        "defaults",
        "edges",
        "fan-in",
        "types",
        "missing-inputs",
        "cycles",
        "reachability",
        "unused",
        "not-empty",
        "tools",
    ]


# --------------------------------------------------------------------------- one test per code


def test_dw001_duplicate_id() -> None:
    dup = node("sink", ins=["text: str"], kind="agent")
    g = graph([SRC, SINK, dup], ["src.text -> sink.text"])
    assert found(g) == [("DW001", "sink")]
    d = only(g, "DW001")
    assert d.message == "node id 'sink' is used twice (function and agent)"
    assert d.hint == "give each node its own id"
    assert d.severity == "error"


@pytest.mark.parametrize("nid", ["a", "a.b", "debate.round2.optimist", "a-b", "_x", "0a", "A_1-b.c"])
def test_dw002_valid_ids(nid: str) -> None:
    assert found(graph([node(nid, outs=["text: str"]), SINK], [f"{nid}.text -> sink.text"])) == []


@pytest.mark.parametrize("nid", ["", "a b", ".a", "a.", "a..b", "-a", "a/b", "ü", "a:b", "a\nb", "a\n", "\n"])
def test_dw002_invalid_ids(nid: str) -> None:
    g = Graph("g", (node(nid, outs=["text: str"]), SINK), (Edge(nid, "text", "sink", "text"),))
    assert [d.code for d in validate(g)] == ["DW002"]
    d = only(g, "DW002")
    assert d.node == nid
    assert d.message == (
        f"invalid function node id {nid!r}: expected ASCII letters, digits, _ and -, in segments separated by single "
        "dots, each segment starting with a letter, digit or _"
    )


@pytest.mark.parametrize(
    ("nid", "ok"), [("input:topic", True), ("topic", False), ("input:1x", False), ("input:", False)]
)
def test_dw002_flow_input_ids(nid: str, ok: bool) -> None:
    g = Graph(
        "g",
        (node(nid, outs=["topic: str"], kind="input"), node("a", ins=["topic: str"])),
        (Edge(nid, "topic", "a", "topic"),),
    )
    assert found(g) == ([] if ok else [("DW002", nid)])


def test_dw014_duplicate_port_and_collect_not_a_list() -> None:
    twice = node("sink", ins=["text: str", "text: int"])
    g = graph([SRC, twice], ["src.text -> sink.text"])
    assert found(g) == [("DW014", "sink.text")]
    assert only(g, "DW014").message == "node 'sink' declares the input port 'text' twice"

    bad_collect = node("sink", ins=[Port("text", STR, required=False, collect=True)])
    g = graph([SRC, bad_collect], ["src.text -> sink.text"])
    assert found(g) == [("DW014", "sink.text")]
    d = only(g, "DW014")
    assert d.message == "collect input sink.text is typed str; a collect port receives a list"
    assert d.hint == "type it list[str]"


def test_dw003_unknown_node() -> None:
    g = graph([SRC], ["src.text -> snk.text"])
    assert found(g) == [("DW003", "snk")]
    d = only(g, "DW003")
    assert d.message == "connection src.text -> snk.text names the unknown target node 'snk'"
    assert d.hint == "available: 'src'"
    assert d.related == ("src",)
    g = graph([SINK, node("sink2", ins=["text: str"])], ["sorce.text -> sink.text", "sink.text -> sink2.text"])
    assert ("DW003", "sorce") in found(g)


def test_dw003_hint_names_a_close_node() -> None:
    g = graph([SRC, SINK], ["src.text -> sinc.text"])
    d = only(g, "DW003")
    assert d.hint == "did you mean 'sink'?"


def test_dw004_unknown_output() -> None:
    g = graph([SRC, SINK], ["src.txt -> sink.text"])
    assert [c for c in found(g) if c[0] != "DW013"] == [("DW004", "src.txt")]
    d = only(g, "DW004")
    assert d.message == "node 'src' has no output 'txt' (connection src.txt -> sink.text)"
    assert d.hint == "did you mean 'text'?"
    assert d.edge == Edge("src", "txt", "sink", "text")
    no_outputs = node("src")
    assert only(graph([no_outputs, SINK], ["src.text -> sink.text"]), "DW004").hint == "'src' has no outputs"


def test_dw005_unknown_input() -> None:
    g = graph([SRC, SINK], ["src.text -> sink.txet"])
    # The real input 'text' is still unconnected: which input was meant is a guess (the hint), not a fact.
    assert found(g) == [("DW005", "sink.txet"), ("DW009", "sink.text")]
    d = only(g, "DW005")
    assert d.message == "node 'sink' has no input 'txet' (connection src.text -> sink.txet)"
    assert d.hint == "did you mean 'text'?"


def test_dw006_cycle_with_its_path() -> None:
    a = node("a", ins=["seed: str", "x: str"], outs=["y: str"])
    b = node("b", ins=["x: str"], outs=["y: str"])
    g = graph([SRC, a, b], ["src.text -> a.seed", "a.y -> b.x", "b.y -> a.x"])
    assert found(g) == [("DW006", "a")]
    d = only(g, "DW006")
    assert d.message == "cycle: a -> b -> a (via a.y -> b.x, b.y -> a.x)"
    assert d.related == ("b",)
    assert d.edge == Edge("b", "y", "a", "x")


def test_dw006_self_loop() -> None:
    a = node("a", ins=["seed: str", Port("x", list_of(STR), False, collect=True)], outs=["y: str"])
    g = graph([SRC, a], ["src.text -> a.seed", "a.y -> a.x"])
    assert found(g) == [("DW006", "a")]
    assert only(g, "DW006").message == "cycle: a -> a (via a.y -> a.x)"


def test_dw006_one_diagnostic_per_strongly_connected_component() -> None:
    def mid(nid: str) -> Node:
        return node(nid, ins=[Port("x", list_of(STR), False, collect=True)], outs=["y: str"])

    nodes = [node("s", outs=["y: str"]), *(mid(n) for n in "abcde")]
    edges = [
        "s.y -> a.x",
        "a.y -> b.x",
        "b.y -> c.x",
        "c.y -> a.x",
        "b.y -> a.x",
        "c.y -> d.x",
        "d.y -> e.x",
        "e.y -> d.x",
    ]
    g = graph(nodes, edges)
    cycles = [d for d in validate(g) if d.code == "DW006"]
    assert [d.message.split(" (via")[0] for d in cycles] == ["cycle: a -> b -> a", "cycle: d -> e -> d"]


def test_dw007_type_mismatch() -> None:
    sink = node("sink", ins=["n: int"])
    g = graph([SRC, sink], ["src.text -> sink.n"])
    assert found(g) == [("DW007", "sink.n")]
    d = only(g, "DW007")
    assert d.message == "src.text (str) cannot flow into sink.n (int): str is not assignable to int"
    assert d.related == ("src",)
    assert d.location == SourceLocation("flow.py", 7)


def test_dw007_into_a_collect_port_checks_each_item() -> None:
    votes = node("tally", ins=[Port("votes", list_of(INT), True, collect=True)])
    good = node("good", outs=["v: int"])
    g = graph([SRC, good, votes], ["src.text -> tally.votes", "good.v -> tally.votes"])
    assert found(g) == [("DW007", "tally.votes")]
    assert only(g, "DW007").message == (
        "src.text (str) cannot flow into tally.votes (int (one item of collect list[int])): "
        "str is not assignable to int"
    )


def test_dw008_optional_into_required() -> None:
    maybe = node("src", outs=[Port("text", optional(STR))])
    g = graph([maybe, SINK], ["src.text -> sink.text"])
    assert found(g) == [("DW008", "sink.text")]
    d = only(g, "DW008")
    assert d.severity == "warning"
    assert (
        d.message
        == "src.text (str | None) flows into sink.text (str): str | None may be None but str does not accept None"
    )
    assert d.hint == "accept None in sink.text, or make the producer's output required"


def test_dw009_missing_required_input() -> None:
    sink = node(
        "sink",
        ins=["text: str", "style: str = 'short'", Port("extra", list_of(STR), True, collect=True), "context: str"],
    )
    g = graph([SRC, sink], ["src.text -> sink.text"])
    assert found(g) == [("DW009", "sink.context")]
    d = only(g, "DW009")
    assert d.message == "required input sink.context (str) is not connected"
    assert d.hint == "connect an output to it, or declare flow.input('context')"


def test_dw010_two_edges_into_one_port() -> None:
    other = node("other", outs=["text: str"])
    g = graph([SRC, other, SINK], ["src.text -> sink.text", "other.text -> sink.text"])
    assert found(g) == [("DW010", "sink.text")]
    d = only(g, "DW010")
    assert d.message == "input sink.text is written by 2 connections (src.text, other.text); it takes exactly one"
    assert d.related == ("src", "other")
    collect = node("sink", ins=[Port("text", list_of(STR), True, collect=True)])
    assert found(graph([SRC, other, collect], ["src.text -> sink.text", "other.text -> sink.text"])) == []


def test_dw011_unreachable_node() -> None:
    idle = node("idle", ins=["mode: str = 'x'"], outs=["text: str"])
    after = node("after", ins=["text: str"])
    g = graph([SRC, SINK, idle, after], ["src.text -> sink.text", "idle.text -> after.text"])
    assert sorted(found(g)) == [("DW011", "after"), ("DW011", "idle")]
    by_node = {d.node: d for d in validate(g)}
    assert by_node["idle"].message == (
        "node 'idle' is not reachable from any flow input or source node: "
        "none of its inputs is connected, so it would run on defaults alone"
    )
    assert by_node["after"].message == (
        "node 'after' is not reachable from any flow input or source node: "
        "it is fed only by nodes that are unreachable themselves (idle)"
    )
    assert by_node["after"].related == ("idle",)


def test_dw012_dead_end_and_dw013_unused_output() -> None:
    spare = node("spare", outs=["a: str", "b: int"])
    g = graph([SRC, SINK, spare], ["src.text -> sink.text"])
    assert found(g) == [("DW012", "spare")]
    assert only(g, "DW012").message == "nothing uses the outputs of 'spare' (a, b), and they are not flow outputs"
    two = node("src", outs=["text: str", "meta: int"])
    g = graph([two, SINK], ["src.text -> sink.text"])
    assert found(g) == [("DW013", "src.meta")]
    d = only(g, "DW013")
    assert d.severity == "info"
    assert d.message == "output src.meta (int) is not used"


def test_dw016_unused_flow_input() -> None:
    topic = node("input:topic", outs=["topic: str"], kind="input")
    g = graph([topic, SRC, SINK], ["src.text -> sink.text"])
    assert found(g) == [("DW016", "input:topic")]
    assert only(g, "DW016").message == "flow input 'topic' feeds no node"


def test_dw017_empty_flow() -> None:
    assert found(Graph("nothing")) == [("DW017", "<flow>")]
    io_only = graph(
        [node("input:q", outs=["q: str"], kind="input"), node("output:q", ins=["q: str"], kind="output")],
        ["input:q.q -> output:q.q"],
    )
    assert found(io_only) == [("DW017", "<flow>")]
    assert only(io_only, "DW017").message == "flow 'g' has no nodes"


def test_dw015_no_matching_ports_in_a_flow() -> None:
    flow = Flow("f")
    flow.input("q", str)
    flow.add_agent("a", "q -> answer")
    flow.add_agent("b", "text -> summary")
    flow.connect("a", "b")
    flow.output("summary", "b.summary")
    codes = [(d.code, d.where) for d in flow.validate() if d.severity == "error"]
    assert ("DW015", "b") in codes
    d = next(d for d in flow.validate() if d.code == "DW015")
    assert d.related == ("a",)
    assert "found no output of 'a' named like an input of 'b' (outputs: answer; inputs: text)" in d.message


def test_dw018_flow_output_needs_a_port() -> None:
    flow = Flow("f")
    flow.input("q", str)
    flow.add_agent("a", "q -> answer, score: float")
    flow.output("result", "a")
    assert [(d.code, d.where) for d in flow.validate() if d.severity == "error"] == [("DW018", "a")]
    d = next(d for d in flow.validate() if d.code == "DW018")
    assert d.hint == "flow.output('result', 'a.<output>')"


# --------------------------------------------------------------------------- no cascades

BAD_EDGES = [
    # (graph nodes, the bad edge, the one diagnostic)
    ("src.txt -> sink.text", ("DW004", "src.txt")),
    ("src.zzz -> sink.text", ("DW004", "src.zzz")),
    ("ghost.text -> sink.text", ("DW003", "ghost")),
]


@pytest.mark.parametrize(("bad", "expected"), BAD_EDGES, ids=[b for b, _ in BAD_EDGES])
def test_a_bad_edge_is_reported_once(bad: str, expected: tuple[str, str]) -> None:
    """The bad end is reported; its target is not also unconnected (DW009), unreachable (DW011),
    and its source (or what it feeds) not also a dead end (DW012)."""
    src = node("src", outs=["text: str"])
    sink = node("sink", ins=["text: str"], outs=["out: str"])
    down = node("down", ins=["out: str"])
    nodes = [sink, down] if bad.startswith("ghost") else [src, sink, down]
    g = graph(nodes, [bad, "sink.out -> down.out"])
    assert [(d.code, d.where) for d in validate(g) if d.severity != "info"] == [expected]


def test_a_bad_target_node_is_reported_once() -> None:
    src = node("src", outs=["text: str"])
    assert found(graph([src], ["src.text -> ghost.text"])) == [("DW003", "ghost")]


def test_a_type_error_does_not_cascade() -> None:
    sink = node("sink", ins=["n: int"], outs=["out: int"])
    down = node("down", ins=["out: int"])
    assert found(graph([SRC, sink, down], ["src.text -> sink.n", "sink.out -> down.out"])) == [("DW007", "sink.n")]


def test_every_problem_is_reported_at_once() -> None:
    spare = node("spare", outs=["a: str"])
    sink = node("sink", ins=["text: str", "n: int", "more: str"])
    g = graph([SRC, sink, spare, node("src", outs=["x: str"])], ["src.text -> sink.text", "src.text -> sink.n"])
    assert found(g) == [("DW001", "src"), ("DW007", "sink.n"), ("DW009", "sink.more"), ("DW012", "spare")]


def test_order_is_errors_then_warnings_then_infos() -> None:
    maybe = node("maybe", outs=[Port("text", optional(STR)), "meta: int"])
    g = graph([maybe, SINK, node("bad id")], ["maybe.text -> sink.text"])
    severities = [d.severity for d in validate(g)]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert found(g) == [("DW002", "bad id"), ("DW008", "sink.text"), ("DW013", "maybe.meta")]


def test_compile_error_carries_every_diagnostic() -> None:
    flow = Flow("broken")
    flow.input("q", str)
    flow.add_agent("a", "q -> answer: int")
    flow.add_agent("b", "answer: str, context: str -> summary")
    flow.connect("a.answer", "b.answer")
    flow.output("summary", "b.summary")
    with pytest.raises(CompileError) as info:
        flow.compile()
    err = info.value
    assert [(d.code, d.where) for d in err.errors] == [("DW007", "b.answer"), ("DW009", "b.context")]
    assert str(err).startswith("flow 'broken' does not compile: 2 errors\n")
    assert err.diagnostics == flow.validate()


def test_diagnostic_text_and_json() -> None:
    d = only(graph([SRC, SINK], ["src.txt -> sink.text"]), "DW004")
    assert str(d) == (
        "error DW004 [unknown-output] src.txt: node 'src' has no output 'txt' (connection src.txt -> sink.text)\n"
        "    hint: did you mean 'text'?"
    )
    assert d.to_dict() == {
        "code": "DW004",
        "name": "unknown-output",
        "severity": "error",
        "message": "node 'src' has no output 'txt' (connection src.txt -> sink.text)",
        "node": "src",
        "port": "txt",
        "hint": "did you mean 'text'?",
        "related": ["sink"],
        "edge": {"source": "src", "source_port": "txt", "target": "sink", "target_port": "text"},
    }


# --------------------------------------------------------------------------- properties against networkx


def _collecting(nid: str) -> Node:
    return Node(nid, "function", (Port("in", list_of(ANY), False, collect=True),), (Port("out", ANY),))


def _from_digraph(n: int, pairs: list[tuple[int, int]], sources: Iterable[int] = ()) -> Graph:
    roots = set(sources)
    nodes = tuple(
        Node(f"n{i}", "function", (), (Port("out", ANY),)) if i in roots else _collecting(f"n{i}") for i in range(n)
    )
    return Graph("random", nodes, tuple(Edge(f"n{u}", "out", f"n{v}", "in") for u, v in pairs))


def _nx(n: int, pairs: list[tuple[int, int]]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(f"n{i}" for i in range(n))
    g.add_edges_from((f"n{u}", f"n{v}") for u, v in pairs)
    return g


@settings(max_examples=400)
@given(digraphs())
def test_cycle_pass_agrees_with_networkx(dg: tuple[int, list[tuple[int, int]]]) -> None:
    n, pairs = dg
    g, reference = _from_digraph(n, pairs), _nx(n, pairs)
    cycles = check_cycles(g)
    assert bool(cycles) == (not nx.is_directed_acyclic_graph(reference))
    nontrivial = [
        frozenset(c)
        for c in nx.strongly_connected_components(reference)
        if len(c) > 1 or reference.has_edge(next(iter(c)), next(iter(c)))
    ]
    assert len(cycles) == len(nontrivial)
    covered = set()
    for d in cycles:
        assert d.code == "DW006" and d.node is not None
        path = [d.node, *d.related, d.node]
        assert d.message.startswith(f"cycle: {' -> '.join(path)} (via ")
        assert all(reference.has_edge(u, v) for u, v in itertools.pairwise(path)), path
        assert len(set(path[:-1])) == len(path) - 1  # a simple cycle
        component = next(c for c in nontrivial if d.node in c)
        assert set(path) <= component
        covered.add(component)
    assert covered == set(nontrivial)


@settings(max_examples=300)
@given(digraphs(), st.data())
def test_reachability_agrees_with_networkx(dg: tuple[int, list[tuple[int, int]]], data: st.DataObject) -> None:
    n, pairs = dg
    sources = data.draw(st.sets(st.integers(0, n - 1)))
    g, reference = _from_digraph(n, pairs, sources), _nx(n, pairs)
    reached = set()
    for s in sources:
        reached |= {f"n{s}"} | nx.descendants(reference, f"n{s}")
    unreachable = {d.node for d in check_reachability(g)}
    assert unreachable == set(reference) - reached
    dead_ends = {d.node for d in check_unused(g) if d.code == "DW012"}
    assert dead_ends == {v for v in reference if reference.out_degree(v) == 0}


# The passes answer "nothing to report" from whole-graph counts and set operations
# before looking at single edges; the properties below hold them to the rules as
# stated, edge by edge, on random and mostly broken graphs.


def _valid_edges(g: Graph) -> list[tuple[Edge, Port, Port]]:
    """Edges whose both ends exist (the first node of an id, the first port of a name)."""
    out = []
    for e in g.edges:
        if e.source in g and e.target in g:
            src, dst = g.node(e.source).output(e.source_port), g.node(e.target).input(e.target_port)
            if src is not None and dst is not None:
                out.append((e, src, dst))
    return out


@settings(max_examples=500)
@given(graphs() | wired_graphs())
def test_edge_rules_hold_edge_by_edge(g: Graph) -> None:
    found = validate(g)
    valid = _valid_edges(g)
    expected_types = Counter()
    for e, src, dst in valid:
        level = is_assignable(src.type, dst.item_type()).level
        if level != "ok":
            expected_types[("DW007" if level == "error" else "DW008", str(e))] += 1
    assert Counter((d.code, str(d.edge)) for d in found if d.code in ("DW007", "DW008")) == expected_types
    per_port = Counter((e.target, e.target_port) for e, _, dst in valid if not dst.collect)
    assert {(d.node, d.port) for d in found if d.code == "DW010"} == {k for k, n in per_port.items() if n > 1}
    reached_for = {
        (e.target, e.target_port) for e in g.edges if e.target in g and g.node(e.target).input(e.target_port)
    }
    firsts = {n.id: n for n in reversed(g.nodes)}.values()
    required = {
        (n.id, p.name) for n in firsts for p in n.inputs if n.input(p.name) is p and p.required and not p.collect
    }
    assert {(d.node, d.port) for d in found if d.code == "DW009"} == required - reached_for
    used = {(e.source, e.source_port) for e in g.edges if e.source in g and g.node(e.source).output(e.source_port)}
    unused = {(n.id, p.name) for n in firsts for p in n.outputs} - used
    for d in found:
        if d.code == "DW013":
            assert (d.node, d.port) in unused
        elif d.code in ("DW012", "DW016"):
            assert d.node is not None and {(d.node, p.name) for p in g.node(d.node).outputs} <= unused


@settings(max_examples=300)
@given(graphs() | wired_graphs(), st.randoms(use_true_random=False))
def test_diagnostics_do_not_depend_on_node_order(g: Graph, rnd: random.Random) -> None:
    # One node per id: which of two same-id nodes counts is decided by order.
    nodes = list({n.id: n for n in reversed(g.nodes)}.values())
    shuffled = list(nodes)
    rnd.shuffle(shuffled)

    def summary(order: list[Node]) -> Counter[tuple[str, str | None, str | None, str]]:
        # Where a cycle's report starts (and so its path) follows node order; its code does not.
        return Counter(
            (d.code, None, None, "") if d.code == "DW006" else (d.code, d.node, d.port, str(d.edge))
            for d in validate(Graph(g.name, tuple(order), g.edges))
        )

    assert summary(shuffled) == summary(nodes)


_ID_RULE = r"[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*"
_IO_NAME_RULE = r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*"


@settings(max_examples=500)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["input", "output", "function", "agent", "in:put", "input:input"]),
            st.text(alphabet="ab1_-.:ü\n", max_size=6) | st.sampled_from(["input:x", "output:y", "input:1", "x.y"]),
        ),
        max_size=4,
    )
)
def test_id_rule_holds_node_by_node(kinds_and_ids: list[tuple[str, str]]) -> None:
    def well_formed(kind: str, nid: str) -> bool:
        if kind in ("input", "output"):
            prefix = kind + ":"
            return nid.startswith(prefix) and re.fullmatch(_IO_NAME_RULE, nid[len(prefix) :]) is not None
        return re.fullmatch(_ID_RULE, nid) is not None

    g = Graph("ids", tuple(Node(nid, kind) for kind, nid in kinds_and_ids))
    expected = Counter(nid for kind, nid in kinds_and_ids if not well_formed(kind, nid))
    assert Counter(d.node for d in validate(g) if d.code == "DW002") == expected


LONG = 100_000


@pytest.fixture(scope="module")
def long_middle() -> list[Node]:
    """n1 .. n(LONG-2), each taking x and giving y: the body of a long chain or ring (built once)."""
    return [Node(f"n{i}", "function", (Port("x", INT),), (Port("y", INT),)) for i in range(1, LONG - 1)]


def _links() -> list[Edge]:
    return [Edge(f"n{i}", "y", f"n{i + 1}", "x") for i in range(LONG - 1)]


def test_long_chain_validates_without_recursion(long_middle: list[Node]) -> None:
    first = Node("n0", "function", (), (Port("y", INT),))
    last = Node(f"n{LONG - 1}", "function", (Port("x", INT),), ())
    g = Graph("chain", (first, *long_middle, last), tuple(_links()))
    assert validate(g) == []
    assert g.topological_order()[:3] == ["n0", "n1", "n2"]


def test_long_ring_reports_its_whole_path(long_middle: list[Node]) -> None:
    seed = Node("seed", "function", (), (Port("y", INT),))
    first = Node("n0", "function", (Port("seed", INT), Port("x", INT)), (Port("y", INT),))
    last = Node(f"n{LONG - 1}", "function", (Port("x", INT),), (Port("y", INT),))
    edges = [Edge("seed", "y", "n0", "seed"), *_links(), Edge(f"n{LONG - 1}", "y", "n0", "x")]
    g = Graph("ring", (seed, first, *long_middle, last), tuple(edges))
    diagnostics = validate(g)
    assert [(d.code, d.node) for d in diagnostics] == [("DW006", "n0")]
    assert list(diagnostics[0].related) == [f"n{i}" for i in range(1, LONG)]


def test_types_pass_uses_the_declared_types() -> None:
    lit = node("vote", outs=[Port("choice", TypeExpr("literal", values=("yes", "no")))])
    into = node("use", ins=[Port("choice", STR)])
    assert found(graph([lit, into], ["vote.choice -> use.choice"])) == []
    assert found(
        graph(
            [node("vote", outs=["choice: str"]), node("use", ins=["choice: Literal['yes', 'no']"])],
            ["vote.choice -> use.choice"],
        )
    ) == [("DW007", "use.choice")]


@settings(max_examples=500)
@given(st.lists(st.text(alphabet="aZ9_-.\né: ", max_size=5), max_size=4))
@example(["a.-b"])
@example(["a", "-b"])
@example(["a.", "b"])
@example([".a"])
@example(["a..b"])
@example(["a", ""])
@example(["a\nb"])
@example(["a-b.c_d", "9.x"])
def test_ids_checked_all_at_once_are_judged_as_one_by_one(ids: list[str]) -> None:
    from dagwright.compiler.passes import _ID, _follow_the_id_rule

    assert _follow_the_id_rule(ids) == all(_ID.fullmatch(i) is not None for i in ids)
