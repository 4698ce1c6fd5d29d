"""OpenTelemetry spans for flow runs, their nodes and agent executions (the optional ``otel`` extra).

When ``opentelemetry-api`` is installed and the application has set a tracer provider
(``trace.set_tracer_provider(...)``, as any OpenTelemetry setup does; or
:func:`use_tracer_provider` for dagwright alone), each flow run is a
span ``dagwright.run <flow>`` with one child span ``dagwright.node <node id>`` per executed
node, and each agent execution a span ``dagwright.agent <name>``. Attributes carry the run id,
node kind, attempts, model, tokens and cost; a failure sets the span's status to ERROR.
Without the package, or with no provider set, nothing is traced and nothing is paid.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from dagwright.execution.events import Event, NodeRecord

__all__ = ["TRACER_NAME", "agent_span", "run_listener", "tracer", "use_tracer_provider"]

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


def run_listener(flow: str) -> Callable[[Event], None] | None:
    """A scheduler listener that turns one run's events into spans, or None when tracing is off."""
    otel = tracer()
    if otel is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    state: dict[str, Any] = {"run": None, "nodes": {}}

    def listen(event: Event) -> None:
        kind = event.kind
        if kind == "run_started":
            span = otel.start_span(
                f"dagwright.run {flow}",
                start_time=_ns(event.time),
                attributes={"dagwright.flow": flow, "dagwright.run_id": event.run_id},
            )
            state["run"] = span
            state["parent"] = trace.set_span_in_context(span)
        elif kind == "node_started" and event.node_id is not None and event.record is not None:
            record = event.record
            state["nodes"][event.node_id] = otel.start_span(
                f"dagwright.node {event.node_id}",
                context=state.get("parent"),
                start_time=_ns(record.started_at or event.time),
                attributes={
                    "dagwright.flow": flow,
                    "dagwright.run_id": event.run_id,
                    "dagwright.node.id": event.node_id,
                    "dagwright.node.kind": record.kind,
                },
            )
        elif kind in ("node_finished", "node_failed") and event.node_id is not None:
            span = state["nodes"].pop(event.node_id, None)
            if span is None:
                return
            done = event.record
            if done is not None:
                span.set_attributes(_record_attributes(done))
            if kind == "node_failed":
                state["failed"] = state.get("failed", 0) + 1
                span.set_status(Status(StatusCode.ERROR, event.error or "failed"))
            span.end(end_time=_ns(done.ended_at if done is not None else event.time))
        elif kind == "node_retried" and event.node_id is not None:
            span = state["nodes"].get(event.node_id)
            if span is not None:
                span.add_event("retry", {"attempt": event.attempt, "error": event.error or ""})
        elif kind == "run_finished":
            for node_id, span in state["nodes"].items():
                span.set_attributes({"dagwright.node.id": node_id, "dagwright.node.status": "cancelled"})
                span.end(end_time=_ns(event.time))
            state["nodes"].clear()
            run_span = state["run"]
            if run_span is not None:
                if state.get("failed"):
                    run_span.set_status(Status(StatusCode.ERROR, f"{state['failed']} node(s) failed"))
                run_span.end(end_time=_ns(event.time))

    return listen


@contextlib.contextmanager
def agent_span(otel: Any, agent: str, model: str) -> Iterator[Any]:
    """A current span of tracer ``otel`` around one agent execution; an exception marks it failed."""
    with otel.start_as_current_span(
        f"dagwright.agent {agent}", attributes={"dagwright.agent": agent, "dagwright.model": model}
    ) as span:
        yield span
