"""The built-in back end's plan: a checked graph with every node bound to its executor, wired by index.

:func:`bind_nodes` decides what each node runs (the given agents and functions;
functions of a graph loaded from JSON through a registry; a ``map`` node's step as a
scheduler of its sub-graph). :func:`build_plan` gives each node the executor of its
kind (:data:`dagwright.nodes.EXECUTORS`), wraps nodes that have a result cache, and
wires every input port to the outputs that feed it. A plan is made once per graph and
bindings, so repeated runs of one flow pay only for execution.
"""

from __future__ import annotations

import dis
import inspect
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dagwright.backends.builtin.scheduler import Scheduler
from dagwright.compiler import kinds
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node
from dagwright.compiler.registry import FunctionRegistry
from dagwright.execution.executor import Executor
from dagwright.execution.inputs import input_name, output_name
from dagwright.execution.policy import NodePolicy
from dagwright.execution.steps import Slot
from dagwright.nodes import EXECUTORS
from dagwright.nodes.function import DirectCall, direct_call, function_executor

__all__ = ["ExecutionPlan", "Schedulable", "bind_nodes", "build_plan", "never_suspends"]

_DEFAULT_POLICY = NodePolicy()


class Schedulable(Protocol):
    """What prepares its own scheduler (a ``Flow``, with its bindings and monitors): the back ends run it, or
    map over it, without knowing its type."""

    def _scheduler(self) -> Scheduler: ...


def _schedulable(obj: object) -> bool:
    return callable(getattr(obj, "_scheduler", None))


@dataclass(slots=True)
class _Step:
    index: int
    node: Node
    kind: str
    executor: Executor | None
    slots: list[Slot]
    dependents: list[int]
    n_preds: int
    policy: NodePolicy
    # Precomputed so that running a node formats no string and scans no port list.
    task_name: str = ""
    output_names: frozenset[str] = frozenset()
    # The executor finishes without ever suspending (see never_suspends), and the node has neither retries, a
    # timeout nor a cache: the scheduler runs it in place, without a task of its own.
    inline: bool = False
    # One attempt, no timeout: the scheduler makes that attempt itself instead of through attempt_node.
    simple: bool = False
    # An input or output node of the flow: resolved by the scheduler itself, never run.
    io: bool = False
    # Every input port takes one connection and has no other way to a value: (port, source step, source port)
    # each, read straight from the sources' values (None: gather_inputs decides).
    sources: tuple[tuple[str, int, str], ...] | None = None
    # A simple, uncached async function node with one output: the scheduler awaits the function itself.
    direct: DirectCall | None = None


@dataclass(slots=True)
class ExecutionPlan:
    """A graph prepared for running: one step per node, wired by index."""

    graph: Graph
    steps: list[_Step]
    inputs: dict[str, int]
    outputs: dict[str, int]
    by_id: dict[str, int] = field(default_factory=dict)
    # Per step, in step order: what every run starts from.
    node_ids: list[str] = field(default_factory=list)
    n_preds: list[int] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        graph: Graph,
        executors: Mapping[str, Executor],
        policies: Mapping[str, NodePolicy] | None = None,
    ) -> ExecutionPlan:
        """Wire ``graph``'s nodes to their executors (every non-I/O node needs one)."""
        index = {node.id: i for i, node in enumerate(graph.nodes)}
        slots: list[dict[str, Slot]] = []
        steps: list[_Step] = []
        policies = policies or {}
        missing = [n.id for n in graph.nodes if n.kind not in (INPUT_KIND, OUTPUT_KIND) and n.id not in executors]
        if missing:
            raise ValueError(f"no executor for node(s) {', '.join(map(repr, missing))} of graph {graph.name!r}")
        for i, node in enumerate(graph.nodes):
            port_slots = {
                p.name: Slot(p.name, [], p.collect, p.required and not p.collect, p.default) for p in node.inputs
            }
            slots.append(port_slots)
            steps.append(
                _Step(
                    i,
                    node,
                    node.kind,
                    executors.get(node.id),
                    list(port_slots.values()),
                    [],
                    0,
                    policies.get(node.id, _DEFAULT_POLICY),
                    f"dagwright:{node.id}",
                    frozenset(p.name for p in node.outputs),
                )
            )
        preds: list[set[int]] = [set() for _ in steps]
        for edge in graph.edges:
            src, dst = index[edge.source], index[edge.target]
            slots[dst][edge.target_port].sources.append((src, edge.source_port))
            if src not in preds[dst]:
                preds[dst].add(src)
                steps[src].dependents.append(dst)
        for step, p in zip(steps, preds, strict=True):
            step.n_preds = len(p)
            step.simple = step.policy.retry.max_attempts == 1 and step.policy.timeout is None
            step.io = step.kind in (INPUT_KIND, OUTPUT_KIND)
            if all(not slot.collect and len(slot.sources) == 1 for slot in step.slots):
                step.sources = tuple((slot.name, *slot.sources[0]) for slot in step.slots)
        inputs = {input_name(s.node): s.index for s in steps if s.kind == INPUT_KIND}
        outputs = {output_name(s.node): s.index for s in steps if s.kind == OUTPUT_KIND}
        return cls(
            graph,
            steps,
            inputs,
            outputs,
            index,
            [s.node.id for s in steps],
            [s.n_preds for s in steps],
            [s.index for s in steps if s.n_preds == 0],
        )


