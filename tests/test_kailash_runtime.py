"""Running lowered flows on Kailash: equal results to the built-in scheduler, failures surfaced, values untouched.

Every run here uses the real ``kailash`` package: ``LocalRuntime`` and ``AsyncLocalRuntime``,
through dagwright's helper (``flow.run_kailash``) and directly (``runtime.execute(flow.build())``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from function_flows import join, join_node, random_function_flows
from helpers_runtime import registered_kind
from hypothesis import given, settings
from kailash.nodes.code import PythonCodeNode
from kailash.runtime.async_local import AsyncLocalRuntime
from kailash.runtime.local import LocalRuntime
from kailash.sdk_exceptions import RuntimeExecutionError
from kailash.tracking import TaskManager, TaskStatus
from kailash.tracking.storage.deferred import DeferredStorageBackend
from pattern_cases import pattern_cases

import dagwright
from dagwright import BaseAgent, Flow, Kaizen, Node, Port, RetryPolicy
from dagwright.backends.kailash.nodes import DagwrightAgentNode, NodeOutputs
from dagwright.backends.kailash.runtime import FAST_SETTINGS, async_runtime, run_on_kailash
from dagwright.compiler.types import INT, STR, list_of
from dagwright.execution.events import RunResult
from dagwright.execution.executor import Executor, NodeContext
from dagwright.testing import OpenAITestServer

RUNTIMES = ("local", "async")
runtime_param = pytest.mark.parametrize("runtime", RUNTIMES)


pytestmark = pytest.mark.usefixtures("quiet_kailash")


def statuses(result: RunResult) -> dict[str, str]:
    return {node_id: record.status for node_id, record in result.nodes.items()}


# ----------------------------------------------------------------------------- random DAGs of function nodes


@settings(max_examples=30)
@given(random_function_flows())
def test_random_function_dags_give_the_same_results_on_kailash(case: tuple[Flow, dict[str, int]]) -> None:
    flow, values = case
    builtin = flow.run(values)
    kailash = flow.run_kailash(values)
    assert builtin.success and kailash.success, (builtin.error, kailash.error)
    assert kailash.outputs == builtin.outputs
    assert statuses(kailash) == statuses(builtin)
    for node_id, record in builtin.nodes.items():
        assert kailash.nodes[node_id].outputs == record.outputs


@settings(max_examples=10)
@given(random_function_flows())
def test_random_function_dags_run_directly_on_kailash_runtimes(case: tuple[Flow, dict[str, int]]) -> None:
    flow, values = case
    expected = flow.run(values)
    params = flow.kailash_parameters(values)
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(flow.build(), parameters=params)
    assert {k: dict(v) for k, v in results.items()} == {
        k: r.outputs for k, r in expected.nodes.items() if not k.startswith(("input:", "output:"))
    }
    async_result = flow.run_kailash(values, runtime="async")
    assert async_result.outputs == expected.outputs


@settings(max_examples=10)
@given(random_function_flows())
def test_random_function_dags_take_flat_parameters_on_both_runtimes(case: tuple[Flow, dict[str, int]]) -> None:
    flow, values = case
    expected = {k: r.outputs for k, r in flow.run(values).nodes.items() if not k.startswith(("input:", "output:"))}
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(flow.build(), parameters=dict(values))
    assert {k: dict(v) for k, v in results.items()} == expected
    engine = async_runtime()
    try:
        results, _ = asyncio.run(engine.execute_workflow_async(flow.build(), inputs=dict(values)))
    finally:
        engine.close()
    assert {k: dict(v) for k, v in results.items()} == expected


# ----------------------------------------------------------------------------- collect ports and fan-in


def one() -> int:
    return 1


def two() -> int:
    return 2


def three() -> int:
    return 3


def collect_flow() -> Flow:
    flow = Flow("collect")
    for fn in (three, one, two):
        flow.add_function(fn.__name__, fn)
    flow.add_node(join_node("join"), join)
    for source in ("two", "three", "one", "two", "three"):
        flow.connect(f"{source}.output", "join.values")
    flow.output("values", "join.output")
    return flow


@runtime_param
def test_collect_port_keeps_edge_order_and_repeated_sources(runtime: str) -> None:
    result = collect_flow().run_kailash(runtime=runtime)
    assert result.success
    assert result.outputs == {"values": [2, 3, 1, 2, 3]}


def test_collect_inputs_are_distinct_kailash_inputs() -> None:
    workflow = collect_flow().build()
    mapping = {
        (c.source_node, c.target_input) for c in workflow.connections if c.target_node == "join"
    }  # one connection per distinct source, each into its own input
    assert mapping == {("two", "values_from_two"), ("three", "values_from_three"), ("one", "values_from_one")}
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(workflow)
    assert results["join"] == {"output": [2, 3, 1, 2, 3]}


def pair(a: int, b: int) -> list[int]:
    return [a, b]


@runtime_param
def test_one_output_feeding_two_inputs_of_one_node_delivers_both(runtime: str) -> None:
    flow = Flow("fan")
    flow.add_function("three", three)
    flow.add_function("pair", pair)
    flow.connect("three.output", "pair.a")
    flow.connect("three.output", "pair.b")
    result = flow.run_kailash(runtime=runtime)
    assert result.outputs == {"output": [3, 3]}
    assert [(c.source_output, c.target_input) for c in flow.build().connections] == [("output", "a")]


# ----------------------------------------------------------------------------- values pass unchanged


def echo(items: list[str]) -> Any:
    return items


@pytest.mark.parametrize(
    "make_runtime",
    [
        pytest.param(lambda: LocalRuntime(), id="LocalRuntime-defaults"),
        pytest.param(lambda: LocalRuntime(**FAST_SETTINGS), id="LocalRuntime-fast"),
    ],
)
def test_a_string_sent_to_a_list_input_arrives_unchanged(make_runtime: Callable[[], Any]) -> None:
    flow = Flow("echo")
    flow.add_function("echo", echo)
    flow.input("items")
    with make_runtime() as runtime:
        results, _ = runtime.execute(flow.build(), parameters={"echo": {"items": "abc"}})
    assert results["echo"] == {"output": "abc"}


def test_strict_validation_catches_a_mismatched_hand_wired_connection(kaizen: Kaizen) -> None:
    """A Kailash node's float into an agent's list[str] input: Kailash's strict mode stops the run there."""
    workflow = dagwright.WorkflowBuilder()
    workflow.add_node("PythonCodeNode", "score", {"code": "result = 0.5"})
    workflow.add_agent(kaizen.create_agent("tagger", signature="tags: list[str] -> summary: str"), "tagger")
    workflow.add_node("PythonCodeNode", "shout", {"code": "result = text.upper()"})
    workflow.add_connection("score", "result", "tagger", "tags")
    workflow.add_connection("tagger", "summary", "shout", "text")
    with LocalRuntime(connection_validation="strict") as runtime, pytest.raises(RuntimeExecutionError) as caught:
        runtime.execute(workflow.build())
    assert "node 'tagger': input 'tags' takes list[str], got float 0.5" in str(caught.value)
    # Unchecked, it gets as far as the agent, which refuses it only when it runs.
    with LocalRuntime(connection_validation="off") as runtime, pytest.raises(RuntimeExecutionError) as late:
        runtime.execute(workflow.build())
    assert "InputValidationError: tagger: input 'tags' expects list[str], got float 0.5" in str(late.value)


