"""Errors raised at run time. Each names the node (when there is one) and keeps what the user needs."""

from __future__ import annotations

import os
import sysconfig
from typing import TYPE_CHECKING, Any

from dagwright.compiler.ir import display_path

if TYPE_CHECKING:
    from dagwright.execution.events import RunResult

__all__ = [
    "InputValidationError",
    "LLMError",
    "LLMRequestError",
    "NodeExecutionError",
    "OutputParseError",
    "RunFailedError",
]


class InputValidationError(ValueError):
    """Inputs that do not match a signature: names the field, what was expected and what was given."""

    def __init__(self, message: str, *, field: str | None = None, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors or [message]


class LLMError(RuntimeError):
    """An LLM call that failed for good (after retries, or not retryable)."""

    def __init__(self, message: str, *, status: int | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.model = model


class LLMRequestError(LLMError):
    """The server refused the request (400, 401, 403, 404, 422): retrying would not help."""


class OutputParseError(ValueError):
    """A reply that is not valid JSON for the signature, even after one repair round.

    ``raw`` keeps the model's last reply verbatim, ``first_raw`` the reply before the
    repair request; ``errors`` lists what was wrong with it.
    """

    def __init__(self, message: str, *, raw: str, errors: list[str], first_raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.first_raw = first_raw
        self.errors = errors


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB = tuple(
    os.path.abspath(p) + os.sep for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_INSTALLED = ("site-packages", "dist-packages")


def failure_location(error: BaseException) -> str | None:
    """Where ``error`` was raised in the user's code: ``file:line in function`` of the innermost frame outside
    dagwright and the standard library (outside installed packages too, when there is such a frame)."""
    own: tuple[str, int, str] | None = None
    any_outside: tuple[str, int, str] | None = None
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        if not filename.startswith(("<", _PACKAGE, *_STDLIB)):
            frame = (filename, tb.tb_lineno, code.co_name)
            any_outside = frame
            if not any(part in filename for part in _INSTALLED):
                own = frame
        tb = tb.tb_next
    found = own or any_outside
    return f"{display_path(found[0])}:{found[1]} in {found[2]}" if found is not None else None


class NodeExecutionError(RuntimeError):
    """A node that failed in a run; ``__cause__`` is the original exception, ``location`` where the user's code
    raised it (``file:line in function``), when it was raised there."""

    def __init__(self, node_id: str, error: BaseException, attempts: int) -> None:
        detail = str(error) or type(error).__name__
        super().__init__(f"node {node_id!r} failed after {attempts} attempt(s): {type(error).__name__}: {detail}")
        self.node_id = node_id
        self.error = error
        self.attempts = attempts
        self.location = failure_location(error)


class RunFailedError(RuntimeError):
    """A run with failed nodes, raised by ``RunResult.raise_for_failure()``; holds the result."""

    def __init__(self, result: RunResult) -> None:
        failed = [r for r in result.nodes.values() if r.status == "failed"]
        lines = [f"run {result.run_id} of flow {result.flow!r} failed: {len(failed)} node(s)"]
        lines.extend(
            f"  {r.node_id}: {r.error_type}: {r.error}" + (f" (at {r.error_location})" if r.error_location else "")
            for r in failed
        )
        super().__init__("\n".join(lines))
        self.result: Any = result
