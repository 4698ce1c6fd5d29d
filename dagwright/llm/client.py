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
import sys
import urllib.parse
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from dagwright.compiler.redact import REDACTED
from dagwright.execution.errors import LLMError, LLMRequestError
from dagwright.execution.events import Usage
from dagwright.llm.structured import MODES, StructuredMode, StructuredSetting
from dagwright.ops.pricing import cost_of

__all__ = [
    "MAX_REPLY_BYTES",
    "PROVIDER_ENV",
    "FormatRefusedError",
    "LLMReply",
    "LLMSettings",
    "complete",
    "complete_structured",
    "endpoint",
    "forget_modes",
    "grammar_support",
    "note_grammar",
    "remembered_mode",
    "resolve_provider",
]

log = logging.getLogger("dagwright")
_T = TypeVar("_T")
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
    stream: bool = True
    # Fields of the server's own sent in every request body as given (llama.cpp's ``repeat_penalty``, vLLM's
    # ``top_k``); checked by AgentConfig. Not part of the hash: a mapping is not hashable.
    extra_body: Mapping[str, Any] | None = field(default=None, hash=False)

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
    finish_reason: str | None = None
    mode: StructuredMode | None = None


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


class FormatRefusedError(LLMRequestError):
    """The server refused the request's response format (json_schema or json_object): it answered 400, 422
    or 500 with a body that says so. Not retried: the same request gets the same answer."""


async def complete(
    settings: LLMSettings,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None,
    tools: list[dict[str, Any]] | None = None,
    *,
    usage: Usage | None = None,
) -> LLMReply:
    """One completion, retried on transient failures; raises LLMError / LLMRequestError / TimeoutError.
    ``tools``: the request's function definitions (OpenAI's ``tools`` parameter), when the agent has tools.

    Every request made is added to ``usage`` as it ends (one call each, with its tokens and cost), those
    that failed too, so a call that gave up after four attempts counts four."""
    if settings.provider == "offline":
        from dagwright.llm.offline import OfflineModel

        reply = OfflineModel().complete(messages, response_format=response_format, model=None, tools=tools)
        if usage is not None:
            usage.add(Usage(reply.prompt_tokens, reply.completion_tokens, 0.0, True, 1))
        return LLMReply(
            reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens, 0, reply.tool_calls, "stop"
        )
    return await _complete_openai(settings, messages, response_format, tools, usage)


# --------------------------------------------------------------------------- structured-output modes

# The mode that worked per base URL, for this process: a server that refused json_schema once is asked in the
# mode it took from then on, without paying for the refusal again.
_working_modes: dict[str, StructuredMode] = {}


def _mode_key(settings: LLMSettings) -> str:
    return endpoint(settings)[0] or "https://api.openai.com/v1"


def remembered_mode(settings: LLMSettings) -> StructuredMode | None:
    """The structured-output mode ``auto`` found working at the settings' base URL in this process, if any."""
    return _working_modes.get(_mode_key(settings))


def forget_modes() -> None:
    """Forget what was learnt about servers: every remembered mode (``auto`` starts again from json_schema
    everywhere), which servers enforce a grammar, which are sent one request at a time, and which are sent
    tool rounds unstreamed."""
    _working_modes.clear()
    _grammars.clear()
    _one_at_a_time.clear()
    _unstreamed_tools.clear()
    _no_stream_options.clear()


# Whether the server at a base URL enforces a grammar sent in the request body (``grammar``, as llama.cpp's
# servers take it): True once a reply made under one kept to it, False once a server refused the field or
# answered outside the grammar (a server that ignores fields it does not know).
_grammars: dict[str, bool] = {}


def grammar_support(settings: LLMSettings) -> bool | None:
    """Whether the server at the settings' base URL enforces a request's ``grammar``, as far as this process
    has seen (None: not known yet). OpenAI's own API is known not to: it answers 400 to the field."""
    key = _mode_key(settings)
    if urllib.parse.urlsplit(key).hostname == "api.openai.com":
        return False
    return _grammars.get(key)


def note_grammar(settings: LLMSettings, enforced: bool) -> None:
    """Remember whether the server at the settings' base URL enforces a request's ``grammar``."""
    key = _mode_key(settings)
    if _grammars.get(key) is not enforced:
        _grammars[key] = enforced
        shown = _display_url(key)
        log.info("%s %s a request's grammar", shown, "enforces" if enforced else "does not enforce")


