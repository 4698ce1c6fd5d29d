"""Lowering checked graphs to Kailash: node types and ids, input names, parameters, YAML and script export.

The exported script is run in a subprocess and its printed outputs compared with the flow's own run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TypedDict

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from kailash.runtime.local import LocalRuntime
from kailash.sdk_exceptions import RuntimeExecutionError
from kailash.workflow.builder import WorkflowBuilder as KailashWorkflowBuilder
from kailash.workflow.graph import Workflow

import dagwright
from dagwright import Flow, FunctionRegistry, Kaizen, Node, Port, RetryPolicy
from dagwright.backends.kailash import nodes as kailash_nodes
from dagwright.backends.kailash.config import policy_from_json, policy_to_json
from dagwright.backends.kailash.export import to_kailash_script, to_kailash_yaml
from dagwright.backends.kailash.lowering import (
    KailashPortNameWarning,
    Lowering,
    _connected_name,
    _FlowInputs,
    lower_graph,
    reachable_by,
)
from dagwright.backends.kailash.nodes import DagwrightFunctionNode
from dagwright.backends.kailash.runtime import FAST_SETTINGS, run_on_kailash
from dagwright.cli.loader import load_targets
from dagwright.compiler.ir import FrozenDict, Graph
from dagwright.compiler.types import INT, list_of
from dagwright.execution.policy import NodePolicy

ROOT = Path(__file__).parent.parent


pytestmark = pytest.mark.usefixtures("quiet_kailash")


def fetch(topic: str) -> list[str]:
    return [topic, topic.upper()]


def count(items: list[str], again: list[str]) -> int:
    return len(items) * 10 + len(again)


def join(values: list[int]) -> list[int]:
    return list(values)


def three() -> int:
    return 3


def demo_flow() -> Flow:
    flow = Flow("demo", description="fetch, count, ask")
    flow.add_function("fetch", fetch)
    flow.add_function("count", count)
    flow.add_agent("qa", Kaizen().create_agent("qa", signature="question: str -> answer: str"))
    flow.connect("fetch.output", "count.items")
    flow.connect("fetch.output", "count.again")
    flow.input("topic")
    flow.input("question", default="What is ML?")
    flow.output("n", "count.output")
    flow.output("answer", "qa.answer")
    return flow


JOIN = Node(
    "join",
    "function",
    (Port("values", list_of(INT), collect=True),),
    (Port("output", list_of(INT)),),
    FrozenDict({"function": f"{__name__}:join"}),
)


def join_flow() -> Flow:
    flow = Flow("joins")
    flow.add_function("three", three)
    flow.add_node(JOIN, join)
    flow.input("x", int, to="join.values")
    flow.connect("three.output", "join.values")
    flow.connect("three.output", "join.values")
    flow.output("values", "join.output")
    return flow


# ----------------------------------------------------------------------------- the mapping


def test_import_dagwright_leaves_kailash_unimported_until_workflow_builder_is_used() -> None:
    code = (
        "import sys, dagwright\n"
        "print('kailash' in sys.modules)\n"
        "builder = dagwright.WorkflowBuilder\n"
        "from kailash.workflow.builder import WorkflowBuilder\n"
        "print('kailash' in sys.modules, issubclass(builder, WorkflowBuilder))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True", "True"]


def test_lazy_attribute_errors_name_the_attribute() -> None:
    with pytest.raises(AttributeError, match="module 'dagwright' has no attribute 'WorkflowBiulder'"):
        dagwright.WorkflowBiulder  # noqa: B018


def test_nodes_keep_their_ids_and_get_the_type_of_their_kind() -> None:
    lowering = _lowered(demo_flow())
    assert [(s.id, s.type) for s in lowering.nodes] == [
        ("fetch", "DagwrightFunctionNode"),
        ("count", "DagwrightFunctionNode"),
        ("qa", "DagwrightAgentNode"),
    ]
    builder = demo_flow().to_kailash()
    assert isinstance(builder, dagwright.WorkflowBuilder)
    assert isinstance(builder, KailashWorkflowBuilder)
    assert {nid: info["type"] for nid, info in builder.nodes.items()} == {
        "fetch": "DagwrightFunctionNode",
        "count": "DagwrightFunctionNode",
        "qa": "DagwrightAgentNode",
    }
    workflow = demo_flow().build()
    assert isinstance(workflow, Workflow)
    assert workflow.name == "demo"
    assert workflow.description == "fetch, count, ask"


def test_one_output_into_two_inputs_is_one_connection_delivered_to_both() -> None:
    lowering = _lowered(demo_flow())
    assert [(c.source, c.source_output, c.target, c.target_input) for c in lowering.connections] == [
        ("fetch", "output", "count", "items")
    ]
    settings = lowering.nodes[1].config["dagwright"]
    assert settings["wiring"] == {"items": ["items"], "again": ["items"]}
    assert settings["sources"] == {"items": ["fetch", "output"]}


def test_collect_edges_get_distinct_inputs_and_flow_inputs_too() -> None:
    lowering = _lowered(join_flow())
    assert [(c.source, c.target_input) for c in lowering.connections] == [("three", "values_from_three")]
    settings = lowering.nodes[1].config["dagwright"]
    assert settings["wiring"] == {"values": ["values_0", "values_from_three", "values_from_three"]}
    assert settings["flow_inputs"] == {"values_0": "x"}
    assert lowering.parameters(x=9) == {"join": {"values_0": 9}}
    assert join_flow().run_kailash(x=9).outputs == {"values": [9, 3, 3]}


def test_dotted_output_names_are_written_with_a_slash() -> None:
    k = Kaizen()
    billing = k.create_agent("billing", signature="request: str -> response: str")
    tech = k.create_agent("tech", signature="request: str -> response: str")
    flow = k.create_router(("triage", {}), [billing, tech])
    lowering = _lowered(flow)
    handoff = next(s for s in lowering.nodes if s.id == "handoff")
    assert handoff.type == "DagwrightNode"
    outputs = {"billing.request": "billing/request", "tech.request": "tech/request"}
    assert handoff.config["dagwright"]["outputs"] == outputs
    # The routed request reaches each worker under a name saying where it comes from: `request` itself
    # is the flow input's name, which a flat parameter would reach.
    assert {(c.source_output, c.target, c.target_input) for c in lowering.connections if c.source == "handoff"} == {
        ("billing/request", "billing", "from_handoff"),
        ("tech/request", "tech", "from_handoff"),
    }
    expected = flow.run(request="The app crashes")
    chosen = expected.outputs["route"]
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(flow.build(), parameters=flow.kailash_parameters(request="The app crashes"))
    assert results["handoff"] == {f"{chosen}/request": "The app crashes"}
    assert results["handoff"].ports == {f"{chosen}.request": "The app crashes"}
    node, name = lowering.results["response"]
    assert results[node][name] == expected.outputs["response"]
    with LocalRuntime(**FAST_SETTINGS) as runtime:  # a flat `request` feeds the flow input only
        flat, _ = runtime.execute(flow.build(), parameters={"request": "The app crashes"})
    assert flat[node][name] == expected.outputs["response"]


def test_kailash_drawings_of_the_lowered_workflow_show_the_readable_names() -> None:
    flow = Kaizen().create_router(("triage", {}), [("billing", {}), ("tech", {})])
    drawing = flow.build().to_mermaid()
    assert "billing/request→from_handoff" in drawing
    assert "response→values_from_billing" in drawing
    assert "__" not in drawing.replace("__init__", "")


def test_flow_inputs_become_parameters_of_their_consumers() -> None:
    flow = demo_flow()
    lowering = _lowered(flow)
    assert lowering.inputs == {"topic": [("fetch", "topic")], "question": [("qa", "question")]}
    assert lowering.outputs == {"n": ("count", "output"), "answer": ("qa", "answer")}
    assert flow.kailash_parameters(topic="bees") == {"fetch": {"topic": "bees"}}
    assert flow.kailash_parameters({"topic": "bees", "question": "Why?"}) == {
        "fetch": {"topic": "bees"},
        "qa": {"question": "Why?"},
    }
    # A default is the consuming node's config value, which Kailash passes as an input.
    assert lowering.nodes[2].config["question"] == "What is ML?"
    assert flow.to_kailash()._metadata["_workflow_inputs"] == {
        "fetch": {"topic": "topic"},
        "qa": {"question": "question"},
    }
    with pytest.raises(ValueError, match="flow 'demo' has no input 'topc'; its inputs are: topic, question"):
        flow.kailash_parameters(topc="bees")


def test_parameters_work_on_local_runtime_in_both_forms() -> None:
    flow = demo_flow()
    expected = flow.run(topic="bees").outputs
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        nested, _ = runtime.execute(flow.build(), parameters={"fetch": {"topic": "bees"}})
        flat, _ = runtime.execute(flow.build(), parameters={"topic": "bees"})
    for results in (nested, flat):
        assert results["count"] == {"output": expected["n"]}
        assert results["qa"] == {"answer": expected["answer"]}


def test_lowering_is_cached_until_the_flow_changes() -> None:
    flow = demo_flow()
    first = _lowered(flow)
    assert _lowered(flow) is first
    flow.output("words", "fetch.output")
    second = _lowered(flow)
    assert second is not first
    assert second.outputs["words"] == ("fetch", "output")


def test_a_graph_from_json_lowers_after_its_checks() -> None:
    graph = Graph.from_json(join_flow().compile().to_json())
    lowering = lower_graph(graph)
    assert [s.id for s in lowering.nodes] == ["three", "join"]
    broken = Graph(graph.name, graph.nodes, graph.edges[:-1])  # the flow output's edge is gone
    with pytest.raises(dagwright.CompileError, match="does not compile"):
        lower_graph(broken)
    result = run_on_kailash(graph, {"x": 1}, registry=FunctionRegistry([three, join]))
    assert result.outputs == {"values": [1, 3, 3]}
    with pytest.raises(ValueError, match=r"pass registry=FunctionRegistry\(...\)"):
        run_on_kailash(graph, {"x": 1})


def takes_config(dagwright: int) -> int:
    return dagwright


def test_an_input_named_like_the_config_key_is_refused_clearly() -> None:
    flow = Flow("clash")
    flow.add_function("f", takes_config)
    flow.input("dagwright", int)
    with pytest.raises(ValueError, match="node 'f': an input called 'dagwright' cannot be lowered to Kailash"):
        flow.to_kailash()


class Verdict(TypedDict):
    success: bool
    detail: str


def judge(x: int) -> Verdict:
    return {"success": x > 0, "detail": "checked"}


def test_outputs_kailash_reads_as_a_verdict_warn_and_still_run_with_the_helper() -> None:
    flow = Flow("verdict")
    flow.add_function("judge", judge)
    flow.input("x", int)
    with pytest.warns(KailashPortNameWarning, match=r"judge.success \(a false 'success' output is a node failure"):
        flow.to_kailash()
    assert flow.run_kailash(x=-1).outputs == {"success": False, "detail": "checked"}


def test_node_parameters_are_the_kailash_inputs_with_real_types() -> None:
    workflow = demo_flow().build()
    count_node = workflow.get_node("count")
    assert isinstance(count_node, DagwrightFunctionNode)
    params = count_node.get_parameters()
    # 'again' is fed under 'items' (one output into two ports): one Kailash input, typed.
    assert [(p.name, p.type, p.required, p.description) for p in params.values()] == [
        ("items", list, True, "list[str]")
    ]
    assert list(count_node.get_output_schema()) == ["output"]
    qa = workflow.get_node("qa").get_parameters()
    assert [(p.name, p.type) for p in qa.values()] == [("question", str)]


def test_policies_travel_in_the_config() -> None:
    policy = NodePolicy(RetryPolicy(max_attempts=4, initial_delay=0.1, retry_on=(ConnectionError, TimeoutError)), 2.5)
    data = policy_to_json(policy)
    assert data == {
        "max_attempts": 4,
        "initial_delay": 0.1,
        "backoff": 2.0,
        "max_delay": 30.0,
        "jitter": 0.1,
        "retry_on": ["builtins.ConnectionError", "builtins.TimeoutError"],
        "timeout": 2.5,
    }
    assert policy_from_json(data) == policy
    with pytest.raises(ValueError, match=r"retry_on names 'nowhere\.Missing', which is not an exception class"):
        policy_from_json({**data, "retry_on": ["nowhere.Missing"]})
    flow = demo_flow()
    flow.configure("count", retry=policy.retry, timeout=2.5)
    assert _lowered(flow).nodes[1].config["dagwright"]["policy"] == data


# ----------------------------------------------------------------------------- YAML


def test_yaml_comes_from_kailash_to_yaml_and_is_stable() -> None:
    text = to_kailash_yaml(demo_flow())
    data = yaml.safe_load(text)
    assert data["name"] == "demo"
    graph_hash = demo_flow().compile().content_hash
    assert data["workflow_id"] == f"demo-{graph_hash[:12]}"
    assert data["metadata"]["dagwright_graph_hash"] == graph_hash
    module = "dagwright.backends.kailash.nodes"
    assert {nid: node["node_type"] for nid, node in data["nodes"].items()} == {
        "fetch": f"{module}.DagwrightFunctionNode",
        "count": f"{module}.DagwrightFunctionNode",
        "qa": f"{module}.DagwrightAgentNode",
    }
    assert data["nodes"]["fetch"]["config"]["dagwright"]["node"]["config"] == {"function": f"{__name__}:fetch"}
    assert data["connections"] == [
        {"source_node": "fetch", "source_output": "output", "target_node": "count", "target_input": "items"}
    ]

    def without_stamp(doc: str) -> list[str]:
        return [line for line in doc.splitlines() if "created_at" not in line]

    assert without_stamp(to_kailash_yaml(demo_flow())) == without_stamp(text)


def test_a_workflow_loaded_from_the_yaml_runs_with_registered_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(to_kailash_yaml(join_flow()))
    loaded = Workflow.from_dict(data)
    monkeypatch.setattr(kailash_nodes, "functions", FunctionRegistry())
    # Loading never imports code: an unregistered reference fails the node, naming the function.
    with (
        pytest.raises(RuntimeExecutionError, match=f"node 'three': unknown function '{__name__}:three': register it"),
        LocalRuntime(**FAST_SETTINGS) as runtime,
    ):
        runtime.execute(loaded, parameters={"join": {"values_0": 5}})

    monkeypatch.setattr(kailash_nodes, "functions", FunctionRegistry([three, join]))
    loaded = Workflow.from_dict(data)
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(loaded, parameters={"join": {"values_0": 5}})
    assert results["join"] == {"output": [5, 3, 3]}


# ----------------------------------------------------------------------------- the script and the command line

FLOW_FILE = """
from dagwright import Flow, Kaizen, RetryPolicy


