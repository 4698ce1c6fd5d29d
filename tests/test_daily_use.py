"""What users stumble on in daily use: clean tracebacks, networkx interop."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import traceback
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given
from strategies import graphs

from dagwright import Flow, Graph, IRFormatError, Kaizen, RunFailedError, RunResult
from dagwright.compiler.ir import Edge, Node, Port
from dagwright.compiler.types import INT

# --------------------------------------------------------------------------- tracebacks


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def test_errors_of_sync_calls_carry_no_event_loop_context() -> None:
    def double(x: int) -> int:
        return 2 * x

    flow = Flow("f")
    flow.add_function("double", double)
    flow.input("x")
    with pytest.raises(ValueError, match="input 'x' is typed int") as info:
        flow.run(x="s")
    assert info.value.__context__ is None
    assert "no running event loop" not in _traceback(info.value)
    agent = Kaizen().create_agent("qa", signature="question: str -> answer: str")
    with pytest.raises(ValueError, match="unknown input 'q'") as info:
        agent.run(q="?")
    assert "During handling of the above exception" not in _traceback(info.value)


# --------------------------------------------------------------------------- networkx


@given(graphs())
def test_networkx_round_trip(g: Graph) -> None:
    ids = [n.id for n in g.nodes]
    if len(ids) != len(set(ids)):
        with pytest.raises(ValueError, match="duplicate node ids"):
            g.to_networkx()
        return
    back = Graph.from_networkx(g.to_networkx())
    assert back.to_json() == g.to_json()
    assert back.content_hash == g.content_hash


def test_networkx_view_of_a_pattern_keeps_kinds_ports_groups_and_edge_order() -> None:
    debate = Kaizen().create_debate_workflow(agents=[("pro", {}), ("con", {}), ("judge", {})], topic="T", rounds=2)
    graph = debate.compile()
    g = graph.to_networkx()
    assert isinstance(g, nx.MultiDiGraph) and g.graph["name"] == "debate"
    assert g.nodes["round2.pro"]["kind"] == "agent" and g.nodes["round2.pro"]["group"] == ["debate", "round2"]
    assert {p["name"]: p["type"] for p in g.nodes["verdict"]["outputs"]}["decision"] == "str"
    assert nx.is_directed_acyclic_graph(g)
    # The transcript's edges keep their order (a collect port receives values in it).
    into = sorted(
        (k, s) for s, _, k, d in g.in_edges("verdict", keys=True, data=True) if d["target_port"] == "transcript"
    )
    assert [s for _, s in into] == [e.source for e in graph.edges_into("verdict", "transcript")]
    assert list(nx.topological_sort(g))[-1].startswith("output:")


def test_a_broken_graph_round_trips_and_bad_attributes_are_named() -> None:
    dangling = Graph("g", (Node("a", "function", (), (Port("y", INT),)),), (Edge("a", "y", "ghost", "x"),))
    g = dangling.to_networkx()
    assert g.nodes["ghost"] == {"missing": True}
    assert Graph.from_networkx(g).to_json() == dangling.to_json()
    g.nodes["a"]["colour"] = "red"
    with pytest.raises(IRFormatError, match=r"node 'a': unknown attribute\(s\) 'colour'"):
        Graph.from_networkx(g)
    with pytest.raises(IRFormatError, match="expected a networkx MultiDiGraph"):
        Graph.from_networkx(nx.Graph())


# --------------------------------------------------------------------------- Dask without its extra


def test_dask_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    flow = Flow("f")
    flow.add_function("double", lambda x: 2 * x)
    flow.input("x")
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # what an environment without the package raises
    expected = r"needs the 'dask' extra \([a-z, ]*cloudpickle cannot be imported\): pip install"
    with pytest.raises(ImportError, match=expected):
        flow.run(x=1, backend="dask")


# --------------------------------------------------------------------------- streamed events


async def test_streamed_node_started_events_show_the_node_running() -> None:
    def double(x: int) -> int:
        return 2 * x

    flow = Flow("f")
    flow.add_function("a", double)
    flow.add_function("b", double)
    flow.connect("a.output", "b.x")
    flow.input("x", to="a.x")
    events = [event async for event in flow.stream(x=1)]
    started = [e for e in events if e.kind == "node_started"]
    assert [e.node_id for e in started] == ["a", "b"]
    assert all(e.record is not None and e.record.status == "running" for e in started)
    finished = [e for e in events if e.kind == "node_finished"]
    assert all(e.record is not None and e.record.status == "done" for e in finished)


# --------------------------------------------------------------------------- where a node failed


def test_a_failing_function_node_names_the_users_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "flows.py"
    source.write_text(
        "from dagwright import Flow\n"
        "\n"
        "def parse(text: str) -> int:\n"
        "    return int(text)\n"
        "\n"
        "flow = Flow('parse')\n"
        "flow.add_function('parse', parse)\n"
        "flow.input('text')\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("flows_for_location", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for result in (module.flow.run(text="x"), module.flow.run_kailash(text="x")):
        record = result.nodes["parse"]
        assert record.error_location is not None
        assert record.error_location.endswith("flows.py:4 in parse"), record.error_location
        with pytest.raises(RunFailedError, match=r"parse: ValueError: .* \(at .*flows\.py:4 in parse\)"):
            result.raise_for_failure()
    saved = RunResult.from_json(module.flow.run(text="x").to_json())
    assert saved.nodes["parse"].error_location is not None
    cli = subprocess.run(
        [sys.executable, "-m", "dagwright", "run", f"{source}:flow", "--input", "text=x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert cli.returncode == 1
    assert (
        "node parse failed: ValueError: invalid literal for int() with base 10: 'x' (at flows.py:4 in parse)"
        in cli.stderr
    )


# --------------------------------------------------------------------------- exported IR


def test_exported_ir_holds_paths_relative_to_the_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    (project / "flows" / "research.py").write_text(
        "from dagwright import Flow\n\n"
        "def shout(text: str) -> str:\n    return text.upper()\n\n"
        "flow = Flow('research')\nflow.add_function('shout', shout)\nflow.input('text')\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exported = subprocess.run(
        [sys.executable, "-m", "dagwright", "export", str(project / "flows" / "research.py") + ":flow"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    assert str(tmp_path) not in exported.stdout
    graph = Graph.from_json(exported.stdout)
    assert {n.location.file for n in graph.nodes if n.location is not None} == {"flows/research.py"}


# --------------------------------------------------------------------------- the command line: saved runs, verbose runs


def _flow_file(tmp_path: Path) -> Path:
    source = tmp_path / "chain.py"
    source.write_text(
        "from dagwright import Flow\n\n"
        "def shout(text: str) -> str:\n    return text.upper()\n\n"
        "def exclaim(text: str) -> str:\n    return text + '!'\n\n"
        "flow = Flow('chain')\nflow.add_function('shout', shout)\nflow.add_function('exclaim', exclaim)\n"
        "flow.connect('shout.output', 'exclaim.text')\nflow.input('text', to='shout.text')\n",
        encoding="utf-8",
    )
    return source


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagwright", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


def test_render_draws_a_saved_run(tmp_path: Path) -> None:
    source = _flow_file(tmp_path)
    spec = importlib.util.spec_from_file_location("chain_for_render", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "run.json").write_text(module.flow.run(text="hi").to_json(), encoding="utf-8")
    drawn = _cli(tmp_path, "render", f"{source}:flow", "--format", "dot", "--run", "run.json")
    assert drawn.returncode == 0, drawn.stderr
    plain = _cli(tmp_path, "render", f"{source}:flow", "--format", "dot")
    assert drawn.stdout != plain.stdout and "done" in drawn.stdout and "done" not in plain.stdout
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    refused = _cli(tmp_path, "render", f"{source}:flow", "--format", "dot", "--run", "bad.json")
    assert refused.returncode == 2 and "bad.json" in refused.stderr


def test_run_verbose_prints_each_event_and_quiet_prints_one_line(tmp_path: Path) -> None:
    source = _flow_file(tmp_path)
    quiet = _cli(tmp_path, "run", f"{source}:flow", "--input", "text=hi")
    verbose = _cli(tmp_path, "run", f"{source}:flow", "--input", "text=hi", "-v")
    assert quiet.returncode == verbose.returncode == 0
    assert "HI!" in quiet.stdout and len(quiet.stderr.strip().splitlines()) == 1
    assert "shout" in verbose.stderr and "exclaim" in verbose.stderr
    assert len(verbose.stderr.strip().splitlines()) >= 5  # started and finished for each node, then the summary


def test_dagwright_run_on_dask_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    source = _flow_file(tmp_path)
    blocker = tmp_path / "sitecustomize.py"  # an interpreter where cloudpickle cannot be imported
    blocker.write_text("import sys\nsys.modules['cloudpickle'] = None\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "dagwright", "run", f"{source}:flow", "-i", "text=hi", "--backend", "dask"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parent.parent}"},
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "needs the 'dask' extra" in run.stderr and "pip install 'dagwright[dask]'" in run.stderr
    assert "Traceback" not in run.stderr
