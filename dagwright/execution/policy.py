"""Execution policies: how often a node is retried, how long it may take, what a failure does to the run.

Small documented value types, given per node (``Flow.configure``) or per run.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MAX_RUN_ID_LENGTH",
    "FailureMode",
    "NodePolicy",
    "RetryPolicy",
    "RunOptions",
    "check_run_id",
    "child_run_id",
]

FailureMode = Literal["fail_fast", "continue"]
"""``fail_fast``: the first failed node cancels everything still running (in-flight LLM calls
included). ``continue``: only the failed node's descendants are skipped; other branches finish."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a failed node.

    ``max_attempts`` counts the first try (1 = no retry). The wait before attempt
    ``n + 1`` is ``min(max_delay, initial_delay * backoff ** (n - 1))``, spread by
    ``± jitter`` (a fraction) so that many failing nodes do not retry in lockstep.
    Only exceptions that are instances of ``retry_on`` are retried; a timeout
    (``TimeoutError``) is retried when it is listed there.
    """

    max_attempts: int = 1
    initial_delay: float = 0.5
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")
        if self.backoff < 1:
            raise ValueError(f"RetryPolicy.backoff must be at least 1, got {self.backoff}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter is a fraction between 0 and 1, got {self.jitter}")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Retry after ``attempt`` (1-based) failed with ``error``?"""
        return attempt < self.max_attempts and isinstance(error, self.retry_on)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.backoff ** (attempt - 1))
        if not self.jitter or not base:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """Everything the scheduler applies to one node: retries, a per-attempt timeout (seconds), and an
    optional result cache (a :class:`~dagwright.ops.cache.ResultCache`) answering repeated inputs."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    cache: Any = None

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"a timeout must be positive, got {self.timeout}")


MAX_RUN_ID_LENGTH = 128
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_RUN_ID_RULE = f"a run id is 1 to {MAX_RUN_ID_LENGTH} ASCII letters, digits, _, - and ., the first a letter, digit or _"


def check_run_id(run_id: object) -> None:
    """Refuse a run id outside the rule (``_RUN_ID_RULE``), quoting at most its first 24 characters;
    None (a fresh id) passes. Every back end checks a given id with this."""
    if run_id is None:
        return
    if not isinstance(run_id, str):
        raise TypeError(f"run_id must be a string (or None for a fresh id), got {type(run_id).__name__}")
    if len(run_id) <= MAX_RUN_ID_LENGTH and _RUN_ID.fullmatch(run_id) is not None:
        return
    shown = repr(run_id)
    if len(run_id) > 24:
        head = repr(run_id[:24])
        shown = f"{head[:-1]}…{head[-1]} ({len(run_id)} characters)"
    raise ValueError(f"run_id {shown} is not a valid run id: {_RUN_ID_RULE}")


def child_run_id(parent: str, index: int) -> str:
    """The run id of item ``index`` of a ``map`` node in run ``parent``: ``parent.index``, within the
    length limit (a long parent keeps its head and a digest of the rest, so ids stay distinct)."""
    suffix = f".{index}"
    if len(parent) + len(suffix) <= MAX_RUN_ID_LENGTH:
        return parent + suffix
    digest = hashlib.sha256(parent.encode()).hexdigest()[:16]
    head = parent[: MAX_RUN_ID_LENGTH - len(suffix) - len(digest) - 1]
    return f"{head}-{digest}{suffix}"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Per-run settings: ``max_concurrency`` (None: unlimited), the failure mode, the run id.

    ``checkpoint`` (a :class:`~dagwright.ops.checkpoint.CheckpointStore`) stores each
    finished node's outputs; with ``resume`` the run continues the stored run ``run_id``:
    nodes with stored outputs are marked ``cached`` and not run again.

    ``run_id`` (None: a fresh id per run) is 1 to 128 ASCII letters, digits, ``_``, ``-`` and ``.``,
    the first a letter, digit or ``_``; any other id is refused with a ``ValueError`` saying so.
    """

    max_concurrency: int | None = None
    failure_mode: FailureMode = "fail_fast"
    run_id: str | None = None
    checkpoint: Any = None  # a dagwright.ops.checkpoint.CheckpointStore
    resume: bool = False

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.failure_mode not in ("fail_fast", "continue"):
            raise ValueError(f"failure_mode must be 'fail_fast' or 'continue', got {self.failure_mode!r}")
        check_run_id(self.run_id)
        if self.resume and (self.checkpoint is None or self.run_id is None):
            raise ValueError("resume needs a checkpoint and the run_id of the run to resume")
