"""Runtime benchmark: scheduler overhead per node and agent-call overhead, side by side with the peers.

Every case runs all systems in this one process, round-robin (one sample of each
system in turn), so machine noise hits them alike; figures are medians.

Cases (no-op nodes are ``async def step(x: int) -> int: return x + 1``):

* ``chain``: ``n0 -> n1 -> ... -> n999`` (1 000 nodes), per-node run cost in µs;
* ``fan``: one source -> 1 000 parallel nodes -> one join (1 002 nodes); the join
  receives the 1 000 values as one list and sums them;
* ``sleep``: the ``fan`` shape where each of the 1 000 branches does
  ``await asyncio.sleep(0.01)``; the figure is the wall time of one run (ms).

Systems:

* ``floor``: :class:`FloorDAG` below, the least an asyncio DAG scheduler can do
  (Kahn order at build, one task per node, a node scheduled the moment its last
  dependency finishes, no records, no events, no error handling beyond
  propagating the first exception);
* ``dagwright``: ``await flow.arun()`` on a flow whose plan is cached (the
  steady state of a flow run many times); ``dagwright 1st run`` is the first
  ``arun()`` of a freshly declared flow, which compiles, checks and plans it.
  The fan's join is ``join(values: list[int])`` added with
  ``add_function(..., collect=["values"])``: one value per connected branch.
  With the guarantees switched on: ``+listener`` (a listener hears every node's
  started and finished events), ``+timeouts`` (``configure(node, timeout=60)`` on
  every node) and ``+checkpoint`` (every finished node's outputs committed to an
  in-memory SQLite ``CheckpointStore``, a transaction per node);
* ``langgraph``: a ``StateGraph`` with async nodes and ``ainvoke``; the chain is
  1 000 nodes joined by ``add_edge`` (``recursion_limit`` raised to fit); the fan
  is 1 000 distinct nodes, each with an edge from the source, and one waiting
  edge ``add_edge([w0 ... w999], "join")``; their values meet in a state key with
  an ``operator.add`` reducer. ``langgraph Send`` is the same fan written with
  LangGraph's map idiom: a conditional edge returning 1 000 ``Send("w", ...)``;
* ``kailash``: registered custom ``Node`` subclasses run by ``LocalRuntime(
  enable_monitoring=False, connection_validation="off",
  content_aware_success_detection=False)`` (its fastest documented settings);
  the join declares one parameter per branch, because Kailash connections into
  one input overwrite each other. The sleep case uses ``AsyncNode`` subclasses
  on ``AsyncLocalRuntime`` with the same settings and ``max_concurrent_nodes``
  raised to the width (its default, 10, would run the branches 10 at a time).

``build`` is the cost of declaring the graph and making it runnable (dagwright:
``Flow`` calls, compile with every check, and the execution plan; LangGraph:
``StateGraph`` calls and ``compile()``; Kailash: ``WorkflowBuilder`` calls and
``build()``; floor: ``add`` calls and the Kahn sort).

The agent case measures ``agent.run(question=...)`` against the loopback
``OpenAITestServer`` minus a raw ``AsyncOpenAI().chat.completions.create`` of
the very request the agent sent (same messages, response format and model),
medians of interleaved samples.

Run alone: ``python benchmarks/bench_runtime.py [--quick] [--cases chain fan sleep agent]
[--json FILE]``. LangGraph and Kailash are optional: a system that cannot be
imported is reported as not run, with the reason, never with a number. The peers
belong in a separate environment, not the project's own::

    python3 -m venv /tmp/rt-bench && /tmp/rt-bench/bin/pip install -e . langgraph
    /tmp/rt-bench/bin/python benchmarks/bench_runtime.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import operator
import statistics
import subprocess
import sys
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from _util import Goal, Samples, Table, goals_table, load_average

N = 1_000
SLEEP_S = 0.01
CASES = ("chain", "fan", "sleep", "agent", "calls")
TARGET_AGENT_MS = 1.0
# Goals, each measured against what stands beside it in the same run.
TARGET_VS_FLOOR = 1.0  # chain and fan: dagwright's run time / the hand-written floor's
TARGET_VS_LANGGRAPH = 50.0  # chain and fan: LangGraph's run time / dagwright's, at least
TARGET_SLEEP_VS_FLOOR = 1.15  # 1 000 x sleep(10 ms): dagwright's wall time / the floor's
CALLS = 1_000
CALL_LATENCY_S = 0.05
TARGET_CALLS_S = 3.0  # 1 000 agent calls to a 50 ms server on the built-in scheduler, wall seconds
TARGET_CALLS_VS_RAW = 1.0  # the same / raw AsyncOpenAI + gather in the same process


# --------------------------------------------------------------------------- the floor


class FloorDAG:
    """The cost of running a DAG on asyncio at all: Kahn order, one task per node, nothing else."""

    def __init__(self) -> None:
        self.fns: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.deps: dict[str, list[str]] = {}
        self.dependents: dict[str, list[str]] = {}

    def add(self, name: str, fn: Callable[..., Awaitable[Any]], deps: Sequence[str] = ()) -> None:
        self.fns[name] = fn
        self.deps[name] = list(deps)

    def build(self) -> FloorDAG:
        dependents: dict[str, list[str]] = {n: [] for n in self.fns}
        indegree = {n: len(d) for n, d in self.deps.items()}
        for name, deps in self.deps.items():
            for dep in deps:
                dependents[dep].append(name)
        queue = deque(n for n, k in indegree.items() if k == 0)
        seen = 0
        while queue:
            seen += 1
            for m in dependents[queue.popleft()]:
                indegree[m] -= 1
                if indegree[m] == 0:
                    queue.append(m)
        if seen != len(self.fns):
            raise ValueError("the graph has a cycle")
        self.dependents = dependents
        return self

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        results: dict[str, Any] = {}
        waiting = {n: len(d) for n, d in self.deps.items()}
        done: asyncio.Future[None] = loop.create_future()
        left = len(self.fns)
        tasks: list[asyncio.Task[None]] = []

        async def run_node(name: str) -> None:
            nonlocal left
            try:
                results[name] = await self.fns[name](*[results[d] for d in self.deps[name]])
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
                return
            left -= 1
            for m in self.dependents[name]:
                waiting[m] -= 1
                if waiting[m] == 0:
                    tasks.append(loop.create_task(run_node(m)))
            if left == 0:
                done.set_result(None)

        tasks.extend(loop.create_task(run_node(n)) for n, d in self.deps.items() if not d)
        await done
        return results


class LoopRunner:
    """Runs one coroutine at a time to completion on one event loop kept for the whole benchmark.

    Not ``asyncio.Runner``: on Python 3.11, ``Runner.run`` in the main thread installs a SIGINT handler
    that holds the task, and restoring the default handler afterwards formats ``repr(task)``, result
    included (``signal.signal`` tries to turn the old handler into an enum and builds the error
    message). That repr costs ~10 µs per node of a dagwright ``RunResult`` and less for the peers'
    plain dicts: it would be charged to the system with the richest result, not to its scheduler.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()


