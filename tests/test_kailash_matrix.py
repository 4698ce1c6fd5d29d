"""Every pattern on every Kailash path, the Kailash way too: the same outputs, LLM calls and failed node.

The paths: the built-in scheduler (the reference), ``flow.run_kailash`` on ``LocalRuntime`` and
``AsyncLocalRuntime``, and the raw runtimes given ``flow.build()`` with node-specific parameters
(``{"research": {"topic": ...}}``) and with flat ones (``{"topic": ...}``), as a Kailash user
passes them. Raw runs are recorded with :func:`dagwright.backends.kailash.nodes.recording`, which
only watches: it counts the LLM calls each node made.
"""

from __future__ import annotations

import asyncio
import logging
import runpy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from kailash.runtime.async_local import AsyncLocalRuntime
from kailash.runtime.local import LocalRuntime
from kailash.tracking import TaskManager, TaskStatus
from kailash.tracking.storage.database import SQLiteStorage
from kailash.tracking.storage.deferred import DeferredStorageBackend
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow
from pattern_cases import pattern_cases

from dagwright import BaseAgent, Flow, Kaizen
from dagwright.backends.kailash import nodes as kailash_nodes
from dagwright.backends.kailash.export import to_kailash_script, to_kailash_yaml
from dagwright.backends.kailash.nodes import RunRecorder, recording, stop_recording
from dagwright.backends.kailash.runtime import FAST_SETTINGS
from dagwright.compiler.registry import FunctionRegistry
from dagwright.execution.events import NodeRecord

CASES = list(pattern_cases())


pytestmark = pytest.mark.usefixtures("quiet_kailash")


class Outcome(NamedTuple):
    """What every path must agree on."""

    outputs: dict[str, Any]
    llm_calls: int
    ran: frozenset[str]  # the nodes that ran to the end
    failed: frozenset[str]


def _calls(records: dict[str, NodeRecord]) -> int:
    return sum(r.usage.calls for r in records.values() if r.usage is not None)


def builtin(flow: Flow, inputs: dict[str, Any]) -> Outcome:
    result = flow.run(inputs)
    nodes = result.nodes
    return Outcome(
        dict(result.outputs),
        _calls(nodes),
        frozenset(n for n, r in nodes.items() if r.status == "done" and r.kind not in ("input", "output")),
        frozenset(n for n, r in nodes.items() if r.status == "failed"),
    )


def helper(runtime: str) -> Callable[[Flow, dict[str, Any]], Outcome]:
    def run(flow: Flow, inputs: dict[str, Any]) -> Outcome:
        result = flow.run_kailash(inputs, runtime=runtime)
        nodes = result.nodes
        return Outcome(
            dict(result.outputs),
            _calls(nodes),
            frozenset(n for n, r in nodes.items() if r.status == "done" and r.kind not in ("input", "output")),
            frozenset(n for n, r in nodes.items() if r.status == "failed"),
        )

    return run


def _execute(workflow: Any, parameters: dict[str, Any], runtime: str) -> dict[str, Any]:
    if runtime == "local":
        with LocalRuntime(**FAST_SETTINGS) as engine:
            results, _ = engine.execute(workflow, parameters=parameters)
            return dict(results)
    engine = AsyncLocalRuntime(**FAST_SETTINGS)
    try:
        results, _ = asyncio.run(engine.execute_workflow_async(workflow, inputs=parameters))
        return dict(results)
    finally:
        engine.close()


def _recorded(flow: Flow, inputs: dict[str, Any], make: Callable[[], Any], runtime: str, flat: bool) -> Outcome:
    """Run the workflow ``make()`` returns on a raw runtime, recorded, and read the flow's outputs from its results."""
    lowering = flow._kailash_lowering()
    parameters: dict[str, Any] = dict(inputs) if flat else lowering.parameters(inputs)
    recorder = RunRecorder("matrix")
    token = recording(recorder)
    results: dict[str, Any] = {}
    try:
        results = _execute(make(), parameters, runtime)
    except Exception as exc:  # a failed node that others need stops a raw run: its record says which
        assert any(r.status == "failed" for r in recorder.records.values()), exc
    finally:
        stop_recording(token)
    records = recorder.records
    outputs = {}
    for name, (node_id, port) in lowering.results.items():
        # A run that raised returned no results: what finished before is in the nodes' records.
        produced = results.get(node_id) if results else records[node_id].outputs if node_id in records else None
        if isinstance(produced, dict) and port in produced:
            outputs[name] = produced[port]
        elif node_id.startswith("input:"):
            outputs[name] = inputs[node_id.split(":", 1)[1]]
    return Outcome(
        outputs,
        _calls(records),
        frozenset(n for n, r in records.items() if r.status == "done"),
        frozenset(n for n, r in records.items() if r.status == "failed"),
    )


