"""Notebook display, the collapsed run overlay, and saved runs drawn again.

- ``dagwright.notebook``: flows, graphs, runs and agents as MIME bundles (SVG with
  `dot`, Mermaid in Markdown without it, always a text summary), registered with
  IPython's formatters only when IPython is there;
- a collapsed group's run counts each status and takes the worst one's color, and
  its ports are named after what they carry (never a bare ``values``);
- ``RunResult.to_json()`` / ``from_json()`` round-trip exactly, and
  ``dagwright.cli.render.load_run`` reads a saved run back for ``dagwright render --run``.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from visualize_support import (
    Record,
    Run,
    build_broken_flow,
    build_research_flow,
    check_mermaid,
    require_dot,
)

from dagwright import Agent, BaseAgent, Flow, patterns
from dagwright.cli.loader import TargetError
from dagwright.cli.render import add_run_option, load_run
from dagwright.compiler.ir import Graph
from dagwright.execution.events import NodeRecord, RunResult, Usage
from dagwright.notebook import agent_bundle, draw, flow_bundle, graph_bundle, register, run_bundle, unregister
from dagwright.visualize import build_view, to_dot, to_mermaid
from dagwright.visualize.model import STATUS_COLORS, run_line

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH on which Graphviz's `dot` is not found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def mermaid_of(markdown: str) -> str:
    """The one ```mermaid block of ``markdown``, syntax-checked."""
    blocks = re.findall(r"```mermaid\n(.*?)```", markdown, re.DOTALL)
    assert len(blocks) == 1, markdown
    check_mermaid(blocks[0])
    return str(blocks[0])


def debate_run(skipped: tuple[str, ...] = (), failed: tuple[str, ...] = ()) -> tuple[Flow, Run]:
    """The debate pattern (3 rounds of 2) and a run of it where the named nodes were skipped or failed."""
    flow = patterns.debate(["optimist", "skeptic", "judge"], topic="Adopt it?", rounds=3)
    records = {}
    for node in flow.to_graph().nodes:
        status = "skipped" if node.id in skipped else "failed" if node.id in failed else "done"
        records[node.id] = Record(
            status, 10.0 if status == "done" else None, {"total": 5} if status == "done" else None
        )
    return flow, Run(records)


# --------------------------------------------------------------------------- 1. collapsed run overlay


def wide_group_flow(members: int = 21) -> Flow:
    """``members`` agents in group ``work``, each fed by the input, each an output."""
    flow = Flow("wide")
    flow.input("topic", str)
    with flow.group("work"):
        for i in range(members):
            flow.add_agent(f"w{i}", "topic: str -> argument: str")
    for i in range(members):
        flow.output(f"a{i}", f"w{i}.argument")
    return flow


def test_a_collapsed_group_counts_each_status_instead_of_naming_the_worst_for_all() -> None:
    flow = wide_group_flow()
    run = Run({f"w{i}": Record("done" if i < 18 else "skipped", 100.0, {"total": 10}) for i in range(21)})
    box = build_view(flow.to_graph(), collapse=["work"], run=run).node("group:work")
    assert box.run is not None and box.run.counts == {"done": 18, "skipped": 3}
    assert run_line(box.run) == "18 done, 3 skipped (21 nodes) · 2.10 s · 210 tok"
    dot = flow.to_dot(collapse=["work"], run=run)
    assert "18 done, 3 skipped (21 nodes)" in dot
    assert re.search(r"(?<![0-9] )skipped \(21 nodes\)", dot) is None  # never "skipped (21 nodes)" alone
    # Colored by the worst status, but not dashed: most of the group ran.
    assert f'BGCOLOR="{STATUS_COLORS["skipped"][0]}" CELLPADDING="5"><B>work</B>' in dot
    assert 'STYLE="dashed"' not in dot
    # The input reached nodes that ran: its one drawn edge into the box is not drawn as skipped.
    edge = next(line for line in dot.splitlines() if '"input:topic" -> "group:work"' in line)
    assert "dashed" not in edge


def test_a_collapsed_group_takes_the_worst_status_and_a_uniform_one_reads_as_before() -> None:
    flow, run = debate_run(skipped=("round3.skeptic", "transcript", "verdict"), failed=("round3.optimist",))
    box = build_view(flow.to_graph(), collapse=["debate"], run=run).node("group:debate")
    assert box.run is not None and box.run.status == "failed"
    assert run_line(box.run).startswith("4 done, 1 failed, 3 skipped (8 nodes) · ")
    text = to_mermaid(flow.to_graph(), collapse=["debate"], run=run)
    assert re.search(r"class [^ ]*n_group_3a_debate[^ ]* failed", text)
    check_mermaid(text)

    every = tuple(n.id for n in flow.to_graph().nodes if n.group)
    flow, run = debate_run(skipped=every)
    dot = flow.to_dot(collapse=["debate"], run=run)
    assert "skipped (8 nodes)" in dot and 'STYLE="dashed"' in dot  # all skipped: dashed, as a skipped node is
    flow, run = debate_run()
    assert "done (8 nodes) · 80 ms · 40 tok" in flow.to_dot(collapse=["debate"], run=run)


def box_ports(graph: Graph, group: str) -> tuple[list[str], list[str]]:
    box = build_view(graph, collapse=[group]).node(f"group:{group}")
    return [p.name for p in box.inputs], [p.name for p in box.outputs]


def test_collapsed_ports_are_named_after_what_they_carry() -> None:
    flow, _ = debate_run()
    # The gather node's 'values' feeds the flow output 'transcript': the port says "transcript".
    assert box_ports(flow.to_graph(), "debate") == (["topic"], ["decision", "rationale", "transcript"])
    # A function's 'output' read by judge.transcript is the transcript too.
    assert box_ports(build_research_flow().to_graph(), "debate") == (["topic", "findings"], ["transcript"])
    # Meaningful names stay, and clashing ones are led by their node (the golden's names).
    graph = build_research_flow().to_graph()
    assert to_dot(graph, collapse=["debate"]).count('PORT="o.transcript"') == 1


def echo(x: str) -> str:
    """Its input, unchanged."""
    return x


def test_generic_ports_fall_back_to_the_inner_node_and_stay_unique() -> None:
    flow = Flow("generic")
    flow.input("x", str)
    with flow.group("g"):
        for node_id in ("a", "b", "c"):
            flow.add_function(node_id, echo)
    flow.add_agent("sink", "turns: list[str] -> out: str", collect=["turns"])
    flow.add_agent("left", "left: str, right: str -> y: str")
    for node_id in ("a", "b", "c"):
        flow.connect("input:x", f"{node_id}.x")
    flow.connect("a.output", "sink.turns")  # a and b both feed 'turns': "a.turns", "b.turns"
    flow.connect("b.output", "sink.turns")
    flow.connect("c.output", "left.left")  # c feeds two differently named ports: named after c
    flow.connect("c.output", "left.right")
    inputs, outputs = box_ports(flow.to_graph(), "g")
    assert inputs == ["x"]
    assert outputs == ["a.turns", "b.turns", "c"]


# --------------------------------------------------------------------------- 2. notebook bundles


def test_a_flow_shows_as_svg_with_dot_and_a_summary() -> None:
    require_dot()
    bundle = flow_bundle(build_research_flow())
    assert set(bundle) == {"image/svg+xml", "text/plain"}
    assert bundle["image/svg+xml"].startswith("<svg") and "<?xml" not in bundle["image/svg+xml"]
    assert ">researcher<" in bundle["image/svg+xml"]
    assert bundle["text/plain"] == (
        "Flow 'research': Research a topic, debate it, decide.\n"
        "  5 nodes (4 agents, 1 function)\n"
        "  inputs: topic: str\n"
        "  outputs: decision: Literal['adopt', 'reject', 'revise'], rationale: str, confidence: float, "
        "sources: list[str]\n"
        "  groups: debate\n"
        "  check: no errors or warnings"
    )


def test_without_dot_a_flow_shows_as_mermaid_markdown(no_dot: None) -> None:
    bundle = flow_bundle(build_research_flow())
    assert set(bundle) == {"text/markdown", "text/plain"}
    assert bundle["text/markdown"].startswith("**Flow** ` research `\n\n```mermaid\n")
    assert "researcher" in mermaid_of(bundle["text/markdown"])