def test_a_string_sent_to_a_list_input_arrives_unchanged_on_async_local_runtime() -> None:
    flow = Flow("echo")
    flow.add_function("echo", echo)
    flow.input("items")

    async def main() -> Any:
        runtime = AsyncLocalRuntime()
        try:
            return await runtime.execute_workflow_async(flow.build(), inputs={"echo": {"items": "abc"}})
        finally:
            runtime.close()

    results, _ = asyncio.run(main())
    assert results["echo"] == {"output": "abc"}


class Opaque:
    """Not JSON: Kailash's own output validation would refuse it."""

    def __init__(self, n: int) -> None:
        self.n = n


def make_opaque() -> Opaque:
    return Opaque(7)


def unwrap(box: Opaque) -> int:
    return box.n


def test_values_that_are_not_json_flow_between_nodes() -> None:
    flow = Flow("opaque")
    flow.add_function("make", make_opaque)
    flow.add_function("unwrap", unwrap)
    flow.connect("make.output", "unwrap.box")
    flow.output("n", "unwrap.output")
    assert flow.run_kailash().outputs == {"n": 7}


def result_of(x: int) -> int:
    return x * 10


@runtime_param
def test_an_output_named_result_is_the_value_on_both_runtimes(runtime: str) -> None:
    # AsyncLocalRuntime hands over a source's whole result for an output called "result".
    flow = Flow("result-port")
    flow.add_function("three", three, output="result")
    flow.add_function("times", result_of)
    flow.connect("three.result", "times.x")
    assert flow.run_kailash(runtime=runtime).outputs == {"output": 30}


