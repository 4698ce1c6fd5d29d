"""Coordination node kinds: the steps patterns expand into, besides agents and functions.

Each executor reads its node's settings through :mod:`dagwright.compiler.kinds`, where
the kinds, their ports and their config defaults are defined once.

* ``vote``: aggregates ballots (``<voter>.decision`` and ``<voter>.confidence`` inputs)
  under a rule (majority, weighted, unanimous) and a confidence threshold;
* ``route``: sends its inputs to the destination an agent chose; other destinations
  are not produced, so their nodes are skipped;
* ``assign``: hands a supervisor's subtasks to workers (by the supervisor's choice,
  round robin, or to all), optionally with review feedback for a revision;
* ``gate``: passes its values on only when a condition has the expected value
  (unrolled revision loops);
* ``select``: the first or last value that was produced (a collect input);
* ``gather``: a collect input as one list output (a transcript, a review trail);
* ``map``: runs a checked sub-graph once per item of a list, with a concurrency limit.

Vote tie-break rule (documented in the README): the option with more support wins;
on equal support, the higher summed confidence of its voters; then the option whose
first voter comes first in the agents' order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from dagwright.compiler.ir import Node
from dagwright.compiler.kinds import (
    AssignSettings,
    GateSettings,
    MapSettings,
    RouteSettings,
    SelectSettings,
    VoteSettings,
    ballot_ports,
    route_port,
)
from dagwright.execution.events import RunResult, Usage
from dagwright.execution.executor import Executor, NodeContext
from dagwright.execution.policy import RunOptions, child_run_id

__all__ = [
    "assign_executor",
    "gate_executor",
    "gather_executor",
    "map_executor",
    "route_executor",
    "select_executor",
    "vote_executor",
]


class StepRunner(Protocol):
    """What a ``map`` node is bound to: runs its step's graph once (a built-in ``Scheduler`` is one)."""

    async def run(self, inputs: Mapping[str, Any], options: RunOptions | None = None) -> RunResult: ...


