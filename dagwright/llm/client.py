"""LLM calls: the official ``openai`` client, or the embedded offline model.

One ``AsyncOpenAI`` client is shared per (event loop, base URL, API key): the
client's connection pool belongs to the loop that made it. The client's own
retries are off; this module retries transient failures (429 honoring
Retry-After up to ``retry_max_delay``, 5xx, connection errors, timeouts, and an
HTTP 2xx whose body is not a chat completion) with exponential backoff and
jitter, so the number of requests is exactly what the settings say. Refusals
(400, 401, 403, 404, 422) are not retried and quote the server's message.

Every message raised from here is scrubbed: the base URL is shown without its
user:password and query string, and neither the configured API key nor
``OPENAI_API_KEY`` appears, even when the server echoes them back. A reply body
larger than ``max_reply_bytes`` (:data:`MAX_REPLY_BYTES` by default) is refused
as it is read, never held in memory whole.

With no LLM configured (no provider, base URL or API key, and no
``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``), the offline model answers; that is
said once in the log and in every result's ``model``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from dagwright.compiler.redact import REDACTED
from dagwright.execution.errors import LLMError, LLMRequestError

__all__ = [
    "MAX_REPLY_BYTES",
    "PROVIDER_ENV",
    "LLMReply",
    "LLMSettings",
    "complete",
    "endpoint",
    "resolve_provider",
]

log = logging.getLogger("dagwright")
_offline_announced = False

MAX_REPLY_BYTES = 8 * 1024 * 1024
"""The largest reply body an LLM call accepts by default, in bytes (8 MiB, after decompression).

A chat completion is text: even a 128k-token context answered in full is well under 1 MiB, so a
bigger body is a misbehaving or hostile server, and reading it whole would cost memory for nothing.
Set ``LLMSettings.max_reply_bytes`` to change it for one call."""


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Everything one call needs; built from an agent's config."""

    provider: Literal["openai", "offline"]
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_initial_delay: float = 0.5
    retry_max_delay: float = 20.0
    max_reply_bytes: int = MAX_REPLY_BYTES

    def __post_init__(self) -> None:
        size = self.max_reply_bytes
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"max_reply_bytes must be a positive number of bytes, got {size!r}")


@dataclass(frozen=True, slots=True)
class LLMReply:
    """The text of one reply, who answered, and its token usage."""

    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    requests: int
    # The function calls the model asked for: (call id, function name, arguments as JSON text).
    tool_calls: tuple[tuple[str, str, str], ...] = ()


PROVIDER_ENV = "DAGWRIGHT_PROVIDER"
"""An environment variable that, set to ``offline`` or ``openai``, decides the provider of every agent
(a test run or a notebook switches a whole program to the offline model without touching its configs)."""


def resolve_provider(provider: str | None, base_url: str | None, api_key: str | None) -> Literal["openai", "offline"]:
    """The provider to use: ``DAGWRIGHT_PROVIDER`` when set, else explicit, else ``openai`` when anything
    configures it, else ``offline``."""
    global _offline_announced
    forced = os.environ.get(PROVIDER_ENV)
    if forced:
        if forced not in ("openai", "offline"):
            raise ValueError(f"{PROVIDER_ENV}={forced!r}: choose 'openai' or 'offline'")
        return forced  # type: ignore[return-value]
    if provider in ("openai", "offline"):
        return provider  # type: ignore[return-value]
    if provider is not None:
        raise ValueError(f"unknown provider {provider!r}; choose 'openai' or 'offline'")
    if base_url or api_key or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    if not _offline_announced:
        _offline_announced = True
        log.info("no LLM configured: agents answer with the embedded offline model (provider='offline')")
    return "offline"


# --------------------------------------------------------------------------- clients


def endpoint(settings: LLMSettings) -> tuple[str | None, str]:
    """The base URL and API key a call uses: the settings', else ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` as
    they are now (read at every call, so a process that points them elsewhere is followed)."""
    base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = settings.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    return base_url, api_key


def _client(base_url: str | None, api_key: str) -> Any:
    # Shared per loop, base URL and key, over a bounded pool: see dagwright.llm.transport.
    from dagwright.llm.transport import shared_client

    return shared_client(base_url, api_key)


# --------------------------------------------------------------------------- scrubbing