# ----------------------------------------------------------------------------- outputs that are not produced


def _gate(node: Node, binding: object) -> Executor:
    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"yes": inputs["x"]} if inputs["x"] > 0 else {"no": inputs["x"]}

    return run


def inc(x: int) -> int:
    return x + 1


@pytest.fixture
def gate_kind() -> Iterator[None]:
    with registered_kind("test_gate", _gate):
        yield


def gate_flow() -> Flow:
    flow = Flow("gate")
    flow.add_node(Node("gate", "test_gate", (Port("x", INT),), (Port("yes", INT), Port("no", INT))))
    flow.add_function("on_yes", inc)
    flow.add_function("on_no", inc)
    flow.add_function("after_yes", inc)
    flow.connect("gate.yes", "on_yes.x")
    flow.connect("gate.no", "on_no.x")
    flow.connect("on_yes.output", "after_yes.x")
    flow.input("x", int)
    flow.output("yes", "after_yes.output")
    flow.output("no", "on_no.output")
    return flow


@runtime_param
@pytest.mark.parametrize("x", [5, -5])
def test_a_kind_registered_later_lowers_and_unproduced_outputs_skip_like_the_builtin_runtime(
    gate_kind: None, runtime: str, x: int
) -> None:
    flow = gate_flow()
    expected = flow.run(x=x)
    result = flow.run_kailash(x=x, runtime=runtime)
    assert result.success
    assert result.outputs == expected.outputs == ({"yes": 7} if x > 0 else {"no": -4})
    assert statuses(result) == statuses(expected)
    skipped = "on_no" if x > 0 else "on_yes"
    assert result.nodes[skipped].skip_reason == expected.nodes[skipped].skip_reason
    assert flow.build().get_node("gate").__class__.__name__ == "DagwrightNode"


# ----------------------------------------------------------------------------- failures


def boom(x: int) -> int:
    raise ValueError(f"boom on {x}")


def failing_end_flow() -> Flow:
    flow = Flow("fails")
    flow.add_function("one", one)
    flow.add_function("two", two)
    flow.add_function("boom", boom)
    flow.connect("one.output", "boom.x")
    flow.output("two", "two.output")
    flow.output("boom", "boom.output")
    return flow


def test_kailash_alone_swallows_a_failing_end_node() -> None:
    # What the helper guards against: LocalRuntime returns normally and hides the failure in the results.
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(failing_end_flow().build())
    assert results["boom"]["failed"] is True
    assert results["boom"]["error"] == "ValueError: boom on 1"  # keyed by the node: no prefix of its own
    assert results["two"] == {"output": 2}
    assert [node for node, out in results.items() if out.get("failed")] == ["boom"]  # how to see it (README)


def test_async_local_runtime_names_a_failed_node_once() -> None:
    engine = async_runtime()
    try:
        with pytest.raises(Exception) as caught:
            asyncio.run(engine.execute_workflow_async(failing_end_flow().build(), inputs={}))
    finally:
        engine.close()
    message = str(caught.value)
    assert "Node 'boom' execution failed: ValueError: boom on 1" in message
    assert message.count("boom' execution failed") == 1


@runtime_param
def test_a_failing_end_node_is_reported(runtime: str) -> None:
    result = failing_end_flow().run_kailash(runtime=runtime)
    assert result.success is False
    assert result.error == "boom: ValueError: boom on 1"
    record = result.nodes["boom"]
    assert (record.status, record.error_type, record.error, record.attempts) == ("failed", "ValueError", "boom on 1", 1)
    assert result.failed == [record]