def test_a_broken_flow_shows_its_problems(no_dot: None) -> None:
    bundle = flow_bundle(build_broken_flow())
    assert bundle["text/plain"].endswith("check: 3 errors")
    chart = mermaid_of(bundle["text/markdown"])
    assert "DW" in chart and "check: 3 errors" in chart


def test_a_graph_shows_like_its_flow() -> None:
    require_dot()
    graph = build_research_flow().compile()
    bundle = graph_bundle(graph)
    assert bundle["text/plain"].startswith("Graph 'research'")
    assert bundle["image/svg+xml"].startswith("<svg")


def hand_run() -> RunResult:
    """A run of the research flow with every status the table shows, and an error with markup in it."""
    usage = Usage(prompt=1000, completion=234, cost=0.0012, calls=1)
    nodes = {
        "input:topic": NodeRecord("input:topic", "input", "done"),
        "researcher": NodeRecord("researcher", "agent", "done", {"findings": ["a"]}, 1, 10.0, 11.24, usage=usage),
        "optimist": NodeRecord(
            "optimist", "agent", "failed", {}, 3, 11.3, 11.6, "model said <script>no</script>\nmore", "TimeoutError"
        ),
        "skeptic": NodeRecord("skeptic", "agent", "cached", {"argument": "x"}, 0, 11.3, 11.3004),
        "transcript": NodeRecord("transcript", "function", "skipped", skip_reason="optimist failed"),
        "judge": NodeRecord("judge", "agent", "skipped", skip_reason="transcript skipped"),
    }
    return RunResult("run-7", "research", {}, nodes, False, "node optimist failed", 10.0, 11.6, "abc")


