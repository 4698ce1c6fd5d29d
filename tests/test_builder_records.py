"""What the builder records for each declaration, and how compiling turns it into the IR: the usual
``connect("a.out", "b.in")`` is kept as a plain tuple and becomes its edge column by column, which must
give what the one-by-one resolution gives (edges, their order, their locations, diagnostics)."""

from __future__ import annotations

import gc
import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright import Flow
from dagwright.compiler import location as where
from dagwright.compiler.connections import Connection, NodeRef, PortRef
from dagwright.compiler.ir import Edge, Node, Port, SourceLocation
from dagwright.compiler.ports import function_ports
from dagwright.compiler.types import from_python


def step(x: int) -> int:
    return x + 1


def join(values: list[int]) -> int:
    return sum(values)


def here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def edges_of(flow: Flow) -> list[tuple[str, str, str, str, int | None]]:
    return [
        (e.source, e.source_port, e.target, e.target_port, e.location.line if e.location else None)
        for e in flow.to_graph().edges
        if not e.target.startswith("output:") and not e.source.startswith("input:")
    ]


def test_a_plain_connection_is_a_tuple_the_collector_stops_tracking() -> None:
    flow = Flow("plain")
    flow.add_function("a", step)
    flow.add_function("b", step)
    flow.connect("a.output", "b.x")
    line = here() - 1
    recorded = flow._connections[0]
    assert type(recorded) is tuple and recorded[:2] == ("a.output", "b.x")
    assert flow._declared.positions[recorded[2]] == SourceLocation(__file__, line)
    gc.collect()
    assert not gc.is_tracked(recorded)
    [edge] = [e for e in flow.to_graph().edges if e.target == "b"]
    assert edge == Edge("a", "output", "b", "x") and edge.location == SourceLocation(__file__, line)


def test_plain_and_special_connections_keep_their_order_and_locations() -> None:
    def build(special_every: int) -> Flow:
        flow = Flow("fan")
        flow.add_function("src", step)
        for i in range(6):
            flow.add_function(f"w{i}", step)
            flow.connect("src.output", f"w{i}.x")
        flow.add_function("join", join, collect=["values"])
        for i in range(6):
            if special_every and i % special_every == 0:
                flow.connect(PortRef(f"w{i}", "output"), "join.values")
            else:
                flow.connect(f"w{i}.output", "join.values")
        flow.input("x", int)
        flow.output("total", "join.output")
        return flow

    plain, mixed = build(0), build(2)
    assert not plain._declared.special_connections and mixed._declared.special_connections == 3
    assert isinstance(mixed._connections[6], Connection)

    def without_lines(flow: Flow) -> list[tuple[Any, ...]]:
        return [e[:4] for e in edges_of(flow)]

    assert without_lines(plain) == without_lines(mixed)
    assert [e[0] for e in edges_of(plain) if e[2] == "join"] == [f"w{i}" for i in range(6)]
    # Locations differ only where the call itself is on another line.
    lines = {e[4] for e in edges_of(mixed)}
    assert len(lines) == 3 and None not in lines
    assert plain.run(x=0).outputs == mixed.run(x=0).outputs == {"total": 12}


def test_an_endpoint_naming_a_whole_node_is_resolved_one_by_one_with_its_location() -> None:
    flow = Flow("nodes")
    flow.add_function("a", step)
    flow.add_function("b", step)
    flow.add_function("c", step)
    flow.connect("a.output", "b.x")
    flow.connect("b", "c.x")  # a node to a port: the port's name on both sides
    line = here() - 1
    assert ("b", "x", "c", "x", line) in edges_of(flow)
    problems = [d for d in flow.validate() if d.code == "DW004"]
    assert problems and problems[0].location == SourceLocation(__file__, line)


def test_a_misspelled_port_of_a_plain_connection_is_reported_at_its_line() -> None:
    flow = Flow("typo")
    flow.add_function("a", step)
    flow.add_function("b", step)
    flow.connect("a.outptu", "b.x")
    line = here() - 1
    [problem] = [d for d in flow.validate() if d.code == "DW004"]
    assert problem.location == SourceLocation(__file__, line)
    no_dot = Flow("no-dot")
    no_dot.add_function("a", step)
    no_dot.connect("nowhere", "a.x")
    line = here() - 1
    [unknown] = [d for d in no_dot.validate() if d.code == "DW003"]
    assert unknown.location == SourceLocation(__file__, line)


