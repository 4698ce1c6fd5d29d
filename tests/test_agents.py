"""Agents over the real ``openai`` client and the loopback OpenAI-compatible server.

Sync tests call ``agent.run``/``execute``; their async mirrors call ``arun``. Request
counts come from the server, so retries and repairs are counted, not assumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import keyword
import re
import threading
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from strategies import json_values

from dagwright import (
    BaseAgent,
    ExecutionResult,
    Flow,
    InputField,
    Kaizen,
    LLMError,
    LLMRequestError,
    OutputField,
    OutputParseError,
    Signature,
)
from dagwright.agent import AgentContext
from dagwright.compiler.signature import parse_signature
from dagwright.llm import transport
from dagwright.llm.prompt import DEFAULT_TEMPLATE, PromptError, user_message
from dagwright.testing import Fault, OpenAITestServer


class QA(Signature):
    """Answer the question."""

    question: str = InputField(description="User question")
    answer: str = OutputField(description="Answer")
    confidence: float = OutputField(description="0 to 1")


def make_agent(server: OpenAITestServer, **config: Any) -> BaseAgent:
    settings = {
        "provider": "openai",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "model": "gpt-4o-mini",
        "retry_initial_delay": 0.01,
        **config,
    }
    return BaseAgent(config=settings, signature=QA, name="qa")


# --------------------------------------------------------------------------- happy path


def test_run_returns_outputs_and_metadata(server: OpenAITestServer) -> None:
    out = make_agent(server).run(question="What is ML?")
    assert isinstance(out["answer"], str) and out["answer"]
    assert 0.0 <= out["confidence"] <= 1.0
    assert out["_model"] == "gpt-4o-mini"
    tokens = out["_tokens"]
    assert tokens["total"] == tokens["prompt"] + tokens["completion"] > 0
    expected = (tokens["prompt"] * 0.15 + tokens["completion"] * 0.60) / 1_000_000
    assert out["_cost"] == pytest.approx(expected)
    assert out["_cost_known"] is True
    assert out["_timing"] > 0
    assert server.request_count == 1
    request = server.requests[0]
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["answer", "confidence"]
    assert schema["additionalProperties"] is False
    assert "Answer the question." in request["messages"][0]["content"]
    assert "What is ML?" in request["messages"][-1]["content"]


async def test_arun_mirrors_run(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    out = await agent.arun(question="What is ML?")
    again = agent.run(question="What is ML?")  # sync front, called inside this running loop
    assert out["answer"] == again["answer"]
    assert server.request_count == 2


def test_unknown_model_cost_is_flagged(server: OpenAITestServer) -> None:
    out = make_agent(server, model="my-local-model").run(question="q")
    assert out["_cost"] == 0.0
    assert out["_cost_known"] is False


def test_execute_result(server: OpenAITestServer) -> None:
    result = make_agent(server).execute(question="What is ML?")
    assert isinstance(result, ExecutionResult)
    assert result.success and result.error is None
    assert result.answer == result.data["answer"]
    assert set(result.data) == {"answer", "confidence"}
    assert result.metadata["model"] == "gpt-4o-mini"
    with pytest.raises(AttributeError, match="no output 'answr'; outputs: answer, confidence"):
        _ = result.answr


def test_execute_reports_llm_failure_without_raising(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=401))
    result = make_agent(server).execute(question="q")
    assert not result.success
    assert result.error_type == "LLMRequestError"
    assert "HTTP 401" in (result.error or "")


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"question": 3}, "input 'question' expects str, got int 3"),
        ({}, "missing required input 'question' (str)"),
        ({"question": "q", "questoin": "q"}, "unknown input 'questoin' (did you mean 'question'?)"),
    ],
)
def test_inputs_are_validated_before_any_call(server: OpenAITestServer, inputs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        make_agent(server).run(**inputs)
    assert server.request_count == 0


def test_defaults_fill_optional_inputs(server: OpenAITestServer) -> None:
    agent = BaseAgent(
        config={"provider": "openai", "base_url": server.base_url, "api_key": "k"},
        signature="question: str, style: str = 'terse' -> answer: str",
    )
    agent.run(question="q")
    assert "terse" in server.requests[0]["messages"][-1]["content"]


def test_misspelt_config_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown config key 'temprature'; did you mean 'temperature'"):
        BaseAgent(config={"temprature": 0.2}, signature=QA)


def test_config_as_dataclass_and_role_context() -> None:
    from dataclasses import dataclass

    @dataclass
    class Settings:
        model: str = "gpt-4o"
        temperature: float = 0.1

    agent = BaseAgent(config=Settings(), signature=QA)
    assert agent.config.model == "gpt-4o"
    role = BaseAgent(config={"source": "web"}, signature=QA)
    assert role.config.extra == {"source": "web"}


# --------------------------------------------------------------------------- retries and failures


def test_transient_failures_are_retried_exactly(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=500), Fault(status=503))
    out = make_agent(server, max_retries=3).run(question="q")
    assert out["answer"]
    assert server.request_count == 3


def test_retry_after_is_honored(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=429, retry_after=0.3))
    agent = make_agent(server, max_retries=1)
    loop_time = []

    async def timed() -> None:
        start = asyncio.get_running_loop().time()
        await agent.arun(question="q")
        loop_time.append(asyncio.get_running_loop().time() - start)

    asyncio.run(timed())
    assert server.request_count == 2
    assert loop_time[0] >= 0.3  # the wait the server asked for, not the 0.01 s backoff


def test_retries_exhausted(server: OpenAITestServer) -> None:
    server.enqueue(*[Fault(status=500)] * 3)
    with pytest.raises(LLMError, match=r"failed after 3 attempt\(s\) \(HTTP 500\)"):
        make_agent(server, max_retries=2).run(question="q")
    assert server.request_count == 3


def test_unauthorized_is_not_retried_and_quotes_the_server() -> None:
    with OpenAITestServer(api_key="right-key") as srv:
        agent = make_agent(srv, api_key="wrong-key", max_retries=5)
        with pytest.raises(LLMRequestError, match="HTTP 401") as info:
            agent.run(question="q")
        assert srv.request_count == 1
        assert info.value.status == 401


def test_timeout_after_retries(server: OpenAITestServer) -> None:
    server.enqueue(Fault(delay=1.0), Fault(delay=1.0))
    with pytest.raises(TimeoutError, match=r"did not answer within 0.2 s \(2 attempt\(s\)\)"):
        make_agent(server, timeout=0.2, max_retries=1).run(question="q")


def test_connection_refused_names_the_server() -> None:
    with OpenAITestServer() as srv:
        url = srv.base_url
    agent = BaseAgent(
        config={"provider": "openai", "base_url": url, "api_key": "k", "max_retries": 1, "retry_initial_delay": 0.01},
        signature=QA,
    )
    with pytest.raises(LLMError, match=re.escape("cannot reach gpt-4o-mini at http://127.0.0.1")):
        agent.run(question="q")


def test_json_schema_rejected_by_a_llama_cpp_like_server_says_what_to_change() -> None:
    with OpenAITestServer(reject_json_schema=True) as srv:
        # A fixed mode is used as it is: the refusal is not retried and says what to change.
        with pytest.raises(LLMError, match="structured_output='json_object'"):
            make_agent(srv, structured_output="json_schema", max_retries=3).run(question="q")
        assert srv.request_count == 1
        out = make_agent(srv, structured_output="json_object").run(question="q")
        assert out["answer"]
        assert srv.requests[-1]["response_format"]["type"] == "json_object"
        assert srv.requests[-1]["response_format"]["schema"]["required"] == ["answer", "confidence"]


def test_prompt_mode_puts_the_schema_in_the_prompt(server: OpenAITestServer) -> None:
    out = make_agent(server, structured_output="prompt").run(question="q")
    assert out["answer"]
    request = server.requests[0]
    assert "response_format" not in request
    assert "<output_schema>" in request["messages"][0]["content"]


# --------------------------------------------------------------------------- parsing and repair


@pytest.mark.parametrize("fault", [Fault(malformed=True), Fault(empty=True), Fault(schema_violation=True)])
def test_a_bad_reply_is_repaired_once(server: OpenAITestServer, fault: Fault) -> None:
    server.enqueue(fault)
    out = make_agent(server).run(question="q")
    assert out["answer"]
    assert server.request_count == 2
    first, repair = (r["messages"] for r in server.requests)
    # The question again, followed by what was wrong; the bad reply is not shown (small models copy it).
    assert [m["role"] for m in repair] == [m["role"] for m in first]
    assert repair[-1]["content"].startswith(first[-1]["content"])
    assert "Your previous reply could not be used: " in repair[-1]["content"]


def test_unrepairable_reply_keeps_the_raw_text(server: OpenAITestServer) -> None:
    server.enqueue(Fault(content="not json at all"), Fault(content='{"answer": "a"}'))
    with pytest.raises(OutputParseError) as info:
        make_agent(server).run(question="q")
    assert info.value.first_raw == "not json at all"
    assert info.value.raw == '{"answer": "a"}'
    assert any("confidence" in e for e in info.value.errors)
    assert server.request_count == 2


def test_empty_reply_never_becomes_none_fields(server: OpenAITestServer) -> None:
    server.enqueue(Fault(empty=True), Fault(empty=True))
    with pytest.raises(OutputParseError, match="the reply is empty"):
        make_agent(server).run(question="q")


def test_literal_outputs_are_enforced(server: OpenAITestServer) -> None:
    agent = BaseAgent(
        config={"provider": "openai", "base_url": server.base_url, "api_key": "k"},
        signature="question -> verdict: Literal['yes', 'no']",
    )
    server.enqueue(Fault(content=json.dumps({"verdict": "maybe"})))
    out = agent.run(question="q")
    assert out["verdict"] in ("yes", "no")
    assert server.request_count == 2
    assert server.requests[0]["response_format"]["json_schema"]["schema"]["properties"]["verdict"]["enum"] == [
        "yes",
        "no",
    ]


# --------------------------------------------------------------------------- memory


def test_memory_sessions_never_leak(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    agent.enable_memory(max_turns=5)
    agent.run(question="My name is Alice", session_id="u1")
    agent.run(question="My name is Bob", session_id="u2")
    out = agent.run(question="What is my name?", session_id="u1")
    assert out["_session_id"] == "u1"
    third = json.dumps(server.requests[2]["messages"])
    assert "Alice" in third and "Bob" not in third
    roles = [m["role"] for m in server.requests[2]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_memory_keeps_only_max_turns(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    agent.enable_memory(max_turns=2)
    for i in range(4):
        agent.run(question=f"turn {i}", session_id="s")
    last = server.requests[-1]["messages"]
    sent = json.dumps(last[1:-1])
    assert "turn 1" in sent and "turn 2" in sent and "turn 0" not in sent


def test_sqlite_memory_survives_a_restart(server: OpenAITestServer, tmp_path: Any) -> None:
    path = str(tmp_path / "memory.db")
    first = make_agent(server)
    first.enable_memory(provider="sqlite", path=path)
    first.run(question="Remember the code 4711", session_id="s")
    second = make_agent(server)  # a new process would see the same file
    second.enable_memory(provider="sqlite", path=path)
    second.run(question="What was the code?", session_id="s")
    assert "4711" in json.dumps(server.requests[-1]["messages"])


def test_sqlite_memory_needs_a_path() -> None:
    with pytest.raises(ValueError, match="needs path="):
        BaseAgent(signature=QA).enable_memory(provider="sqlite")


# --------------------------------------------------------------------------- concurrency, loops, clients


def test_run_batch_runs_concurrently_and_keeps_order() -> None:
    with OpenAITestServer(latency=0.25) as srv:
        agent = make_agent(srv)
        questions = [{"question": f"question {i}"} for i in range(6)]
        outs = agent.run_batch(questions, concurrency=6)
        assert [o["answer"] for o in outs] == [agent.run(**q)["answer"] for q in questions]
        starts = sorted(o["_timing"] for o in outs)
        # Six requests of 0.25 s each finished together: each took about one latency, not six.
        assert starts[-1] < 6 * 250 * 0.8


def test_run_inside_a_running_loop_does_not_hang(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    results: list[dict[str, Any]] = []

    async def handler() -> None:  # like an async web handler calling the sync API
        results.append(agent.run(question="q"))

    thread = threading.Thread(target=lambda: asyncio.run(handler()))
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert results and results[0]["answer"]


async def test_one_client_per_server_and_key(server: OpenAITestServer) -> None:
    a = make_agent(server)
    b = make_agent(server)
    await a.arun(question="1")
    await b.arun(question="2")
    clients = transport._clients[asyncio.get_running_loop()]
    assert list(clients) == [(server.base_url, "sk-test")]


def test_environment_configures_the_openai_provider(server: OpenAITestServer, monkeypatch: Any) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    out = BaseAgent(signature=QA).run(question="q")
    assert out["_model"] == "gpt-4o-mini"
    assert server.request_count == 1


def test_the_client_follows_the_environment_as_it_changes(monkeypatch: Any) -> None:
    agent = BaseAgent(signature=QA, config={"provider": "openai", "max_retries": 0})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    for _ in range(2):  # a new server each time, as a test suite starts them
        with OpenAITestServer() as fresh:
            monkeypatch.setenv("OPENAI_BASE_URL", fresh.base_url)
            gone = fresh.base_url
            assert agent.run(question="q")["answer"]
            assert fresh.request_count == 1
    with pytest.raises(LLMError, match=rf"^cannot reach gpt-4o-mini at {gone} after 1 attempt"):
        agent.run(question="q")


def test_dagwright_provider_switches_every_agent(monkeypatch: Any, server: OpenAITestServer) -> None:
    agent = make_agent(server)
    monkeypatch.setenv("DAGWRIGHT_PROVIDER", "offline")
    assert agent.run(question="q")["_model"] == "dagwright-offline"
    assert server.request_count == 0
    monkeypatch.setenv("DAGWRIGHT_PROVIDER", "anthropic")
    with pytest.raises(ValueError, match=r"DAGWRIGHT_PROVIDER='anthropic': choose 'openai' or 'offline'"):
        agent.run(question="q")


def test_offline_model_is_the_default_without_configuration(monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first = BaseAgent(signature=QA).run(question="What is ML?")
    second = BaseAgent(signature=QA).run(question="What is AI?")
    assert first["_model"] == "dagwright-offline"
    assert first["answer"] != second["answer"]
    assert first["_tokens"]["total"] > 0


# --------------------------------------------------------------------------- strategies, subclasses, templates


def test_custom_strategy() -> None:
    class Echo:
        async def execute(self, agent: BaseAgent, inputs: dict[str, Any], context: AgentContext) -> dict[str, Any]:
            return {"answer": inputs["question"].upper(), "confidence": 1.0}

    assert BaseAgent(signature=QA, strategy=Echo()).run(question="hi")["answer"] == "HI"


def test_subclass_with_class_signature(server: OpenAITestServer) -> None:
    class QAAgent(BaseAgent):
        signature = QA

        def ask(self, q: str) -> dict[str, Any]:
            return self.run(question=q)

    agent = QAAgent(config={"provider": "openai", "base_url": server.base_url, "api_key": "k"})
    assert agent.signature.input_fields["question"].description == "User question"
    assert agent.ask("What is ML?")["answer"]


def test_user_template_renders_in_the_sandbox(server: OpenAITestServer) -> None:
    agent = make_agent(server, prompt_template="Q: {{ question | upper }}")
    agent.run(question="what is ml?")
    assert server.requests[0]["messages"][-1]["content"] == "Q: WHAT IS ML?"
    unsafe = make_agent(server, prompt_template="{{ question.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(PromptError, match="qa: the prompt template failed to render"):
        unsafe.run(question="q")


def test_kaizen_facade_defaults_and_overrides() -> None:
    kaizen = Kaizen(config={"model": "gpt-4o", "temperature": 0.1})
    sig = kaizen.create_signature("question: str -> answer: str", "Be brief.", descriptions={"question": "Q"})
    agent = kaizen.create_agent("qa", signature=sig, config={"temperature": 0.7})
    assert agent.name == "qa"
    assert agent.config.model == "gpt-4o" and agent.config.temperature == 0.7
    assert sig.instructions == "Be brief."
    assert sig.input_fields["question"].description == "Q"


# --------------------------------------------------------------------------- agents in flows


def test_agent_node_records_usage_in_the_run(server: OpenAITestServer) -> None:
    flow = Flow("qa")
    flow.add_agent("qa", make_agent(server))
    flow.input("question")
    result = flow.run(question="What is ML?")
    record = result.nodes["qa"]
    assert record.model == "gpt-4o-mini"
    assert record.usage is not None and record.usage.calls == 1
    assert result.usage.total == record.usage.total


class Triage(Signature):
    """Classify the ticket."""

    ticket: str = InputField()
    category: Literal["billing", "bug"] = OutputField()


def test_fail_fast_cancels_an_inflight_llm_call() -> None:
    with OpenAITestServer() as srv:
        srv.enqueue(Fault(status=400, match="boom"), Fault(delay=5.0, match="slow"))
        settings = {"provider": "openai", "base_url": srv.base_url, "api_key": "k", "max_retries": 0}
        flow = Flow("two")
        flow.add_agent("fails", BaseAgent(config=settings, signature=Triage))
        flow.add_agent("slow", BaseAgent(config=settings, signature=Triage))
        flow.input("ticket", to=["fails.ticket"])
        flow.input("other", str, to=["slow.ticket"])
        result = flow.run(ticket="boom", other="slow")
        assert not result.success
        assert result.nodes["fails"].status == "failed"
        assert result.nodes["slow"].status == "cancelled"
        assert result.duration_ms < 4000  # the 5 s reply was not waited for


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
                lambda name: not keyword.iskeyword(name) and name != "out"  # "out" is the output's name
            ),
            st.text(max_size=12),
            json_values,
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda field: field[0],
    )
)
def test_the_default_prompt_is_the_default_template_rendered(fields: list[tuple[str, str, Any]]) -> None:
    """The user message is rendered without jinja2 when no template is set: it must be the same text."""
    text = ", ".join(f"{name}: Any" for name, _, _ in fields) + " -> out"
    spec = parse_signature(text)
    spec = dataclasses.replace(
        spec,
        inputs=tuple(
            dataclasses.replace(f, description=description)
            for f, (_, description, _) in zip(spec.inputs, fields, strict=True)
        ),
    )
    inputs = {name: value for name, _, value in fields}
    assert user_message(spec, inputs, None) == user_message(spec, inputs, DEFAULT_TEMPLATE)


def test_list_and_dict_defaults_work_in_agents_flows_and_patterns() -> None:
    kaizen = Kaizen()
    debaters = [
        kaizen.create_agent(name, signature="topic: str, transcript: list[str] = [] -> argument: str")
        for name in ("pro", "con")
    ]
    judge = kaizen.create_agent(
        "judge", signature="topic: str, transcript: list[str] = [], weights: dict[str, float] = {} -> verdict: str"
    )
    assert debaters[0].run(topic="tides")["argument"]
    assert judge.execute(topic="tides").success
    debate = kaizen.create_debate_workflow(agents=[*debaters, judge], topic="Close the centre to cars?", rounds=2)
    result = debate.run()
    assert result.success, result.error
    assert set(result.outputs) == {"verdict", "transcript"}
    # The judge's optional `weights` is an optional input of the debate, with the judge's default.
    assert "weights" not in debate.validate() and debate.run(weights={"pro": 2.0}).success
    (weights,) = [n for n in debate.compile().input_nodes if n.id == "input:weights"]
    assert weights.config["default"] == {}
    flow = Flow("single")
    flow.add_agent("judge", judge)
    flow.input("topic")
    assert flow.run(topic="tides").success


def test_patterns_declare_shared_inputs_by_what_the_members_need() -> None:
    kaizen = Kaizen()

    def voter(name: str, fields: str) -> Any:
        return kaizen.create_agent(name, signature=f"question: str, {fields} -> decision: str, confidence: float")

    needs = [voter("a", "context: str"), voter("b", "context: str = 'none'")]
    same = [voter("c", "context: str = 'none'"), voter("d", "context: str = 'none'")]
    differ = [voter("e", "context: str = 'x'"), voter("f", "context: str = 'y'")]
    inputs = {
        label: {
            n.id: n.config.get("default", "required")
            for n in kaizen.create_consensus_workflow(agents=group).compile().input_nodes
        }
        for label, group in (("needs", needs), ("same", same), ("differ", differ))
    }
    assert inputs["needs"] == {"input:question": "required", "input:context": "required"}
    assert inputs["same"] == {"input:question": "required", "input:context": "none"}
    assert inputs["differ"] == {"input:question": "required"}  # each voter keeps its own default
    assert kaizen.create_consensus_workflow(agents=differ).run(question="Ship it?").success

    steps = [
        kaizen.create_agent("draft", signature="topic: str, notes: list[str] = [] -> text: str"),
        kaizen.create_agent("edit", signature="text: str, notes: list[str] = [] -> final: str"),
    ]
    pipeline = kaizen.create_pipeline(steps)
    (notes,) = [n for n in pipeline.compile().input_nodes if n.id == "input:notes"]
    assert notes.config["default"] == ()  # frozen in the IR; nodes receive a fresh []
    assert pipeline.run(topic="tides").success
    assert pipeline.run(topic="tides", notes=["short"]).success


def test_list_and_dict_flow_input_defaults_arrive_as_fresh_plain_values() -> None:
    seen: list[Any] = []

    def grow(items: list[int], table: dict[str, int]) -> int:
        seen.append((type(items), type(table), list(items), dict(table)))
        items.append(1)  # a node mutating its input must not change the next run's default
        table["k"] = 1
        return len(items)

    flow = Flow("defaults")
    flow.add_function("grow", grow)
    flow.input("items", default=[])
    flow.input("table", default={})
    assert [flow.run().outputs for _ in range(2)] == [{"output": 1}, {"output": 1}]
    assert seen == [(list, dict, [], {})] * 2


class Finding(BaseModel):
    claim: str
    score: float


class Research(Signature):
    """Research the topic."""

    topic: str = InputField()
    findings: list[Finding] = OutputField()


class Assess(Signature):
    """Assess the findings."""

    findings: list[Finding] = InputField()
    verdict: str = OutputField()


def test_model_values_cross_between_agents_and_functions(server: OpenAITestServer) -> None:
    """Functions get and give model instances; between nodes (and in prompts) they travel as JSON data."""
    got: list[Any] = []

    def strongest(findings: list[Finding]) -> Finding:
        got.extend(findings)
        return max(findings, key=lambda f: f.score)

    def gather(best: Finding) -> list[Finding]:
        got.append(best)
        return [best, Finding(claim="second", score=0.1)]

    server.enqueue(
        Fault(content=json.dumps({"findings": [{"claim": "a", "score": 0.2}, {"claim": "b", "score": 0.9}]}))
    )
    flow = Flow("models")
    config = {"base_url": server.base_url, "api_key": "k", "model": "gpt-4o-mini"}
    flow.add_agent("research", BaseAgent(signature=Research, name="research", config=config))
    flow.add_function("strongest", strongest)
    flow.add_function("gather", gather)
    flow.add_agent("assess", BaseAgent(signature=Assess, name="assess", config=config))
    flow.connect("research.findings", "strongest.findings")
    flow.connect("strongest.output", "gather.best")
    flow.connect("gather.output", "assess.findings")
    flow.input("topic")
    result = flow.run(topic="tides")
    assert result.success, result.error
    assert all(isinstance(f, Finding) for f in got) and [f.claim for f in got] == ["a", "b", "b"]
    assert result.nodes["strongest"].outputs == {"output": {"claim": "b", "score": 0.9}}
    sent = server.requests[-1]["messages"][-1]["content"]
    assert '[{"claim": "b", "score": 0.9}, {"claim": "second", "score": 0.1}]' in sent


def test_a_value_that_does_not_fit_a_model_parameter_fails_the_node_clearly() -> None:
    def raw() -> Any:  # Any: the compiler cannot tell, the node's input check can
        return [{"claim": "no score"}]

    def count(findings: list[Finding]) -> int:
        return len(findings)

    flow = Flow("strict")
    flow.add_function("raw", raw)
    flow.add_function("count", count)
    flow.connect("raw.output", "count.findings")
    result = flow.run()
    assert not result.success
    assert result.error == (
        "count: TypeError: function node 'count': input 'findings' does not fit list[Finding]: 0.score: Field required"
    )
    # Given to a flow input, the same value is refused before anything runs.
    direct = Flow("direct")
    direct.add_function("count", count)
    direct.input("findings")
    with pytest.raises(
        ValueError, match=r"input 'findings' is typed list\[Finding\], and item 0: Finding needs 'score'"
    ):
        direct.run(findings=[{"claim": "no score"}])