# A value this short is no credential worth hiding, and blanking it would mangle ordinary words of a message.
_MIN_SECRET_LENGTH = 4
# scheme://userinfo@ anywhere in a text; greedy up to the last "@" of the authority, as URL parsers split it,
# so a password holding a raw "@" goes too.
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@", re.IGNORECASE)
_URL_USERINFO = re.compile(r"^[^:/?#]+://([^/?#]*)@")
_EXCERPT = 200  # characters of a body quoted in an error
_SERVER_MESSAGE = 1000  # characters of a server's error message quoted in an error


def _display_url(url: str) -> str:
    """``url`` without user:password, query string and fragment: what a message may show of it."""
    shown = _USERINFO.sub(r"\1", url, count=1)
    return re.split(r"[?#]", shown, maxsplit=1)[0]


def _url_secrets(url: str) -> list[str]:
    """The password, userinfo and query of ``url`` in the spellings a server or library may echo."""
    found: list[str] = []
    userinfo = _URL_USERINFO.match(url)
    if userinfo:
        password = userinfo.group(1).partition(":")[2]
        found += [userinfo.group(1), password, urllib.parse.unquote(password), urllib.parse.quote(password, safe="")]
    if "?" in url:
        # Query strings carry keys (Azure's api-key=, gateways' token=): every value is treated as one.
        query = url.split("?", 1)[1].split("#", 1)[0]
        found += [query, urllib.parse.unquote(query)]
        for _, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            found += [value, urllib.parse.quote(value, safe="")]
    return found


class _Scrubber:
    """Takes the base URL's credentials and the API keys out of a text."""

    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.raw = base_url
        self.shown = _display_url(base_url) if base_url else None
        candidates = [api_key, os.environ.get("OPENAI_API_KEY"), *(_url_secrets(base_url) if base_url else [])]
        unique = {s for s in candidates if s and len(s) >= _MIN_SECRET_LENGTH}
        # Longest first: a secret that contains another is blanked whole, not in pieces.
        self.secrets = sorted(unique, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if self.raw and self.shown and self.raw != self.shown:
            text = text.replace(self.raw, self.shown)
        text = _USERINFO.sub(r"\1", text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def excerpt(self, text: str, limit: int = _EXCERPT) -> str:
        """The start of ``text``, scrubbed before it is cut (a cut would leave half a secret unmatched)."""
        window = text[: limit + 4096]
        scrubbed = self(window)
        return scrubbed if len(scrubbed) <= limit and window == text else scrubbed[:limit] + "..."


# --------------------------------------------------------------------------- calls


async def complete(
    settings: LLMSettings,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None,
    tools: list[dict[str, Any]] | None = None,
) -> LLMReply:
    """One completion, retried on transient failures; raises LLMError / LLMRequestError / TimeoutError.
    ``tools``: the request's function definitions (OpenAI's ``tools`` parameter), when the agent has tools."""
    if settings.provider == "offline":
        from dagwright.llm.offline import OfflineModel

        reply = OfflineModel().complete(messages, response_format=response_format, model=None, tools=tools)
        return LLMReply(reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens, 0, reply.tool_calls)
    return await _complete_openai(settings, messages, response_format, tools)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    # "inf" or "nan" is no wait a server can mean; backing off as usual is the safe reading.
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "") or exc)


@dataclass(frozen=True, slots=True)
class _Failure:
    """One failed attempt: whether another may help, the wait the server asked for, and the error to raise
    (its class, message and HTTP status) when no attempt is left."""

    error: type[LLMError] | type[TimeoutError]
    message: str
    transient: bool
    status: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Call:
    """One completion request and what its messages say about it."""

    settings: LLMSettings
    request: dict[str, Any]
    base_url: str | None
    api_key: str
    where: str
    json_schema: bool
    scrub: _Scrubber

    @classmethod
    def make(
        cls,
        settings: LLMSettings,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        tools: list[dict[str, Any]] | None = None,
    ) -> _Call:
        base_url, api_key = endpoint(settings)
        request: dict[str, Any] = {"model": settings.model, "messages": messages, "timeout": settings.timeout}
        if tools:
            request["tools"] = tools
        if response_format is not None:
            request["response_format"] = response_format
        if settings.temperature is not None:
            request["temperature"] = settings.temperature
        if settings.max_tokens is not None:
            request["max_tokens"] = settings.max_tokens
        shown = _display_url(base_url) if base_url else "the OpenAI API (https://api.openai.com/v1)"
        json_schema = (response_format or {}).get("type") == "json_schema"
        scrub = _Scrubber(base_url, settings.api_key)
        return cls(settings, request, base_url, api_key, f"{settings.model} at {shown}", json_schema, scrub)

    def error(self, failure: _Failure, asked: float) -> Exception:
        """The exception ``failure`` ends the call with; ``asked``: the longest wait the server asked for
        beyond the cap (0 when none)."""
        message = failure.message
        cap = max(self.settings.retry_max_delay, 0.0)
        if failure.transient and asked > cap:
            message += (
                f"; the server asked to wait {_seconds(asked)} s; "
                f"dagwright waits at most {_seconds(cap)} s between attempts"
            )
        text = self.scrub(message)
        if issubclass(failure.error, LLMError):
            return failure.error(text, status=failure.status, model=self.settings.model)
        return failure.error(text)


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:g}"