def test_a_failing_end_node_does_not_hide_other_outputs_on_local_runtime() -> None:
    result = failing_end_flow().run_kailash()
    assert result.outputs == {"two": 2}
    assert result.nodes["two"].status == "done"
    assert result.nodes["output:boom"].status == "cancelled"


@runtime_param
def test_a_failing_middle_node_stops_the_run_and_cancels_what_depends_on_it(runtime: str) -> None:
    flow = Flow("middle")
    flow.add_function("one", one)
    flow.add_function("boom", boom)
    flow.add_function("after", inc)
    flow.connect("one.output", "boom.x")
    flow.connect("boom.output", "after.x")
    result = flow.run_kailash(runtime=runtime)
    assert result.success is False
    assert result.error == "boom: ValueError: boom on 1"
    assert statuses(result) == {
        "one": "done",
        "boom": "failed",
        "after": "cancelled",
        "output:output": "cancelled",
    }
    assert result.nodes["after"].skip_reason == "cancelled: boom failed"
    with pytest.raises(RuntimeExecutionError, match="boom on 1"), LocalRuntime(**FAST_SETTINGS) as runtime_:
        runtime_.execute(flow.build())


def test_a_cancelled_node_is_marked_skipped_in_kailash_task_tracking() -> None:
    # Its task ran as a no-op and is COMPLETED; it says it did not run, as Kailash says of a branch not taken.
    # The failed node's task stays COMPLETED with no result: COMPLETED admits no other status.
    flow = Flow("middle")
    flow.add_function("one", one)
    flow.add_function("boom", boom)
    flow.add_function("after", inc)
    flow.connect("one.output", "boom.x")
    flow.connect("boom.output", "after.x")
    manager = TaskManager(storage_backend=DeferredStorageBackend())
    assert flow.run_kailash(task_manager=manager).nodes["after"].status == "cancelled"
    (run,) = manager.list_runs()
    tasks = {task.node_id: task for task in manager.get_run_tasks(run.run_id)}
    assert {n: t.metadata.get("reason") for n, t in tasks.items() if t.metadata.get("skipped")} == {
        "after": "cancelled: boom failed"
    }
    assert (tasks["boom"].status, tasks["boom"].result) == (TaskStatus.COMPLETED, None)


def flaky_function(failures: int) -> tuple[Callable[[int], int], list[int]]:
    """A function that fails its first ``failures`` calls; the list counts the calls."""
    calls: list[int] = []
    lock = threading.Lock()

    def flaky(x: int) -> int:
        with lock:
            calls.append(x)
            if len(calls) <= failures:
                raise ConnectionError(f"attempt {len(calls)} failed")
        return x + 100

    return flaky, calls


@runtime_param
def test_node_retry_policy_applies_on_kailash(runtime: str) -> None:
    flaky, calls = flaky_function(failures=2)
    flow = Flow("retry")
    flow.add_function("one", one)
    flow.add_function("flaky", flaky)
    flow.connect("one.output", "flaky.x")
    flow.configure("flaky", retry=RetryPolicy(max_attempts=3, initial_delay=0, jitter=0))
    result = flow.run_kailash(runtime=runtime)
    assert result.outputs == {"output": 101}
    assert (result.nodes["flaky"].attempts, len(calls)) == (3, 3)

    calls.clear()
    flow.configure("flaky", retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0))
    failed = flow.run_kailash(runtime=runtime)
    assert failed.error == "flaky: ConnectionError: attempt 2 failed"
    assert failed.nodes["flaky"].attempts == 2


def test_bad_inputs_are_refused_before_anything_runs() -> None:
    flow = Flow("inputs")
    flow.add_function("inc", inc)
    flow.input("count", to="inc.x")
    with pytest.raises(ValueError, match=r"flow 'inputs' has no input 'cont' \(did you mean 'count'\?\); its inputs"):
        flow.run_kailash(cont=1)
    with pytest.raises(ValueError, match=r"flow 'inputs' needs input\(s\) 'count'"):
        flow.run_kailash()