# --------------------------------------------------------------------------- node bodies


async def start() -> int:
    return 0


async def step(x: int) -> int:
    return x + 1


async def nap(x: int) -> int:
    await asyncio.sleep(SLEEP_S)
    return x + 1


async def join(values: list[int]) -> int:
    return sum(values)


async def join_args(*values: int) -> int:
    return sum(values)


# --------------------------------------------------------------------------- subjects


@dataclass
class Subject:
    """One system in one case: how to build it, run it once, and check what it returned."""

    system: str
    build: Callable[[], Any]
    run: Callable[[Any], Any]
    expect: Callable[[Any], Any]
    expected: Any
    repeat: int
    fresh: bool = False  # build a new subject for every sample (first-run measurements)
    build_samples: Samples = field(default_factory=Samples)
    run_samples: Samples = field(default_factory=Samples)


@dataclass
class NotRun:
    system: str
    reason: str


def floor_subject(case: str, runner: LoopRunner, repeat: int) -> Subject:
    def build() -> FloorDAG:
        dag = FloorDAG()
        if case == "chain":
            dag.add("n0", start)
            for i in range(1, N):
                dag.add(f"n{i}", step, [f"n{i - 1}"])
            return dag.build()
        body = nap if case == "sleep" else step
        dag.add("src", start)
        for i in range(N):
            dag.add(f"w{i}", body, ["src"])
        dag.add("join", join_args, [f"w{i}" for i in range(N)])
        return dag.build()

    last = f"n{N - 1}" if case == "chain" else "join"
    return Subject(
        "floor",
        build,
        lambda dag: runner.run(dag.run()),
        lambda out: out[last],
        N - 1 if case == "chain" else N,
        repeat,
    )


