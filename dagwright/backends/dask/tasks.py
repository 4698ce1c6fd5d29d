"""What travels to the Dask workers: a node's step, a task's group of steps, and one task of one run.

Only dagwright types and bytes are inside, so unpickling a group on a worker never
imports user code; each step's executor stays pickled until the worker runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagwright.execution.policy import FailureMode
from dagwright.execution.steps import Slot

__all__ = ["Group", "StepSpec", "TaskSpec"]


@dataclass(slots=True)
class StepSpec:
    """One node as a worker runs it; the executor and policy stay pickled until the worker needs them."""

    index: int
    node: Any  # the IR Node (only dagwright types and JSON inside)
    slots: list[Slot]
    output_names: frozenset[str]
    blob: bytes


@dataclass(slots=True)
class Group:
    """The nodes of one Dask task (one node, or a fused chain of cheap ones), in order."""

    key_name: str
    steps: list[StepSpec]
    deps: list[int]  # indexes of the groups it reads from
    cheap: bool


@dataclass(slots=True)
class TaskSpec:
    """Everything one task needs besides its upstream records: opaque to Dask, so nothing inside is a key."""

    token: str
    run_id: str
    failure_mode: FailureMode
    group_id: int
    # The group pickled once per lowering: bytes cost nothing to send again, a Node with its ports would.
    # (Shipping every group to the workers once instead, as a scattered dependency of each task, measured
    # slower: the scheduler pays for the extra dependency of every task more than the bytes cost.)
    payload: bytes
    inputs: dict[int, dict[str, Any]]
    cached: dict[int, dict[str, Any]]  # outputs restored from a checkpoint: these nodes do not run

    def __dask_tokenize__(self) -> tuple[str, str, int]:
        # Dask tokenizes every argument of a submitted graph by walking it, payload bytes included: a third of
        # the per-task cost. Each task's key is already unique to its run, and so is this.
        return (self.token, self.run_id, self.group_id)