def _normalize(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else value


# --------------------------------------------------------------------------- vote


def tally(
    ballots: list[tuple[str, Any, float | None]],
    rule: str,
    threshold: float,
    weights: dict[str, float],
) -> dict[str, Any]:
    """Aggregate ``(voter, decision, confidence)`` ballots; see the module docstring for ties."""
    if not ballots:
        raise ValueError("no ballots: every voter failed or was skipped")
    support: dict[Any, float] = {}
    conf_sum: dict[Any, float] = {}
    first_seen: dict[Any, int] = {}
    spelling: dict[Any, Any] = {}
    voters_for: dict[Any, list[str]] = {}
    total_weight = 0.0
    for position, (voter, decision, confidence) in enumerate(ballots):
        if confidence is not None and not 0.0 <= float(confidence) <= 1.0:
            # A share above 1 would outvote sure voters and pass any threshold: refused, not clipped.
            raise ValueError(
                f"voter {voter!r} gave confidence {confidence!r}, outside [0, 1]; "
                f"declare its confidence as float[0, 1] so a reply out of range is repaired before the vote"
            )
        key = _normalize(decision)
        weight = 1.0
        if rule == "weighted_vote":
            # Without weights a vote counts as much as its voter is confident (Kaizen's weighted vote).
            weight = weights.get(voter, 1.0) if weights else (1.0 if confidence is None else float(confidence))
        total_weight += weight
        support[key] = support.get(key, 0.0) + weight
        conf_sum[key] = conf_sum.get(key, 0.0) + (1.0 if confidence is None else float(confidence))
        first_seen.setdefault(key, position)
        spelling.setdefault(key, decision)
        voters_for.setdefault(key, []).append(voter)
    ranked = sorted(support, key=lambda k: (-support[k], -conf_sum[k], first_seen[k]))
    winner = ranked[0]
    agreement = support[winner] / total_weight if total_weight else 0.0
    supporters = voters_for[winner]
    confidence = conf_sum[winner] / len(supporters)
    tied = [k for k in ranked[1:] if support[k] == support[winner]]
    if rule == "unanimous":
        agreed = len(support) == 1
        rule_reason = "all voters agree" if agreed else f"{len(support)} different decisions"
    else:
        agreed = agreement > 0.5
        share = "weight" if rule == "weighted_vote" else "votes"
        rule_reason = f"{agreement:.0%} of the {share} for {spelling[winner]!r}"
        if tied:
            names = ", ".join(repr(spelling[k]) for k in tied)
            rule_reason += f"; tied with {names}, broken by summed confidence, then agent order"
    reached = agreed and confidence >= threshold
    if agreed and not reached:
        reason = f"{rule_reason}, but confidence {confidence:.2f} is under the threshold {threshold:.2f}"
    elif agreed:
        reason = f"{rule_reason}, confidence {confidence:.2f} >= {threshold:.2f}"
    else:
        reason = f"no consensus: {rule_reason}"
    return {
        "decision": spelling[winner],
        "confidence": confidence,
        "agreement": agreement,
        "votes": [{"agent": voter, "decision": decision, "confidence": conf} for voter, decision, conf in ballots],
        "consensus_reached": reached,
        "reason": reason,
    }


def vote_executor(node: Node, binding: object) -> Executor:
    settings = VoteSettings.of(node)
    ports = [(voter, *ballot_ports(voter)) for voter in settings.voters]
    weights = dict(settings.weights)

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        ballots = [
            (voter, inputs[decision], inputs.get(confidence))
            for voter, decision, confidence in ports
            if decision in inputs
        ]
        return tally(ballots, settings.rule, settings.threshold, weights)

    return run


# --------------------------------------------------------------------------- route / assign / gate


def route_executor(node: Node, binding: object) -> Executor:
    settings = RouteSettings.of(node)
    routes = list(settings.routes)
    by_key = {_normalize(r): r for r in routes}
    # What each destination takes: the request's other fields belong to other destinations.
    takes = {r: [f for f in settings.fields if node.output(route_port(r, f)) is not None] for r in routes}

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        choice = inputs["route"]
        chosen = by_key.get(_normalize(choice))
        if chosen is None:
            raise ValueError(f"route {choice!r} is not one of {', '.join(map(repr, routes))}")
        return {route_port(chosen, f): inputs[f] for f in takes[chosen] if f in inputs}

    return run


def _numbered(tasks: list[str]) -> str:
    if len(tasks) == 1:
        return tasks[0]
    return "\n".join(f"{i}. {t}" for i, t in enumerate(tasks, 1))


def assign_executor(node: Node, binding: object) -> Executor:
    settings = AssignSettings.of(node)
    workers = list(settings.workers)
    allocation = settings.allocation
    by_key = {_normalize(w): w for w in workers}

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        planned = list(inputs["subtasks"])
        if not planned:
            raise ValueError("the plan has no subtasks")
        share: dict[str, list[str]] = {w: [] for w in workers}
        subtasks = [str(t) for t in planned]
        if allocation == "automatic":
            for item in planned:
                if not isinstance(item, dict) or "subtask" not in item or "worker" not in item:
                    raise ValueError(f"a planned subtask must name its worker ({{'subtask', 'worker'}}), got {item!r}")
                worker = by_key.get(_normalize(item["worker"]))
                if worker is None:
                    raise ValueError(
                        f"the plan assigns unknown worker {item['worker']!r}; workers: {', '.join(workers)}"
                    )
                share[worker].append(str(item["subtask"]))
        elif allocation == "all":
            for w in workers:
                share[w] = list(subtasks)
        elif allocation == "round_robin":
            for i, task in enumerate(subtasks):
                share[workers[i % len(workers)]].append(task)
        feedback = inputs.get("feedback")
        out: dict[str, Any] = {}
        for worker, tasks in share.items():
            if not tasks:
                continue  # not produced: this worker is skipped
            text = _numbered(tasks)
            if feedback:
                text += f"\n\nRevise your previous answer. Reviewer feedback: {feedback}"
            out[worker] = text
        return out

    return run


def gate_executor(node: Node, binding: object) -> Executor:
    when = GateSettings.of(node).when
    names = [p.name for p in node.outputs]

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        if bool(inputs["condition"]) != when:
            return {}  # closed: nothing produced, everything behind the gate is skipped
        return {n: inputs[n] for n in names if n in inputs}

    return run


# --------------------------------------------------------------------------- select / gather


def select_executor(node: Node, binding: object) -> Executor:
    pick = SelectSettings.of(node).pick

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        values = inputs["values"]
        if not values:
            raise ValueError("none of the alternatives produced a value")
        return {"value": values[-1] if pick == "last" else values[0]}

    return run


def gather_executor(node: Node, binding: object) -> Executor:
    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"values": list(inputs["values"])}

    return run


# --------------------------------------------------------------------------- map


def map_executor(node: Node, binding: object) -> Executor:
    """The executor of a ``map`` node bound to the runner of its step (see :class:`StepRunner`)."""
    settings = MapSettings.of(node)
    if not callable(getattr(binding, "run", None)):
        raise TypeError(
            f"map node {node.id!r} is bound to {type(binding).__name__}, not a runner of its step; a back end binds "
            "it (dagwright.backends.builtin.plan.bind_nodes)"
        )
    step: StepRunner = binding  # type: ignore[assignment]
    over = settings.over
    outputs = [p.name for p in node.outputs]

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        items = list(inputs[over])
        shared = {k: v for k, v in inputs.items() if k != over}
        semaphore = asyncio.Semaphore(settings.concurrency)
        usage = Usage()

        async def one(index: int, item: Any) -> dict[str, Any]:
            async with semaphore:
                result = await step.run({**shared, over: item}, RunOptions(run_id=child_run_id(ctx.run_id, index)))
            usage.add(result.usage)
            if not result.success:
                raise RuntimeError(f"item {index} ({item!r}) failed: {result.error}")
            return result.outputs

        results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        ctx.record.usage = usage
        return {name: [r[name] for r in results] for name in outputs}

    return run
