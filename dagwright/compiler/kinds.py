"""Coordination node kinds, defined once: their ports, their config keys and the defaults of those keys.

Patterns make these nodes with the ``*_node`` constructors below; the executors in
:mod:`dagwright.nodes.coordination` read a node's settings back with the matching
``*Settings.of(node)``. One definition serves both, so a config key or a default
cannot drift between the side that writes it and the side that reads it.

* ``vote``: ballots (``<voter>.decision``, ``<voter>.confidence``) aggregated under a
  rule and a confidence threshold;
* ``route``: the request's fields sent to the destination an agent chose
  (``<destination>.<field>`` outputs);
* ``assign``: a supervisor's subtasks handed to workers (one output per worker);
* ``gate``: its values passed on only when ``condition`` has the expected value;
* ``select``: the first or last value produced into the collect input ``values``;
* ``gather``: the collect input ``values`` as one list output;
* ``map``: a checked sub-graph run once per item of a list input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dagwright.compiler.ir import Graph, Node, Port, freeze_json, thaw_json
from dagwright.compiler.types import ANY, BOOL, FLOAT, STR, TypeExpr, list_of

__all__ = [
    "ALLOCATIONS",
    "CHEAP_KINDS",
    "VOTE_RULES",
    "AssignSettings",
    "GateSettings",
    "MapSettings",
    "RouteSettings",
    "SelectSettings",
    "VoteSettings",
    "assign_node",
    "ballot_ports",
    "gate_node",
    "gather_node",
    "map_node",
    "map_step",
    "route_node",
    "route_port",
    "select_node",
    "vote_node",
]

VOTE_RULES = ("majority_vote", "weighted_vote", "unanimous")
"""How a ``vote`` node decides: more than half the votes, more than half the weight, or all alike."""
ALLOCATIONS = ("automatic", "round_robin", "all")
"""How an ``assign`` node shares subtasks: as the supervisor says, in turn, or every subtask to every worker."""
CHEAP_KINDS = frozenset({"vote", "route", "assign", "gate", "select", "gather"})
"""Kinds whose executors finish at once, waiting on nothing (a back end may run several back to back)."""

Pick = Literal["first", "last"]


# --------------------------------------------------------------------------- vote


def ballot_ports(voter: str) -> tuple[str, str]:
    """The input ports of one voter's ballot on a ``vote`` node: its decision and its confidence."""
    return f"{voter}.decision", f"{voter}.confidence"


@dataclass(frozen=True)
class VoteSettings:
    voters: tuple[str, ...]
    rule: str = "majority_vote"
    threshold: float = 0.0
    weights: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, node: Node) -> VoteSettings:
        config = node.config
        weights = {str(k): float(v) for k, v in dict(config.get("weights", {})).items()}
        return cls(
            tuple(str(v) for v in config.get("voters", ())),
            str(config.get("rule", cls.rule)),
            float(config.get("threshold", cls.threshold)),
            weights,
        )


def vote_node(node_id: str, inputs: Iterable[Port], decision_type: TypeExpr, settings: VoteSettings) -> Node:
    """A ``vote`` node over the ballots ``inputs`` (see :func:`ballot_ports`)."""
    config: dict[str, Any] = {"voters": list(settings.voters), "rule": settings.rule, "threshold": settings.threshold}
    if settings.weights:
        config["weights"] = dict(settings.weights)
    outputs = (
        Port("decision", decision_type, description="The winning decision"),
        Port("confidence", FLOAT, description="Mean confidence of the winning voters"),
        Port("agreement", FLOAT, description="The winner's share of the votes (or weight)"),
        Port("votes", list_of(TypeExpr("dict", (STR, ANY))), description="Every ballot"),
        Port("consensus_reached", BOOL),
        Port("reason", STR, description="Why consensus was or was not reached"),
    )
    return Node(node_id, "vote", tuple(inputs), outputs, freeze_json(config))


# --------------------------------------------------------------------------- route


def route_port(destination: str, field_name: str) -> str:
    """The output of a ``route`` node that carries ``field_name`` to ``destination``."""
    return f"{destination}.{field_name}"


