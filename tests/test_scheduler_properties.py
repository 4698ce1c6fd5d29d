"""Scheduler invariants over random DAGs of function nodes, some async, some sync (run in worker threads).

Node ``i`` computes ``i + sum(its inputs)`` (a source node adds the flow input ``seed``),
so a sequential topological evaluation written here gives every expected value. The
node bodies record start and end sequence numbers, which show each node ran once and
only after all of its predecessors had finished.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helpers_runtime import MODES, InFlight, Trace, run_flow, run_in_thread
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright.execution.events import RunResult
from dagwright.flow import Flow

GUARD = 10.0  # a run that has not finished by then is hung


@dataclass(frozen=True)
class Dag:
    preds: tuple[tuple[int, ...], ...]  # preds[i]: the nodes feeding node i, all < i
    is_async: tuple[bool, ...]
    yields: tuple[int, ...]  # how often an async node gives the loop away (0: its body has no await at all)

    @property
    def size(self) -> int:
        return len(self.preds)

    def descendants(self, roots: frozenset[int]) -> set[int]:
        """Nodes strictly downstream of ``roots``."""
        found: set[int] = set()
        for i in range(self.size):
            if any(j in roots or j in found for j in self.preds[i]):
                found.add(i)
        return found


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 30) -> Dag:
    n = draw(st.integers(min_value=1, max_value=max_nodes))
    preds: list[tuple[int, ...]] = [()]
    for i in range(1, n):
        chosen = draw(st.lists(st.integers(min_value=0, max_value=i - 1), unique=True, max_size=min(i, 4)))
        preds.append(tuple(sorted(chosen)))
    is_async = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    yields = draw(st.lists(st.integers(min_value=0, max_value=2), min_size=n, max_size=n))
    return Dag(tuple(preds), tuple(is_async), tuple(yields))


def expected_values(dag: Dag, seed: int) -> list[int]:
    """The reference: evaluate the nodes one by one in index order (a topological order)."""
    values: list[int] = []
    for i, preds in enumerate(dag.preds):
        values.append(i + (sum(values[j] for j in preds) if preds else seed))
    return values


def node_function(
    dag: Dag, i: int, trace: Trace, inflight: InFlight, failing: frozenset[int] = frozenset()
) -> Callable[..., Any]:
    """The function of node ``i``: one ``int`` parameter per predecessor (``seed`` for a source)."""
    names = [f"p{j}" for j in dag.preds[i]] or ["seed"]
    name = f"n{i}"

    def compute(inputs: dict[str, int]) -> int:
        if i in failing:
            raise RuntimeError(f"{name} fails")
        return i + sum(inputs.values())

    fn: Callable[..., Any]
    if dag.is_async[i] and dag.yields[i] == 0:

        async def awaits_nothing(**inputs: int) -> int:
            # No await at all: the scheduler runs such a node in place, without a task.
            with inflight.inside():
                trace.start(name)
                try:
                    return compute(inputs)
                finally:
                    trace.end(name)

        fn = awaits_nothing
    elif dag.is_async[i]:

        async def async_body(**inputs: int) -> int:
            with inflight.inside():
                trace.start(name)
                for _ in range(dag.yields[i]):
                    await asyncio.sleep(0)
                try:
                    return compute(inputs)
                finally:
                    trace.end(name)

        fn = async_body
    else:

        def sync_body(**inputs: int) -> int:
            with inflight.inside():
                trace.start(name)
                try:
                    return compute(inputs)
                finally:
                    trace.end(name)

        fn = sync_body
    # The flow reads a function's inputs from its signature and annotations: give it named, typed ones.
    fn.__signature__ = inspect.Signature(  # type: ignore[union-attr]
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int) for p in names],
        return_annotation=int,
    )
    fn.__annotations__ = {**dict.fromkeys(names, int), "return": int}
    fn.__qualname__ = fn.__name__ = name
    return fn


def build_flow(dag: Dag, trace: Trace, inflight: InFlight, failing: frozenset[int] = frozenset()) -> Flow:
    flow = Flow("random-dag")
    for i in range(dag.size):
        flow.add_function(f"n{i}", node_function(dag, i, trace, inflight, failing))
    for i, preds in enumerate(dag.preds):
        for j in preds:
            flow.connect(f"n{j}.output", f"n{i}.p{j}")
        flow.output(f"v{i}", f"n{i}.output")
    flow.input("seed", int)
    return flow


def run_guarded(mode: str, flow: Flow, **kwargs: Any) -> RunResult:
    result: RunResult = run_in_thread(lambda: run_flow(mode, flow, **kwargs), timeout=GUARD)
    return result


def assert_ran_after_predecessors(dag: Dag, trace: Trace, ran: set[int]) -> None:
    for i in ran:
        for j in dag.preds[i]:
            assert j in ran, f"n{i} ran although its predecessor n{j} did not"
            assert trace.seq("end", f"n{j}") < trace.seq("start", f"n{i}"), f"n{i} started before n{j} ended"


@settings(max_examples=60)
@given(
    dag=dags(),
    seed=st.integers(min_value=-100, max_value=100),
    mode=st.sampled_from(MODES),
    max_concurrency=st.sampled_from([None, 1, 2, 8]),
)
def test_every_node_runs_once_after_its_predecessors_and_outputs_match_a_sequential_evaluation(
    dag: Dag, seed: int, mode: str, max_concurrency: int | None
) -> None:
    trace, inflight = Trace(), InFlight()
    flow = build_flow(dag, trace, inflight)

    result = run_guarded(mode, flow, seed=seed, max_concurrency=max_concurrency)

    assert result.success, result.error
    expected = expected_values(dag, seed)
    assert result.outputs == {f"v{i}": expected[i] for i in range(dag.size)}
    for i in range(dag.size):
        record = result.nodes[f"n{i}"]
        assert (record.status, record.attempts, record.outputs) == ("done", 1, {"output": expected[i]})
        assert trace.count("start", f"n{i}") == 1
        assert trace.count("end", f"n{i}") == 1
    assert_ran_after_predecessors(dag, trace, set(range(dag.size)))
    if max_concurrency is not None:
        assert inflight.most <= max_concurrency


@settings(max_examples=40)
@given(dag=dags(), seed=st.integers(min_value=0, max_value=50), mode=st.sampled_from(MODES), data=st.data())
def test_continue_mode_skips_exactly_the_descendants_of_failed_nodes(
    dag: Dag, seed: int, mode: str, data: st.DataObject
) -> None:
    failing = frozenset(data.draw(st.lists(st.integers(min_value=0, max_value=dag.size - 1), min_size=1, max_size=3)))
    trace, inflight = Trace(), InFlight()
    flow = build_flow(dag, trace, inflight, failing)

    result = run_guarded(mode, flow, seed=seed, failure_mode="continue")

    downstream = dag.descendants(failing)
    failed = failing - downstream  # a failing node below another failure never runs
    done = set(range(dag.size)) - failing - downstream
    statuses = {i: result.nodes[f"n{i}"].status for i in range(dag.size)}
    assert statuses == {i: "failed" if i in failed else "skipped" if i in downstream else "done" for i in statuses}
    assert not result.success
    assert result.error == "; ".join(f"n{i}: RuntimeError: n{i} fails" for i in sorted(failed))
    expected = expected_values(dag, seed)
    assert result.outputs == {f"v{i}": expected[i] for i in sorted(done)}
    for i in downstream:
        reason = result.nodes[f"n{i}"].skip_reason
        assert reason is not None and reason.startswith("input 'p"), reason
    ran = {i for i in range(dag.size) if trace.count("start", f"n{i}")}
    assert ran == done | failed
    assert all(trace.count("start", f"n{i}") == 1 for i in ran)
    assert_ran_after_predecessors(dag, trace, ran)


@settings(max_examples=40)
@given(dag=dags(), seed=st.integers(min_value=0, max_value=50), mode=st.sampled_from(MODES), data=st.data())
def test_fail_fast_always_ends_with_one_failure_and_every_node_resolved(
    dag: Dag, seed: int, mode: str, data: st.DataObject
) -> None:
    failing = frozenset(data.draw(st.lists(st.integers(min_value=0, max_value=dag.size - 1), min_size=1, max_size=3)))
    max_concurrency = data.draw(st.sampled_from([None, 1, 3]))
    trace, inflight = Trace(), InFlight()
    flow = build_flow(dag, trace, inflight, failing)

    result = run_guarded(mode, flow, seed=seed, max_concurrency=max_concurrency)

    statuses = {i: result.nodes[f"n{i}"].status for i in range(dag.size)}
    assert set(statuses.values()) <= {"done", "failed", "cancelled"}
    failed = [i for i, status in statuses.items() if status == "failed"]
    assert len(failed) == 1 and failed[0] in failing
    assert result.error == f"n{failed[0]}: RuntimeError: n{failed[0]} fails"
    assert all(statuses[i] == "cancelled" for i in dag.descendants(frozenset(failed)))
    expected = expected_values(dag, seed)
    for i, status in statuses.items():
        if status == "done":
            assert result.nodes[f"n{i}"].outputs == {"output": expected[i]}
            assert all(statuses[j] == "done" for j in dag.preds[i])
    ran = {i for i in range(dag.size) if trace.count("start", f"n{i}")}
    assert all(trace.count("start", f"n{i}") == 1 for i in ran)
    assert {i for i, s in statuses.items() if s != "cancelled"} <= ran
