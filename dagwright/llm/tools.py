"""Tools an agent calls: Python functions described by their signatures, and the bounded tool loop.

A :class:`Tool` wraps a plain function (sync or async). Its JSON schema comes from the signature
(pydantic models, ``Literal``, enums and containers included), its description from the docstring.
A parameter without a type hint, or whose type has no JSON schema, is not refused here: the tool
keeps the problem, the IR lists it, and ``compile()`` reports it (DW301 / DW302) with every other
problem of the flow.

:func:`tool_loop` is OpenAI function calling, bounded: the model asks for calls, they run
concurrently (each under its timeout), their results go back, until the model answers without
asking for tools. A tool that fails (it raises, times out, gets arguments that are not JSON or do
not fit its schema, or does not exist) answers the model with the error, once per tool; a second
failure of the same tool ends the loop with :class:`ToolError`. More than ``max_steps`` rounds end
it with :class:`ToolLoopError`, which keeps the transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from dagwright.compiler.tools import ToolSpec

__all__ = [
    "CallableTool",
    "Tool",
    "ToolCall",
    "ToolCallRecord",
    "ToolError",
    "ToolLoopError",
    "ToolSource",
    "as_tools",
    "openai_tools",
    "opened_tools",
    "tool_loop",
]

_MAX_RESULT_CHARS = 20_000  # what one tool result may put into the conversation
_TRANSCRIPT_CHARS = 4_000


class ToolError(RuntimeError):
    """A tool failed twice in one execution (the first failure went back to the model)."""

    def __init__(
        self,
        message: str,
        transcript: Sequence[Mapping[str, Any]] = (),
        calls: Sequence[ToolCallRecord] = (),
    ) -> None:
        super().__init__(message)
        self.transcript = [dict(m) for m in transcript]
        # The calls made before the loop ended, as node records and results report them.
        self.calls = [call.to_dict() for call in calls]


class ToolLoopError(ToolError):
    """The model still asked for tools after ``max_tool_steps`` rounds; ``transcript`` holds the conversation."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for: its id, the tool's name and the arguments as the model wrote them."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of an execution, as results and node records report it."""

    name: str
    arguments: Any
    result: Any = None
    duration_ms: float = 0.0
    error: str | None = None
    round: int = 1
    # Made by the execution whose result a cache gave back, not by this one: nothing ran now.
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "arguments": self.arguments, "result": self.result}
        data["duration_ms"] = round(self.duration_ms, 3)
        data["round"] = self.round
        if self.error is not None:
            data["error"] = self.error
        if self.cached:
            data["cached"] = True
        return data

    @classmethod
    def replayed(cls, data: Mapping[str, Any]) -> ToolCallRecord:
        """A call stored with a cached result, as the cache hit reports it (``cached=True``)."""
        error = data.get("error")
        return cls(
            str(data.get("name", "")),
            data.get("arguments"),
            data.get("result"),
            float(data.get("duration_ms") or 0.0),
            None if error is None else str(error),
            int(data.get("round") or 1),
            cached=True,
        )


class CallableTool(Protocol):
    """What the tool loop calls: a :class:`Tool`, or a tool an MCP server listed."""

    name: str
    description: str
    timeout: float | None
    spec: ToolSpec

    async def call(self, arguments: Mapping[str, Any]) -> Any: ...


class ToolSource(Protocol):
    """Something that provides tools for one execution: a :class:`Tool`, or an MCP server (connected, its
    tools listed once, for as long as the context is open)."""

    def session(self) -> contextlib.AbstractAsyncContextManager[Sequence[CallableTool]]: ...


@contextlib.asynccontextmanager
async def opened_tools(sources: Sequence[ToolSource]) -> AsyncIterator[list[CallableTool]]:
    """The tools of ``sources`` for one execution; MCP connections close when the context does."""
    async with contextlib.AsyncExitStack() as stack:
        tools: list[CallableTool] = []
        for source in sources:
            tools.extend(await stack.enter_async_context(source.session()))
        yield tools


_Adapter = TypeAdapter[Any] | None


class Tool:
    """A callable the model may ask for: ``Tool(fn)``, ``Tool(fn, name="search", timeout=10)``.

    ``call`` validates the arguments against the schema (a pydantic model parameter receives the model),
    runs the function (a sync one in a worker thread) and returns its result as JSON data.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a tool must be a function, got {type(fn).__name__}")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.description = description if description is not None else inspect.getdoc(fn) or ""
        self.timeout = timeout
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            inspect.getattr_static(type(fn), "__call__", None)
        )
        self._args_model, self._returns, self.spec = _describe(fn, self.name, self.description)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, {self.spec.where})"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Sequence[CallableTool]]:
        yield (self,)

    async def call(self, arguments: Mapping[str, Any]) -> Any:
        """Run the tool; raises ``ValueError`` naming the argument when ``arguments`` do not fit."""
        try:
            parsed = self._args_model.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise ValueError(f"arguments do not fit tool {self.name!r}: {problems}") from None
        kwargs = {key: getattr(parsed, key) for key in type(parsed).model_fields}
        if self._is_async:
            result = await self.fn(**kwargs)
        else:
            result = await asyncio.to_thread(self.fn, **kwargs)
        return self._dump(result)

    def _dump(self, result: Any) -> Any:
        if self._returns is not None:
            try:
                return self._returns.dump_python(result, mode="json")
            except Exception:  # the value does not match its annotation: pass on what it is
                pass
        try:
            return TypeAdapter(Any).dump_python(result, mode="json")
        except Exception:  # an object with no JSON form: the model reads its text
            return str(result)


