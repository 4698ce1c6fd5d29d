"""Agents that call typed Python tools: schemas from signatures, the bounded loop, records, diagnostics."""

from __future__ import annotations

import asyncio
import enum
import json
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from dagwright import BaseAgent, Flow, Kaizen
from dagwright.compiler.ir import Graph
from dagwright.execution.events import RunResult
from dagwright.llm.offline import OfflineModel
from dagwright.llm.tools import Tool, ToolError, ToolLoopError, openai_tools
from dagwright.testing import Fault, OpenAITestServer


class City(BaseModel):
    name: str
    country: str = "FR"


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def forecast(city: City, days: int = 1, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, float]:
    """Forecast temperatures for a city."""
    return {f"day{i + 1}": 20.0 + i for i in range(max(1, min(days, 3)))}


async def population(city: str) -> int:
    """How many people live in a city."""
    return 2_100_000 if city else 0


class Opaque:
    """A class pydantic has no JSON schema for."""


def untyped(city, days: int):  # type: ignore[no-untyped-def]
    return days


def opaque(thing: Opaque) -> str:
    return "x"


def qa_agent(**config: Any) -> BaseAgent:
    tools = config.pop("tools", [forecast, population])
    return BaseAgent(config=config, signature="question: str -> answer: str", name="planner", tools=tools)


# --------------------------------------------------------------------------- schemas


