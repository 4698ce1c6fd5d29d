"""The Kaizen ADR's optimizer targets, auto-optimization and named access policies (``dagwright.ops``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from dagwright import BaseAgent
from dagwright.ops.audit import (
    ACCESS_POLICIES,
    AccessRequest,
    Approval,
    ApprovalPolicy,
    AuditLog,
    check_access,
    named_access_policy,
    resolve_access_policy,
)
from dagwright.ops.monitor import (
    OPTIMIZATION_TARGETS,
    ExecutionMonitor,
    ExecutionOptimizer,
    ExecutionRecord,
    OptimizerThresholds,
    sequential_bursts,
)

T0 = 1_700_000_000.0


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real agents here answer with the offline model, whatever the environment configures."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DAGWRIGHT_PROVIDER"):
        monkeypatch.delenv(name, raising=False)


def rec(ms: float, *, at: float = T0, model: str | None = "gpt-4o", **extra: Any) -> ExecutionRecord:
    return ExecutionRecord(
        name="qa", started_at=at, duration_ms=ms, success=extra.pop("success", True), model=model, **extra
    )


def paced(durations: list[float], *, gap_s: float = 5.0, **extra: Any) -> list[ExecutionRecord]:
    """Executions ``gap_s`` seconds apart: a caller pacing its requests, not a queue."""
    return [rec(ms, at=T0 + i * gap_s, **extra) for i, ms in enumerate(durations)]


def back_to_back(
    durations: list[float], *, gap_ms: float = 2.0, start: float = T0, **extra: Any
) -> list[ExecutionRecord]:
    """Executions each starting ``gap_ms`` after the previous one ended: a queue drained one at a time."""
    out: list[ExecutionRecord] = []
    at = start
    for ms in durations:
        out.append(rec(ms, at=at, **extra))
        at += (ms + gap_ms) / 1000.0
    return out


def optimizer_for(records: list[ExecutionRecord], **kwargs: Any) -> ExecutionOptimizer:
    monitor = ExecutionMonitor("qa")
    for r in records:
        monitor.record(r)
    return ExecutionOptimizer(monitor, **kwargs)


def kinds(optimizer: ExecutionOptimizer, **kwargs: Any) -> list[str]:
    return [s.kind for s in optimizer.suggestions(**kwargs)]


class RecordingActions:
    """An agent stand-in: records each call; ``cache_on`` feeds the optimizer's ``cache_enabled``."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.cache_on = False
        self.fail = fail

    def enable_cache(self) -> None:
        self.calls.append(("enable_cache", None))
        if self.fail == "enable_cache":
            raise RuntimeError("no cache backend")
        self.cache_on = True

    def switch_model(self, model: str) -> None:
        self.calls.append(("switch_model", model))

    def set_concurrency(self, n: int) -> None:
        self.calls.append(("set_concurrency", n))


# --------------------------------------------------------------------------- targets


def slow_repeated_history() -> list[ExecutionRecord]:
    """gpt-4o, slow (2500 ms) on short prompts, the same input three times, paced (no queue)."""
    return paced([2500, 2500, 2500], prompt_tokens=40, completion_tokens=10, input_hash="same")


def test_without_targets_the_suggestions_are_as_before() -> None:
    optimizer = optimizer_for(slow_repeated_history())
    assert optimizer.targets == ()
    # No model_selection although the mean is over 1000 ms: only targets turn the new suggestions on.
    assert kinds(optimizer) == ["enable_cache", "cheaper_model"]
    optimizer.set_optimization_targets(["latency"])
    optimizer.set_optimization_targets([])
    assert kinds(optimizer) == ["enable_cache", "cheaper_model"]


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["latency"], ["enable_cache", "cheaper_model", "model_selection"]),
        (["cost"], ["enable_cache", "cheaper_model", "model_selection"]),
        (["latency", "accuracy", "cost"], ["enable_cache", "cheaper_model", "model_selection"]),
        (["accuracy"], ["enable_cache"]),
        (["throughput"], ["enable_cache"]),
    ],
)
def test_targets_choose_the_suggestions(targets: list[str], expected: list[str]) -> None:
    optimizer = optimizer_for(slow_repeated_history())
    optimizer.set_optimization_targets(targets)
    assert optimizer.targets == tuple(targets)
    assert kinds(optimizer) == expected