def test_an_invalid_flow_raises_its_compile_error() -> None:
    flow = Flow("broken")
    flow.add_function("three", three)
    flow.add_function("echo", echo)
    flow.connect("three.output", "echo.items")
    for lower in (flow.to_kailash, flow.build, flow.run_kailash):
        with pytest.raises(dagwright.CompileError, match="DW007"):
            lower()


# ----------------------------------------------------------------------------- agents


@pytest.fixture
def kaizen() -> Kaizen:
    return Kaizen()


def research_flow(kaizen: Kaizen) -> Flow:
    """A pipeline into a fan-out of critics, joined by a collect port, judged by a last agent."""
    research = kaizen.create_agent("research", signature="topic: str -> findings: list[str], summary: str")
    optimist = kaizen.create_agent("optimist", signature="summary: str -> view: str")
    skeptic = kaizen.create_agent("skeptic", signature="summary: str -> view: str")
    judge = kaizen.create_agent("judge", signature="views: list[str], topic: str -> verdict: str, confidence: float")
    flow = Flow("research")
    flow.add_agent("research", research)
    flow.add_agent("optimist", optimist)
    flow.add_agent("skeptic", skeptic)
    flow.add_node(
        Node("views", "function", (Port("views", list_of(STR), collect=True),), (Port("output", list_of(STR)),)),
        lambda views: views,
    )
    flow.add_agent("judge", judge)
    flow.connect("research.summary", "optimist.summary")
    flow.connect("research.summary", "skeptic.summary")
    flow.connect("optimist.view", "views.views")
    flow.connect("skeptic.view", "views.views")
    flow.connect("views.output", "judge.views")
    flow.input("topic")
    flow.output("verdict", "judge.verdict")
    flow.output("findings", "research.findings")
    return flow


@runtime_param
def test_agent_flows_give_the_same_results_with_the_offline_model(kaizen: Kaizen, runtime: str) -> None:
    flow = research_flow(kaizen)
    builtin = flow.run(topic="solar power")
    kailash = flow.run_kailash(topic="solar power", runtime=runtime)
    assert kailash.success, kailash.error
    assert kailash.outputs == builtin.outputs
    assert statuses(kailash) == statuses(builtin)
    for node_id in ("research", "optimist", "skeptic", "judge"):
        mine, theirs = kailash.nodes[node_id], builtin.nodes[node_id]
        assert (mine.outputs, mine.usage, mine.model) == (theirs.outputs, theirs.usage, theirs.model)
    assert kailash.usage.total == builtin.usage.total > 0


@pytest.mark.parametrize(("name", "make", "inputs"), list(pattern_cases()), ids=[c[0] for c in pattern_cases()])
def test_every_pattern_gives_the_same_results_on_both_kailash_runtimes(
    kaizen: Kaizen, name: str, make: Callable[[Kaizen], Flow], inputs: dict[str, Any]
) -> None:
    flow = make(kaizen)
    builtin = flow.run(inputs)
    assert builtin.success, builtin.error
    for runtime in RUNTIMES:
        kailash = flow.run_kailash(inputs, runtime=runtime)
        assert kailash.success, (runtime, kailash.error)
        assert kailash.outputs == builtin.outputs, runtime
        assert statuses(kailash) == statuses(builtin), runtime
        assert kailash.usage.total == builtin.usage.total, runtime


def test_independent_agents_run_concurrently_on_async_local_runtime(kaizen: Kaizen) -> None:
    with OpenAITestServer(latency=0.3) as server:
        config = {"base_url": server.base_url, "api_key": "test-key", "model": "gpt-4o-mini"}
        flow = Flow("pair")
        flow.add_agent("a", kaizen.create_agent("a", signature="topic: str -> summary: str", config=config))
        flow.add_agent("b", kaizen.create_agent("b", signature="topic: str -> angle: str", config=config))
        flow.input("topic")
        concurrent = flow.run_kailash(topic="tides", runtime="async")
        sequential = flow.run_kailash(topic="tides", runtime="local")
    assert concurrent.success and sequential.success

    def overlap(result: RunResult) -> bool:
        a, b = result.nodes["a"], result.nodes["b"]
        assert None not in (a.started_at, a.ended_at, b.started_at, b.ended_at)
        return a.started_at < b.ended_at and b.started_at < a.ended_at  # type: ignore[operator]

    assert overlap(concurrent) is True
    assert overlap(sequential) is False
    assert concurrent.outputs == sequential.outputs