def fetch(topic: str) -> list[str]:
    return [topic, topic.upper()]


def count(items: list[str], again: list[str]) -> int:
    return len(items) * 10 + len(again)


def explode(items: list[str]) -> int:
    raise RuntimeError("exploded on " + items[0])


qa = Kaizen().create_agent("qa", signature="question: str -> answer: str")

flow = Flow("demo")
flow.add_function("fetch", fetch)
flow.add_function("count", count)
flow.add_agent("qa", qa)
flow.connect("fetch.output", "count.items")
flow.connect("fetch.output", "count.again")
flow.input("topic")
flow.input("question", default="What is ML?")
flow.output("n", "count.output")
flow.output("words", "fetch.output")
flow.output("answer", "qa.answer")
flow.configure("count", retry=RetryPolicy(max_attempts=2, initial_delay=0))

failing = Flow("failing")
failing.add_function("fetch", fetch)
failing.add_function("explode", explode)
failing.connect("fetch.output", "explode.items")
failing.input("topic")

with_lambda = Flow("with_lambda")
with_lambda.add_function("shout", lambda text: text.upper())
with_lambda.input("text")
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "dagwright", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "kailash_demo_flow.py"
    path.write_text(textwrap.dedent(FLOW_FILE))
    return path


def test_exported_script_rebuilds_the_workflow_and_runs(flow_file: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    script = out_dir / "demo_workflow.py"
    done = _cli("export", f"{flow_file}:flow", "--format", "kailash-py", "-o", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert "from kailash_demo_flow import fetch, count" in text
    assert "workflow.add_connection('fetch', 'output', 'count', 'items')" in text
    assert "workflow.bind('fetch', fetch)" in text

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run(
        [sys.executable, str(script), json.dumps({"topic": "x"})],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    printed = json.loads(ran.stdout)
    flow = load_targets(f"{flow_file}:flow")[0].flow
    assert flow is not None
    assert printed == flow.run(topic="x").outputs
    assert (printed["n"], printed["words"]) == (22, ["x", "X"])


def test_exported_script_reports_a_failed_node(flow_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "failing_workflow.py"
    done = _cli("export", f"{flow_file}:failing", "--format", "kailash-py", "-o", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ran = subprocess.run(
        [sys.executable, str(script), '{"topic": "y"}'],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    assert ran.returncode == 1
    assert "failing: node 'explode' failed: RuntimeError: exploded on y" in ran.stderr


def test_cli_exports_kailash_yaml(flow_file: Path, tmp_path: Path) -> None:
    done = _cli("export", f"{flow_file}:flow", "--format", "kailash-yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(done.stdout)
    assert sorted(data["nodes"]) == ["count", "fetch", "qa"]
    assert data["nodes"]["count"]["config"]["dagwright"]["policy"]["max_attempts"] == 2


def test_cli_refuses_a_script_for_a_lambda(flow_file: Path, tmp_path: Path) -> None:
    done = _cli("export", f"{flow_file}:with_lambda", "--format", "kailash-py", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dagwright export: flow 'with_lambda' cannot be exported as a script:",
        "  node 'shout': function 'kailash_demo_flow:<lambda>' cannot be imported by a script; define it at module "
        "level",
    ]


def test_cli_export_of_a_flow_with_errors_exports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken_kailash_flow.py"
    path.write_text("from dagwright import Flow\nflow = Flow('broken')\nflow.add_agent('qa', 'question -> answer')\n")
    done = _cli("export", f"{path}:flow", "--format", "kailash-yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "the flow does not compile; nothing exported" in done.stderr


def test_script_generation_in_process_names_module_paths_relative_to_the_script(tmp_path: Path) -> None:
    text = to_kailash_script(join_flow(), script_path=str(tmp_path / "deep" / "script.py"))
    compile(text, "script.py", "exec")
    expected = os.path.relpath(str(Path(__file__).parent), str(tmp_path / "deep"))
    assert f"sys.path.insert(0, os.path.normpath(os.path.join(_HERE, {expected!r})))" in text
    assert f"from {__name__} import three, join" in text


def test_kailash_run_and_validate_accept_the_exported_script(flow_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "demo_workflow.py"
    done = _cli("export", f"{flow_file}:flow", "--format", "kailash-py", "-o", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"topic": "x"}))  # flat, as a Kailash user passes them
    kailash = str(Path(sys.executable).with_name("kailash"))
    env = {**os.environ, "HOME": str(tmp_path)}
    checked = subprocess.run(
        [kailash, "validate", str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run(
        [kailash, "run", str(script), "-p", str(params), "--no-tracking"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Workflow completed successfully!" in ran.stdout
    assert "22" in ran.stdout  # count.output: fetch('x') -> ['x', 'X'], counted twice


def test_the_yaml_is_safe_and_a_workflow_node_loads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = to_kailash_yaml(join_flow())
    assert "!!python" not in text
    assert text.startswith("# A dagwright flow lowered to Kailash")
    path = tmp_path / "joins.yaml"
    path.write_text(text)
    monkeypatch.setattr(kailash_nodes, "functions", FunctionRegistry([three, join]))
    outer = dagwright.WorkflowBuilder()
    outer.add_node("WorkflowNode", "inner", {"workflow_path": str(path)})
    with LocalRuntime(**FAST_SETTINGS) as runtime:
        results, _ = runtime.execute(outer.build(), parameters={"inner": {"inputs": {"join": {"values_0": 4}}}})
    assert results["inner"]["results"]["join"] == {"output": [4, 3, 3]}


def test_cli_exports_kailash_yaml_from_an_ir_file(flow_file: Path, tmp_path: Path) -> None:
    ir = tmp_path / "demo.json"
    assert _cli("export", f"{flow_file}:flow", "-o", str(ir), cwd=tmp_path).returncode == 0
    done = _cli("export", str(ir), "--format", "kailash-yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(done.stdout)
    assert data["nodes"]["fetch"]["config"]["dagwright"]["node"]["config"] == {"function": "kailash_demo_flow:fetch"}
    # The type's qualified name: Kailash's error, where nothing imported the module, says what to import.
    assert data["nodes"]["qa"]["node_type"] == "dagwright.backends.kailash.nodes.DagwrightAgentNode"


def _lowered(flow: Flow) -> Lowering:
    """The flow's own lowering, kept until it changes (what ``to_kailash()`` and ``run_kailash()`` use)."""
    return flow._kailash_lowering()


_names = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True)


@given(
    port=_names,
    source=_names,
    source_port=_names,
    flats=st.lists(_names, min_size=1, max_size=6, unique=True),
    collect=st.booleans(),
)
def test_no_flow_input_can_reach_a_connected_input(
    port: str, source: str, source_port: str, flats: list[str], collect: bool
) -> None:
    """Whatever the names, a connected input gets a free name no flat flow input reaches (Kailash's own rule)."""
    inputs = _FlowInputs({f"input:{f}": f for f in flats}, {f: [] for f in flats}, {}, [])
    taken = {port, "other"}
    name = _connected_name(port, collect, source, source_port, taken, inputs)
    assert name == port or name not in taken
    assert not any(reachable_by(name, f) for f in flats)


_LOAD_YAML = """
import sys, yaml
from kailash.workflow.graph import Workflow
if len(sys.argv) > 2:
    import dagwright.backends.kailash.nodes
Workflow.from_dict(yaml.safe_load(open(sys.argv[1])))
print("loaded")
"""


@pytest.mark.parametrize("form", ["from_dict", "workflow_node"])
def test_a_fresh_process_loading_the_yaml_is_told_what_to_import(form: str, tmp_path: Path) -> None:
    """Kailash resolves a node type only through its registry, so a process that reads the YAML with
    Kailash alone fails, and its error names the module that registers the types."""
    path = tmp_path / "joins.yaml"
    path.write_text(to_kailash_yaml(join_flow()))
    code = _LOAD_YAML
    if form == "workflow_node":
        code = code.replace(
            "Workflow.from_dict(yaml.safe_load(open(sys.argv[1])))",
            "from kailash.nodes.logic.workflow import WorkflowNode\nWorkflowNode(workflow_path=sys.argv[1])",
        )
    env = {**os.environ, "HOME": str(tmp_path)}
    alone = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=False
    )
    assert alone.returncode != 0
    assert "Node 'dagwright.backends.kailash.nodes.DagwrightFunctionNode' not found in registry" in alone.stderr
    imported = subprocess.run(
        [sys.executable, "-c", code, str(path), "import"], capture_output=True, text=True, env=env, check=False
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().endswith("loaded")


def test_the_short_type_names_still_load() -> None:
    """A workflow written by Kailash's own ``to_dict()`` names the types by class name: both are registered."""
    data = join_flow().build().to_dict()
    assert {n["node_type"] for n in data["nodes"].values()} == {"DagwrightFunctionNode"}
    assert set(Workflow.from_dict(data).nodes) == {"three", "join"}
