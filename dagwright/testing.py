"""Test support: an OpenAI-compatible HTTP server on loopback, with fault injection and record/replay.

:class:`OpenAITestServer` answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like the
OpenAI API does, so code under test uses the real ``openai`` client (``base_url=server.base_url``).
Replies come from the embedded :class:`~dagwright.llm.offline.OfflineModel`, which honours
``response_format`` (OpenAI's ``json_schema``, llama.cpp's ``json_object`` + ``schema``, or a schema
between ``<output_schema>`` markers in the prompt) and reports token usage.

Faults script the next requests: ``server.enqueue(Fault(status=429, retry_after=1), Fault(delay=2))``.
Each request takes the first queued fault that applies to it (a fault with ``match`` applies only to
a request whose message text contains that string); a request with no applicable fault is answered
normally. The order of checks for one request is: body parsed and recorded in :attr:`requests`,
``latency`` waited, API key checked (401), body validated (400, also for ``stream: true``), fault
applied, ``reject_json_schema`` (500), a ``grammar`` field as ``grammars`` says (``"enforce"``: kept to
when no response format is sent, as llama.cpp's servers do; ``"ignore"``; ``"refuse"``: 400), then the answer
(its bounded numbers just past their bounds, and its texts whose lengths are said only in words past them,
while ``ignores_bounds`` lasts): from the cassette (replay), from
the upstream server (record or proxy), or from the offline model.

Record/replay: ``OpenAITestServer(record_to="cassette.jsonl", upstream="https://api.openai.com/v1")``
forwards each request (with its ``Authorization`` header) and appends one JSON line per exchange,
``{"key", "request", "response", "status"}``; the API key itself is never written.
``OpenAITestServer(replay_from="cassette.jsonl")`` answers from the cassette by :func:`cassette_key`
and never contacts any upstream; a request with no recorded reply gets HTTP 404 naming the key and
the cassette. When a key was recorded more than once, the last successful exchange is replayed.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from dagwright.llm.grammar import GRAMMAR_SCHEMA_COMMENT, has_bounded_number
from dagwright.llm.offline import (
    OFFLINE_MODEL_NAME,
    Completion,
    OfflineModel,
    count_tokens,
    described_lengths,
    find_schema,
    message_text,
    resolve_schema,
)

__all__ = ["Completion", "Fault", "OfflineModel", "OpenAITestServer", "cassette_key"]

_UPSTREAM_TIMEOUT = 300.0
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout", "request_timeout"),
    409: ("conflict", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class Fault:
    """One scripted behaviour for one request.

    - ``status``: the HTTP status; anything but 2xx sends an OpenAI-style error body
      (``body`` replaces it when given).
    - ``retry_after``: seconds sent in the ``Retry-After`` header (with any status).
    - ``delay``: seconds to wait before answering (on top of the server's ``latency``).
    - ``malformed``: the content is the first half of the normal reply, which is not JSON.
    - ``empty``: the content is the empty string.
    - ``schema_violation``: the content is valid JSON without the schema's required properties
      (``[]`` when the schema requires none, ``{}`` when it does not describe an object).
    - ``content``: exactly this content. ``body``: exactly this raw HTTP body (sent as an event stream,
      ``text/event-stream``, when it starts with ``data:``).
    - ``drop_connection``: the connection is closed without a reply.
    - ``tool_calls``: the reply asks for these function calls instead of answering: each a
      ``(name, arguments)`` pair, the arguments a dict (sent as JSON) or a string sent as written, so
      malformed arguments and unknown tool names can be scripted.
    - ``raw_newlines``: the normal reply with a raw newline inside each of its text values, as small
      models write JSON (valid but for the control characters, which ``json.loads`` rejects).
    - ``runaway``: a reply that never ends by itself (an unclosed JSON text repeating one word): it
      runs to the request's ``max_tokens``, else to the server's ``context_tokens``, at the server's
      ``token_delay`` a token, and ends with ``finish_reason: "length"``.
    - ``match``: the fault applies only to a request whose message text contains this string.

    A fault with only ``delay`` (and ``match``) set delays an otherwise normal reply.
    """

    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    malformed: bool = False
    empty: bool = False
    schema_violation: bool = False
    content: str | None = None
    body: str | None = None
    drop_connection: bool = False
    raw_newlines: bool = False
    runaway: bool = False
    match: str | None = None
    tool_calls: tuple[tuple[str, Mapping[str, Any] | str], ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or isinstance(self.status, bool) or not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status code (100-599), got {self.status!r}")
        if not _is_seconds(self.delay):
            raise ValueError(f"Fault.delay must be a finite number of seconds >= 0, got {self.delay!r}")
        if self.retry_after is not None and not _is_seconds(self.retry_after):
            raise ValueError(f"Fault.retry_after must be a finite number of seconds >= 0, got {self.retry_after!r}")
        for name in ("content", "body", "match"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Fault.{name} must be a string, got {type(value).__name__}")
        flags = ("malformed", "empty", "schema_violation", "drop_connection", "raw_newlines", "runaway")
        chosen = [name for name in flags if getattr(self, name)]
        chosen += [name for name in ("content", "body", "tool_calls") if getattr(self, name) is not None]
        for index, call in enumerate(self.tool_calls or ()):
            if not (isinstance(call, tuple) and len(call) == 2 and isinstance(call[0], str)):
                raise TypeError(f"Fault.tool_calls[{index}] must be a (name, arguments) pair, got {call!r}")
        if len(chosen) > 1:
            raise ValueError(f"a Fault can do one thing, but it sets {' and '.join(chosen)}")

    def applies_to(self, text: str) -> bool:
        """Whether this fault may be used for a request whose message text is ``text``."""
        return self.match is None or self.match in text

    @property
    def replaces_content(self) -> bool:
        return (
            self.malformed
            or self.empty
            or self.schema_violation
            or self.raw_newlines
            or self.content is not None
            or self.tool_calls is not None
        )

    def scripted_calls(self) -> tuple[tuple[str, str, str], ...]:
        """The scripted calls as (call id, name, arguments text)."""
        return tuple(
            (f"call_scripted_{i}", name, args if isinstance(args, str) else json.dumps(dict(args)))
            for i, (name, args) in enumerate(self.tool_calls or ())
        )


def _is_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def cassette_key(body: Mapping[str, Any]) -> str:
    """The replay key of a chat-completion request: SHA-256 of the canonical JSON of its
    ``model``, ``messages``, ``response_format`` and ``temperature``."""
    subject = {name: body.get(name) for name in ("model", "messages", "response_format", "temperature")}
    canonical = json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> bytes:
    kind, default_code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    error = {"message": message, "type": kind, "param": param, "code": code or default_code}
    return json.dumps({"error": error}).encode()


_REFUSAL_STATUSES = (400, 422, 500)


def _format_refusal(status: int, kind: str, accepted: list[str]) -> bytes:
    """The body a server that does not take response_format ``kind`` answers with, as real servers word it:
    500 as llama-cpp-python's server (its request validation error wrapped as an internal error), 422 as a
    FastAPI app's validation error, 400 as an OpenAI-style refusal."""
    expected = " or ".join(repr(t) for t in accepted)
    if status == 422:
        detail = {
            "type": "literal_error",
            "loc": ["body", "response_format", "type"],
            "msg": f"Input should be {expected}",
            "input": kind,
            "ctx": {"expected": expected},
        }
        return json.dumps({"detail": [detail]}).encode()
    if status == 500:
        error = (
            f"1 validation error:\n  {{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
            f"'msg': \"Input should be {expected}\", 'input': '{kind}', 'ctx': {{'expected': \"{expected}\"}}}}"
        )
        body = {"error": {"message": error, "type": "internal_server_error", "param": None, "code": None}}
        return json.dumps(body).encode()
    return _error_body(400, f"response_format type '{kind}' is not supported by this server", param="response_format")


def _generation_options(
    seconds: Mapping[str, float],
    context_tokens: int,
    slots: int | None,
    reject_json_schema: bool,
    refuse_formats: Mapping[str, int] | None,
) -> dict[str, int]:
    """Check the server's generation options; the response formats it refuses, with the status of each."""
    for name, value in seconds.items():
        if not _is_seconds(value):
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    for name, count in (("context_tokens", context_tokens), ("slots", slots)):
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError(f"{name} must be a positive integer, got {count!r}")
    refused = dict(refuse_formats or {})
    if reject_json_schema:
        refused.setdefault("json_schema", 500)
    for kind, status in refused.items():
        if kind not in ("json_schema", "json_object") or status not in _REFUSAL_STATUSES:
            raise ValueError(
                f"refuse_formats maps 'json_schema' / 'json_object' to 400, 422 or 500, got {kind!r}: {status!r}"
            )
    return refused


def _check_endpoints(
    host: str, port: int, record_to: str | None, upstream: str | None, replay_from: str | None
) -> None:
    """Refuse an address off loopback, a bad port, and record / replay options that do not go together."""
    if not _is_loopback(host):
        raise ValueError(f"the test server binds only to loopback (127.0.0.1, ::1, localhost), got host={host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    if record_to is not None and upstream is None:
        raise ValueError("record_to needs upstream: the base URL of the server whose replies are recorded")
    if replay_from is not None and (upstream is not None or record_to is not None):
        raise ValueError("replay_from answers from the cassette only: do not combine it with upstream or record_to")
    if upstream is not None and urllib.parse.urlsplit(upstream).scheme not in ("http", "https"):
        raise ValueError(f"upstream must be an http(s) base URL such as https://api.openai.com/v1, got {upstream!r}")


def _check_body(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem of a chat-completion request body as ``(param, message)``, or None."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model", f"'model' must be a non-empty string, got {model!r}"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", f"'messages' must be a non-empty list of messages, got {type(messages).__name__}"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return f"messages[{index}]", f"messages[{index}] must be an object with a 'role' string"
        try:
            message_text(message, index)
        except TypeError as exc:
            return f"messages[{index}].content", str(exc)
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict)
        or response_format.get("type") not in ("text", "json_object", "json_schema")
    ):
        return "response_format", (
            "'response_format' must be an object whose 'type' is 'text', 'json_object' or 'json_schema', "
            f"got {response_format!r}"
        )
    if not isinstance(body.get("stream", False), bool):
        return "stream", f"'stream' must be a boolean, got {body.get('stream')!r}"
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return "stream_options", f"'stream_options' must be an object, got {options!r}"
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        return "max_tokens", f"'max_tokens' must be a positive integer, got {max_tokens!r}"
    return None


def _violating(content: str, schema: dict[str, Any] | None) -> str:
    """Valid JSON that breaks ``schema``: the reply without its required properties."""
    resolved = resolve_schema(schema) if schema is not None else {}
    if resolved.get("type", "object") != "object" and "properties" not in resolved:
        return "{}"
    required = set(resolved.get("required") or ())
    if not required:
        return "[]"
    reply = json.loads(content)
    return json.dumps({k: v for k, v in reply.items() if k not in required}, ensure_ascii=False)


def _malformed(content: str) -> str:
    half = content[: max(1, len(content) // 2)]
    try:
        json.loads(half)
    except json.JSONDecodeError:
        return half
    return "not JSON: " + half


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon request threads, so server_close() joins every one of them: nothing outlives stop().
    daemon_threads = False
    block_on_close = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new connections (a 1 s retransmit each).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], owner: OpenAITestServer, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (timeout, dropped connection): nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as OpenAI's endpoint offers
    server_version = "dagwright-testing"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed
        # ACK of the headers (~40 ms on Linux loopback), which would dominate every request's latency.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: test output is not the place for an access log

    def do_GET(self) -> None:
        self.server.owner._handle_get(self)

    def do_POST(self) -> None:
        self.server.owner._handle_post(self)

    def send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        extra = dict(headers or {})
        self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        self.send(status, _error_body(status, message, param=param, code=code))


class _BadRequest(Exception):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _deny(handler: _Handler) -> None:
    """Answer 401 for a request without the expected API key."""
    handler.send_error_json(
        401,
        "Incorrect API key provided: the test server expects 'Authorization: Bearer <api_key>'.",
    )


def _completion_json(body: Mapping[str, Any], completion: Completion, finish: str = "stop") -> dict[str, Any]:
    """``completion`` as an OpenAI ``chat.completion`` object answering ``body``."""
    return {
        "id": f"chatcmpl-{cassette_key(body)[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "system_fingerprint": OFFLINE_MODEL_NAME,
        "choices": [
            {
                "index": 0,
                "message": _message(completion),
                "logprobs": None,
                "finish_reason": "tool_calls" if completion.tool_calls else finish,
            }
        ],
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.total_tokens,
        },
    }


def _send_completion(
    handler: _Handler,
    body: dict[str, Any],
    completion: Completion,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    finish: str = "stop",
) -> None:
    """Send ``completion`` as an OpenAI ``chat.completion`` reply to the request ``body`` (streamed when it
    asks for ``stream``), generated at the server's pace (see :class:`_Generation`)."""
    _Generation(handler, body, completion, finish).run(status, headers)


def _pieces(content: str, paced: bool) -> list[str]:
    """``content`` cut as a model streams it, about a word (a token) a piece, when generation is ``paced``;
    else in large pieces (the content is all there at once)."""
    if not paced:
        return [content[i : i + 16384] for i in range(0, len(content), 16384)] or [""]
    return re.findall(r"\s*\S+|\s+", content) or [""]


_ARGUMENT_PIECE = 4  # characters of a tool call's arguments per streamed piece, about a token


class _Generation:
    """One reply as a server generates it: a piece every ``token_delay`` seconds, holding one of the server's
    slots until it is done.

    A non-streamed reply is generated whole before anything is sent, so a client that leaves early does not
    stop it (llama-cpp-python's server behaves so). A streamed reply is sent piece by piece; when a write
    fails because the client left, generation stops, unless the server was made with
    ``stops_on_disconnect=False`` (then it runs to its end, the slot still held). A server made with
    ``interrupts_streams=True`` ends a stream early, without a finish reason, when another request arrives;
    one made with ``holds_after_done=S`` keeps a stream's body open S seconds after its ``[DONE]``. Tool calls
    stream as OpenAI streams them; a server made with ``streams_tool_calls=False`` answers a streamed request
    offering tools with an empty event stream, as llama-cpp-python's function-calling chat
    formats do."""

    def __init__(self, handler: _Handler, body: dict[str, Any], completion: Completion, finish: str) -> None:
        self.handler = handler
        self.owner = handler.server.owner
        self.body = body
        self.completion = completion
        self.finish = finish
        self.pieces = _pieces(completion.content, self.owner.token_delay > 0)
        # Tokens to generate: a streamed delta each.
        self.steps = sum(1 for _ in self._deltas())

    def run(self, status: int, headers: Mapping[str, str] | None) -> None:
        owner = self.owner
        with owner._slot(self.handler) as granted, owner._generating():
            if not granted:
                return
            if not self.body.get("stream") or not 200 <= status < 300:
                if owner._interrupted(self.handler, owner.token_delay * self.steps):
                    return
                reply = _completion_json(self.body, self.completion, self.finish)
                self.handler.send(status, json.dumps(reply, ensure_ascii=False).encode(), headers)
                return
            self._stream(status, headers)

    def _stream(self, status: int, headers: Mapping[str, str] | None) -> None:
        handler, owner = self.handler, self.owner
        handler.send_response(status)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if self.body.get("tools") and not owner.streams_tool_calls:
            # As llama-cpp-python's function-calling chat formats: the stream has begun when generation fails
            # ("Automatic streaming tool choice is not supported"), so it ends without a single event.
            self._write_raw(b"", last=True)
            return
        connected = self._event({"role": "assistant", "content": ""}, None)
        arrivals = owner._arrivals
        for delta in self._deltas():
            if owner._interrupted(handler, owner.token_delay):
                return
            if owner.interrupts_streams and owner._arrivals != arrivals:
                # As llama-cpp-python's server (interrupt_requests): the stream just ends, with no finish_reason.
                self._write_raw(b"data: [DONE]\n\n")
                self._write_raw(b"", last=True)
                return
            if connected:
                connected = self._event(delta, None)
            if not connected and owner.stops_on_disconnect:
                owner._record_stop()
                return
        if not connected:
            return
        self._event({}, "tool_calls" if self.completion.tool_calls else self.finish)
        if (self.body.get("stream_options") or {}).get("include_usage"):
            c = self.completion
            usage = {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}
            self._write({**self._chunk([]), "usage": {**usage, "total_tokens": c.total_tokens}})
        self._write_raw(b"data: [DONE]\n\n")
        if owner._interrupted(handler, owner.holds_after_done):
            return
        self._write_raw(b"", last=True)

    def _deltas(self) -> Iterator[dict[str, Any]]:
        """The deltas of the reply, a token each: its content, or its tool calls as OpenAI streams them (a call's
        id, name and empty arguments first, then its arguments a few characters a piece)."""
        if not self.completion.tool_calls:
            for piece in self.pieces:
                yield {"content": piece}
            return
        for index, (call_id, name, arguments) in enumerate(self.completion.tool_calls):
            function = {"name": name, "arguments": ""}
            yield {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": function}]}
            for start in range(0, len(arguments), _ARGUMENT_PIECE):
                piece = arguments[start : start + _ARGUMENT_PIECE]
                yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{cassette_key(self.body)[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.completion.model,
            "choices": choices,
        }

    def _event(self, delta: dict[str, Any], finish: str | None) -> bool:
        return self._write(self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]))

    def _write(self, event: dict[str, Any]) -> bool:
        return self._write_raw(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")

    def _write_raw(self, data: bytes, *, last: bool = False) -> bool:
        """Write one chunk of the chunked body; False when the client has gone."""
        frame = f"{len(data):X}\r\n".encode() + data + b"\r\n" + (b"0\r\n\r\n" if last and data else b"")
        try:
            self.handler.wfile.write(frame if data else b"0\r\n\r\n")
            self.handler.wfile.flush()
        except OSError:
            self.handler.close_connection = True
            return False
        return True


def _message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content, "refusal": None}
    if completion.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in completion.tool_calls
        ]
    return message


