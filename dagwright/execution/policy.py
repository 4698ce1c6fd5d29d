"""Execution policies: how often a node is retried, how long it may take, what a failure does to the run.

Small documented value types, given per node (``Flow.configure``) or per run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FailureMode", "NodePolicy", "RetryPolicy", "RunOptions"]

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


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Per-run settings: ``max_concurrency`` (None: unlimited), the failure mode, the run id.

    ``checkpoint`` (a :class:`~dagwright.ops.checkpoint.CheckpointStore`) stores each
    finished node's outputs; with ``resume`` the run continues the stored run ``run_id``:
    nodes with stored outputs are marked ``cached`` and not run again.
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
        if self.resume and (self.checkpoint is None or self.run_id is None):
            raise ValueError("resume needs a checkpoint and the run_id of the run to resume")
