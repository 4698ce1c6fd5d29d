"""The graph's lookup index (positions and port numbers) against a plain dict-based reference, on random graphs; and
the edge columns the compiler hands it against those read off the edges."""

from __future__ import annotations

import pytest
from function_flows import binary, source, unary
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs, wired_graphs

from dagwright import Flow
from dagwright.compiler.builder import _graph as builder_graph
from dagwright.compiler.connections import resolve_connections
from dagwright.compiler.flow_io import bind_inputs, bind_outputs
from dagwright.compiler.index import EdgeColumns, Endpoints, PortTable
from dagwright.compiler.ir import EMPTY, Edge, Graph, Node, Port
from dagwright.compiler.passes import validate


@st.composite
def sharing_graphs(draw: st.DrawFn) -> Graph:
    """A random graph plus copies of its nodes that share their tuples of ports (as the nodes ``add_function``
    adds from one line do), some under an id already taken, and edges between the ports of them all."""
    g = draw(graphs() | wired_graphs())
    nodes = list(g.nodes)
    for node in g.nodes:
        for k in range(draw(st.integers(0, 3))):
            nid = node.id if draw(st.booleans()) and k == 0 else f"{node.id}~{k}"
            nodes.append(Node(nid, node.kind, node.inputs, node.outputs, node.config, node.group, node.location))
    nodes = draw(st.permutations(nodes))
    ins = [(n.id, p.name) for n in nodes for p in n.inputs] + [("ghost", "x")]
    outs = [(n.id, p.name) for n in nodes for p in n.outputs] + [("ghost", "y")]
    pairs = draw(st.lists(st.tuples(st.sampled_from(outs), st.sampled_from(ins)), max_size=3 * len(nodes) + 1))
    edges = list(g.edges) + [Edge(s, sp, t, tp) for (s, sp), (t, tp) in pairs]
    return Graph(g.name, tuple(nodes), tuple(draw(st.permutations(edges))), g.metadata)


any_graphs = graphs() | wired_graphs() | sharing_graphs()


def _reference_ports(unique: list[Node], side: str) -> dict[tuple[str, str], Port]:
    ports: dict[tuple[str, str], Port] = {}
    for node in unique:
        for port in getattr(node, side):
            ports.setdefault((node.id, port.name), port)
    return ports


def _check_table(table: PortTable, unique: list[Node], side: str) -> dict[tuple[str, str], Port]:
    reference = _reference_ports(unique, side)
    assert table.ports == [p for n in unique for p in getattr(n, side)]
    assert table.single == all(len(getattr(n, side)) <= 1 for n in unique)
    assert table.named == len(reference)
    assert table.duplicated == any(len({p.name for p in getattr(n, side)}) < len(getattr(n, side)) for n in unique)
    numbers = list(table.numbers)
    assert len(numbers) == len(set(numbers)) == len(table.ports)
    for number, port in zip(numbers, table.ports, strict=True):
        assert table.port(number) is port
        owner = table.owner(number)
        assert port in getattr(owner, side)
        assert table.key(number) == (owner.id, port.name)
        assert table.findable(number) == (reference[owner.id, port.name] is port)
    assert table.where(lambda p: p.required) == [n for n, p in zip(numbers, table.ports, strict=True) if p.required]
    assert table.where(lambda p: p.collect) == [n for n, p in zip(numbers, table.ports, strict=True) if p.collect]
    assert table.any(lambda p: p.collect) == any(p.collect for p in table.ports)
    names = ("x", "y", "in", "out", "text", "nope")
    for position, node in enumerate(unique):
        for name in names:
            number = table.number(position, name)
            expected = reference.get((node.id, name))
            assert (None if number is None else table.port(number)) is expected
            if number is not None:
                assert table.owner(number) is node
    assert table.number(None, "x") is None
    # Many ends at once: the same numbers, or KeyError when one is missing.
    ends = [(p, name) for p in range(len(unique)) for name in names]
    singles = [table.number(p, name) for p, name in ends]
    found = [(p, name) for (p, name), n in zip(ends, singles, strict=True) if n is not None]
    assert table.find([p for p, _ in found], [name for _, name in found]) == [n for n in singles if n is not None]
    if len(found) < len(ends):
        with pytest.raises(KeyError):
            table.find([p for p, _ in ends], [name for _, name in ends])
    return reference


