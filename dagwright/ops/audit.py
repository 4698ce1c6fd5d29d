"""Audit logging and access control for agent executions.

``agent.enable_audit_logging(path="audit.jsonl", policy="hash")`` appends one JSON line per
execution (and per denied request): who (agent, user, session), what (inputs and outputs under
the policy), when (UTC, ISO 8601), model, tokens, cost, and success or the error. The file is
only ever appended to. Policies:

* ``hash``: each value becomes ``"sha256:<hex>"`` of its canonical JSON, so equal inputs can be
  matched across entries without the log holding them;
* ``redact``: field names are kept, every value is ``"<redacted>"``;
* ``full``: values as given.

Under every policy, a field whose name says it holds a secret (``api_key``, ``*_token``, ...;
see :func:`dagwright.compiler.redact.is_secret_key`) is ``"<redacted>"``, and the agent's
configured API key is blanked out of any text that contains it: an API key never reaches the log.

``agent.set_access_policy(check)`` runs ``check(request)`` (an :class:`AccessRequest`) before each
execution: ``True``/``None`` allows it, ``False`` or a string (the reason) denies it with a
``PermissionError`` naming the agent and the reason; the check may also raise PermissionError itself.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dagwright.compiler.redact import REDACTED, is_secret_key
from dagwright.ops.monitor import ExecutionRecord

__all__ = ["AccessPolicy", "AccessRequest", "AuditLog", "AuditPolicy", "check_access"]

AuditPolicy = Literal["hash", "redact", "full"]
_POLICIES = ("hash", "redact", "full")


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What an access policy decides on: which agent, which model, whose request, with which inputs."""

    agent: str
    model: str
    inputs: Mapping[str, Any]
    session_id: str | None = None
    user: str | None = None


AccessPolicy = Callable[[AccessRequest], "bool | str | None"]


def check_access(policy: AccessPolicy, request: AccessRequest) -> str | None:
    """None when ``policy`` allows ``request``, else the reason it was denied."""
    try:
        verdict = policy(request)
    except PermissionError as exc:
        return str(exc) or "denied by the access policy"
    if verdict is None or verdict is True:
        return None
    if verdict is False:
        name = getattr(policy, "__name__", type(policy).__name__)
        return f"denied by the access policy {name}"
    if isinstance(verdict, str):
        return verdict or "denied by the access policy"
    raise TypeError(
        f"an access policy returns True/None (allow), False or a reason string (deny); got {type(verdict).__name__}"
    )


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with secret-named keys redacted and every known secret string blanked out."""
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_key(str(k)) else _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _scrub(str(value), secrets)


class AuditLog:
    """An append-only JSONL audit log (one line per entry, written and flushed under a lock)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        policy: AuditPolicy = "hash",
        *,
        user: str | Callable[[], str | None] | None = None,
    ) -> None:
        if policy not in _POLICIES:
            raise ValueError(f"unknown audit policy {policy!r}; choose 'hash', 'redact' or 'full'")
        self.path = Path(path)
        self.policy: AuditPolicy = policy
        self._user = user
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Opened once to fail now, not at the first execution, when the path is not writable.
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot write the audit log {str(self.path)!r}: {exc.strerror or exc}") from None

    def user(self) -> str | None:
        """The user recorded in entries (``user=`` given as a string or a callable)."""
        return self._user() if callable(self._user) else self._user

    def protect(self, values: Mapping[str, Any] | None, secrets: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """``values`` as the policy writes them."""
        if values is None:
            return None
        out: dict[str, Any] = {}
        for name, value in values.items():
            if is_secret_key(name):
                out[name] = REDACTED
            elif self.policy == "hash":
                out[name] = _digest(value)
            elif self.policy == "redact":
                out[name] = REDACTED
            else:
                out[name] = _scrub(value, secrets)
        return out

    def write(
        self,
        *,
        agent: str,
        record: ExecutionRecord,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any] | None,
        secrets: tuple[str, ...] = (),
        event: str = "execution",
    ) -> dict[str, Any]:
        """Append one entry and return it."""
        when = datetime.datetime.fromtimestamp(record.started_at, tz=datetime.timezone.utc)
        entry = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "agent": agent,
            "user": self.user(),
            "session_id": record.session_id,
            "model": record.model,
            "policy": self.policy,
            "inputs": self.protect(inputs, secrets),
            "outputs": self.protect(outputs, secrets),
            "success": record.success,
            "error": _scrub(record.error, secrets) if record.error is not None else None,
            "error_type": record.error_type,
            "duration_ms": round(record.duration_ms, 3),
            "tokens": {
                "prompt": record.prompt_tokens,
                "completion": record.completion_tokens,
                "total": record.tokens,
            },
            "cost": record.cost,
            "cost_known": record.cost_known,
            "cache": record.cache,
        }
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every entry written so far, oldest first."""
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
