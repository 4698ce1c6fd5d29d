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

Policies also have names (:func:`named_access_policy`, :func:`resolve_access_policy`):
``"team_lead_approval_required"`` is an :class:`ApprovalPolicy` that denies every request until
a team lead approves (``policy.approve("dana")`` for every user, ``user="alice"`` for one);
approvals and revocations reach listeners (``policy.subscribe``), which write them to the log
with :meth:`AuditLog.write_approval` as ``"approved"`` / ``"revoked"`` lines.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from dagwright.compiler.redact import REDACTED, is_secret_key
from dagwright.compiler.suggest import suggest
from dagwright.ops.monitor import ExecutionRecord

__all__ = [
    "ACCESS_POLICIES",
    "AccessPolicy",
    "AccessRequest",
    "Approval",
    "ApprovalPolicy",
    "AuditLog",
    "AuditPolicy",
    "check_access",
    "named_access_policy",
    "register_access_policy",
    "resolve_access_policy",
]

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


@dataclass(frozen=True, slots=True)
class Approval:
    """An approval given (``kind="approved"``) or taken back (``"revoked"``) on an :class:`ApprovalPolicy`.

    ``by`` approved or revoked it, for ``user`` (None: every user), at ``time`` (seconds since
    the epoch), with an optional ``note``; ``policy`` is the policy's name.
    """

    kind: Literal["approved", "revoked"]
    by: str
    user: str | None
    time: float
    note: str = ""
    policy: str = "team_lead_approval_required"


ApprovalListener = Callable[[Approval], None]


class ApprovalPolicy:
    """An access policy that denies every request until an approver (a team lead, by default) approves.

    ``approve(approver)`` lets every user in, ``approve(approver, user="alice")`` one user
    (``request.user``, which the agent takes from its audit log's ``user=``). ``revoke`` takes
    an approval back. Each approval and revocation goes to the listeners (``subscribe``),
    before it takes effect: a listener that raises (say, an audit log that cannot be written)
    stops it, so nothing is approved without its record.
    """

    def __init__(self, name: str = "team_lead_approval_required", *, approver_role: str = "team lead") -> None:
        self.name = name
        self.approver_role = approver_role
        self._lock = threading.Lock()
        # None is the approval for every user; a name is the approval for that user.
        self._granted: dict[str | None, Approval] = {}
        self._listeners: list[ApprovalListener] = []

    def __call__(self, request: AccessRequest) -> str | None:
        """None (allow) when every user or ``request.user`` is approved, else the reason and how to approve."""
        with self._lock:
            if None in self._granted or (request.user is not None and request.user in self._granted):
                return None
        role, lead = self.approver_role, f"'<{self.approver_role}>'"
        head = f"{role} approval required ({self.name}) on agent {request.agent!r}"
        if request.user is None:
            # Without a user (the agent takes it from its audit log's user=), only an approval for everyone helps.
            return f"{head}: no {role} has approved every user; a {role} approves with policy.approve({lead})"
        return (
            f"{head}: no {role} has approved user {request.user!r}; a {role} approves with "
            f"policy.approve({lead}, user={request.user!r}) or, for every user, policy.approve({lead})"
        )

    @property
    def approvals(self) -> dict[str | None, Approval]:
        """The approvals in force, by user (None: every user)."""
        with self._lock:
            return dict(self._granted)

    def is_approved(self, user: str | None = None) -> bool:
        """Whether ``user`` (None: a request without a user) would be allowed now."""
        with self._lock:
            return None in self._granted or (user is not None and user in self._granted)

    def approve(self, approver: str, *, user: str | None = None, note: str = "") -> Approval:
        """``approver`` allows ``user`` (None: every user); returns the approval, as the listeners got it."""
        approval = Approval(
            "approved",
            self._name_of(approver, "approve"),
            self._user_of(user, "approve"),
            time.time(),
            self._note_of(note, "approve"),
            self.name,
        )
        self._notify(approval)
        with self._lock:
            self._granted[approval.user] = approval
        return approval

    def revoke(self, revoker: str, *, user: str | None = None, note: str = "") -> Approval | None:
        """Take back the approval for ``user`` (None: the one for every user); None when there was none.

        Revoking one user's approval leaves an approval for every user in force, and the other way round.
        """
        user = self._user_of(user, "revoke")
        revocation = Approval(
            "revoked", self._name_of(revoker, "revoke"), user, time.time(), self._note_of(note, "revoke"), self.name
        )
        with self._lock:
            if user not in self._granted:
                return None
        self._notify(revocation)
        with self._lock:
            self._granted.pop(user, None)
        return revocation

    def subscribe(self, listener: ApprovalListener) -> Callable[[], None]:
        """Call ``listener(approval)`` for each approval and revocation; returns its unsubscribe function."""
        if not callable(listener):
            raise TypeError(f"{self.name}: an approval listener must be callable, got {type(listener).__name__}")
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, approval: Approval) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(approval)

    def _name_of(self, who: object, method: str) -> str:
        if not isinstance(who, str) or not who.strip():
            raise ValueError(f"{self.name}.{method}: the {self.approver_role} is a non-empty name, got {who!r}")
        return who

    def _user_of(self, user: object, method: str) -> str | None:
        if user is not None and (not isinstance(user, str) or not user):
            raise ValueError(f"{self.name}.{method}: user is a non-empty name or None (every user), got {user!r}")
        return user

    def _note_of(self, note: object, method: str) -> str:
        if not isinstance(note, str):
            raise TypeError(f"{self.name}.{method}: note is text, got {type(note).__name__}")
        return note

    def __repr__(self) -> str:
        return f"ApprovalPolicy({self.name!r}, approved={sorted(self.approvals, key=str)!r})"


