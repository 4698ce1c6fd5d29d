"""Agents, as users meet them: ``run``, ``execute``, memory, monitoring, and a place in a Kailash workflow.

::

    agent = BaseAgent(config={"model": "gpt-4o-mini"}, signature="question -> answer, confidence: float")
    agent.run(question="What is ML?")      # {"answer": ..., "confidence": ..., "_timing": ..., "_tokens": ...}
    agent.execute(question="What is ML?")  # ExecutionResult: .answer .confidence .success .error .metadata

``run()`` is a sync front for async work and also works inside a running event
loop. Inputs are validated against the signature before any LLM call. How an
execution runs lives in :class:`dagwright.llm.agent.AgentCore`; this module is its face.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from dagwright.execution._sync import run_sync
from dagwright.llm.agent import AgentContext, AgentCore, AsyncSingleShotStrategy, Strategy
from dagwright.llm.config import AgentConfig
from dagwright.llm.memory import BufferMemory, SqliteMemory
from dagwright.llm.structured import validate_inputs
from dagwright.ops.audit import AccessPolicy, AuditLog, AuditPolicy
from dagwright.ops.cache import ResultCache, make_cache
from dagwright.ops.monitor import ExecutionOptimizer

__all__ = [
    "AGENTS",
    "Agent",
    "AgentConfig",
    "AgentContext",
    "AgentFactory",
    "AsyncSingleShotStrategy",
    "BaseAgent",
    "ExecutionResult",
    "Strategy",
]


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


class BaseAgent(AgentCore):
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
            cls.signature = AgentCore.signature  # type: ignore[method-assign]

    def __init__(
        self,
        config: object = None,
        signature: object = None,
        strategy: Strategy | None = None,
        *,
        name: str | None = None,
    ) -> None:
        source = signature if signature is not None else type(self).signature_source
        super().__init__(config, source, strategy, name=name)

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

    # ---- running

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

    # ---- Kailash (dagwright.backends.kailash.nodes, imported on use: importing kailash takes about a second)

    def to_workflow_node(self, node_id: str | None = None) -> Any:
        """This agent as a Kailash node (``DagwrightAgentNode``) with id ``node_id`` (default: the agent's name).

        Its ``get_parameters()`` are the signature's inputs; it runs this very agent.
        """
        from dagwright.backends.kailash.nodes import agent_node

        return agent_node(self, node_id if node_id is not None else self.name)

    def to_workflow(self, node_id: str | None = None) -> Any:
        """A ``dagwright.WorkflowBuilder`` holding this agent as one node::

        results, _ = LocalRuntime().execute(agent.to_workflow().build(), parameters={agent.name: {"question": "..."}})
        """
        from dagwright.backends.kailash.nodes import WorkflowBuilder

        builder = WorkflowBuilder()
        builder.add_agent(self, node_id if node_id is not None else self.name)
        return builder

    # ---- monitoring, audit, access control, caching (dagwright.ops.monitor / audit / cache / telemetry)

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


class Agent(BaseAgent):
    """A named agent, as made by ``Kaizen().create_agent(name, signature=..., config=...)``."""

    def __init__(self, name: str, signature: object, config: object = None, strategy: Strategy | None = None) -> None:
        super().__init__(config=config, signature=signature, strategy=strategy, name=name)


class AgentFactory:
    """How coordination patterns make agents for roles and adapt given ones (see :mod:`dagwright.patterns`).

    Patterns take a factory rather than importing agents themselves; ``Kaizen`` passes
    :data:`AGENTS`, and so do patterns called without one.
    """

    setting_names: frozenset[str] = frozenset(AgentConfig.model_fields)

    def is_agent(self, obj: object) -> bool:
        return isinstance(obj, AgentCore)

    def create(self, name: str, signature: object, config: Mapping[str, Any]) -> BaseAgent:
        return BaseAgent(config=dict(config), signature=signature, name=name)

    def configure(self, agent: Any, config: Mapping[str, Any]) -> Any:
        changed = copy.copy(agent)
        merged = {**agent.config.model_dump(exclude_unset=True), **config}
        changed.config = AgentConfig.coerce(merged, owner=agent.name)
        return changed


AGENTS = AgentFactory()
"""The factory patterns use unless given another."""
