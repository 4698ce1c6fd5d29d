"""How an agent runs: the core every agent is, whether called directly or as a node of a flow.

:class:`AgentCore` holds a signature, a config and a strategy, and runs one execution:
inputs validated against the signature, the session's memory sent back, the strategy
(by default one structured LLM call, repaired once), behind the access policy and the
result cache, recorded for the monitor, the audit log and traces. The public
:class:`dagwright.BaseAgent` is a thin face over it; node executors use the core alone.

An agent made without a signature is free-form: it takes inputs of any name, which go
into the prompt by name, and answers in text (``answer``). A strategy is either a
:class:`Strategy` as Kaizen writes them (``async execute(signature, inputs, config)``
with ``preprocess`` / ``llm_call`` / ``postprocess`` hooks) or any object with
``async execute(agent, inputs, context)``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from types import MappingProxyType
from typing import Any, Literal

from dagwright.compiler.signature import FieldSpec, SignatureSpec, as_signature
from dagwright.compiler.tools import describe_sources
from dagwright.compiler.types import ANY, STR
from dagwright.execution.errors import OutputParseError
from dagwright.execution.events import Usage
from dagwright.llm.client import (
    FormatRefusedError,
    LLMReply,
    LLMSettings,
    RequestFor,
    complete_structured,
    grammar_support,
    note_grammar,
    remembered_mode,
)
from dagwright.llm.config import AgentConfig
from dagwright.llm.grammar import output_grammar
from dagwright.llm.memory import BufferMemory, Memory, Turn
from dagwright.llm.prompt import build_messages, user_message
from dagwright.llm.structured import (
    StructuredMode,
    StructuredSetting,
    breaks_bounds,
    loads_lenient,
    parse_reply,
    repair_messages,
    response_format,
    validate_inputs,
)
from dagwright.llm.tools import (
    CallableTool,
    ToolCall,
    ToolCallRecord,
    ToolSource,
    as_tools,
    openai_tools,
    opened_tools,
    tool_loop,
)
from dagwright.ops.audit import AccessPolicy, AccessRequest, AuditLog, check_access
from dagwright.ops.cache import ResultCache, cache_key, make_cache
from dagwright.ops.monitor import ExecutionMonitor, ExecutionOptimizer, ExecutionRecord, inputs_hash
from dagwright.ops.telemetry import agent_span, tracer

__all__ = ["FREE_FORM", "AgentContext", "AgentCore", "AsyncSingleShotStrategy", "Strategy", "free_form_signature"]

log = logging.getLogger("dagwright")

FREE_FORM = as_signature("task: str = '' -> answer: str")
"""What an agent without a signature shows a flow or a Kailash workflow; called directly it takes any inputs."""

# The agent and context of the execution in progress: what a Kaizen-style strategy's llm_call records into.
_current: contextvars.ContextVar[tuple[AgentCore, AgentContext] | None] = contextvars.ContextVar(
    "dagwright_agent_execution", default=None
)


@functools.lru_cache(maxsize=256)
def free_form_signature(names: tuple[str, ...]) -> SignatureSpec:
    """The signature of one free-form call: the inputs given, of any type, and a text ``answer``."""
    inputs = tuple(FieldSpec(name, ANY, "input") for name in names)
    answer = FieldSpec("answer", STR, "output", "Your answer, as text")
    return SignatureSpec(inputs, (answer,), "Do what the inputs ask, using all of them.", "FreeForm")


@dataclass(slots=True)
class AgentContext:
    """What a strategy gets besides the inputs: the session, its history, and the usage to add to."""

    agent_name: str
    session_id: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    exchange: Turn | None = None
    cache: Literal["hit", "miss"] | None = None
    # The signature of this execution: the agent's, or for a free-form agent the one its inputs make.
    signature: SignatureSpec | None = None
    # The tools this execution may call (opened for it: MCP servers connected and listed once), and its calls.
    tools: Sequence[CallableTool] = ()
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    # The structured-output mode the last reply came in (what ``auto`` chose).
    structured_output: StructuredMode | None = None


TOOL_ROUND_TOKENS = 256
"""Tokens added to the default output budget of a request offering tools, for the calls it may ask for."""


def _messages(
    spec: SignatureSpec,
    inputs: Mapping[str, Any],
    config: AgentConfig,
    mode: StructuredMode,
    history: list[dict[str, str]],
    agent: str,
) -> list[dict[str, Any]]:
    """The messages of a request in ``mode``: what is sent, and what a cache key is made of."""
    return build_messages(
        spec,
        dict(inputs),
        system_prompt=config.system_prompt,
        template=config.prompt_template,
        mode=mode,
        history=history,
        agent=agent,
        context=config.extra,
        system_role=config.system_prompt_role,
    )


async def structured_call(
    spec: SignatureSpec, inputs: Mapping[str, Any], config: AgentConfig, context: AgentContext
) -> dict[str, Any]:
    """One LLM call with structured output for ``spec``; a reply that does not parse is sent back once with
    the error, then :class:`OutputParseError` keeps the raw reply. Usage and the model land in ``context``.

    Outputs with a bounded number or a text of bounded length get a grammar of their own
    (:mod:`dagwright.llm.grammar`) where the server is known to enforce one; elsewhere the repair of a reply
    that broke such a bound carries it, and what the server does with it is remembered (see
    :func:`_with_grammar`)."""
    settings = config.settings(spec)
    sent: dict[str, list[dict[str, Any]]] = {}

    def request_for(mode: StructuredMode) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        sent[mode] = _messages(spec, inputs, config, mode, context.history, context.agent_name)
        return sent[mode], response_format(spec, mode)

    grammar = _grammar(spec, config, context, settings)
    reply = None
    if grammar is not None and grammar_support(settings) is True:
        mode = grammar[0]
        reply = await _with_grammar(spec, settings, mode, request_for(mode)[0], grammar[1], context)
        transcript = sent[mode]
    if reply is None:
        reply, transcript = await _answer(settings, config.structured_output, request_for, context, config)
    mode = reply.mode or "json_schema"
    messages = sent[mode]
    outputs, problems = parse_reply(spec, reply.content)
    if outputs is None:
        first = reply.content
        # The model is told to be shorter; the user, in the error below, what to raise.
        told = ["your reply was too long and was cut off; keep it short"] if reply.finish_reason == "length" else []
        repair = repair_messages(transcript, told + problems)
        reply = None
        # The server may have shown by now that it ignores grammars, or the call fallen back to the prompt alone.
        if (
            grammar is not None
            and mode != "prompt"
            and grammar_support(settings) is not False
            and breaks_bounds(spec, first)
        ):
            reply = await _with_grammar(spec, settings, mode, repair, grammar[1], context)
        if reply is None:
            reply, _ = await _answer(settings, mode, lambda m: (repair, response_format(spec, m)), context, config)
        outputs, problems = parse_reply(spec, reply.content)
        if outputs is None:
            problems = cut_off(reply, settings.max_tokens) + problems
            raise OutputParseError(
                f"{context.agent_name}: the reply of {context.model} does not match the signature after one "
                "repair: " + "; ".join(problems) + f". Raw reply: {reply.content[:500]!r}",
                raw=reply.content,
                errors=problems,
                first_raw=first,
            )
    context.exchange = Turn(messages[-1]["content"], reply.content)
    return outputs


def _grammar(
    spec: SignatureSpec, config: AgentConfig, context: AgentContext, settings: LLMSettings
) -> tuple[StructuredMode, str] | None:
    """The JSON mode and the grammar of this call's outputs, when they hold a bounded number or a text of
    bounded length and a grammar may be sent: not with tools (llama.cpp's server refuses a grammar beside
    them), not in ``prompt`` mode (which sends nothing but the prompt), not to a server known to ignore or
    refuse one."""
    if context.tools or settings.provider != "openai" or grammar_support(settings) is False:
        return None
    mode: StructuredMode | None = None
    if config.structured_output == "auto":
        mode = remembered_mode(settings) or "json_schema"
    elif config.structured_output != "prompt":
        mode = config.structured_output
    text = output_grammar(spec) if mode in ("json_schema", "json_object") else None
    return (mode, text) if mode is not None and text is not None else None


async def _with_grammar(
    spec: SignatureSpec,
    settings: LLMSettings,
    mode: StructuredMode,
    messages: list[dict[str, Any]],
    grammar: str,
    context: AgentContext,
) -> LLMReply | None:
    """The reply to ``messages`` sent with ``grammar`` in place of the response format, and what it shows of
    the server: a reply that keeps to the grammar means it enforces grammars; one that is no JSON or breaks a
    bound means it ignores them, and a refusal of the field that it refuses them (in both cases None: the
    caller sends the request again with its response format). A reply cut at max_tokens shows nothing."""
    fmt = {"type": "grammar", "grammar": grammar}
    try:
        reply = await _call(settings, mode, lambda _: (messages, fmt), context, None)
    except FormatRefusedError as exc:
        log.info("%s; requests to it go without a grammar", exc)
        note_grammar(settings, False)
        return None
    if reply.finish_reason != "length":
        data, error = loads_lenient(reply.content)
        kept = not error and isinstance(data, dict) and not breaks_bounds(spec, reply.content)
        note_grammar(settings, kept)
        if not kept:
            # Not the model's fault but the server's, which went by the prompt alone: the request goes again
            # with its response format (once per server: it is not sent a grammar again).
            return None
    return reply


def cut_off(reply: LLMReply, max_tokens: int | None) -> list[str]:
    """What to say of a reply the server cut at its output limit (none for a reply that ended by itself)."""
    if reply.finish_reason != "length":
        return []
    limit = f"max_tokens={max_tokens}" if max_tokens else "the server's output limit"
    return [f"the reply was cut off at {limit}; raise max_tokens if replies this long are expected"]


async def _answer(
    settings: LLMSettings,
    setting: StructuredSetting,
    request_for: RequestFor,
    context: AgentContext,
    config: AgentConfig,
) -> tuple[LLMReply, list[dict[str, Any]]]:
    """The model's answer and the transcript it answers: one call, or with tools the bounded tool loop (every
    round counted; the structured-output mode the first round settles on is kept for the others)."""
    if not context.tools:
        reply = await _call(settings, setting, request_for, context, None)
        return reply, request_for(reply.mode or "json_schema")[0]
    offered = openai_tools(context.tools)
    if config.max_tokens is None and settings.max_tokens:
        # The signature's output budget counts only the answer; a round may instead ask for tool calls, whose
        # names and arguments need room of their own (cut, their arguments would not be JSON).
        settings = dc_replace(settings, max_tokens=settings.max_tokens + TOOL_ROUND_TOKENS)
    transcript = list(request_for("json_schema" if setting == "auto" else setting)[0])
    opening = len(transcript)
    last: list[LLMReply] = []

    async def ask(turns: list[dict[str, Any]]) -> tuple[str, tuple[ToolCall, ...]]:
        rounds = turns[opening:]

        def with_rounds(mode: StructuredMode) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
            messages, fmt = request_for(mode)
            return [*messages, *rounds], fmt

        reply = await _call(settings, last[-1].mode or setting if last else setting, with_rounds, context, offered)
        last.append(reply)
        return reply.content, tuple(ToolCall(*call) for call in reply.tool_calls)

    await tool_loop(
        ask,
        transcript,
        context.tools,
        max_steps=config.max_tool_steps,
        timeout=config.tool_timeout,
        where=context.agent_name,
        records=context.tool_calls,
    )
    return last[-1], transcript


async def _call(
    settings: LLMSettings,
    mode: StructuredSetting,
    request_for: RequestFor,
    context: AgentContext,
    tools: list[dict[str, Any]] | None,
) -> LLMReply:
    # Every request is counted into the context's usage as it ends, those of a call that fails too.
    reply = await complete_structured(settings, mode, request_for, tools, usage=context.usage)
    context.model = reply.model
    context.structured_output = reply.mode
    return reply


class Strategy:
    """How an agent turns inputs into outputs, as Kaizen writes strategies::

        class CustomStrategy(Strategy):
            async def execute(self, signature, inputs, config):
                processed = self.preprocess(inputs)
                result = await self.llm_call(signature, processed, config)
                return self.postprocess(result)

    That is also what the base ``execute`` does. ``llm_call`` is one structured call with
    repair; inside an agent's execution it is counted there (tokens, cost, model, memory),
    outside one (``await self.strategy.execute(self.signature, inputs, self.config)``) it
    still runs, recorded nowhere. Plug one in with ``BaseAgent(strategy=...)``; an object
    with ``async execute(agent, inputs, context)`` works too.
    """

    async def execute(self, signature: Any, inputs: Any, config: Any) -> Any:
        processed = self.preprocess(inputs)
        result = await self.llm_call(signature, processed, config)
        return self.postprocess(result)

    def preprocess(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs as the LLM call gets them (as given, by default)."""
        return dict(inputs)

    async def llm_call(self, signature: Any, inputs: Mapping[str, Any], config: Any) -> dict[str, Any]:
        """One structured LLM call for ``signature`` with ``config`` (an AgentConfig, a dict or a dataclass)."""
        current = _current.get()
        if current is not None:
            agent, context = current
            spec = context.signature or agent.signature
        else:
            context = AgentContext(type(self).__name__)
            spec = as_signature(signature)
        return await structured_call(spec, inputs, AgentConfig.coerce(config, owner=context.agent_name), context)

    def postprocess(self, result: dict[str, Any]) -> dict[str, Any]:
        """The outputs as the agent returns them (as the call gave them, by default)."""
        return result