def test_a_tool_schema_comes_from_the_signature_and_the_description_from_the_docstring() -> None:
    tool = Tool(forecast)
    assert tool.name == "forecast"
    assert tool.description == "Forecast temperatures for a city."
    schema = dict(tool.spec.parameters)
    assert schema["required"] == ["city"]
    assert schema["properties"]["days"] == {"default": 1, "title": "Days", "type": "integer"}
    assert schema["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert schema["properties"]["city"] == {"$ref": "#/$defs/City"}
    assert schema["$defs"]["City"]["required"] == ["name"]
    assert tool.spec.origin == {"kind": "python", "function": f"{__name__}:forecast"}
    assert not tool.spec.untyped and not tool.spec.unschematized
    [offered] = openai_tools([tool])
    assert offered["type"] == "function" and offered["function"]["name"] == "forecast"


async def test_a_tool_validates_its_arguments_and_returns_json_data() -> None:
    tool = Tool(forecast)
    assert await tool.call({"city": {"name": "Paris"}, "days": 2}) == {"day1": 20.0, "day2": 21.0}
    with pytest.raises(ValueError, match=r"arguments do not fit tool 'forecast': days: Input should be a valid"):
        await tool.call({"city": {"name": "Paris"}, "days": "many"})
    with pytest.raises(ValueError, match=r"city: Field required"):
        await tool.call({})


def test_tools_that_are_not_functions_are_refused_naming_their_position() -> None:
    with pytest.raises(TypeError, match=r"tools\[1\]: expected a function, a Tool or an MCP server, got int"):
        qa_agent(tools=[forecast, 3])


# --------------------------------------------------------------------------- the offline model


def test_the_offline_model_calls_each_named_tool_once_then_answers() -> None:
    agent = qa_agent()
    out = agent.run(question="Bike in Paris? Check the forecast first.")
    # Only `forecast` is named in the prompt, so only it is called; then the model answers.
    assert [c["name"] for c in out["_tool_calls"]] == ["forecast"]
    call = out["_tool_calls"][0]
    assert set(call["arguments"]) >= {"city"} and call["result"]["day1"] == 20.0
    assert call["round"] == 1 and call["duration_ms"] >= 0 and "error" not in call
    assert out["_tokens"]["total"] > 0
    assert agent.get_execution_monitor().metrics()["llm_calls"] == 2  # the tool round and the answer
    assert agent.get_execution_monitor().metrics()["retries"] == 0  # a tool round is no retry
    again = qa_agent().run(question="Bike in Paris? Check the forecast first.")
    assert again["_tool_calls"] == [{**call, "duration_ms": again["_tool_calls"][0]["duration_ms"]}]
    assert again["answer"] == out["answer"]


def test_the_offline_model_calls_every_tool_when_the_prompt_names_none() -> None:
    out = qa_agent().run(question="Should I go out?")
    assert sorted(c["name"] for c in out["_tool_calls"]) == ["forecast", "population"]


class _Schemas:
    """Parameter types whose offline arguments must validate."""

    types: tuple[Any, ...] = (str, int, float, bool, list[str], dict[str, int], City, Literal["a", "b"], Unit)


@given(st.lists(st.sampled_from(_Schemas.types), min_size=1, max_size=4), st.text(max_size=30))
def test_offline_tool_arguments_always_fit_the_tool(kinds: list[Any], question: str) -> None:
    """Whatever the parameter types and the prompt, the offline model's arguments pass the tool's own check."""
    namespace: dict[str, Any] = {}
    params = ", ".join(f"p{i}: T{i}" for i in range(len(kinds)))
    exec(f"def probe({params}) -> str:\n    return 'ok'", {f"T{i}": k for i, k in enumerate(kinds)}, namespace)
    tool = Tool(namespace["probe"])
    reply = OfflineModel().complete([{"role": "user", "content": question}], tools=openai_tools([tool]))
    [(_, name, arguments)] = reply.tool_calls
    assert name == "probe"
    assert asyncio.run(tool.call(json.loads(arguments))) == "ok"


# --------------------------------------------------------------------------- over HTTP, scripted


def test_through_the_loopback_server_the_calls_go_over_function_calling(server: OpenAITestServer) -> None:
    agent = qa_agent(base_url=server.base_url, api_key="k", model="gpt-4o-mini")
    out = agent.run(question="Use population for Lyon.")
    assert [c["name"] for c in out["_tool_calls"]] == ["population"]
    first, second = server.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["forecast", "population"]
    assistant, tool_message = second["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "population"
    assert tool_message == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "2100000"}
    assert out["_tokens"]["prompt"] > 0 and out["_tokens"]["completion"] > 0
    assert agent.get_execution_monitor().metrics()["llm_calls"] == 2
    # Both rounds are paid for: the same question without tools is one request, and costs less.
    plain = qa_agent(base_url=server.base_url, api_key="k", model="gpt-4o-mini", tools=[]).run(question="Lyon?")
    assert out["_cost_known"] and out["_cost"] > plain["_cost"] > 0


def test_malformed_arguments_and_unknown_tools_go_back_to_the_model_once(server: OpenAITestServer) -> None:
    server.enqueue(
        Fault(tool_calls=(("population", '{"city": "Ly'), ("weather_now", {"city": "Lyon"}))),
        Fault(tool_calls=(("population", {"city": "Lyon"}),)),
    )
    agent = qa_agent(base_url=server.base_url, api_key="k", tools=[population])
    out = agent.run(question="Use population for Lyon.")
    bad_args, unknown, retried = out["_tool_calls"]
    assert bad_args["error"].startswith("ValueError: the arguments of 'population' are not JSON")
    assert unknown["error"] == "LookupError: there is no tool named 'weather_now'; the tools are: population"
    assert retried == {**retried, "name": "population", "result": 2100000, "round": 2}
    told = [m["content"] for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert told[0].startswith("error: ValueError: the arguments of 'population' are not JSON")
    assert told[1].startswith("error: LookupError: there is no tool named 'weather_now'")
    assert out["answer"]


def test_a_tool_failing_twice_is_reported_with_the_transcript(server: OpenAITestServer) -> None:
    calls = (("population", "not json"),)
    server.enqueue(Fault(tool_calls=calls), Fault(tool_calls=calls))
    agent = qa_agent(base_url=server.base_url, api_key="k", tools=[population])
    with pytest.raises(ToolError, match=r"planner: tool 'population' failed again: ValueError: the arguments") as info:
        agent.run(question="Lyon?")
    assert [m["role"] for m in info.value.transcript][-4:] == ["assistant", "tool", "assistant", "tool"]


def test_the_loop_ends_at_max_tool_steps_with_the_transcript(server: OpenAITestServer) -> None:
    server.enqueue(*(Fault(tool_calls=(("population", {"city": f"c{i}"}),)) for i in range(3)))
    agent = qa_agent(base_url=server.base_url, api_key="k", tools=[population], max_tool_steps=2)
    with pytest.raises(ToolLoopError, match=r"after 2 round\(s\) of tool calls \(max_tool_steps=2\)") as info:
        agent.run(question="Lyon?")
    assert 'assistant asks: population({"city": "c0"})' in str(info.value)
    assert len(server.requests) == 3


async def test_calls_of_one_round_run_concurrently_and_each_has_its_timeout() -> None:
    both_running = asyncio.Event()
    seen: list[str] = []

    async def first(city: str) -> str:
        """Waits for the second tool: only concurrent calls can finish."""
        seen.append("first")
        await asyncio.wait_for(both_running.wait(), 5)
        return "first done"

    async def second(city: str) -> str:
        seen.append("second")
        both_running.set()
        return "second done"

    async def stuck(city: str) -> str:
        await asyncio.sleep(30)
        return "never"

    agent = qa_agent(tools=[first, second, Tool(stuck, timeout=0.05)])
    out = await agent.arun(question="Use first, second and stuck.")
    results = {c["name"]: c.get("result") or c.get("error") for c in out["_tool_calls"]}
    assert results == {
        "first": "first done",
        "second": "second done",
        "stuck": "TimeoutError: tool 'stuck' did not finish within 0.05 s",
    }


def test_a_tool_that_raises_answers_the_model_with_its_error() -> None:
    def lookup(code: str) -> str:
        """Look a code up."""
        raise KeyError(code)

    out = qa_agent(tools=[lookup]).run(question="Use lookup.")
    [call] = out["_tool_calls"]
    assert call["error"].startswith("KeyError: ")


# --------------------------------------------------------------------------- flows, records, IR


def tool_flow(**config: Any) -> Flow:
    flow = Flow("trip")
    flow.add_agent("planner", "question: str -> answer: str", config=config or None, tools=[forecast])
    flow.input("question")
    return flow


def test_node_records_carry_the_tool_calls_and_survive_json() -> None:
    result = tool_flow().run(question="Paris?")
    [call] = result.nodes["planner"].tool_calls or []
    assert call["name"] == "forecast" and call["result"]["day1"] == 20.0
    assert result.nodes["planner"].usage is not None and result.nodes["planner"].usage.calls == 2
    back = RunResult.from_json(result.to_json())
    assert back.nodes["planner"].tool_calls == result.nodes["planner"].tool_calls
    slim = RunResult.from_json(result.to_json(outputs=False)).nodes["planner"].tool_calls
    assert slim == [{"name": "forecast", "duration_ms": call["duration_ms"], "round": 1}]


def test_the_ir_lists_each_tool_with_its_schema_and_origin_and_no_secret() -> None:
    graph = tool_flow(api_key="sk-secret-123456", model="gpt-4o").compile()
    node = graph.node("planner")
    [tool] = node.config["tools"]
    assert tool["name"] == "forecast" and tool["origin"]["function"] == f"{__name__}:forecast"
    assert node.config["max_tool_steps"] == 8
    text = graph.to_json()
    assert "sk-secret-123456" not in text
    assert Graph.from_json(text) == graph


def test_a_graph_loaded_from_json_refuses_to_run_tools_it_cannot_carry() -> None:
    from dagwright.backends.builtin.runner import Runtime

    graph = Graph.from_json(tool_flow().compile().to_json())
    with pytest.raises(ValueError, match=r"agent node 'planner' calls tools \(forecast\) that a graph loaded"):
        Runtime().execute(graph, {"question": "Paris?"})


def test_patterns_carry_their_agents_tools() -> None:
    kaizen = Kaizen()
    researcher = kaizen.create_agent("researcher", signature="topic: str -> summary: str", tools=[population])
    writer = kaizen.create_agent("writer", signature="summary: str -> article: str")
    flow = kaizen.create_pipeline([researcher, writer])
    assert [t["name"] for t in flow.compile().node("researcher").config["tools"]] == ["population"]
    result = flow.run(topic="Lyon")
    assert [c["name"] for c in result.nodes["researcher"].tool_calls or []] == ["population"]
    assert result.nodes["writer"].tool_calls is None


# --------------------------------------------------------------------------- diagnostics


def codes_of(flow: Flow) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in flow.validate()]


def test_untyped_tools_are_dw301() -> None:
    flow = Flow("f")
    flow.add_agent("a", "q -> a", tools=[untyped])
    flow.input("q")
    [(code, message)] = codes_of(flow)
    assert code == "DW301"
    assert message == (
        f"tool 'untyped' of agent 'a' (function {__name__}:untyped): parameter 'city' and its return value have "
        "no type hint, so the model cannot be told what to pass or what comes back"
    )


def test_a_parameter_type_without_json_schema_is_dw302() -> None:
    flow = Flow("f")
    flow.add_agent("a", "q -> a", tools=[opaque])
    flow.input("q")
    [(code, message)] = codes_of(flow)
    assert code == "DW302"
    assert message == (
        f"tool 'opaque' of agent 'a' (function {__name__}:opaque): a parameter type has no JSON schema to tell "
        "the model (parameter 'thing': pydantic has no JSON schema for Opaque)"
    )


def test_two_tools_with_one_name_are_dw303_and_a_bad_name_is_dw304() -> None:
    flow = Flow("f")
    flow.add_agent("a", "q -> a", tools=[population, Tool(forecast, name="population"), Tool(forecast, name="a b")])
    flow.input("q")
    found = codes_of(flow)
    assert sorted(c for c, _ in found) == ["DW303", "DW304"]
    assert "agent 'a' has 2 tools named 'population'" in dict(found)["DW303"]
    assert "1 to 64 ASCII letters, digits, _ or -" in dict(found)["DW304"]


def test_no_bound_on_the_tool_loop_is_dw307_and_checks_hold_on_loaded_json() -> None:
    flow = tool_flow(max_tool_steps=None)
    [(code, message)] = codes_of(flow)
    assert code == "DW307" and "max_tool_steps=None" in message
    broken = Flow("f")
    broken.add_agent("a", "q -> a", tools=[untyped, opaque])
    broken.input("q")
    from dagwright.compiler.passes import validate

    loaded = Graph.from_json(broken.to_graph().to_json())
    assert sorted(d.code for d in validate(loaded)) == ["DW301", "DW302"]


def test_an_agent_object_and_tools_together_are_refused() -> None:
    flow = Flow("f")
    with pytest.raises(TypeError, match=r"add_agent\('a'\): give the tools to the agent itself"):
        flow.add_agent("a", qa_agent(), tools=[population])


def test_drawings_list_an_agents_tools_in_its_node() -> None:
    flow = Flow("shop")
    tools = [forecast, population, Tool(forecast, name="f3"), Tool(forecast, name="f4"), Tool(forecast, name="f5")]
    flow.add_agent("planner", "question: str -> answer: str", tools=tools)
    flow.input("question")
    assert "agent · tools: forecast, population, f3, f4 +1" in flow.to_mermaid()
    assert "tools: forecast, population, f3, f4 +1" in flow.to_dot()
    assert "tools:" in tool_flow().to_dot() and "tools:" not in Flow.from_agent(BaseAgent(signature="q -> a")).to_dot()


def test_agent_takes_tools_by_keyword_beside_its_settings() -> None:
    from dagwright import Agent

    agent = Agent("planner", "question: str -> answer: str", tools=[population], temperature=0.1)
    assert agent.config.temperature == 0.1 and [t.name for t in agent.tools] == ["population"]  # type: ignore[attr-defined]
    assert [c["name"] for c in agent.run(question="Use population.")["_tool_calls"]] == ["population"]


def test_a_failed_node_keeps_the_tool_calls_made_before_the_loop_gave_up(server: OpenAITestServer) -> None:
    server.enqueue(*(Fault(tool_calls=(("forecast", {"city": {"name": f"c{i}"}}),)) for i in range(2)))
    flow = tool_flow(base_url=server.base_url, api_key="k", max_tool_steps=1)
    result = flow.run(question="Paris?")
    assert not result.success and "max_tool_steps=1" in (result.error or "")
    record = result.nodes["planner"]
    assert record.status == "failed"
    assert [(c["name"], c["arguments"]["city"]["name"]) for c in record.tool_calls or []] == [("forecast", "c0")]


async def test_a_result_with_no_json_form_reaches_the_model_as_its_text() -> None:
    class Receipt:
        def __str__(self) -> str:
            return "receipt #7"

    def pay(amount: float) -> Receipt:
        """Pay an amount."""
        return Receipt()

    assert await Tool(pay).call({"amount": 3}) == "receipt #7"


# --------------------------------------------------------------------------- cached results


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_cache_hit_gives_back_the_calls_that_made_the_answer_marked_cached(backend: str, tmp_path: Any) -> None:
    ran: list[str] = []

    def lookup(code: str) -> dict[str, Any]:
        """Look a code up."""
        ran.append(code)
        return {"code": code, "found": True}

    agent = qa_agent(tools=[lookup])
    agent.enable_cache(backend, path=str(tmp_path / "cache.db") if backend == "sqlite" else None)
    first = agent.run(question="Use lookup.")
    again = agent.run(question="Use lookup.")
    assert first["_cache"] == "miss" and again["_cache"] == "hit" and len(ran) == 1
    [made] = first["_tool_calls"]
    assert "cached" not in made
    assert again["_tool_calls"] == [{**made, "cached": True}]
    assert again["answer"] == first["answer"] and again["_tokens"]["total"] == 0


def test_a_node_cache_hit_keeps_the_calls_in_the_nodes_record() -> None:
    ran: list[str] = []

    def lookup(code: str) -> str:
        """Look a code up."""
        ran.append(code)
        return code.upper()

    flow = Flow("desk")
    flow.add_agent("clerk", "question: str -> answer: str", tools=[lookup])
    flow.input("question")
    flow.configure("clerk", cache=True)
    first = flow.run(question="Use lookup.")
    again = flow.run(question="Use lookup.")
    assert len(ran) == 1 and again.nodes["clerk"].outputs == first.nodes["clerk"].outputs
    [made] = first.nodes["clerk"].tool_calls or []
    assert "cached" not in made
    assert again.nodes["clerk"].tool_calls == [{**made, "cached": True}]
    assert RunResult.from_json(again.to_json()).nodes["clerk"].tool_calls == [{**made, "cached": True}]
