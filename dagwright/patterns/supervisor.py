"""Supervisor-worker: a supervisor plans, workers do, the supervisor reviews.

Node ids, for a supervisor ``manager``::

    manager.plan      task -> subtasks (each with its worker, with automatic allocation)
    manager.assign    hands subtasks to workers; unassigned workers are skipped, not run
    <worker>          each worker (a ``task -> result`` agent, or a whole pattern)
    manager.review    task, results -> approved, feedback, answer   (quality control)
    manager.gate1     open only when review 0 did not approve
    revision1.<worker>, manager.review1, ...   up to ``max_revisions``, unrolled
    manager.answer    the last review's answer;  manager.trail  every review's feedback

Without quality control, ``manager.review`` only writes the answer from the results.
``task_allocation``: ``automatic`` (the supervisor assigns each subtask to a worker by
name), ``round_robin`` (subtask i to worker i mod n) or ``all`` (every worker gets every
subtask).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.ir import Port
from dagwright.compiler.kinds import (
    ALLOCATIONS,
    AssignSettings,
    GateSettings,
    SelectSettings,
    assign_node,
    gate_node,
    gather_node,
    select_node,
)
from dagwright.compiler.signature import make_signature
from dagwright.compiler.types import BOOL, STR, is_assignable
from dagwright.flow import Flow, PortRef
from dagwright.patterns._members import (
    AgentFactory,
    AgentLike,
    Member,
    add_members,
    agent_factory,
    declare_member_inputs,
)

__all__ = ["ALLOCATIONS", "WORKER_SIGNATURE", "supervisor"]

WORKER_SIGNATURE = "task: str -> result: str"
_OPTIONS = {"workers", "task_allocation", "quality_control", "max_revisions"}


def _worker_io(flow: Flow, m: Member) -> tuple[str | None, str | None]:
    """The worker's task input and its text result output, as seen from the flow."""
    ins, outs = flow._virtual_ports(m.name) or ([], [])
    task = "task" if any(p.name == "task" for p in ins) else None
    result = None
    names = [p.name for p in outs]
    if "result" in names:
        result = "result"
    else:
        for p in outs:
            if is_assignable(p.type, STR).level == "ok" or p.type.kind == "any":
                result = p.name
                break
    return task, result


def _workers(flow: Flow, members: list[Member]) -> tuple[list[Member], list[Port]]:
    """The workers that take a task and give a text result (each other one reported once, and left out of
    the plan, the rounds and the review), and the inputs they take besides ``task``."""
    usable: list[Member] = []
    extra: list[Port] = []
    for m in members:
        probe = Flow("worker")
        if m.flow is not None:
            probe.add_flow(m.name, m.flow)
        else:
            probe.add_agent(m.name, m.agent)
        task, result = _worker_io(probe, m)
        ins, outs = probe._virtual_ports(m.name) or ([], [])
        if task is None or result is None:
            flow.report(
                dg.make(
                    "DW204",
                    f"worker {m.name!r} needs an input 'task' and a text output (like {WORKER_SIGNATURE!r}); "
                    f"it has inputs ({', '.join(p.name for p in ins) or 'none'}) and outputs "
                    f"({', '.join(f'{p.name}: {p.type}' for p in outs) or 'none'})",
                    node=m.name,
                    hint="rename its input to 'task', or wrap it in a Flow that maps 'task' to its input",
                )
            )
            continue
        usable.append(m)
        extra.extend(p for p in ins if p.name != "task")
    return usable, extra