def test_a_run_shows_its_node_table_as_text_and_html() -> None:
    bundle = run_bundle(hand_run())
    assert set(bundle) == {"text/html", "text/plain"}  # a result does not hold its graph: no drawing
    text = bundle["text/plain"]
    assert text.splitlines()[0] == (
        "run run-7 of flow 'research': FAILED · 5 nodes: 1 done, 1 cached, 1 failed, 2 skipped · 1.60 s · "
        "1,234 tok · $0.0012"
    )
    assert text.splitlines()[1].split() == ["node", "status", "attempts", "time", "tokens", "cost"]
    assert text.splitlines()[2].split() == ["researcher", "done", "1", "1.24", "s", "1,234", "$0.0012"]
    assert "input:topic" not in text  # the flow's inputs and outputs only pass values
    assert "optimist failed: TimeoutError: model said <script>no</script>" in text
    page = bundle["text/html"]
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert f'background:{STATUS_COLORS["failed"][0]}">failed<' in page


def test_a_long_run_table_is_cut() -> None:
    nodes = {f"n{i}": NodeRecord(f"n{i}", "function", "done", attempts=1) for i in range(250)}
    bundle = run_bundle(RunResult("r", "big", {}, nodes, True))
    assert "... 50 more nodes" in bundle["text/plain"]
    assert bundle["text/html"].count("<tr>") == 1 + 200 + 1


def test_an_agent_shows_its_name_signature_model_and_one_node_flow() -> None:
    require_dot()
    agent = Agent("researcher", "topic: str -> findings: list[str]", model="gpt-4o-mini")
    bundle = agent_bundle(agent)
    assert bundle["text/plain"] == (
        "Agent 'researcher'\n  signature: topic: str -> findings: list[str]\n  model: gpt-4o-mini"
    )
    assert bundle["text/html"].startswith("<div><b>Agent</b> <code>researcher</code>")
    assert "<svg" in bundle["text/html"] and ">researcher<" in bundle["image/svg+xml"]


def test_without_dot_an_agent_shows_as_markdown(no_dot: None) -> None:
    agent = BaseAgent(signature="question -> answer", name="my agent!", config={"model": "gpt-4o"})
    bundle = agent_bundle(agent)
    assert set(bundle) == {"text/markdown", "text/plain"}
    assert bundle["text/markdown"].startswith("**BaseAgent** ` my agent! `  \nsignature: ` question: str -> answer:")
    chart = mermaid_of(bundle["text/markdown"])
    assert "n_agent[" in chart  # "my agent!" is no node id: the one node is 'agent'
    free = agent_bundle(BaseAgent())
    assert "signature: free-form (task: str" in free["text/plain"]


def test_an_agents_config_never_shows_beyond_the_model() -> None:
    agent = Agent("qa", "q -> a", model="gpt-4o-mini", base_url="https://user:hunter2@llm.example/v1")
    for value in agent_bundle(agent).values():
        assert "hunter2" not in value and "llm.example" not in value


def test_draw_takes_the_drawing_options_and_checks_them_early(no_dot: None) -> None:
    flow, run = debate_run(skipped=("verdict",))
    drawing = draw(flow, collapse=["debate"], run=run)
    bundle = drawing._repr_mimebundle_()
    chart = mermaid_of(bundle["text/markdown"])
    assert "7 done, 1 skipped (8 nodes)" in chart
    assert bundle["text/plain"].startswith("flow 'debate'\n  run run-1: ")
    with pytest.raises(ValueError, match="has no group 'debat'"):
        draw(flow, collapse=["debat"])
    assert "check: 3 errors" in draw(build_broken_flow(), diagnostics=True)._repr_mimebundle_()["text/plain"]


