"""Tool rounds are streamed like every other request: their tool calls are put together from the pieces a
server streams, and a timed-out or cancelled round closes its stream, so a server that notices stops."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagwright.agent import BaseAgent
from dagwright.llm import client as llm
from dagwright.llm.client import LLMSettings, complete
from dagwright.testing import Fault, OpenAITestServer


@pytest.fixture(autouse=True)
def _fresh_servers() -> Iterator[None]:
    llm.forget_modes()
    yield
    llm.forget_modes()


def lookup(query: str) -> str:
    """Look a word up."""
    return f"found {query}"


def tool_agent(server: OpenAITestServer, **config: Any) -> BaseAgent:
    settings = {"provider": "openai", "base_url": server.base_url, "api_key": "k", "max_retries": 0, **config}
    return BaseAgent(config=settings, signature="question: str -> answer: str", name="clerk", tools=[lookup])


def wait_until(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


# --------------------------------------------------------------------------- reassembly


names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
argument_texts = st.one_of(
    st.dictionaries(st.text(min_size=1, max_size=6), st.one_of(st.integers(), st.text(max_size=12)), max_size=3).map(
        json.dumps
    ),
    st.text(max_size=30),  # what a model may write instead of JSON, sent on as it is
)
calls_strategy = st.lists(
    st.tuples(st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True), names, argument_texts),
    min_size=1,
    max_size=4,
    unique_by=lambda call: call[0],
)


def whole_body(calls: list[tuple[str, str, str]]) -> bytes:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls],
    }
    return json.dumps(
        {"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    ).encode()


def pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=6))) if len(text) > 1 else []
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)] or [""]


@st.composite
def streamed(draw: st.DrawFn, calls: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The deltas of a reply asking for ``calls``, as one of three kinds of server streams them."""
    style = draw(st.sampled_from(["openai", "repeating", "whole"]))
    if style == "whole":  # each call whole in one piece, without an index
        return [
            {"tool_calls": [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}]}
            for i, n, a in calls
        ]
    per_call: list[list[dict[str, Any]]] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        if style == "openai":  # id and name first, then the arguments in pieces naming the call by index
            first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            rest = [{"index": index, "function": {"arguments": p}} for p in pieces(draw, arguments)]
            per_call.append([first, *rest])
        else:  # llama-cpp-python: the id and the name again in every piece
            per_call.append(
                [
                    {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": p}}
                    for p in pieces(draw, arguments)
                ]
            )
    # Pieces of different calls may interleave (each names its call); each call's own stay in order.
    deltas: list[dict[str, Any]] = []
    queues = [list(q) for q in per_call]
    while any(queues):
        live = [q for q in queues if q]
        queue = live[draw(st.integers(0, len(live) - 1))] if style == "openai" else live[0]
        deltas.append({"tool_calls": [queue.pop(0)]})
    return deltas


def event_lines(deltas: list[dict[str, Any]]) -> list[bytes]:
    events = [{"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    events += [{"model": "m", "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return [b"data: " + json.dumps(e).encode() for e in events] + [b"data: [DONE]"]


@given(st.data(), calls_strategy)
def test_streamed_tool_calls_reassemble_to_the_whole_message(data: st.DataObject, calls: list[Any]) -> None:
    whole = llm._parse_completion(whole_body(calls), "m", 1)
    assert isinstance(whole, llm.LLMReply)
    settings_ = LLMSettings(provider="openai", model="m", base_url="http://127.0.0.1:9/v1")
    stream = llm._Stream(llm._Call.make(settings_, [{"role": "user", "content": "q"}], None, TOOLS))
    lines = event_lines(data.draw(streamed(calls)))
    assert not any(stream.feed(line) for line in lines[:-1])
    assert stream.feed(lines[-1])
    reply = stream.result()
    assert isinstance(reply, llm.LLMReply)
    assert reply.tool_calls == whole.tool_calls == tuple(calls)
    assert reply.finish_reason == whole.finish_reason == "tool_calls"


@pytest.fixture(scope="module")
def tool_server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.tuples(names, argument_texts), min_size=1, max_size=3))
def test_the_loopback_server_streams_what_it_would_send_whole(
    tool_server: OpenAITestServer, calls: list[tuple[str, str]]
) -> None:
    replies = []
    for stream in (True, False):
        tool_server.enqueue(Fault(tool_calls=tuple(calls)))
        settings_ = LLMSettings(provider="openai", model="m", base_url=tool_server.base_url, api_key="k", stream=stream)
        replies.append(asyncio.run(complete(settings_, [{"role": "user", "content": "q"}], None, TOOLS)))
    streamed_reply, whole = replies
    assert streamed_reply.tool_calls == whole.tool_calls
    assert [(name, args) for _, name, args in whole.tool_calls] == calls
    assert tool_server.requests[-2]["stream"] is True and "stream" not in tool_server.requests[-1]


# --------------------------------------------------------------------------- the tool loop over a stream


def test_every_tool_round_is_streamed_and_says_tool_choice() -> None:
    with OpenAITestServer() as server:
        out = tool_agent(server).run(question="Look up 'pear' with lookup.")
        assert out["_tool_calls"][0]["name"] == "lookup" and out["answer"]
        assert len(server.requests) == 2
        assert all(r["stream"] is True and r["tool_choice"] == "auto" for r in server.requests)
        BaseAgent(config=tool_agent(server).config, signature="question: str -> answer: str").run(question="q")
        assert "tool_choice" not in server.requests[-1]  # only requests offering tools say it


def test_a_cancelled_tool_round_closes_its_stream() -> None:
    """Cancelled while the server streams a tool call's arguments: the server sees its client leave."""

    async def main(server: OpenAITestServer) -> None:
        task = asyncio.create_task(tool_agent(server).arun(question="q"))
        assert await asyncio.to_thread(wait_until, lambda: server.active_generations == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with OpenAITestServer(token_delay=0.005, slots=1) as server:
        server.enqueue(Fault(tool_calls=(("lookup", {"query": "word " * 400}),)))  # ~500 pieces, 2.5 s
        asyncio.run(main(server))
        # Stopped because a write to the client failed, not run to its end.
        assert wait_until(lambda: server.stopped_generations == 1 and server.active_generations == 0)
        assert len(server.requests) == 1


def test_a_timed_out_tool_round_is_closed_and_the_server_stops() -> None:
    """The round after the tools ran runs away; the timeout closes it and the slot is free at once."""
    with OpenAITestServer(token_delay=0.005, slots=1) as server:
        server.enqueue(Fault(tool_calls=(("lookup", {"query": "pear"}),)), Fault(runaway=True))
        with pytest.raises(TimeoutError, match=r"did not answer within 0\.5 s"):
            tool_agent(server, timeout=0.5, max_tokens=2000).run(question="q")
        assert server.requests[1]["messages"][-1]["role"] == "tool"  # the second round timed out
        assert wait_until(lambda: server.stopped_generations == 1 and server.active_generations == 0)
        started = time.monotonic()
        assert tool_agent(server).run(question="Look up 'fig' with lookup.")["answer"]
        assert time.monotonic() - started < 5.0


def test_a_server_that_cannot_stream_tool_rounds_gets_them_whole() -> None:
    """llama-cpp-python's function-calling formats answer a streamed request offering tools with an empty event
    stream: it is sent again whole at once (no retry spent), and so from then on for that server."""
    with OpenAITestServer(streams_tool_calls=False) as server:
        out = tool_agent(server, max_retries=0).run(question="Look up 'pear' with lookup.")
        assert out["_tool_calls"][0]["result"].startswith("found ") and out["answer"]
        assert [r.get("stream", False) for r in server.requests] == [True, False, False]
        before = len(server.requests)
        tool_agent(server).run(question="again")
        assert all(not r.get("stream") for r in server.requests[before:])
        # Requests without tools are still streamed there.
        BaseAgent(config=tool_agent(server).config, signature="question: str -> answer: str").run(question="q")
        assert server.requests[-1]["stream"] is True


def test_a_refusal_to_stream_with_tools_is_sent_again_whole() -> None:
    body = json.dumps({"error": {"message": "Streaming is not supported with tools", "type": "invalid_request_error"}})
    with OpenAITestServer() as server:
        server.enqueue(Fault(status=400, body=body))
        out = tool_agent(server, max_retries=0).run(question="Look up 'pear' with lookup.")
        assert out["answer"]
        assert [r.get("stream", False) for r in server.requests] == [True, False, False]


def test_streamed_tool_calls_are_recorded_and_replayed(tmp_path: Path) -> None:
    cassette = tmp_path / "tools.jsonl"
    with OpenAITestServer() as upstream:
        upstream.enqueue(Fault(tool_calls=(("lookup", {"query": "pear"}),)))
        with OpenAITestServer(record_to=str(cassette), upstream=upstream.base_url) as recorder:
            first = tool_agent(recorder).run(question="q")
    with OpenAITestServer(replay_from=str(cassette)) as replay:
        again = tool_agent(replay).run(question="q")
    assert first["_tool_calls"][0]["arguments"] == again["_tool_calls"][0]["arguments"] == {"query": "pear"}
    assert first["answer"] == again["answer"]


def test_tool_rounds_get_room_for_their_calls_beside_the_answer() -> None:
    """A short answer's budget (an int: 56 tokens) would cut a tool call's arguments; tool rounds get more."""
    from dagwright.llm.agent import TOOL_ROUND_TOKENS

    with OpenAITestServer() as server:
        config = {"provider": "openai", "base_url": server.base_url, "api_key": "k"}
        BaseAgent(config=config, signature="question: str -> n: int").run(question="q")
        plain = server.requests[-1]["max_tokens"]
        BaseAgent(config=config, signature="question: str -> n: int", tools=[lookup]).run(question="q")
        assert [r["max_tokens"] for r in server.requests[1:]] == [plain + TOOL_ROUND_TOKENS] * 2
        BaseAgent(config={**config, "max_tokens": 40}, signature="question: str -> n: int", tools=[lookup]).run(
            question="q"
        )
        assert server.requests[-1]["max_tokens"] == 40  # a configured budget is used as it is


def test_the_assistant_turn_that_asked_for_tools_has_text_content() -> None:
    """llama-cpp-python refuses an assistant message whose content is null (a 500 listing validation errors)."""
    with OpenAITestServer() as server:
        server.enqueue(Fault(tool_calls=(("lookup", {"query": "pear"}),)))
        tool_agent(server).run(question="q")
        [asked] = [m for m in server.requests[1]["messages"] if m["role"] == "assistant"]
    assert asked["content"] == "" and asked["tool_calls"][0]["function"]["name"] == "lookup"