@dataclass(frozen=True)
class RouteSettings:
    routes: tuple[str, ...]
    fields: tuple[str, ...]

    @classmethod
    def of(cls, node: Node) -> RouteSettings:
        return cls(
            tuple(str(r) for r in node.config.get("routes", ())), tuple(str(f) for f in node.config.get("fields", ()))
        )


def route_node(
    node_id: str, route_type: TypeExpr, fields: Iterable[Port], outputs: Iterable[Port], routes: Iterable[str]
) -> Node:
    """A ``route`` node: input ``route`` names a destination; the request's ``fields`` go to that one's outputs."""
    field_ports = tuple(fields)
    config = {"routes": list(routes), "fields": [p.name for p in field_ports]}
    return Node(node_id, "route", (Port("route", route_type), *field_ports), tuple(outputs), freeze_json(config))


# --------------------------------------------------------------------------- assign


@dataclass(frozen=True)
class AssignSettings:
    workers: tuple[str, ...]
    allocation: str = "automatic"

    @classmethod
    def of(cls, node: Node) -> AssignSettings:
        return cls(
            tuple(str(w) for w in node.config.get("workers", ())),
            str(node.config.get("allocation", cls.allocation)),
        )


def assign_node(node_id: str, settings: AssignSettings, *, feedback: bool = False) -> Node:
    """An ``assign`` node: ``subtasks`` in (with ``feedback`` for a revision round), one text per worker out."""
    subtasks = list_of(ANY if settings.allocation == "automatic" else STR)
    inputs = [Port("subtasks", subtasks)]
    if feedback:
        inputs.append(Port("feedback", STR))
    config = {"workers": list(settings.workers), "allocation": settings.allocation}
    outputs = tuple(Port(w, STR) for w in settings.workers)
    return Node(node_id, "assign", tuple(inputs), outputs, freeze_json(config))


# --------------------------------------------------------------------------- gate


@dataclass(frozen=True)
class GateSettings:
    when: bool = True

    @classmethod
    def of(cls, node: Node) -> GateSettings:
        return cls(bool(node.config.get("when", cls.when)))


def gate_node(node_id: str, passes: Iterable[Port], settings: GateSettings) -> Node:
    """A ``gate`` node: ``passes`` go through when input ``condition`` equals ``settings.when``."""
    ports = tuple(passes)
    return Node(node_id, "gate", (Port("condition", BOOL), *ports), ports, freeze_json({"when": settings.when}))


# --------------------------------------------------------------------------- select / gather


@dataclass(frozen=True)
class SelectSettings:
    pick: Pick = "last"

    @classmethod
    def of(cls, node: Node) -> SelectSettings:
        return cls("last" if node.config.get("pick", cls.pick) == "last" else "first")


def select_node(node_id: str, value_type: TypeExpr, settings: SelectSettings, *, description: str = "") -> Node:
    """A ``select`` node: the first or last of the values produced into its collect input ``values``."""
    return Node(
        node_id,
        "select",
        (Port("values", list_of(value_type), required=False, collect=True),),
        (Port("value", value_type, description=description),),
        freeze_json({"pick": settings.pick}),
    )


def gather_node(node_id: str, item_type: TypeExpr, *, description: str = "") -> Node:
    """A ``gather`` node: the values produced into its collect input ``values``, as one list."""
    return Node(
        node_id,
        "gather",
        (Port("values", list_of(item_type), required=False, collect=True),),
        (Port("values", list_of(item_type), description=description),),
    )


# --------------------------------------------------------------------------- map


@dataclass(frozen=True)
class MapSettings:
    over: str
    concurrency: int = 4

    @classmethod
    def of(cls, node: Node) -> MapSettings:
        return cls(str(node.config["over"]), int(node.config.get("concurrency", cls.concurrency)))


def map_step(node: Node) -> Graph:
    """The checked sub-graph a ``map`` node runs per item (kept in its config)."""
    return Graph.from_dict(thaw_json(node.config["graph"]))


def map_node(node_id: str, inputs: Iterable[Port], outputs: Iterable[Port], step: Graph, settings: MapSettings) -> Node:
    """A ``map`` node running ``step`` once per item of its list input ``settings.over``."""
    config = {"over": settings.over, "concurrency": settings.concurrency, "graph": step.to_dict(locations=False)}
    return Node(node_id, "map", tuple(inputs), tuple(outputs), freeze_json(config))
