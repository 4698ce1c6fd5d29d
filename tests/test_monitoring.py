"""Monitoring, alerts, live tracking, the optimizer and OpenTelemetry spans, against the loopback LLM server."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_runtime import loopback_agent
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright import BaseAgent, Flow, RetryPolicy
from dagwright.execution.errors import LLMRequestError
from dagwright.ops import telemetry
from dagwright.ops.monitor import (
    ExecutionRecord,
    MonitorEvent,
    PerformanceAlert,
    percentile,
    summarize,
)
from dagwright.ops.pricing import cost_of
from dagwright.testing import Fault, OpenAITestServer


def make_agent(server: OpenAITestServer, **config: Any) -> BaseAgent:
    return loopback_agent(server, "question: str -> answer: str", **config)


def rec(ms: float, *, success: bool = True, **extra: Any) -> ExecutionRecord:
    return ExecutionRecord(name="x", started_at=0.0, duration_ms=ms, success=success, **extra)


# --------------------------------------------------------------------------- percentiles and summaries


def test_percentile_is_nearest_rank() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 50) == 35.0
    assert percentile(values, 90) == 50.0
    assert percentile(values, 30) == 20.0
    assert percentile(range(1, 101), 99) == 99
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="between 0"):
        percentile(values, 0)


@settings(max_examples=100)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50), st.floats(0.5, 100))
def test_percentile_is_a_sample_and_monotonic(values: list[float], p: float) -> None:
    got = percentile(values, p)
    assert got in values
    assert sum(1 for v in values if v <= got) >= p / 100 * len(values)
    assert percentile(values, 100) == max(values)


def test_summarize_counts_everything() -> None:
    records = [
        rec(10, prompt_tokens=5, completion_tokens=2, cost=0.5, llm_calls=1, cache="miss"),
        rec(30, success=False, retries=2, llm_calls=3, error="boom", error_type="ValueError"),
        rec(20, prompt_tokens=1, completion_tokens=1, cost=0.25, cost_known=False, cache="hit"),
    ]
    summary = summarize(records)
    assert summary == {
        "count": 3,
        "failures": 1,
        "retries": 2,
        "llm_calls": 4,
        "latency_ms": {"p50": 20, "p90": 30, "p99": 30, "max": 30, "mean": 20},
        "tokens": {"prompt": 6, "completion": 3, "total": 9},
        "cost": 0.75,
        "cost_known": False,
        "cache": {"hits": 1, "misses": 1},
    }


# --------------------------------------------------------------------------- agent monitor


def test_agent_monitor_records_every_execution(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    results = [agent.run(question=q) for q in ("a?", "bb?", "ccc?")]
    server.enqueue(Fault(status=400))
    with pytest.raises(LLMRequestError):
        agent.run(question="d?")
    monitor = agent.get_execution_monitor()
    assert monitor is agent.get_execution_monitor()
    metrics = monitor.metrics()
    history = monitor.history
    assert metrics["agent"] == "qa"
    assert metrics["count"] == 4
    assert metrics["failures"] == 1
    assert metrics["llm_calls"] == 4  # the refused request was made, so it counts
    assert metrics["tokens"]["total"] == sum(r["_tokens"]["total"] for r in results)
    assert metrics["tokens"]["prompt"] == sum(r["_tokens"]["prompt"] for r in results)
    assert metrics["cost"] == pytest.approx(sum(r["_cost"] for r in results), abs=1e-15)
    latencies = [r.duration_ms for r in history]
    assert metrics["latency_ms"]["p50"] == sorted(latencies)[1]
    assert metrics["latency_ms"]["p99"] == max(latencies)
    assert [r.success for r in history] == [True, True, True, False]
    assert history[-1].error_type == "LLMRequestError"
    assert "HTTP 400" in (history[-1].error or "")
    assert set(metrics["models"]) == {"gpt-4o-mini"}
    assert metrics["models"]["gpt-4o-mini"]["count"] == 4


def test_agent_node_executions_are_recorded_too(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    flow = Flow.from_agent(agent, "qa")
    result = flow.run(question="inside a flow?")
    assert result.success
    history = agent.get_execution_monitor().history
    assert len(history) == 1
    assert history[0].tokens == result.nodes["qa"].usage.total


def test_latency_alert_calls_the_hook_and_logs(server: OpenAITestServer, caplog: pytest.LogCaptureFixture) -> None:
    server.latency = 0.05
    agent = make_agent(server)
    alerts: list[PerformanceAlert] = []
    monitor = agent.get_execution_monitor()
    monitor.set_performance_alerts(latency_threshold=20, hook=alerts.append)
    with caplog.at_level(logging.WARNING, logger="dagwright"):
        agent.run(question="slow?")
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.subject == "qa"
    assert alert.threshold_ms == 20.0
    assert alert.latency_ms == monitor.history[0].duration_ms >= 50.0
    assert monitor.alerts == alerts
    assert [r.getMessage() for r in caplog.records] == [f"dagwright performance alert: {alert}"]
    monitor.set_performance_alerts(latency_threshold=60_000, hook=alerts.append)
    agent.run(question="slow again?")
    assert len(alerts) == 1


def test_alert_settings_are_checked() -> None:
    agent = BaseAgent(signature="q -> a")
    monitor = agent.get_execution_monitor()
    with pytest.raises(ValueError, match="positive milliseconds, got 0"):
        monitor.set_performance_alerts(latency_threshold=0)
    with pytest.raises(TypeError, match="milliseconds"):
        monitor.set_performance_alerts(latency_threshold="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hook must be callable"):
        monitor.set_performance_alerts(latency_threshold=5, hook="print")  # type: ignore[arg-type]


def test_a_failing_hook_does_not_fail_the_execution(server: OpenAITestServer) -> None:
    agent = make_agent(server)

    def broken(alert: PerformanceAlert) -> None:
        raise RuntimeError("hook is broken")

    agent.get_execution_monitor().set_performance_alerts(latency_threshold=1e-6, hook=broken)
    assert agent.run(question="still fine?")["answer"]


def test_real_time_tracking_streams_events(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    monitor = agent.get_execution_monitor()
    seen: list[MonitorEvent] = []
    agent.run(question="before tracking")
    unsubscribe = monitor.enable_real_time_tracking(seen.append)
    agent.run(question="tracked")
    server.enqueue(Fault(status=400))
    with pytest.raises(LLMRequestError):
        agent.run(question="tracked failure")
    assert [e.kind for e in seen] == [
        "execution_started",
        "execution_finished",
        "execution_started",
        "execution_failed",
    ]
    assert seen[1].record is not None and seen[1].record.success
    assert seen[3].record is not None and seen[3].record.error_type == "LLMRequestError"
    unsubscribe()
    agent.run(question="after unsubscribe")
    assert len(seen) == 4


# --------------------------------------------------------------------------- flow monitor


def build_flow(server: OpenAITestServer, calls: dict[str, int]) -> Flow:
    def flaky(answer: str) -> str:
        calls["flaky"] = calls.get("flaky", 0) + 1
        if calls["flaky"] % 2 == 1:
            raise RuntimeError("first attempt fails")
        return answer.upper()

    def slow(text: str) -> int:
        time.sleep(0.03)
        return len(text)

    flow = Flow("monitored")
    flow.add_agent("qa", make_agent(server))
    flow.add_function("flaky", flaky)
    flow.add_function("slow", slow)
    flow.connect("qa.answer", "flaky.answer")
    flow.connect("flaky.output", "slow.text")
    flow.input("question")
    flow.output("length", "slow.output")
    flow.configure("flaky", retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0))
    return flow


def test_flow_monitor_per_run_and_per_node(server: OpenAITestServer) -> None:
    flow = build_flow(server, {})
    monitor = flow.monitor()
    assert flow.monitor() is monitor
    results = [flow.run(question="one?"), flow.run(question="two?")]
    assert all(r.success for r in results)
    metrics = monitor.metrics()
    assert metrics["flow"] == "monitored"
    runs = metrics["runs"]
    assert runs["count"] == 2 and runs["failures"] == 0
    assert runs["retries"] == 2
    assert runs["tokens"]["total"] == sum(r.usage.total for r in results)
    assert runs["cost"] == pytest.approx(sum(r.usage.cost for r in results), abs=1e-15)
    assert runs["latency_ms"]["max"] == pytest.approx(max(r.duration_ms for r in results), abs=5.0)
    nodes = metrics["nodes"]
    assert set(nodes) == {"qa", "flaky", "slow"}
    assert nodes["flaky"]["retries"] == 2 and nodes["flaky"]["count"] == 2
    assert nodes["qa"]["llm_calls"] == 2 and nodes["qa"]["retries"] == 0
    assert nodes["qa"]["tokens"]["total"] == runs["tokens"]["total"]
    assert nodes["slow"]["latency_ms"]["p50"] >= 30.0
    assert [r.run_id for r in monitor.runs] == [r.run_id for r in results]
    assert [r.duration_ms for r in monitor.node_history("slow")] == [r.nodes["slow"].duration_ms for r in results]


def test_flow_monitor_records_failures_and_alerts(server: OpenAITestServer) -> None:
    flow = build_flow(server, {})
    flow.configure("flaky", retry=RetryPolicy(max_attempts=1))
    alerts: list[PerformanceAlert] = []
    monitor = flow.monitor()
    monitor.set_performance_alerts(latency_threshold=25, hook=alerts.append)
    failed = flow.run(question="fails")
    assert not failed.success
    ok = flow.run(question="passes")
    assert ok.success
    metrics = monitor.metrics()
    assert metrics["runs"]["count"] == 2 and metrics["runs"]["failures"] == 1
    assert metrics["nodes"]["flaky"]["failures"] == 1
    assert monitor.runs[0].error == "flaky: RuntimeError: first attempt fails"
    subjects = [a.subject for a in alerts]
    assert "node 'slow' of flow 'monitored'" in subjects
    assert f"run {ok.run_id} of flow 'monitored'" in subjects
    assert all(a.latency_ms > 25 for a in alerts)


def test_flow_real_time_tracking_gets_scheduler_events(server: OpenAITestServer) -> None:
    flow = build_flow(server, {})
    seen: list[str] = []
    flow.monitor().enable_real_time_tracking(lambda e: seen.append(f"{e.kind}:{e.node_id or ''}"))
    flow.run(question="tracked")
    assert seen == [
        "run_started:",
        "node_started:qa",
        "node_finished:qa",
        "node_started:flaky",
        "node_retried:flaky",
        "node_finished:flaky",
        "node_started:slow",
        "node_finished:slow",
        "run_finished:",
    ]


async def test_flow_monitor_sees_async_and_streamed_runs(server: OpenAITestServer) -> None:
    flow = build_flow(server, {})
    flow.run(question="compile first")  # a plan made before the monitor still reports to it
    monitor = flow.monitor()
    await flow.arun(question="async")
    events = [e async for e in flow.stream(question="streamed")]
    assert events[-1].kind == "run_finished"
    assert monitor.metrics()["runs"]["count"] == 2


# --------------------------------------------------------------------------- optimizer


def test_no_history_no_suggestion() -> None:
    assert BaseAgent(signature="q -> a").get_execution_optimizer().suggestions() == []


def test_repeated_inputs_suggest_the_cache(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    results = [agent.run(question=q) for q in ("same?", "same?", "other?", "same?")]
    [suggestion] = agent.get_execution_optimizer().suggestions()
    assert suggestion.kind == "enable_cache"
    repeated = [results[1], results[3]]
    assert suggestion.evidence == {
        "executions": 4,
        "distinct_inputs": 2,
        "repeated_executions": 2,
        "repeated_tokens": sum(r["_tokens"]["total"] for r in repeated),
        "repeated_cost": pytest.approx(sum(r["_cost"] for r in repeated), abs=1e-15),
    }
    assert suggestion.message.startswith("2 of 4 executions repeated inputs already answered")
    assert agent.get_execution_optimizer().suggestions(min_repeats=3) == []
    agent.enable_cache()
    assert agent.get_execution_optimizer().suggestions() == []


def test_slow_expensive_model_on_short_prompts_suggests_a_cheaper_one(server: OpenAITestServer) -> None:
    server.latency = 0.03
    agent = make_agent(server, model="gpt-4o")
    results = [agent.run(question=q) for q in ("a?", "b?", "c?")]
    optimizer = agent.get_execution_optimizer()
    assert optimizer.suggestions(slow_ms=60_000) == []
    assert optimizer.suggestions(slow_ms=1, short_prompt_tokens=1) == []
    [suggestion] = optimizer.suggestions(slow_ms=25)
    history = agent.get_execution_monitor().history
    assert suggestion.kind == "cheaper_model"
    evidence = suggestion.evidence
    assert evidence["model"] == "gpt-4o" and evidence["suggested_model"] == "gpt-4o-mini"
    assert evidence["executions"] == 3
    assert evidence["latency_p50_ms"] == sorted(r.duration_ms for r in history)[1]
    assert evidence["prompt_tokens_p50"] == sorted(r["_tokens"]["prompt"] for r in results)[1]
    assert evidence["cost"] == pytest.approx(sum(r["_cost"] for r in results), abs=1e-15)
    expected = sum(cost_of("gpt-4o-mini", r["_tokens"]["prompt"], r["_tokens"]["completion"])[0] for r in results)
    assert evidence["cost_with_suggested_model"] == pytest.approx(expected, abs=1e-15)
    assert evidence["cost_with_suggested_model"] < evidence["cost"]


def test_failures_are_suggested_with_their_error(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    agent.run(question="fine")
    server.enqueue(Fault(status=400), Fault(status=400))
    for _ in range(2):
        with pytest.raises(LLMRequestError):
            agent.run(question="refused")
    [suggestion] = agent.get_execution_optimizer().suggestions()
    assert suggestion.kind == "failures"
    assert suggestion.evidence == {
        "executions": 3,
        "failures": 2,
        "failure_rate": 2 / 3,
        "error_types": {"LLMRequestError": 2},
    }
    assert suggestion.message.startswith("2 of 3 executions failed; most often LLMRequestError (2x): ")


# --------------------------------------------------------------------------- OpenTelemetry


@pytest.fixture
def spans() -> Iterator[Any]:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_tracer_provider(None)


def test_no_spans_without_a_tracer_provider() -> None:
    assert telemetry.tracer() is None
    assert telemetry.run_listener("flow") is None


def test_flow_runs_and_nodes_become_spans(server: OpenAITestServer, spans: Any) -> None:
    flow = build_flow(server, {})
    result = flow.run(question="traced?")
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {
        "dagwright.run monitored",
        "dagwright.node qa",
        "dagwright.node flaky",
        "dagwright.node slow",
        "dagwright.agent qa",
    }
    run = finished["dagwright.run monitored"]
    assert run.attributes["dagwright.run_id"] == result.run_id
    for node_id in ("qa", "flaky", "slow"):
        span = finished[f"dagwright.node {node_id}"]
        assert span.parent is not None and span.parent.span_id == run.context.span_id
        assert span.attributes["dagwright.node.id"] == node_id
        assert span.attributes["dagwright.node.attempts"] == result.nodes[node_id].attempts
    qa = finished["dagwright.node qa"]
    assert qa.attributes["dagwright.tokens.prompt"] == result.nodes["qa"].usage.prompt
    assert qa.attributes["dagwright.model"] == "gpt-4o-mini"
    assert [e.name for e in finished["dagwright.node flaky"].events] == ["retry"]
    assert run.status.is_ok


def test_a_failed_node_marks_its_span_and_the_run(server: OpenAITestServer, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    flow = build_flow(server, {})
    flow.configure("flaky", retry=RetryPolicy(max_attempts=1))
    assert not flow.run(question="fails").success
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["dagwright.node flaky"].status.status_code == StatusCode.ERROR
    assert finished["dagwright.run monitored"].status.status_code == StatusCode.ERROR
    assert "dagwright.node slow" not in finished


def test_agent_executions_become_spans(server: OpenAITestServer, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    agent = make_agent(server)
    out = agent.run(question="traced?")
    server.enqueue(Fault(status=400))
    with pytest.raises(LLMRequestError):
        agent.run(question="refused")
    ok, failed = spans.get_finished_spans()
    assert ok.name == failed.name == "dagwright.agent qa"
    assert ok.attributes["dagwright.tokens.completion"] == out["_tokens"]["completion"]
    assert ok.attributes["dagwright.cache"] == "off"
    assert failed.status.status_code == StatusCode.ERROR


def test_asyncio_gather_of_agents_traces_each(server: OpenAITestServer, spans: Any) -> None:
    agent = make_agent(server)

    async def main() -> None:
        await asyncio.gather(*(agent.arun(question=f"q{i}?") for i in range(3)))

    asyncio.run(main())
    assert [s.name for s in spans.get_finished_spans()] == ["dagwright.agent qa"] * 3


def _by_name(spans: Any) -> dict[str, Any]:
    finished = spans.get_finished_spans()
    named = {s.name: s for s in finished}
    assert len(named) == len(finished), [s.name for s in finished]
    return named


def test_a_flow_run_is_one_trace_run_node_agent(server: OpenAITestServer, spans: Any) -> None:
    flow = build_flow(server, {})
    result = flow.run(question="one trace?")
    assert result.success, result.error
    finished = _by_name(spans)
    run = finished["dagwright.run monitored"]
    assert run.parent is None
    assert {s.context.trace_id for s in finished.values()} == {run.context.trace_id}
    for node_id in ("qa", "flaky", "slow"):
        node = finished[f"dagwright.node {node_id}"]
        assert node.parent is not None and node.parent.span_id == run.context.span_id
        assert node.attributes["dagwright.node.kind"] == result.nodes[node_id].kind
        assert node.attributes["dagwright.node.status"] == "done"
        assert node.attributes["dagwright.node.attempts"] == result.nodes[node_id].attempts
    agent = finished["dagwright.agent qa"]
    assert agent.parent is not None and agent.parent.span_id == finished["dagwright.node qa"].context.span_id
    assert finished["dagwright.node qa"].attributes["dagwright.node.kind"] == "agent"
    flaky = finished["dagwright.node flaky"]
    assert flaky.attributes["dagwright.node.attempts"] == 2
    assert [(e.name, e.attributes["attempt"]) for e in flaky.events] == [("retry", 1)]
    # A second run is a second trace, not a continuation of the first.
    flow.run(question="another?")
    runs = [s for s in spans.get_finished_spans() if s.name == "dagwright.run monitored"]
    assert len(runs) == 2 and runs[0].context.trace_id != runs[1].context.trace_id
    assert all(s.parent is None for s in runs)


def test_agent_spans_carry_the_genai_attributes(server: OpenAITestServer, spans: Any) -> None:
    flow = build_flow(server, {})
    result = flow.run(question="how many tokens?")
    node = result.nodes["qa"]
    assert node.usage is not None and node.usage.prompt > 0 and node.usage.completion > 0
    attributes = _by_name(spans)["dagwright.agent qa"].attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == node.model
    assert attributes["gen_ai.usage.input_tokens"] == node.usage.prompt == result.usage.prompt
    assert attributes["gen_ai.usage.output_tokens"] == node.usage.completion == result.usage.completion
    assert attributes["dagwright.cost_usd"] == pytest.approx(node.usage.cost)
    assert attributes["dagwright.tokens.prompt"] == node.usage.prompt
    assert attributes["dagwright.cache"] == "off"


def test_the_offline_model_is_its_own_genai_system(spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGWRIGHT_PROVIDER", raising=False)
    agent = BaseAgent(config={"provider": "offline"}, signature="question: str -> answer: str", name="local")
    out = agent.run(question="offline?")
    (span,) = spans.get_finished_spans()
    assert span.attributes["gen_ai.system"] == "dagwright-offline"
    assert span.attributes["gen_ai.usage.output_tokens"] == out["_tokens"]["completion"]


def test_a_failed_agent_span_still_counts_its_tokens(server: OpenAITestServer, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    agent = make_agent(server)
    server.enqueue(Fault(status=400))
    with pytest.raises(LLMRequestError):
        agent.run(question="refused")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["gen_ai.usage.input_tokens"] == 0
    assert "gen_ai.response.model" not in span.attributes  # no reply: no model answered


def test_no_provider_no_spans_and_no_current_span_in_nodes(
    server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # A provider exists but nobody set it: dagwright must not trace into it, nor attach anything.
    exporter = InMemorySpanExporter()
    sdk_trace.TracerProvider().add_span_processor(SimpleSpanProcessor(exporter))
    attached: list[object] = []
    real_attach = context.attach

    def counting_attach(ctx: Any) -> object:
        attached.append(ctx)
        return real_attach(ctx)

    monkeypatch.setattr(context, "attach", counting_attach)
    seen: list[bool] = []

    def probe(answer: str) -> str:
        seen.append(trace.get_current_span().get_span_context().is_valid)
        return answer

    flow = Flow("untraced")
    flow.add_agent("qa", make_agent(server))
    flow.add_function("probe", probe)
    flow.connect("qa.answer", "probe.answer")
    flow.input("question")
    flow.output("answer", "probe.output")
    assert telemetry.tracer() is None
    assert flow.run(question="untraced?").success
    assert seen == [False]
    assert attached == []
    assert exporter.get_finished_spans() == ()


def test_a_map_nodes_inner_runs_nest_under_its_span(server: OpenAITestServer, spans: Any) -> None:
    from dagwright import patterns

    flow = patterns.parallel_map(make_agent(server), over="question", concurrency=2)
    result = flow.run(question=["a?", "b?", "c?"])
    assert result.success, result.error
    finished = spans.get_finished_spans()
    assert len({s.context.trace_id for s in finished}) == 1
    by_id = {s.context.span_id: s for s in finished}
    (outer,) = [s for s in finished if s.parent is None]
    assert outer.name == "dagwright.run map"
    (map_node,) = [s for s in finished if s.name == "dagwright.node map"]
    assert map_node.parent.span_id == outer.context.span_id
    inner = [s for s in finished if s.name.startswith("dagwright.run ") and s is not outer]
    assert len(inner) == 3
    assert all(s.parent.span_id == map_node.context.span_id for s in inner)
    assert sorted(s.attributes["dagwright.run_id"] for s in inner) == [f"{result.run_id}.{i}" for i in range(3)]
    agents = [s for s in finished if s.name.startswith("dagwright.agent ")]
    assert len(agents) == 3
    for agent in agents:  # agent -> its node -> an inner run -> the map node
        node = by_id[agent.parent.span_id]
        assert node.name.startswith("dagwright.node ")
        assert by_id[node.parent.span_id] in inner


async def test_a_cancelled_run_still_ends_its_spans(spans: Any) -> None:
    started = asyncio.Event()

    async def stall(x: int) -> int:
        started.set()
        await asyncio.sleep(30)
        return x

    flow = Flow("cancelled")
    flow.add_function("stall", stall)
    flow.input("x")
    flow.output("y", "stall.output")
    task = asyncio.ensure_future(flow.arun(x=1))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = _by_name(spans)
    assert set(finished) == {"dagwright.run cancelled", "dagwright.node stall"}
    assert finished["dagwright.run cancelled"].attributes["dagwright.run.status"] == "cancelled"
    assert finished["dagwright.node stall"].attributes["dagwright.node.status"] == "cancelled"
    assert finished["dagwright.node stall"].parent.span_id == finished["dagwright.run cancelled"].context.span_id


def test_the_global_tracer_provider_sees_runs() -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    # A fresh interpreter: the global provider can be set once per process.
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from dagwright import Flow

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        def double(x: int) -> int:
            return 2 * x

        flow = Flow("global")
        flow.add_function("double", double)
        flow.input("x")
        flow.output("y", "double.output")
        assert flow.run(x=2)["y"] == 4
        print(sorted(s.name for s in exporter.get_finished_spans()))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['dagwright.node double', 'dagwright.run global']"


def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)
    block = next(b for b in blocks if "get_execution_monitor()" in b)
    (tmp_path / "example.py").write_text(block, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(readme.parent)}  # no OPENAI_* variables: offline
    done = subprocess.run(
        [sys.executable, "example.py"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:6] == ["execution_started", "execution_finished"] * 3
    count, failures, _p90, cache = lines[6].split(" ", 3)
    assert (count, failures, cache) == ("3", "0", "{'hits': 1, 'misses': 2}")
    audit = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["cache"] for line in audit] == ["miss", "hit", "miss"]
