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

import collections
import contextlib
import copy
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dagwright.compiler.ports import is_signature_like
from dagwright.compiler.redact import config_to_dict
from dagwright.execution._sync import run_sync
from dagwright.llm.agent import AgentContext, AgentCore, AsyncSingleShotStrategy, Strategy
from dagwright.llm.config import AgentConfig
from dagwright.llm.memory import make_memory
from dagwright.llm.structured import validate_inputs
from dagwright.ops.audit import AccessPolicy, Approval, ApprovalPolicy, AuditLog, AuditPolicy, resolve_access_policy
from dagwright.ops.cache import ResultCache, make_cache
from dagwright.ops.monitor import ExecutionOptimizer

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("dagwright")

__all__ = [
    "AGENTS",
    "Agent",
    "AgentConfig",
    "AgentContext",
    "AgentFactory",
    "AsyncSingleShotStrategy",
    "BaseAgent",
    "ExecutionMetadata",
    "ExecutionResult",
    "Strategy",
    "extract_dict",
    "extract_float",
    "extract_list",
    "extract_str",
]


class ExecutionMetadata(dict[str, Any]):
    """What ``agent.execute()`` measured, as a dict (``metadata["timing"]``) and by attribute under the
    Kaizen ADR's names too: ``execution_time`` (ms, the same as ``timing``), ``token_usage`` (``tokens``),
    ``cost``, ``model``, ``success``, ``error``, ``agent``, ``session_id``."""

    _ALIASES: ClassVar[dict[str, str]] = {"execution_time": "timing", "token_usage": "tokens"}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        key = self._ALIASES.get(name, name)
        if key in self:
            return self[key]
        known = sorted({*self, *(alias for alias, key in self._ALIASES.items() if key in self)})
        raise AttributeError(f"execution metadata has no {name!r}; it has: {', '.join(known)}")