def test_independent_async_functions_run_at_once_on_async_local_runtime() -> None:
    # Each branch waits until all three have started: only concurrent branches get past it.
    arrived: list[int] = []
    everyone: dict[str, asyncio.Event] = {}

    async def branch(x: int) -> int:
        event = everyone.setdefault("in", asyncio.Event())
        arrived.append(x)
        if len(arrived) == 3:
            event.set()
        await asyncio.wait_for(event.wait(), 5.0)
        return x

    flow = Flow("barrier")
    for i in range(3):
        flow.add_function(f"b{i}", branch)
    flow.input("x", int)
    result = flow.run_kailash(x=4, runtime=async_runtime(max_concurrent_nodes=3))
    assert result.success, result.error
    assert result.outputs == {"b0.output": 4, "b1.output": 4, "b2.output": 4}


# ----------------------------------------------------------------------------- the seed snippets


def test_seed_agent_to_workflow_on_local_runtime(kaizen: Kaizen) -> None:
    qa = kaizen.create_agent("qa", signature="question: str, context: str = 'none' -> answer: str, confidence: float")
    expected = qa.run(question="What is ML?")
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(qa.to_workflow().build(), parameters={"qa": {"question": "What is ML?"}})
    assert results["qa"] == {"answer": expected["answer"], "confidence": expected["confidence"]}
    assert isinstance(results["qa"], NodeOutputs)


def test_seed_to_workflow_node_parameters_are_the_signature_inputs(kaizen: Kaizen) -> None:
    qa = kaizen.create_agent("qa", signature="question: str, context: str = 'none' -> answer: str")
    node = qa.to_workflow_node("qa")
    assert isinstance(node, DagwrightAgentNode)
    assert node.id == "qa"
    params = node.get_parameters()
    assert list(params) == ["question", "context"]
    assert [(p.required, p.default) for p in params.values()] == [(True, None), (False, "none")]
    outputs = node.execute(question="What is ML?")
    direct = qa.run(question="What is ML?")
    assert outputs == {"answer": direct["answer"]}


def test_seed_add_agent_and_add_connection(kaizen: Kaizen) -> None:
    research = kaizen.create_agent("research", signature="topic: str -> findings: list[str]")
    writer = kaizen.create_agent("writer", signature="findings: list[str] -> article: str")
    workflow = dagwright.WorkflowBuilder()
    workflow.add_agent(research, "research")
    workflow.add_agent(writer, "writer")
    workflow.add_connection("research", "findings", "writer", "findings")
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(workflow.build(), parameters={"research": {"topic": "bees"}})
    flow = Flow("same")
    flow.add_agent("research", research)
    flow.add_agent("writer", writer)
    flow.connect("research.findings", "writer.findings")
    flow.input("topic")
    expected = flow.run(topic="bees")
    assert results == {"research": expected.nodes["research"].outputs, "writer": expected.nodes["writer"].outputs}


def test_seed_runtime_execute_flow_build(kaizen: Kaizen) -> None:
    debate = research_flow(kaizen)
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(
            debate.build(), parameters={"research": {"topic": "nuclear"}, "judge": {"topic": "nuclear"}}
        )
    expected = debate.run(topic="nuclear")
    assert results["judge"]["verdict"] == expected.outputs["verdict"]
    assert set(results) == {"research", "optimist", "skeptic", "views", "judge"}


def test_flat_parameters_reach_the_consumers_on_local_runtime(kaizen: Kaizen) -> None:
    debate = research_flow(kaizen)
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        flat, _ = runtime.execute(debate.build(), parameters={"topic": "nuclear"})
    assert flat["judge"]["verdict"] == debate.run(topic="nuclear").outputs["verdict"]
    assert debate.kailash_parameters(topic="nuclear") == {
        "research": {"topic": "nuclear"},
        "judge": {"topic": "nuclear"},
    }


