"""Consensus: agents decide in parallel, a vote node aggregates.

Each agent needs a ``decision`` output (and may have ``confidence: float``). The
vote node (id ``vote``) applies the rule:

* ``majority_vote``: the decision with the most votes; consensus needs more than
  half of the votes;
* ``weighted_vote``: as majority, each vote counting its agent's weight (given for
  every agent, each >= 0), or without weights its agent's confidence;
* ``unanimous``: consensus only when every agent decides the same.

Consensus also needs the mean confidence of the winning voters to reach
``confidence_threshold`` (an agent without a confidence output counts as 1.0).
Decisions are compared trimmed and case-insensitively. Ties: the higher summed
confidence, then the agent listed first. Outputs: ``decision``, ``confidence``,
``agreement`` (the winner's share), ``votes``, ``consensus_reached``, ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.ir import Port
from dagwright.compiler.kinds import VOTE_RULES, VoteSettings, ballot_ports, vote_node
from dagwright.compiler.signature import FieldSpec
from dagwright.compiler.types import ANY, FLOAT, TypeExpr, bounded, is_assignable, union
from dagwright.flow import Flow, PortRef
from dagwright.patterns._members import AgentFactory, Member, add_members, declare_member_inputs

__all__ = ["RULES", "VOTER_SIGNATURE", "consensus"]

RULES = VOTE_RULES
UNIT = bounded(FLOAT, 0, 1)
VOTER_SIGNATURE = "question: str -> decision: str, confidence: float[0, 1], rationale: str"


def consensus(
    agents: Sequence[object],
    decision_criteria: str = "majority_vote",
    confidence_threshold: float = 0.8,
    weights: Mapping[str, float] | None = None,
    *,
    name: str = "consensus",
    defaults: Mapping[str, Any] | None = None,
    factory: AgentFactory | None = None,
) -> Flow:
    """Agents vote in parallel; see the module docstring for the rules."""
    flow = Flow(name)
    for message in _check_options(decision_criteria, confidence_threshold):
        flow.report(dg.make("DW206", message))
    with flow.group(name):
        members = add_members(flow, list(agents), VOTER_SIGNATURE, defaults, "consensus", factory)
        if len(members) < 2:
            flow.report(
                dg.make("DW203", f"a consensus needs at least two agents; got {len(members)}", hint="add agents")
            )
        _check_weights(flow, [m.name for m in members], decision_criteria, weights)
        vote_inputs, decision_types, shared_inputs, voters = _add_voters(flow, members)
        threshold = float(confidence_threshold) if isinstance(confidence_threshold, (int, float)) else 0.0
        usable_weights = {k: float(v) for k, v in (weights or {}).items() if isinstance(v, (int, float))}
        settings = VoteSettings(tuple(voters), decision_criteria, threshold, usable_weights)
        vote = vote_node("vote", vote_inputs, union(decision_types) if decision_types else ANY, settings)
        flow.add_node(vote)
    declare_member_inputs(flow, sorted(shared_inputs, key=lambda f: f.name))
    for port in vote.outputs:
        flow.output(port.name, PortRef("vote", port.name))
    return flow


def _check_weights(flow: Flow, names: list[str], rule: str, weights: Mapping[str, float] | None) -> None:
    if weights is not None:
        if rule != "weighted_vote":
            flow.report(dg.make("DW206", f"weights are used only by 'weighted_vote', not {rule!r}"))
        for key, value in weights.items():
            if key not in names:
                flow.report(dg.make("DW206", f"weights name {key!r}, which is not an agent ({', '.join(names)})"))
            elif not isinstance(value, (int, float)) or value < 0:
                flow.report(dg.make("DW206", f"the weight of {key!r} must be a number >= 0, got {value!r}"))
    if rule == "weighted_vote" and weights:  # without weights, votes weigh their voters' confidence
        missing = [n for n in names if n not in weights]
        if missing:
            flow.report(
                dg.make(
                    "DW206",
                    f"weighted_vote needs a weight for every agent; missing: {', '.join(missing)}",
                    hint="weights={" + ", ".join(f"{n!r}: 1.0" for n in missing) + "}",
                )
            )


def _add_voters(
    flow: Flow, members: list[Member]
) -> tuple[list[Port], list[TypeExpr], list[FieldSpec | Port], list[str]]:
    """Add each member and connect its ballot to the vote node; returns the vote's inputs, the decisions'
    types, the members' inputs and the voters' names."""
    vote_inputs: list[Port] = []
    decision_types: list[TypeExpr] = []
    shared_inputs: list[FieldSpec | Port] = []
    voters: list[str] = []
    for m in members:
        if m.flow is not None:
            flow.add_flow(m.name, m.flow)
            ins, outs = flow._virtual_ports(m.name) or ([], [])
            out_types = {p.name: p.type for p in outs}
            shared_inputs.extend(ins)
        else:
            assert m.agent is not None
            flow.add_agent(m.name, m.agent)
            out_types = {f.name: f.type for f in m.agent.signature.outputs}
            shared_inputs.extend(m.agent.signature.inputs)
        if "decision" not in out_types:
            flow.report(
                dg.make(
                    "DW204",
                    f"consensus agent {m.name!r} has no 'decision' output (outputs: {', '.join(out_types)})",
                    node=m.name,
                    hint=f"use a signature like {VOTER_SIGNATURE!r}",
                )
            )
            continue
        decision, confidence = ballot_ports(m.name)
        voters.append(m.name)
        decision_types.append(out_types["decision"])
        vote_inputs.append(Port(decision, out_types["decision"], required=False))
        flow.connect(PortRef(m.name, "decision"), PortRef("vote", decision))
        if "confidence" in out_types:
            if is_assignable(out_types["confidence"], FLOAT).level == "error":
                flow.report(
                    dg.make(
                        "DW204",
                        f"consensus agent {m.name!r}: confidence is {out_types['confidence']}, not a number",
                        node=m.name,
                    )
                )
            # A confidence is a share: 1.5 would outvote sure voters and pass any threshold. An agent whose
            # confidence has no bounds gets DW020 at compile time; its out-of-range value fails the vote.
            vote_inputs.append(Port(confidence, UNIT, required=False))
            flow.connect(PortRef(m.name, "confidence"), PortRef("vote", confidence))
    return vote_inputs, decision_types, shared_inputs, voters


def _check_options(rule: str, threshold: object) -> list[str]:
    problems = []
    if rule not in RULES:
        problems.append(f"decision_criteria {rule!r} is not one of {', '.join(RULES)}")
    if not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
        problems.append(f"confidence_threshold must be between 0 and 1, got {threshold!r}")
    return problems
