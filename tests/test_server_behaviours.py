"""What real OpenAI-compatible servers do, imitated by the loopback server, and how the client copes.

Each behaviour was seen on a real local server (llama-cpp-python serving a small GGUF model):

1. a response format the server does not take is refused with a 400, 422 or 500 whose body says so:
   ``structured_output="auto"`` falls back (json_schema, json_object, prompt) and remembers the mode that
   worked per base URL; a fixed mode is not retried;
2. small models write JSON with raw newlines inside strings, in fences, after prose, with trailing commas:
   read leniently before any repair is asked for;
3. runaway replies: every call has an output budget, and a repair never sends a long reply back;
4. a server keeps generating for a client that left: requests are streamed and closed on timeout or cancel,
   which stops a server that notices; one that does not is imitated too;
5. every request is counted, those of failed calls and failed nodes included;
6. chat templates that drop system messages: ``system_prompt_role="user"``;
7. sampling fields of a server's own (llama.cpp's ``repeat_penalty``): ``extra_body``, in every request.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dagwright.agent import BaseAgent
from dagwright.compiler.signature import as_signature
from dagwright.execution.errors import LLMError, OutputParseError
from dagwright.flow import Flow
from dagwright.llm import client as llm
from dagwright.llm.structured import loads_lenient, output_budget, parse_reply
from dagwright.testing import Fault, OpenAITestServer

QA = "question: str -> answer: str, confidence: float"


@pytest.fixture(autouse=True)
def _fresh_modes() -> Iterator[None]:
    llm.forget_modes()
    yield
    llm.forget_modes()


def agent_for(server: OpenAITestServer, **config: Any) -> BaseAgent:
    settings = {
        "provider": "openai",
        "base_url": server.base_url,
        "api_key": "k",
        "max_retries": 2,
        "retry_initial_delay": 0.01,
        **config,
    }
    return BaseAgent(config=settings, signature=QA, name="qa")


def formats(server: OpenAITestServer) -> list[str | None]:
    return [(r.get("response_format") or {}).get("type") for r in server.requests]


# --------------------------------------------------------------------------- 1. response formats


@pytest.mark.parametrize("status", [400, 422, 500])
def test_auto_falls_back_once_and_remembers_the_mode_per_base_url(status: int) -> None:
    with OpenAITestServer(refuse_formats={"json_schema": status}) as server, OpenAITestServer() as other:
        out = agent_for(server).run(question="What is ML?")
        assert out["answer"] and out["_structured_output"] == "json_object"
        assert formats(server) == ["json_schema", "json_object"]  # the refusal was not retried
        again = agent_for(server).run(question="Why?")
        assert again["_structured_output"] == "json_object"
        assert formats(server)[2:] == ["json_object"]  # remembered: no second refusal
        # Another base URL has its own memory.
        assert agent_for(other).run(question="q")["_structured_output"] == "json_schema"


def test_auto_falls_back_to_the_prompt_when_both_formats_are_refused() -> None:
    with OpenAITestServer(refuse_formats={"json_schema": 500, "json_object": 400}) as server:
        result = agent_for(server).execute(question="What is ML?")
        assert result.success and result.metadata["structured_output"] == "prompt"
        assert formats(server) == ["json_schema", "json_object", None]
        assert "<output_schema>" in server.requests[-1]["messages"][0]["content"]


def test_a_fixed_mode_is_not_retried_when_refused() -> None:
    with OpenAITestServer(refuse_formats={"json_object": 422}) as server:
        with pytest.raises(llm.FormatRefusedError, match=r"refused the response format 'json_object' \(HTTP 422\)"):
            agent_for(server, structured_output="json_object", max_retries=5).run(question="q")
        assert server.request_count == 1


def test_a_plain_server_error_is_not_taken_for_a_format_refusal() -> None:
    with OpenAITestServer() as server:
        server.enqueue(Fault(status=500), Fault(status=500), Fault(status=500))
        with pytest.raises(LLMError, match=r"failed after 3 attempt\(s\) \(HTTP 500\)") as caught:
            agent_for(server).run(question="q")
        assert not isinstance(caught.value, llm.FormatRefusedError)
        assert formats(server) == ["json_schema"] * 3
        assert llm.remembered_mode(agent_for(server).config.settings()) is None


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        ("1 validation error: {'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text'\"}", True),
        ("response_format type 'json_schema' is not supported by this server", True),
        ("Failed to parse grammar from the JSON schema", True),
        ("This model's maximum context length is 2048 tokens", False),
        ("upstream worker crashed", False),
    ],
)
def test_what_reads_as_a_format_refusal(message: str, refused: bool) -> None:
    assert llm._refuses_format(message) is refused


# --------------------------------------------------------------------------- 2. lenient parsing


def test_raw_newlines_in_strings_need_no_repair() -> None:
    with OpenAITestServer() as server:
        server.enqueue(Fault(raw_newlines=True))
        out = agent_for(server).run(question="What is ML?")
        assert "\n" in out["answer"]
        assert server.request_count == 1


@pytest.mark.parametrize(
    "text",
    [
        'Sure! Here it is:\n```json\n{"answer": "a", "confidence": 0.5}\n```',
        'The answer is {"answer": "a", "confidence": 0.5} as asked.',
        '{"answer": "a", "confidence": 0.5,}',
        '{"answer": "line one\nline two\tand a tab", "confidence": 0.5}',
        '```\n{"answer": "a", "confidence": 0.5,\n}\n```',
    ],
)
def test_lenient_reading(text: str) -> None:
    outputs, problems = parse_reply(as_signature(QA), text)
    assert problems == [] and outputs is not None and outputs["confidence"] == 0.5


def test_a_comma_inside_a_string_is_kept() -> None:
    data, error = loads_lenient('{"answer": "a, b,]", "n": [1, 2,],}')
    assert error == "" and data == {"answer": "a, b,]", "n": [1, 2]}


def test_the_error_quoted_is_that_of_the_object_found() -> None:
    _, problems = parse_reply(as_signature(QA), 'Here you go: {"answer": "a" "confidence": 0.5}')
    [problem] = problems
    assert "Expecting ',' delimiter at line 1 column 16 (in the JSON object found in the reply)" in problem
    assert "Expecting value" not in problem and " at at " not in problem


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=5))
@example({"": "\\t"})  # a backslash, then t: no tab in it
def test_raw_control_characters_never_change_a_value(data: dict[str, str]) -> None:
    # Each escape read whole, left to right: in "\\\\t" (an escaped backslash, then t) there is no tab to put back.
    raw = {"n": "\n", "t": "\t"}
    text = re.sub(r"\\(.)", lambda m: raw.get(m.group(1), m.group(0)), json.dumps(data, ensure_ascii=False))
    assert loads_lenient(text) == (data, "")


# --------------------------------------------------------------------------- 3. output budget


def test_every_call_has_an_output_budget_from_its_signature() -> None:
    with OpenAITestServer() as server:
        agent_for(server).run(question="q")
        agent_for(server, max_tokens=50).run(question="q")
        agent_for(server, max_tokens=0).run(question="q")
    budget = output_budget(as_signature(QA))
    assert 600 < budget < 1000
    assert [r.get("max_tokens") for r in server.requests] == [budget, 50, None]


def test_budgets_follow_the_types() -> None:
    one = output_budget(as_signature("q -> verdict: Literal['yes', 'no']"))
    many = output_budget(as_signature("q -> findings: list[str]"))
    assert one < 100 < many <= 4096
    assert output_budget(as_signature("q -> " + ", ".join(f"f{i}: list[str]" for i in range(20)))) == 4096


def test_a_runaway_reply_is_cut_and_never_sent_back() -> None:
    with OpenAITestServer() as server:
        server.enqueue(Fault(runaway=True), Fault(runaway=True))
        with pytest.raises(OutputParseError, match="cut off at max_tokens=") as caught:
            agent_for(server).run(question="q")
    first, repair = server.requests
    assert first["max_tokens"] == repair["max_tokens"] == output_budget(as_signature(QA))
    assert len(json.dumps(repair["messages"])) < len(json.dumps(first["messages"])) + 1000
    assert "your reply was too long and was cut off; keep it short" in repair["messages"][-1]["content"]
    assert "raise max_tokens" in str(caught.value)  # the user is told what to change
    assert len(caught.value.first_raw or "") > 2000  # the reply itself is kept whole


# --------------------------------------------------------------------------- 4. closing abandoned requests


def wait_until(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def test_a_timed_out_stream_is_closed_and_the_server_stops_generating() -> None:
    with OpenAITestServer(token_delay=0.005, slots=1) as server:
        server.enqueue(Fault(runaway=True))
        with pytest.raises(TimeoutError, match=r"did not answer within 0\.3 s"):
            agent_for(server, timeout=0.3, max_retries=0).run(question="q")
        assert wait_until(lambda: server.stopped_generations == 1)
        assert server.active_generations == 0
        assert agent_for(server).run(question="next")["answer"]


def test_a_cancelled_call_closes_its_stream() -> None:
    async def main(server: OpenAITestServer) -> None:
        task = asyncio.create_task(agent_for(server).arun(question="q"))
        while server.active_generations == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with OpenAITestServer(token_delay=0.005) as server:
        server.enqueue(Fault(runaway=True))
        asyncio.run(main(server))
        assert wait_until(lambda: server.stopped_generations == 1 and server.active_generations == 0)


@pytest.mark.parametrize(
    ("stream", "server_options"),
    [(False, {}), (True, {"stops_on_disconnect": False})],
    ids=["not streamed", "a server that does not notice"],
)
def test_a_server_that_keeps_generating_holds_its_slot(stream: bool, server_options: dict[str, Any]) -> None:
    with OpenAITestServer(token_delay=0.005, slots=1, **server_options) as server:
        server.enqueue(Fault(runaway=True))
        with pytest.raises(TimeoutError):
            agent_for(server, timeout=0.3, max_retries=0, stream=stream, max_tokens=300).run(question="q")
        assert server.active_generations == 1  # still generating for nobody
        assert server.stopped_generations == 0
        assert wait_until(lambda: server.active_generations == 0, 30.0)


def test_a_server_that_interrupts_streams_is_sent_one_request_at_a_time() -> None:
    async def main(server: OpenAITestServer, stagger: bool) -> list[dict[str, Any]]:
        agents = [agent_for(server, max_retries=3) for _ in range(3)]
        first = asyncio.create_task(agents[0].arun(question="question 0"))
        while stagger and server.active_generations == 0:
            await asyncio.sleep(0.005)  # the first reply is streaming when the others arrive
        rest = await asyncio.gather(*(a.arun(question=f"question {i}") for i, a in enumerate(agents[1:], 1)))
        return [await first, *rest]

    with OpenAITestServer(token_delay=0.01, interrupts_streams=True) as server:
        outs = asyncio.run(main(server, stagger=True))
        assert all(out["answer"] for out in outs)
        assert server.request_count > 3  # the interrupted ones were sent again
        before = server.request_count
        assert all(out["answer"] for out in asyncio.run(main(server, stagger=False)))
        assert server.request_count == before + 3  # one at a time now: nothing interrupted


# --------------------------------------------------------------------------- 5. every request counted


def test_a_failed_call_counts_its_requests_in_the_monitor() -> None:
    with OpenAITestServer() as server:
        server.enqueue(*[Fault(status=503)] * 4)
        agent = agent_for(server, max_retries=3)
        assert not agent.execute(question="q").success
        assert agent.get_execution_monitor().metrics()["llm_calls"] == 4


@pytest.mark.parametrize("backend", ["builtin", "kailash"])
def test_a_failed_node_counts_its_requests_in_the_run(backend: str) -> None:
    with OpenAITestServer() as server:
        config = {"base_url": server.base_url, "api_key": "k", "max_retries": 2, "retry_initial_delay": 0.01}
        flow = Flow("counted")
        flow.add_agent("good", QA, config=config)
        flow.add_agent("bad", "question: str -> verdict: str", config=config)
        flow.input("question")
        server.enqueue(*[Fault(status=503, match="verdict")] * 3)
        result = flow.run(question="q") if backend == "builtin" else flow.run_kailash(question="q")
    assert not result.success
    assert result.nodes["bad"].usage is not None and result.nodes["bad"].usage.calls == 3
    assert result.usage.calls == server.request_count >= 3


def test_unterminated_text_is_named_once() -> None:
    _, problems = parse_reply(as_signature(QA), '{"answer": "abc')
    assert problems == [
        'the reply is not valid JSON: Unterminated string starting at line 1 column 12, near \'{"answer": "abc\''
    ]


# --------------------------------------------------------------------------- 6. system messages


def test_instructions_go_into_the_first_user_message_when_asked() -> None:
    with OpenAITestServer() as server:
        agent = agent_for(server, system_prompt_role="user", system_prompt="Be terse.")
        assert agent.run(question="What is ML?")["answer"]
    [request] = server.requests
    assert [m["role"] for m in request["messages"]] == ["user"]
    content = request["messages"][0]["content"]
    assert content.startswith("Be terse.") and content.endswith("What is ML?")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_numbers_json_does_not_have_are_refused_by_name(constant: str) -> None:
    spec = as_signature(QA)
    outputs, problems = parse_reply(spec, f'{{"answer": "x", "confidence": {constant}}}')
    assert outputs is None
    assert problems == [
        f"the reply is not valid JSON: {constant} is not a number JSON allows (write a finite number, or null)"
    ]
    assert loads_lenient('{"a": "NaN"}') == ({"a": "NaN"}, "")  # as text it is a value like any other


def test_a_refusal_inside_an_event_stream_is_not_retried() -> None:
    """vLLM sends a request it refuses as an error event with the status it would have answered."""
    refusal = {
        "error": {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400}
    }
    body = f"data: {json.dumps(refusal)}\n\ndata: [DONE]\n\n"
    with OpenAITestServer() as server:
        server.enqueue(Fault(body=body), Fault(body=body.replace("400", "503")))
        with pytest.raises(LLMError, match=r"refused the request \(HTTP 400, in its event stream\): max_tokens"):
            agent_for(server).run(question="q")
        assert server.request_count == 1
        assert agent_for(server).run(question="q")["answer"]  # a 503 event is retried
        assert server.request_count == 3


def test_a_server_that_refuses_stream_options_is_sent_none() -> None:
    body = json.dumps({"error": {"message": "Unrecognized request argument supplied: stream_options", "code": None}})
    with OpenAITestServer() as server:
        server.enqueue(Fault(status=400, body=body))
        assert agent_for(server, max_retries=0).run(question="q")["answer"]
        assert ["stream_options" in r for r in server.requests] == [True, False]
        agent_for(server).run(question="again")
        assert "stream_options" not in server.requests[-1] and server.requests[-1]["stream"] is True


# llama-cpp-python's answer to a request body its schema refuses (here an assistant turn with null content).
LLAMA_VALIDATION_500 = json.dumps(
    {
        "error": {
            "message": "2 validation errors:\n  {'type': 'string_type', 'loc': ('body', 'messages', 2, "
            "'ChatCompletionRequestAssistantMessage', 'content'), 'msg': 'Input should be a valid string', "
            "'input': None}\n  {'type': 'literal_error', 'loc': ('body', 'messages', 2, "
            "'ChatCompletionRequestToolMessage', 'role'), 'msg': \"Input should be 'tool'\"}",
            "type": "internal_server_error",
        }
    }
)


def test_a_500_that_reports_request_validation_errors_is_not_retried() -> None:
    with OpenAITestServer() as server:
        server.enqueue(Fault(status=500, body=LLAMA_VALIDATION_500))
        with pytest.raises(LLMError, match=r"refused the request \(HTTP 500, its request validation failed\)"):
            agent_for(server, max_retries=3).run(question="q")
        assert server.request_count == 1


# --------------------------------------------------------------------------- 7. a server's own fields


def test_a_servers_own_fields_go_into_every_request() -> None:
    with OpenAITestServer(refuse_formats={"json_schema": 500}) as server:
        agent = agent_for(server, extra_body={"repeat_penalty": 1.1, "top_k": 40})
        assert agent.run(question="What is ML?")["_structured_output"] == "json_object"
    assert formats(server) == ["json_schema", "json_object"]
    for request in server.requests:  # the refused request and the one after it alike
        assert request["repeat_penalty"] == 1.1 and request["top_k"] == 40
        assert request["model"] and request["messages"]  # beside what dagwright sends, not instead of it
        assert "repeat_penalty" not in json.dumps(request["messages"])  # a setting, not role context


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"temperature": 0.2}, "'temperature' is a setting of its own: give temperature=... instead"),
        ({"response_format": {"type": "text"}}, "'response_format' is part of the request dagwright makes"),
        ({"messages": []}, "'messages' is part of the request dagwright makes"),
        ({"stream": False}, "'stream' is part of the request dagwright makes (the stream setting)"),
        ({"penalty": float("nan")}, "must be JSON, as it is sent in the request body"),
        ({"hook": object()}, "must be JSON, as it is sent in the request body"),
        ([("repeat_penalty", 1.1)], "extra_body"),
    ],
)
def test_a_servers_own_fields_are_checked_when_the_agent_is_made(extra: Any, says: str) -> None:
    with pytest.raises(ValueError, match="invalid config: extra_body") as caught:
        BaseAgent(config={"provider": "openai", "extra_body": extra}, signature=QA, name="qa")
    assert says in str(caught.value)