def test_connections_made_by_library_code_point_at_the_users_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # A helper in a file registered as internal (as a pattern factory's is) that connects and adds for its caller.
    helper = compile(
        "def wire(flow, fn):\n    flow.add_function('b', fn)\n    flow.connect('a.output', 'b.x')\n",
        "/library/internal/helper.py",
        "exec",
    )
    namespace: dict[str, Any] = {}
    exec(helper, namespace)
    monkeypatch.setattr(where, "INTERNAL_PATHS", (*where.INTERNAL_PATHS, "/library/internal/"))
    flow = Flow("helped")
    flow.add_function("a", step)
    namespace["wire"](flow, step)
    line = here() - 1
    source, target, position = flow._connections[0]
    assert (source, target, flow._declared.positions[position]) == ("a.output", "b.x", SourceLocation(__file__, line))
    assert ("a", "output", "b", "x", line) in edges_of(flow)
    assert {n.id: n.location for n in flow.to_graph().nodes}["b"] == SourceLocation(__file__, line)


def test_connections_from_one_line_share_a_position_and_others_get_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = Flow("lines")
    for i in range(50):
        flow.add_function(f"n{i}", step)
    for i in range(1, 50):
        flow.connect(f"n{i - 1}.output", f"n{i}.x")
    loop = here() - 1
    flow.connect("n0.output", "n1.x")
    single = here() - 1
    assert {c[2] for c in flow._connections[:-1]} == {0}
    assert flow._declared.positions == [SourceLocation(__file__, loop), SourceLocation(__file__, single)]
    # This file made internal after the loop ran: the same line now records the caller's caller, as it would
    # have from the start.
    monkeypatch.setattr(where, "INTERNAL_PATHS", (*where.INTERNAL_PATHS, __file__))
    for _ in range(2):
        flow.connect("n1.output", "n2.x")
    outer = flow._declared.positions[flow._connections[-1][2]]
    assert outer is not None and outer.file != __file__
    assert flow._connections[-1][2] == flow._connections[-2][2]


def test_add_function_keeps_each_nodes_own_location_and_binding() -> None:
    flow = Flow("many")
    refs = []
    lines = []
    for i in range(3):
        refs.append(flow.add_function(f"n{i}", step))
        lines.append(here() - 1)
    refs.append(flow.add_function("last", join, output="total", collect=["values"]))
    lines.append(here() - 1)
    assert refs == [NodeRef("n0"), NodeRef("n1"), NodeRef("n2"), NodeRef("last")]
    nodes = flow.to_graph().nodes
    by_id = {n.id: n for n in nodes}
    assert [by_id[r.id].location for r in refs] == [SourceLocation(__file__, line) for line in lines]
    assert by_id["last"].outputs[0].name == "total" and by_id["last"].inputs[0].collect
    assert by_id["n0"].outputs[0].name == "output"
    assert flow.binding("n1") is step and flow.binding("last") is join


def test_a_dotted_node_id_named_whole_by_a_plain_connection_still_means_the_node() -> None:
    flow = Flow("dotted")
    flow.add_function("stage.a", step)
    flow.add_function("b", step)
    flow.connect("stage.a", "b.x")  # the whole node "stage.a", not port "a" of a node "stage"
    assert ("stage.a", "x", "b", "x", here() - 1) in edges_of(flow)
    assert [d.code for d in flow.validate() if d.code in ("DW003", "DW004")] == ["DW004"]  # it has no output "x"


def test_malformed_ids_among_many_are_each_reported_once() -> None:
    flow = Flow("ids")
    for i in range(50):
        flow.add_function(f"n{i}" if i not in (7, 30) else f"bad id {i}", step)
    flow.input("x", int)
    bad = [d.node for d in flow.validate() if d.code == "DW002"]
    assert bad == ["bad id 7", "bad id 30", "output:bad id 7.output", "output:bad id 30.output"]


def test_nodes_added_in_a_loop_are_made_at_compile_time_and_leave_the_collector_nothing_to_walk() -> None:
    flow = Flow("loop")
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2_000):
        flow.add_function(f"n{i}", step)
    line = here() - 1
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # ids only: strings, which the collector does not track
    assert len(flow._declared.pending.ids) == 2_000 and not flow._declared.declared_nodes
    assert len(flow._declared.pending.kinds) == 1  # one function from one line: one kind of node
    assert "n1999" in flow  # reading the nodes makes the pending ones
    assert not flow._declared.pending.ids and len(flow._declared.declared_nodes) == 2_000
    flow.add_function("more", step)
    flow.add_function("more2", step)
    nodes = flow.to_graph().nodes
    assert [n.location for n in nodes[:2_000]] == [SourceLocation(__file__, line)] * 2_000
    assert nodes[2_000].location != nodes[2_001].location  # two lines
    assert nodes[5] == Node("n5", "function", *function_ports(step, "output"))
    assert nodes[5].inputs == (Port("x", from_python(int)),)