def raw(runtime: str, flat: bool) -> Callable[[Flow, dict[str, Any]], Outcome]:
    """``runtime.execute(flow.build(), parameters=...)`` as a Kailash user writes it, recorded."""

    def run(flow: Flow, inputs: dict[str, Any]) -> Outcome:
        return _recorded(flow, inputs, flow.build, runtime, flat)

    return run


def from_yaml(runtime: str, flat: bool) -> Callable[[Flow, dict[str, Any]], Outcome]:
    """The YAML export, read with ``yaml.safe_load`` and ``Workflow.from_dict`` (agents rebuilt from the IR)."""

    def run(flow: Flow, inputs: dict[str, Any]) -> Outcome:
        text = to_kailash_yaml(flow)
        return _recorded(flow, inputs, lambda: Workflow.from_dict(yaml.safe_load(text)), runtime, flat)

    return run


def from_script(runtime: str, flat: bool) -> Callable[[Flow, dict[str, Any]], Outcome]:
    """The exported script's module-level ``workflow`` (what ``kailash run`` executes)."""

    def run(flow: Flow, inputs: dict[str, Any]) -> Outcome:
        namespace = runpy.run_path(_write_script(flow), run_name="exported")
        return _recorded(flow, inputs, lambda: namespace["workflow"], runtime, flat)

    return run


def _write_script(flow: Flow) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as out:
        out.write(to_kailash_script(flow, script_path=out.name))
    return out.name


PATHS: dict[str, Callable[[Flow, dict[str, Any]], Outcome]] = {
    "helper-local": helper("local"),
    "helper-async": helper("async"),
    "local-per-node": raw("local", flat=False),
    "local-flat": raw("local", flat=True),
    "async-per-node": raw("async", flat=False),
    "async-flat": raw("async", flat=True),
    **{
        f"{export}-{runtime}-{form}": make(runtime, flat=form == "flat")
        for export, make in (("yaml", from_yaml), ("script", from_script))
        for runtime in ("local", "async")
        for form in ("per-node", "flat")
    },
}


def clean_then_summarize() -> tuple[Flow, dict[str, Any]]:
    """A connected input named like a flow input: a flat ``text`` must not replace the cleaned text."""
    flow = Flow("clean_summarize")
    flow.add_function("clean", clean)
    flow.add_agent("summarize", BaseAgent(signature="text: str -> summary: str", name="summarize"))
    flow.connect("clean.output", "summarize.text")
    flow.input("text", to="clean.text")
    flow.output("summary", "summarize.summary")
    flow.output("cleaned", "clean.output")
    return flow, {"text": "  RAW Text  "}


def clean(text: str) -> str:
    return " ".join(text.split()).lower()


def explode(summary: str) -> str:
    raise RuntimeError(f"exploded on {summary[:10]!r}")


def failing_flow() -> tuple[Flow, dict[str, Any]]:
    """clean -> summarize -> explode: the last node fails after one LLM call."""
    flow, inputs = clean_then_summarize()
    flow.add_function("explode", explode)
    flow.connect("summarize.summary", "explode.summary")
    flow.output("exploded", "explode.output")
    return flow, inputs