RequestFor = Callable[[StructuredMode], tuple[list[dict[str, Any]], dict[str, Any] | None]]
"""What a structured call sends in one mode: its messages and its response_format."""


async def complete_structured(
    settings: LLMSettings,
    setting: StructuredSetting,
    request_for: RequestFor,
    tools: list[dict[str, Any]] | None = None,
    *,
    usage: Usage | None = None,
) -> LLMReply:
    """One completion in a structured-output mode; the reply says which (``reply.mode``).

    A fixed mode is used as it is. ``auto`` starts with the mode remembered for the base URL (json_schema
    when none is), and when the server refuses that response format (:class:`FormatRefusedError`) falls
    back once to each following mode (json_object, then prompt), remembering the one that answered."""
    if setting != "auto":
        messages, fmt = request_for(setting)
        return replace(await complete(settings, messages, fmt, tools, usage=usage), mode=setting)
    if settings.provider == "offline":
        messages, fmt = request_for("json_schema")
        return replace(await complete(settings, messages, fmt, tools, usage=usage), mode="json_schema")
    first = remembered_mode(settings) or MODES[0]
    modes = MODES[MODES.index(first) :]
    for index, mode in enumerate(modes):
        messages, fmt = request_for(mode)
        try:
            reply = await complete(settings, messages, fmt, tools, usage=usage)
        except FormatRefusedError as exc:
            if index + 1 == len(modes):
                raise
            log.info("%s; structured_output='auto' falls back to %r", exc, modes[index + 1])
            continue
        if _working_modes.get(_mode_key(settings)) != mode:
            _working_modes[_mode_key(settings)] = mode
        return replace(reply, mode=mode)
    raise AssertionError("unreachable: the last mode raises or returns")


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
        if isinstance(error, str) and error:
            return error
        if body.get("detail"):
            # FastAPI's validation errors (422): the details say which field and why.
            return f"{getattr(exc, 'message', '')}: {json.dumps(body['detail'], default=str)}"
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
    interrupted: bool = False
    # A streamed request offering tools that the server could not stream: to be sent again whole.
    unstreamable: bool = False
    # A request refused for its stream_options (a server that does not know them): to be sent again without.
    without_stream_options: bool = False


@dataclass(frozen=True, slots=True)
class _Call:
    """One completion request and what its messages say about it."""

    settings: LLMSettings
    request: dict[str, Any]
    base_url: str | None
    api_key: str
    where: str
    format_type: str | None
    scrub: _Scrubber
    prompt_chars: int

    @property
    def json_schema(self) -> bool:
        return self.format_type == "json_schema"

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
            # OpenAI's default when tools are offered, said outright: llama-cpp-python's function-calling chat
            # formats ignore the tools of a request that does not say it.
            request["tool_choice"] = "auto"
        if settings.extra_body:
            request["extra_body"] = dict(settings.extra_body)
        if response_format is not None and response_format.get("type") == "grammar":
            # A GBNF grammar in place of a response format (llama.cpp's servers let a response format's own
            # grammar win over it when both are sent). _request merges extra_body's fields into the body as they are.
            request["extra_body"] = {**request.get("extra_body", {}), "grammar": response_format["grammar"]}
        elif response_format is not None:
            request["response_format"] = response_format
        if settings.temperature is not None:
            request["temperature"] = settings.temperature
        if settings.max_tokens:
            request["max_tokens"] = settings.max_tokens
        if settings.stream and not (tools and _endpoint_key(base_url) in _unstreamed_tools):
            # Streamed, so that closing the connection on a timeout or a cancel stops a server that notices it;
            # the tool calls of a streamed reply are put together from their pieces.
            request["stream"] = True
            if _endpoint_key(base_url) not in _no_stream_options:
                request["stream_options"] = {"include_usage": True}
        shown = _display_url(base_url) if base_url else "the OpenAI API (https://api.openai.com/v1)"
        format_type = (response_format or {}).get("type")
        scrub = _Scrubber(base_url, settings.api_key)
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        where = f"{settings.model} at {shown}"
        return cls(settings, request, base_url, api_key, where, format_type, scrub, chars)

    @property
    def offers_tools(self) -> bool:
        return bool(self.request.get("tools"))

    def unstreamed(self) -> _Call:
        """This call sent whole (for a server that cannot stream replies to requests offering tools)."""
        request = {k: v for k, v in self.request.items() if k not in ("stream", "stream_options")}
        return replace(self, request=request)

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

    def count(self, usage: Usage | None, outcome: LLMReply | _Failure) -> None:
        """Add one request to ``usage``: a reply's tokens and cost, a failure as a call without tokens."""
        if usage is None:
            return
        if isinstance(outcome, _Failure):
            usage.add(Usage(0, 0, 0.0, True, 1))
            return
        price, known = cost_of(outcome.model, outcome.prompt_tokens, outcome.completion_tokens)
        usage.add(Usage(outcome.prompt_tokens, outcome.completion_tokens, price, known, 1))


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:g}"