def test_failures_are_suggested_whatever_the_targets() -> None:
    records = [*paced([10, 10]), rec(10, at=T0 + 20, success=False, error="boom", error_type="ValueError")]
    optimizer = optimizer_for(records)
    optimizer.set_optimization_targets(["accuracy"])
    assert kinds(optimizer) == ["failures"]


def test_unknown_or_malformed_targets_are_refused() -> None:
    optimizer = optimizer_for([])
    with pytest.raises(ValueError, match=r"^qa: unknown optimization target 'latncy'; did you mean 'latency'\? "):
        optimizer.set_optimization_targets(["cost", "latncy"])
    with pytest.raises(ValueError, match=r"known targets: latency, cost, accuracy, throughput\)$"):
        optimizer.set_optimization_targets(["speed"])
    with pytest.raises(TypeError, match=r"takes a list of targets, e\.g\. \['latency'\], got the string 'latency'"):
        optimizer.set_optimization_targets("latency")
    with pytest.raises(TypeError, match="an optimization target is a name, got int 3"):
        optimizer.set_optimization_targets([3])  # type: ignore[list-item]
    assert not optimizer.targets
    optimizer.set_optimization_targets(["cost", "latency", "cost"])
    assert optimizer.targets == ("cost", "latency")
    assert set(OPTIMIZATION_TARGETS) >= {"latency", "cost", "accuracy", "throughput"}


# --------------------------------------------------------------------------- the ADR's faster-model suggestion


def test_a_mean_over_1000_ms_suggests_a_faster_model() -> None:
    records = [
        *paced([1000.5, 1200, 800.5], prompt_tokens=2000),
        # Neither a cache hit nor a failure says how fast the model is.
        rec(1, at=T0 + 60, cache="hit"),
        rec(1, at=T0 + 70, success=False, error="x", error_type="E"),
    ]
    optimizer = optimizer_for(records)
    optimizer.set_optimization_targets(["latency"])
    [suggestion] = [s for s in optimizer.suggestions() if s.kind == "model_selection"]
    assert suggestion.message.startswith(
        "Consider using a faster model for simple tasks: gpt-4o averaged 1000 ms over 3 executions"
    )
    assert "gpt-4o-mini is its smaller, faster and cheaper sibling" in suggestion.message
    assert suggestion.evidence == {
        "model": "gpt-4o",
        "suggested_model": "gpt-4o-mini",
        "executions": 3,
        "latency_mean_ms": pytest.approx(1000.3333, abs=1e-3),
        "threshold_ms": 1000.0,
    }
    assert "model_selection" not in kinds(optimizer, slow_average_ms=1001)


def test_a_mean_of_1000_ms_or_less_suggests_nothing() -> None:
    optimizer = optimizer_for(paced([900, 1100], prompt_tokens=2000))
    optimizer.set_optimization_targets(["latency", "cost"])
    assert kinds(optimizer) == []
    assert kinds(optimizer, slow_average_ms=999.9) == ["model_selection"]
    assert kinds(optimizer_for([]), slow_average_ms=1) == []


def test_a_model_without_a_priced_sibling_is_still_named() -> None:
    optimizer = optimizer_for(paced([1500, 1500], model="local-llama"))
    optimizer.set_optimization_targets(["latency"])
    [suggestion] = optimizer.suggestions()
    assert suggestion.kind == "model_selection"
    assert suggestion.evidence["suggested_model"] is None
    assert "no smaller sibling of local-llama is priced" in suggestion.message


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="optimizer threshold slow_average_ms must be a number >= 0, got -1"):
        OptimizerThresholds(slow_average_ms=-1)
    with pytest.raises(ValueError, match="max_failure_rate is a share"):
        optimizer_for([rec(1)]).suggestions(max_failure_rate=2)
    optimizer = optimizer_for(paced([1500, 1500]), thresholds=OptimizerThresholds(slow_average_ms=2000))
    optimizer.set_optimization_targets(["latency"])
    assert kinds(optimizer) == []


# --------------------------------------------------------------------------- throughput