@pytest.fixture(autouse=True)
def _loadable_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a loaded YAML workflow may call: it never imports code by itself.
    monkeypatch.setattr(kailash_nodes, "functions", FunctionRegistry([clean, explode]))


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(("name", "make", "inputs"), CASES, ids=[c[0] for c in CASES])
def test_every_pattern_agrees_on_every_kailash_path(
    name: str, make: Callable[[Kaizen], Flow], inputs: dict[str, Any], path: str
) -> None:
    flow = make(Kaizen())
    expected = builtin(flow, inputs)
    assert expected.llm_calls > 0 and not expected.failed
    got = PATHS[path](flow, inputs)
    if name == "parallel_map" and path.startswith(("yaml", "script")):
        # One agent mapped over three items keeps one session memory on the live paths; an export
        # rebuilds the agent per node from the IR, which holds no memory, so from the second item on
        # the offline model (whose answer depends on the conversation) answers otherwise.
        assert got._replace(outputs={}) == expected._replace(outputs={})
        assert got.outputs["summary"][0] == expected.outputs["summary"][0]
        return
    assert got == expected


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
# Each example's module-level flow, with the inputs its own run passes.
EXAMPLE_INPUTS: dict[str, dict[str, Any]] = {
    "consensus": {"proposal": "Move the billing service to a managed database"},
    "debate": {},
    "kailash_lowering": {"topic": "Adopt Rust?"},
    "parallel_map": {"document": ["Quarterly report ...", "Incident review ..."], "audience": "executives"},
    "pipeline": {"topic": "Heat pumps in cold climates"},
    "router": {"request": "I was charged twice this month"},
    "supervisor": {"task": "Write a one-page brief on battery recycling"},
}


def test_every_example_is_in_the_matrix() -> None:
    assert sorted(p.stem for p in EXAMPLES_DIR.glob("*.py")) == sorted(EXAMPLE_INPUTS)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("example", list(EXAMPLE_INPUTS))
def test_every_example_agrees_on_every_kailash_path(example: str, path: str) -> None:
    def load() -> Flow:  # a fresh flow (and agents, with fresh memories) for each run
        flow: Flow = runpy.run_path(str(EXAMPLES_DIR / f"{example}.py"), run_name="example")["flow"]
        return flow

    inputs = EXAMPLE_INPUTS[example]
    expected = builtin(load(), inputs)
    assert expected.llm_calls > 0 and not expected.failed
    got = PATHS[path](load(), inputs)
    if example == "parallel_map" and path.startswith(("yaml", "script")):
        # As for the pattern: an export rebuilds the mapped agent per node, without the shared memory.
        assert got._replace(outputs={}) == expected._replace(outputs={})
        return
    assert got == expected


@pytest.mark.parametrize("path", list(PATHS))
def test_a_failing_node_is_the_same_node_on_every_path(path: str) -> None:
    flow, inputs = failing_flow()
    expected = builtin(flow, inputs)
    assert expected.failed == {"explode"} and expected.llm_calls == 1
    assert PATHS[path](flow, inputs) == expected


@pytest.mark.parametrize("path", list(PATHS))
def test_a_flat_parameter_never_replaces_a_connection(path: str) -> None:
    flow, inputs = clean_then_summarize()
    expected = builtin(flow, inputs)
    assert expected.outputs["cleaned"] == "raw text"
    assert PATHS[path](flow, inputs) == expected
    assert "text" not in {c.target_input for c in flow._kailash_lowering().connections}


@pytest.mark.parametrize("runtime", ["local", "async"])
def test_a_node_cache_answers_repeated_runs_on_kailash(runtime: str) -> None:
    flow, inputs = clean_then_summarize()
    flow.configure("summarize", cache=True)
    first = flow.run_kailash(inputs, runtime=runtime)
    again = flow.run_kailash(inputs, runtime=runtime)
    assert again.outputs == first.outputs == builtin(flow, inputs).outputs
    # The second Kailash run (and the built-in one) are answered by the cache.
    assert (_calls(first.nodes), _calls(again.nodes)) == (1, 0)


@pytest.mark.parametrize("runtime", ["local", "async"])
def test_the_flow_monitor_records_kailash_runs(runtime: str) -> None:
    flow, inputs = clean_then_summarize()
    monitor = flow.monitor()
    flow.run_kailash(inputs, runtime=runtime)
    flow.run(inputs)
    runs = monitor.runs
    assert len(runs) == 2 and all(r.success for r in runs)
    assert runs[0].llm_calls == runs[1].llm_calls == 1
    assert runs[0].duration_ms > 0


@pytest.mark.parametrize("runtime", ["local", "async"])
def test_a_per_run_agent_setting_is_refused_by_name(runtime: str) -> None:
    flow, inputs = clean_then_summarize()
    parameters = {**flow.kailash_parameters(inputs), "summarize": {"model": "gpt-4o"}}
    with pytest.raises(Exception) as caught:
        if runtime == "local":
            with LocalRuntime(**FAST_SETTINGS) as engine:
                results, _ = engine.execute(flow.build(), parameters=parameters)
            # An end node's failure is data on LocalRuntime: its error says what was refused.
            raise RuntimeError(results["summarize"]["error"])
        _execute(flow.build(), parameters, runtime)
    assert "node 'summarize': 'model' is an agent setting, which a run cannot change" in str(caught.value)


