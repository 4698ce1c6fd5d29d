"""The Kaizen documents' code, as they write it (only the imports changed), on the offline model and on a server.

Each test takes the code of one example of ``agent-run-guide.txt`` or
``execution-engine-adr.txt`` (in the project's shared ``kaizen-docs``) and asserts what
the text says it does. Every test runs twice: with ``DAGWRIGHT_PROVIDER=offline`` (the
configs name ``openai`` and ``gpt-4``; the switch makes every agent answer offline), and
against the loopback OpenAI-compatible server through ``OPENAI_BASE_URL``, where the
requests show what reached the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from dagwright import BaseAgent, ExecutionResult, InputField, Kaizen, OutputField, Signature, Strategy
from dagwright.testing import OpenAITestServer


@dataclass
class World:
    """Where the agents' calls go: ``server`` is None on the offline model."""

    server: OpenAITestServer | None

    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests if self.server is not None else []


@pytest.fixture(params=["offline", "server"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    if request.param == "offline":
        monkeypatch.setenv("DAGWRIGHT_PROVIDER", "offline")
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        yield World(None)
        return
    with OpenAITestServer() as server:
        monkeypatch.delenv("DAGWRIGHT_PROVIDER", raising=False)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield World(server)


def _sent(world: World) -> str:
    """Everything the agents sent to the server, as one text."""
    return "\n".join(m["content"] for r in world.requests() for m in r["messages"])


# --------------------------------------------------------------------------- agent-run-guide.txt


class QASignature(Signature):
    question: str = InputField(description="User question")
    answer: str = OutputField(description="Answer")


@dataclass
class MemoryConfig:
    llm_provider: str = "openai"
    model: str = "gpt-4"
    max_turns: int = 10  # Enable BufferMemory


def test_guide_core_execution_pattern(world: World) -> None:
    class MyAgent(BaseAgent):
        def process(self, input_data: str) -> dict:
            result = self.run(input_field=input_data)
            return result

    result = MyAgent(MemoryConfig()).process("Summarise: agents compile to DAGs")
    assert isinstance(result["answer"], str) and result["answer"]
    assert result["_timing"] > 0 and result["_tokens"]["total"] > 0
    if world.server is not None:
        assert "input_field" in _sent(world) and "agents compile to DAGs" in _sent(world)
        assert result["_cost"] > 0  # gpt-4 is priced


def test_guide_basic_execution(world: World) -> None:
    class QAAgent(BaseAgent):
        def ask(self, question: str) -> dict:
            result = self.run(question=question)
            assert "answer" in result
            return result

    agent = QAAgent(config=MemoryConfig(), signature=QASignature())
    assert agent.ask("What is AI?")["answer"]


def test_guide_multiple_and_optional_inputs(world: World) -> None:
    class AnalysisSignature(Signature):
        text: str = InputField(description="Text to analyze")
        context: str = InputField(description="Context", default="")
        mode: str = InputField(description="Analysis mode", default="standard")

        analysis: str = OutputField(description="Analysis result")

    class AnalysisAgent(BaseAgent):
        def analyze(self, text: str, context: str = "", mode: str = "standard") -> dict:
            result = self.run(text=text, context=context, mode=mode)
            return result

    class SearchSignature(Signature):
        query: str = InputField(description="Search query")
        filters: dict = InputField(description="Optional filters", default=None)

    class SearchAgent(BaseAgent):
        def search(self, query: str, filters: dict = None) -> dict:  # type: ignore[assignment]
            if filters:
                result = self.run(query=query, filters=filters)
            else:
                result = self.run(query=query)
            return result

    assert AnalysisAgent(signature=AnalysisSignature).analyze("Q3 revenue rose", mode="deep")["analysis"]
    assert str(SearchSignature.input_fields["filters"].type) == "dict[Any, Any] | None"
    searcher = SearchAgent(signature=SearchSignature)
    assert searcher.search("agents")["_timing"] > 0
    assert searcher.search("agents", filters={"year": 2026})["_timing"] > 0
    if world.server is not None:
        assert '"year": 2026' in _sent(world)


def test_guide_result_handling(world: World) -> None:
    class KeywordAgent(BaseAgent):
        signature = "question: str -> answer: str, confidence: float, keywords: list[str]"

        def process(self, question: str) -> dict:
            result = self.run(question=question)
            answer = result["answer"]
            confidence = result.get("confidence", 0.0)
            keywords = self.extract_list(result, "keywords", default=[])
            return {"answer": answer, "confidence": confidence, "keywords": keywords}

    out = KeywordAgent().process("What is AI?")
    assert isinstance(out["answer"], str) and isinstance(out["keywords"], list)
    assert 0.0 <= out["confidence"] <= 1.0
    result = KeywordAgent().run(question="What is AI?")
    assert {"answer", "confidence", "_timing", "_tokens", "_cost"} <= set(result)


def test_guide_error_handling(world: World) -> None:
    class Strict(BaseAgent):
        signature = QASignature

        def process_with_errors(self, data: str) -> dict:
            try:
                result = self.run(data=data)
                return result
            except ValueError as e:
                return {"error": "Invalid input", "details": str(e)}
            except TimeoutError as e:
                return {"error": "Request timeout", "details": str(e)}
            except Exception as e:
                return {"error": "Execution failed", "details": str(e)}

    out = Strict().process_with_errors("hello")
    assert out["error"] == "Invalid input"
    assert "unknown input 'data'" in out["details"] and "question" in out["details"]
    assert world.requests() == []  # refused before any call


def test_guide_session_memory_and_multi_turn(world: World) -> None:
    class ChatAgent(BaseAgent):
        def chat(self, message: str, session_id: str) -> dict:
            result = self.run(message=message, session_id=session_id)
            return result

        def conversation(self, messages: list[str], session_id: str) -> list[dict]:
            results = []
            for message in messages:
                result = self.run(message=message, session_id=session_id)
                results.append(result)
            return results

    agent = ChatAgent(MemoryConfig())
    first = agent.chat("My name is Alice", session_id="user123")
    second = agent.chat("What's my name?", session_id="user123")
    assert first["_session_id"] == second["_session_id"] == "user123"
    other = agent.conversation(["Hello", "Who am I?"], session_id="user456")
    assert [r["_session_id"] for r in other] == ["user456", "user456"]
    if world.server is not None:
        second_request = world.requests()[1]["messages"]
        assert any("My name is Alice" in m["content"] for m in second_request[:-1])  # memory sent back
        last = "\n".join(m["content"] for m in world.requests()[-1]["messages"])
        assert "Hello" in last and "Alice" not in last  # sessions never mix


def test_guide_default_and_custom_strategy(world: World) -> None:
    class MySignature(Signature):
        data: str = InputField(description="Data")
        summary: str = OutputField(description="Summary")

    class CustomStrategy(Strategy):
        """Custom execution strategy."""

        async def execute(self, signature, inputs, config):  # type: ignore[no-untyped-def]
            processed_inputs = self.preprocess(inputs)
            result = await self.llm_call(signature, processed_inputs, config)
            return self.postprocess(result)

        def preprocess(self, inputs: dict) -> dict:
            return {k: v.upper() for k, v in inputs.items()}

        def postprocess(self, result: dict) -> dict:
            return {**result, "summary": result["summary"] + " [checked]"}

    class MyAgent(BaseAgent):
        def __init__(self, config: object, strategy: Strategy | None = None) -> None:
            super().__init__(config=config, signature=MySignature(), strategy=strategy)

        def process(self, data: str) -> dict:
            result = self.run(data=data)
            return result

    assert MyAgent(MemoryConfig()).process("quarterly numbers")["summary"]
    custom = MyAgent(MemoryConfig(), strategy=CustomStrategy()).process("quarterly numbers")
    assert custom["summary"].endswith(" [checked]")
    assert custom["_tokens"]["total"] > 0  # the strategy's LLM call is counted in the run
    if world.server is not None:
        assert "QUARTERLY NUMBERS" in world.requests()[-1]["messages"][-1]["content"]


def test_guide_batch_and_parallel_execution(world: World) -> None:
    class ItemSignature(Signature):
        item: str = InputField()
        label: str = OutputField()

    class BatchAgent(BaseAgent):
        def batch_process(self, items: list[str]) -> list[dict]:
            results = []
            for item in items:
                result = self.run(item=item)
                results.append(result)
            return results

        async def batch_process_async(self, items: list[str]) -> list[dict]:
            tasks = [self._process_one_async(item) for item in items]
            results = await asyncio.gather(*tasks)
            return results

        async def _process_one_async(self, item: str) -> dict:
            return await self.strategy.execute(self.signature, {"item": item}, self.config)

    agent = BatchAgent(config=MemoryConfig(), signature=ItemSignature())
    assert len(agent.batch_process(["a", "b", "c"])) == 3
    parallel = asyncio.run(agent.batch_process_async(["x", "y"]))
    assert [sorted(r) for r in parallel] == [["label"], ["label"]]  # the strategy's bare outputs
    if world.server is not None:
        assert len(world.requests()) == 5


def test_guide_performance_tracking_and_logging(world: World, caplog: pytest.LogCaptureFixture) -> None:
    class MetricsAgent(BaseAgent):
        signature = QASignature

        def process_with_metrics(self, data: str) -> dict:
            result = self.run(question=data)
            timing_ms = result.get("_timing", 0)
            tokens_used = result.get("_tokens", {})
            estimated_cost = result.get("_cost", 0.0)
            print(f"Execution time: {timing_ms}ms")
            print(f"Tokens: {tokens_used}")
            print(f"Cost: ${estimated_cost:.4f}")
            return result

        def process_with_custom_tracking(self, data: str) -> dict:
            start_time = time.time()
            result = self.run(question=data)
            duration = (time.time() - start_time) * 1000
            result["custom_duration_ms"] = duration
            self._log_metrics({"duration_ms": duration, "success": True, "data_size": len(data)})
            return result

    agent = MetricsAgent(MemoryConfig())
    with caplog.at_level(logging.DEBUG, logger="dagwright"):
        result = agent.process_with_metrics("What is AI?")
        tracked = agent.process_with_custom_tracking("What is ML?")
    assert result["_timing"] > 0 and result["_tokens"]["total"] > 0
    assert tracked["custom_duration_ms"] >= 0
    calls = [r for r in caplog.records if r.getMessage().startswith("agent MetricsAgent: model")]
    assert len(calls) == 2 and "tokens" in calls[0].getMessage()
    assert agent.logged_metrics[-1]["data_size"] == len("What is ML?")
    if world.server is not None:
        assert result["_cost"] > 0


def test_guide_common_patterns(world: World) -> None:
    @contextmanager
    def timeout(seconds):  # type: ignore[no-untyped-def]
        def handler(signum, frame):  # type: ignore[no-untyped-def]
            raise TimeoutError()

        signal.signal(signal.SIGALRM, handler)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)

    class Robust(BaseAgent):
        signature = "data: str -> result: str, confidence: float"

        def process_with_retry(self, data: str, max_retries: int = 3) -> dict:
            for attempt in range(max_retries):
                try:
                    result = self.run(data=data)
                    return result
                except Exception as e:
                    if attempt == max_retries - 1:
                        raise
                    print(f"Attempt {attempt + 1} failed: {e}")
                    time.sleep(2**attempt)
            raise AssertionError("unreachable")

        def process_with_timeout(self, data: str, timeout_sec: int = 30) -> dict:
            with timeout(timeout_sec):
                result = self.run(data=data)
            return result

        def process_with_validation(self, data: str) -> dict:
            if not data or len(data) < 10:
                raise ValueError("Input too short")
            result = self.run(data=data)
            if result.get("confidence", 0) < 0.5:
                result["warning"] = "Low confidence result"
            return result

    agent = Robust(MemoryConfig())
    assert agent.process_with_retry("a long enough input")["result"]
    assert agent.process_with_timeout("a long enough input")["result"]
    with pytest.raises(ValueError, match="Input too short"):
        agent.process_with_validation("short")
    checked = agent.process_with_validation("a long enough input")
    assert ("warning" in checked) == (checked["confidence"] < 0.5)


def test_result_helpers_read_leniently() -> None:
    result = ExecutionResult({"keywords": '["a", "b"]', "steps": "- one\n2. two\n", "score": "85%", "meta": "{}"}, {})
    assert result.extract_list("keywords") == ["a", "b"]
    assert result.extract_list("steps") == ["one", "two"]
    assert result.extract_list("missing", default=["x"]) == ["x"]
    assert result.extract_float("score") == pytest.approx(0.85)
    assert result.extract_dict("meta") == {} and result.extract_dict("missing", {"k": 1}) == {"k": 1}
    assert result.extract_str("keywords") == '["a", "b"]'
    assert json.loads(result.extract_str("meta")) == {}


# --------------------------------------------------------------------------- execution-engine-adr.txt


def test_adr_layer1_direct_execution(world: World) -> None:
    kaizen = Kaizen()
    agent = kaizen.create_agent("researcher", config={"model": "gpt-4"})
    result = agent.execute(task="Research machine learning trends", context={"focus": "enterprise applications"})
    assert result.success and isinstance(result.answer, str) and result.data == {"answer": result.answer}
    assert result.metadata.execution_time == result.metadata["timing"] > 0
    assert result.metadata.token_usage["total"] > 0

    signature = kaizen.create_signature("question: str -> answer: str, confidence: float")
    agent = kaizen.create_agent("qa_agent", signature=signature)
    result = agent.execute(question="What is machine learning?")
    print(result.answer, result.confidence)
    assert isinstance(result.confidence, float)
    if world.server is not None:
        sent = _sent(world)
        assert "Research machine learning trends" in sent and "enterprise applications" in sent
        assert world.requests()[0]["model"] == "gpt-4"


def test_adr_stateful_execution_with_vector_memory(world: World) -> None:
    kaizen = Kaizen()
    agent = kaizen.create_agent("researcher", config={"model": "gpt-4"})
    agent.enable_memory(provider="vector_db")
    result1 = agent.execute(task="Remember: User prefers technical details")
    result2 = agent.execute(task="Explain neural networks")  # Uses remembered context
    assert result1.success and result2.success
    assert result1.metadata.session_id == result2.metadata.session_id  # one session without a session_id
    if world.server is not None:
        history = world.requests()[1]["messages"][1:-1]
        assert any("User prefers technical details" in m["content"] for m in history)


def test_adr_integration_direct_execution_pattern(world: World) -> None:
    kaizen = Kaizen()
    doc_content = "Revenue grew 12% in Q3. Costs fell. The board approved a new product line."
    agent = kaizen.create_agent("assistant", {"model": "gpt-4"})
    result = agent.execute(task="Summarize this document", document=doc_content)
    assert result.answer  # a free-form agent answers in text
    with pytest.raises(AttributeError, match=r"no output 'summary'.*without a signature answers in 'answer'"):
        print(result.summary)

    signature = kaizen.create_signature("document: str -> summary: str, key_points: List[str]")
    agent = kaizen.create_agent("summarizer", signature=signature)
    result = agent.execute(document=doc_content)
    print(result.summary, result.key_points)
    assert isinstance(result.key_points, list)

    agent = kaizen.create_agent("assistant", {"model": "gpt-4"})
    agent.enable_memory()
    agent.execute(task="Remember: User prefers bullet points")
    result = agent.execute(task="Summarize the quarterly report")  # Uses memory
    assert result.success
    if world.server is not None:
        assert any("User prefers bullet points" in m["content"] for m in world.requests()[-1]["messages"][:-1])


def test_adr_layer3_coordination_with_role_names(world: World) -> None:
    kaizen = Kaizen(config={"model": "gpt-4"})
    debate_result = kaizen.create_debate_workflow(
        agents=["optimist", "pessimist", "moderator"], topic="AI adoption strategy", rounds=3
    )
    pipeline = kaizen.create_pipeline(
        [
            ("data_collector", {"source": "web"}),
            ("analyzer", {"depth": "detailed"}),
            ("reporter", {"format": "executive_summary"}),
        ]
    )
    consensus = kaizen.create_consensus_workflow(
        agents=["expert1", "expert2", "expert3"], decision_criteria="majority_vote", confidence_threshold=0.8
    )
    supervisor = kaizen.create_supervisor_agent(
        "manager",
        {"workers": ["researcher", "analyst", "writer"], "task_allocation": "automatic", "quality_control": True},
    )
    assert debate_result.run().outputs["transcript"]  # 3 rounds x 2 debaters
    assert len(debate_result.run().outputs["transcript"]) == 6
    assert pipeline.run(task="Market for solar panels").outputs["result"]
    assert consensus.run(question="Adopt it?").outputs["reason"]
    assert supervisor.run(task="Write a market brief").outputs["answer"]
    if world.server is not None:
        assert "Context: source=web" in _sent(world) and "Context: format=executive_summary" in _sent(world)


def test_adr_multi_agent_workflows_on_kailash(world: World) -> None:
    from kailash.runtime.local import LocalRuntime

    kaizen = Kaizen(config={"model": "gpt-4"})
    optimist_agent = kaizen.create_agent("optimist", signature="topic: str, transcript: list[str] -> argument: str")
    pessimist_agent = kaizen.create_agent("pessimist", signature="topic: str, transcript: list[str] -> argument: str")
    moderator_agent = kaizen.create_agent(
        "moderator", signature="topic: str, transcript: list[str] -> decision: str, rationale: str"
    )
    research_agent = kaizen.create_agent("research", signature="task: str -> result: str")
    analysis_agent = kaizen.create_agent("analysis", signature="task: str -> result: str")
    summary_agent = kaizen.create_agent("summary", signature="task: str -> result: str")
    expert1, expert2, expert3 = (
        kaizen.create_agent(f"expert{i}", signature="question: str -> decision: str, confidence: float")
        for i in (1, 2, 3)
    )
    runtime = LocalRuntime()

    debate = kaizen.create_debate_workflow(
        agents=[optimist_agent, pessimist_agent, moderator_agent],
        topic="Should we adopt AI in healthcare?",
        rounds=3,
    )
    results, run_id = runtime.execute(debate.build())
    assert results["verdict"]["decision"] and run_id

    pipeline = kaizen.create_pipeline(
        [
            (research_agent, {"focus": "technical"}),
            (analysis_agent, {"depth": "detailed"}),
            (summary_agent, {"format": "executive"}),
        ]
    )
    results, run_id = runtime.execute(pipeline.build(), parameters=pipeline.kailash_parameters(task="AI in care"))
    assert results["summary"]["result"]

    consensus = kaizen.create_consensus_workflow(
        agents=[expert1, expert2, expert3], decision_criteria="weighted_vote", confidence_threshold=0.85
    )
    final_decision = runtime.execute(consensus.build(), parameters=consensus.kailash_parameters(question="Go?"))
    assert final_decision[0]["vote"]["agreement"] > 0
    runtime.close()
    if world.server is not None:
        assert "Context: focus=technical" in _sent(world) and "Context: depth=detailed" in _sent(world)


def test_guide_integration_with_core_sdk(world: World) -> None:
    from kailash.runtime.local import LocalRuntime

    from dagwright import WorkflowBuilder

    class MyAgent(BaseAgent):
        pass

    config = MemoryConfig()
    agent = MyAgent(config)
    workflow = agent.to_workflow()
    with LocalRuntime() as runtime:
        results, run_id = runtime.execute(workflow.build())
    assert isinstance(results["MyAgent"]["answer"], str) and run_id

    def create_workflow_with_agent(agent: BaseAgent) -> WorkflowBuilder:
        workflow = WorkflowBuilder()
        # Kailash has no PreprocessNode / PostprocessNode: its PythonCodeNode stands in for both.
        workflow.add_node("PythonCodeNode", "preprocess", {"code": "result = {'task': data.strip()}"})
        agent_workflow = agent.to_workflow()
        workflow.add_subworkflow("agent", agent_workflow.build())
        workflow.add_node("PythonCodeNode", "postprocess", {"code": "result = {'report': MyAgent_answer.upper()}"})
        workflow.add_connection("preprocess", "result.task", "agent", "MyAgent_task")
        workflow.add_connection("agent", "postprocess")
        return workflow

    with LocalRuntime() as runtime:
        results, _ = runtime.execute(
            create_workflow_with_agent(agent).build(), parameters={"preprocess": {"data": "  Brief the board  "}}
        )
    assert results["postprocess"]["result"]["report"] == results["agent"]["MyAgent_answer"].upper()
    if world.server is not None:
        assert "Brief the board" in world.requests()[-1]["messages"][-1]["content"]


def test_adr_layer2_workflow_integration(world: World) -> None:
    from kailash.runtime.local import LocalRuntime

    from dagwright import WorkflowBuilder

    kaizen = Kaizen(config={"model": "gpt-4"})
    signature = kaizen.create_signature("question: str -> answer: str, confidence: float")
    research_agent = kaizen.create_agent("research", signature="topic: str -> findings: str")
    analysis_agent = kaizen.create_agent("analysis", signature="findings: str -> answer: str")
    runtime = LocalRuntime()

    agent = kaizen.create_agent("processor", signature=signature)
    workflow = WorkflowBuilder()
    agent_node = agent.to_workflow_node("processing_step")
    workflow.add_node_instance(agent_node)
    results, _ = runtime.execute(workflow.build(), parameters={"processing_step": {"question": "Why DAGs?"}})
    assert results["processing_step"]["answer"]

    agent_workflow = agent.to_workflow()
    results, run_id = runtime.execute(agent_workflow.build(), parameters={"processor": {"question": "Why?"}})
    assert results["processor"]["confidence"] >= 0 and run_id

    workflow = WorkflowBuilder()
    workflow.add_agent(research_agent, "research")
    workflow.add_agent(analysis_agent, "analysis")
    workflow.add_connection("research", "analysis")
    results, _ = runtime.execute(workflow.build(), parameters={"research": {"topic": "Compilers"}})
    assert results["analysis"]["answer"]
    runtime.close()
    if world.server is not None:
        assert results["research"]["findings"] in world.requests()[-1]["messages"][-1]["content"]


def test_adr_integration_workflow_pattern(world: World) -> None:
    from kailash.runtime.local import LocalRuntime

    from dagwright import WorkflowBuilder

    kaizen = Kaizen()
    research_agent = kaizen.create_agent("research", signature="topic: str -> findings: str")
    analysis_agent = kaizen.create_agent("analysis", signature="findings: str -> summary: str")
    agent = kaizen.create_agent("processor", signature="rows: str -> summary: str")

    workflow = WorkflowBuilder()
    research_node = research_agent.to_workflow_node("research")
    analysis_node = analysis_agent.to_workflow_node("analysis")
    workflow.add_node_instance(research_node)
    workflow.add_node_instance(analysis_node)
    workflow.add_connection("research", "analysis")
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(workflow.build(), parameters={"research": {"topic": "Rust"}})
    assert results["analysis"]["summary"]

    # Kailash has no DataLoaderNode or OutputFormatterNode: PythonCodeNode stands in for both.
    workflow = WorkflowBuilder()
    workflow.add_node("PythonCodeNode", "load", {"code": "result = 'a,b,c'"})
    workflow.add_node_instance(agent.to_workflow_node("process"))
    workflow.add_node("PythonCodeNode", "format", {"code": "import json\nresult = json.dumps({'summary': summary})"})
    # A PythonCodeNode's one output is 'result': that hop names its ports; the agent's 'summary' matches by name.
    workflow.add_connections([("load", "result", "process", "rows"), ("process", "format")])
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(workflow.build())
    assert json.loads(results["format"]["result"]) == {"summary": results["process"]["summary"]}


def test_adr_layer4_enterprise_execution_management(
    world: World, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # enable_audit_logging() writes dagwright-audit.jsonl here
    kaizen = Kaizen(config={"model": "gpt-4"})
    agent = kaizen.create_agent("qa_agent", signature="question: str -> answer: str, confidence: float")

    execution_monitor = agent.get_execution_monitor()
    execution_monitor.enable_real_time_tracking()
    execution_monitor.set_performance_alerts(latency_threshold=5000)

    optimizer = agent.get_execution_optimizer()
    optimizer.enable_auto_optimization()
    optimizer.set_optimization_targets(["latency", "accuracy", "cost"])

    agent.enable_audit_logging()
    agent.set_access_policy("team_lead_approval_required")

    denied = agent.execute(question="What is ML?")  # execute() reports failures in the result
    assert not denied.success and denied.error_type == "PermissionError"
    assert "team lead approval required" in str(denied.error)
    with pytest.raises(PermissionError, match="team lead approval required"):
        agent.run(question="What is ML?")  # run() raises
    assert world.requests() == []  # denied before any request
    agent.get_access_policy().approve("dana", note="ADR example")
    for _ in range(3):  # the same question: the optimizer turns the cache on by itself
        assert agent.execute(question="What is ML?").success
    assert agent.get_execution_optimizer() is optimizer
    assert [a.action for a in optimizer.applied] == ["enable_cache"] and agent.cache is not None
    assert agent.execute(question="What is ML?").metadata.cache == "miss"  # stored now
    assert agent.execute(question="What is ML?").metadata.cache == "hit"
    assert execution_monitor.metrics()["count"] == 5  # the denial is in the audit log, not among the runs
    events = [json.loads(line)["event"] for line in (tmp_path / "dagwright-audit.jsonl").read_text().splitlines()]
    assert events[:4] == ["denied", "denied", "approved", "execution"]
    if world.server is not None:
        assert len(world.requests()) == 4  # the cache answered the last


def test_adr_enhanced_agent_class_and_config_as_a_mapping(world: World) -> None:
    from dagwright import Agent

    agent = Agent("researcher", model="gpt-4", temperature=0.2, focus="enterprise")
    assert agent.id == agent.name == "researcher" and agent.free_form
    # What the ADR's AgentWorkflowConverter reads from agent.config:
    assert agent.config.get("model", "gpt-4") == "gpt-4"
    assert agent.config.get("temperature", 0.7) == 0.2
    assert agent.config.get("system_prompt", "") == ""  # unset: absent from the mapping
    settings = {**agent.config}
    assert settings["focus"] == "enterprise" and "system_prompt" not in settings
    assert Agent("qa", "question -> answer").run(question="Why?")["answer"]
    assert Agent("cfg", {"model": "gpt-4", "llm_provider": "openai"}).config.provider == "openai"
    with pytest.raises(TypeError, match=r"Agent\('x'\): the second argument is a signature or a config"):
        Agent("x", {"model": "gpt-4"}, config={"model": "gpt-4o"})
    with pytest.raises(ValueError, match="config gives llm_provider='openai' and provider='offline'; give one"):
        Agent("y", llm_provider="openai", provider="offline")
    result = agent.execute(task="List three enterprise uses of agents")
    assert result.success and result.answer


def test_vector_memory_recalls_the_most_relevant_turns_in_order() -> None:
    from dagwright.llm.memory import RelevanceMemory, Turn, bm25

    memory = RelevanceMemory()
    turns = [
        Turn("Remember: the launch date is March 3", "Noted."),
        Turn("What is the weather like?", "Sunny."),
        Turn("Tell me a joke", "A compiler walks into a bar."),
        Turn("Who is the launch owner?", "Dana."),
    ]
    for turn in turns:
        asyncio.run(memory.append("s", turn))
    recalled = asyncio.run(memory.recall("s", "When is the launch?", 2))
    assert recalled == [turns[0], turns[3]]  # the two launch turns, in the order they happened
    assert asyncio.run(memory.recall("s", "nothing in common", 2)) == turns[2:]  # no overlap: the most recent
    assert asyncio.run(memory.recall("other", "launch", 2)) == []
    scores = bm25("launch date", ["the launch date", "a launch", "weather"])
    assert scores[0] > scores[1] > scores[2] == 0.0


def test_memory_window_defaults_to_ten_turns_and_follows_the_config(world: World) -> None:
    agent = BaseAgent(signature="message: str -> reply: str", config=MemoryConfig(), name="chat")
    for i in range(12):
        agent.run(message=f"turn {i}", session_id="s")
    if world.server is not None:
        history = world.requests()[-1]["messages"][1:-1]
        assert len(history) == 20  # ten turns of two messages: the guide's max_turns = 10
        sent = "\n".join(m["content"] + "\n" for m in history)
        assert "turn 0\n" not in sent and "turn 1\n" in sent and "turn 10\n" in sent
    agent.enable_memory(max_turns=2)
    assert agent.config.max_turns == 2