def dagwright_flow(case: str) -> Any:
    from dagwright import Flow

    flow = Flow(f"{case}{N}")
    if case == "chain":
        flow.add_function("n0", start)
        for i in range(1, N):
            flow.add_function(f"n{i}", step)
            flow.connect(f"n{i - 1}.output", f"n{i}.x")
        flow.output("result", f"n{N - 1}.output")
        return flow
    body = nap if case == "sleep" else step
    flow.add_function("src", start)
    for i in range(N):
        flow.add_function(f"w{i}", body)
        flow.connect("src.output", f"w{i}.x")
    flow.add_function("join", join, collect=["values"])
    for i in range(N):
        flow.connect(f"w{i}.output", "join.values")
    flow.output("result", "join.output")
    return flow


def dagwright_subjects(
    case: str, runner: LoopRunner, repeat: int, first_repeat: int, closing: list[Any]
) -> list[Subject]:
    def build() -> Any:
        flow = dagwright_flow(case)
        flow._scheduler()  # compile, check and plan: what the first run would otherwise pay
        return flow

    def run(flow: Any) -> Any:
        result = runner.run(flow.arun())
        if not result.success:
            raise RuntimeError(f"dagwright run failed: {result.error}")
        return result

    heard: list[int] = [0]

    def listen(event: Any) -> None:
        heard[0] += 1

    def run_heard(flow: Any) -> Any:
        # A listener attached to the run: every node's started and finished events are built and delivered.
        result = runner.run(flow._scheduler().run({}, None, listen))
        if not result.success:
            raise RuntimeError(f"dagwright run failed: {result.error}")
        return result

    def build_timed() -> Any:
        # Every node under a per-attempt timeout: each runs through the retry-and-timeout path.
        flow = dagwright_flow(case)
        for node_id in flow.node_ids:
            flow.configure(node_id, timeout=60)
        flow._scheduler()
        return flow

    def run_checkpointed(flow: Any) -> Any:
        # Every finished node's outputs written to a SQLite checkpoint as the run goes (one store for all samples).
        result = runner.run(flow.arun(checkpoint=store))
        if not result.success:
            raise RuntimeError(f"dagwright run failed: {result.error}")
        return result

    from dagwright.ops.checkpoint import CheckpointStore

    store = CheckpointStore(":memory:")
    closing.append(store)
    expected = N - 1 if case == "chain" else N
    steady = Subject("dagwright", build, run, lambda r: r.outputs["result"], expected, repeat)
    heard_subject = Subject("dagwright +listener", build, run_heard, lambda r: r.outputs["result"], expected, repeat)
    timed = Subject("dagwright +timeouts", build_timed, run, lambda r: r.outputs["result"], expected, repeat)
    saved = Subject("dagwright +checkpoint", build, run_checkpointed, lambda r: r.outputs["result"], expected, repeat)
    first = Subject(
        "dagwright 1st run", lambda: dagwright_flow(case), run, lambda r: r.outputs["result"], expected, first_repeat
    )
    first.fresh = True
    return [steady, heard_subject, timed, saved, first]