def _fault_headers(fault: Fault) -> dict[str, str]:
    """The extra response headers ``fault`` asks for."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))
    return headers


def _fault_content(fault: Fault, body: dict[str, Any], content: str) -> str:
    """The content ``fault`` sends instead of the normal reply ``content``."""
    if fault.content is not None:
        return fault.content
    if fault.empty:
        return ""
    if fault.malformed:
        return _malformed(content)
    if fault.schema_violation:
        return _violating(content, find_schema(body["messages"], body.get("response_format")))
    if fault.raw_newlines:
        return _with_raw_newlines(content)
    return content


def _with_raw_newlines(content: str) -> str:
    """``content`` (JSON) with a raw newline inside each text value: after its first space, else at its end."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return content

    def broken(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(" ", "\n", 1) if " " in value else value + "\n"
        if isinstance(value, list):
            return [broken(v) for v in value]
        if isinstance(value, dict):
            return {k: broken(v) for k, v in value.items()}
        return value

    # json.dumps writes each newline as the two characters \n; a model writes the control character itself.
    return json.dumps(broken(data), ensure_ascii=False).replace("\\n", "\n")


def _load_cassette(path: Path) -> dict[str, dict[str, Any]]:
    """The replayable entries of the cassette at ``path``, by key."""
    if not path.is_file():
        raise FileNotFoundError(f"replay cassette {str(path)!r} does not exist; record one with record_to=")
    entries: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from None
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("key"), str)
                or not isinstance(entry.get("status"), int)
                or "response" not in entry
            ):
                raise ValueError(f"{path}:{number}: a cassette line needs 'key' (string), 'status' and 'response'")
            previous = entries.get(entry["key"])
            # A later failure never hides an earlier success for the same request.
            if previous is None or entry["status"] == 200 or previous["status"] != 200:
                entries[entry["key"]] = entry
    return entries