class ExecutionResult:
    """The result of ``agent.execute()``: outputs as attributes, plus ``data``, ``metadata``, ``success``, ``error``.

    ``extract_list`` / ``extract_dict`` / ``extract_str`` / ``extract_float`` read an output
    leniently, as Kaizen's result helpers do (see :func:`extract_list`).
    """

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
        self.metadata = ExecutionMetadata(metadata)
        self.metadata.setdefault("success", success)
        self.metadata.setdefault("error", error)
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
        hint = ""
        if list(data) == ["answer"]:
            hint = f"; an agent without a signature answers in 'answer' (give it a signature with {name!r} for that)"
        raise AttributeError(f"ExecutionResult has no output {name!r}; outputs: {fields}{hint}")

    def __repr__(self) -> str:
        state = "success" if self.success else f"failed: {self.error}"
        return f"ExecutionResult({state}, data={self.data!r})"

    def extract_list(self, field: str, default: list[Any] | None = None) -> list[Any]:
        return extract_list(self.data, field, default)

    def extract_dict(self, field: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
        return extract_dict(self.data, field, default)

    def extract_str(self, field: str, default: str = "") -> str:
        return extract_str(self.data, field, default)

    def extract_float(self, field: str, default: float = 0.0) -> float:
        return extract_float(self.data, field, default)


def _value(result: Mapping[str, Any] | ExecutionResult, field: str) -> Any:
    data = result.data if isinstance(result, ExecutionResult) else result
    return data.get(field) if isinstance(data, Mapping) else None


def extract_list(
    result: Mapping[str, Any] | ExecutionResult, field: str, default: list[Any] | None = None
) -> list[Any]:
    """``result[field]`` as a list: a list (or tuple) as it is; a string holding a JSON array parsed; any
    other string split into its non-empty lines, list markers (``-``, ``*``, ``1.``) stripped; a single
    value as a one-item list; absent or None: ``default`` (``[]``)."""
    value = _value(result, field)
    if value is None:
        return list(default) if default is not None else []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            with contextlib.suppress(ValueError):
                parsed = json.loads(text)
                if isinstance(parsed, list):
                    return parsed
        return [line for line in (_LIST_MARKER.sub("", raw).strip() for raw in text.splitlines()) if line]
    return [value]


def extract_dict(
    result: Mapping[str, Any] | ExecutionResult, field: str, default: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``result[field]`` as a dict: a mapping as it is, a string holding a JSON object parsed, else ``default``."""
    value = _value(result, field)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(value)
            if isinstance(parsed, dict):
                return parsed
    return dict(default) if default is not None else {}


def extract_str(result: Mapping[str, Any] | ExecutionResult, field: str, default: str = "") -> str:
    """``result[field]`` as text (a list joined by lines), or ``default`` when absent or None."""
    value = _value(result, field)
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)


def extract_float(result: Mapping[str, Any] | ExecutionResult, field: str, default: float = 0.0) -> float:
    """``result[field]`` as a number (a numeric string too; ``"85%"`` is 0.85), or ``default``."""
    value = _value(result, field)
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        scale = 100.0 if text.endswith("%") else 1.0
        with contextlib.suppress(ValueError):
            return float(text.rstrip("%").strip()) / scale
    return default


_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


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
        tools: Iterable[object] | None = None,
    ) -> None:
        source = signature if signature is not None else type(self).signature_source
        super().__init__(config, source, strategy, name=name, tools=tools)
        self._logged_metrics: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._approval_listener: Callable[[], None] | None = None

    def __repr__(self) -> str:
        shown = "free-form" if self.free_form else str(self._signature)
        return f"{type(self).__name__}(name={self.name!r}, signature={shown!r})"

    @property
    def id(self) -> str:
        """The agent's name (Kaizen calls it ``id``)."""
        return self.name

    # ---- memory

    def enable_memory(self, provider: str = "default", max_turns: int | None = None, path: str | None = None) -> None:
        """Remember earlier turns and send them back to the model: ``default`` / ``buffer`` (the last
        ``max_turns`` turns, in the process), ``sqlite`` (in the file ``path``, surviving restarts) or
        ``vector_db`` (the ``max_turns`` turns most relevant to the request, by BM25 over words).

        Calls with ``session_id=...`` keep to that session; calls without one share the agent's own
        session, so two ``execute()`` calls in a row remember each other. The window is the config's
        ``max_turns`` (10 unless set) or the ``max_turns`` given here.
        """
        self._memory = make_memory(provider, path, owner=self.name)
        self.default_session = f"{self.name}:default"
        if max_turns is not None:
            self.config = self.config.model_copy(update={"max_turns": max_turns})

    # ---- running

    async def arun(self, session_id: str | None = None, **inputs: Any) -> dict[str, Any]:
        """Run once; the outputs plus ``_timing`` (ms), ``_tokens``, ``_cost``, ``_model`` (+ ``_session_id``, and
        ``_structured_output``: the mode the reply came in, what ``auto`` chose)."""
        started = time.perf_counter()
        outputs, context = await self.invoke(inputs, session_id)
        result = dict(outputs)
        result["_timing"] = (time.perf_counter() - started) * 1000.0
        result["_tokens"] = context.usage.tokens()
        result["_cost"] = context.usage.cost
        result["_cost_known"] = context.usage.cost_known
        result["_model"] = context.model
        if self.tools:
            result["_tool_calls"] = [call.to_dict() for call in context.tool_calls]
        if context.structured_output is not None:
            result["_structured_output"] = context.structured_output
        if context.cache is not None:
            result["_cache"] = context.cache
        if self._memory is not None:
            result["_session_id"] = context.session_id
        return result

    def run(self, session_id: str | None = None, **inputs: Any) -> dict[str, Any]:
        """``arun`` from sync code (also inside a running event loop)."""
        return run_sync(self.arun(session_id, **inputs))

    async def aexecute(self, session_id: str | None = None, **inputs: Any) -> ExecutionResult:
        """Run once; failures of the call (LLM errors, unparsable replies, timeouts) come back as
        ``success=False`` with ``error``; invalid inputs still raise ValueError."""
        validate_inputs(self.signature_for(inputs), inputs, where=self.name)
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

    async def arun_batch(
        self,
        batch: Sequence[Mapping[str, Any]],
        concurrency: int | None = None,
        *,
        progress: bool | Console | None = None,
    ) -> list[dict[str, Any]]:
        """Run every input mapping, at most ``concurrency`` at once (default: :attr:`batch_concurrency`, 4
        unless the optimizer raised it); results in input order.

        ``progress=True`` draws a rich progress bar on stderr (calls done, failed, tokens, cost, time),
        ``False`` never, ``None`` (the default) only when stderr is a terminal; a rich ``Console`` draws
        on that console. A call that raises stops the batch: the calls still running are cancelled and
        the error propagates.
        """
        from dagwright.flow import bounded_batch

        if concurrency is None:
            concurrency = self.batch_concurrency
        if concurrency < 1:
            raise ValueError(f"{self.name}: concurrency must be at least 1, got {concurrency}")

        async def one(item: Mapping[str, Any]) -> dict[str, Any]:
            return await self.arun(**item)

        def tally(out: dict[str, Any]) -> tuple[bool, int, float]:
            return True, int(out["_tokens"].get("total", 0)), float(out["_cost"])

        return await bounded_batch(
            list(batch), one, concurrency=concurrency, progress=progress, label=self.name, tally=tally
        )

    def run_batch(
        self,
        batch: Sequence[Mapping[str, Any]],
        concurrency: int | None = None,
        *,
        progress: bool | Console | None = None,
    ) -> list[dict[str, Any]]:
        """``arun_batch`` from sync code (also inside a running event loop)."""
        return run_sync(self.arun_batch(batch, concurrency, progress=progress))

    # ---- results (Kaizen's helpers: result is what run() returned, or an ExecutionResult)

    def extract_list(self, result: Mapping[str, Any] | ExecutionResult, field: str, default: Any = None) -> list[Any]:
        """``result[field]`` as a list (see :func:`extract_list`)."""
        return extract_list(result, field, default)

    def extract_dict(
        self, result: Mapping[str, Any] | ExecutionResult, field: str, default: Any = None
    ) -> dict[str, Any]:
        """``result[field]`` as a dict (see :func:`extract_dict`)."""
        return extract_dict(result, field, default)

    def extract_str(self, result: Mapping[str, Any] | ExecutionResult, field: str, default: str = "") -> str:
        """``result[field]`` as text (see :func:`extract_str`)."""
        return extract_str(result, field, default)

    def extract_float(self, result: Mapping[str, Any] | ExecutionResult, field: str, default: float = 0.0) -> float:
        """``result[field]`` as a number (see :func:`extract_float`)."""
        return extract_float(result, field, default)

    @property
    def logged_metrics(self) -> list[dict[str, Any]]:
        """What ``_log_metrics`` recorded (the last 1 000), oldest first."""
        return list(self._logged_metrics)

    def _log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Record metrics of the agent's own methods, as Kaizen's guide does in ``process_with_custom_tracking``:
        kept in :attr:`logged_metrics` and logged at DEBUG on the ``dagwright`` logger."""
        entry = {"agent": self.name, "time": time.time(), **metrics}
        self._logged_metrics.append(entry)
        log.debug("agent %s: metrics %s", self.name, metrics, extra={"dagwright_metrics": entry})

    # ---- Kailash (dagwright.backends.kailash.nodes, imported on use: importing kailash takes about a second)

    def to_workflow_node(self, node_id: str | None = None) -> Any:
        """This agent as a Kailash node (``DagwrightAgentNode``) with id ``node_id`` (default: the agent's name).

        Its ``get_parameters()`` are the signature's inputs; it runs this very agent.
        """
        from dagwright.backends.kailash.nodes import agent_node

        return agent_node(self, node_id if node_id is not None else self.name)

    def to_workflow(self, node_id: str | None = None) -> Any:
        """A ``dagwright.WorkflowBuilder`` holding this agent as one node::

        with LocalRuntime() as runtime:
            results, _ = runtime.execute(agent.to_workflow().build(), parameters={agent.name: {"question": "..."}})
        """
        from dagwright.backends.kailash.nodes import WorkflowBuilder

        builder = WorkflowBuilder()
        builder.add_agent(self, node_id if node_id is not None else self.name)
        return builder

    # ---- monitoring, audit, access control, caching (dagwright.ops.monitor / audit / cache / telemetry)

    def get_execution_optimizer(self) -> ExecutionOptimizer:
        """This agent's optimizer (one per agent, made on the first call): ``.suggestions()`` from the recorded
        executions, each with its evidence; ``set_optimization_targets([...])`` ("latency", "cost",
        "accuracy", "throughput") chooses which it makes; ``enable_auto_optimization()`` applies the safe
        ones after each execution (a cache, a cheaper model for latency or cost, batch concurrency for
        throughput), once each, listed in ``.applied``."""
        if self._execution_optimizer is None:
            self._execution_optimizer = ExecutionOptimizer(
                self.get_execution_monitor(), cache_enabled=lambda: self._result_cache is not None
            )
        return self._execution_optimizer

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

    def set_access_policy(self, policy: AccessPolicy | str | None) -> AccessPolicy | None:
        """Check ``policy(request)`` before each execution; a denial raises PermissionError (None removes it).

        ``request`` is an :class:`~dagwright.ops.audit.AccessRequest` (agent, model, inputs,
        session_id, user); the policy returns True/None to allow, False or a reason string to deny.
        A name picks a named policy: ``"team_lead_approval_required"`` denies until
        ``policy.approve("lead")`` (or ``approve("lead", user="alice")``) is recorded; with an
        audit log, approvals and revocations are written to it. Returns the policy in force.
        """
        resolved = resolve_access_policy(policy, where=self.name)
        if self._approval_listener is not None:
            self._approval_listener()
            self._approval_listener = None
        if isinstance(resolved, ApprovalPolicy):
            self._approval_listener = resolved.subscribe(self._log_approval)
        self._access_policy = resolved
        # A named policy can be installed afresh where the graph runs without this object (ir_notes).
        self._access_policy_name = policy if isinstance(policy, str) else None
        return resolved

    def get_access_policy(self) -> AccessPolicy | None:
        """The access policy in force (a named one's object, e.g. to ``approve(...)``), or None."""
        return self._access_policy

    def _log_approval(self, approval: Approval) -> None:
        if self._audit_log is not None:
            self._audit_log.write_approval(approval, agent=self.name, secrets=self._secrets())

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
    """A named agent: ``Agent("researcher", model="gpt-4o", temperature=0.2)``, ``Agent("qa", "q -> a")``,
    ``Agent("qa", signature=sig, config={...})``, as ``Kaizen().create_agent(...)`` makes them.

    Settings may come as a config (dict, dataclass or AgentConfig), as keywords, or both (keywords win).
    Without a signature the agent is free-form (see :class:`~dagwright.llm.agent.AgentCore`).
    """

    def __init__(
        self,
        name: str,
        signature: object = None,
        config: object = None,
        strategy: Strategy | None = None,
        *,
        tools: Iterable[object] | None = None,
        **settings: Any,
    ) -> None:
        if signature is not None and not is_signature_like(signature):
            if config is not None:
                raise TypeError(
                    f"Agent({name!r}): the second argument is a signature or a config; got a "
                    f"{type(signature).__name__} and config= too"
                )
            signature, config = None, signature
        if settings:
            config = {**config_to_dict(config), **settings}
        super().__init__(config=config, signature=signature, strategy=strategy, name=name, tools=tools)


class AgentFactory:
    """How coordination patterns make agents for roles and adapt given ones (see :mod:`dagwright.patterns`).

    Patterns take a factory rather than importing agents themselves; ``Kaizen`` passes
    :data:`AGENTS`, and so do patterns called without one.
    """

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
