"""An agent's access policy holds wherever its graph runs, or the graph does not run there.

The study's defect: a flow's IR JSON run with ``Runtime()``, or its exported Kailash script, rebuilt
the agent from its settings alone, so a denied agent still called the model, silently. Now:

* a named policy (``set_access_policy("team_lead_approval_required")``) travels in the IR by name
  and is installed afresh wherever the graph is bound: denied there too, before any request;
* a callable policy, or a custom strategy, lives only in the building process: the IR says so
  (``in_process``), binding such a graph elsewhere is refused naming the node and what it lacks,
  and the Kailash exports refuse at export time;
* in the building process nothing changes: the live agent, its policy included, is what runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dagwright.agent import BaseAgent
from dagwright.backends.builtin.runner import Runtime
from dagwright.backends.kailash.export import to_kailash_script, to_kailash_yaml
from dagwright.cli.command import main
from dagwright.compiler.ir import Graph
from dagwright.flow import Flow
from dagwright.llm.agent import Strategy
from dagwright.ops.audit import AccessRequest
from dagwright.testing import OpenAITestServer

SIGNATURE = "question: str -> answer: str"


def guarded_flow(server: OpenAITestServer) -> tuple[Flow, BaseAgent]:
    agent = BaseAgent(
        config={"provider": "openai", "model": "gpt-4o-mini", "base_url": server.base_url, "api_key": "sk-test"},
        signature=SIGNATURE,
        name="qa",
    )
    flow = Flow("guarded")
    flow.add_agent("qa", agent)
    flow.input("question", str, to="qa.question")
    flow.output("answer", "qa.answer")
    return flow, agent


def over_budget(request: AccessRequest) -> str | None:
    return "over budget" if request.agent == "qa" else None


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A graph loaded from JSON takes its API key from the environment (the IR never holds one).
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_a_named_policy_travels_in_the_ir_and_denies_there(server: OpenAITestServer, env_key: None) -> None:
    flow, agent = guarded_flow(server)
    agent.set_access_policy("team_lead_approval_required")
    graph = Graph.from_json(flow.compile().to_json())
    assert graph.node("qa").config["access_policy"] == "team_lead_approval_required"

    result = Runtime().run(graph, {"question": "q"})
    assert not result.success
    assert result.nodes["qa"].status == "failed"
    assert "access denied" in str(result.error) and "team lead" in str(result.error)
    assert server.request_count == 0


def test_without_a_policy_the_same_graph_runs(server: OpenAITestServer, env_key: None) -> None:
    # The control: the graph above is refused because of the policy, not because it cannot run.
    flow, _ = guarded_flow(server)
    graph = Graph.from_json(flow.compile().to_json())
    assert "access_policy" not in graph.node("qa").config
    result = Runtime().run(graph, {"question": "q"})
    assert result.success, result.error
    assert server.request_count == 1


def test_a_callable_policy_cannot_run_from_the_ir(server: OpenAITestServer, env_key: None) -> None:
    flow, agent = guarded_flow(server)
    agent.set_access_policy(over_budget)
    graph = Graph.from_json(flow.compile().to_json())
    assert list(graph.node("qa").config["in_process"]) == ["access policy over_budget"]
    with pytest.raises(ValueError) as info:
        Runtime().run(graph, {"question": "q"})
    message = str(info.value)
    assert "agent node 'qa'" in message and "access policy over_budget" in message
    assert "register_access_policy" in message
    assert server.request_count == 0


def test_in_the_building_process_the_live_policy_runs(server: OpenAITestServer) -> None:
    flow, agent = guarded_flow(server)
    agent.set_access_policy(over_budget)
    denied = flow.run(question="q")
    assert not denied.success and "over budget" in str(denied.error)
    agent.set_access_policy(None)
    assert flow.run(question="q").success
    assert server.request_count == 1


def test_a_policy_set_after_add_agent_reaches_the_next_compile(server: OpenAITestServer) -> None:
    flow, agent = guarded_flow(server)
    before = flow.compile()
    assert "access_policy" not in before.node("qa").config
    agent.set_access_policy("team_lead_approval_required")
    after = flow.compile()
    assert after.node("qa").config["access_policy"] == "team_lead_approval_required"
    assert after.content_hash != before.content_hash
    agent.set_access_policy(None)
    assert flow.compile().content_hash == before.content_hash


class Twice(Strategy):
    async def execute(self, signature: Any, inputs: dict[str, Any], config: Any) -> dict[str, Any]:
        return {"answer": f"{inputs['question']} {inputs['question']}"}


def test_the_kailash_exports_refuse_what_only_this_process_holds(server: OpenAITestServer) -> None:
    flow, agent = guarded_flow(server)
    agent.set_access_policy(over_budget)
    for export in (to_kailash_script, to_kailash_yaml):
        with pytest.raises(ValueError, match=r"agent node 'qa' has access policy over_budget"):
            export(flow)
    agent.set_access_policy(None)
    agent.strategy = Twice()
    with pytest.raises(ValueError, match=r"agent node 'qa' has strategy Twice"):
        to_kailash_script(flow)
    assert flow.run(question="q").outputs == {"answer": "q q"}


POLICY_FLOW = """
from dagwright.agent import BaseAgent
from dagwright.flow import Flow

agent = BaseAgent(config={{"provider": "openai", "base_url": {url!r}}}, signature="question: str -> answer: str")
agent.set_access_policy({policy})
flow = Flow("guarded")
flow.add_agent("qa", agent)
flow.input("question", str, to="qa.question")
flow.output("answer", "qa.answer")
"""


def test_an_exported_script_denies_a_named_policy(
    tmp_path: Path, server: OpenAITestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "guarded.py"
    source.write_text(POLICY_FLOW.format(url=server.base_url, policy='"team_lead_approval_required"'))
    script = tmp_path / "guarded_kailash.py"
    assert main(["export", f"{source}:flow", "--format", "kailash-py", "-o", str(script)]) == 0
    run = subprocess.run(
        [sys.executable, str(script), '{"question": "q"}'],
        env={**os.environ, "OPENAI_API_KEY": "sk-test"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0
    assert "access denied" in run.stdout + run.stderr
    assert server.request_count == 0

    source.write_text(POLICY_FLOW.format(url=server.base_url, policy="lambda request: True"))
    assert main(["export", f"{source}:flow", "--format", "kailash-py", "-o", str(script)]) == 2
    assert "agent node 'qa' has access policy <lambda>" in capsys.readouterr().err