async def _complete_openai(
    settings: LLMSettings,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None,
    tools: list[dict[str, Any]] | None = None,
) -> LLMReply:
    call = _Call.make(settings, messages, response_format, tools)
    cap = max(settings.retry_max_delay, 0.0)
    asked = 0.0
    attempts = 0
    while True:
        attempts += 1
        outcome = await _attempt(call, attempts)
        if isinstance(outcome, LLMReply):
            return outcome
        capped = outcome.retry_after is not None and outcome.retry_after > cap
        if capped and outcome.retry_after is not None:
            asked = max(asked, outcome.retry_after)
        if not outcome.transient or attempts > settings.max_retries:
            # Raised outside any except block: the openai exception, whose text holds the raw URL, is not
            # chained to it as __context__.
            raise call.error(outcome, asked)
        if capped and outcome.retry_after is not None:
            log.warning(
                call.scrub(
                    f"{call.where} asked to wait {_seconds(outcome.retry_after)} s before retrying (Retry-After); "
                    f"dagwright waits {_seconds(cap)} s, its most between attempts"
                )
            )
        await asyncio.sleep(_backoff(settings, attempts, outcome.retry_after))


async def _attempt(call: _Call, attempts: int) -> LLMReply | _Failure:
    """One request: the reply, or why it failed."""
    import openai

    try:
        client = _client(call.base_url, call.api_key)
        # Streamed, so the body is read by us and stops at the size cap instead of being buffered whole.
        async with client.chat.completions.with_streaming_response.create(**call.request) as response:
            return await _receive(call, response, attempts)
    except openai.APIStatusError as exc:
        return _status_failure(call, exc, attempts)
    except openai.APITimeoutError:
        return _timeout(call, attempts)
    except openai.APIConnectionError as exc:
        return _Failure(
            LLMError, f"cannot reach {call.where} after {attempts} attempt(s): {exc.__cause__ or exc}", True
        )
    except Exception as exc:
        # An unusable base URL, or the client failing in a way of its own: its text may hold the raw URL,
        # so it leaves as a scrubbed LLMError too.
        return _Failure(LLMError, f"{call.where} could not be called: {type(exc).__name__}: {exc}", False)


def _timeout(call: _Call, attempts: int) -> _Failure:
    message = f"{call.where} did not answer within {call.settings.timeout:g} s ({attempts} attempt(s))"
    return _Failure(TimeoutError, message, True)


def _status_failure(call: _Call, exc: Any, attempts: int) -> _Failure:
    status: int = exc.status_code
    message = call.scrub.excerpt(_server_message(exc), _SERVER_MESSAGE)
    where = call.where
    if not (status == 429 or status >= 500 or status == 408):
        hint = _JSON_SCHEMA_HINT if call.json_schema and _says_format_unsupported(message) else ""
        return _Failure(LLMRequestError, f"{where} refused the request (HTTP {status}): {message}{hint}", False, status)
    # llama.cpp answers an unsupported json_schema with a 500; 502/503/504 are gateways and overload, which
    # another response format would not cure.
    hint = _JSON_SCHEMA_HINT if call.json_schema and status == 500 else ""
    text = f"{where} failed after {attempts} attempt(s) (HTTP {status}): {message}{hint}"
    return _Failure(LLMError, text, True, status, _retry_after(exc))


_JSON_SCHEMA_HINT = (
    "; servers without OpenAI's json_schema response format (llama.cpp's answers 500) "
    "work with structured_output='json_object' or 'prompt'"
)