def supervisor(
    name: str,
    config: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    factory: AgentFactory | None = None,
) -> Flow:
    """A supervisor named ``name`` with ``config["workers"]``; see the module docstring."""
    flow = Flow(name)
    options = dict(config)
    workers_spec, allocation, quality, max_revisions = _team_options(flow, name, options)
    members, extra_inputs = _workers(
        flow, add_members(flow, list(workers_spec), WORKER_SIGNATURE, defaults, "supervisor", factory)
    )
    if not members:
        return flow
    settings = {**dict(defaults or {}), **options}
    plan_sig, review_sig = _signatures(members, allocation, quality)
    agents = agent_factory(factory)
    planner = agents.create(f"{name}.plan", plan_sig, settings)
    reviewer = agents.create(f"{name}.review", review_sig, settings)
    worker_names = [m.name for m in members]
    with flow.group(name):
        flow.add_agent(f"{name}.plan", planner)
        flow.connect(PortRef(f"{name}.plan", "subtasks"), PortRef(f"{name}.assign", "subtasks"))
        usable = _add_round(flow, name, members, "", allocation, worker_names)
        _add_review(flow, name, reviewer, "", usable)
        answers = [f"{name}.review"]
        for r in range(1, max_revisions + 1):
            gate = f"{name}.gate{r}"
            previous = answers[-1]
            flow.add_node(gate_node(gate, (Port("feedback", STR), Port("task", STR)), GateSettings(when=False)))
            flow.connect(PortRef(previous, "approved"), PortRef(gate, "condition"))
            flow.connect(PortRef(previous, "feedback"), PortRef(gate, "feedback"))
            flow.connect(PortRef(f"{name}.plan", "subtasks"), PortRef(f"{name}.assign{r}", "subtasks"))
            flow.connect(PortRef(gate, "feedback"), PortRef(f"{name}.assign{r}", "feedback"))
            with flow.group(f"revision{r}"):
                revised = _add_round(flow, name, members, f"revision{r}.", allocation, worker_names, suffix=str(r))
            _add_review(flow, name, reviewer, str(r), revised, task_from=PortRef(gate, "task"))
            answers.append(f"{name}.review{r}")
        _add_answers(flow, name, answers, quality)
    flow.input("task", str, description="The task for the team")
    declare_member_inputs(flow, sorted(extra_inputs, key=lambda f: f.name))
    flow.output("answer", PortRef(f"{name}.answer", "value"))
    flow.output("plan", PortRef(f"{name}.plan", "subtasks"))
    if quality:
        flow.output("approved", PortRef(f"{name}.approved", "value"))
        flow.output("review_trail", PortRef(f"{name}.trail", "values"))
    return flow


def _team_options(flow: Flow, name: str, options: dict[str, Any]) -> tuple[Sequence[object], str, bool, int]:
    """Take the team's options out of ``options`` (what remains is agent settings), reporting bad ones:
    the workers, the allocation, whether the supervisor reviews, and how many revisions it may ask for."""
    workers_spec = options.pop("workers", None)
    allocation = options.pop("task_allocation", "automatic")
    quality = bool(options.pop("quality_control", True))
    max_revisions = options.pop("max_revisions", 2)
    if allocation not in ALLOCATIONS:
        flow.report(dg.make("DW206", f"task_allocation {allocation!r} is not one of {', '.join(ALLOCATIONS)}"))
        allocation = "automatic"
    if not isinstance(max_revisions, int) or max_revisions < 0:
        flow.report(dg.make("DW202", f"max_revisions must be a whole number >= 0, got {max_revisions!r}"))
        max_revisions = 0
    if not quality:
        max_revisions = 0
    if not isinstance(workers_spec, Sequence) or isinstance(workers_spec, str) or not workers_spec:
        flow.report(dg.make("DW203", f"supervisor {name!r} needs config['workers']: a non-empty list of agents"))
        workers_spec = []
    return workers_spec, allocation, quality, max_revisions