def _cassette_line(body: dict[str, Any], status: int, data: bytes) -> str:
    """One cassette line for an exchange; a reply that is not JSON is kept as text."""
    text = data.decode("utf-8", "replace")
    try:
        response: Any = json.loads(text)
    except json.JSONDecodeError:
        response = text
    return json.dumps(
        {"key": cassette_key(body), "request": body, "response": response, "status": status}, ensure_ascii=False
    )


def _post_upstream(url: str, raw: bytes, authorization: str | None) -> tuple[int, bytes]:
    """POST ``raw`` to ``url``: the reply's status and body (an error status raises ``HTTPError``)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    host = urllib.parse.urlsplit(url).hostname or ""
    # A proxy from the environment must not capture a loopback upstream.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if _is_loopback(host) else None
    with (opener.open if opener else urllib.request.urlopen)(request, timeout=_UPSTREAM_TIMEOUT) as reply:
        return int(reply.status), reply.read()


class OpenAITestServer:
    """An OpenAI-compatible chat-completions server on loopback (see the module docstring).

    Use it as a context manager (``with OpenAITestServer() as server: ...``) or call
    :meth:`start` and :meth:`stop`. Requests are served by one thread each, so sync, async and
    concurrent clients all work; :meth:`stop` closes every connection and joins every thread.
    """

    def __init__(
        self,
        *,
        model: OfflineModel | None = None,
        latency: float = 0.0,
        api_key: str | None = None,
        reject_json_schema: bool = False,
        refuse_formats: Mapping[str, int] | None = None,
        token_delay: float = 0.0,
        context_tokens: int = 2048,
        slots: int | None = None,
        stops_on_disconnect: bool = True,
        interrupts_streams: bool = False,
        streams_tool_calls: bool = True,
        holds_after_done: float = 0.0,
        grammars: str = "ignore",
        ignores_bounds: int = 0,
        record_to: str | None = None,
        upstream: str | None = None,
        replay_from: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        seconds = {"latency": latency, "token_delay": token_delay, "holds_after_done": holds_after_done}
        refused = _generation_options(seconds, context_tokens, slots, reject_json_schema, refuse_formats)
        _check_grammar_options(grammars, ignores_bounds)
        _check_endpoints(host, port, record_to, upstream, replay_from)
        self.model = model if model is not None else OfflineModel()
        self.latency = float(latency)
        self.api_key = api_key
        self.reject_json_schema = reject_json_schema
        self.refuse_formats = refused
        self.token_delay = float(token_delay)
        self.context_tokens = context_tokens
        self.slots = slots
        self.stops_on_disconnect = stops_on_disconnect
        self.interrupts_streams = interrupts_streams
        self.streams_tool_calls = streams_tool_calls
        self.holds_after_done = float(holds_after_done)
        self.grammars = grammars
        self._bounds_to_break = ignores_bounds
        self._arrivals = 0
        self._slot_gate = threading.BoundedSemaphore(slots) if slots is not None else None
        self._stopped_generations = 0
        self._active_generations = 0
        self._connections_opened = 0
        self.record_to = Path(record_to) if record_to is not None else None
        self.upstream = upstream.rstrip("/") if upstream is not None else None
        self.replay_from = Path(replay_from) if replay_from is not None else None
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._connections: set[socket.socket] = set()
        self._cassette: dict[str, dict[str, Any]] = {}
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> OpenAITestServer:
        """Bind, load the cassette (replay mode) and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError(f"the test server is already running at {self.base_url}")
        if self.replay_from is not None:
            self._cassette = _load_cassette(self.replay_from)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self, family)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="dagwright-test-server"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and join every thread. Safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # wakes requests waiting out a latency or a delay
        httpd.shutdown()
        with self._lock:
            for connection in self._connections:
                # Wakes request threads blocked reading an idle keep-alive connection.
                _shutdown(connection)
        httpd.server_close()
        if thread is not None:
            thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> OpenAITestServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "stopped"
        return f"OpenAITestServer({where}, requests={self.request_count})"

    # -- public state ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        if self._httpd is None:
            raise RuntimeError("the test server is not running: call start() or use it in a with block")
        return self.host, int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        host, port = self.address
        return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat-completion request body received, in order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def active_generations(self) -> int:
        """Replies being generated now (a client that left does not end one, see ``stops_on_disconnect``)."""
        with self._lock:
            return self._active_generations

    @property
    def connections_opened(self) -> int:
        """TCP connections clients have opened to this server since it started (a pooled client reuses one)."""
        with self._lock:
            return self._connections_opened

    @property
    def connections_open(self) -> int:
        """TCP connections open now: a client that closed its pool has none left here."""
        with self._lock:
            return len(self._connections)

    @property
    def stopped_generations(self) -> int:
        """Streamed replies whose generation stopped because their client went away."""
        with self._lock:
            return self._stopped_generations

    @property
    def pending_faults(self) -> list[Fault]:
        """The faults not used yet, in queue order."""
        with self._lock:
            return list(self._faults)

    def enqueue(self, *faults: Fault) -> None:
        """Queue faults for the next requests (first in, first used)."""
        for index, fault in enumerate(faults):
            if not isinstance(fault, Fault):
                raise TypeError(f"enqueue() takes Fault objects; argument {index} is {type(fault).__name__}")
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget the received requests and drop the queued faults."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # -- generation -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _slot(self, handler: _Handler) -> Iterator[bool]:
        """Hold one generation slot while the block runs (always, without ``slots``); False when the server
        stopped while the request waited for one."""
        gate = self._slot_gate
        if gate is None:
            yield True
            return
        while not gate.acquire(timeout=0.05):
            if self._stopping.is_set():
                handler.close_connection = True
                _shutdown(handler.connection)
                yield False
                return
        try:
            yield True
        finally:
            gate.release()

    @contextlib.contextmanager
    def _generating(self) -> Iterator[None]:
        with self._lock:
            self._active_generations += 1
        try:
            yield
        finally:
            with self._lock:
                self._active_generations -= 1

    def _record_stop(self) -> None:
        with self._lock:
            self._stopped_generations += 1

    # -- connection tracking --------------------------------------------------------------------------
    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            self._connections_opened += 1
            if self._stopping.is_set():
                _shutdown(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    # -- request handling -----------------------------------------------------------------------------
    def _authorized(self, handler: _Handler) -> bool:
        return self.api_key is None or handler.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _handle_get(self, handler: _Handler) -> None:
        path = urllib.parse.urlsplit(handler.path).path.rstrip("/")
        if path not in ("/v1/models", "/models"):
            handler.send_error_json(404, f"unknown endpoint GET {path}; the test server serves GET /v1/models")
            return
        if not self._authorized(handler):
            _deny(handler)
            return
        entry = {"id": self.model.name, "object": "model", "created": 0, "owned_by": "dagwright"}
        handler.send(200, json.dumps({"object": "list", "data": [entry]}).encode())

    def _handle_post(self, handler: _Handler) -> None:
        path = urllib.parse.urlsplit(handler.path).path.rstrip("/")
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if path not in ("/v1/chat/completions", "/chat/completions"):
            handler.send_error_json(
                404, f"unknown endpoint POST {path}; the test server serves POST /v1/chat/completions"
            )
            return
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            handler.send_error_json(400, f"the request body is not valid JSON: {exc}")
            return
        if not isinstance(body, dict):
            handler.send_error_json(400, f"the request body must be a JSON object, got {type(body).__name__}")
            return
        with self._lock:
            self._requests.append(body)
            self._arrivals += 1
        try:
            self._answer(handler, body, raw)
        except _BadRequest as exc:
            handler.send_error_json(400, exc.message, param=exc.param)
        except OSError:
            raise  # the connection broke; handle_error() keeps quiet about it
        except Exception as exc:
            # A bug in the server or an unusable schema: say so to the client instead of hanging up.
            handler.send_error_json(500, f"the test server failed: {type(exc).__name__}: {exc}")

    def _interrupted(self, handler: _Handler, seconds: float) -> bool:
        """Wait ``seconds``; when the server stops meanwhile, hang up (as a server going away does)."""
        if seconds <= 0 or not self._stopping.wait(seconds):
            return False
        handler.close_connection = True
        _shutdown(handler.connection)
        return True

    def _take_fault(self, text: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.applies_to(text):
                    return self._faults.pop(index)
        return None

    def _answer(self, handler: _Handler, body: dict[str, Any], raw: bytes) -> None:
        if self._interrupted(handler, self.latency):
            return
        if not self._authorized(handler):
            _deny(handler)
            return
        problem = _check_body(body)
        if problem is not None:
            param, message = problem
            handler.send_error_json(400, message, param=param)
            return
        messages: list[dict[str, Any]] = body["messages"]
        fault = self._take_fault("\n".join(message_text(m, i) for i, m in enumerate(messages)))
        if fault is not None and _play_fault(self, handler, body, fault):
            return
        response_format = body.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind in self.refuse_formats:
            status = self.refuse_formats[kind]
            accepted = [t for t in ("text", "json_object", "json_schema") if t not in self.refuse_formats]
            handler.send(status, _format_refusal(status, str(kind), accepted))
            return
        if (grammar := body.get("grammar")) is not None and _refuse_grammar(self, handler, grammar):
            return
        if self.replay_from is not None:
            self._replay(handler, body)
        elif self.upstream is not None:
            self._forward(handler, body, raw)
        elif grammar is not None and self.grammars == "enforce" and response_format is None:
            _send_completion(handler, body, self._offline({**body, "response_format": _grammar_format(grammar)}))
        else:
            _send_completion(handler, body, _bounds_ignored(self, body, self._offline(body)))

    def _offline(self, body: dict[str, Any]) -> Completion:
        try:
            return self.model.complete(
                body["messages"],
                response_format=body.get("response_format"),
                model=body["model"],
                tools=body.get("tools"),
            )
        except (ValueError, TypeError) as exc:
            raise _BadRequest("response_format", f"the offline model cannot answer this request: {exc}") from exc

    # -- record / replay ------------------------------------------------------------------------------
    def _replay(self, handler: _Handler, body: dict[str, Any]) -> None:
        key = cassette_key(body)
        entry = self._cassette.get(key)
        if entry is None:
            handler.send_error_json(
                404,
                f"no recorded reply for key {key} in cassette {self.replay_from}: the request "
                "(model, messages, response_format, temperature) differs from every recorded one; "
                "record it again with record_to= and upstream=",
                code="cassette_miss",
            )
            return
        response = entry["response"]
        payload = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
        _send_recorded(handler, body, int(entry["status"]), payload.encode())

    def _forward(self, handler: _Handler, body: dict[str, Any], raw: bytes) -> None:
        assert self.upstream is not None
        url = f"{self.upstream}/chat/completions"
        if "stream" in body or "stream_options" in body:
            # Asked for whole, so the cassette holds one chat completion; streamed back from it when asked.
            raw = json.dumps({k: v for k, v in body.items() if k not in ("stream", "stream_options")}).encode()
        try:
            status, data = _post_upstream(url, raw, handler.headers.get("Authorization"))
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            handler.send_error_json(502, f"the upstream server {url} did not answer: {exc}")
            return
        if self.record_to is not None:
            self._record(body, status, data)
        _send_recorded(handler, body, status, data)

    def _record(self, body: dict[str, Any], status: int, data: bytes) -> None:
        assert self.record_to is not None
        line = _cassette_line(body, status, data)
        with self._record_lock:
            self.record_to.parent.mkdir(parents=True, exist_ok=True)
            with self.record_to.open("a", encoding="utf-8") as stream:
                stream.write(line + "\n")


def _play_fault(server: OpenAITestServer, handler: _Handler, body: dict[str, Any], fault: Fault) -> bool:
    """Play ``fault``; False when it only delayed a reply that is still to be sent."""
    if server._interrupted(handler, fault.delay):
        return True
    headers = _fault_headers(fault)
    if fault.drop_connection:
        handler.close_connection = True
        _shutdown(handler.connection)
        return True
    if fault.body is not None:
        if fault.body.startswith("data:"):
            headers = {**headers, "Content-Type": "text/event-stream"}
        handler.send(fault.status, fault.body.encode(), headers)
        return True
    if not 200 <= fault.status < 300:
        message = f"injected fault: HTTP {fault.status}"
        handler.send(fault.status, _error_body(fault.status, message), headers)
        return True
    if fault.runaway:
        _send_completion(handler, body, _runaway(server, body), status=fault.status, headers=headers, finish="length")
        return True
    if not fault.replaces_content and not headers and fault.status == 200:
        return False
    completion = server._offline(body)
    if fault.tool_calls is not None:
        calls = fault.scripted_calls()
        size = count_tokens(json.dumps(calls))
        scripted = Completion("", completion.prompt_tokens, size, completion.model, calls)
        _send_completion(handler, body, scripted, status=fault.status, headers=headers)
        return True
    content = _fault_content(fault, body, completion.content)
    replaced = Completion(content, completion.prompt_tokens, count_tokens(content), completion.model)
    _send_completion(handler, body, replaced, status=fault.status, headers=headers)
    return True


def _runaway(server: OpenAITestServer, body: dict[str, Any]) -> Completion:
    """A reply that would never end: one word over and over inside an unclosed JSON text, cut at the
    request's max_tokens or the server's context."""
    tokens = min(body.get("max_tokens") or server.context_tokens, server.context_tokens)
    completion = server._offline(body)
    content = '{"answer": "' + "very " * max(0, tokens - 3)
    return Completion(content, completion.prompt_tokens, tokens, completion.model)


def _send_recorded(handler: _Handler, body: dict[str, Any], status: int, data: bytes) -> None:
    """Send a recorded (or forwarded) reply: as it is, or as a stream when the request asked for one and the
    reply is a chat completion."""
    if body.get("stream") and status == 200:
        try:
            reply = json.loads(data)
            choice = reply["choices"][0]
            content = choice["message"]["content"] or ""
            calls = tuple(
                (str(c["id"]), str(c["function"]["name"]), str(c["function"]["arguments"]))
                for c in choice["message"].get("tool_calls") or ()
            )
            usage = reply.get("usage") or {}
            completion = Completion(
                content,
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
                reply["model"],
                calls,
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            handler.send(status, data)
            return
        _send_completion(handler, body, completion, finish=choice.get("finish_reason") or "stop")
        return
    handler.send(status, data)


def _refuse_grammar(server: OpenAITestServer, handler: _Handler, grammar: Any) -> bool:
    """Answer a request's ``grammar`` field as the server is made to: True when it was refused."""
    if server.grammars == "refuse":
        # As OpenAI's API answers a request argument it does not know.
        handler.send_error_json(400, "Unrecognized request argument supplied: grammar", param="grammar")
        return True
    if server.grammars == "enforce" and (not isinstance(grammar, str) or _grammar_format(grammar) is None):
        # llama.cpp's server answers 400 "failed to parse grammar"; this one knows only dagwright's grammars.
        handler.send_error_json(
            400,
            "Failed to initialize samplers: failed to parse grammar (the test server enforces only grammars "
            f"whose first line is {GRAMMAR_SCHEMA_COMMENT.strip()!r} and the schema)",
            param="grammar",
        )
        return True
    return False


def _bounds_ignored(server: OpenAITestServer, body: dict[str, Any], completion: Completion) -> Completion:
    """``completion`` out of its bounds while ``ignores_bounds`` lasts, as llama.cpp's schema grammars let a
    small model answer: each bounded number just past its bound, each text whose lengths the schema says only
    in words (OpenAI's strict form) past them (a length in ``minLength`` / ``maxLength`` is kept to)."""
    schema = find_schema(body["messages"], body.get("response_format"))
    if schema is None or completion.tool_calls or not _breakable(resolve_schema(schema)):
        return completion
    with server._lock:
        if server._bounds_to_break <= 0:
            return completion
        server._bounds_to_break -= 1
    content = _out_of_bounds(completion.content, schema)
    return Completion(content, completion.prompt_tokens, count_tokens(content), completion.model)


def _breakable(schema: dict[str, Any]) -> bool:
    """Whether a top-level output of ``schema`` has a bound a server's schema grammar does not keep."""
    properties = schema.get("properties") or {}
    texts = [sub for sub in properties.values() if isinstance(sub, dict) and sub.get("type") == "string"]
    return has_bounded_number(schema) or any(described_lengths(sub) for sub in texts)


_GRAMMAR_MODES = ("enforce", "ignore", "refuse")


def _check_grammar_options(grammars: Any, ignores_bounds: Any) -> None:
    if grammars not in _GRAMMAR_MODES:
        raise ValueError(f"grammars must be one of {', '.join(map(repr, _GRAMMAR_MODES))}, got {grammars!r}")
    if not isinstance(ignores_bounds, int) or isinstance(ignores_bounds, bool) or ignores_bounds < 0:
        raise ValueError(f"ignores_bounds must be a number of replies >= 0, got {ignores_bounds!r}")


def _grammar_format(grammar: str) -> dict[str, Any] | None:
    """The response format a grammar made by dagwright stands for: its first line holds the schema."""
    first = grammar.split("\n", 1)[0]
    if not first.startswith(GRAMMAR_SCHEMA_COMMENT):
        return None
    try:
        schema = json.loads(first[len(GRAMMAR_SCHEMA_COMMENT) :])
    except json.JSONDecodeError:
        return None
    return {"type": "json_object", "schema": schema} if isinstance(schema, dict) else None


def _out_of_bounds(content: str, schema: dict[str, Any]) -> str:
    """``content`` (a JSON object) with each bounded number of the top level just past its bound."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return content
    properties = resolve_schema(schema).get("properties") or {}
    if not isinstance(data, dict):
        return content
    for name, sub in properties.items():
        lengths = described_lengths(sub) if isinstance(sub, dict) and sub.get("type") == "string" else None
        if lengths is not None and isinstance(data.get(name), str):
            data[name] = _past_lengths(data[name], *lengths)
            continue
        options = [sub, *(sub.get("anyOf") or ())] if isinstance(sub, dict) else []
        for option in options:
            if not isinstance(option, dict) or option.get("type") not in ("number", "integer"):
                continue
            if option.get("maximum") is not None:
                data[name] = option["maximum"] + (1 if option["type"] == "integer" else 0.5)
            elif option.get("minimum") is not None:
                data[name] = option["minimum"] - 1
            break
    return json.dumps(data, ensure_ascii=False)


def _past_lengths(text: str, least: int, most: int | None) -> str:
    """``text`` run on past ``most`` characters (a small model's paragraph), or cut below ``least``."""
    if most is None:
        return text[: max(least - 1, 0)]
    return (text + " and then some more words about it" * (most // 30 + 1))[: most + 20]


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        connection.shutdown(socket.SHUT_RDWR)