def _describe(fn: Callable[..., Any], name: str, description: str) -> tuple[type[BaseModel], _Adapter, ToolSpec]:
    """The arguments model, the return adapter and the IR spec of ``fn``."""
    from dagwright.compiler.types import callable_hints

    try:
        hints = callable_hints(fn)
    except Exception:  # an annotation that does not evaluate: the parameters count as untyped
        hints = {}
    untyped: list[str] = []
    unschematized: list[tuple[str, str]] = []
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name!r}: *{param.name} / **{param.name} cannot be described to a model")
        annotation = hints.get(param.name, Any)
        if param.name not in hints:
            untyped.append(param.name)
        elif not _has_schema(annotation, param.name, unschematized):
            annotation = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    returns: _Adapter = None
    if "return" not in hints:
        untyped.append("return")
    else:
        try:
            returns = TypeAdapter(hints["return"])
        except Exception:
            returns = None
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    origin = {"kind": "python", "function": f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', name)}"}
    spec = ToolSpec(name, description, schema, origin, tuple(untyped), tuple(unschematized))
    return model, returns, spec


def _has_schema(annotation: Any, param: str, problems: list[tuple[str, str]]) -> bool:
    try:
        TypeAdapter(annotation).json_schema()
    except Exception:
        shown = getattr(annotation, "__qualname__", None) or repr(annotation)
        problems.append((param, f"pydantic has no JSON schema for {shown}"))
        return False
    return True


def as_tools(tools: Iterable[object] | None) -> list[Any]:
    """Tool sources from what ``tools=[...]`` was given: functions become :class:`Tool` s; tools and MCP
    servers are kept. Anything else is a ``TypeError`` naming its position."""
    out: list[Any] = []
    for index, item in enumerate(tools or ()):
        if isinstance(item, Tool) or hasattr(item, "session"):
            out.append(item)
        elif callable(item):
            out.append(Tool(item))
        else:
            raise TypeError(f"tools[{index}]: expected a function, a Tool or an MCP server, got {type(item).__name__}")
    return out


def openai_tools(tools: Iterable[CallableTool]) -> list[dict[str, Any]]:
    """The ``tools`` parameter of a chat-completion request."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": dict(t.spec.parameters)},
        }
        for t in tools
    ]


# --------------------------------------------------------------------------- the loop


@dataclass(slots=True)
class _LoopState:
    tools: dict[str, CallableTool]
    timeout: float | None
    where: str
    records: list[ToolCallRecord] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)


async def tool_loop(
    ask: Callable[[list[dict[str, Any]]], Awaitable[tuple[str, tuple[ToolCall, ...]]]],
    messages: list[dict[str, Any]],
    tools: Sequence[CallableTool],
    *,
    max_steps: int | None,
    timeout: float | None,
    where: str,
    records: list[ToolCallRecord],
) -> str:
    """Ask the model until it answers without tool calls; returns that answer's text.

    ``ask(messages)`` is one model call; every call and result is appended to ``messages`` (the
    transcript) and recorded in ``records``."""
    state = _LoopState({t.name: t for t in tools}, timeout, where, records)
    rounds = 0
    while True:
        content, calls = await ask(messages)
        if not calls:
            return content
        if max_steps is not None and rounds >= max_steps:
            raise ToolLoopError(
                f"{where}: the model still asks for tools ({', '.join(c.name for c in calls)}) after "
                f"{rounds} round(s) of tool calls (max_tool_steps={max_steps}); transcript: " + _transcript(messages),
                messages,
                records,
            )
        rounds += 1
        messages.append(
            {
                "role": "assistant",
                # An empty text, not null: llama-cpp-python refuses an assistant message whose content is null.
                "content": content or "",
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ],
            }
        )
        results = await asyncio.gather(*(_run_call(state, call, rounds) for call in calls))
        for call, text in zip(calls, results, strict=True):
            messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        this_round = records[-len(calls) :]
        for record in this_round:
            if record.error is not None and record.name in state.failed:
                raise ToolError(
                    f"{where}: tool {record.name!r} failed again: {record.error} (its first failure went back "
                    "to the model, which asked for it again)",
                    messages,
                    records,
                )
        state.failed.update(r.name for r in this_round if r.error is not None)


async def _run_call(state: _LoopState, call: ToolCall, round_no: int) -> str:
    """Run one call; its result (or its error) as the text the model gets back."""
    started = time.perf_counter()
    record = ToolCallRecord(call.name, call.arguments, round=round_no)
    state.records.append(record)
    tool = state.tools.get(call.name)
    try:
        if tool is None:
            known = ", ".join(sorted(state.tools)) or "none"
            raise LookupError(f"there is no tool named {call.name!r}; the tools are: {known}")
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError as exc:
            raise ValueError(f"the arguments of {call.name!r} are not JSON ({exc}): {call.arguments[:200]!r}") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"the arguments of {call.name!r} must be a JSON object, got {call.arguments[:200]!r}")
        record.arguments = arguments
        limit = tool.timeout if tool.timeout is not None else state.timeout
        try:
            result = await asyncio.wait_for(tool.call(arguments), limit)
        except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
            raise TimeoutError(f"tool {call.name!r} did not finish within {limit:g} s") from None
        record.result = result
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        text = f"error: {record.error}"
    finally:
        record.duration_ms = (time.perf_counter() - started) * 1000.0
    if len(text) > _MAX_RESULT_CHARS:
        text = text[:_MAX_RESULT_CHARS] + f"... (cut at {_MAX_RESULT_CHARS} characters)"
    return text


def _transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for m in messages:
        if m.get("role") == "system":
            continue
        calls = m.get("tool_calls")
        if calls:
            asked = ", ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
            lines.append(f"assistant asks: {asked}")
        else:
            lines.append(f"{m.get('role')}: {str(m.get('content') or '')[:300]}")
    text = " | ".join(lines)
    return text if len(text) <= _TRANSCRIPT_CHARS else "... " + text[-_TRANSCRIPT_CHARS:]
