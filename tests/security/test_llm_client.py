"""The LLM client against the loopback server, through the real ``openai`` client: what its errors may say.

Each group reproduces one defect of the fault and attack study:

1. credentials of the base URL (``http://admin:PASS@host``, a query string) and API keys never reach an
   error message, a run's result, the audit log or the CLI's stderr, even when the server echoes them;
2. an HTTP 200 whose body is not a chat completion is a transient server fault: retried, then an
   ``LLMError`` naming the URL, the model and how the body starts;
3. the llama.cpp ``json_schema`` hint is given only when it applies (500, or a 4xx saying the format is
   unsupported), never for 502/503/504;
4. a ``Retry-After`` beyond the retry cap is logged when capped and said in the error when giving up;
5. a reply larger than the cap (``MAX_REPLY_BYTES``, ``LLMSettings.max_reply_bytes``) is refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dagwright.agent import BaseAgent
from dagwright.execution.errors import LLMError, LLMRequestError
from dagwright.flow import Flow
from dagwright.llm import client as llm
from dagwright.llm.client import MAX_REPLY_BYTES, LLMSettings, complete
from dagwright.testing import Fault, OpenAITestServer

KEY = "sk-configured-0123456789abcdef"
ENV_KEY = "sk-environment-fedcba9876543210"
PASSWORD = "Hunter2-s3cret"
USER = "admin-user"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "What is ML?"}]
SCHEMA_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "Answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
        "strict": True,
    },
}
HINT = "structured_output='json_object'"


def with_password(base_url: str) -> str:
    return base_url.replace("http://", f"http://{USER}:{PASSWORD}@", 1)


def settings_for(base_url: str, **overrides: Any) -> LLMSettings:
    values: dict[str, Any] = {
        "provider": "openai",
        "model": MODEL,
        "base_url": base_url,
        "api_key": KEY,
        "max_retries": 1,
        "retry_initial_delay": 0.01,
        "retry_max_delay": 0.05,
        **overrides,
    }
    return LLMSettings(**values)


async def failure(settings: LLMSettings, response_format: dict[str, Any] | None = None) -> BaseException:
    """The exception one ``complete`` call raises (the test fails if it succeeds)."""
    with pytest.raises((LLMError, TimeoutError)) as info:
        await complete(settings, MESSAGES, response_format)
    return info.value


def assert_clean(text: str) -> None:
    """No credential of the URL and no API key in ``text``."""
    for secret in (PASSWORD, USER, KEY, ENV_KEY, "QSECRET"):
        assert secret not in text, f"{secret!r} leaked into: {text}"


def error_body(status: int, message: str) -> str:
    return json.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


# ----------------------------------------------------------------------------- 1. secrets in error messages


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)


def echo(server: OpenAITestServer, key: str = KEY) -> str:
    """What a careless server says back: the URL it was called at (with credentials) and the keys."""
    return f"upstream {with_password(server.base_url)} refused key {key} (env {ENV_KEY})"


async def test_an_exhausted_5xx_that_echoes_the_url_and_keys_is_scrubbed(
    server: OpenAITestServer, env_key: None
) -> None:
    server.enqueue(*[Fault(status=500, body=error_body(500, echo(server)))] * 2)
    error = await failure(settings_for(with_password(server.base_url)))
    assert isinstance(error, LLMError) and error.status == 500
    assert_clean(str(error))
    assert str(error).startswith(f"{MODEL} at {server.base_url} failed after 2 attempt(s) (HTTP 500): upstream ")
    assert f"upstream {server.base_url} refused key <redacted> (env <redacted>)" in str(error)


async def test_a_refusal_that_echoes_the_keys_is_scrubbed(server: OpenAITestServer, env_key: None) -> None:
    server.enqueue(Fault(status=401, body=error_body(401, echo(server))))
    error = await failure(settings_for(with_password(server.base_url)))
    assert isinstance(error, LLMRequestError) and error.status == 401
    assert_clean(str(error))
    assert f"{MODEL} at {server.base_url} refused the request (HTTP 401)" in str(error)


async def test_the_environment_key_is_scrubbed_when_it_is_the_one_used(server: OpenAITestServer, env_key: None) -> None:
    server.enqueue(Fault(status=400, body=error_body(400, f"bad key {ENV_KEY}")))
    error = await failure(settings_for(server.base_url, api_key=None))
    assert str(error).endswith("refused the request (HTTP 400): bad key <redacted>")


async def test_a_timeout_names_the_url_without_credentials(server: OpenAITestServer) -> None:
    server.enqueue(Fault(delay=2.0), Fault(delay=2.0))
    error = await failure(settings_for(with_password(server.base_url), timeout=0.2))
    assert isinstance(error, TimeoutError)
    assert str(error) == f"{MODEL} at {server.base_url} did not answer within 0.2 s (2 attempt(s))"


async def test_a_refused_connection_names_the_url_without_credentials() -> None:
    dead = dead_url()
    error = await failure(settings_for(with_password(dead) + "?api-key=QSECRET"))
    assert_clean(str(error))
    assert str(error).startswith(f"cannot reach {MODEL} at {dead} after 2 attempt(s): ")


async def test_a_query_string_of_the_base_url_is_not_shown(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=400, body=error_body(400, "no")))
    error = await failure(settings_for(with_password(server.base_url) + "?api-key=QSECRET"))
    assert_clean(str(error))
    assert f"{MODEL} at {server.base_url} refused the request" in str(error)


async def test_an_unusable_base_url_is_an_llm_error_without_credentials() -> None:
    error = await failure(settings_for(f"http://{USER}:{PASSWORD}@[::1/v1?api-key=QSECRET"))
    assert isinstance(error, LLMError)
    assert_clean(str(error))


def test_run_result_execution_result_and_audit_log_carry_no_credentials(
    server: OpenAITestServer, tmp_path: Path, env_key: None
) -> None:
    config: dict[str, Any] = {
        "provider": "openai",
        "base_url": with_password(server.base_url),
        "api_key": KEY,
        "max_retries": 0,
    }
    agent = BaseAgent(config=config, signature="question: str -> answer: str", name="qa")
    audit = tmp_path / "audit.jsonl"
    agent.enable_audit_logging(audit, policy="full")
    server.enqueue(Fault(status=503, body=error_body(503, echo(server))))
    executed = agent.execute(question="q")
    assert not executed.success and executed.error is not None
    assert_clean(executed.error)
    assert server.base_url in executed.error
    [entry] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert entry["error"] and server.base_url in entry["error"]
    assert_clean(entry["error"])

    flow = Flow("leak")
    flow.input("question", str, to="qa.question")
    flow.add_agent("qa", BaseAgent(config=config, signature="question: str -> answer: str", name="qa"))
    flow.output("answer", "qa.answer")
    server.enqueue(Fault(status=503, body=error_body(503, echo(server))))
    result = flow.run(question="q")
    assert not result.success and result.error is not None
    assert_clean(result.error)
    assert_clean(result.nodes["qa"].error or "")
    assert server.base_url in result.error


CLI_FLOW = """
from dagwright import Flow

