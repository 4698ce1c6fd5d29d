"""OpenTelemetry spans for flow runs, their nodes and agent executions (the optional ``otel`` extra).

When ``opentelemetry-api`` is installed and the application has set a tracer provider
(``trace.set_tracer_provider(...)``, as any OpenTelemetry setup does; or
:func:`use_tracer_provider` for dagwright alone), each flow run is a span
``dagwright.run <flow>`` with one child span ``dagwright.node <node id>`` per executed node,
and each agent execution a span ``dagwright.agent <name>``. One run is one trace: the node
span is the current span while the node's executor runs, so an agent run by a node is a child
of that node's span, and a ``map`` node's inner runs are children of the map node's span.
A run started under a span of the application's is a child of that span.

Node spans carry the run id, node kind, attempts (a retry is an event) and status; agent
spans follow the OpenTelemetry GenAI semantic conventions (``gen_ai.system``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...) besides dagwright's own
``dagwright.*`` attributes (cost has no semantic-convention name: ``dagwright.cost_usd``).
A failure sets a span's status to ERROR. Without the package, or with no provider set,
nothing is traced and nothing is paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from dagwright.execution.events import Event, NodeRecord, Usage

__all__ = [
    "TRACER_NAME",
    "AgentOutcome",
    "RunTracer",
    "agent_span",
    "gen_ai_system",
    "run_listener",
    "tracer",
    "use_tracer_provider",
]

TRACER_NAME = "dagwright"


_provider: Any = None


def use_tracer_provider(provider: Any | None) -> None:
    """Trace into ``provider`` instead of the global tracer provider (None: back to the global one)."""
    global _provider
    _provider = provider


def tracer() -> Any | None:
    """The ``dagwright`` tracer when OpenTelemetry is installed and a tracer provider is set; else None."""
    if _provider is not None:
        return _provider.get_tracer(TRACER_NAME)
    # Setting a provider means importing opentelemetry.trace first; looking it up instead of importing
    # it keeps OpenTelemetry's import time out of applications that never trace.
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider.get_tracer(TRACER_NAME)


def _ns(seconds: float | None) -> int | None:
    return int(seconds * 1e9) if seconds is not None else None


def _record_attributes(record: NodeRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {"dagwright.node.status": record.status, "dagwright.node.attempts": record.attempts}
    if record.model:
        attributes["dagwright.model"] = record.model
    if record.usage is not None:
        attributes["dagwright.tokens.prompt"] = record.usage.prompt
        attributes["dagwright.tokens.completion"] = record.usage.completion
        attributes["dagwright.cost_usd"] = record.usage.cost
    return attributes


class RunTracer:
    """The spans of one run: a listener of its events, and the node span the scheduler makes current.

    The run span starts on ``run_started`` under the current context (a map node's inner run
    is under the map node's span that way). A node span is opened by :meth:`node` around the
    node's attempts, as the current span, so whatever the executor traces nests under it; it
    ends on ``node_finished`` / ``node_failed``, when the record holds the outcome.
    """

    def __init__(self, otel: Any, flow: str) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import Status, StatusCode

        self._otel = otel
        self._flow = flow
        # Bound once per traced run, so a node span costs no import look-up.
        self._context = context
        self._trace = trace
        self._status = Status
        self._code = StatusCode
        self._run: Any = None
        self._parent: Any = None
        self._run_id = ""
        self._nodes: dict[str, Any] = {}
        self._failed = 0

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == "run_started":
            self._run_id = event.run_id
            self._run = self._otel.start_span(
                f"dagwright.run {self._flow}",
                start_time=_ns(event.time),
                attributes={"dagwright.flow": self._flow, "dagwright.run_id": event.run_id},
            )
            self._parent = self._trace.set_span_in_context(self._run)
        elif kind in ("node_finished", "node_failed") and event.node_id is not None:
            span = self._nodes.pop(event.node_id, None)
            if span is None:  # a node restored from a checkpoint: it never ran in this run
                return
            done = event.record
            if done is not None:
                span.set_attributes(_record_attributes(done))
            if kind == "node_failed":
                self._failed += 1
                span.set_status(self._status(self._code.ERROR, event.error or "failed"))
            span.end(end_time=_ns(done.ended_at if done is not None else event.time))
        elif kind == "node_retried" and event.node_id is not None:
            span = self._nodes.get(event.node_id)
            if span is not None:
                span.add_event("retry", {"attempt": event.attempt, "error": event.error or ""})
        elif kind == "run_finished":
            self._end_run(_ns(event.time))

    @contextlib.contextmanager
    def node(self, node_id: str, record: NodeRecord) -> Iterator[Any]:
        """The span of node ``node_id`` as the current span of the enclosed attempts (the caller's context:
        a task's own, so attaching here reaches the executor, its threads and its agents, and nothing else)."""
        span = self._otel.start_span(
            f"dagwright.node {node_id}",
            context=self._parent,
            start_time=_ns(record.started_at),
            attributes={
                "dagwright.flow": self._flow,
                "dagwright.run_id": self._run_id,
                "dagwright.node.id": node_id,
                "dagwright.node.kind": record.kind,
            },
        )
        self._nodes[node_id] = span
        token = self._context.attach(self._trace.set_span_in_context(span))
        try:
            yield span
        except asyncio.CancelledError:
            # No event follows a cancelled node: end its span now, not when the run ends.
            self._nodes.pop(node_id, None)
            span.set_attributes({"dagwright.node.status": "cancelled", "dagwright.node.attempts": record.attempts})
            span.end()
            raise
        finally:
            self._context.detach(token)

    def cancelled(self) -> None:
        """The run was cancelled (no ``run_finished`` follows): end its span, so its trace is exported."""
        if self._run is not None:
            self._run.set_attribute("dagwright.run.status", "cancelled")
        self._end_run(_ns(time.time()))

    def _end_run(self, end_time: int | None) -> None:
        for node_id, span in self._nodes.items():
            span.set_attributes({"dagwright.node.id": node_id, "dagwright.node.status": "cancelled"})
            span.end(end_time=end_time)
        self._nodes.clear()
        run_span, self._run = self._run, None
        if run_span is not None:
            if self._failed:
                run_span.set_status(self._status(self._code.ERROR, f"{self._failed} node(s) failed"))
            run_span.end(end_time=end_time)


def run_listener(flow: str) -> RunTracer | None:
    """The spans of one run of ``flow`` (a scheduler listener, and its node spans), or None when tracing is off."""
    otel = tracer()
    if otel is None:
        return None
    return RunTracer(otel, flow)


class AgentOutcome(Protocol):
    """What an agent execution reports for its span: tokens and cost, the model that answered, the cache."""

    @property
    def usage(self) -> Usage: ...

    @property
    def model(self) -> str | None: ...

    @property
    def cache(self) -> str | None: ...


def gen_ai_system(provider: str) -> str:
    """The GenAI semantic conventions' ``gen_ai.system`` of a dagwright provider (its own offline model named so)."""
    return "dagwright-offline" if provider == "offline" else provider


@contextlib.contextmanager
def agent_span(
    otel: Any, agent: str, model: str, outcome: AgentOutcome | None = None, provider: Callable[[], str] | None = None
) -> Iterator[Any]:
    """A current span of tracer ``otel`` around one agent execution; an exception marks it failed.

    ``outcome`` is read when the execution ends, failed or not (tokens spent before a failure
    were spent): GenAI usage and response model, with dagwright's own attributes.
    ``provider()`` names the provider; it may raise ValueError for a bad setting, which is
    the execution's to report, not the span's.
    """
    attributes: dict[str, Any] = {
        "dagwright.agent": agent,
        "dagwright.model": model,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
    }
    if provider is not None:
        with contextlib.suppress(ValueError):
            # gen_ai.system is the name the conventions gave first; gen_ai.provider.name replaces it.
            attributes["gen_ai.system"] = attributes["gen_ai.provider.name"] = gen_ai_system(provider())
    with otel.start_as_current_span(f"dagwright.agent {agent}", attributes=attributes) as span:
        try:
            yield span
        finally:
            if outcome is not None:
                span.set_attributes(_outcome_attributes(outcome, model))


def _outcome_attributes(outcome: AgentOutcome, model: str) -> dict[str, Any]:
    usage = outcome.usage
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": usage.prompt,
        "gen_ai.usage.output_tokens": usage.completion,
        "dagwright.model": outcome.model or model,
        "dagwright.tokens.prompt": usage.prompt,
        "dagwright.tokens.completion": usage.completion,
        "dagwright.cost_usd": usage.cost,
        "dagwright.cache": outcome.cache or "off",
    }
    if outcome.model:  # unknown when no reply came: the requested model is no answer's model
        attributes["gen_ai.response.model"] = outcome.model
    return attributes
