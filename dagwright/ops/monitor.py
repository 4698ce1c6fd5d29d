"""Monitoring and optimization: metrics from recorded executions, latency alerts, live event streams.

Every execution of an agent (``BaseAgent.invoke``, which ``run``/``arun``/``execute`` and
agent nodes go through) leaves an :class:`ExecutionRecord` in the agent's bounded history;
``agent.get_execution_monitor()`` summarizes it and ``agent.get_execution_optimizer()``
turns it into suggestions backed by the numbers they come from. ``flow.monitor()`` does
the same for the runs of a flow, per run and per node, from the scheduler's events.

The optimizer follows targets (``set_optimization_targets(["latency", "cost"])``, see
:data:`OPTIMIZATION_TARGETS`) and, with ``enable_auto_optimization()``, applies the safe
suggestions itself through :class:`OptimizationActions` the agent provides (``auto_apply``).

Latency percentiles use the nearest-rank method: p90 of ``n`` samples is the
``ceil(0.9 * n)``-th smallest, always one of the measured values.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dagwright.compiler.suggest import suggest
from dagwright.execution.events import Event
from dagwright.ops.pricing import PRICES, cost_of

__all__ = [
    "CHEAPER_MODEL",
    "OPTIMIZATION_TARGETS",
    "AppliedOptimization",
    "ExecutionMonitor",
    "ExecutionOptimizer",
    "ExecutionRecord",
    "FlowMonitor",
    "MonitorEvent",
    "OptimizationActions",
    "OptimizerThresholds",
    "PerformanceAlert",
    "Suggestion",
    "SuggestionKind",
    "percentile",
    "sequential_bursts",
    "summarize",
]

log = logging.getLogger("dagwright")

DEFAULT_HISTORY = 1000
"""How many executions an agent keeps for its monitor and optimizer (the oldest are dropped first)."""


def percentile(values: Iterable[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"a percentile is between 0 (excluded) and 100, got {p}")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# One encoder for every call: json.dumps with options builds a new encoder each time, which costs more than encoding.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))


def inputs_hash(values: Mapping[str, Any]) -> str:
    """A stable SHA-256 of input values (canonical JSON; non-JSON values by their ``str``)."""
    return hashlib.sha256(_CANONICAL.encode(values).encode()).hexdigest()


@dataclass(slots=True)
class ExecutionRecord:
    """One execution of an agent or a flow node, as the monitor keeps it.

    ``llm_calls`` counts model calls (a repaired reply makes two); ``retries`` counts
    repeated attempts (node retries, or calls beyond the first for an agent).
    ``cache`` is ``"hit"``, ``"miss"`` (cache on, no entry) or None (no cache).
    """

    name: str
    started_at: float
    duration_ms: float
    success: bool
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    llm_calls: int = 0
    retries: int = 0
    cache: Literal["hit", "miss"] | None = None
    error: str | None = None
    error_type: str | None = None
    input_hash: str | None = None
    session_id: str | None = None
    run_id: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def summarize(records: Iterable[ExecutionRecord]) -> dict[str, Any]:
    """Metrics of a list of executions: count, failures, retries, latency, tokens, cost, cache hits."""
    items = list(records)
    latencies = [r.duration_ms for r in items]
    hits = sum(1 for r in items if r.cache == "hit")
    misses = sum(1 for r in items if r.cache == "miss")
    return {
        "count": len(items),
        "failures": sum(1 for r in items if not r.success),
        "retries": sum(r.retries for r in items),
        "llm_calls": sum(r.llm_calls for r in items),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
            "mean": sum(latencies) / len(latencies) if latencies else None,
        },
        "tokens": {
            "prompt": sum(r.prompt_tokens for r in items),
            "completion": sum(r.completion_tokens for r in items),
            "total": sum(r.tokens for r in items),
        },
        "cost": sum(r.cost for r in items),
        "cost_known": all(r.cost_known for r in items),
        "cache": {"hits": hits, "misses": misses},
    }


@dataclass(frozen=True, slots=True)
class PerformanceAlert:
    """An execution slower than the threshold: who (``subject``), how slow, and its record."""

    subject: str
    latency_ms: float
    threshold_ms: float
    record: ExecutionRecord

    def __str__(self) -> str:
        return f"{self.subject} took {self.latency_ms:.1f} ms, over the alert threshold of {self.threshold_ms:g} ms"


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """A live event of an agent: ``execution_started`` (no record yet), ``execution_finished``, ``execution_failed``."""

    kind: Literal["execution_started", "execution_finished", "execution_failed"]
    agent: str
    time: float
    record: ExecutionRecord | None = None


AlertHook = Callable[[PerformanceAlert], None]


class _Monitor:
    """What agent and flow monitors share: alert thresholds and live subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threshold_ms: float | None = None
        self._hook: AlertHook | None = None
        self._tracking = False
        self._subscribers: list[Callable[[Any], None]] = []
        self.alerts: list[PerformanceAlert] = []

    def set_performance_alerts(self, latency_threshold: float, hook: AlertHook | None = None) -> None:
        """Alert when an execution takes longer than ``latency_threshold`` milliseconds.

        Each alert is logged as a warning on the ``dagwright`` logger, kept in ``alerts``
        and passed to ``hook`` when given.
        """
        if isinstance(latency_threshold, bool) or not isinstance(latency_threshold, (int, float)):
            raise TypeError(f"latency_threshold is milliseconds (a number), got {type(latency_threshold).__name__}")
        if not latency_threshold > 0:
            raise ValueError(f"latency_threshold must be positive milliseconds, got {latency_threshold}")
        if hook is not None and not callable(hook):
            raise TypeError(f"the alert hook must be callable, got {type(hook).__name__}")
        self._threshold_ms = float(latency_threshold)
        self._hook = hook

    def clear_performance_alerts(self) -> None:
        self._threshold_ms = None
        self._hook = None

    def enable_real_time_tracking(self, subscriber: Callable[[Any], None] | None = None) -> Callable[[], None]:
        """Stream events to subscribers as executions happen; returns a function that unsubscribes ``subscriber``."""
        self._tracking = True
        if subscriber is None:
            return lambda: None
        return self.subscribe(subscriber)

    def disable_real_time_tracking(self) -> None:
        self._tracking = False

    def subscribe(self, subscriber: Callable[[Any], None]) -> Callable[[], None]:
        """Add a callable that gets every event while tracking is on; returns its unsubscribe function."""
        if not callable(subscriber):
            raise TypeError(f"a subscriber must be callable, got {type(subscriber).__name__}")
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def _publish(self, event: Any) -> None:
        if not self._tracking:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken display must not fail the execution it watches
                log.exception("dagwright: an event subscriber raised; the execution goes on")

    def _check_latency(self, subject: str, record: ExecutionRecord) -> None:
        threshold = self._threshold_ms
        if threshold is None or record.duration_ms <= threshold:
            return
        alert = PerformanceAlert(subject, record.duration_ms, threshold, record)
        with self._lock:
            self.alerts.append(alert)
        log.warning("dagwright performance alert: %s", alert)
        hook = self._hook
        if hook is not None:
            try:
                hook(alert)
            except Exception:
                log.exception("dagwright: the performance alert hook raised; the execution goes on")