def _says_format_unsupported(message: str) -> bool:
    lowered = message.lower()
    about_format = any(word in lowered for word in ("response_format", "response format", "json_schema"))
    return about_format and "support" in lowered


async def _receive(call: _Call, response: Any, attempts: int) -> LLMReply | _Failure:
    """Read and parse a 2xx reply; a broken or oversized body is a failure, not an exception."""
    cap = call.settings.max_reply_bytes
    try:
        body = await _read_body(response, cap)
    except Exception as exc:
        # The body is read outside the openai client, so its transport's errors arrive unwrapped (httpx's or
        # httpx2's, depending on the openai release): classified by name rather than by importing either.
        if isinstance(exc, TimeoutError) or any(c.__name__ == "TimeoutException" for c in type(exc).__mro__):
            return _timeout(call, attempts)
        text = f"{call.where} broke off its reply after {attempts} attempt(s): {type(exc).__name__}: {exc}"
        return _Failure(LLMError, text, True)
    status = int(getattr(response, "status_code", 200))
    if isinstance(body, int):
        size = f"{body:,} bytes ({body / 2**20:.1f} MiB)" if _declared_length(response) else f"over {cap:,} bytes"
        text = (
            f"{call.where} sent a reply of {size}, over the cap of {cap:,} bytes ({cap / 2**20:.1f} MiB); "
            "raise LLMSettings.max_reply_bytes if such replies are expected"
        )
        # Not retried: the same request would get the same reply.
        return _Failure(LLMError, text, False, status)
    reply = _parse_completion(body, call.settings.model, attempts)
    if isinstance(reply, LLMReply):
        return reply
    start = call.scrub.excerpt(body.decode("utf-8", "replace"))
    # A gateway's error page or a half-restarted server answering 200: another attempt may well succeed.
    text = f"{call.where} failed after {attempts} attempt(s): the reply (HTTP {status}) {reply}"
    return _Failure(LLMError, text + (f"; it starts with {start!r}" if body else ""), True, status)


def _declared_length(response: Any) -> int | None:
    """The body size the headers announce, when it is the size of what will be read."""
    headers = response.headers
    if headers.get("content-encoding", "identity").lower() != "identity":
        return None  # the compressed size: the decoded body may be far larger
    try:
        return int(headers.get("content-length"))
    except (TypeError, ValueError):
        return None


async def _read_body(response: Any, cap: int) -> bytes | int:
    """The body of ``response``, or its size when it is over ``cap`` bytes (then read no further than that)."""
    declared = _declared_length(response)
    if declared is not None and declared > cap:
        return declared
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.iter_bytes():
        size += len(chunk)
        if size > cap:
            return size
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_completion(body: bytes, model: str, attempts: int) -> LLMReply | str:
    """The reply in a chat-completion body, or what is wrong with the body."""
    if not body.strip():
        return "is empty"
    try:
        data = json.loads(body)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not text
        return "is not JSON"
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        return "is JSON but not a chat completion (no 'choices' list)"
    content: Any = None
    calls: tuple[tuple[str, str, str], ...] = ()
    if choices:
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            return "is JSON but not a chat completion (its first choice has no 'message')"
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            return "is JSON but not a chat completion ('content' is not text)"
        calls = _tool_calls(message.get("tool_calls"))
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    answered = data.get("model")
    return LLMReply(
        content or "",
        answered if isinstance(answered, str) and answered else model,
        _count(usage.get("prompt_tokens")),
        _count(usage.get("completion_tokens")),
        attempts,
        calls,
    )


def _tool_calls(raw: Any) -> tuple[tuple[str, str, str], ...]:
    """The function calls of a reply message as (id, name, arguments text); a malformed entry keeps what it has
    (the tool loop answers the model about it rather than failing the request)."""
    if not isinstance(raw, list):
        return ()
    calls = []
    for index, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) else None
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        calls.append(
            (
                str(item.get("id") or f"call_{index}") if isinstance(item, dict) else f"call_{index}",
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
        )
    return tuple(calls)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _backoff(settings: LLMSettings, attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, max(settings.retry_max_delay, 0.0))
    base: float = min(settings.retry_max_delay, settings.retry_initial_delay * 2.0 ** (attempt - 1))
    return base * random.uniform(0.8, 1.2)
