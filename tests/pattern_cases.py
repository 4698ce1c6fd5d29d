"""Every coordination pattern as a flow factory with the inputs a run needs, for back-end equivalence tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from dagwright import BaseAgent, Flow, Kaizen


def nested_flow(k: Kaizen, name: str = "pipeline") -> Flow:
    """Patterns composed: research, then a two-round debate, then a consensus of two reviewers on its decision."""
    research = k.create_agent("research", signature="topic: str -> findings: list[str]")
    debater = "topic: str, findings: list[str], transcript: list[str] -> argument: str"
    debate = k.create_debate_workflow(
        agents=[k.create_agent("pro", signature=debater), k.create_agent("con", signature=debater), ("judge", {})],
        rounds=2,
    )
    reviewers = k.create_consensus_workflow(
        [
            k.create_agent("r1", signature="decision_to_check: str -> decision: str, confidence: float[0, 1]"),
            k.create_agent("r2", signature="decision_to_check: str -> decision: str, confidence: float[0, 1]"),
        ],
        confidence_threshold=0.0,
    )
    return k.create_pipeline([research, debate, (reviewers, {"mapping": {"decision": "decision_to_check"}})], name=name)


def pattern_cases() -> Iterator[tuple[str, Callable[[Kaizen], Flow], dict[str, Any]]]:
    """Every coordination pattern, offline-model agents, with the inputs a run needs."""

    def pipeline(k: Kaizen) -> Flow:
        research = k.create_agent("research", signature="topic: str -> findings: list[str]")
        outline = k.create_agent("outline", signature="findings: list[str] -> sections: list[str]")
        write = k.create_agent("write", signature="topic: str, findings: list[str], outline: list[str] -> article: str")
        return k.create_pipeline([research, outline, (write, {"mapping": {"sections": "outline"}})])

    def router(k: Kaizen) -> Flow:
        billing = k.create_agent("billing", signature="request: str -> response: str")
        tech = k.create_agent("tech", signature="request: str -> response: str")
        return k.create_router(("triage", {}), [billing, tech])

    summarize = BaseAgent(signature="doc: str, style: str -> summary: str", name="summarize")
    yield "pipeline", pipeline, {"topic": "solar"}
    yield (
        "debate",
        lambda k: k.create_debate_workflow(
            agents=[("optimist", {}), ("skeptic", {}), ("judge", {})], topic="Adopt Rust?", rounds=2
        ),
        {},
    )
    yield "consensus", lambda k: k.create_consensus_workflow([("a", {}), ("b", {}), ("c", {})]), {"question": "Go?"}
    yield (
        "supervisor",
        lambda k: k.create_supervisor_agent(
            "boss", {"workers": [("a", {}), ("b", {})], "task_allocation": "round_robin"}
        ),
        {"task": "Plan a launch"},
    )
    yield "router", router, {"request": "The app crashes"}
    yield (
        "parallel_map",
        lambda k: k.create_parallel_map(summarize, over="doc", concurrency=2),
        {"doc": ["alpha", "beta", "gamma"], "style": "terse"},
    )
    yield "nested", nested_flow, {"topic": "Four-day week"}