async def _complete_openai(
    settings: LLMSettings,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None,
    tools: list[dict[str, Any]] | None,
    usage: Usage | None,
) -> LLMReply:
    call = _Call.make(settings, messages, response_format, tools)
    cap = max(settings.retry_max_delay, 0.0)
    asked = 0.0
    attempts = 0
    while True:
        attempts += 1
        outcome = await _attempt(call, attempts)
        call.count(usage, outcome)
        if isinstance(outcome, LLMReply):
            return outcome
        if outcome.without_stream_options and "stream_options" in call.request:
            _no_stream_options.add(_endpoint_key(call.base_url))
            log.info(call.scrub(f"{call.where} does not take stream_options: {outcome.message}"))
            call = replace(call, request={k: v for k, v in call.request.items() if k != "stream_options"})
            attempts -= 1
            continue
        if outcome.unstreamable and call.request.get("stream"):
            # Sent again at once, whole, and so from now on: not a failure of the server, no retry spent.
            _unstreamed_tools.add(_endpoint_key(call.base_url))
            log.info(call.scrub(f"{call.where} cannot stream a reply to a request offering tools: {outcome.message}"))
            call = call.unstreamed()
            attempts -= 1
            continue
        if outcome.interrupted and _endpoint_key(call.base_url) not in _one_at_a_time:
            _one_at_a_time.add(_endpoint_key(call.base_url))
            log.info(
                call.scrub(
                    f"{call.where} interrupts a streamed reply when another request arrives: "
                    "dagwright now sends it one request at a time"
                )
            )
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


# Base URLs whose server ends a streamed reply early when another request arrives (llama-cpp-python's does,
# with its default interrupt_requests): requests to them go one at a time from this process, as the server
# would serve them anyway (it has one slot), instead of cutting each other off.
_one_at_a_time: set[str] = set()
# Base URLs whose server cannot stream its reply to a request offering tools (llama-cpp-python's function-calling
# chat formats answer such a request with an empty event stream): their tool rounds are sent whole.
_unstreamed_tools: set[str] = set()
# Base URLs whose server refuses stream_options (some gateways and older servers answer 400 "unrecognized
# argument"): their streamed requests go without it, and their usage is counted roughly.
_no_stream_options: set[str] = set()
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = weakref.WeakKeyDictionary()


def _endpoint_key(base_url: str | None) -> str:
    return base_url or "https://api.openai.com/v1"


async def _attempt(call: _Call, attempts: int) -> LLMReply | _Failure:
    """One request within the call's timeout: the reply, or why it failed.

    The timeout bounds the whole request, not each read: a server streaming a runaway reply keeps every
    read short. When it runs out (or the caller is cancelled) the response is closed, which closes its
    connection: a server that notices stops generating. Waiting for a turn at a one-at-a-time server is
    not part of the timeout (the server would make the request wait just as long)."""
    key = _endpoint_key(call.base_url)
    if key not in _one_at_a_time:
        return await _timed(call, attempts)
    gates = _gates.setdefault(asyncio.get_running_loop(), {})
    gate = gates.setdefault(key, asyncio.Semaphore(1))
    async with gate:
        return await _timed(call, attempts)


# Request keys that are options of the openai client's call rather than fields of the request body.
_CLIENT_OPTIONS = frozenset({"timeout", "extra_body", "extra_headers", "extra_query"})


async def _timed(call: _Call, attempts: int) -> LLMReply | _Failure:
    try:
        return await _within(call.settings.timeout, _request(call, attempts))
    except asyncio.TimeoutError:
        return _timeout(call, attempts)


if sys.version_info >= (3, 11):

    async def _within(seconds: float, awaitable: Coroutine[Any, Any, _T]) -> _T:
        """``awaitable`` under a deadline of ``seconds``, in this task (asyncio.wait_for makes one a call)."""
        async with asyncio.timeout(seconds):
            return await awaitable