def test_agent_nodes_show_their_model_signature_and_role() -> None:
    flow = Kaizen().create_debate_workflow(agents=[("optimist", {}), ("skeptic", {}), ("judge", {})], rounds=1)
    config = flow.build().get_node("round1.optimist").config
    assert (config["model"], config["role"]) == ("gpt-4o-mini", "You are the optimist.")
    assert config["signature"] == "topic: str, transcript: list[str] -> argument: str"
    data = yaml.safe_load(to_kailash_yaml(flow))
    assert data["nodes"]["round1.optimist"]["config"]["signature"] == config["signature"]


def test_a_raw_run_says_a_branch_not_taken_was_not_produced(caplog: pytest.LogCaptureFixture) -> None:
    """LocalRuntime warns "Source output ... not found" per skipped edge; for a dagwright node it says what happened."""
    _, make, inputs = next(c for c in CASES if c[0] == "router")
    flow = make(Kaizen())
    logging.getLogger("kailash").setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="kailash.runtime.base"), LocalRuntime(**FAST_SETTINGS) as engine:
        engine.execute(flow.build(), parameters=dict(inputs))
    said = [r for r in caplog.records if "did not produce" in r.getMessage()]
    assert said and all(r.levelno == logging.INFO for r in said)
    assert "dagwright node 'handoff' did not produce" in said[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "Source output" in r.getMessage()]


def _kailash_tasks(workflow: Workflow, parameters: dict[str, Any]) -> dict[str, Any]:
    """Kailash's own task tracking of one LocalRuntime run: node id -> its TaskRun."""
    manager = TaskManager(storage_backend=DeferredStorageBackend())
    with LocalRuntime(**FAST_SETTINGS) as engine:
        _, run_id = engine.execute(workflow, parameters=parameters, task_manager=manager)
    return {task.node_id: task for task in manager.get_run_tasks(run_id)}


def _skips(flow: Flow, inputs: dict[str, Any]) -> dict[str, str]:
    """The nodes a run skips on the built-in scheduler (the reference), with the reason it gives."""
    records = flow.run(inputs).nodes.values()
    skips = {r.node_id: str(r.skip_reason) for r in records if r.status == "skipped" and r.kind != "output"}
    assert skips
    return skips


def _marked(tasks: dict[str, Any]) -> dict[str, str]:
    """The tasks Kailash's tracking marks skipped, with their reason; every one of them COMPLETED with no result."""
    marked = {n: t for n, t in tasks.items() if t.metadata.get("skipped")}
    assert all((t.status, t.result) == (TaskStatus.COMPLETED, None) for t in marked.values())
    return {n: t.metadata["reason"] for n, t in marked.items()}


@pytest.mark.parametrize("name", ["router", "supervisor"])
def test_run_kailash_marks_skipped_tasks_as_kailash_marks_a_branch_not_taken(name: str) -> None:
    """Kailash's tracking of a ``run_kailash`` run: a skipped node's task is COMPLETED with ``metadata["skipped"]``.

    LocalRuntime moves each task to RUNNING before it runs the node, and Kailash allows SKIPPED only
    from PENDING, so no run records TaskStatus.SKIPPED, not even for its own SwitchNode's branch not
    taken: that one is COMPLETED with ``metadata={"skipped": True, "reason": "conditional_routing"}``.
    ``run_kailash`` marks the tasks of the nodes dagwright skipped the same way, with dagwright's
    reason. Should Kailash start recording SKIPPED, the control below fails and the lowering can use it.
    """
    _, make, inputs = next(c for c in CASES if c[0] == name)
    flow = make(Kaizen())
    skips = _skips(flow, dict(inputs))
    manager = TaskManager(storage_backend=DeferredStorageBackend())
    result = flow.run_kailash(dict(inputs), task_manager=manager)
    assert {
        n: str(r.skip_reason) for n, r in result.nodes.items() if r.status == "skipped" and r.kind != "output"
    } == skips
    (run,) = manager.list_runs()
    tasks = {task.node_id: task for task in manager.get_run_tasks(run.run_id)}
    assert _marked(tasks) == skips  # nothing that ran is marked (a closed gate ran, and produced nothing)
    assert {t.status for t in tasks.values()} == {TaskStatus.COMPLETED}
    assert all("execution_time" in tasks[n].metadata for n in skips)  # what Kailash wrote is kept

    switch = WorkflowBuilder()
    switch.add_node("PythonCodeNode", "source", {"code": "result = {'kind': 'a'}"})
    switch.add_node("SwitchNode", "switch", {"condition_field": "kind", "operator": "==", "value": "a"})
    switch.add_node("PythonCodeNode", "taken", {"code": "result = data"})
    switch.add_node("PythonCodeNode", "not_taken", {"code": "result = data"})
    switch.add_connection("source", "result", "switch", "input_data")
    switch.add_connection("switch", "true_output", "taken", "data")
    switch.add_connection("switch", "false_output", "not_taken", "data")
    own = _kailash_tasks(switch.build(), {})["not_taken"]
    assert (own.status, own.result, own.metadata) == (
        TaskStatus.COMPLETED,
        None,
        {"skipped": True, "reason": "conditional_routing"},
    )