class AsyncSingleShotStrategy(Strategy):
    """The default: one LLM call with structured output; a reply that does not parse is sent back once with
    the error. Called by an agent, or directly as Kaizen code does (``execute(signature, inputs, config)``)."""

    async def execute(self, signature: Any, inputs: Any, config: Any) -> Any:
        if isinstance(signature, AgentCore) and isinstance(config, AgentContext):  # dagwright's own call
            agent, context = signature, config
            spec = context.signature or agent.signature
            return await structured_call(spec, inputs, agent.config, context)
        return await super().execute(signature, inputs, config)


class AgentCore:
    """An agent's signature, config and strategy, and how one execution runs (see the module docstring)."""

    _execution_monitor: ExecutionMonitor | None = None
    _execution_optimizer: ExecutionOptimizer | None = None
    _audit_log: AuditLog | None = None
    _access_policy: AccessPolicy | None = None
    _access_policy_name: str | None = None
    _result_cache: ResultCache | None = None

    def __init__(
        self,
        config: object = None,
        signature: object = None,
        strategy: Strategy | None = None,
        *,
        name: str | None = None,
        tools: Iterable[object] | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        self.tools: list[ToolSource] = as_tools(tools)
        self.free_form = signature is None
        self._signature: SignatureSpec = FREE_FORM if signature is None else as_signature(signature)
        self.config = AgentConfig.coerce(config, owner=self.name)
        if self.config.settings().provider == "openai":
            # Importing the client takes a second or more; doing it here keeps that out of the event
            # loop, where the first call would otherwise stall every concurrent node.
            import openai  # noqa: F401
        self.strategy: Any = strategy or AsyncSingleShotStrategy()
        self._memory: Memory | None = None
        self.batch_concurrency = 4
        # Calls without a session_id share this one once memory is on (Kaizen's agents remember across calls).
        self.default_session: str | None = None
        if "max_turns" in self.config.model_fields_set:  # a memory window in the config turns memory on
            self._memory = BufferMemory()
            self.default_session = f"{self.name}:default"

    def ir_notes(self) -> dict[str, Any]:
        """What a graph must say about this agent beyond its safe settings, for the places that run the
        graph without this object (a graph loaded from JSON, an exported script).

        ``access_policy``: the name of a named policy, which those places install afresh;
        ``in_process``: what only this process holds and they cannot rebuild (a callable access
        policy, a custom strategy), so they refuse to run the node rather than run it without it.
        """
        notes: dict[str, Any] = {}
        held: list[str] = []
        if self._access_policy is not None:
            if self._access_policy_name is not None:
                notes["access_policy"] = self._access_policy_name
            else:
                held.append(f"access policy {_describe_callable(self._access_policy)}")
        if type(self.strategy) is not AsyncSingleShotStrategy:
            held.append(f"strategy {_describe_callable(type(self.strategy))}")
        if held:
            notes["in_process"] = held
        return notes

    @property
    def signature(self) -> SignatureSpec:
        """The normalized signature (``.input_fields``, ``.output_fields``, ``.instructions``)."""
        return self._signature

    @property
    def memory(self) -> Memory | None:
        return self._memory

    def signature_for(self, inputs: Mapping[str, Any]) -> SignatureSpec:
        """The signature a call with ``inputs`` runs under: the agent's, or for a free-form agent one made of
        the inputs given (a free-form call needs at least one)."""
        if not self.free_form:
            return self._signature
        if not inputs:
            raise ValueError(f"{self.name}: an agent without a signature needs at least one input, e.g. task=...")
        return free_form_signature(tuple(inputs))

    def get_execution_monitor(self) -> ExecutionMonitor:
        """Metrics of this agent's recorded executions (the last 1 000): ``.metrics()`` gives count,
        failures, retries, latency p50/p90/p99 (ms), tokens, cost and cache hits; also
        ``set_performance_alerts(latency_threshold=ms, hook=...)`` and ``enable_real_time_tracking()``."""
        if self._execution_monitor is None:
            self._execution_monitor = ExecutionMonitor(self.name)
        return self._execution_monitor

    async def invoke(
        self, inputs: dict[str, Any], session_id: str | None = None, *, usage: Usage | None = None
    ) -> tuple[dict[str, Any], AgentContext]:
        """Validate inputs, run the strategy, remember the turn; returns outputs and the context (usage, model).

        ``usage``, when given, is the context's usage: every request is added to it as it ends, so the
        caller keeps the count of an execution that raises."""
        spec = self.signature_for(inputs)
        values = validate_inputs(spec, inputs, where=self.name)
        if session_id is None and self._memory is not None:
            session_id = self.default_session
        context = AgentContext(self.name, session_id, usage=usage if usage is not None else Usage(), signature=spec)
        if self._memory is not None and session_id is not None:
            query = " ".join(str(v) for v in values.values())
            for turn in await self._memory.recall(session_id, query, self.config.max_turns):
                context.history.extend(turn.messages())
        outputs = await self._observed_execute(values, context)
        if self._memory is not None and session_id is not None and context.exchange is not None:
            await self._memory.append(session_id, context.exchange)
        return outputs, context

    async def _run_strategy(self, values: dict[str, Any], context: AgentContext) -> Any:
        """The strategy's outputs, with the agent's tools open for it (after the access policy and the cache:
        a denied or cached execution starts no MCP server)."""
        if not self.tools:
            return await self._strategy_outputs(values, context)
        async with opened_tools(self.tools) as opened:
            context.tools = opened
            return await self._strategy_outputs(values, context)

    async def _strategy_outputs(self, values: dict[str, Any], context: AgentContext) -> Any:
        """The strategy's outputs: dagwright's single shot directly, a Kaizen-style :class:`Strategy` with
        ``(signature, inputs, config)``, any other object with ``(agent, inputs, context)``."""
        strategy = self.strategy
        if type(strategy).execute is AsyncSingleShotStrategy.execute or not isinstance(strategy, Strategy):
            return await strategy.execute(self, values, context)
        token = _current.set((self, context))
        try:
            return await strategy.execute(context.signature or self._signature, values, self.config)
        finally:
            _current.reset(token)

    def _cache_key(self, values: dict[str, Any], context: AgentContext) -> str:
        config = self.config
        # auto is keyed as json_schema, its first choice: a key must not change as the mode is learnt.
        mode: StructuredMode = "json_schema" if config.structured_output == "auto" else config.structured_output
        spec = context.signature or self._signature
        messages = _messages(spec, values, config, mode, context.history, self.name)
        return cache_key(
            model=config.model,
            provider=config.provider,
            base_url=config.base_url,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            strategy=type(self.strategy).__qualname__,
            messages=messages,
            response_format=response_format(spec, mode),
            inputs=values,
            # The tools offered change what the model does (and what runs): a different set, a different entry.
            tools=describe_tools(self.tools),
        )

    def _secrets(self) -> tuple[str, ...]:
        keys = [self.config.api_key.get_secret_value() if self.config.api_key is not None else None]
        keys.append(os.environ.get("OPENAI_API_KEY"))
        return tuple(k for k in keys if k)

    async def _observed_execute(self, values: dict[str, Any], context: AgentContext) -> dict[str, Any]:
        """The strategy, behind the access policy and the cache; recorded for the monitor, audit log and traces."""
        audit = self._audit_log
        monitor = self.get_execution_monitor()
        started = time.time()
        clock = time.perf_counter()

        def record(success: bool, error: BaseException | None = None) -> ExecutionRecord:
            usage = context.usage
            return ExecutionRecord(
                name=self.name,
                started_at=started,
                duration_ms=(time.perf_counter() - clock) * 1000.0,
                success=success,
                model=context.model or self.config.model,
                prompt_tokens=usage.prompt,
                completion_tokens=usage.completion,
                cost=usage.cost,
                cost_known=usage.cost_known,
                llm_calls=usage.calls,
                # Calls beyond the first that were not tool rounds were repairs (a reply sent back once).
                retries=max(0, usage.calls - 1 - max((c.round for c in context.tool_calls), default=0)),
                cache=context.cache,
                error=(str(error) or type(error).__name__) if error is not None else None,
                error_type=type(error).__name__ if error is not None else None,
                input_hash=inputs_hash(values),
                session_id=context.session_id,
            )

        if self._access_policy is not None:
            user = audit.user() if audit is not None else None
            request = AccessRequest(self.name, self.config.model, MappingProxyType(values), context.session_id, user)
            reason = check_access(self._access_policy, request)
            if reason is not None:
                denied = PermissionError(f"{self.name}: access denied: {reason}")
                if audit is not None:
                    audit.write(
                        agent=self.name,
                        record=record(False, denied),
                        inputs=values,
                        outputs=None,
                        secrets=self._secrets(),
                        event="denied",
                    )
                raise denied
        monitor.started()
        otel = tracer()
        try:
            if otel is None:
                outputs = await self._cached_execute(values, context)
            else:
                # The span reads the context's usage and model when the execution ends (failed or not).
                with agent_span(otel, self.name, self.config.model, context, lambda: self.config.settings().provider):
                    outputs = await self._cached_execute(values, context)
        except Exception as exc:
            failed = record(False, exc)
            monitor.record(failed)
            _log_call(failed)
            if audit is not None:
                audit.write(agent=self.name, record=failed, inputs=values, outputs=None, secrets=self._secrets())
            raise
        done = record(True)
        monitor.record(done)
        _log_call(done)
        optimizer = self._execution_optimizer
        if optimizer is not None and optimizer.auto_optimization:
            optimizer.auto_apply(_Actions(self))
        if audit is not None:
            audit.write(agent=self.name, record=done, inputs=values, outputs=outputs, secrets=self._secrets())
        return outputs

    async def _cached_execute(self, values: dict[str, Any], context: AgentContext) -> dict[str, Any]:
        cache = self._result_cache
        if cache is None:
            produced: dict[str, Any] = await self._run_strategy(values, context)
            return produced
        key = self._cache_key(values, context)
        hit = cache.get(key)
        if hit is not None and isinstance(hit.get("outputs"), dict):
            outputs: dict[str, Any] = hit["outputs"]
            context.cache = "hit"
            context.model = str(hit.get("model") or self.config.model)
            context.exchange = Turn(
                user_message(context.signature or self._signature, values, self.config.prompt_template, self.name),
                json.dumps(outputs, ensure_ascii=False),
            )
            # The calls that produced the result, each marked cached: they ran then, not now.
            context.tool_calls = [
                ToolCallRecord.replayed(c) for c in hit.get("tool_calls") or () if isinstance(c, dict)
            ]
            return outputs
        context.cache = "miss"
        outputs = await self._run_strategy(values, context)
        # Only a complete, valid result is stored (a custom strategy may return anything).
        if isinstance(outputs, dict) and set(outputs) == {
            f.name for f in (context.signature or self._signature).outputs
        }:
            entry: dict[str, Any] = {"outputs": outputs, "model": context.model}
            if context.tool_calls:
                # As JSON (a value without a JSON form by its text), so that the entry can be stored at all.
                calls = [call.to_dict() for call in context.tool_calls]
                entry["tool_calls"] = json.loads(json.dumps(calls, default=str, ensure_ascii=False))
            if not cache.put(key, entry) and "tool_calls" in entry:
                del entry["tool_calls"]
                cache.put(key, entry)
        return outputs


class _Actions:
    """What the optimizer may change on an agent when auto-optimization is on."""

    def __init__(self, agent: AgentCore) -> None:
        self.agent = agent

    def enable_cache(self) -> None:
        if self.agent._result_cache is None:
            self.agent._result_cache = make_cache("memory", owner=self.agent.name)

    def switch_model(self, model: str) -> None:
        self.agent.config = self.agent.config.model_copy(update={"model": model})

    def set_concurrency(self, n: int) -> None:
        self.agent.batch_concurrency = n


def describe_tools(sources: Sequence[object]) -> list[dict[str, Any]]:
    """The agent's tools as declared, what a cache key hashes: each Python tool's spec, each MCP server's
    IR entry (its command or URL and the tools it must have, not what it listed: the key of an execution
    is taken before the server is asked, and must be the same before and after)."""
    described: list[dict[str, Any]] = []
    for source in sources:
        specs, servers = describe_sources((source,))
        described.extend(servers if servers else (spec.to_json() for spec in specs))
    return described


def _log_call(record: ExecutionRecord) -> None:
    """One DEBUG record per execution on the ``dagwright`` logger: agent, model, time, tokens, outcome."""
    if log.isEnabledFor(logging.DEBUG):
        outcome = "ok" if record.success else f"failed: {record.error_type}: {record.error}"
        log.debug(
            "agent %s: model %s, %.1f ms, %d tokens (%d prompt, %d completion), $%.6f, cache %s, %s",
            record.name,
            record.model,
            record.duration_ms,
            record.prompt_tokens + record.completion_tokens,
            record.prompt_tokens,
            record.completion_tokens,
            record.cost,
            record.cache or "off",
            outcome,
            extra={"dagwright_execution": record},
        )


def _describe_callable(obj: object) -> str:
    """The qualname of a function or class (of an instance, its class), for messages and the IR.

    Not the module: it is ``__main__`` or the file's name depending on how the file was started, and
    the IR (its fingerprints) must not depend on that.
    """
    target = obj if isinstance(obj, type) or inspect.isroutine(obj) else type(obj)
    return str(getattr(target, "__qualname__", type(target).__name__))