else:

    async def _within(seconds: float, awaitable: Coroutine[Any, Any, _T]) -> _T:
        """``awaitable`` under a deadline of ``seconds``."""
        return await asyncio.wait_for(awaitable, seconds)


async def _request(call: _Call, attempts: int) -> LLMReply | _Failure:
    import openai

    try:
        client = _client(call.base_url, call.api_key)
        request = call.request
        # The openai client walks every parameter through its TypedDicts before sending, which costs about
        # 0.3 ms a request (the messages most) and changes nothing in the plain JSON built here: the body goes
        # as extra_body, which the client sends as given, over the empty placeholder messages.
        body = {key: value for key, value in request.items() if key not in _CLIENT_OPTIONS}
        body.update(request.get("extra_body") or {})
        # A streaming response either way: the body is read by us and stops at the size cap instead of being
        # buffered whole, and leaving this block early closes the connection.
        async with client.chat.completions.with_streaming_response.create(
            model=request["model"],
            messages=[],
            timeout=request["timeout"],
            extra_body=body,
            extra_headers=request.get("extra_headers"),
            extra_query=request.get("extra_query"),
        ) as response:
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
    if call.format_type is not None and status in (400, 422, 500) and _refuses_format(message):
        hint = _JSON_SCHEMA_HINT if call.json_schema else _JSON_OBJECT_HINT if call.format_type != "grammar" else ""
        text = f"{where} refused the response format {call.format_type!r} (HTTP {status}): {message}{hint}"
        return _Failure(FormatRefusedError, text, False, status)
    if "stream_options" in call.request and status in (400, 422) and "stream_options" in message:
        text = f"{where} refused the request's stream_options (HTTP {status}): {message}"
        return _Failure(LLMRequestError, text, True, status, without_stream_options=True)
    if status == 500 and _REQUEST_VALIDATION.search(message):
        # llama-cpp-python answers a request its schema refuses with a 500 holding the validation errors: the
        # same request would be refused again.
        text = f"{where} refused the request (HTTP 500, its request validation failed): {message}"
        return _Failure(LLMRequestError, text, False, status)
    if call.offers_tools and call.request.get("stream") and status in (400, 422, 500) and _refuses_stream(message):
        text = f"{where} refused to stream a reply to a request offering tools (HTTP {status}): {message}"
        return _Failure(LLMError, text, True, status, unstreamable=True)
    if not (status == 429 or status >= 500 or status == 408):
        return _Failure(LLMRequestError, f"{where} refused the request (HTTP {status}): {message}", False, status)
    # llama.cpp answers an unsupported json_schema with a 500; 502/503/504 are gateways and overload, which
    # another response format would not cure.
    hint = _JSON_SCHEMA_HINT if call.json_schema and status == 500 else ""
    text = f"{where} failed after {attempts} attempt(s) (HTTP {status}): {message}{hint}"
    return _Failure(LLMError, text, True, status, _retry_after(exc))


_JSON_SCHEMA_HINT = (
    "; servers without OpenAI's json_schema response format (llama.cpp's answers 500) "
    "work with structured_output='json_object' or 'prompt' (structured_output='auto' finds the one that works)"
)
_JSON_OBJECT_HINT = "; structured_output='prompt' sends no response format"

# A body that refuses the response format names it and says it is refused. Both are needed: a 400 about the
# context length or a 500 from a crashed worker must not be read as one.
_FORMAT_WORDS = ("response_format", "response format", "json_schema", "json_object", "grammar", "schema")
_REFUSAL_WORDS = (
    "support",
    "should be",
    "must be",
    "invalid",
    "unknown",
    "not allowed",
    "unexpected",
    "expected",
    "unrecognized",
    "failed to parse",
    "not implemented",
    "literal_error",
)


# Pydantic's validation report of a request body, as FastAPI apps pass it on: "2 validation errors: {... 'loc':
# ('body', 'messages', 2, ...) ...}".
_REQUEST_VALIDATION = re.compile(r"\d+ validation errors?\b.*'loc': \('body'", re.DOTALL)


def _refuses_stream(message: str) -> bool:
    lowered = message.lower()
    return "stream" in lowered and any(word in lowered for word in ("support", "not allowed", "cannot", "can't"))


