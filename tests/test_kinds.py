"""Coordination node kinds: what a pattern writes into a node is what the executor reads back."""

from __future__ import annotations

import pytest

from dagwright.compiler import kinds
from dagwright.compiler.ir import Graph, Node, Port
from dagwright.compiler.types import ANY, BOOL, FLOAT, STR, list_of


def _through_json(node: Node) -> Node:
    """The node as a graph loaded from JSON holds it."""
    return Graph.from_json(Graph("g", (node,)).to_json()).nodes[0]


def test_vote_settings_round_trip_through_the_ir() -> None:
    settings = kinds.VoteSettings(("a", "b"), "weighted_vote", 0.75, {"a": 2.0, "b": 0.5})
    inputs = [
        Port(name, STR if name.endswith("decision") else FLOAT) for v in ("a", "b") for name in kinds.ballot_ports(v)
    ]
    node = kinds.vote_node("vote", inputs, STR, settings)
    assert kinds.VoteSettings.of(_through_json(node)) == settings
    assert [p.name for p in node.outputs] == [
        "decision",
        "confidence",
        "agreement",
        "votes",
        "consensus_reached",
        "reason",
    ]


def test_route_assign_gate_select_and_map_settings_round_trip() -> None:
    route = kinds.route_node(
        "handoff", STR, [Port("text", STR)], [Port(kinds.route_port("billing", "text"), STR)], ["billing", "tech"]
    )
    assert kinds.RouteSettings.of(_through_json(route)) == kinds.RouteSettings(("billing", "tech"), ("text",))
    assign = kinds.AssignSettings(("writer", "editor"), "round_robin")
    assert kinds.AssignSettings.of(_through_json(kinds.assign_node("assign", assign, feedback=True))) == assign
    gate = kinds.gate_node("gate", [Port("task", STR)], kinds.GateSettings(when=False))
    assert kinds.GateSettings.of(_through_json(gate)) == kinds.GateSettings(False)
    assert [p.name for p in gate.inputs] == ["condition", "task"]
    for pick in ("first", "last"):
        select = kinds.select_node("pick", BOOL, kinds.SelectSettings(pick))
        assert kinds.SelectSettings.of(_through_json(select)).pick == pick
    step = Graph("step", ())
    mapped = kinds.map_node(
        "map", [Port("item", list_of(STR))], [Port("result", list_of(STR))], step, kinds.MapSettings("item", 3)
    )
    assert kinds.MapSettings.of(_through_json(mapped)) == kinds.MapSettings("item", 3)
    assert kinds.map_step(_through_json(mapped)).content_hash == step.content_hash


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (kinds.VoteSettings.of, kinds.VoteSettings((), "majority_vote", 0.0, {})),
        (kinds.AssignSettings.of, kinds.AssignSettings((), "automatic")),
        (kinds.GateSettings.of, kinds.GateSettings(True)),
        (kinds.SelectSettings.of, kinds.SelectSettings("last")),
        (kinds.RouteSettings.of, kinds.RouteSettings((), ())),
    ],
)
def test_a_node_without_config_reads_the_documented_defaults(read: object, expected: object) -> None:
    node = Node("n", "any", (), (Port("x", ANY),))
    assert read(node) == expected  # type: ignore[operator]


def test_gather_collects_into_one_list_port() -> None:
    node = kinds.gather_node("trail", STR, description="every review")
    assert node.inputs[0].collect and node.inputs[0].type == list_of(STR)
    assert node.outputs[0].type == list_of(STR)