def langgraph_subjects(case: str, runner: LoopRunner, repeat: int) -> list[Subject | NotRun]:
    try:
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Send
    except ImportError as exc:
        return [NotRun("langgraph", f"not importable here ({exc}); install it in the benchmark environment")]

    class ChainState(TypedDict):
        x: int

    class FanState(TypedDict):
        x: int
        values: Annotated[list[int], operator.add]
        total: int

    async def lg_step(state: ChainState) -> dict[str, int]:
        return {"x": state["x"] + 1}

    async def lg_start(state: FanState) -> dict[str, int]:
        return {"x": 0}

    async def lg_branch(state: FanState) -> dict[str, list[int]]:
        if case == "sleep":
            await asyncio.sleep(SLEEP_S)
        return {"values": [state["x"] + 1]}

    async def lg_join(state: FanState) -> dict[str, int]:
        return {"total": sum(state["values"])}

    config = {"recursion_limit": N + 100}

    def build_chain() -> Any:
        graph = StateGraph(ChainState)
        for i in range(N):
            graph.add_node(f"n{i}", lg_step)
        graph.add_edge(START, "n0")
        for i in range(1, N):
            graph.add_edge(f"n{i - 1}", f"n{i}")
        graph.add_edge(f"n{N - 1}", END)
        return graph.compile()

    def build_fan() -> Any:
        graph = StateGraph(FanState)
        graph.add_node("src", lg_start)
        names = [f"w{i}" for i in range(N)]
        for name in names:
            graph.add_node(name, lg_branch)
        graph.add_node("join", lg_join)
        graph.add_edge(START, "src")
        for name in names:
            graph.add_edge("src", name)
        graph.add_edge(names, "join")
        graph.add_edge("join", END)
        return graph.compile()

    def build_send() -> Any:
        graph = StateGraph(FanState)
        graph.add_node("src", lg_start)
        graph.add_node("w", lg_branch)
        graph.add_node("join", lg_join)
        graph.add_edge(START, "src")
        graph.add_conditional_edges("src", lambda s: [Send("w", {"x": s["x"]}) for _ in range(N)], ["w"])
        graph.add_edge("w", "join")
        graph.add_edge("join", END)
        return graph.compile()

    if case == "chain":
        # lg_step adds 1 at every node, starting from x=-1, so the last node leaves N - 1 as the others do.
        return [
            Subject(
                "langgraph",
                build_chain,
                lambda app: runner.run(app.ainvoke({"x": -1}, config)),
                lambda out: out["x"],
                N - 1,
                repeat,
            )
        ]
    fan_input = {"x": 0, "values": [], "total": 0}
    return [
        Subject(
            name,
            builder,
            lambda app: runner.run(app.ainvoke(fan_input, config)),
            lambda out: out["total"],
            N,
            repeat,
        )
        for name, builder in (("langgraph", build_fan), ("langgraph Send", build_send))
    ]


_KAILASH_NODES: dict[str, Any] = {}