def _refuses_format(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _FORMAT_WORDS) and any(word in lowered for word in _REFUSAL_WORDS)


async def _receive(call: _Call, response: Any, attempts: int) -> LLMReply | _Failure:
    """Read and parse a 2xx reply, an event stream or one JSON body; a broken or oversized body is a failure,
    not an exception."""
    cap = call.settings.max_reply_bytes
    status = int(getattr(response, "status_code", 200))
    streamed = "text/event-stream" in str(response.headers.get("content-type", ""))
    try:
        body = await (_read_events(call, response, cap) if streamed else _read_body(response, cap))
    except Exception as exc:
        # The body is read outside the openai client, so its transport's errors arrive unwrapped (httpx's or
        # httpx2's, depending on the openai release): classified by name rather than by importing either.
        if isinstance(exc, TimeoutError) or any(c.__name__ == "TimeoutException" for c in type(exc).__mro__):
            return _timeout(call, attempts)
        text = f"{call.where} broke off its reply after {attempts} attempt(s): {type(exc).__name__}: {exc}"
        return _Failure(LLMError, text, True)
    if isinstance(body, _Failure):
        return body
    if isinstance(body, int):
        size = f"{body:,} bytes ({body / 2**20:.1f} MiB)" if _declared_length(response) else f"over {cap:,} bytes"
        text = (
            f"{call.where} sent a reply of {size}, over the cap of {cap:,} bytes ({cap / 2**20:.1f} MiB); "
            "raise LLMSettings.max_reply_bytes if such replies are expected"
        )
        # Not retried: the same request would get the same reply.
        return _Failure(LLMError, text, False, status)
    if isinstance(body, LLMReply):
        return replace(body, requests=attempts)
    reply = _parse_completion(body, call.settings.model, attempts)
    if isinstance(reply, LLMReply):
        return reply
    start = call.scrub.excerpt(body.decode("utf-8", "replace"))
    # A gateway's error page or a half-restarted server answering 200: another attempt may well succeed.
    text = f"{call.where} failed after {attempts} attempt(s): the reply (HTTP {status}) {reply}"
    return _Failure(LLMError, text + (f"; it starts with {start!r}" if body else ""), True, status)


async def _read_events(call: _Call, response: Any, cap: int) -> LLMReply | _Failure | int:
    """A streamed chat completion (server-sent events) read to its end, or its size once over ``cap``."""
    stream = _Stream(call)
    size = 0
    pending = b""
    chunks = response.iter_bytes()
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            return size
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if stream.feed(line):
                await _read_past_end(chunks)
                return stream.result()
    if pending:
        stream.feed(pending)
    return stream.result()


# What may follow a stream's [DONE] before its body ends, read so that the connection goes back to the pool.
_AFTER_DONE_BYTES = 4096
_AFTER_DONE_SECONDS = 0.5


async def _read_past_end(chunks: Any) -> None:
    """Read a stream's body to its end after its ``[DONE]``: the body's last chunk usually follows at once,
    and a response closed before it closes its connection too, so every call would open a new one (with a
    TLS handshake on HTTPS). A server that holds the body open, or sends more, loses the connection instead."""
    try:
        await _within(_AFTER_DONE_SECONDS, _skip(chunks, _AFTER_DONE_BYTES))
    except Exception:  # the reply is complete: whatever ends its body only decides the connection's fate
        return


async def _skip(chunks: Any, limit: int) -> None:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return