class ExecutionMonitor(_Monitor):
    """The executions of one agent: ``metrics()``, alerts, live events (``agent.get_execution_monitor()``)."""

    def __init__(self, agent: str, history: int = DEFAULT_HISTORY) -> None:
        super().__init__()
        self.agent = agent
        self._history: collections.deque[ExecutionRecord] = collections.deque(maxlen=history)

    @property
    def history(self) -> list[ExecutionRecord]:
        """The recorded executions, oldest first (at most the last 1 000)."""
        with self._lock:
            return list(self._history)

    def clear(self) -> None:
        with self._lock:
            self._history.clear()
            self.alerts.clear()

    def started(self) -> None:
        if self._tracking:
            self._publish(MonitorEvent("execution_started", self.agent, time.time()))

    def record(self, record: ExecutionRecord) -> None:
        with self._lock:
            self._history.append(record)
        self._check_latency(self.agent, record)
        if self._tracking:
            kind: Literal["execution_finished", "execution_failed"] = (
                "execution_finished" if record.success else "execution_failed"
            )
            self._publish(MonitorEvent(kind, self.agent, time.time(), record))

    def metrics(self) -> dict[str, Any]:
        """Counts, failures, retries, latency percentiles (ms), tokens, cost and cache hits, plus per model."""
        records = self.history
        by_model: dict[str, list[ExecutionRecord]] = {}
        for r in records:
            by_model.setdefault(r.model or "unknown", []).append(r)
        return {
            "agent": self.agent,
            **summarize(records),
            "models": {model: summarize(rs) for model, rs in sorted(by_model.items())},
        }


@dataclass(slots=True)
class _OpenRun:
    started_at: float
    nodes: list[ExecutionRecord] = field(default_factory=list)