# --------------------------------------------------------------------------- 2. IPython registration


class _Recorder:
    """Stands in for IPython's mimebundle formatter: records what is registered."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {}

    def for_type_by_name(self, module: str, name: str, func: object) -> None:
        self.names[f"{module}.{name}"] = func

    def pop(self, name: str, default: object = None) -> object:
        return self.names.pop(name, default)


class _Shell:
    def __init__(self) -> None:
        self.display_formatter = type("DisplayFormatter", (), {})()
        self.display_formatter.mimebundle_formatter = _Recorder()


def test_register_adds_one_formatter_per_type_by_name_and_unregister_removes_them() -> None:
    shell = _Shell()
    assert register(shell)
    names = shell.display_formatter.mimebundle_formatter.names
    assert {name: f.bundle for name, f in names.items()} == {  # type: ignore[attr-defined]
        "dagwright.flow.Flow": flow_bundle,
        "dagwright.compiler.ir.Graph": graph_bundle,
        "dagwright.execution.events.RunResult": run_bundle,
        "dagwright.agent.BaseAgent": agent_bundle,
    }
    flow = build_research_flow()
    assert set(names["dagwright.flow.Flow"](flow)) >= {"text/plain"}  # type: ignore[operator]
    # A shell that shows text only (IPython in a terminal) is not sent drawings it would throw away.
    shell.display_formatter.active_types = ["text/plain"]  # type: ignore[attr-defined]
    for name, subject in [("dagwright.flow.Flow", flow), ("dagwright.execution.events.RunResult", hand_run())]:
        assert set(names[name](subject)) == {"text/plain"}  # type: ignore[operator]
    assert set(names["dagwright.agent.BaseAgent"](Agent("qa", "q -> a"))) == {"text/plain"}  # type: ignore[operator]
    unregister(shell)
    assert names == {}
    assert register(object()) is False  # not a shell


def python(code: str) -> list[str]:
    """``code`` run by a fresh interpreter (tests/ on its path); its output lines."""
    env_code = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_a_plain_import_loads_neither_the_notebook_nor_the_drawing_code() -> None:
    out = python(
        """
        import dagwright
        print('dagwright.notebook' in sys.modules, 'dagwright.visualize' in sys.modules)
        """
    )
    assert out == ["False", "False"]


def test_importing_under_ipython_registers_without_loading_the_drawing_code() -> None:
    # A stand-in IPython module, so this runs where IPython is not installed too.
    out = python(
        """
        import types

        class Formatter:
            names = []

            def for_type_by_name(self, module, name, func):
                self.names.append(name)

        shell = types.SimpleNamespace(display_formatter=types.SimpleNamespace(mimebundle_formatter=Formatter()))
        fake = types.ModuleType("IPython")
        fake.get_ipython = lambda: shell
        sys.modules["IPython"] = fake
        import dagwright
        print(len(shell.display_formatter.mimebundle_formatter.names), 'dagwright.visualize' in sys.modules)
        fake.get_ipython = lambda: None
        from dagwright.notebook import register
        print(register())
        """
    )
    assert out == ["4", "False", "False"]


@pytest.fixture
def ipython_shell() -> Iterator[object]:
    """IPython's real shell with dagwright's formatters registered (skips where IPython is not installed)."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    assert register(shell)
    yield shell
    unregister(shell)


def test_ipython_displays_flows_graphs_runs_and_agents(ipython_shell: object) -> None:
    formatter = ipython_shell.display_formatter  # type: ignore[attr-defined]
    flow = build_research_flow()
    data, _ = formatter.format(flow)
    assert data["text/plain"].startswith("Flow 'research'")
    assert {"image/svg+xml", "text/markdown"} & set(data)
    data, _ = formatter.format(flow.compile())
    assert data["text/plain"].startswith("Graph 'research'")
    data, _ = formatter.format(hand_run())
    assert "<table>" in data["text/html"] and data["text/plain"].startswith("run run-7")

    class QAAgent(BaseAgent):
        signature = "question -> answer"

    data, _ = formatter.format(QAAgent(name="qa"))  # a subclass, found through the MRO
    assert data["text/plain"].startswith("QAAgent 'qa'\n  signature: question: str -> answer: str")
    unregister(ipython_shell)
    data, _ = formatter.format(flow)
    assert set(data) == {"text/plain"} and data["text/plain"] == repr(flow)


