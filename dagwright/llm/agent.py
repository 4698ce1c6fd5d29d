"""How an agent runs: the core every agent is, whether called directly or as a node of a flow.

:class:`AgentCore` holds a signature, a config and a strategy, and runs one execution:
inputs validated against the signature, the session's memory sent back, the strategy
(by default one structured LLM call, repaired once), behind the access policy and the
result cache, recorded for the monitor, the audit log and traces. The public
:class:`dagwright.BaseAgent` is a thin face over it; node executors use the core alone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from dagwright.compiler.signature import SignatureSpec, as_signature
from dagwright.execution.errors import OutputParseError
from dagwright.execution.events import Usage
from dagwright.llm.client import LLMSettings, complete
from dagwright.llm.config import AgentConfig
from dagwright.llm.memory import Memory, Turn
from dagwright.llm.prompt import build_messages, user_message
from dagwright.llm.structured import parse_reply, response_format, validate_inputs
from dagwright.ops.audit import AccessPolicy, AccessRequest, AuditLog, check_access
from dagwright.ops.cache import ResultCache, cache_key
from dagwright.ops.monitor import ExecutionMonitor, ExecutionRecord, inputs_hash
from dagwright.ops.pricing import cost_of
from dagwright.ops.telemetry import agent_span, tracer

__all__ = ["AgentContext", "AgentCore", "AsyncSingleShotStrategy", "Strategy"]


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


class Strategy(Protocol):
    """How an agent turns inputs into outputs; plug your own with ``BaseAgent(strategy=...)``."""

    async def execute(self, agent: AgentCore, inputs: dict[str, Any], context: AgentContext) -> dict[str, Any]: ...


class AsyncSingleShotStrategy:
    """One LLM call with structured output; a reply that does not parse is sent back once with the error."""

    async def execute(self, agent: AgentCore, inputs: dict[str, Any], context: AgentContext) -> dict[str, Any]:
        config = agent.config
        spec = agent.signature
        settings = config.settings()
        mode = config.structured_output
        messages = build_messages(
            spec,
            inputs,
            system_prompt=config.system_prompt,
            template=config.prompt_template,
            mode=mode,
            history=context.history,
            agent=agent.name,
        )
        fmt = response_format(spec, mode)
        reply = await agent._call(settings, messages, fmt, context)
        outputs, problems = parse_reply(spec, reply)
        if outputs is None:
            first = reply
            repair = [
                *messages,
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": "Your reply could not be used: "
                    + "; ".join(problems)
                    + ". Reply again with only the JSON object, with every field.",
                },
            ]
            reply = await agent._call(settings, repair, fmt, context)
            outputs, problems = parse_reply(spec, reply)
            if outputs is None:
                raise OutputParseError(
                    f"{agent.name}: the reply of {context.model} does not match the signature after one repair: "
                    + "; ".join(problems)
                    + f". Raw reply: {reply[:500]!r}",
                    raw=reply,
                    errors=problems,
                    first_raw=first,
                )
        context.exchange = Turn(messages[-1]["content"], reply)
        return outputs


class AgentCore:
    """An agent's signature, config and strategy, and how one execution runs (see the module docstring)."""

    _execution_monitor: ExecutionMonitor | None = None
    _audit_log: AuditLog | None = None
    _access_policy: AccessPolicy | None = None
    _result_cache: ResultCache | None = None

    def __init__(
        self,
        config: object = None,
        signature: object = None,
        strategy: Strategy | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        if signature is None:
            raise TypeError(f"{self.name}: an agent needs a signature (signature='question -> answer' or a Signature)")
        self._signature: SignatureSpec = as_signature(signature)
        self.config = AgentConfig.coerce(config, owner=self.name)
        if self.config.settings().provider == "openai":
            # Importing the client takes a second or more; doing it here keeps that out of the event
            # loop, where the first call would otherwise stall every concurrent node.
            import openai  # noqa: F401
        self.strategy: Strategy = strategy or AsyncSingleShotStrategy()
        self._memory: Memory | None = None

    @property
    def signature(self) -> SignatureSpec:
        """The normalized signature (``.input_fields``, ``.output_fields``, ``.instructions``)."""
        return self._signature

    @property
    def memory(self) -> Memory | None:
        return self._memory

    def get_execution_monitor(self) -> ExecutionMonitor:
        """Metrics of this agent's recorded executions (the last 1 000): ``.metrics()`` gives count,
        failures, retries, latency p50/p90/p99 (ms), tokens, cost and cache hits; also
        ``set_performance_alerts(latency_threshold=ms, hook=...)`` and ``enable_real_time_tracking()``."""
        if self._execution_monitor is None:
            self._execution_monitor = ExecutionMonitor(self.name)
        return self._execution_monitor

    async def _call(
        self, settings: LLMSettings, messages: list[dict[str, str]], fmt: dict[str, Any] | None, context: AgentContext
    ) -> str:
        reply = await complete(settings, messages, fmt)
        price, known = cost_of(reply.model, reply.prompt_tokens, reply.completion_tokens)
        context.usage.add(Usage(reply.prompt_tokens, reply.completion_tokens, price, known, 1))
        context.model = reply.model
        return reply.content

    async def invoke(
        self, inputs: dict[str, Any], session_id: str | None = None
    ) -> tuple[dict[str, Any], AgentContext]:
        """Validate inputs, run the strategy, remember the turn; returns outputs and the context (usage, model)."""
        values = validate_inputs(self._signature, inputs, where=self.name)
        context = AgentContext(self.name, session_id)
        if self._memory is not None and session_id is not None:
            turns = await self._memory.recent(session_id, self.config.max_turns)
            for turn in turns:
                context.history.extend(turn.messages())
        outputs = await self._observed_execute(values, context)
        if self._memory is not None and session_id is not None and context.exchange is not None:
            await self._memory.append(session_id, context.exchange)
        return outputs, context

    def _cache_key(self, values: dict[str, Any], context: AgentContext) -> str:
        config = self.config
        mode = config.structured_output
        messages = build_messages(
            self._signature,
            values,
            system_prompt=config.system_prompt,
            template=config.prompt_template,
            mode=mode,
            history=context.history,
            agent=self.name,
        )
        return cache_key(
            model=config.model,
            provider=config.provider,
            base_url=config.base_url,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            strategy=type(self.strategy).__qualname__,
            messages=messages,
            response_format=response_format(self._signature, mode),
            inputs=values,
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
                retries=max(0, usage.calls - 1),
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
                with agent_span(otel, self.name, self.config.model) as span:
                    outputs = await self._cached_execute(values, context)
                    span.set_attributes(
                        {
                            "dagwright.model": context.model or self.config.model,
                            "dagwright.tokens.prompt": context.usage.prompt,
                            "dagwright.tokens.completion": context.usage.completion,
                            "dagwright.cost_usd": context.usage.cost,
                            "dagwright.cache": context.cache or "off",
                        }
                    )
        except Exception as exc:
            failed = record(False, exc)
            monitor.record(failed)
            if audit is not None:
                audit.write(agent=self.name, record=failed, inputs=values, outputs=None, secrets=self._secrets())
            raise
        done = record(True)
        monitor.record(done)
        if audit is not None:
            audit.write(agent=self.name, record=done, inputs=values, outputs=outputs, secrets=self._secrets())
        return outputs

    async def _cached_execute(self, values: dict[str, Any], context: AgentContext) -> dict[str, Any]:
        cache = self._result_cache
        if cache is None:
            return await self.strategy.execute(self, values, context)
        key = self._cache_key(values, context)
        hit = cache.get(key)
        if hit is not None and isinstance(hit.get("outputs"), dict):
            outputs: dict[str, Any] = hit["outputs"]
            context.cache = "hit"
            context.model = str(hit.get("model") or self.config.model)
            context.exchange = Turn(
                user_message(self._signature, values, self.config.prompt_template, self.name),
                json.dumps(outputs, ensure_ascii=False),
            )
            return outputs
        context.cache = "miss"
        outputs = await self.strategy.execute(self, values, context)
        # Only a complete, valid result is stored (a custom strategy may return anything).
        if isinstance(outputs, dict) and set(outputs) == {f.name for f in self._signature.outputs}:
            cache.put(key, {"outputs": outputs, "model": context.model})
        return outputs