def test_a_loop_adding_functions_in_turn_makes_a_kind_per_line() -> None:
    flow = Flow("turns")
    for i in range(500):
        flow.add_function(f"a{i}", step)
        flow.add_function(f"b{i}", join, output="total")
    first = here() - 2
    pending = flow._declared.pending
    assert len(pending.ids) == 1_000 and len(pending.kinds) == 2 and len(pending.runs) == 1_000
    nodes = flow.to_graph().nodes
    assert [n.id for n in nodes[:4]] == ["a0", "b0", "a1", "b1"]
    assert [n.location.line if n.location else None for n in nodes[:4]] == [first, first + 1] * 2
    assert nodes[999] == Node("b499", "function", *function_ports(join, "total"))
    assert flow.binding("a7") is step and flow.binding("b7") is join


def test_kinds_kept_waiting_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagwright.compiler import builder

    monkeypatch.setattr(builder, "MAX_KINDS", 5)

    def made(i: int) -> Any:
        def fn(x: int) -> int:
            return x + i

        return fn

    functions = [made(i) for i in range(23)]
    flow = Flow("bounded")
    for i, fn in enumerate(functions):
        flow.add_function(f"n{i}", fn)  # a new function each time: a new kind each time
        assert len(flow._declared.pending.kinds) <= 5
    assert len(flow._declared.declared_nodes) == 20  # made, 5 at a time
    assert [flow.binding(f"n{i}") for i in range(23)] == functions
    assert [n.id for n in flow.to_graph().nodes if n.kind == "function"] == [f"n{i}" for i in range(23)]


Op = tuple[str, int, int]


def _apply(flow: Flow, ops: list[Op], lines: dict[str, int]) -> list[tuple[Any, ...]]:
    """Run ``ops`` on ``flow``; return the nodes expected, declared one by one: (id, kind, ports, group, line)."""
    fns = (step, join, step_two)
    expected: list[tuple[Any, ...]] = []

    def port_names(fn: Any, output: str, collect: bool) -> tuple[Any, ...]:
        ins, outs, _ = function_ports(fn, output)
        return tuple((p.name, p.collect or (collect and p.name == "values")) for p in ins), tuple(p.name for p in outs)

    def record(node_id: str, kind: str, ports: tuple[Any, ...], where: str) -> None:
        expected.append((node_id, kind, ports, flow._group, lines[where]))

    for op, a, b in ops:
        node_id = f"n{b}"  # ids repeat: a duplicate is reported, and its first node keeps the binding
        if op == "loop":  # the usual loop: one line, one function
            for i in range(a + 1):
                flow.add_function(f"{node_id}_{i}", fns[b % 3])
                record(f"{node_id}_{i}", "function", port_names(fns[b % 3], "output", False), "loop")
        elif op == "pair":  # two functions from two lines, in turn
            for i in range(a + 1):
                flow.add_function(f"{node_id}_{i}a", fns[b % 3])
                record(f"{node_id}_{i}a", "function", port_names(fns[b % 3], "output", False), "pair")
                flow.add_function(f"{node_id}_{i}b", fns[(b + 1) % 3], output="out")
                record(f"{node_id}_{i}b", "function", port_names(fns[(b + 1) % 3], "out", False), "pair b")
        elif op == "turns":  # one line, a function that changes
            for i in range(a + 1):
                flow.add_function(f"{node_id}_{i}t", fns[(b + i) % 3])
                record(f"{node_id}_{i}t", "function", port_names(fns[(b + i) % 3], "output", False), "turns")
        elif op == "other":  # another line, another output name
            flow.add_function(node_id, fns[a % 3], output="out")
            record(node_id, "function", port_names(fns[a % 3], "out", False), "other")
        elif op == "collect":
            flow.add_function(node_id, join, collect=["values"])
            record(node_id, "function", port_names(join, "output", True), "collect")
        elif op == "node":  # a ready-made node between the others
            flow.add_node(Node(node_id, "gather", (Port("items"),), (Port("out"),)))
            record(node_id, "gather", ((("items", False),), ("out",)), "node")
        elif op == "group":
            with flow.group(f"g{a}"):
                flow.add_function(node_id, step)
                record(node_id, "function", port_names(step, "output", False), "group")
        else:  # read the flow mid-way
            assert (node_id in flow) == any(e[0] == node_id for e in expected)
    return expected


