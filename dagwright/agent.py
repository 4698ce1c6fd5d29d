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
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from dagwright.compiler.signature import SignatureSpec, as_signature
from dagwright.runtime._sync import run_sync
from dagwright.runtime.errors import OutputParseError
from dagwright.runtime.events import Usage
from dagwright.runtime.llm import LLMSettings, complete, resolve_provider
from dagwright.runtime.memory import BufferMemory, Memory, SqliteMemory, Turn
from dagwright.runtime.pricing import cost_of
from dagwright.runtime.prompt import build_messages
from dagwright.runtime.structured import StructuredMode, parse_reply, response_format, validate_inputs

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
            cls.signature = BaseAgent.signature  # type: ignore[method-assign,assignment]

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
        outputs = await self.strategy.execute(self, values, context)
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


class Agent(BaseAgent):
    """A named agent, as made by ``Kaizen().create_agent(name, signature=..., config=...)``."""

    def __init__(self, name: str, signature: object, config: object = None, strategy: Strategy | None = None) -> None:
        super().__init__(config=config, signature=signature, strategy=strategy, name=name)
