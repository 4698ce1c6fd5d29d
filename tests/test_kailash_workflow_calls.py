"""The Kaizen execution-engine ADR's workflow calls, exactly as it writes them, on Kailash's own ``LocalRuntime``.

``add_node_instance(agent.to_workflow_node("id"))``, ``add_connection("a", "b")`` (by port
name), ``add_connections([...])`` and ``add_subworkflow("name", workflow.build())``, on
``dagwright.WorkflowBuilder``. Agents answer with the embedded offline model, or through the
loopback OpenAI-compatible server; nothing is mocked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kailash.nodes.code import PythonCodeNode
from kailash.runtime.local import LocalRuntime
from kailash.sdk_exceptions import WorkflowValidationError

from dagwright import BaseAgent, Kaizen, WorkflowBuilder
from dagwright.testing import OpenAITestServer


@pytest.fixture(autouse=True)
def _kailash_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A LocalRuntime with default settings (as the ADR runs it) writes ~/.kailash/tracking: keep it in tmp_path.
    monkeypatch.setenv("HOME", str(tmp_path))
    yield


@pytest.fixture
def kaizen() -> Kaizen:
    return Kaizen()


def run(workflow: WorkflowBuilder, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    with LocalRuntime() as rt:
        results, run_id = rt.execute(workflow.build(), parameters=parameters or {})
    assert run_id
    return dict(results)


class Fixed:
    """A strategy that answers without a model: its output shows that this very agent ran."""

    async def execute(self, agent: BaseAgent, inputs: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"findings": f"fixed: {inputs['topic']}"}


# ----------------------------------------------------------------------------- 1. add_node_instance


def test_add_node_instance_keeps_the_id_given_to_the_node(kaizen: Kaizen) -> None:
    agent = kaizen.create_agent("research", signature="topic: str -> findings: str")
    workflow = WorkflowBuilder()
    added = workflow.add_node_instance(agent.to_workflow_node("processing_step"))
    assert added == "processing_step"
    assert list(workflow.nodes) == ["processing_step"]
    results = run(workflow, {"processing_step": {"topic": "tides"}})
    assert results == {"processing_step": {"findings": agent.run(topic="tides")["findings"]}}


def test_the_node_instance_runs_its_own_agent_after_build() -> None:
    agent = BaseAgent(signature="topic: str -> findings: str", strategy=Fixed(), name="research")
    workflow = WorkflowBuilder()
    workflow.add_node_instance(agent.to_workflow_node("processing_step"))
    # An agent rebuilt from the signature would answer with the offline model, not "fixed: ...".
    assert run(workflow, {"processing_step": {"topic": "owls"}}) == {"processing_step": {"findings": "fixed: owls"}}
    # Kailash's add_node(instance) keeps the id too.
    other = WorkflowBuilder()
    assert other.add_node(agent.to_workflow_node("step_two")) == "step_two"
    assert run(other, {"step_two": {"topic": "bats"}}) == {"step_two": {"findings": "fixed: bats"}}


def test_an_explicit_node_id_still_names_the_node() -> None:
    agent = BaseAgent(signature="topic: str -> findings: str", strategy=Fixed(), name="research")
    workflow = WorkflowBuilder()
    assert workflow.add_node_instance(agent.to_workflow_node("processing_step"), node_id="renamed") == "renamed"
    assert list(workflow.nodes) == ["renamed"]
    assert run(workflow, {"renamed": {"topic": "moths"}}) == {"renamed": {"findings": "fixed: moths"}}


def test_other_node_instances_are_left_to_kailash() -> None:
    workflow = WorkflowBuilder()
    code = PythonCodeNode(name="double", code="result = x * 2")
    with pytest.warns(UserWarning, match="Instance-based API"):
        added = workflow.add_node_instance(code)
    assert re.fullmatch(r"node_[0-9a-f]{8}", added)  # Kailash's random id, as before
    assert run(workflow, {added: {"x": 21}}) == {added: {"result": 42}}


def test_a_taken_id_is_refused_for_a_dagwright_node(kaizen: Kaizen) -> None:
    agent = kaizen.create_agent("research", signature="topic: str -> findings: str")
    workflow = WorkflowBuilder()
    workflow.add_node_instance(agent.to_workflow_node("processing_step"))
    with pytest.raises(WorkflowValidationError, match="Node ID 'processing_step' already exists"):
        workflow.add_node_instance(agent.to_workflow_node("processing_step"))


# ----------------------------------------------------------------------------- 2. add_connection by name


def research_and_analysis(kaizen: Kaizen, config: dict[str, Any] | None = None) -> tuple[BaseAgent, BaseAgent]:
    research = kaizen.create_agent("research", signature="topic: str -> findings: str", config=config)
    analysis = kaizen.create_agent("analysis", signature="findings: str -> verdict: str", config=config)
    return research, analysis


def test_two_argument_connection_between_agents(kaizen: Kaizen) -> None:
    research, analysis = research_and_analysis(kaizen)
    workflow = WorkflowBuilder()
    workflow.add_agent(research, "research")
    workflow.add_agent(analysis, "analysis")
    assert workflow.add_connection("research", "analysis") is workflow
    assert workflow.connections == [
        {"from_node": "research", "from_output": "findings", "to_node": "analysis", "to_input": "findings"}
    ]
    results = run(workflow, {"research": {"topic": "tides"}})
    findings = research.run(topic="tides")["findings"]
    assert results == {
        "research": {"findings": findings},
        "analysis": {"verdict": analysis.run(findings=findings)["verdict"]},
    }


def test_two_argument_connection_against_the_openai_test_server(kaizen: Kaizen) -> None:
    with OpenAITestServer() as server:
        config = {"provider": "openai", "base_url": server.base_url, "api_key": "k"}
        research, analysis = research_and_analysis(kaizen, config)
        workflow = WorkflowBuilder()
        workflow.add_node_instance(research.to_workflow_node("research"))
        workflow.add_agent(analysis, "analysis")
        workflow.add_connection("research", "analysis")
        results = run(workflow, {"research": {"topic": "tides"}})
        assert server.request_count == 2
        requests = server.requests
    findings = results["research"]["findings"]
    assert isinstance(findings, str) and findings
    assert "tides" in requests[0]["messages"][-1]["content"]
    assert findings in requests[1]["messages"][-1]["content"]  # the research output reached the analysis prompt
    assert isinstance(results["analysis"]["verdict"], str)


def test_every_output_goes_to_the_input_of_the_same_name(kaizen: Kaizen) -> None:
    research = kaizen.create_agent("research", signature="topic: str -> findings: str, sources: list[str], mood: str")
    writer = kaizen.create_agent(
        "writer", signature="findings: str, sources: list[str], style: str = 'plain' -> article: str"
    )
    workflow = WorkflowBuilder()
    workflow.add_agent(research, "research")
    workflow.add_agent(writer, "writer")
    workflow.add_connection("research", "writer")
    assert [(c["from_output"], c["to_input"]) for c in workflow.connections] == [
        ("findings", "findings"),
        ("sources", "sources"),
    ]
    results = run(workflow, {"research": {"topic": "bees"}})
    out = research.run(topic="bees")
    assert results["writer"] == {"article": writer.run(findings=out["findings"], sources=out["sources"])["article"]}


def test_two_argument_connection_into_a_python_code_node(kaizen: Kaizen) -> None:
    research = kaizen.create_agent("research", signature="topic: str -> findings: str")
    workflow = WorkflowBuilder()
    workflow.add_agent(research, "research")
    # The code reads `findings` (and sets `result`): that variable is the node's input.
    workflow.add_node("PythonCodeNode", "shout", {"code": "result = {'text': findings.upper()}"})
    workflow.add_connection("research", "shout")
    results = run(workflow, {"research": {"topic": "owls"}})
    assert results["shout"] == {"result": {"text": research.run(topic="owls")["findings"].upper()}}


def test_no_matching_names_is_a_clear_error(kaizen: Kaizen) -> None:
    research = kaizen.create_agent("research", signature="topic: str -> findings: str, sources: list[str]")
    writer = kaizen.create_agent("writer", signature="notes: str, tone: str -> article: str")
    workflow = WorkflowBuilder()
    workflow.add_agent(research, "research")
    workflow.add_agent(writer, "writer")
    with pytest.raises(ValueError) as caught:
        workflow.add_connection("research", "writer")
    assert str(caught.value) == (
        "add_connection('research', 'writer'): no output of 'research' has the name of an input of 'writer'. "
        "Outputs of 'research': 'findings', 'sources'. Inputs of 'writer': 'notes', 'tone'. "
        "Connect the ports explicitly: add_connection('research', 'findings', 'writer', 'notes'), "
        "or connect('research', 'writer', mapping={'findings': 'notes'})"
    )
    assert workflow.connections == []


def test_no_match_with_a_node_that_declares_no_inputs(kaizen: Kaizen) -> None:
    workflow = WorkflowBuilder()
    workflow.add_agent(kaizen.create_agent("research", signature="topic: str -> findings: str"), "research")
    workflow.add_node("PythonCodeNode", "fixed", {"code": "result = 42"})
    with pytest.raises(ValueError, match=r"Outputs of 'research': 'findings'\. Inputs of 'fixed': none declared\."):
        workflow.add_connection("research", "fixed")


def test_an_unknown_node_is_named_with_a_suggestion(kaizen: Kaizen) -> None:
    research, analysis = research_and_analysis(kaizen)
    workflow = WorkflowBuilder()
    workflow.add_agent(research, "research")
    workflow.add_agent(analysis, "analysis")
    with pytest.raises(ValueError) as caught:
        workflow.add_connection("research", "analysys")
    assert str(caught.value) == (
        "add_connection('research', 'analysys'): the workflow has no node 'analysys'; did you mean 'analysis'? "
        "(its nodes: 'research', 'analysis')"
    )
    with pytest.raises(ValueError, match=r"no node 'reserch'; did you mean 'research'\?"):
        workflow.add_connection("reserch", "analysis")
    with pytest.raises(ValueError, match=r"a node cannot be connected to itself"):
        workflow.add_connection("research", "research")


def test_the_four_argument_form_is_kailashs(kaizen: Kaizen) -> None:
    research, analysis = research_and_analysis(kaizen)
    workflow = WorkflowBuilder()
    workflow.add_agent(research, "research")
    workflow.add_agent(analysis, "analysis")
    workflow.add_node("PythonCodeNode", "shout", {"code": "result = text.upper()"})
    assert workflow.add_connection("research", "findings", "analysis", "findings") is workflow
    workflow.add_connection(from_node="analysis", from_output="verdict", to_node="shout", to_input="text")
    results = run(workflow, {"research": {"topic": "tides"}})
    assert results["shout"] == {"result": results["analysis"]["verdict"].upper()}
    with pytest.raises(WorkflowValidationError, match="Target node 'nowhere' not found"):
        workflow.add_connection("research", "findings", "nowhere", "x")
    with pytest.raises(TypeError, match="the four-argument form needs to_input too"):
        workflow.add_connection("research", "findings", "analysis")


# ----------------------------------------------------------------------------- 3. add_connections


def load_process_format(workflow: WorkflowBuilder, kaizen: Kaizen) -> tuple[BaseAgent, BaseAgent]:
    load = kaizen.create_agent("load", signature="topic: str -> notes: str")
    process = kaizen.create_agent("process", signature="notes: str -> summary: str")
    workflow.add_agent(load, "load")
    workflow.add_agent(process, "process")
    workflow.add_node("PythonCodeNode", "format", {"code": "result = '# ' + summary"})
    return load, process


def test_add_connections_with_pairs(kaizen: Kaizen) -> None:
    workflow = WorkflowBuilder()
    load, process = load_process_format(workflow, kaizen)
    assert workflow.add_connections([("load", "process"), ("process", "format")]) is workflow
    results = run(workflow, {"load": {"topic": "kelp"}})
    summary = process.run(notes=load.run(topic="kelp")["notes"])["summary"]
    assert results["format"] == {"result": "# " + summary}


def test_add_connections_with_explicit_ports(kaizen: Kaizen) -> None:
    workflow = WorkflowBuilder()
    load_process_format(workflow, kaizen)
    workflow.add_node("PythonCodeNode", "count", {"code": "result = len(text)"})
    workflow.add_connections([("load", "process"), ("process", "summary", "count", "text"), ["process", "format"]])
    results = run(workflow, {"load": {"topic": "kelp"}})
    assert results["count"] == {"result": len(results["process"]["summary"])}
    assert results["format"] == {"result": "# " + results["process"]["summary"]}


@pytest.mark.parametrize(
    ("item", "shown"),
    [
        (("process", "summary", "format"), "('process', 'summary', 'format')"),
        ("process", "'process'"),
        (("process", 3), "('process', 3)"),
        ({"process": "format"}, "{'process': 'format'}"),
    ],
)
def test_a_malformed_item_is_named_by_its_position(kaizen: Kaizen, item: Any, shown: str) -> None:
    workflow = WorkflowBuilder()
    load_process_format(workflow, kaizen)
    with pytest.raises(TypeError) as caught:
        workflow.add_connections([("load", "process"), item])
    assert str(caught.value) == (
        f"add_connections(): item 1 is {shown}; each item must be (from_node, to_node) or "
        "(from_node, from_output, to_node, to_input), all strings"
    )
    assert workflow.connections == []  # checked before any is added


def test_a_failing_item_adds_none(kaizen: Kaizen) -> None:
    workflow = WorkflowBuilder()
    load_process_format(workflow, kaizen)
    with pytest.raises(ValueError, match=r"^add_connections\(\), item 1 \('format', 'load'\): add_connection\("):
        workflow.add_connections([("load", "process"), ("format", "load")])
    assert workflow.connections == []


# ----------------------------------------------------------------------------- 4. add_subworkflow


def test_data_flows_through_a_subworkflow(kaizen: Kaizen, caplog: pytest.LogCaptureFixture) -> None:
    research = kaizen.create_agent("research", signature="topic: str -> findings: str")
    agent_workflow = WorkflowBuilder()
    agent_workflow.add_node("PythonCodeNode", "clean_up", {"code": "result = text.strip().lower()"})
    agent_workflow.add_agent(research, "research")
    agent_workflow.add_connection("clean_up", "result", "research", "topic")

    workflow = WorkflowBuilder()
    workflow.add_node("PythonCodeNode", "prep", {"code": "result = '  About ' + subject + '  '"})
    assert workflow.add_subworkflow("agent", agent_workflow.build()) == "agent"
    workflow.add_node("PythonCodeNode", "shout", {"code": "result = {'text': text.upper()}"})
    workflow.add_connection("prep", "result", "agent", "clean_up_text")
    workflow.add_connection("agent", "research_findings", "shout", "text")
    caplog.set_level(logging.WARNING, logger="kailash")
    results = run(workflow, {"prep": {"subject": "OWLS"}})

    findings = research.run(topic="about owls")["findings"]
    assert results["prep"] == {"result": "  About OWLS  "}
    assert results["agent"]["research_findings"] == findings
    assert results["agent"]["clean_up_result"] == "about owls"
    assert results["agent"]["results"] == {"clean_up": {"result": "about owls"}, "research": {"findings": findings}}
    assert results["shout"] == {"result": {"text": findings.upper()}}
    # Kailash would warn on every run that the node's own config (workflow, input_mapping, ...) is unknown.
    assert not [r for r in caplog.records if "Unknown parameter(s) for WorkflowNode" in r.getMessage()]


def test_subworkflow_parameters_and_the_inputs_override(kaizen: Kaizen) -> None:
    agent = BaseAgent(signature="topic: str -> findings: str", strategy=Fixed(), name="research")
    workflow = WorkflowBuilder()
    workflow.add_subworkflow("agent", agent.to_workflow())  # a builder is built first
    assert run(workflow, {"agent": {"research_topic": "eels"}})["agent"]["research_findings"] == "fixed: eels"
    by_node = run(workflow, {"agent": {"inputs": {"research": {"topic": "rays"}}}})
    assert by_node["agent"]["research_findings"] == "fixed: rays"


def test_a_subworkflow_connects_by_name_too(kaizen: Kaizen) -> None:
    agent = BaseAgent(signature="topic: str -> findings: str", strategy=Fixed(), name="research")
    workflow = WorkflowBuilder()
    workflow.add_subworkflow("agent", agent.to_workflow().build())
    workflow.add_node("PythonCodeNode", "tail", {"code": "result = research_findings[-4:]"})
    workflow.add_connection("agent", "tail")
    assert run(workflow, {"agent": {"research_topic": "crab"}})["tail"] == {"result": "crab"}


def test_add_subworkflow_refuses_what_is_not_a_workflow(kaizen: Kaizen) -> None:
    workflow = WorkflowBuilder()
    with pytest.raises(TypeError, match=r"add_subworkflow\('agent', \.\.\.\): expected a built Kailash workflow"):
        workflow.add_subworkflow("agent", {"nodes": {}})
    workflow.add_subworkflow("agent", kaizen.create_agent("a", signature="x: str -> y: str").to_workflow().build())
    with pytest.raises(WorkflowValidationError, match="Node ID 'agent' already exists"):
        workflow.add_subworkflow("agent", WorkflowBuilder().build())


def test_add_subworkflow_refuses_ambiguous_names(kaizen: Kaizen) -> None:
    inner = WorkflowBuilder()
    inner.add_agent(kaizen.create_agent("a", signature="b_c: str -> out: str"), "a")
    inner.add_agent(kaizen.create_agent("b", signature="c: str -> out: str"), "a_b")
    with pytest.raises(ValueError, match=r"input name 'a_b_c' would mean both a\.b_c and a_b\.c"):
        WorkflowBuilder().add_subworkflow("agent", inner.build())
