"""Lowering a built-in execution plan into task groups and one Dask task graph per run (client side).

Chains of cheap nodes (sync functions and coordination steps without a timeout) are
fused into one task, since a Dask hop costs milliseconds; agents, async functions and
``map`` nodes keep a task each. A node's executor and policy are pickled here
(``cloudpickle``), once per plan, and loaded on the worker that runs them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dagwright.backends.builtin.plan import ExecutionPlan
from dagwright.backends.dask.tasks import Group, StepSpec, TaskSpec
from dagwright.backends.dask.worker import run_group
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND
from dagwright.compiler.kinds import CHEAP_KINDS
from dagwright.execution.policy import FailureMode
from dagwright.nodes.function import is_sync_function_executor

__all__ = ["DaskLowering", "build_graph", "lower_plan", "lowering_of_plan", "task_order"]


@dataclass(slots=True)
class DaskLowering:
    """A plan lowered for Dask: its task groups in dependency order, made once per plan."""

    plan: ExecutionPlan
    token: str
    groups: list[Group]
    group_of: dict[int, int]
    payloads: list[bytes]

    @property
    def task_count(self) -> int:
        return len(self.groups)


def _is_cheap(plan: ExecutionPlan, index: int) -> bool:
    step = plan.steps[index]
    if step.policy.timeout is not None:
        return False  # a sync function cannot be interrupted in place: keep it where a timeout can act
    if step.kind in CHEAP_KINDS:
        return True
    return step.kind == "function" and is_sync_function_executor(step.executor)


def task_order(plan: ExecutionPlan) -> list[int]:
    """The task nodes of ``plan`` in a dependency order (Kahn's)."""
    waiting = [s.n_preds for s in plan.steps]
    ready = [s.index for s in plan.steps if s.n_preds == 0]
    order: list[int] = []
    while ready:
        idx = ready.pop()
        order.append(idx)
        for dep in plan.steps[idx].dependents:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                ready.append(dep)
    if len(order) != len(plan.steps):
        raise ValueError(f"graph {plan.graph.name!r} is not a DAG")
    return [i for i in order if plan.steps[i].kind not in (INPUT_KIND, OUTPUT_KIND)]


_LOCKS: dict[type, Callable[[], Any]] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
}


def _dumps(node_id: str, value: object) -> bytes:
    """Pickle what a node runs; a lock inside (an agent's monitor, a memory) arrives on the worker as a new one."""
    import io

    import cloudpickle  # type: ignore[import-untyped]

    class Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, obj: object) -> Any:
            make = _LOCKS.get(type(obj))
            if make is not None:
                return (make, ())
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    try:
        Pickler(buffer, protocol=5).dump(value)
    except Exception as exc:
        raise TypeError(
            f"node {node_id!r} cannot be sent to Dask workers: what it runs does not pickle ({exc})"
        ) from exc
    return buffer.getvalue()


def lower_plan(plan: ExecutionPlan, *, fuse: bool = True) -> DaskLowering:
    """Lower ``plan`` into task groups (``fuse=False``: one task per node, for measuring)."""
    task_preds: dict[int, list[int]] = {}
    task_deps: dict[int, list[int]] = {}
    steps = plan.steps
    for idx in task_order(plan):
        preds: list[int] = []
        for slot in steps[idx].slots:
            for src, _ in slot.sources:
                if steps[src].kind != INPUT_KIND and src not in preds:
                    preds.append(src)
        task_preds[idx] = preds
        task_deps[idx] = [d for d in steps[idx].dependents if steps[d].kind != OUTPUT_KIND]
    groups: list[Group] = []
    group_of: dict[int, int] = {}
    for idx in task_preds:
        step = steps[idx]
        spec = StepSpec(
            idx, step.node, step.slots, step.output_names, _dumps(step.node.id, (step.executor, step.policy))
        )
        cheap = _is_cheap(plan, idx)
        preds = task_preds[idx]
        if fuse and cheap and len(preds) == 1:
            (pred,) = preds
            owner = groups[group_of[pred]]
            # A chain link: the predecessor ends its group and this node is its only consumer.
            if owner.cheap and owner.steps[-1].index == pred and task_deps[pred] == [idx]:
                owner.steps.append(spec)
                owner.key_name = step.node.id
                group_of[idx] = group_of[pred]
                continue
        deps = sorted({group_of[p] for p in preds})
        group_of[idx] = len(groups)
        groups.append(Group(step.node.id, [spec], deps, cheap))
    payloads = [_dumps(g.key_name, g) for g in groups]
    return DaskLowering(plan, uuid.uuid4().hex[:12], groups, group_of, payloads)


_lowerings: dict[int, tuple[ExecutionPlan, DaskLowering]] = {}


def lowering_of_plan(plan: ExecutionPlan) -> DaskLowering:
    cached = _lowerings.get(id(plan))
    if cached is not None and cached[0] is plan:
        return cached[1]
    if len(_lowerings) >= 16:
        _lowerings.clear()
    lowering = lower_plan(plan)
    _lowerings[id(plan)] = (plan, lowering)
    return lowering


def build_graph(
    lowering: DaskLowering,
    values: Mapping[str, Any],
    run_id: str,
    failure_mode: FailureMode,
    cached: Mapping[int, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The Dask task graph of one run (``{key: (function, task spec, *dependency keys)}``) and its keys."""
    plan = lowering.plan
    given = {idx: {plan.steps[idx].node.outputs[0].name: values[name]} for name, idx in plan.inputs.items()}
    suffix = uuid.uuid4().hex[:10]
    dsk: dict[str, Any] = {}
    keys: list[str] = []
    for group_id, group in enumerate(lowering.groups):
        consumed = {src for spec in group.steps for slot in spec.slots for src, _ in slot.sources if src in given}
        inputs = {i: given[i] for i in consumed}
        restored = {s.index: cached[s.index] for s in group.steps if s.index in cached} if cached else {}
        task = TaskSpec(lowering.token, run_id, failure_mode, group_id, lowering.payloads[group_id], inputs, restored)
        key = f"n:{group.key_name}@{suffix}"
        dsk[key] = (run_group, task, *(keys[d] for d in group.deps))
        keys.append(key)
    return dsk, keys