class FlowMonitor(_Monitor):
    """The runs of one flow, per run and per node (``flow.monitor()``); fed by the scheduler's events.

    Alerts fire for a node and for a whole run slower than the threshold; subscribers
    get the scheduler's :class:`~dagwright.execution.events.Event` objects.
    """

    def __init__(self, flow: str, history: int = DEFAULT_HISTORY) -> None:
        super().__init__()
        self.flow = flow
        self._runs: collections.deque[ExecutionRecord] = collections.deque(maxlen=history)
        self._nodes: dict[str, collections.deque[ExecutionRecord]] = {}
        self._history = history
        self._open: dict[str, _OpenRun] = {}
        self._cache_counts: Callable[[], Mapping[str, tuple[int, int]]] | None = None

    def __call__(self, event: Event) -> None:
        """The scheduler's listener: record finished nodes and runs, forward events to subscribers."""
        kind = event.kind
        if kind == "run_started":
            with self._lock:
                self._open[event.run_id] = _OpenRun(event.time)
        elif kind in ("node_finished", "node_failed") and event.record is not None and event.node_id is not None:
            # A node restored from a checkpoint ("cached") did not execute in this run: not a sample.
            if event.record.status != "cached":
                self._node_done(event)
        elif kind == "run_finished":
            self._run_done(event)
        self._publish(event)

    def _node_done(self, event: Event) -> None:
        rec = event.record
        assert rec is not None and event.node_id is not None
        usage = rec.usage
        record = ExecutionRecord(
            name=event.node_id,
            started_at=rec.started_at or event.time,
            duration_ms=rec.duration_ms if rec.duration_ms is not None else 0.0,
            success=event.kind == "node_finished",
            model=rec.model,
            prompt_tokens=usage.prompt if usage else 0,
            completion_tokens=usage.completion if usage else 0,
            cost=usage.cost if usage else 0.0,
            cost_known=usage.cost_known if usage else True,
            llm_calls=usage.calls if usage else 0,
            retries=max(0, rec.attempts - 1),
            error=rec.error,
            error_type=rec.error_type,
            run_id=event.run_id,
        )
        with self._lock:
            self._nodes.setdefault(event.node_id, collections.deque(maxlen=self._history)).append(record)
            run = self._open.get(event.run_id)
            if run is not None:
                run.nodes.append(record)
        self._check_latency(f"node {event.node_id!r} of flow {self.flow!r}", record)

    def _run_done(self, event: Event) -> None:
        with self._lock:
            run = self._open.pop(event.run_id, None)
        if run is None:
            return
        failed = [r for r in run.nodes if not r.success]
        record = ExecutionRecord(
            name=event.run_id,
            started_at=run.started_at,
            duration_ms=(event.time - run.started_at) * 1000.0,
            success=not failed,
            prompt_tokens=sum(r.prompt_tokens for r in run.nodes),
            completion_tokens=sum(r.completion_tokens for r in run.nodes),
            cost=sum(r.cost for r in run.nodes),
            cost_known=all(r.cost_known for r in run.nodes),
            llm_calls=sum(r.llm_calls for r in run.nodes),
            retries=sum(r.retries for r in run.nodes),
            error="; ".join(f"{r.name}: {r.error_type}: {r.error}" for r in failed) or None,
            run_id=event.run_id,
        )
        with self._lock:
            self._runs.append(record)
        self._check_latency(f"run {event.run_id} of flow {self.flow!r}", record)

    @property
    def runs(self) -> list[ExecutionRecord]:
        with self._lock:
            return list(self._runs)

    def node_history(self, node_id: str) -> list[ExecutionRecord]:
        with self._lock:
            return list(self._nodes.get(node_id, ()))

    def metrics(self) -> dict[str, Any]:
        """``{"flow", "runs": {...}, "nodes": {node_id: {...}}}``; each part as :func:`summarize` gives it.

        A node's ``cache`` counts come from its result cache (``flow.configure(node, cache=...)``).
        """
        with self._lock:
            runs = list(self._runs)
            nodes = {nid: list(rs) for nid, rs in self._nodes.items()}
        cache_counts = dict(self._cache_counts()) if self._cache_counts is not None else {}
        per_node: dict[str, dict[str, Any]] = {}
        for nid in sorted(set(nodes) | set(cache_counts)):
            summary = summarize(nodes.get(nid, []))
            if nid in cache_counts:
                hits, misses = cache_counts[nid]
                summary["cache"] = {"hits": hits, "misses": misses}
            per_node[nid] = summary
        return {"flow": self.flow, "runs": summarize(runs), "nodes": per_node}


# --------------------------------------------------------------------------- optimization

