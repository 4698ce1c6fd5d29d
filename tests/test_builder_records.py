"""What the builder records for each declaration, and how compiling turns it into the IR: the usual
``connect("a.out", "b.in")`` is kept as a plain tuple and becomes its edge column by column, which must
give what the one-by-one resolution gives (edges, their order, their locations, diagnostics)."""

from __future__ import annotations

import gc
import inspect
from typing import Any

import pytest

from dagwright import Flow
from dagwright.compiler import location as where
from dagwright.compiler.connections import Connection, NodeRef, PortRef
from dagwright.compiler.ir import Edge, SourceLocation


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
    assert type(recorded) is tuple and recorded == ("a.output", "b.x", __file__, line)
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
    assert flow._connections[0] == ("a.output", "b.x", __file__, line)
    assert ("a", "output", "b", "x", line) in edges_of(flow)
    assert {n.id: n.location for n in flow.to_graph().nodes}["b"] == SourceLocation(__file__, line)


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