def _signatures(members: list[Member], allocation: str, quality: bool) -> tuple[type[Any], type[Any]]:
    """The planner's and the reviewer's signatures for this team."""
    from pydantic import create_model  # here: importing the patterns does not import pydantic

    worker_names = [m.name for m in members]
    described = "\n".join(f"- {m.name}: {_describe(m)}" for m in members)
    types: dict[str, object] = {}
    # At least one subtask: an empty plan assigns nothing, so it is a reply to repair, not a plan to run.
    plan_outputs = "subtasks: list[str][1, None]"
    if allocation == "automatic":
        # Each subtask carries its worker, so a plan cannot assign more or fewer workers than
        # it has subtasks, and the schema limits `worker` to the real names.
        worker_type: Any = Literal.__getitem__(tuple(worker_names))
        types["Assignment"] = create_model("Assignment", subtask=(str, ...), worker=(worker_type, ...))
        plan_outputs = "subtasks: list[Assignment][1, None]"
    plan_sig = make_signature(
        f"task: str -> {plan_outputs}",
        "Split the task into subtasks for your workers."
        + (" Give each subtask the name of the worker best suited to it." if allocation == "automatic" else "")
        + f"\nWorkers:\n{described}",
        name="Plan",
        descriptions={"subtasks": "Self-contained subtasks, in order"},
        types=types,
    )
    review_sig = make_signature(
        "task: str, results: list[str] -> approved: bool, feedback: str, answer: str"
        if quality
        else "task: str, results: list[str] -> answer: str",
        "Review the workers' results against the task and write the final answer."
        + (" Approve only if the results fully answer the task; otherwise say what to fix." if quality else ""),
        name="Review",
    )
    return plan_sig, review_sig


def _add_answers(flow: Flow, name: str, reviews: list[str], quality: bool) -> None:
    """The team's answer (the last review's), and with quality control its verdict and the review trail."""
    flow.add_node(select_node(f"{name}.answer", STR, SelectSettings("last"), description="The last review's answer"))
    for review in reviews:
        flow.connect(PortRef(review, "answer"), PortRef(f"{name}.answer", "values"))
    if not quality:
        return
    flow.add_node(select_node(f"{name}.approved", BOOL, SelectSettings("last")))
    for review in reviews:
        flow.connect(PortRef(review, "approved"), PortRef(f"{name}.approved", "values"))
    flow.add_node(gather_node(f"{name}.trail", STR))
    for review in reviews:
        flow.connect(PortRef(review, "feedback"), PortRef(f"{name}.trail", "values"))


def _describe(m: Member) -> str:
    if m.agent is not None:
        text = m.agent.config.system_prompt or m.agent.signature.instructions or str(m.agent.signature)
        return text.strip().splitlines()[0]
    assert m.flow is not None
    return f"a {m.flow.name} workflow"


def _add_round(
    flow: Flow,
    name: str,
    members: list[Member],
    prefix: str,
    allocation: str,
    worker_names: list[str],
    suffix: str = "",
) -> list[tuple[str, str]]:
    """One round of workers behind an assign node; returns (node id, result port) per usable worker."""
    assign = f"{name}.assign{suffix}"
    flow.add_node(assign_node(assign, AssignSettings(tuple(worker_names), allocation), feedback=bool(suffix)))
    usable: list[tuple[str, str]] = []
    for m in members:
        node_id = f"{prefix}{m.name}"
        if m.flow is not None:
            flow.add_flow(node_id, m.flow)
        else:
            flow.add_agent(node_id, m.agent)
        task, result = _worker_io(flow, Member(node_id, m.agent, m.flow))
        assert task is not None and result is not None  # _workers kept only workers that have both
        flow.connect(PortRef(assign, m.name), PortRef(node_id, task))
        usable.append((node_id, result))
    return usable


def _add_review(
    flow: Flow,
    name: str,
    reviewer: AgentLike,
    suffix: str,
    results: list[tuple[str, str]],
    task_from: PortRef | None = None,
) -> None:
    review = f"{name}.review{suffix}"
    flow.add_agent(review, reviewer, collect=["results"])
    for node_id, port in results:
        flow.connect(PortRef(node_id, port), PortRef(review, "results"))
    if task_from is not None:
        flow.connect(task_from, PortRef(review, "task"))
