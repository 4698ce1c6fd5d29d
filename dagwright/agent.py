"""Agents: a signature, a config and a strategy, run directly or as a node of a flow.

::

    agent = BaseAgent(config={"model": "gpt-4o-mini"}, signature="question -> answer, confidence: float")
    agent.run(question="What is ML?")      # {"answer": ..., "confidence": ..., "_timing": ..., "_tokens": ...}
    agent.execute(question="What is ML?")  # ExecutionResult: .answer .confidence .success .error .metadata

``run()`` is a sync front for async work and also works inside a running event
loop. Inputs are validated against the signature before any LLM call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from dagwright.compiler.signature import SignatureSpec, as_signature
from dagwright.runtime._sync import run_sync
from dagwright.runtime.audit import AccessPolicy, AccessRequest, AuditLog, AuditPolicy, check_access
from dagwright.runtime.cache import ResultCache, cache_key, make_cache
from dagwright.runtime.errors import OutputParseError
from dagwright.runtime.events import Usage
from dagwright.runtime.llm import LLMSettings, complete, resolve_provider
from dagwright.runtime.memory import BufferMemory, Memory, SqliteMemory, Turn
from dagwright.runtime.monitor import ExecutionMonitor, ExecutionOptimizer, ExecutionRecord, inputs_hash
from dagwright.runtime.pricing import cost_of
from dagwright.runtime.prompt import build_messages, user_message
from dagwright.runtime.structured import StructuredMode, parse_reply, response_format, validate_inputs
from dagwright.runtime.telemetry import agent_span, tracer

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentContext",
    "AsyncSingleShotStrategy",
    "BaseAgent",
    "ExecutionResult",
    "Strategy",
]


class AgentConfig(BaseModel):
    """An agent's settings. Also accepted as a dict or a dataclass with these names.

    Keys that are not settings are kept as ``extra`` role context (``{"source": "web"}``);
    a key that looks like a misspelt setting (``temprature``) is an error.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    provider: Literal["openai", "offline"] | None = None
    model: str = "gpt-4o-mini"
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_initial_delay: float = 0.5
    max_turns: int = 10
    structured_output: StructuredMode = "json_schema"
    prompt_template: str | None = None

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("timeout must be positive (seconds)")
        return value

    @field_validator("max_retries", "max_turns")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @property
    def extra(self) -> dict[str, Any]:
        """Role context: config keys that are not settings."""
        return dict(self.__pydantic_extra__ or {})

    @classmethod
    def coerce(cls, config: object, *, owner: str = "agent") -> AgentConfig:
        """An AgentConfig from a config, a dict, a dataclass or None; errors name the bad key."""
        if config is None:
            return cls()
        if isinstance(config, AgentConfig):
            return config
        if isinstance(config, BaseModel):
            data = config.model_dump()
        elif dataclasses.is_dataclass(config) and not isinstance(config, type):
            data = dataclasses.asdict(config)
        elif isinstance(config, Mapping):
            data = dict(config)
        else:
            raise TypeError(
                f"{owner}: config must be a dict, a dataclass or an AgentConfig, got {type(config).__name__}"
            )
        known = list(cls.model_fields)
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
                if close:
                    raise ValueError(f"{owner}: unknown config key {key!r}; did you mean {close[0]!r}?")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
            )
            raise ValueError(f"{owner}: invalid config: {problems}") from None

    def settings(self) -> LLMSettings:
        api_key = self.api_key.get_secret_value() if self.api_key is not None else None
        return LLMSettings(
            provider=resolve_provider(self.provider, self.base_url, api_key),
            model=self.model,
            base_url=self.base_url,
            api_key=api_key,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_initial_delay=self.retry_initial_delay,
        )


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

    async def execute(self, agent: BaseAgent, inputs: dict[str, Any], context: AgentContext) -> dict[str, Any]: ...


class AsyncSingleShotStrategy:
    """One LLM call with structured output; a reply that does not parse is sent back once with the error."""

    async def execute(self, agent: BaseAgent, inputs: dict[str, Any], context: AgentContext) -> dict[str, Any]:
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


class ExecutionResult:
    """The result of ``agent.execute()``: outputs as attributes, plus ``data``, ``metadata``, ``success``, ``error``."""

    __slots__ = ("data", "error", "error_type", "metadata", "success")

    def __init__(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any],
        success: bool = True,
        error: str | None = None,
        error_type: str | None = None,
    ) -> None:
        self.data = data
        self.metadata = metadata
        self.success = success
        self.error = error
        self.error_type = error_type

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        data = object.__getattribute__(self, "data")
        if name in data:
            return data[name]
        fields = ", ".join(data) or "none (the execution failed)"
        raise AttributeError(f"ExecutionResult has no output {name!r}; outputs: {fields}")

    def __repr__(self) -> str:
        state = "success" if self.success else f"failed: {self.error}"
        return f"ExecutionResult({state}, data={self.data!r})"