@settings(max_examples=400)
@given(any_graphs)
def test_positions_and_port_numbers_agree_with_dicts_keyed_by_node_and_port(g: Graph) -> None:
    by_id: dict[str, Node] = {}
    for node in g.nodes:
        by_id.setdefault(node.id, node)
    unique = list(by_id.values())
    ends = Endpoints(unique, {nid: i for i, nid in enumerate(by_id)}, g.edges)
    assert ends.nodes == unique
    assert ends.position == {nid: i for i, nid in enumerate(by_id)}
    in_ports = _check_table(ends.ins, unique, "inputs")
    out_ports = _check_table(ends.outs, unique, "outputs")

    valid = [e for e in g.edges if (e.source, e.source_port) in out_ports and (e.target, e.target_port) in in_ports]
    assert list(ends.valid) == valid
    assert [id(p) for p in ends.valid_sources] == [id(out_ports[e.source, e.source_port]) for e in valid]
    assert [id(p) for p in ends.valid_targets] == [id(in_ports[e.target, e.target_port]) for e in valid]
    assert ends.valid_source_positions == [ends.position[e.source] for e in valid]
    assert ends.valid_target_positions == [ends.position[e.target] for e in valid]
    assert [ends.ins.key(n) for n in ends.valid_target_numbers] == [(e.target, e.target_port) for e in valid]
    assert ends.distinct_targets == set(ends.valid_target_numbers)

    attempted_in = {(e.target, e.target_port) for e in g.edges if (e.target, e.target_port) in in_ports}
    attempted_out = {(e.source, e.source_port) for e in g.edges if (e.source, e.source_port) in out_ports}
    assert {ends.ins.key(n) for n in ends.attempted_in} == attempted_in
    assert len(ends.attempted_in) == len(attempted_in)
    assert {ends.outs.key(n) for n in ends.attempted_out} == attempted_out
    assert len(ends.attempted_out) == len(attempted_out)

    missing = [k for k, p in in_ports.items() if p.required and not p.collect and k not in attempted_in]
    assert [ends.ins.key(n) for n in ends.missing_inputs] == missing

    order = {nid: i for i, nid in enumerate(by_id)}
    assert g._index.forward == all(order[e.source] < order[e.target] for e in valid)


@st.composite
def string_wired_flows(draw: st.DrawFn) -> Flow:
    """A flow of function nodes wired by ``connect("node.port", "node.port")`` strings (resolved column by column),
    some naming a node or port that does not exist, with flow inputs and outputs, and at times a sub-flow or a
    node id holding a dot (resolved connection by connection)."""
    flow = Flow("strings")
    count = draw(st.integers(1, 6))
    dotted = draw(st.integers(0, 12)) == 0
    ids = [f"n.{i}" if dotted and i == 0 else f"n{i}" for i in range(count)]
    for i, node_id in enumerate(ids):
        shape = draw(st.sampled_from(["source", "unary", "binary"]))
        flow.add_function(node_id, source(i) if shape == "source" else unary(i) if shape == "unary" else binary(i))
    nodes = [*ids, "ghost"]
    for _ in range(draw(st.integers(0, 2 * count))):
        source_end = f"{draw(st.sampled_from(nodes))}.{draw(st.sampled_from(['output', 'out']))}"
        target_end = f"{draw(st.sampled_from(nodes))}.{draw(st.sampled_from(['x', 'a', 'b', 'y']))}"
        flow.connect(source_end, target_end)
    if draw(st.booleans()):
        flow.input("seed", int, to=[f"{draw(st.sampled_from(ids))}.x"])
    if draw(st.booleans()):
        flow.output("result", f"{draw(st.sampled_from(ids))}.output")
    if draw(st.integers(0, 8)) == 0:
        inner = Flow("inner")
        inner.add_function("step", unary(0))
        flow.add_flow("sub", inner)
    return flow


@settings(max_examples=300)
@given(string_wired_flows())
def test_columns_the_compiler_hands_over_are_those_of_the_edges(flow: Flow) -> None:
    decl = flow._declared
    edges, columns = resolve_connections(decl, [])
    if columns is not None:
        assert columns == EdgeColumns.of(edges)
    input_nodes, input_edges = bind_inputs(decl, edges)
    output_nodes, output_edges = bind_outputs(decl, edges, [])
    nodes = (*input_nodes, *decl.nodes, *output_nodes)
    graph = builder_graph(flow.name, nodes, (input_edges, edges, output_edges), columns, EMPTY)
    assert graph.edges == (*input_edges, *edges, *output_edges)
    handed = graph._index._columns
    if columns is not None:
        assert handed == EdgeColumns.of(graph.edges)
    # Checking the graph from the columns finds what checking it from its edges finds.
    assert validate(graph) == validate(Graph(graph.name, graph.nodes, graph.edges, graph.metadata))