SuggestionKind = Literal["enable_cache", "cheaper_model", "model_selection", "concurrency", "failures"]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggestion: what (``kind``), why in words (``message``) and the measured numbers (``evidence``)."""

    kind: SuggestionKind
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


# A smaller model of the same family, cheaper per token on both input and output (see pricing.PRICES).
CHEAPER_MODEL: dict[str, str] = {
    "gpt-4": "gpt-4o-mini",
    "gpt-4-turbo": "gpt-4o-mini",
    "gpt-4o": "gpt-4o-mini",
    "gpt-4.1": "gpt-4.1-mini",
    "gpt-4.1-mini": "gpt-4.1-nano",
    "gpt-3.5-turbo": "gpt-4o-mini",
    "o1": "o3-mini",
    "o3": "o4-mini",
}

OPTIMIZATION_TARGETS: tuple[str, ...] = ("latency", "cost", "accuracy", "throughput")
"""What :meth:`ExecutionOptimizer.set_optimization_targets` accepts.

* ``latency`` and ``cost``: allow model-switch suggestions (``cheaper_model``, ``model_selection``);
* ``accuracy``: asks for nothing that trades answers for speed: alone, it rules model switches out;
* ``throughput``: allows the ``concurrency`` suggestion.

Whatever the targets, ``enable_cache`` (a repeated input answered from the cache is the same
answer) and ``failures`` (failures hurt every target) are suggested when the history shows them.
"""


def _family(model: str) -> str | None:
    name = model.lower()
    for family in sorted(PRICES, key=len, reverse=True):
        if name == family or name.startswith((family + "-", family + ":")):
            return family
    return None


@dataclass(frozen=True, slots=True)
class OptimizerThresholds:
    """The limits suggestions are judged by; ``ExecutionOptimizer.suggestions(**overrides)`` may change any.

    - ``min_repeats``: repeated executions (same model and inputs) before ``enable_cache``;
    - ``slow_ms`` / ``short_prompt_tokens``: median latency and median prompt size for ``cheaper_model``;
    - ``slow_average_ms``: mean latency a model must exceed for ``model_selection`` (the ADR's 1000 ms);
    - ``min_queued`` / ``queue_gap_ms`` / ``max_concurrency``: for ``concurrency``, how many executions
      must have run one after another, how soon (ms) after the previous one's end each must have
      started to count as waiting in a queue, and the most to suggest running at once;
    - ``max_failure_rate``: the share of failed executions above which ``failures`` is suggested.
    """

    min_repeats: int = 2
    slow_ms: float = 2000.0
    short_prompt_tokens: int = 500
    max_failure_rate: float = 0.1
    slow_average_ms: float = 1000.0
    min_queued: int = 4
    queue_gap_ms: float = 50.0
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        limits: list[tuple[str, float, float]] = [
            ("min_repeats", self.min_repeats, 1),
            ("slow_ms", self.slow_ms, 0),
            ("short_prompt_tokens", self.short_prompt_tokens, 0),
            ("max_failure_rate", self.max_failure_rate, 0),
            ("slow_average_ms", self.slow_average_ms, 0),
            ("min_queued", self.min_queued, 2),
            ("queue_gap_ms", self.queue_gap_ms, 0),
            ("max_concurrency", self.max_concurrency, 2),
        ]
        for name, value, least in limits:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= least:
                raise ValueError(f"optimizer threshold {name} must be a number >= {least:g}, got {value!r}")
        if self.max_failure_rate > 1:
            raise ValueError(f"optimizer threshold max_failure_rate is a share (0..1), got {self.max_failure_rate!r}")


class OptimizationActions(Protocol):
    """What :meth:`ExecutionOptimizer.auto_apply` may change on an agent; return values are ignored."""

    def enable_cache(self) -> object:
        """Turn the result cache on."""
        ...

    def switch_model(self, model: str) -> object:
        """Use ``model`` for the executions to come."""
        ...

    def set_concurrency(self, n: int) -> object:
        """Allow up to ``n`` executions at once."""
        ...


@dataclass(frozen=True, slots=True)
class AppliedOptimization:
    """A change :meth:`ExecutionOptimizer.auto_apply` made: the action, its argument and the suggestion behind it.

    ``value`` is the model switched to (``switch_model``), the concurrency set (``set_concurrency``)
    or None (``enable_cache``); ``time`` is when it was applied (seconds since the epoch).
    """

    action: Literal["enable_cache", "switch_model", "set_concurrency"]
    value: str | int | None
    suggestion: Suggestion
    time: float

    def __str__(self) -> str:
        done = {
            "enable_cache": "enabled the result cache",
            "switch_model": f"switched the model to {self.value}",
            "set_concurrency": f"set the concurrency to {self.value}",
        }[self.action]
        return f"{done}: {self.suggestion.message}"


class ExecutionOptimizer:
    """Suggestions computed from an agent's recorded executions (``agent.get_execution_optimizer()``).

    No history, no suggestion: each one carries the counts, latencies, tokens and costs
    it was derived from. Costs for another model are the recorded token counts priced
    with :data:`dagwright.ops.pricing.PRICES`.

    The optimizer keeps state (targets, auto-optimization, what it applied), so an agent
    makes one and keeps it. Without targets, :meth:`suggestions` gives ``enable_cache``,
    ``cheaper_model`` and ``failures`` only; :meth:`set_optimization_targets` chooses what it
    may suggest (see :data:`OPTIMIZATION_TARGETS`). With :meth:`enable_auto_optimization`,
    :meth:`auto_apply` (called after each recorded execution) applies the safe suggestions.
    """

    def __init__(
        self,
        monitor: ExecutionMonitor,
        *,
        cache_enabled: Callable[[], bool] = lambda: False,
        thresholds: OptimizerThresholds | None = None,
    ) -> None:
        self.monitor = monitor
        self._cache_enabled = cache_enabled
        self.thresholds = thresholds if thresholds is not None else OptimizerThresholds()
        self._lock = threading.Lock()
        self._targets: tuple[str, ...] = ()
        self._auto = False
        self._applied: list[AppliedOptimization] = []
        # What auto_apply has done or tried, so that each change happens once (a failed one is not retried).
        self._attempted: set[tuple[str, str]] = set()

    # ---- targets and auto-optimization

    @property
    def targets(self) -> tuple[str, ...]:
        """The optimization targets, in the order given; empty when none are set."""
        return self._targets

    def set_optimization_targets(self, targets: Iterable[str]) -> None:
        """Optimize for ``targets``, a list of names from :data:`OPTIMIZATION_TARGETS`; empty clears them.

        Raises TypeError for a bare string or a non-string name, ValueError for an unknown name.
        """
        if isinstance(targets, str):
            raise TypeError(
                f"{self.monitor.agent}: set_optimization_targets takes a list of targets, "
                f"e.g. [{targets!r}], got the string {targets!r}"
            )
        chosen: list[str] = []
        for target in targets:
            if not isinstance(target, str):
                raise TypeError(
                    f"{self.monitor.agent}: an optimization target is a name, got {type(target).__name__} {target!r}"
                )
            if target not in OPTIMIZATION_TARGETS:
                close = suggest(target, OPTIMIZATION_TARGETS)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"{self.monitor.agent}: unknown optimization target {target!r}{hint} "
                    f"(known targets: {', '.join(OPTIMIZATION_TARGETS)})"
                )
            if target not in chosen:
                chosen.append(target)
        self._targets = tuple(chosen)

    @property
    def auto_optimization(self) -> bool:
        """Whether :meth:`auto_apply` applies suggestions."""
        return self._auto

    def enable_auto_optimization(self, enabled: bool = True) -> None:
        """Let :meth:`auto_apply` apply the safe suggestions (``enabled=False`` stops it)."""
        self._auto = bool(enabled)

    @property
    def applied(self) -> list[AppliedOptimization]:
        """What :meth:`auto_apply` changed, oldest first."""
        with self._lock:
            return list(self._applied)

    @staticmethod
    def _allows_model_switch(targets: tuple[str, ...]) -> bool:
        """Model switches trade answers for speed or price: only for a latency or cost target."""
        return "latency" in targets or "cost" in targets

    # ---- suggestions

    def suggestions(
        self,
        *,
        min_repeats: int | None = None,
        slow_ms: float | None = None,
        short_prompt_tokens: int | None = None,
        max_failure_rate: float | None = None,
        slow_average_ms: float | None = None,
        min_queued: int | None = None,
        queue_gap_ms: float | None = None,
        max_concurrency: int | None = None,
    ) -> list[Suggestion]:
        """What to change, with evidence; a threshold not given is the optimizer's (:class:`OptimizerThresholds`).

        - ``enable_cache``: at least ``min_repeats`` executions repeated inputs already seen
          (same model) while no result cache is on;
        - ``cheaper_model``: a model whose median latency is at least ``slow_ms`` on prompts
          of ``short_prompt_tokens`` or fewer (median), when a cheaper sibling is priced;
        - ``model_selection`` (targets ``latency`` or ``cost`` only): a model whose mean latency over
          its successful, non-cached executions exceeds ``slow_average_ms``;
        - ``concurrency`` (target ``throughput`` only): see :func:`sequential_bursts`;
        - ``failures``: more than ``max_failure_rate`` of the executions failed.

        Without targets: ``enable_cache``, ``cheaper_model`` and ``failures``. With targets,
        ``cheaper_model`` needs ``latency`` or ``cost`` among them (never for ``accuracy`` alone).
        """
        given = {
            "min_repeats": min_repeats,
            "slow_ms": slow_ms,
            "short_prompt_tokens": short_prompt_tokens,
            "max_failure_rate": max_failure_rate,
            "slow_average_ms": slow_average_ms,
            "min_queued": min_queued,
            "queue_gap_ms": queue_gap_ms,
            "max_concurrency": max_concurrency,
        }
        overrides: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        limits = dataclasses.replace(self.thresholds, **overrides) if overrides else self.thresholds
        return self._suggest(self.monitor.history, limits)

    def _suggest(self, records: list[ExecutionRecord], limits: OptimizerThresholds) -> list[Suggestion]:
        """The suggestions for ``records`` (one snapshot, so that they agree on the executions they count)."""
        out: list[Suggestion] = []
        if not records:
            return out
        targets = self._targets
        if not self._cache_enabled():
            cache = _cache_suggestion(records, limits.min_repeats)
            if cache is not None:
                out.append(cache)
        if not targets or self._allows_model_switch(targets):
            out.extend(_cheaper_model_suggestions(records, limits.slow_ms, limits.short_prompt_tokens))
        if self._allows_model_switch(targets):
            out.extend(_model_selection_suggestions(records, limits.slow_average_ms))
        if "throughput" in targets:
            concurrency = _concurrency_suggestion(records, limits)
            if concurrency is not None:
                out.append(concurrency)
        failures = _failures_suggestion(records, limits.max_failure_rate)
        if failures is not None:
            out.append(failures)
        return out

    # ---- auto-optimization

    def auto_apply(self, actions: OptimizationActions) -> list[AppliedOptimization]:
        """Apply the safe suggestions through ``actions``; returns what this call applied (nothing when off).

        Safe: ``enable_cache`` always; a model switch (``cheaper_model``/``model_selection``) only
        when the targets include ``latency`` or ``cost``, and only away from the model of the latest
        non-cached execution (the one in use); ``concurrency`` only for ``throughput``. ``failures``
        is never applied. Each change happens at most once per optimizer (a model switch once per
        model switched from); each is kept in :attr:`applied` and logged at INFO on the ``dagwright``
        logger. An action that raises is logged and not retried: the execution that triggered it goes on.
        """
        if not self._auto:
            return []
        records = self.monitor.history
        current = next((r.model for r in reversed(records) if r.cache != "hit" and r.model), None)
        done: list[AppliedOptimization] = []
        for suggestion in self._suggest(records, self.thresholds):
            change = self._safe_change(suggestion, current)
            if change is None:
                continue
            action, value, key = change
            with self._lock:
                if key in self._attempted:
                    continue
                self._attempted.add(key)
            applied = self._apply(actions, action, value, suggestion)
            if applied is not None:
                done.append(applied)
                if action == "switch_model":
                    current = str(value)
        return done

    def _safe_change(
        self, suggestion: Suggestion, current: str | None
    ) -> tuple[Literal["enable_cache", "switch_model", "set_concurrency"], str | int | None, tuple[str, str]] | None:
        """``(action, value, once-key)`` for a suggestion that is safe to apply, else None."""
        if suggestion.kind == "enable_cache":
            return "enable_cache", None, ("enable_cache", "")
        if suggestion.kind in ("cheaper_model", "model_selection"):
            model, target = suggestion.evidence.get("model"), suggestion.evidence.get("suggested_model")
            if not self._allows_model_switch(self._targets) or target is None or model != current:
                return None
            return "switch_model", str(target), ("switch_model", str(model))
        if suggestion.kind == "concurrency" and "throughput" in self._targets:
            return "set_concurrency", int(suggestion.evidence["suggested_concurrency"]), ("set_concurrency", "")
        return None

    def _apply(
        self,
        actions: OptimizationActions,
        action: Literal["enable_cache", "switch_model", "set_concurrency"],
        value: str | int | None,
        suggestion: Suggestion,
    ) -> AppliedOptimization | None:
        try:
            if action == "enable_cache":
                actions.enable_cache()
            elif isinstance(value, str):
                actions.switch_model(value)
            elif isinstance(value, int):
                actions.set_concurrency(value)
        except Exception:  # the agent calls auto_apply after an execution: a failed change must not fail it
            log.exception("dagwright optimizer: %s: %s(%r) raised; not retried", self.monitor.agent, action, value)
            return None
        applied = AppliedOptimization(action, value, suggestion, time.time())
        with self._lock:
            self._applied.append(applied)
        log.info("dagwright optimizer: %s: %s", self.monitor.agent, applied)
        return applied


def _cache_suggestion(records: list[ExecutionRecord], min_repeats: int) -> Suggestion | None:
    """``enable_cache`` when at least ``min_repeats`` successful executions repeated a (model, inputs) pair."""
    seen: dict[tuple[str | None, str], int] = collections.Counter(
        (r.model, r.input_hash) for r in records if r.input_hash is not None and r.success
    )
    repeated = sum(n - 1 for n in seen.values() if n > 1)
    if repeated < min_repeats:
        return None
    repeat_records: list[ExecutionRecord] = []
    first: set[tuple[str | None, str]] = set()
    for r in records:
        if r.input_hash is None or not r.success:
            continue
        key = (r.model, r.input_hash)
        if key in first:
            repeat_records.append(r)
        else:
            first.add(key)
    tokens = sum(r.tokens for r in repeat_records)
    cost = sum(r.cost for r in repeat_records)
    return Suggestion(
        "enable_cache",
        f"{repeated} of {len(records)} executions repeated inputs already answered "
        f"({tokens} tokens, ${cost:.6f}); agent.enable_cache() would answer them without a request",
        {
            "executions": len(records),
            "distinct_inputs": len(seen),
            "repeated_executions": repeated,
            "repeated_tokens": tokens,
            "repeated_cost": cost,
        },
    )


def _cheaper_model_suggestions(
    records: list[ExecutionRecord], slow_ms: float, short_prompt_tokens: int
) -> list[Suggestion]:
    """``cheaper_model`` for each model (by name) that is slow on short prompts and has a cheaper sibling."""
    # Cache hits did not reach the model: their latency and tokens say nothing about it.
    by_model: dict[str, list[ExecutionRecord]] = {}
    for r in records:
        if r.success and r.model and r.cache != "hit":
            by_model.setdefault(r.model, []).append(r)
    out: list[Suggestion] = []
    for model, rs in sorted(by_model.items()):
        suggestion = _cheaper_model_suggestion(model, rs, slow_ms, short_prompt_tokens)
        if suggestion is not None:
            out.append(suggestion)
    return out


def _cheaper_model_suggestion(
    model: str, rs: list[ExecutionRecord], slow_ms: float, short_prompt_tokens: int
) -> Suggestion | None:
    """``cheaper_model`` for ``model`` from its executions ``rs``, or None when it does not apply."""
    cheaper = CHEAPER_MODEL.get(_family(model) or "")
    if cheaper is None:
        return None
    p50 = percentile((r.duration_ms for r in rs), 50)
    prompt_p50 = percentile((r.prompt_tokens for r in rs), 50)
    assert p50 is not None and prompt_p50 is not None
    if p50 < slow_ms or prompt_p50 > short_prompt_tokens:
        return None
    cost_now = sum(cost_of(model, r.prompt_tokens, r.completion_tokens)[0] for r in rs)
    cost_then = sum(cost_of(cheaper, r.prompt_tokens, r.completion_tokens)[0] for r in rs)
    return Suggestion(
        "cheaper_model",
        f"{model} took a median {p50:.0f} ms on short prompts (median {prompt_p50:.0f} prompt tokens) "
        f"over {len(rs)} executions; {cheaper} would have cost ${cost_then:.6f} instead of "
        f"${cost_now:.6f} for the same tokens",
        {
            "model": model,
            "suggested_model": cheaper,
            "executions": len(rs),
            "latency_p50_ms": p50,
            "prompt_tokens_p50": prompt_p50,
            "cost": cost_now,
            "cost_with_suggested_model": cost_then,
        },
    )


def _failures_suggestion(records: list[ExecutionRecord], max_failure_rate: float) -> Suggestion | None:
    """``failures`` when more than ``max_failure_rate`` of ``records`` failed, naming the most common error."""
    failures = [r for r in records if not r.success]
    if not (failures and len(failures) / len(records) > max_failure_rate):
        return None
    kinds = collections.Counter(r.error_type or "error" for r in failures)
    common, count = kinds.most_common(1)[0]
    return Suggestion(
        "failures",
        f"{len(failures)} of {len(records)} executions failed; most often {common} ({count}x): "
        f"{next(r.error for r in failures if (r.error_type or 'error') == common)}",
        {
            "executions": len(records),
            "failures": len(failures),
            "failure_rate": len(failures) / len(records),
            "error_types": dict(kinds),
        },
    )


def _model_selection_suggestions(records: list[ExecutionRecord], slow_average_ms: float) -> list[Suggestion]:
    """The ADR's ``model_selection``: each model whose mean latency exceeds ``slow_average_ms``.

    Only successful executions that reached the model count: a cache hit says nothing about
    its speed, and a failure may have stopped early or waited on retries.
    """
    by_model: dict[str, list[ExecutionRecord]] = {}
    for r in records:
        if r.success and r.model and r.cache != "hit":
            by_model.setdefault(r.model, []).append(r)
    out: list[Suggestion] = []
    for model, rs in sorted(by_model.items()):
        mean = sum(r.duration_ms for r in rs) / len(rs)
        if mean <= slow_average_ms:
            continue
        sibling = CHEAPER_MODEL.get(_family(model) or "")
        faster = sibling if sibling is not None and _family(sibling) is not None else None
        instead = (
            f"{faster} is its smaller, faster and cheaper sibling"
            if faster is not None
            else f"no smaller sibling of {model} is priced in dagwright.ops.pricing, so choose one"
        )
        out.append(
            Suggestion(
                "model_selection",
                f"Consider using a faster model for simple tasks: {model} averaged {mean:.0f} ms over "
                f"{len(rs)} executions (more than {slow_average_ms:g} ms); {instead}",
                {
                    "model": model,
                    "suggested_model": faster,
                    "executions": len(rs),
                    "latency_mean_ms": mean,
                    "threshold_ms": slow_average_ms,
                },
            )
        )
    return out


# Start times come from time.time() and durations from time.perf_counter(): allow this much disagreement (s)
# before calling two executions overlapping.
_CLOCK_SLACK_S = 0.001


def sequential_bursts(records: Iterable[ExecutionRecord], queue_gap_ms: float) -> list[list[ExecutionRecord]]:
    """Runs of executions that waited on each other: the evidence behind the ``concurrency`` suggestion.

    Each execution spans ``[started_at, started_at + duration_ms]``. One that overlaps another
    (by more than 1 ms of clock slack) ran concurrently and belongs to no burst. A burst is a
    maximal run of the other executions, in start order, each starting at most ``queue_gap_ms``
    after the previous one ended: the next request was ready as soon as the agent was free, which
    is how a queue drained one at a time looks (a caller pacing its requests leaves longer gaps).
    Bursts of one execution are left out; oldest first.
    """
    spans = sorted(records, key=lambda r: r.started_at)
    ends = [r.started_at + r.duration_ms / 1000.0 for r in spans]
    concurrent = [False] * len(spans)
    for i, end in enumerate(ends):
        # Sorted by start, the executions overlapping this one from later on are the ones right after it.
        k = i + 1
        while k < len(spans) and spans[k].started_at < end - _CLOCK_SLACK_S:
            concurrent[i] = concurrent[k] = True
            k += 1
    bursts: list[list[ExecutionRecord]] = []
    current: list[ExecutionRecord] = []
    previous_end: float | None = None
    for record, end, overlapped in zip(spans, ends, concurrent, strict=True):
        if overlapped:
            current, previous_end = _close_burst(bursts, current), None
            continue
        if previous_end is None or record.started_at - previous_end > queue_gap_ms / 1000.0:
            current = _close_burst(bursts, current)
        current.append(record)
        previous_end = end
    _close_burst(bursts, current)
    return bursts


def _close_burst(bursts: list[list[ExecutionRecord]], current: list[ExecutionRecord]) -> list[ExecutionRecord]:
    """Keep ``current`` in ``bursts`` when it has two executions or more; returns a new, empty burst."""
    if len(current) >= 2:
        bursts.append(current)
    return []


def _concurrency_suggestion(records: list[ExecutionRecord], limits: OptimizerThresholds) -> Suggestion | None:
    """``concurrency`` when at least ``min_queued`` executions ran one at a time, back to back.

    The largest such burst (the latest of equals) is the evidence: its busy time, its wall time,
    its longest execution and largest gap. Running ``n`` at once could at best finish it in
    ``max(longest, busy / n)``, if the executions are independent and the provider allows it.
    """
    bursts = [b for b in sequential_bursts(records, limits.queue_gap_ms) if len(b) >= limits.min_queued]
    if not bursts:
        return None
    burst = max(reversed(bursts), key=len)
    durations = [r.duration_ms for r in burst]
    busy, longest = sum(durations), max(durations)
    wall = (burst[-1].started_at - burst[0].started_at) * 1000.0 + burst[-1].duration_ms
    gaps = [
        max(0.0, (later.started_at - earlier.started_at) * 1000.0 - earlier.duration_ms)
        for earlier, later in itertools.pairwise(burst)
    ]
    n = min(len(burst), limits.max_concurrency)
    estimate = max(longest, busy / n)
    return Suggestion(
        "concurrency",
        f"{len(burst)} executions ran one at a time, each starting within {max(gaps):.0f} ms of the previous "
        f"one's end ({busy:.0f} ms of work in {wall:.0f} ms); if they are independent, running up to {n} at "
        f"once (e.g. asyncio.gather over agent.arun) could finish them in about {estimate:.0f} ms",
        {
            "executions": len(burst),
            "bursts": len(bursts),
            "busy_ms": busy,
            "wall_ms": wall,
            "longest_ms": longest,
            "max_gap_ms": max(gaps),
            "suggested_concurrency": n,
            "estimated_wall_ms": estimate,
        },
    )