class BaseAgent:
    """An agent: a signature (what goes in and out), a config (which model, how) and a strategy.

    Subclasses may set ``signature`` as a class attribute::

        class QAAgent(BaseAgent):
            signature = QA
            def ask(self, q: str) -> dict: return self.run(question=q)
    """

    signature_source: ClassVar[object] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `signature = QA` on a subclass would shadow the `signature` property: keep it
        # as the class's default signature and restore the property.
        declared = cls.__dict__.get("signature")
        if declared is not None and not isinstance(declared, property):
            cls.signature_source = declared
            cls.signature = BaseAgent.signature  # type: ignore[method-assign]

    def __init__(
        self,
        config: object = None,
        signature: object = None,
        strategy: Strategy | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        source = signature if signature is not None else type(self).signature_source
        if source is None:
            raise TypeError(f"{self.name}: an agent needs a signature (signature='question -> answer' or a Signature)")
        self._signature: SignatureSpec = as_signature(source)
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, signature={str(self._signature)!r})"

    # ---- memory

    def enable_memory(self, provider: str = "buffer", max_turns: int | None = None, path: str | None = None) -> None:
        """Keep sessions: with ``session_id=...``, that session's last turns are sent to the model."""
        if provider == "buffer":
            self._memory = BufferMemory()
        elif provider == "sqlite":
            if not path:
                raise ValueError(f"{self.name}: enable_memory(provider='sqlite') needs path='memory.db'")
            self._memory = SqliteMemory(path)
        else:
            raise ValueError(f"{self.name}: unknown memory provider {provider!r}; choose 'buffer' or 'sqlite'")
        if max_turns is not None:
            self.config = self.config.model_copy(update={"max_turns": max_turns})

    @property
    def memory(self) -> Memory | None:
        return self._memory

    # ---- running

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

    async def arun(self, session_id: str | None = None, **inputs: Any) -> dict[str, Any]:
        """Run once; the outputs plus ``_timing`` (ms), ``_tokens``, ``_cost``, ``_model`` (+ ``_session_id``)."""
        started = time.perf_counter()
        if self._memory is not None and session_id is None:
            session_id = uuid.uuid4().hex
        outputs, context = await self.invoke(inputs, session_id)
        result = dict(outputs)
        result["_timing"] = (time.perf_counter() - started) * 1000.0
        result["_tokens"] = context.usage.tokens()
        result["_cost"] = context.usage.cost
        result["_cost_known"] = context.usage.cost_known
        result["_model"] = context.model
        if context.cache is not None:
            result["_cache"] = context.cache
        if self._memory is not None:
            result["_session_id"] = session_id
        return result

    def run(self, session_id: str | None = None, **inputs: Any) -> dict[str, Any]:
        """``arun`` from sync code (also inside a running event loop)."""
        return run_sync(self.arun(session_id, **inputs))

    async def aexecute(self, session_id: str | None = None, **inputs: Any) -> ExecutionResult:
        """Run once; failures of the call (LLM errors, unparsable replies, timeouts) come back as
        ``success=False`` with ``error``; invalid inputs still raise ValueError."""
        validate_inputs(self._signature, inputs, where=self.name)
        try:
            out = await self.arun(session_id, **inputs)
        except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
            return ExecutionResult({}, {"agent": self.name}, False, str(exc), type(exc).__name__)
        data = {k: v for k, v in out.items() if not k.startswith("_")}
        meta = {k[1:]: v for k, v in out.items() if k.startswith("_")}
        meta["agent"] = self.name
        return ExecutionResult(data, meta)

    def execute(self, session_id: str | None = None, **inputs: Any) -> ExecutionResult:
        """``aexecute`` from sync code (also inside a running event loop)."""
        return run_sync(self.aexecute(session_id, **inputs))

    async def arun_batch(self, batch: Sequence[Mapping[str, Any]], concurrency: int = 4) -> list[dict[str, Any]]:
        """Run every input mapping, at most ``concurrency`` at once; results in input order."""
        if concurrency < 1:
            raise ValueError(f"{self.name}: concurrency must be at least 1, got {concurrency}")
        semaphore = asyncio.Semaphore(concurrency)

        async def one(item: Mapping[str, Any]) -> dict[str, Any]:
            async with semaphore:
                return await self.arun(**item)

        return list(await asyncio.gather(*(one(item) for item in batch)))

    def run_batch(self, batch: Sequence[Mapping[str, Any]], concurrency: int = 4) -> list[dict[str, Any]]:
        """``arun_batch`` from sync code."""
        return run_sync(self.arun_batch(batch, concurrency))

    # ---- Kailash (dagwright.nodes.kailash, imported on use: importing kailash takes about a second)

    def to_workflow_node(self, node_id: str | None = None) -> Any:
        """This agent as a Kailash node (``DagwrightAgentNode``) with id ``node_id`` (default: the agent's name).

        Its ``get_parameters()`` are the signature's inputs; it runs this very agent.
        """
        from dagwright.nodes.kailash import agent_node

        return agent_node(self, node_id if node_id is not None else self.name)

    def to_workflow(self, node_id: str | None = None) -> Any:
        """A ``dagwright.WorkflowBuilder`` holding this agent as one node::

        results, _ = LocalRuntime().execute(agent.to_workflow().build(), parameters={agent.name: {"question": "..."}})
        """
        from dagwright.nodes.kailash import WorkflowBuilder

        builder = WorkflowBuilder()
        builder.add_agent(self, node_id if node_id is not None else self.name)
        return builder

    # ---- monitoring, audit, access control, caching (dagwright.runtime.monitor / audit / cache / telemetry)

    _execution_monitor: ExecutionMonitor | None = None
    _audit_log: AuditLog | None = None
    _access_policy: AccessPolicy | None = None
    _result_cache: ResultCache | None = None

    def get_execution_monitor(self) -> ExecutionMonitor:
        """Metrics of this agent's recorded executions (the last 1 000): ``.metrics()`` gives count,
        failures, retries, latency p50/p90/p99 (ms), tokens, cost and cache hits; also
        ``set_performance_alerts(latency_threshold=ms, hook=...)`` and ``enable_real_time_tracking()``."""
        if self._execution_monitor is None:
            self._execution_monitor = ExecutionMonitor(self.name)
        return self._execution_monitor

    def get_execution_optimizer(self) -> ExecutionOptimizer:
        """Suggestions from the recorded executions (``.suggestions()``), each with its evidence."""
        return ExecutionOptimizer(self.get_execution_monitor(), cache_enabled=lambda: self._result_cache is not None)

    def enable_audit_logging(
        self,
        path: str | os.PathLike[str] = "dagwright-audit.jsonl",
        policy: AuditPolicy = "hash",
        *,
        user: str | Callable[[], str | None] | None = None,
    ) -> AuditLog:
        """Append one JSON line per execution to ``path``: who, what (inputs and outputs under
        ``policy``: ``"hash"``, ``"redact"`` or ``"full"``), when, model, tokens, cost, outcome.
        API keys never reach the log (see :mod:`dagwright.runtime.audit`)."""
        self._audit_log = AuditLog(path, policy, user=user)
        return self._audit_log

    def disable_audit_logging(self) -> None:
        self._audit_log = None

    def set_access_policy(self, policy: AccessPolicy | None) -> None:
        """Check ``policy(request)`` before each execution; a denial raises PermissionError (None removes it).

        ``request`` is an :class:`~dagwright.runtime.audit.AccessRequest` (agent, model, inputs,
        session_id, user); the policy returns True/None to allow, False or a reason string to deny.
        """
        if policy is not None and not callable(policy):
            raise TypeError(f"{self.name}: an access policy must be callable, got {type(policy).__name__}")
        self._access_policy = policy

    def enable_cache(
        self, backend: str | ResultCache = "memory", path: str | os.PathLike[str] | None = None
    ) -> ResultCache:
        """Answer repeated requests from a cache (``"memory"``, or ``"sqlite"`` with ``path=``), without an
        LLM call; keyed by model, the full prompt messages, the response format and the inputs."""
        self._result_cache = make_cache(backend, path=path, owner=self.name)
        return self._result_cache

    def disable_cache(self) -> None:
        self._result_cache = None

    @property
    def cache(self) -> ResultCache | None:
        """The result cache (``.stats()``: hits, misses, stored), or None."""
        return self._result_cache

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


class Agent(BaseAgent):
    """A named agent, as made by ``Kaizen().create_agent(name, signature=..., config=...)``."""

    def __init__(self, name: str, signature: object, config: object = None, strategy: Strategy | None = None) -> None:
        super().__init__(config=config, signature=signature, strategy=strategy, name=name)
