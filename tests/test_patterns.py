"""Coordination patterns: IR shape, checks before any call, and runs over the loopback server."""

from __future__ import annotations

import json

import pytest
from pattern_cases import nested_flow

from dagwright import BaseAgent, CompileError, Flow, Kaizen, patterns
from dagwright.nodes.coordination import tally
from dagwright.testing import Fault, OpenAITestServer


def kaizen_for(server: OpenAITestServer) -> Kaizen:
    return Kaizen(config={"provider": "openai", "base_url": server.base_url, "api_key": "k", "max_retries": 0})


def codes(flow: Flow) -> set[tuple[str, str]]:
    return {(d.code, d.where) for d in flow.validate() if d.severity == "error"}


# --------------------------------------------------------------------------- debate


def test_debate_ir_shape() -> None:
    flow = Kaizen().create_debate_workflow(
        agents=[("optimist", {}), ("skeptic", {}), ("judge", {})], topic="Adopt Rust?", rounds=3
    )
    graph = flow.compile(strict=True)
    agents = [n.id for n in graph.nodes if n.kind == "agent"]
    assert agents == [
        "round1.optimist", "round1.skeptic", "round2.optimist", "round2.skeptic",
        "round3.optimist", "round3.skeptic", "verdict",
    ]  # fmt: skip
    assert graph.node("round2.skeptic").group == ("debate", "round2")
    assert graph.node("verdict").group == ("debate",)
    # Round 3 turns see the four earlier turns, in order; the verdict sees all six.
    assert [e.source for e in graph.edges_into("round3.optimist", "transcript")] == agents[:4]
    assert [e.source for e in graph.edges_into("verdict", "transcript")] == agents[:6]
    assert graph.edges_into("round1.optimist", "transcript") == []
    assert {n.outputs[0].name for n in graph.input_nodes} == {"topic"}
    assert {n.inputs[0].name for n in graph.output_nodes} == {"decision", "rationale", "transcript"}


def test_debate_makes_exactly_seven_calls(server: OpenAITestServer) -> None:
    flow = kaizen_for(server).create_debate_workflow(
        agents=[("optimist", {}), ("skeptic", {}), ("judge", {})], topic="Adopt Rust?", rounds=3
    )
    result = flow.run()
    assert result.success
    assert server.request_count == 3 * 2 + 1
    assert len(result.outputs["transcript"]) == 6
    # The judge saw every turn.
    judge_prompt = server.requests[-1]["messages"][-1]["content"]
    for turn in result.outputs["transcript"]:
        assert turn in judge_prompt


def test_turns_of_a_round_overlap() -> None:
    with OpenAITestServer(latency=0.3) as srv:
        flow = kaizen_for(srv).create_debate_workflow(
            agents=[("optimist", {}), ("skeptic", {}), ("judge", {})], topic="t", rounds=2
        )
        result = flow.run()
    a, b = result.nodes["round1.optimist"], result.nodes["round1.skeptic"]
    assert a.started_at is not None and b.started_at is not None and a.ended_at and b.ended_at
    assert a.started_at < b.ended_at and b.started_at < a.ended_at  # concurrent
    later = result.nodes["round2.optimist"]
    assert later.started_at is not None and later.started_at >= max(a.ended_at, b.ended_at)