class _Stream:
    """The pieces of a streamed reply as they arrive: content, model, finish reason, usage, or an error."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.parts: list[str] = []
        self.model: str | None = None
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}
        self.deltas = 0
        self.events = 0
        self.failure: _Failure | None = None
        self.tool_calls = _ToolCallParts()

    def feed(self, raw: bytes) -> bool:
        """Take one line of the stream; True when the stream is over."""
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            return False  # comments (": ping"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return True
        self.events += 1
        try:
            event = json.loads(data)
        except ValueError:
            start = self.call.scrub.excerpt(data)
            self.failure = _Failure(LLMError, f"{self.call.where} sent an event that is not JSON: {start!r}", True)
            return True
        if not isinstance(event, dict):
            self.failure = _Failure(LLMError, f"{self.call.where} sent an event that is not a JSON object", True)
            return True
        if "error" in event:
            self.failure = self._error(event["error"])
            return True
        self._take(event)
        return False

    def _error(self, error: Any) -> _Failure:
        message = str(error.get("message") if isinstance(error, dict) else error)
        message = self.call.scrub.excerpt(message, _SERVER_MESSAGE)
        if self.call.format_type is not None and _refuses_format(message):
            text = f"{self.call.where} refused the response format {self.call.format_type!r}: {message}"
            return _Failure(FormatRefusedError, text, False)
        # vLLM reports a request it refuses inside the stream, with the status it would have answered.
        code = error.get("code") if isinstance(error, dict) else None
        status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            text = f"{self.call.where} refused the request (HTTP {status}, in its event stream): {message}"
            return _Failure(LLMRequestError, text, False, status)
        return _Failure(LLMError, f"{self.call.where} failed while streaming its reply: {message}", True, status)

    def _take(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("model"), str) and event["model"]:
            self.model = event["model"]
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        choices = event.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                self.parts.append(content)
                self.deltas += 1
            if isinstance(delta, dict) and delta.get("tool_calls"):
                self.deltas += self.tool_calls.feed(delta["tool_calls"])
            if isinstance(choice.get("finish_reason"), str):
                self.finish = choice["finish_reason"]

    def result(self) -> LLMReply | _Failure:
        if self.failure is not None:
            return self.failure
        if not self.events:
            if self.call.offers_tools:
                # llama-cpp-python's function-calling chat formats, asked to stream a reply that may call tools,
                # fail after the stream has begun ("Automatic streaming tool choice is not supported").
                text = f"{self.call.where} sent an empty event stream to a streamed request offering tools"
                return _Failure(LLMError, text, True, unstreamable=True)
            return _Failure(LLMError, f"{self.call.where} sent an empty event stream", True)
        if self.finish is None:
            text = (
                f"{self.call.where} ended its streamed reply before it finished (no finish_reason; "
                "llama-cpp-python's server does so when another request arrives)"
            )
            return _Failure(LLMError, text, True, interrupted=True)
        # Servers that do not report usage in a stream (not every one honours stream_options) are counted
        # roughly: a delta is about one token, a prompt about four characters a token.
        prompt = _count(self.usage.get("prompt_tokens")) or self.call.prompt_chars // 4
        completion = _count(self.usage.get("completion_tokens")) or self.deltas
        model = self.model or self.call.settings.model
        calls = self.tool_calls.calls()
        return LLMReply("".join(self.parts), model, prompt, completion, 1, calls, self.finish)


class _ToolCallParts:
    """The tool calls of a streamed reply, put together from the pieces its events carry.

    OpenAI sends a call's id and name in its first piece and its arguments in the pieces after it, each piece
    naming the call by ``index``; llama-cpp-python repeats the id and the name in every piece; some servers
    send each call whole, without an index. A piece's arguments are appended; an id or a name is taken once
    (a repeated one is not appended again); a piece without an index belongs to the call of its id, else to
    the call at its place in the event's list."""

    def __init__(self) -> None:
        self.parts: dict[int, list[str]] = {}  # index -> [id, name, arguments]

    def feed(self, raw: Any) -> int:
        """Take the ``tool_calls`` of one delta; how many pieces it held."""
        if not isinstance(raw, list):
            return 0
        taken = 0
        for position, item in enumerate(raw):
            if not isinstance(item, dict):
                continue
            taken += 1
            part = self.parts.setdefault(self._index(item, position), ["", "", ""])
            call_id = item.get("id")
            if isinstance(call_id, str) and call_id and not part[0]:
                part[0] = call_id
            function = item.get("function")
            function = function if isinstance(function, dict) else {}
            name = function.get("name")
            if isinstance(name, str) and name and name != part[1]:
                part[1] += name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                part[2] += arguments
            elif arguments is not None:
                part[2] = json.dumps(arguments)
        return taken

    def _index(self, item: dict[str, Any], position: int) -> int:
        index = item.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            return index
        call_id = item.get("id")
        if isinstance(call_id, str) and call_id:
            for known, part in self.parts.items():
                if part[0] == call_id:
                    return known
            return max(self.parts, default=-1) + 1
        return position

    def calls(self) -> tuple[tuple[str, str, str], ...]:
        """The calls as (id, name, arguments text), in index order, as a whole message lists them."""
        return tuple((part[0] or f"call_{index}", part[1], part[2]) for index, part in sorted(self.parts.items()))


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
    finish: Any = None
    if choices:
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        finish = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
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
        finish if isinstance(finish, str) else None,
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