def _kailash_nodes() -> dict[str, Any]:
    """Register the benchmark's Kailash node classes once (the registry is process-wide)."""
    if _KAILASH_NODES:
        return _KAILASH_NODES
    from kailash.nodes.base import Node, NodeParameter, register_node
    from kailash.nodes.base_async import AsyncNode

    @register_node(alias="DwBenchStart")
    class DwBenchStart(Node):
        def get_parameters(self) -> dict[str, Any]:
            return {}

        def run(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": 0}

    @register_node(alias="DwBenchStep")
    class DwBenchStep(Node):
        def get_parameters(self) -> dict[str, Any]:
            return {"x": NodeParameter(name="x", type=int, required=True)}

        def run(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": kwargs["x"] + 1}

    join_params = {f"v{i}": NodeParameter(name=f"v{i}", type=int, required=True) for i in range(N)}

    @register_node(alias="DwBenchJoin")
    class DwBenchJoin(Node):
        def get_parameters(self) -> dict[str, Any]:
            return join_params

        def run(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": sum(kwargs[f"v{i}"] for i in range(N))}

    @register_node(alias="DwBenchAsyncStart")
    class DwBenchAsyncStart(AsyncNode):
        def get_parameters(self) -> dict[str, Any]:
            return {}

        async def async_run(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": 0}

    @register_node(alias="DwBenchNap")
    class DwBenchNap(AsyncNode):
        def get_parameters(self) -> dict[str, Any]:
            return {"x": NodeParameter(name="x", type=int, required=True)}

        async def async_run(self, **kwargs: Any) -> dict[str, Any]:
            await asyncio.sleep(SLEEP_S)
            return {"output": kwargs["x"] + 1}

    @register_node(alias="DwBenchAsyncJoin")
    class DwBenchAsyncJoin(AsyncNode):
        def get_parameters(self) -> dict[str, Any]:
            return join_params

        async def async_run(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": sum(kwargs[f"v{i}"] for i in range(N))}

    _KAILASH_NODES.update(
        start="DwBenchStart",
        step="DwBenchStep",
        join="DwBenchJoin",
        astart="DwBenchAsyncStart",
        nap="DwBenchNap",
        ajoin="DwBenchAsyncJoin",
    )
    return _KAILASH_NODES


_KAILASH_SETTINGS: dict[str, Any] = {
    "enable_monitoring": False,
    "connection_validation": "off",
    "content_aware_success_detection": False,
}


def kailash_subjects(case: str, runner: LoopRunner, repeat: int, closing: list[Any]) -> list[Subject | NotRun]:
    try:
        from kailash.runtime.local import LocalRuntime
        from kailash.workflow.builder import WorkflowBuilder
    except ImportError as exc:
        return [NotRun("kailash", f"not importable here ({exc})")]
    kinds = _kailash_nodes()

    def build() -> Any:
        builder = WorkflowBuilder()
        if case == "chain":
            builder.add_node(kinds["start"], "n0", {})
            for i in range(1, N):
                builder.add_node(kinds["step"], f"n{i}", {})
                builder.add_connection(f"n{i - 1}", "output", f"n{i}", "x")
            return builder.build()
        is_async = case == "sleep"
        builder.add_node(kinds["astart" if is_async else "start"], "src", {})
        builder.add_node(kinds["ajoin" if is_async else "join"], "join", {})
        for i in range(N):
            builder.add_node(kinds["nap" if is_async else "step"], f"w{i}", {})
            builder.add_connection("src", "output", f"w{i}", "x")
            builder.add_connection(f"w{i}", "output", "join", f"v{i}")
        return builder.build()

    last = f"n{N - 1}" if case == "chain" else "join"
    expected = N - 1 if case == "chain" else N
    if case != "sleep":
        runtime = LocalRuntime(**_KAILASH_SETTINGS)
        closing.append(runtime)
        return [
            Subject(
                "kailash", build, lambda wf: runtime.execute(wf)[0], lambda out: out[last]["output"], expected, repeat
            )
        ]
    try:
        from kailash.runtime.async_local import AsyncLocalRuntime
    except ImportError as exc:
        return [NotRun("kailash", f"AsyncLocalRuntime is not in the installed kailash ({exc})")]
    async_runtime = AsyncLocalRuntime(max_concurrent_nodes=N, **_KAILASH_SETTINGS)
    closing.append(async_runtime)
    return [
        Subject(
            "kailash async",
            build,
            lambda wf: runner.run(async_runtime.execute_workflow_async(wf, {}))[0],
            lambda out: out[last]["output"],
            expected,
            repeat,
        )
    ]


# --------------------------------------------------------------------------- measuring


def _sample(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def measure(subjects: Sequence[Subject], build_repeat: int) -> None:
    """Build samples first, then run samples round-robin across the subjects."""
    built: dict[str, Any] = {}
    for subject in subjects:
        for _ in range(build_repeat if not subject.fresh else 0):
            seconds, obj = _sample(subject.build)
            subject.build_samples.values.append(seconds)
            built[subject.system] = obj
        if subject.fresh:
            continue
        seconds, out = _sample(lambda s=subject: s.run(built[s.system]))  # warm-up, checked, not counted
        _check(subject, out)
    rounds = max(s.repeat for s in subjects)
    for i in range(rounds):
        for subject in subjects:
            if i >= subject.repeat:
                continue
            target = subject.build() if subject.fresh else built[subject.system]
            seconds, out = _sample(lambda s=subject, t=target: s.run(t))
            if subject.fresh and i == 0:
                _check(subject, out)
            subject.run_samples.values.append(seconds)
            del target


def _check(subject: Subject, out: Any) -> None:
    got = subject.expect(out)
    if got != subject.expected:
        raise AssertionError(f"{subject.system} computed {got!r}, expected {subject.expected!r}")


@dataclass
class CaseResult:
    case: str
    nodes: int
    subjects: list[Subject]
    not_run: list[NotRun]

    def get(self, system: str) -> Subject | None:
        return next((s for s in self.subjects if s.system == system), None)


def run_case(case: str, scale: float, runner: LoopRunner, closing: list[Any]) -> CaseResult:
    fast = max(5, round(31 * scale))
    if case == "sleep":
        # A sample lasts ~20 ms and the machine's scheduler moves it by a few: more of them steady the median.
        fast = max(15, round(101 * scale))
    slow = max(3, round(7 * scale))
    subjects: list[Subject] = [floor_subject(case, runner, fast)]
    subjects.extend(dagwright_subjects(case, runner, fast, max(3, round(5 * scale)), closing))
    not_run: list[NotRun] = []
    for peer in (langgraph_subjects(case, runner, slow), kailash_subjects(case, runner, slow, closing)):
        for item in peer:
            if isinstance(item, NotRun):
                not_run.append(item)
            else:
                subjects.append(item)
    measure(subjects, build_repeat=max(3, round(5 * scale)))
    nodes = N if case == "chain" else N + 2
    return CaseResult(case, nodes, subjects, not_run)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report_case(result: CaseResult) -> dict[str, Any]:
    floor = result.get("floor")
    dw = result.get("dagwright")
    assert floor is not None and dw is not None
    per_node = result.case != "sleep"
    unit = "run µs/node" if per_node else "wall ms"
    n = f"{N:,}".replace(",", " ")
    title = {
        "chain": f"chain of {n} no-op nodes",
        "fan": f"fan-out/fan-in: 1 source -> {n} no-op nodes -> 1 join ({result.nodes} nodes)",
        "sleep": f"{n} branches each awaiting sleep({SLEEP_S:g}), fan shape ({result.nodes} nodes)",
    }[result.case]
    table = Table(title, ["system", "build ms", unit, "spread", "vs floor", "this / dagwright"])

    def value(s: Subject) -> float:
        med = s.run_samples.median
        return med / result.nodes * 1e6 if per_node else med * 1e3

    out: dict[str, Any] = {"case": result.case, "nodes": result.nodes, "unit": unit, "systems": {}}
    for s in result.subjects:
        v = value(s)
        build = "(in run)" if s.fresh else f"{s.build_samples.median * 1e3:.1f}"
        table.add(
            s.system,
            build,
            f"{v:.2f}" if per_node else f"{v:.1f}",
            f"{s.run_samples.spread:.0%}",
            _ratio(v, value(floor)),
            _ratio(v, value(dw)),
        )
        out["systems"][s.system] = {
            "value": v,
            "build_ms": None if s.fresh else s.build_samples.median * 1e3,
            "samples": len(s.run_samples.values),
            "spread": s.run_samples.spread,
        }
    for missing in result.not_run:
        table.add(missing.system, "-", "not run", "-", "-", "-")
        out["systems"][missing.system] = {"not_run": missing.reason}
    table.print()
    for missing in result.not_run:
        print(f"  {missing.system} not run: {missing.reason}")
    goals = case_goals(result.case, {s.system: value(s) for s in result.subjects}, unit.split()[-1])
    for goal in goals:
        print(f"  {goal.name}: {goal.value:.2f}{goal.unit} ({'met' if goal.met else 'NOT MET'}); {goal.peers}")
    print(flush=True)
    out["goals"] = [g.to_dict() for g in goals]
    return out


def case_goals(case: str, values: dict[str, float], unit: str) -> list[Goal]:
    """The goals of one scheduler case, from each system's figure (µs/node, or ms of wall time)."""
    floor, dw = values["floor"], values["dagwright"]
    beside = f"floor {floor:.2f} {unit}, dagwright {dw:.2f} {unit}"
    if "dagwright +listener" in values:
        beside += f", with a listener {values['dagwright +listener']:.2f} {unit}"
    if case == "sleep":
        return [Goal(f"{case}: dagwright / floor", dw / floor, TARGET_SLEEP_VS_FLOOR, "x", beside)]
    goals = [Goal(f"{case}: dagwright / floor", dw / floor, TARGET_VS_FLOOR, "x", beside)]
    if "langgraph" in values:
        lg = values["langgraph"]
        goals.append(
            Goal(
                f"{case}: LangGraph / dagwright",
                lg / dw,
                TARGET_VS_LANGGRAPH,
                "x",
                f"LangGraph {lg:.1f} {unit}, dagwright {dw:.2f} {unit}"
                + (f", Kailash {values['kailash']:.1f} {unit}" if "kailash" in values else ""),
                at_least=True,
            )
        )
    return goals


# --------------------------------------------------------------------------- agent overhead


_SERVER_CHILD = """
import sys
from dagwright.testing import OpenAITestServer
with OpenAITestServer() as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


def agent_case(scale: float, runner: LoopRunner) -> dict[str, Any]:
    """agent.run() minus a raw AsyncOpenAI call of the same request, against a server in its own process.

    The server runs in a child process, as a real model server would: in this process its request
    threads would compete with the client for the GIL. Wall p50s are what a caller sees; CPU ms
    (``time.process_time``, this process only, so the client side alone) is the figure that machine
    load does not move.
    """
    try:
        from dagwright.testing import OpenAITestServer
    except ImportError as exc:
        print(f"agent.run() overhead: not run: dagwright.testing.OpenAITestServer is not importable ({exc})\n")
        return {"case": "agent", "not_run": str(exc)}
    import openai

    from dagwright.agent import BaseAgent

    question = "What is the capital of France?"
    settings = {"provider": "openai", "api_key": "test", "model": "gpt-4o-mini"}
    # The exact body the agent sends (messages, response format, model), captured once in-process.
    with OpenAITestServer() as capture:
        BaseAgent(config={**settings, "base_url": capture.base_url}, signature="question: str -> answer: str").run(
            question=question
        )
        body = dict(capture.requests[-1])
    samples = max(50, round(300 * scale))
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        base_url = child.stdout.readline().strip()
        if not base_url:
            raise RuntimeError("the test server child process did not start")
        agent = BaseAgent(config={**settings, "base_url": base_url}, signature="question: str -> answer: str")
        client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)

        async def raw() -> Any:
            if body.get("stream"):  # the agent streams its requests: the raw call reads the same stream to its end
                stream = await client.chat.completions.create(**body)
                return [chunk async for chunk in stream]
            return await client.chat.completions.create(**body)

        async def via_arun() -> Any:
            return await agent.arun(question=question)

        calls: dict[str, Callable[[], Any]] = {
            "raw": lambda: runner.run(raw()),
            "run": lambda: agent.run(question=question),
            "arun": lambda: runner.run(via_arun()),
        }
        for call in calls.values():  # warm-up: clients, connections, templates, pydantic models
            call()
            call()
        wall: dict[str, list[float]] = {k: [] for k in calls}
        cpu: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(samples):
            for name, call in calls.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                call()
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        runner.run(client.close())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    p50 = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
    cpu50 = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    table = Table(
        f"agent overhead over a raw AsyncOpenAI call, OpenAITestServer on loopback ({samples} samples each)",
        ["call", "wall p50 ms", "overhead ms", "client CPU p50 ms", "CPU overhead ms"],
    )
    table.add("raw AsyncOpenAI create", f"{p50['raw']:.3f}", "-", f"{cpu50['raw']:.3f}", "-")
    for key, label in (("run", "agent.run(question=...)"), ("arun", "await agent.arun(...)")):
        table.add(
            label,
            f"{p50[key]:.3f}",
            f"{p50[key] - p50['raw']:.3f}",
            f"{cpu50[key]:.3f}",
            f"{cpu50[key] - cpu50['raw']:.3f}",
        )
    table.print()
    overhead = p50["run"] - p50["raw"]
    verdict = "meets" if overhead <= TARGET_AGENT_MS else "MISSES"
    print(f"  agent.run() wall overhead {overhead:.3f} ms {verdict} the target of <= {TARGET_AGENT_MS:g} ms")
    print("  (the raw call replays the exact request body the agent sent; the server runs in a child process)\n")
    return {
        "case": "agent",
        "wall_p50_ms": p50,
        "cpu_p50_ms": cpu50,
        "overhead_ms": overhead,
        "meets_target": overhead <= TARGET_AGENT_MS,
    }


# --------------------------------------------------------------------------- many agent calls


_LATENCY_SERVER_CHILD = """
import sys
from dagwright.testing import OpenAITestServer
with OpenAITestServer(latency=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


@contextlib.contextmanager
def server_child(latency: float) -> Iterator[str]:
    """An ``OpenAITestServer`` answering after ``latency`` seconds, in a child process; yields its base URL."""
    child = subprocess.Popen(
        [sys.executable, "-c", _LATENCY_SERVER_CHILD, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        base_url = child.stdout.readline().strip()
        if not base_url:
            raise RuntimeError("the test server child process did not start")
        yield base_url
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def calls_case(scale: float, runner: LoopRunner) -> dict[str, Any]:
    """1 000 agent calls to a server answering in 50 ms: a flow of 1 000 independent agents on the built-in
    scheduler beside the same number of raw ``AsyncOpenAI`` calls under one ``asyncio.gather``.

    Both run on one event loop in this process, interleaved sample by sample; the server runs in a child
    process (its request threads would otherwise compete with the client for this process's GIL). The raw
    client is made once with the ``openai`` defaults and kept, so its connections stay warm as dagwright's do.
    """
    import openai

    from dagwright import Flow, Kaizen

    samples = max(3, round(5 * scale))
    messages: Any = [{"role": "user", "content": "topic: tides"}]
    with server_child(CALL_LATENCY_S) as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)
        kaizen = Kaizen()
        config = {"base_url": base_url, "api_key": "test-key", "model": "gpt-4o-mini"}
        flow = Flow("agents")
        for i in range(CALLS):
            flow.add_agent(f"a{i}", kaizen.create_agent(f"a{i}", signature="topic: str -> summary: str", config=config))
        flow.input("topic")

        async def raw() -> None:
            await asyncio.gather(
                *(client.chat.completions.create(model="gpt-4o-mini", messages=messages) for _ in range(CALLS))
            )

        def via_flow() -> None:
            result = runner.run(flow.arun(topic="tides"))
            if not result.success:
                raise RuntimeError(f"dagwright run failed: {result.error}")

        calls: dict[str, Callable[[], Any]] = {"raw": lambda: runner.run(raw()), "dagwright": via_flow}
        for call in calls.values():  # warm-up: clients, connections, prompt templates, schemas
            call()
        wall: dict[str, list[float]] = {k: [] for k in calls}
        cpu: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(samples):
            for name, call in calls.items():
                gc.collect()
                started, started_cpu = time.perf_counter(), time.process_time()
                call()
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        runner.run(client.close())
    p50 = {k: statistics.median(v) for k, v in wall.items()}
    cpu50 = {k: statistics.median(v) for k, v in cpu.items()}
    n = f"{CALLS:,}".replace(",", " ")
    table = Table(
        f"{n} agent calls, server latency {CALL_LATENCY_S * 1e3:g} ms, in a child process ({samples} samples each, "
        f"{load_average()})",
        ["system", "wall s", "calls/s", "client CPU s", "CPU ms/call", "vs raw"],
    )
    labels = {"raw": "raw AsyncOpenAI + gather", "dagwright": "dagwright flow.arun()"}
    for key, label in labels.items():
        table.add(
            label,
            f"{p50[key]:.2f}",
            f"{CALLS / p50[key]:.0f}",
            f"{cpu50[key]:.2f}",
            f"{cpu50[key] / CALLS * 1e3:.2f}",
            _ratio(p50[key], p50["raw"]),
        )
    table.print()
    beside = f"raw AsyncOpenAI + gather {p50['raw']:.2f} s"
    goals = [
        Goal(f"{n} agent calls, built-in scheduler", p50["dagwright"], TARGET_CALLS_S, "s", beside),
        Goal(
            "agent calls: dagwright / raw AsyncOpenAI", p50["dagwright"] / p50["raw"], TARGET_CALLS_VS_RAW, "x", beside
        ),
    ]
    for goal in goals:
        print(f"  {goal.name}: {goal.value:.2f}{goal.unit} ({'met' if goal.met else 'NOT MET'}); {goal.peers}")
    print(flush=True)
    return {
        "case": "calls",
        "calls": CALLS,
        "wall_p50_s": p50,
        "cpu_p50_s": cpu50,
        "goals": [g.to_dict() for g in goals],
    }


# --------------------------------------------------------------------------- main


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]}"]
    for dist in ("dagwright", "langgraph", "kailash", "openai"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} absent")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=None)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    cases = args.cases or list(CASES)
    scale = 0.4 if args.quick else 1.0
    # The peers log and warn at every run (deprecations, missing optional subsystems); the
    # benchmark's output is the tables.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    print(f"runtime benchmark: {_versions()}\n", flush=True)
    results: list[dict[str, Any]] = []
    closing: list[Any] = []
    runner = LoopRunner()
    try:
        for case in cases:
            if case == "agent":
                results.append(agent_case(scale, runner))
            elif case == "calls":
                results.append(calls_case(scale, runner))
            else:
                results.append(report_case(run_case(case, scale, runner, closing)))
    finally:
        for resource in closing:  # Kailash runtimes, checkpoint stores
            close = getattr(resource, "close", None)
            if close is not None:
                close()
        runner.close()
    goals = [g for r in results for g in r.get("goals", ())]
    if goals:
        goals_table(f"runtime goals ({load_average()})", goals).print()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"versions": _versions(), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