def test_debater_that_cannot_take_the_transcript_is_caught_before_any_call(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    bad = k.create_agent("solo", signature="topic: str -> argument: str")
    flow = k.create_debate_workflow(agents=[bad, ("skeptic", {}), ("judge", {})], topic="t", rounds=1)
    with pytest.raises(CompileError) as info:
        flow.run()
    assert ("DW204", "solo") in {(d.code, d.where) for d in info.value.errors}
    assert server.request_count == 0


def test_debate_configuration_errors() -> None:
    flow = patterns.debate([("a", {}), ("judge", {})], topic="t", rounds=0)
    assert {c for c, _ in codes(flow)} >= {"DW202", "DW203"}
    twice = patterns.debate([("a", {}), ("a", {}), ("judge", {})], topic="t")
    assert ("DW205", "a") in codes(twice)


# --------------------------------------------------------------------------- consensus


def ballot(decision: str, confidence: float) -> str:
    return json.dumps({"decision": decision, "confidence": confidence, "rationale": "because"})


def test_consensus_majority_over_the_server(server: OpenAITestServer) -> None:
    server.enqueue(
        Fault(match="You are the analyst", content=ballot("adopt", 0.9)),
        Fault(match="You are the engineer", content=ballot("Adopt ", 0.8)),
        Fault(match="You are the lawyer", content=ballot("reject", 0.99)),
    )
    flow = kaizen_for(server).create_consensus_workflow(
        [("analyst", {}), ("engineer", {}), ("lawyer", {})], confidence_threshold=0.8
    )
    out = flow.run(question="Adopt it?").outputs
    assert server.request_count == 3
    assert out["decision"] == "adopt"
    assert out["agreement"] == pytest.approx(2 / 3)
    assert out["confidence"] == pytest.approx(0.85)
    assert out["consensus_reached"] is True
    assert [v["agent"] for v in out["votes"]] == ["analyst", "engineer", "lawyer"]


def test_voters_run_in_parallel() -> None:
    with OpenAITestServer(latency=0.3) as srv:
        flow = kaizen_for(srv).create_consensus_workflow([("a", {}), ("b", {}), ("c", {})])
        result = flow.run(question="q")
    records = [result.nodes[n] for n in ("a", "b", "c")]
    assert max(r.started_at or 0 for r in records) < min(r.ended_at or 0 for r in records)


def test_vote_rules() -> None:
    ballots = [("a", "yes", 0.9), ("b", "no", 0.6), ("c", "yes", 0.7)]
    majority = tally(ballots, "majority_vote", 0.8, {})
    assert majority["decision"] == "yes" and majority["agreement"] == pytest.approx(2 / 3)
    assert majority["confidence"] == pytest.approx(0.8)
    assert majority["consensus_reached"] is True
    high = tally(ballots, "majority_vote", 0.85, {})
    assert high["consensus_reached"] is False and "under the threshold" in high["reason"]
    unanimous = tally(ballots, "unanimous", 0.0, {})
    assert unanimous["consensus_reached"] is False and "2 different decisions" in unanimous["reason"]
    assert tally([("a", "x", 0.5), ("b", "X", 0.5)], "unanimous", 0.5, {})["consensus_reached"] is True
    weighted = tally(ballots, "weighted_vote", 0.0, {"a": 1.0, "b": 5.0, "c": 1.0})
    assert weighted["decision"] == "no" and weighted["agreement"] == pytest.approx(5 / 7)


def test_vote_ties_are_broken_deterministically() -> None:
    # Equal support: the higher summed confidence wins, and a tie is no majority.
    tied = tally([("a", "yes", 0.6), ("b", "no", 0.9)], "majority_vote", 0.0, {})
    assert tied["decision"] == "no"
    assert tied["consensus_reached"] is False
    assert "tied with 'yes'" in tied["reason"]
    # Equal support and confidence: the option of the agent listed first.
    assert tally([("a", "yes", 0.5), ("b", "no", 0.5)], "majority_vote", 0.0, {})["decision"] == "yes"
    assert tally([("a", "no", 0.5), ("b", "yes", 0.5)], "majority_vote", 0.0, {})["decision"] == "no"


def test_consensus_configuration_errors() -> None:
    bad_rule = patterns.consensus([("a", {}), ("b", {})], decision_criteria="plurality")
    assert ("DW206", "<flow>") in codes(bad_rule)
    weighted = patterns.consensus([("a", {}), ("b", {})], "weighted_vote", weights={"a": 1.0, "zed": 2.0})
    messages = [d.message for d in weighted.validate() if d.code == "DW206"]
    assert any("'zed'" in m for m in messages) and any("missing: b" in m for m in messages)
    threshold = patterns.consensus([("a", {}), ("b", {})], confidence_threshold=1.5)
    assert ("DW206", "<flow>") in codes(threshold)
    no_decision = patterns.consensus([BaseAgent(signature="question -> answer", name="x"), ("b", {})])
    assert ("DW204", "x") in codes(no_decision)


# --------------------------------------------------------------------------- pipeline


def test_pipeline_wires_by_name_and_maps(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    research = k.create_agent("research", signature="topic: str -> findings: list[str]")
    outline = k.create_agent("outline", signature="findings: list[str] -> sections: list[str]")
    write = k.create_agent("write", signature="topic: str, findings: list[str], outline: list[str] -> article: str")
    flow = k.create_pipeline([research, outline, (write, {"mapping": {"sections": "outline"}})])
    graph = flow.compile(strict=True)
    edges = {str(e) for e in graph.edges}
    assert "research.findings -> outline.findings" in edges
    assert "outline.sections -> write.outline" in edges
    assert "research.findings -> write.findings" in edges  # from the latest earlier producer
    assert "input:topic.topic -> write.topic" in edges  # a first-step input is a flow input
    result = flow.run(topic="solar")
    assert result.success and result.outputs["article"]
    assert server.request_count == 3


def test_pipeline_step_with_an_unproduced_input() -> None:
    k = Kaizen()
    first = k.create_agent("first", signature="topic -> notes")
    second = k.create_agent("second", signature="notes, style -> text")
    flow = k.create_pipeline([first, second])
    errors = [d for d in flow.validate() if d.severity == "error"]
    assert [(d.code, d.where) for d in errors] == [("DW201", "second.style")]
    assert "which no earlier step produces" in errors[0].message


def test_pipeline_type_checks_every_hop() -> None:
    k = Kaizen()
    first = k.create_agent("count", signature="text -> n: int")
    second = k.create_agent("shout", signature="n: str -> loud: str")
    assert ("DW007", "shout.n") in codes(k.create_pipeline([first, second]))


def test_role_pipeline_chains_single_ports() -> None:
    flow = Kaizen().create_pipeline([("data_collector", {"source": "web"}), ("analyst", {}), ("writer", {})])
    graph = flow.compile(strict=True)
    assert {str(e) for e in graph.edges} >= {"data_collector.result -> analyst.task", "analyst.result -> writer.task"}
    assert flow.binding("data_collector").config.extra == {"source": "web"}  # type: ignore[attr-defined]
    assert flow.run(task="collect").outputs["result"]


def test_step_settings_reach_the_model_for_roles_and_agent_objects(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    researcher = k.create_agent("researcher", signature="task: str -> result: str")
    flow = k.create_pipeline([(researcher, {"focus": "technical"}), ("reporter", {"format": "executive"})])
    assert flow.run(task="Quantum computing").success
    systems = {r["messages"][0]["content"] for r in server.requests}
    assert any("Context: focus=technical" in text for text in systems)
    assert any("You are the reporter." in text and "Context: format=executive" in text for text in systems)
    assert researcher.config.extra == {}  # the agent given is left as it was


# --------------------------------------------------------------------------- supervisor


def plan(subtasks: list[str], workers: list[str]) -> str:
    pairs = [{"subtask": t, "worker": w} for t, w in zip(subtasks, workers, strict=True)]
    return json.dumps({"subtasks": pairs})


def review(approved: bool, feedback: str, answer: str) -> str:
    return json.dumps({"approved": approved, "feedback": feedback, "answer": answer})


def test_supervisor_assigns_skips_and_revises(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    flow = k.create_supervisor_agent(
        "manager",
        {"workers": [("researcher", {}), ("writer", {}), ("designer", {})], "max_revisions": 2},
    )
    server.enqueue(
        Fault(match="Split the task", content=plan(["find data", "write it"], ["researcher", "writer"])),
        Fault(match="Review the workers", content=review(False, "add numbers", "draft")),
        Fault(match="Review the workers", content=review(True, "good", "final answer")),
    )
    result = flow.run(task="Report on solar")
    status = {n: r.status for n, r in result.nodes.items()}
    assert status["designer"] == "skipped"  # never assigned: not run
    assert status["revision1.researcher"] == "done" and status["revision1.designer"] == "skipped"
    assert status["manager.review2"] == "skipped"  # approved after the first revision
    assert result.outputs["answer"] == "final answer"
    assert result.outputs["approved"] is True
    assert result.outputs["review_trail"] == ["add numbers", "good"]
    assert result.outputs["plan"] == [
        {"subtask": "find data", "worker": "researcher"},
        {"subtask": "write it", "worker": "writer"},
    ]
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert "researcher" in json.dumps(schema) and "designer" in json.dumps(schema)  # workers are an enum
    # plan + 2 workers + review + 2 revised workers + review
    assert server.request_count == 7
    revised = [r for r in server.requests if "Reviewer feedback: add numbers" in json.dumps(r["messages"])]
    assert len(revised) == 2


def test_supervisor_round_robin_and_all() -> None:
    rr = patterns.supervisor("boss", {"workers": [("a", {}), ("b", {})], "task_allocation": "round_robin"})
    assert rr.run(task="t").success
    everyone = patterns.supervisor(
        "boss", {"workers": [("a", {}), ("b", {})], "task_allocation": "all", "quality_control": False}
    )
    graph = everyone.compile(strict=True)
    assert "boss.gate1" not in graph
    result = everyone.run(task="t")
    assert result.nodes["a"].status == result.nodes["b"].status == "done"


def test_supervisor_configuration_errors() -> None:
    assert {c for c, _ in codes(patterns.supervisor("m", {"workers": []}))} == {"DW203"}
    bad = patterns.supervisor("m", {"workers": [("a", {})], "task_allocation": "random", "max_revisions": -1})
    assert {c for c, _ in codes(bad)} == {"DW206", "DW202"}
    odd = BaseAgent(signature="question -> answer", name="odd")
    assert ("DW204", "odd") in codes(patterns.supervisor("m", {"workers": [odd]}))
    # A worker that cannot take a task is reported once, and the others still form the team.
    fine = BaseAgent(signature="task: str, notes: list[str] = [], context: str = 'none' -> result: str", name="fine")
    mixed = patterns.supervisor("m", {"workers": [odd, fine], "quality_control": True})
    found = mixed.validate()
    assert [(d.code, d.where) for d in found if d.severity != "info"] == [("DW204", "odd")]
    assert "question" in found[0].message and "rename its input to 'task'" in found[0].hint
    assert "odd" not in mixed and "fine" in mixed
    # Its other inputs become the team's, optional with their defaults.
    team = patterns.supervisor("m", {"workers": [fine]})
    assert {n.id: n.config.get("default", "required") for n in team.compile().input_nodes} == {
        "input:task": "required",
        "input:context": "none",
        "input:notes": (),
    }
    assert team.run(task="t").success and team.run(task="t", context="prod", notes=["x"]).success


# --------------------------------------------------------------------------- router and map


def test_router_runs_only_the_chosen_destination(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    billing = k.create_agent("billing", signature="request: str -> response: str")
    tech = k.create_agent("tech", signature="request: str -> response: str")
    flow = k.create_router(("triage", {}), [billing, tech])
    server.enqueue(Fault(match="You are the triage", content=json.dumps({"route": "tech"})))
    result = flow.run(request="The app crashes")
    assert result.outputs["route"] == "tech"
    assert result.nodes["billing"].status == "skipped"
    assert result.nodes["tech"].status == "done"
    assert server.request_count == 2


def test_router_destinations_may_take_different_and_optional_fields(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    billing = k.create_agent(
        "billing", signature="request: str, account: str = 'none', tags: list[str] = [] -> response: str"
    )
    tech = k.create_agent("tech", signature="request: str, account: str = 'none' -> response: str")
    flow = k.create_router(("triage", {}), [billing, tech])
    inputs = {n.id: n.config.get("default", "required") for n in flow.compile().input_nodes}
    assert inputs == {"input:request": "required", "input:account": "none", "input:tags": ()}
    for route, extra in (("billing", {"tags": ["vip"]}), ("tech", {}), ("billing", {})):
        server.enqueue(Fault(match="You are the triage", content=json.dumps({"route": route})))
        result = flow.run(request="Refund?", **extra)
        assert result.success, result.error
        assert result.outputs["route"] == route and result.nodes[route].status == "done"
    # Each destination received only its own fields: the request the billing agent saw carries the tags.
    assert 'tags:\n["vip"]' in server.requests[1]["messages"][-1]["content"]


def test_parallel_map_keeps_the_steps_optional_inputs_optional() -> None:
    k = Kaizen()
    step = k.create_agent("m", signature="item: str, style: str = 'plain', tags: list[str] = [] -> out: str")
    mapped = k.create_parallel_map(step, over="item")
    inputs = {n.id: n.config.get("default", "required") for n in mapped.compile().input_nodes}
    assert inputs == {"input:item": "required", "input:style": "plain", "input:tags": ()}
    plain = mapped.run(item=["a", "b"])
    assert plain.success, plain.error
    assert len(plain.outputs["out"]) == 2
    assert mapped.run(item=["a"], style="bold", tags=["x"]).success


def test_router_needs_a_shared_output() -> None:
    a = BaseAgent(signature="request -> x", name="a")
    b = BaseAgent(signature="request -> y", name="b")
    assert ("DW207", "<flow>") in codes(patterns.router(("triage", {}), [a, b]))


def test_parallel_map_fans_out_in_order() -> None:
    summarize = BaseAgent(signature="doc: str, style: str -> summary: str", name="summarize")
    flow = patterns.parallel_map(summarize, over="doc", concurrency=2)
    graph = flow.compile(strict=True)
    assert str(graph.node("map").input("doc").type) == "list[str]"  # type: ignore[union-attr]
    result = flow.run(doc=["alpha", "beta", "gamma"], style="terse")
    summaries = result.outputs["summary"]
    assert len(summaries) == 3
    assert "alpha" in summaries[0] and "gamma" in summaries[2]
    assert result.nodes["map"].usage is not None and result.nodes["map"].usage.calls == 3
    assert ("DW206", "map") in codes(patterns.parallel_map(summarize, over="docs"))


def test_parallel_map_respects_the_concurrency_limit() -> None:
    with OpenAITestServer(latency=0.2) as srv:
        agent = BaseAgent(
            config={"provider": "openai", "base_url": srv.base_url, "api_key": "k"},
            signature="item: str -> result: str",
            name="step",
        )
        result = patterns.parallel_map(agent, over="item", concurrency=2).run(item=list("abcd"))
        assert result.success and srv.request_count == 4
    # Four items, two at a time, 0.2 s each: at least two waves.
    assert result.nodes["map"].duration_ms is not None and result.nodes["map"].duration_ms >= 400


# --------------------------------------------------------------------------- composition


def test_nested_composition_runs(server: OpenAITestServer) -> None:
    k = kaizen_for(server)
    flow = nested_flow(k, name="research_flow")
    graph = flow.compile(strict=True)
    assert "debate.round2.pro" in graph and "consensus.vote" in graph
    assert graph.node("debate.round1.pro").group == ("research_flow", "debate", "round1")
    edges = {str(e) for e in graph.edges}
    assert "research.findings -> debate.round1.pro.findings" in edges
    assert "debate.verdict.decision -> consensus.r1.decision_to_check" in edges
    result = flow.run(topic="Four-day week")
    assert result.success
    assert server.request_count == 1 + (2 * 2 + 1) + 2
    assert set(result.outputs) >= {"decision", "consensus_reached", "votes"}


def test_a_pattern_as_a_supervisor_worker() -> None:
    k = Kaizen()
    team = k.create_pipeline([("drafter", {}), ("editor", {})], name="writing")
    flow = k.create_supervisor_agent(
        "lead", {"workers": [team, ("checker", {})], "task_allocation": "all", "quality_control": False}
    )
    graph = flow.compile(strict=True)
    assert "writing.drafter" in graph and "writing.editor" in graph
    assert flow.run(task="Write the note").success


# --------------------------------------------------------------------------- the agent factory


class _RecordingFactory:
    """The face's factory, noting every agent a pattern asks it for."""

    def __init__(self) -> None:
        from dagwright.agent import AGENTS

        self.inner = AGENTS
        self.created: list[str] = []
        self.configured: list[tuple[str, dict[str, object]]] = []

    def is_agent(self, obj: object) -> bool:
        return self.inner.is_agent(obj)

    def create(self, name: str, signature: object, config: object) -> BaseAgent:
        self.created.append(name)
        return self.inner.create(name, signature, config)  # type: ignore[arg-type]

    def configure(self, agent: BaseAgent, config: dict[str, object]) -> BaseAgent:
        self.configured.append((agent.name, dict(config)))
        return self.inner.configure(agent, config)  # type: ignore[no-any-return]


def test_patterns_make_and_adapt_agents_through_the_factory_they_are_given() -> None:
    factory = _RecordingFactory()
    judge = BaseAgent(signature="topic: str, transcript: list[str] -> decision: str", name="judge")
    flow = patterns.debate(
        [("optimist", {}), "skeptic", (judge, {"temperature": 0.1})], topic="Adopt it?", rounds=1, factory=factory
    )
    assert factory.created == ["optimist", "skeptic"]
    assert factory.configured == [("judge", {"temperature": 0.1})]
    flow.compile(strict=True)
    assert flow.binding("verdict").config.temperature == 0.1  # type: ignore[attr-defined]
    assert judge.config.temperature is None  # the given agent is left as it was
    team = patterns.supervisor("lead", {"workers": ["writer"], "quality_control": False}, factory=factory)
    assert factory.created[-3:] == ["writer", "lead.plan", "lead.review"]
    assert team.run(task="Write a haiku").success


def test_patterns_without_a_factory_use_the_faces() -> None:
    flow = patterns.pipeline([("researcher", {}), ("writer", {})])
    assert isinstance(flow.binding("researcher"), BaseAgent)
    assert flow.run(task="Four-day weeks").success