def build_plan(
    graph: Graph,
    bindings: Mapping[str, object] | None = None,
    policies: Mapping[str, NodePolicy] | None = None,
    registry: FunctionRegistry | None = None,
) -> ExecutionPlan:
    """Bind every node of ``graph`` to an executor and wire the plan.

    ``bindings`` maps node ids to agents/functions; function nodes without a binding
    are resolved through ``registry`` (all failures reported together).
    """
    bound = bind_nodes(graph, bindings, registry)
    executors: dict[str, Executor] = {}
    # Function nodes the scheduler may call itself; worked out once, for their executor too.
    directs: dict[str, DirectCall] = {}
    # The nodes added from one line share their function and tuples of ports: how to call them, and whether the
    # function can suspend, is worked out once for them all (keys of ids: the graph and ``bound`` hold the objects).
    calls: dict[tuple[int, int, int, object], DirectCall | None] = {}
    unknown: list[str] = []
    for node in graph.nodes:
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            continue
        factory = EXECUTORS.get(node.kind)
        if factory is None:
            unknown.append(f"{node.id!r} ({node.kind})")
            continue
        binding = bound.get(node.id)
        direct = None
        if factory is function_executor:
            key = (id(binding), id(node.inputs), id(node.outputs), node.config.get("returns"))
            shared = calls[key] if key in calls else calls.setdefault(key, direct_call(node, binding))
            if shared is not None:
                direct = DirectCall(shared.fn, shared.port, shared.declared, shared.fits, node.id)
        if direct is not None:
            directs[node.id] = direct
            executor = direct.executor()
        else:
            executor = factory(node, binding)
        policy = (policies or {}).get(node.id)
        if policy is not None and policy.cache is not None:
            from dagwright.ops.cache import cached_executor

            executor = cached_executor(executor, node, policy.cache)
        executors[node.id] = executor
    if unknown:
        raise ValueError(f"no runtime support for the kind of node(s) {', '.join(unknown)}")
    plan = ExecutionPlan.build(graph, executors, policies)
    inline: dict[int, bool] = {}
    for step in plan.steps:
        if step.kind == "function" and step.simple and step.policy.cache is None:
            binding = bound.get(step.node.id)
            fn = id(binding)
            step.inline = inline[fn] if fn in inline else inline.setdefault(fn, never_suspends(binding))
            step.direct = directs.get(step.node.id)
    return plan


# The instructions through which a coroutine can give control back to the event loop: await, async for and
# async with all compile to them. A coroutine whose code has none of them runs to its end in its first step.
_SUSPENDING_OPS = frozenset(
    ("YIELD_VALUE", "SEND", "GET_AWAITABLE", "GET_AITER", "GET_ANEXT", "BEFORE_ASYNC_WITH", "END_ASYNC_FOR")
)
_SUSPENDING_OPCODES = frozenset(dis.opmap[name] for name in _SUSPENDING_OPS if name in dis.opmap)


def never_suspends(fn: object) -> bool:
    """Is ``fn`` a plain ``async def`` function whose body awaits nothing (so its coroutine never suspends)?

    Such a function node is run in place by the scheduler: a task would only add cost, since nothing
    can run beside it anyway. Anything else (a sync function, a callable object, a decorated function
    that awaits the original) runs as a task as before.
    """
    if not isinstance(fn, types.FunctionType) or not inspect.iscoroutinefunction(fn):
        return False
    # Every instruction is two bytes, opcode first (inline caches and EXTENDED_ARG too), so the opcodes are the
    # even bytes: read without dis.get_instructions, which builds an object per instruction (~15 µs a function,
    # paid by every function node of a plan).
    return _SUSPENDING_OPCODES.isdisjoint(fn.__code__.co_code[::2])


def bind_nodes(
    graph: Graph, bindings: Mapping[str, object] | None = None, registry: FunctionRegistry | None = None
) -> dict[str, object]:
    """What every node of ``graph`` runs: ``bindings`` as given, then the rest bound here.

    A function node without a binding is resolved through ``registry`` (every unbound
    function reported in one error). A ``map`` node runs its step on a scheduler: the one
    a bound flow prepares, or one of the sub-graph in its config (functions bound through
    the same registry). Every back end binds a graph through this.
    """
    bound = dict(bindings or {})
    unbound_functions = [n for n in graph.nodes if n.kind == "function" and n.id not in bound]
    if unbound_functions:
        if registry is None:
            names = ", ".join(repr(n.id) for n in unbound_functions)
            raise ValueError(
                f"function node(s) {names} have no function bound; pass registry=FunctionRegistry(...) to bind "
                "the functions of a graph loaded from JSON"
            )
        bound.update(registry.bind(Graph(graph.name, tuple(unbound_functions))))
    for node in graph.nodes:
        if node.kind != "map":
            continue
        step = bound.get(node.id)
        if step is None:
            bound[node.id] = map_step(node, registry)
        elif _schedulable(step):
            schedulable: Schedulable = step  # type: ignore[assignment]
            bound[node.id] = schedulable._scheduler()
    return bound


def map_step(node: Node, registry: FunctionRegistry | None = None) -> Scheduler:
    """The scheduler that runs a ``map`` node's step once per item, from the sub-graph in its config."""
    return Scheduler(build_plan(kinds.map_step(node), registry=registry))