def test_mixed_workflow_with_python_code_nodes(kaizen: Kaizen) -> None:
    research = kaizen.create_agent("research", signature="topic: str -> summary: str")
    workflow = dagwright.WorkflowBuilder()
    workflow.add_node("PythonCodeNode", "prep", {"code": "result = 'about ' + subject"})
    workflow.add_agent(research, "research")
    workflow.add_node("PythonCodeNode", "shout", {"code": "result = text.upper()"})
    workflow.add_connection("prep", "result", "research", "topic")
    workflow.add_connection("research", "summary", "shout", "text")
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(workflow.build(), parameters={"prep": {"subject": "owls"}})
    summary = research.run(topic="about owls")["summary"]
    assert results == {
        "prep": {"result": "about owls"},
        "research": {"summary": summary},
        "shout": {"result": summary.upper()},
    }
    assert isinstance(workflow.build().get_node("prep"), PythonCodeNode)


def test_an_agent_instance_added_to_a_plain_kailash_builder(kaizen: Kaizen) -> None:
    from kailash.workflow.builder import WorkflowBuilder as KailashBuilder

    qa = kaizen.create_agent("qa", signature="question: str -> answer: str")
    builder = KailashBuilder()
    with pytest.warns(UserWarning, match="Instance-based API"):
        builder.add_node(qa.to_workflow_node("ask"), "ask")
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(builder.build(), parameters={"ask": {"question": "Why?"}})
    assert results == {"ask": {"answer": qa.run(question="Why?")["answer"]}}


def test_agent_subclass_strategy_runs_on_kailash() -> None:
    class Fixed:
        async def execute(self, agent: BaseAgent, inputs: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"answer": f"fixed: {inputs['question']}"}

    agent = BaseAgent(signature="question -> answer", strategy=Fixed(), name="fixed")
    flow = Flow.from_agent(agent, "fixed")
    assert flow.run_kailash(question="q").outputs == {"answer": "fixed: q"}


def test_missing_parameter_is_a_clear_kailash_error(kaizen: Kaizen) -> None:
    qa = kaizen.create_agent("qa", signature="question: str -> answer: str")
    node = qa.to_workflow_node("qa")
    with pytest.raises(Exception, match=r"no value for required input 'question'; pass parameters=\{'qa'"):
        node.execute()


def test_runs_inside_a_running_event_loop() -> None:
    flow = collect_flow()

    async def main() -> tuple[RunResult, RunResult]:
        return flow.run_kailash(), await flow.arun_kailash(runtime="async")

    sync_result, async_result = asyncio.run(main())
    assert sync_result.outputs == async_result.outputs == {"values": [2, 3, 1, 2, 3]}


def test_a_runtime_instance_is_used_and_left_open() -> None:
    runtime = LocalRuntime(**FAST_SETTINGS)
    try:
        for _ in range(2):
            assert run_on_kailash(collect_flow(), runtime=runtime).outputs == {"values": [2, 3, 1, 2, 3]}
    finally:
        runtime.close()
    with pytest.raises(ValueError, match="runtime must be 'local', 'async' or a Kailash runtime"):
        collect_flow().run_kailash(runtime="threads")


def test_run_ids_are_given_or_fresh() -> None:
    flow = collect_flow()
    assert flow.run_kailash(run_id="r-1").run_id == "r-1"
    ids = {flow.run_kailash().run_id for _ in range(2)}
    assert len(ids) == 2


@pytest.mark.parametrize("runtime", ["local", "async"])
def test_a_node_timeout_holds_on_kailash_runtimes(runtime: str) -> None:
    async def stalls(x: int) -> int:
        await asyncio.sleep(30)
        return x

    async def quick(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    flow = Flow("timeouts")
    flow.add_function("stalls", stalls)
    flow.add_function("quick", quick)
    flow.input("x", int)
    flow.configure("stalls", timeout=0.2)
    flow.configure("quick", timeout=10)
    options: dict[str, Any] = {"runtime": "async"} if runtime == "async" else {}
    on_kailash = flow.run_kailash(x=1, failure_mode="continue", **options)
    built_in = flow.run(x=1, failure_mode="continue")
    assert on_kailash.error == built_in.error == "stalls: TimeoutError: node 'stalls' timed out after 0.2 s"
    assert on_kailash.nodes["quick"].outputs == built_in.nodes["quick"].outputs == {"output": 2}
