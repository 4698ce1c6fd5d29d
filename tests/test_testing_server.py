"""The OpenAI-compatible test server, driven by the real ``openai`` client: replies, faults, record/replay."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel, ValidationError

from dagwright.llm.offline import OfflineModel
from dagwright.testing import Fault, OpenAITestServer, cassette_key


class Answer(BaseModel):
    answer: str
    confidence: float


STRICT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "Answer", "schema": Answer.model_json_schema(), "strict": True},
}
LLAMA: Any = {"type": "json_object", "schema": Answer.model_json_schema()}


def _ask(text: str) -> Any:  # Any: the client's message TypedDicts add nothing here
    return [{"role": "user", "content": text}]


def _port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(("127.0.0.1", port))
        except OSError:
            return True
        return False


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    threads_before = set(threading.enumerate())
    with OpenAITestServer() as running:
        port = running.address[1]
        yield running
    assert _port_is_closed(port)
    assert set(threading.enumerate()) <= threads_before


@pytest.fixture
def client(server: OpenAITestServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10.0) as made:
        yield made


# -- normal replies ---------------------------------------------------------------------------------------


def test_completion_is_openai_shaped(server: OpenAITestServer, client: openai.OpenAI) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.address[1]}/v1"
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=_ask("What is ML?"), response_format=STRICT)
    expected = OfflineModel().complete(_ask("What is ML?"), response_format=STRICT, model="gpt-4o-mini")
    assert reply.choices[0].message.content == expected.content
    assert Answer.model_validate_json(expected.content).answer.startswith("answer to 'What is ML?' (offline ")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.role == "assistant"
    assert reply.model == "gpt-4o-mini"
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        expected.prompt_tokens,
        expected.completion_tokens,
        expected.prompt_tokens + expected.completion_tokens,
    )
    assert reply.usage.prompt_tokens == 10


def test_every_structured_mode_validates(client: openai.OpenAI) -> None:
    prompt = "Reply with JSON.\n<output_schema>" + json.dumps(Answer.model_json_schema()) + "</output_schema>"
    contents = [
        client.chat.completions.create(model="m", messages=_ask("Is it safe?"), response_format=STRICT),
        client.chat.completions.create(model="m", messages=_ask("Is it safe?"), response_format=LLAMA),
        client.chat.completions.create(
            model="m", messages=[{"role": "system", "content": prompt}, *_ask("Is it safe?")]
        ),
    ]
    for reply in contents:
        content = reply.choices[0].message.content
        assert content is not None
        assert Answer.model_validate_json(content).answer.startswith("answer to 'Is it safe?' (offline ")


def test_models_endpoint(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["dagwright-offline"]


def test_streams_chunks_and_usage_as_openai_does(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=_ask("hi"),
            response_format=STRICT,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    Answer.model_validate_json(content)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert not chunks[-1].choices and usage is not None and usage.completion_tokens > 0


def test_a_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=_ask("hi"), stream=True))
    assert all(c.usage is None and c.choices for c in chunks)


def test_bad_request_bodies_get_openai_error_bodies(server: OpenAITestServer) -> None:
    def post(data: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(
            server.base_url + "/chat/completions", data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = post(b"{not json")
    assert status == 400
    assert body["error"]["message"].startswith("the request body is not valid JSON: ")
    assert body["error"]["type"] == "invalid_request_error"
    assert post(json.dumps({"model": "m", "messages": []}).encode()) == (
        400,
        {
            "error": {
                "message": "'messages' must be a non-empty list of messages, got list",
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            }
        },
    )
    bad_schema = {"type": "json_object", "schema": {"$ref": "#/$defs/Nope"}}
    status, body = post(json.dumps({"model": "m", "messages": _ask("x"), "response_format": bad_schema}).encode())
    assert status == 400
    assert body["error"]["message"] == (
        "the offline model cannot answer this request: $ref '#/$defs/Nope' points to nothing in the schema"
    )
    assert server.request_count == 2  # the unparseable body is not a request body


# -- faults -----------------------------------------------------------------------------------------------


def test_rate_limit_with_retry_after(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(status=429, retry_after=2))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=_ask("hi"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    server.enqueue(Fault(status=429, retry_after=0.25))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=_ask("hi"))
    assert caught.value.response.headers["retry-after"] == "0.25"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(server: OpenAITestServer, client: openai.OpenAI, status: int) -> None:
    server.enqueue(Fault(status=status))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=_ask("hi"))
    assert caught.value.status_code == status
    assert caught.value.message == f"Error code: {status} - injected fault: HTTP {status}"
    assert client.chat.completions.create(model="m", messages=_ask("hi")).choices[0].message.content


def test_delay_past_the_client_timeout(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(delay=2.0))
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="m", messages=_ask("hi"))
    assert time.perf_counter() - started < 1.5


def test_delay_within_the_client_timeout(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(delay=0.3))
    started = time.perf_counter()
    reply = client.chat.completions.create(model="m", messages=_ask("hi"))
    assert time.perf_counter() - started >= 0.3
    assert reply.choices[0].message.content == "reply to 'hi' (offline 897b)"


def test_dropped_connection(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(drop_connection=True))
    with pytest.raises(openai.APIConnectionError) as caught:
        client.chat.completions.create(model="m", messages=_ask("hi"))
    assert type(caught.value) is openai.APIConnectionError  # not its APITimeoutError subclass
    assert client.chat.completions.create(model="m", messages=_ask("hi")).choices[0].message.content
    assert server.request_count == 2


def test_api_key_is_enforced() -> None:
    with (
        OpenAITestServer(api_key="sk-right") as server,
        openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as wrong,
    ):
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.chat.completions.create(model="m", messages=_ask("hi"))
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        with openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0) as right:
            assert right.chat.completions.create(model="m", messages=_ask("hi")).choices[0].message.content


def test_malformed_empty_and_violating_contents(server: OpenAITestServer, client: openai.OpenAI) -> None:
    normal = OfflineModel().complete(_ask("hi"), response_format=STRICT).content
    server.enqueue(Fault(malformed=True), Fault(empty=True), Fault(schema_violation=True))

    malformed = client.chat.completions.create(model="m", messages=_ask("hi"), response_format=STRICT)
    assert malformed.choices[0].message.content == normal[: len(normal) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.choices[0].message.content or "")

    empty = client.chat.completions.create(model="m", messages=_ask("hi"), response_format=STRICT)
    assert empty.choices[0].message.content == ""
    assert empty.usage is not None
    assert empty.usage.completion_tokens == 0

    violating = client.chat.completions.create(model="m", messages=_ask("hi"), response_format=STRICT)
    content = violating.choices[0].message.content or ""
    assert json.loads(content) == {}
    with pytest.raises(ValidationError, match="Field required"):
        Answer.model_validate_json(content)

    assert server.pending_faults == []
    normal_again = client.chat.completions.create(model="m", messages=_ask("hi"), response_format=STRICT)
    assert normal_again.choices[0].message.content == normal


def test_schema_violation_keeps_the_optional_fields(server: OpenAITestServer, client: openai.OpenAI) -> None:
    class Partly(BaseModel):
        needed: int
        extra: str = "x"

    schema: Any = {"type": "json_object", "schema": Partly.model_json_schema()}
    server.enqueue(Fault(schema_violation=True))
    reply = client.chat.completions.create(model="m", messages=_ask("hi"), response_format=schema)
    assert list(json.loads(reply.choices[0].message.content or "")) == ["extra"]


def test_exact_content_and_exact_body(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(content="not what you asked for"), Fault(body='{"weird": true}', status=200))
    reply = client.chat.completions.create(model="m", messages=_ask("hi"))
    assert reply.choices[0].message.content == "not what you asked for"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 6
    raw = client.chat.completions.with_raw_response.create(model="m", messages=_ask("hi"))
    assert raw.http_response.text == '{"weird": true}'
    assert raw.http_response.status_code == 200


def test_retries_through_the_real_client(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=429, retry_after=0.01), Fault(status=503, retry_after=0.01))
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=2) as client:
        reply = client.chat.completions.create(model="m", messages=_ask("hi"))
    assert reply.choices[0].message.content == "reply to 'hi' (offline 897b)"
    assert server.request_count == 3


def test_faults_are_fifo_and_match_routes_them(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(status=500, match="beta"), Fault(content="first"), Fault(content="second"))
    assert client.chat.completions.create(model="m", messages=_ask("alpha")).choices[0].message.content == "first"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=[{"role": "system", "content": "in beta"}, *_ask("x")])
    assert client.chat.completions.create(model="m", messages=_ask("beta")).choices[0].message.content == "second"
    assert client.chat.completions.create(model="m", messages=_ask("beta")).choices[0].message.content == (
        "reply to 'beta' (offline 5f6a)"
    )
    assert server.pending_faults == []


def test_requests_are_counted_in_order_and_reset(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault(status=500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=_ask("one"))
    client.chat.completions.create(model="m", messages=_ask("two"), temperature=0.5)
    assert server.request_count == 2
    assert [body["messages"][0]["content"] for body in server.requests] == ["one", "two"]
    assert server.requests[1]["temperature"] == 0.5
    server.enqueue(Fault(status=500))
    server.reset()
    assert (server.request_count, server.requests, server.pending_faults) == (0, [], [])
    assert client.chat.completions.create(model="m", messages=_ask("three")).choices[0].message.content


def test_concurrent_async_requests_overlap() -> None:
    async def main(server: OpenAITestServer) -> tuple[float, list[str]]:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            started = time.perf_counter()
            replies = await asyncio.gather(
                *(client.chat.completions.create(model="m", messages=_ask(f"question {i}")) for i in range(10))
            )
            return time.perf_counter() - started, [reply.choices[0].message.content or "" for reply in replies]

    with OpenAITestServer(latency=0.2) as server:
        elapsed, contents = asyncio.run(main(server))
    assert elapsed < 1.0  # serially it would take 10 * 0.2 s
    assert len(set(contents)) == 10
    assert server.request_count == 10


def test_reject_json_schema_like_llama_cpp() -> None:
    with (
        OpenAITestServer(reject_json_schema=True) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="m", messages=_ask("hi"), response_format=STRICT)
        # llama-cpp-python's own words: its request validation error, wrapped as an internal error.
        assert "Input should be 'text' or 'json_object'" in caught.value.message
        reply = client.chat.completions.create(model="m", messages=_ask("hi"), response_format=LLAMA)
        Answer.model_validate_json(reply.choices[0].message.content or "")


# -- record and replay ------------------------------------------------------------------------------------


def _three_questions(client: openai.OpenAI) -> list[str]:
    contents = []
    for text, response_format in (("What is ML?", STRICT), ("Why?", LLAMA), ("What is ML?", STRICT)):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=_ask(text), response_format=response_format, temperature=0
        )
        contents.append(reply.choices[0].message.content or "")
    return contents


def test_record_then_replay(tmp_path: Path) -> None:
    cassette = tmp_path / "cassettes" / "qa.jsonl"
    with (
        OpenAITestServer(api_key="sk-upstream") as upstream,
        OpenAITestServer(record_to=str(cassette), upstream=upstream.base_url) as recorder,
    ):
        with openai.OpenAI(base_url=recorder.base_url, api_key="sk-upstream", max_retries=0) as client:
            recorded = _three_questions(client)
        assert recorder.request_count == 3
    assert upstream.request_count == 3
    lines = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert len(lines) == upstream.request_count
    assert [line["status"] for line in lines] == [200, 200, 200]
    assert [line["key"] for line in lines] == [cassette_key(body) for body in upstream.requests]
    assert [line["response"]["choices"][0]["message"]["content"] for line in lines] == recorded
    assert "sk-upstream" not in cassette.read_text()

    # The upstream is gone: the replay answers from the cassette alone, as often as asked.
    with (
        OpenAITestServer(replay_from=str(cassette)) as replay,
        openai.OpenAI(base_url=replay.base_url, api_key="anything", max_retries=0) as client,
    ):
        assert _three_questions(client) == recorded
        assert _three_questions(client) == recorded
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=_ask("Why?"), response_format=LLAMA, temperature=0
        )
        assert reply.usage is not None
        assert reply.usage.total_tokens == lines[1]["response"]["usage"]["total_tokens"]
    assert upstream.request_count == 3


def test_replay_miss_names_the_key_and_the_cassette(tmp_path: Path) -> None:
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")
    body = {"model": "m", "messages": _ask("never recorded"), "response_format": None, "temperature": None}
    with (
        OpenAITestServer(replay_from=str(cassette)) as replay,
        openai.OpenAI(base_url=replay.base_url, api_key="k", max_retries=0) as client,
        pytest.raises(openai.NotFoundError) as caught,
    ):
        client.chat.completions.create(model="m", messages=_ask("never recorded"))
    message = str(caught.value)
    assert f"no recorded reply for key {cassette_key(body)} in cassette {cassette}" in message
    assert caught.value.code == "cassette_miss"


def test_replay_prefers_the_last_success(tmp_path: Path) -> None:
    body = {"model": "m", "messages": _ask("hi")}
    key = cassette_key(body)
    ok = {"id": "c1", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "recorded"}, "finish_reason": "stop"}
    ]}  # fmt: skip
    lines = [
        {"key": key, "request": body, "response": ok, "status": 200},
        {"key": key, "request": body, "response": {"error": {"message": "busy"}}, "status": 429},
    ]
    cassette = tmp_path / "c.jsonl"
    cassette.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with (
        OpenAITestServer(replay_from=str(cassette)) as replay,
        openai.OpenAI(base_url=replay.base_url, api_key="k", max_retries=0) as client,
    ):
        assert client.chat.completions.create(model="m", messages=_ask("hi")).choices[0].message.content == ("recorded")


def test_bad_cassettes_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl' does not exist"):
        OpenAITestServer(replay_from=str(missing)).start()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"key": "k", "status": 200, "response": {}}\n{oops\n')
    with pytest.raises(ValueError, match=r"broken.jsonl:2: not a JSON line"):
        OpenAITestServer(replay_from=str(broken)).start()


def test_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    with OpenAITestServer() as gone:
        url = gone.base_url
    with (
        OpenAITestServer(record_to=str(tmp_path / "c.jsonl"), upstream=url) as recorder,
        openai.OpenAI(base_url=recorder.base_url, api_key="k", max_retries=0) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client.chat.completions.create(model="m", messages=_ask("hi"))
    assert caught.value.status_code == 502
    assert f"the upstream server {url}/chat/completions did not answer" in caught.value.message
    assert not (tmp_path / "c.jsonl").exists()


# -- lifecycle and configuration --------------------------------------------------------------------------


def test_stop_is_clean_even_with_requests_in_flight() -> None:
    threads_before = set(threading.enumerate())
    server = OpenAITestServer().start()
    port = server.address[1]
    server.enqueue(Fault(delay=30.0))
    errors: list[BaseException] = []

    def call() -> None:
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            try:
                client.chat.completions.create(model="m", messages=_ask("slow"))
            except openai.APIError as exc:
                errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while server.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 2.0
    caller.join(5)
    assert not caller.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], openai.APIConnectionError)
    assert _port_is_closed(port)
    assert set(threading.enumerate()) <= threads_before
    server.stop()  # a second stop is harmless
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_idle_keep_alive_connections_do_not_block_stop() -> None:
    threads_before = set(threading.enumerate())
    server = OpenAITestServer().start()
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    try:
        client.chat.completions.create(model="m", messages=_ask("hi"))
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 1.0
        assert set(threading.enumerate()) <= threads_before
    finally:
        client.close()


def test_restart_serves_again() -> None:
    server = OpenAITestServer()
    for _ in range(2):
        with server, openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            assert client.chat.completions.create(model="m", messages=_ask("hi")).choices[0].message.content
    with server, pytest.raises(RuntimeError, match="already running"):
        server.start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "0.0.0.0"}, "binds only to loopback"),
        ({"host": "example.com"}, "binds only to loopback"),
        ({"port": 70000}, "port must be an integer from 0 to 65535"),
        ({"latency": -1}, "latency must be a finite number of seconds >= 0"),
        ({"holds_after_done": float("nan")}, "holds_after_done must be a finite number of seconds >= 0, got nan"),
        ({"record_to": "x.jsonl"}, "record_to needs upstream"),
        ({"replay_from": "x.jsonl", "upstream": "http://127.0.0.1:1/v1"}, "do not combine it with upstream"),
        ({"upstream": "127.0.0.1:1"}, "upstream must be an http(s) base URL"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OpenAITestServer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": 99}, "Fault.status must be an HTTP status code"),
        ({"delay": -0.1}, "Fault.delay must be a finite number of seconds >= 0"),
        ({"retry_after": float("inf")}, "Fault.retry_after must be a finite number"),
        ({"empty": True, "malformed": True}, "a Fault can do one thing, but it sets malformed and empty"),
        ({"content": "x", "drop_connection": True}, "it sets drop_connection and content"),
    ],
)
def test_bad_faults_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**kwargs)


def test_enqueue_takes_only_faults(server: OpenAITestServer) -> None:
    with pytest.raises(TypeError, match="argument 1 is dict"):
        server.enqueue(Fault(), {"status": 500})  # type: ignore[arg-type]