ACCESS_POLICIES: dict[str, Callable[[], AccessPolicy]] = {
    "team_lead_approval_required": ApprovalPolicy,
}
"""Named access policies: name -> a factory making a fresh policy (its approvals are its own)."""


def register_access_policy(name: str, factory: Callable[[], AccessPolicy]) -> None:
    """Make ``named_access_policy(name)`` (and ``agent.set_access_policy(name)``) build ``factory()``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an access policy name is a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"access policy {name!r}: the factory must be callable, got {type(factory).__name__}")
    ACCESS_POLICIES[name] = factory


def named_access_policy(name: str, *, where: str | None = None) -> AccessPolicy:
    """A new policy of the registered ``name``; ValueError (prefixed with ``where``) for an unknown one."""
    factory = ACCESS_POLICIES.get(name)
    if factory is None:
        close = suggest(name, ACCESS_POLICIES)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        prefix = f"{where}: " if where else ""
        raise ValueError(
            f"{prefix}unknown access policy {name!r}{hint} (known policies: {', '.join(sorted(ACCESS_POLICIES))})"
        )
    return factory()


def resolve_access_policy(policy: AccessPolicy | str | None, *, where: str | None = None) -> AccessPolicy | None:
    """What ``agent.set_access_policy`` installs: a name becomes its policy, a callable stays as it is."""
    if policy is None or isinstance(policy, str):
        return None if policy is None else named_access_policy(policy, where=where)
    if not callable(policy):
        prefix = f"{where}: " if where else ""
        raise TypeError(
            f"{prefix}an access policy must be callable or the name of one "
            f"({', '.join(sorted(ACCESS_POLICIES))}), got {type(policy).__name__}"
        )
    return policy


def _utc(timestamp: float) -> str:
    """``timestamp`` (seconds since the epoch) as UTC ISO 8601 to the millisecond, ``Z``-suffixed."""
    when = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _open_log(path: Path) -> TextIO:
    """``path`` opened for appending, created readable by its owner only (0600) when it is new.

    Every open goes through here, not only the first: a log deleted or rotated away while the
    process runs is created again, and must be private as well (it names users, models, errors).
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


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
            with _open_log(self.path):
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
        entry = {
            "time": _utc(record.started_at),
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
        return self._append(entry)

    def write_approval(
        self, approval: Approval, *, agent: str | None = None, secrets: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Append an ``"approved"`` or ``"revoked"`` entry and return it.

        ``approver`` gave or took back the approval, for ``user`` (null: every user), at ``time``,
        with ``note``, on ``policy`` (its name) of ``agent``.
        """
        entry = {
            "time": _utc(approval.time),
            "event": approval.kind,
            "agent": agent,
            "policy": approval.policy,
            "approver": approval.by,
            "user": approval.user,
            "note": _scrub(approval.note, secrets),
        }
        return self._append(entry)

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock, _open_log(self.path) as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every entry written so far, oldest first."""
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