def test_importing_dagwright_in_a_running_ipython_registers_by_itself() -> None:
    pytest.importorskip("IPython")
    out = python(
        """
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        import dagwright
        data, _ = shell.display_formatter.format(dagwright.Flow.from_agent(dagwright.Agent("qa", "q -> a")))
        print(data["text/plain"].splitlines()[0].replace(" ", "_"), 'dagwright.notebook' in sys.modules)
        """
    )
    assert out == ["Flow_'agent'", "True"]


# --------------------------------------------------------------------------- 3. saved runs


def test_a_run_round_trips_through_json_exactly() -> None:
    flow, _ = debate_run()
    result = flow.run()
    text = result.to_json()
    again = RunResult.from_json(text)
    assert again == result
    assert again.to_json() == text
    assert RunResult.from_json(text.encode("utf-8")) == result
    made = hand_run()
    assert RunResult.from_dict(json.loads(made.to_json(indent=None))) == made
    assert json.loads(made.to_json())["format"] == "dagwright.run"


def test_outputs_that_are_not_plain_json_are_refused_unless_left_out() -> None:
    result = hand_run()
    result.nodes["researcher"].outputs["findings"] = ("a", "b")  # a tuple would come back a list
    with pytest.raises(ValueError, match=r"nodes\['researcher'\]\.outputs\['findings'\] is a tuple.*outputs=False"):
        result.to_json()
    result.outputs["n"] = float("nan")
    saved = RunResult.from_json(result.to_json(outputs=False))
    assert saved.outputs == {} and saved.nodes["researcher"].outputs == {}
    assert {k: r.status for k, r in saved.nodes.items()} == {k: r.status for k, r in result.nodes.items()}
    assert saved.nodes["researcher"].usage == result.nodes["researcher"].usage


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a saved run"),
        (lambda d: d.update(version=99), "format version 99 is newer"),
        (lambda d: d["nodes"]["judge"].update(status="paused"), r'nodes\["judge"\]\.status must be one of'),
        (lambda d: d["nodes"]["researcher"].update(attempts=True), r"attempts must be int, got true"),
        (lambda d: d["nodes"]["researcher"]["usage"].pop("cost"), r"usage has no field 'cost'"),
        (lambda d: d.update(nodes=[]), r"the run\.nodes must be dict"),
    ],
)
def test_a_bad_run_file_says_what_is_wrong_where(change: object, message: str) -> None:
    data = json.loads(hand_run().to_json())
    change(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        RunResult.from_json(json.dumps(data))
    with pytest.raises(ValueError, match="not valid JSON"):
        RunResult.from_json("{")


def test_load_run_reads_a_saved_run_for_render(tmp_path: Path) -> None:
    flow, _ = debate_run()
    result = flow.run()
    path = tmp_path / "run.json"
    path.write_text(result.to_json(), encoding="utf-8")
    warnings = io.StringIO()
    graph = flow.to_graph()
    loaded = load_run(path, graph, warn=warnings)
    assert warnings.getvalue() == ""
    dot = to_dot(graph, collapse=["debate"], run=loaded)
    assert "done (8 nodes)" in dot and f"run {result.run_id}: 12 done" in dot


def test_load_run_warns_about_another_version_and_refuses_another_flow(tmp_path: Path) -> None:
    flow, _ = debate_run()
    path = tmp_path / "run.json"
    path.write_text(flow.run().to_json(), encoding="utf-8")
    changed = patterns.debate(["optimist", "skeptic", "judge"], topic="Adopt it?", rounds=2)
    warnings = io.StringIO()
    load_run(path, changed.to_graph(), warn=warnings)
    assert "was of another version of flow 'debate'" in warnings.getvalue()
    assert "2 of its nodes are not in the flow" in warnings.getvalue()
    # The research flow has a 'transcript' node too: drawn, with a warning that names both flows.
    warnings = io.StringIO()
    load_run(path, build_research_flow().to_graph(), warn=warnings)
    assert "is of flow 'debate'; drawn on 'research' where the node ids match" in warnings.getvalue()
    # Sharing only 'input:topic' is sharing nothing.
    with pytest.raises(TargetError, match="has no node of flow 'wide'"):
        load_run(path, wide_group_flow().to_graph(), warn=io.StringIO())
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    with pytest.raises(TargetError, match=r"bad\.json: run JSON: the run must be an object"):
        load_run(tmp_path / "bad.json", flow.to_graph())
    with pytest.raises(TargetError, match="cannot read run file"):
        load_run(tmp_path / "missing.json", flow.to_graph())


def test_the_render_option_parses() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_run_option(parser)
    assert parser.parse_args(["--run", "run.json"]).run == "run.json"
    assert parser.parse_args([]).run is None