def step_two(x: int, y: int = 2) -> int:
    return x + y


def _lines() -> dict[str, int]:
    source = inspect.getsource(_apply).splitlines()
    start = _apply.__code__.co_firstlineno
    marks = {
        "loop": 'flow.add_function(f"{node_id}_{i}", fns',
        "pair": 'flow.add_function(f"{node_id}_{i}a"',
        "pair b": 'flow.add_function(f"{node_id}_{i}b"',
        "turns": 'flow.add_function(f"{node_id}_{i}t"',
        "other": 'flow.add_function(node_id, fns[a % 3], output="out")',
        "collect": 'collect=["values"])',
        "node": "flow.add_node(",
        "group": "flow.add_function(node_id, step)",
    }
    return {key: start + next(i for i, text in enumerate(source) if mark in text) for key, mark in marks.items()}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["loop", "loop", "pair", "turns", "other", "collect", "node", "group", "contains"]),
            st.integers(0, 12),
            st.integers(0, 6),
        ),
        max_size=12,
    )
)
def test_nodes_made_at_compile_time_equal_those_declared_one_by_one(ops: list[Op]) -> None:
    flow = Flow("ops")
    expected = _apply(flow, ops, _lines())
    graph = flow.to_graph()
    nodes = [n for n in graph.nodes if n.kind not in ("input", "output")]
    seen = [
        (
            n.id,
            n.kind,
            (tuple((p.name, p.collect) for p in n.inputs), tuple(p.name for p in n.outputs)),
            n.group,
            n.location.line if n.location else None,
        )
        for n in nodes
    ]
    assert seen == [(i, k, ports, g, line) for i, k, ports, g, line in expected]
    assert all(n.location is None or n.location.file == __file__ for n in nodes)
    kinds: dict[str, set[str]] = {}
    for node_id, kind, *_ in expected:
        kinds.setdefault(node_id, set()).add(kind)
    for node_id, kind_set in kinds.items():
        assert (flow._bindings.get(node_id) is None) == (kind_set == {"gather"})
    ids = [e[0] for e in expected]
    duplicates = sorted(
        d.node for d in flow.validate() if d.code == "DW001" and not (d.node or "").startswith("output:")
    )
    assert duplicates == sorted(i for i in set(ids) for _ in range(ids.count(i) - 1))
    # The same flow declared again compiles to an equal graph (nodes compare without their locations).
    again = Flow("ops")
    _apply(again, ops, _lines())
    assert again.to_graph() == graph


def other_step(x: int) -> int:
    return x - 1


def test_what_a_node_runs_is_that_of_the_first_node_of_its_id_whenever_it_is_read() -> None:
    flow = Flow("bindings")
    for i in range(20):
        flow.add_function(f"n{i}", step)
    flow.validate()  # makes the pending nodes; their bindings wait
    assert flow._declared.unbound
    flow.add_function("n3", other_step)  # a duplicate id: the first node's function stays
    node = flow.to_graph().node("n3")
    flow.add_node(node, other_step)
    assert flow.binding("n3") is step and flow.binding("n19") is step
    assert not flow._declared.unbound
    flow.add_function("late", other_step)
    assert flow.binding("late") is other_step


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["a.x", "a.b.y", ".z", "w", "n1.output", ""]), min_size=1, max_size=12), st.data())
def test_endpoints_split_once_per_distinct_object_split_as_each_would(texts: list[str], data: st.DataObject) -> None:
    from dagwright.compiler.connections import _split

    pool = {t: "".join(t) for t in texts}  # one object per text, repeated wherever the text repeats
    ends = [pool[t] if data.draw(st.booleans()) else "".join([t, ""]) for t in texts]
    ends[-1] = ends[0] if data.draw(st.booleans()) else ends[-1]
    parts = [e.rpartition(".") for e in ends]
    if all(node for node, _, _ in parts):
        assert _split(ends) == ([node for node, _, _ in parts], [port for _, _, port in parts])
    else:
        assert _split(ends) is None  # an end without a node part
