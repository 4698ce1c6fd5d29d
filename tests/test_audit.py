"""Audit logging and access control of agents, against the loopback LLM server."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from dagwright import BaseAgent
from dagwright.execution.errors import LLMRequestError
from dagwright.ops.audit import AccessRequest, AuditLog
from dagwright.testing import Fault, OpenAITestServer

API_KEY = "sk-live-abcdef0123456789"


def make_agent(server: OpenAITestServer, signature: str = "question: str -> answer: str") -> BaseAgent:
    config = {
        "provider": "openai",
        "base_url": server.base_url,
        "api_key": API_KEY,
        "model": "gpt-4o-mini",
        "max_retries": 0,
    }
    return BaseAgent(config=config, signature=signature, name="qa")


def sha(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hash_policy_entry(server: OpenAITestServer, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    agent = make_agent(server)
    log = agent.enable_audit_logging(path, user="alice")
    before = datetime.datetime.now(datetime.timezone.utc)
    out = agent.run(question="What is ML?")
    [entry] = lines(path)
    assert entry["time"].endswith("Z")
    when = datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert abs((when - before).total_seconds()) < 5
    assert {k: v for k, v in entry.items() if k not in ("time", "duration_ms")} == {
        "event": "execution",
        "agent": "qa",
        "user": "alice",
        "session_id": None,
        "model": "gpt-4o-mini",
        "policy": "hash",
        "inputs": {"question": sha("What is ML?")},
        "outputs": {"answer": sha(out["answer"])},
        "success": True,
        "error": None,
        "error_type": None,
        "tokens": out["_tokens"],
        "cost": out["_cost"],
        "cost_known": True,
        "cache": None,
    }
    assert 0 < entry["duration_ms"] <= out["_timing"]
    assert log.entries() == [entry]


def test_redact_and_full_policies(server: OpenAITestServer, tmp_path: Path) -> None:
    agent = make_agent(server)
    agent.enable_audit_logging(tmp_path / "redact.jsonl", policy="redact")
    agent.run(question="private")
    [redacted] = lines(tmp_path / "redact.jsonl")
    assert redacted["inputs"] == {"question": "<redacted>"}
    assert redacted["outputs"] == {"answer": "<redacted>"}
    agent.enable_audit_logging(tmp_path / "full.jsonl", policy="full")
    out = agent.run(question="public")
    [full] = lines(tmp_path / "full.jsonl")
    assert full["inputs"] == {"question": "public"}
    assert full["outputs"] == {"answer": out["answer"]}


@pytest.mark.parametrize("policy", ["hash", "redact", "full"])
def test_an_api_key_never_reaches_the_log(server: OpenAITestServer, tmp_path: Path, policy: str) -> None:
    path = tmp_path / "audit.jsonl"
    agent = make_agent(server, "question: str, service_token: str, extra: dict[str, str] -> answer: str")
    agent.enable_audit_logging(path, policy=policy)  # type: ignore[arg-type]
    agent.run(
        question=f"my key is {API_KEY}, keep it safe",
        service_token="tok-999",
        extra={"api_key": "nested-secret", "note": f"again {API_KEY}"},
    )
    server.enqueue(Fault(status=400, body=json.dumps({"error": {"message": f"bad key {API_KEY}"}})))
    with pytest.raises(LLMRequestError):
        agent.run(question="q", service_token="tok-999", extra={})
    text = path.read_text()
    for secret in (API_KEY, "tok-999", "nested-secret"):
        assert secret not in text
    first, failed = lines(path)
    assert first["inputs"]["service_token"] == "<redacted>"
    assert failed["success"] is False and failed["error_type"] == "LLMRequestError"
    if policy == "full":
        assert first["inputs"]["question"] == "my key is <redacted>, keep it safe"
        assert first["inputs"]["extra"] == {"api_key": "<redacted>", "note": "again <redacted>"}
        assert "bad key <redacted>" in failed["error"]


def test_the_log_is_appended_to(server: OpenAITestServer, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    agent = make_agent(server)
    agent.enable_audit_logging(path)
    agent.run(question="one")
    agent.enable_audit_logging(path)
    agent.run(question="two")
    assert [e["inputs"]["question"] for e in lines(path)] == [sha("one"), sha("two")]
    agent.disable_audit_logging()
    agent.run(question="three")
    assert len(lines(path)) == 2


def test_cache_hits_are_audited(server: OpenAITestServer, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    agent = make_agent(server)
    agent.enable_cache()
    agent.enable_audit_logging(path, user=lambda: "from-callable")
    agent.run(question="same")
    agent.run(question="same")
    miss, hit = lines(path)
    assert (miss["cache"], hit["cache"]) == ("miss", "hit")
    assert hit["tokens"]["total"] == 0 and hit["outputs"] == miss["outputs"]
    assert hit["user"] == "from-callable"


def test_audit_settings_are_checked(tmp_path: Path) -> None:
    agent = BaseAgent(signature="q -> a")
    with pytest.raises(ValueError, match="unknown audit policy 'encrypt'; choose 'hash', 'redact' or 'full'"):
        agent.enable_audit_logging(tmp_path / "a.jsonl", policy="encrypt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot write the audit log"):
        AuditLog(tmp_path)  # a directory


# --------------------------------------------------------------------------- access control


def test_a_denial_raises_before_any_request(server: OpenAITestServer, tmp_path: Path) -> None:
    agent = make_agent(server)
    agent.enable_audit_logging(tmp_path / "audit.jsonl", user="mallory")
    seen: list[AccessRequest] = []

    def only_alice(request: AccessRequest) -> bool | str:
        seen.append(request)
        return request.user == "alice" or f"user {request.user!r} may not use {request.agent}"

    agent.set_access_policy(only_alice)
    with pytest.raises(PermissionError, match=r"^qa: access denied: user 'mallory' may not use qa$"):
        agent.run(question="let me in", session_id="s9")
    assert server.request_count == 0
    [request] = seen
    assert (request.agent, request.model, dict(request.inputs), request.session_id) == (
        "qa",
        "gpt-4o-mini",
        {"question": "let me in"},
        "s9",
    )
    [entry] = lines(tmp_path / "audit.jsonl")
    assert entry["event"] == "denied" and entry["success"] is False
    assert entry["error_type"] == "PermissionError"
    assert entry["tokens"]["total"] == 0
    result = agent.execute(question="again")
    assert not result.success and result.error_type == "PermissionError"
    agent.enable_audit_logging(tmp_path / "audit.jsonl", user="alice")
    assert agent.run(question="let me in")["answer"]
    assert server.request_count == 1


def test_policy_verdicts(server: OpenAITestServer) -> None:
    agent = make_agent(server)

    def deny_all(request: AccessRequest) -> bool:
        return False

    agent.set_access_policy(deny_all)
    with pytest.raises(PermissionError, match=r"^qa: access denied: denied by the access policy deny_all$"):
        agent.run(question="q")

    def raises(request: AccessRequest) -> None:
        raise PermissionError("quota exhausted")

    agent.set_access_policy(raises)
    with pytest.raises(PermissionError, match=r"^qa: access denied: quota exhausted$"):
        agent.run(question="q")
    agent.set_access_policy(lambda request: None)
    assert agent.run(question="q")["answer"]
    agent.set_access_policy(lambda request: 1)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="an access policy returns True/None"):
        agent.run(question="q")
    with pytest.raises(ValueError, match=r"qa: unknown access policy 'admin' \(known policies: "):
        agent.set_access_policy("admin")
    with pytest.raises(TypeError, match="qa: "):
        agent.set_access_policy(42)  # type: ignore[arg-type]
    agent.set_access_policy(None)
    assert agent.run(question="q")["answer"]
    assert server.request_count == 2