def test_executions_queued_one_at_a_time_suggest_concurrency() -> None:
    records = back_to_back([500, 500, 500, 500, 500], gap_ms=3.0)
    optimizer = optimizer_for(records)
    assert kinds(optimizer) == []
    optimizer.set_optimization_targets(["throughput"])
    [suggestion] = optimizer.suggestions()
    assert suggestion.kind == "concurrency"
    assert suggestion.evidence == {
        "executions": 5,
        "bursts": 1,
        "busy_ms": 2500.0,
        "wall_ms": pytest.approx(2512.0, abs=1e-3),
        "longest_ms": 500.0,
        "max_gap_ms": pytest.approx(3.0, abs=1e-3),
        "suggested_concurrency": 4,
        "estimated_wall_ms": 625.0,
    }
    assert suggestion.message.startswith("5 executions ran one at a time, each starting within 3 ms")
    assert kinds(optimizer, min_queued=6) == []
    assert optimizer.suggestions(max_concurrency=8)[0].evidence["suggested_concurrency"] == 5


def test_paced_or_concurrent_executions_do_not_suggest_concurrency() -> None:
    paced_records = paced([500] * 6, gap_s=2.0)
    # Two at a time: each pair overlaps, so nothing ran one at a time.
    pairs = [rec(500, at=T0 + i // 2 * 0.502 + (i % 2) * 0.01) for i in range(8)]
    for records in (paced_records, pairs):
        optimizer = optimizer_for(records)
        optimizer.set_optimization_targets(["throughput"])
        assert kinds(optimizer) == []
    assert sequential_bursts(pairs, 50) == []


def test_sequential_bursts_split_at_gaps_and_skip_overlaps() -> None:
    first = back_to_back([100, 100, 100])
    overlapping = [rec(100, at=T0 + 10), rec(100, at=T0 + 10.05)]
    second = back_to_back([100, 100], start=T0 + 20)
    bursts = sequential_bursts([*second, *overlapping, *first], 50)
    assert bursts == [first, second]
    # back_to_back leaves 2 ms between executions.
    assert sequential_bursts(first, 2.5) == [first]
    assert sequential_bursts(first, 1.5) == []


# --------------------------------------------------------------------------- auto-optimization


def busy_history() -> list[ExecutionRecord]:
    """Slow gpt-4o on short prompts, repeated inputs, drained back to back: every safe change applies."""
    return back_to_back([2500] * 4, prompt_tokens=40, completion_tokens=10, input_hash="same")


def test_auto_apply_applies_each_safe_change_once(caplog: pytest.LogCaptureFixture) -> None:
    actions = RecordingActions()
    optimizer = optimizer_for(busy_history(), cache_enabled=lambda: actions.cache_on)
    optimizer.set_optimization_targets(["latency", "accuracy", "cost", "throughput"])
    assert optimizer.auto_apply(actions) == [] and actions.calls == []  # off until enabled
    optimizer.enable_auto_optimization()
    assert optimizer.auto_optimization
    with caplog.at_level(logging.INFO, logger="dagwright"):
        applied = optimizer.auto_apply(actions)
    assert actions.calls == [("enable_cache", None), ("switch_model", "gpt-4o-mini"), ("set_concurrency", 4)]
    assert [(a.action, a.value) for a in applied] == [c for c in actions.calls]
    # cheaper_model and model_selection both name gpt-4o: one switch.
    assert [a.suggestion.kind for a in applied] == ["enable_cache", "cheaper_model", "concurrency"]
    assert applied[0].suggestion.evidence["repeated_executions"] == 3
    assert optimizer.applied == applied
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert messages == [f"dagwright optimizer: qa: {a}" for a in applied]
    assert messages[1].startswith("dagwright optimizer: qa: switched the model to gpt-4o-mini: gpt-4o took")
    # Later executions leave the same evidence in the history: nothing is applied twice.
    optimizer.monitor.record(rec(2500, at=T0 + 100, input_hash="same"))
    assert optimizer.auto_apply(actions) == []
    assert len(actions.calls) == 3 and optimizer.applied == applied


def test_no_model_switch_for_accuracy_only_or_without_targets() -> None:
    for targets in (["accuracy"], []):
        actions = RecordingActions()
        optimizer = optimizer_for(busy_history(), cache_enabled=lambda a=actions: a.cache_on)
        optimizer.set_optimization_targets(targets)
        optimizer.enable_auto_optimization()
        assert [a.action for a in optimizer.auto_apply(actions)] == ["enable_cache"]
        assert actions.calls == [("enable_cache", None)]


def test_a_switch_is_only_away_from_the_model_in_use() -> None:
    # gpt-4.1 was slow, but the agent has moved on to gpt-4o-mini since: nothing to switch.
    records = [*paced([3000, 3000], model="gpt-4.1"), rec(3000, at=T0 + 60, model="gpt-4o-mini")]
    actions = RecordingActions()
    optimizer = optimizer_for(records)
    optimizer.set_optimization_targets(["latency"])
    optimizer.enable_auto_optimization()
    assert "model_selection" in kinds(optimizer)
    assert optimizer.auto_apply(actions) == [] and actions.calls == []


def test_a_failing_action_is_logged_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    actions = RecordingActions(fail="enable_cache")
    optimizer = optimizer_for(busy_history(), cache_enabled=lambda: actions.cache_on)
    optimizer.enable_auto_optimization()
    with caplog.at_level(logging.ERROR, logger="dagwright"):
        assert optimizer.auto_apply(actions) == []
        assert optimizer.auto_apply(actions) == []
    assert actions.calls == [("enable_cache", None)]
    assert optimizer.applied == []
    [logged] = caplog.records
    assert logged.getMessage() == "dagwright optimizer: qa: enable_cache(None) raised; not retried"
    optimizer.enable_auto_optimization(False)
    assert not optimizer.auto_optimization


def test_auto_optimization_on_a_real_agent_turns_its_cache_on() -> None:
    agent = BaseAgent(signature="question -> answer", name="qa")

    class AgentActions:
        def enable_cache(self) -> None:
            agent.enable_cache()

        def switch_model(self, model: str) -> None:
            raise AssertionError("not expected")

        def set_concurrency(self, n: int) -> None:
            raise AssertionError("not expected")

    # How the agent will make its one optimizer.
    optimizer = ExecutionOptimizer(agent.get_execution_monitor(), cache_enabled=lambda: agent.cache is not None)
    optimizer.set_optimization_targets(["latency", "accuracy", "cost"])
    optimizer.enable_auto_optimization()
    applied = []
    for question in ("What is ML?", "What is ML?", "What is ML?", "What is ML?"):
        agent.run(question=question)
        applied.extend(optimizer.auto_apply(AgentActions()))
    assert [a.action for a in applied] == ["enable_cache"]
    assert [r.cache for r in agent.get_execution_monitor().history] == [None, None, None, "miss"]
    agent.run(question="What is ML?")
    assert agent.get_execution_monitor().history[-1].cache == "hit"


# --------------------------------------------------------------------------- named access policies


def request(user: str | None = None) -> AccessRequest:
    return AccessRequest("qa", "gpt-4o-mini", {"question": "q"}, None, user)


def test_named_policies() -> None:
    policy = named_access_policy("team_lead_approval_required")
    assert isinstance(policy, ApprovalPolicy)
    assert named_access_policy("team_lead_approval_required") is not policy  # approvals are per policy
    with pytest.raises(
        ValueError,
        match=r"^qa: unknown access policy 'team_lead_approval'; did you mean 'team_lead_approval_required'\? "
        r"\(known policies: team_lead_approval_required\)$",
    ):
        named_access_policy("team_lead_approval", where="qa")
    assert "team_lead_approval_required" in ACCESS_POLICIES


def test_resolve_access_policy_keeps_callables() -> None:
    def only_alice(req: AccessRequest) -> bool:
        return req.user == "alice"

    assert resolve_access_policy(only_alice) is only_alice
    assert resolve_access_policy(None) is None
    assert isinstance(resolve_access_policy("team_lead_approval_required"), ApprovalPolicy)
    with pytest.raises(TypeError, match=r"^qa: an access policy must be callable or the name of one .*got int$"):
        resolve_access_policy(3, where="qa")  # type: ignore[arg-type]


def test_approval_policy_denies_until_approved() -> None:
    policy = ApprovalPolicy()
    reason = check_access(policy, request("alice"))
    assert reason is not None
    assert reason == (
        "team lead approval required (team_lead_approval_required) on agent 'qa': no team lead has approved "
        "user 'alice'; a team lead approves with policy.approve('<team lead>', user='alice') or, for every user, "
        "policy.approve('<team lead>')"
    )
    approval = policy.approve("dana", note="sprint 12")
    assert (approval.kind, approval.by, approval.user, approval.note) == ("approved", "dana", None, "sprint 12")
    assert check_access(policy, request("alice")) is None
    assert check_access(policy, request(None)) is None
    revoked = policy.revoke("dana")
    assert revoked is not None and (revoked.kind, revoked.by, revoked.user) == ("revoked", "dana", None)
    assert check_access(policy, request("alice")) is not None


def test_per_user_approval_and_revocation() -> None:
    policy = ApprovalPolicy()
    policy.approve("dana", user="alice")
    assert check_access(policy, request("alice")) is None
    assert "user 'bob'" in (check_access(policy, request("bob")) or "")
    assert (check_access(policy, request(None)) or "").endswith(
        "no team lead has approved every user; a team lead approves with policy.approve('<team lead>')"
    )
    assert policy.is_approved("alice") and not policy.is_approved("bob")
    assert set(policy.approvals) == {"alice"}
    assert policy.revoke("dana", user="bob") is None  # nothing to take back
    revoked = policy.revoke("erin", user="alice", note="left the team")
    assert revoked is not None and (revoked.kind, revoked.by, revoked.user) == ("revoked", "erin", "alice")
    assert check_access(policy, request("alice")) is not None
    with pytest.raises(ValueError, match=r"team_lead_approval_required\.approve: the team lead is a non-empty name"):
        policy.approve("  ")


def test_an_approval_that_cannot_be_recorded_is_not_given() -> None:
    policy = ApprovalPolicy()

    def broken(approval: Approval) -> None:
        raise OSError("disk full")

    unsubscribe = policy.subscribe(broken)
    with pytest.raises(OSError, match="disk full"):
        policy.approve("dana")
    assert not policy.is_approved()
    unsubscribe()
    policy.approve("dana")
    assert policy.is_approved()


def test_the_audit_log_shows_denial_approval_and_execution(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    agent = BaseAgent(signature="question -> answer", name="qa")
    log = agent.enable_audit_logging(path, user="alice")
    policy = named_access_policy("team_lead_approval_required")
    assert isinstance(policy, ApprovalPolicy)
    assert agent.set_access_policy(policy) is policy  # the agent writes its approvals to its audit log
    with pytest.raises(PermissionError, match=r"^qa: access denied: team lead approval required "):
        agent.run(question="let me in")
    policy.approve("dana", user="alice", note="ticket 42")
    assert agent.run(question="let me in")["answer"]
    policy.revoke("dana", user="alice")
    denied, approved, executed, revoked = (json.loads(line) for line in path.read_text().splitlines())
    assert denied["event"] == "denied" and denied["user"] == "alice" and denied["error_type"] == "PermissionError"
    assert "team lead approval required" in denied["error"]
    assert approved["time"].endswith("Z")
    assert {k: v for k, v in approved.items() if k != "time"} == {
        "event": "approved",
        "agent": "qa",
        "policy": "team_lead_approval_required",
        "approver": "dana",
        "user": "alice",
        "note": "ticket 42",
    }
    assert executed["event"] == "execution" and executed["success"] is True and executed["user"] == "alice"
    assert (revoked["event"], revoked["approver"], revoked["user"]) == ("revoked", "dana", "alice")
    assert log.entries()[1] == approved


def test_write_approval_for_every_user(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    entry = log.write_approval(Approval("approved", "dana", None, T0, "all hands"))
    assert entry == {
        "time": "2023-11-14T22:13:20.000Z",
        "event": "approved",
        "agent": None,
        "policy": "team_lead_approval_required",
        "approver": "dana",
        "user": None,
        "note": "all hands",
    }
    assert log.entries() == [entry]