flow = Flow("qa")
flow.input("question", str)
flow.add_agent("qa", "question: str -> answer: str")
flow.output("answer", "qa.answer")
"""


def test_cli_stderr_carries_no_credentials(server: OpenAITestServer, tmp_path: Path) -> None:
    script = tmp_path / "flows.py"
    script.write_text(textwrap.dedent(CLI_FLOW))
    env = {k: v for k, v in os.environ.items() if k not in ("DAGWRIGHT_PROVIDER", "OPENAI_API_KEY")}
    env.update({"OPENAI_BASE_URL": with_password(server.base_url), "OPENAI_API_KEY": ENV_KEY})
    server.enqueue(Fault(status=400, body=error_body(400, echo(server, ENV_KEY))))
    result = subprocess.run(
        [sys.executable, "-m", "dagwright", "run", f"{script}:flow", "-i", "question=q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert server.base_url in result.stderr, result.stderr
    assert_clean(result.stdout + result.stderr)


# ----------------------------------------------------------------------------- 2. a 200 that is not a completion


async def test_a_200_with_a_body_that_is_not_json_is_retried(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=200, body="<html>502 Bad Gateway</html>"))
    reply = await complete(settings_for(server.base_url), MESSAGES, None)
    assert reply.content and reply.requests == 2
    assert server.request_count == 2


async def test_a_200_that_is_never_json_fails_naming_url_model_and_body(server: OpenAITestServer) -> None:
    server.enqueue(*[Fault(status=200, body=f"<html>proxy error for {KEY}</html>")] * 3)
    error = await failure(settings_for(with_password(server.base_url), max_retries=2))
    assert isinstance(error, LLMError) and type(error) is LLMError
    assert error.status == 200 and error.model == MODEL
    assert str(error) == (
        f"{MODEL} at {server.base_url} failed after 3 attempt(s): the reply (HTTP 200) is not JSON; "
        "it starts with '<html>proxy error for <redacted></html>'"
    )
    assert server.request_count == 3


async def test_a_long_body_that_is_not_json_is_quoted_by_its_start(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=200, body="<p>" + "x" * 10_000))
    error = await failure(settings_for(server.base_url, max_retries=0))
    assert "it starts with '<p>xxx" in str(error)
    assert len(str(error)) < 400


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"detail": "overloaded"}', "is JSON but not a chat completion (no 'choices' list)"),
        ('{"choices": [{"message": null}]}', "is JSON but not a chat completion (its first choice has no 'message')"),
        ('{"choices": [{"message": {"content": 7}}]}', "is JSON but not a chat completion ('content' is not text)"),
        ("", "is empty"),
    ],
)
async def test_a_200_that_is_not_a_chat_completion_is_a_transient_fault(
    server: OpenAITestServer, body: str, problem: str
) -> None:
    server.enqueue(Fault(status=200, body=body), Fault(status=200, body=body))
    error = await failure(settings_for(server.base_url))
    assert f"failed after 2 attempt(s): the reply (HTTP 200) {problem}" in str(error)


async def test_a_completion_without_usage_or_model_is_accepted(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=200, body='{"choices": [{"message": {"content": "hi"}}]}'))
    reply = await complete(settings_for(server.base_url), MESSAGES, None)
    assert (reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens) == ("hi", MODEL, 0, 0)


async def test_a_completion_without_choices_is_an_empty_reply(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=200, body='{"choices": [], "model": "m2", "usage": {"prompt_tokens": 3}}'))
    reply = await complete(settings_for(server.base_url), MESSAGES, None)
    assert (reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens) == ("", "m2", 3, 0)


# ----------------------------------------------------------------------------- 3. the json_schema hint


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_no_json_schema_hint_for_gateway_and_unavailable_errors(server: OpenAITestServer, status: int) -> None:
    server.enqueue(Fault(status=status), Fault(status=status))
    error = await failure(settings_for(server.base_url), SCHEMA_FORMAT)
    assert f"(HTTP {status}): injected fault: HTTP {status}" in str(error)
    assert HINT not in str(error)


async def test_the_json_schema_hint_for_a_500_with_json_schema(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=500), Fault(status=500))
    error = await failure(settings_for(server.base_url), SCHEMA_FORMAT)
    assert HINT in str(error)


async def test_no_json_schema_hint_for_a_500_without_json_schema(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=500), Fault(status=500))
    error = await failure(settings_for(server.base_url), {"type": "json_object"})
    assert HINT not in str(error)


@pytest.mark.parametrize(
    ("message", "hinted"),
    [
        ("response_format 'json_schema' is not supported", True),
        ("Unsupported response format: json_schema", True),
        ("'messages' must be a non-empty list", False),
    ],
)
async def test_a_4xx_gets_the_hint_only_when_it_says_the_format_is_unsupported(
    server: OpenAITestServer, message: str, hinted: bool
) -> None:
    server.enqueue(Fault(status=400, body=error_body(400, message)))
    error = await failure(settings_for(server.base_url), SCHEMA_FORMAT)
    assert isinstance(error, LLMRequestError)
    assert (HINT in str(error)) is hinted
    assert server.request_count == 1


# ----------------------------------------------------------------------------- 4. Retry-After beyond the cap


async def test_a_retry_after_beyond_the_cap_is_said_when_giving_up(
    server: OpenAITestServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Fault(status=429, retry_after=3600), Fault(status=429, retry_after=3600))
    with caplog.at_level(logging.WARNING, logger="dagwright"):
        error = await failure(settings_for(with_password(server.base_url)))
    assert str(error).endswith(
        "(HTTP 429): injected fault: HTTP 429; the server asked to wait 3600 s; "
        "dagwright waits at most 0.05 s between attempts"
    )
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == (
        f"{MODEL} at {server.base_url} asked to wait 3600 s before retrying (Retry-After); "
        "dagwright waits 0.05 s, its most between attempts"
    )


async def test_the_default_cap_is_named_when_the_first_answer_asks_too_much(server: OpenAITestServer) -> None:
    server.enqueue(Fault(status=503, retry_after=3600))
    error = await failure(settings_for(server.base_url, max_retries=0, retry_max_delay=20.0))
    assert "the server asked to wait 3600 s; dagwright waits at most 20 s between attempts" in str(error)


async def test_a_retry_after_within_the_cap_is_not_mentioned(
    server: OpenAITestServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Fault(status=429, retry_after=0.02), Fault(status=429, retry_after=0.02))
    with caplog.at_level(logging.WARNING, logger="dagwright"):
        error = await failure(settings_for(server.base_url))
    assert str(error).endswith("(HTTP 429): injected fault: HTTP 429")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ----------------------------------------------------------------------------- 5. the reply size cap


async def test_a_30_mb_reply_is_refused_naming_size_and_cap(server: OpenAITestServer) -> None:
    server.enqueue(Fault(content="x" * (30 * 1024 * 1024)))
    error = await failure(settings_for(server.base_url, max_retries=3, stream=False))
    assert isinstance(error, LLMError) and error.status == 200
    text = str(error)
    assert text.startswith(f"{MODEL} at {server.base_url} sent a reply of ")
    assert "(30.0 MiB)" in text and f"over the cap of {MAX_REPLY_BYTES:,} bytes (8.0 MiB)" in text
    assert "LLMSettings.max_reply_bytes" in text
    assert server.request_count == 1  # the same request would get the same reply: not retried


async def test_a_streamed_reply_is_read_only_up_to_the_cap(server: OpenAITestServer) -> None:
    server.enqueue(Fault(content="x" * (30 * 1024 * 1024)))
    error = await failure(settings_for(server.base_url, max_retries=3))
    assert f"sent a reply of over {MAX_REPLY_BYTES:,} bytes, over the cap" in str(error)
    assert server.request_count == 1


async def test_the_cap_is_a_setting(server: OpenAITestServer) -> None:
    error = await failure(settings_for(server.base_url, max_reply_bytes=200))
    assert "over the cap of 200 bytes" in str(error)
    reply = await complete(settings_for(server.base_url, max_reply_bytes=100_000), MESSAGES, None)
    assert reply.content


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_reply_bytes must be a positive number of bytes, got 0"):
        settings_for("http://127.0.0.1:1/v1", max_reply_bytes=0)


class _Chunked:
    """A streamed response without Content-Length (chunked or compressed): only reading tells its size."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.headers: dict[str, str] = {"content-encoding": "gzip", "content-length": "10"}
        self.chunks = chunks
        self.read = 0

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk


async def test_a_reply_without_a_usable_length_is_read_only_up_to_the_cap() -> None:
    response = _Chunked([b"x" * 1000] * 50)
    size = await llm._read_body(response, 2500)
    assert size == 3000 and response.read == 3  # stopped at the first chunk over the cap
    assert await llm._read_body(_Chunked([b"ab", b"cd"]), 2500) == b"abcd"