@pytest.mark.parametrize("name", ["router", "supervisor"])
def test_run_kailash_marks_skipped_tasks_in_the_runtimes_own_tracking(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LocalRuntime with ``enable_monitoring=True`` and no task manager keeps its own tracking and writes it
    to Kailash's default SQLite store (``~/.kailash/tracking/tracking.db``): the marks are made there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    _, make, inputs = next(c for c in CASES if c[0] == name)
    flow = make(Kaizen())
    skips = _skips(flow, dict(inputs))
    with LocalRuntime(**{**FAST_SETTINGS, "enable_monitoring": True}) as engine:
        assert flow.run_kailash(dict(inputs), runtime=engine).success
    store = SQLiteStorage(str(tmp_path / ".kailash" / "tracking" / "tracking.db"))
    try:
        manager = TaskManager(storage_backend=store)
        (run,) = manager.list_runs()
        tasks = {task.node_id: task for task in manager.get_run_tasks(run.run_id)}
    finally:
        store.close()
    assert _marked(tasks) == skips
    assert {t.status for t in tasks.values()} == {TaskStatus.COMPLETED}


@pytest.mark.parametrize("name", ["router", "supervisor"])
def test_a_raw_local_runtime_lists_skipped_nodes_as_completed(name: str, caplog: pytest.LogCaptureFixture) -> None:
    """``LocalRuntime().execute(flow.build(), task_manager=...)``: the skipped nodes' tasks are COMPLETED with no
    result and no ``metadata["skipped"]``, and dagwright's log says they were skipped (see the README).

    A node that Kailash runs cannot reach its task: the runtime hands a node its inputs and a workflow
    context (signal channel, query registry, execution tracker), never the task manager or the task,
    and no context variable holds them. Only ``run_kailash``, which holds the run, can mark them.
    """
    _, make, inputs = next(c for c in CASES if c[0] == name)
    flow = make(Kaizen())
    skips = _skips(flow, dict(inputs))
    with caplog.at_level(logging.INFO, logger="dagwright"):
        tasks = _kailash_tasks(flow.build(), dict(inputs))
    assert all((tasks[n].status, tasks[n].result) == (TaskStatus.COMPLETED, None) for n in skips)
    assert {t.status for t in tasks.values()} == {TaskStatus.COMPLETED}
    assert not [t for t in tasks.values() if "skipped" in t.metadata]
    said = {r.args[0] for r in caplog.records if r.name == "dagwright" and "skipped" in r.getMessage()}
    assert said == set(skips)


def test_async_local_runtime_keeps_no_task_tracking() -> None:
    """AsyncLocalRuntime takes a task manager and records nothing in it: there is no tracking to correct."""
    _, make, inputs = next(c for c in CASES if c[0] == "router")
    manager = TaskManager(storage_backend=DeferredStorageBackend())
    engine = AsyncLocalRuntime(**FAST_SETTINGS)
    try:
        asyncio.run(engine.execute_async(make(Kaizen()).build(), task_manager=manager, parameters=dict(inputs)))
    finally:
        engine.close()
    assert manager.list_runs() == []
    assert make(Kaizen()).run_kailash(dict(inputs), runtime="async", task_manager=manager).success
    assert manager.list_runs() == []  # nothing for run_kailash to mark either
