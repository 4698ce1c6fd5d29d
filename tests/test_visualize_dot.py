"""Graphviz drawings: the DOT text (structure, escaping, determinism, goldens), overlays, collapse, and
SVG/PNG/PDF made by the real `dot` program."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from visualize_support import (
    WEIRD_IDS,
    Record,
    Run,
    assert_golden,
    build_broken_flow,
    build_consensus_flow,
    build_debate_flow,
    build_research_flow,
    check_mermaid,
    demo_run,
    dot_svg,
    require_dot,
    svg_texts,
    weird_graph,
)

from dagwright.compiler.ir import Graph
from dagwright.flow import Flow
from dagwright.visualize import GraphvizNotFoundError, RenderError, format_for, to_dot, to_mermaid
from dagwright.visualize._text import dot_name
from dagwright.visualize.dot import ERROR, ERROR_FILL, STATUS_COLORS, WARNING


def edge_line(dot: str, tail: str, head: str) -> str:
    """The one DOT edge statement from ``tail`` to ``head`` (both as written in the DOT)."""
    found = [line.strip() for line in dot.splitlines() if line.strip().startswith(f"{tail} -> {head} [")]
    assert len(found) == 1, (tail, head, found)
    return found[0]


def node_line(dot: str, name: str) -> str:
    """The whole statement of node ``name`` (its HTML label spans several lines, one table row each)."""
    lines = dot.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(f"{name} [")]
    assert len(starts) == 1, (name, starts)
    end = starts[0]
    while not lines[end].endswith("]"):
        end += 1
    return "\n".join(line.strip() for line in lines[starts[0] : end + 1])


# --------------------------------------------------------------------------- structure and determinism


def test_demo_dot_structure() -> None:
    dot = build_research_flow().to_dot()
    assert dot.startswith("digraph research {\n")
    assert "rankdir=LR" in dot
    # The debate group is a cluster holding exactly its three nodes, in order.
    cluster = dot[dot.index("subgraph cluster_debate {") : dot.index("\t}\n")]
    assert re.findall(r"^\t\t(\w+) \[label=", cluster, re.M) == ["optimist", "skeptic", "transcript"]
    assert "label=<<B>debate</B>>" in cluster
    # Port to port, outputs leave on the right (e), inputs are entered on the left (w).
    assert edge_line(dot, 'researcher:"o.findings":e', 'optimist:"i.findings":w') == (
        'researcher:"o.findings":e -> optimist:"i.findings":w '
        '[tooltip="researcher.findings → optimist.findings : list[str]"]'
    )
    # Flow inputs and outputs are rounded boxes without ports.
    assert edge_line(dot, '"input:topic"', 'researcher:"i.topic":w').endswith(
        '[tooltip="input:topic → researcher.topic : str"]'
    )
    io = node_line(dot, '"input:topic"')
    assert 'shape=box style="rounded,filled"' in io and "<TABLE" not in io
    # Typed port cells, inputs left and outputs right.
    researcher = node_line(dot, "researcher")
    assert '<TD PORT="i.topic" ALIGN="LEFT">topic' in researcher
    assert '<TD PORT="o.sources" ALIGN="RIGHT">sources' in researcher
    assert ">list[str]</FONT>" in researcher
    assert "agent · gpt-4o-mini" in researcher
    assert "function · transcript()" in node_line(dot, "transcript")


def test_dot_is_identical_across_builds_and_processes() -> None:
    first = build_research_flow().to_dot(diagnostics=True)
    assert build_research_flow().to_dot(diagnostics=True) == first
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from visualize_support import build_research_flow as b; "
        "sys.stdout.write(b().to_dot(diagnostics=True))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True).stdout.decode()
        assert out == first


def test_golden_debate_dot() -> None:
    dot = build_debate_flow().to_dot()
    # Rounds are sub-clusters of the debate cluster.
    assert dot.index("subgraph cluster_debate {") < dot.index('subgraph "cluster_debate/round1" {')
    assert_golden("debate.dot", dot)


def test_golden_consensus_dot() -> None:
    dot = build_consensus_flow().to_dot()
    vote = node_line(dot, '"consensus.vote"')
    assert "vote · strategy: majority" in vote
    assert '<FONT POINT-SIZE="8" COLOR="#6b7280"> collect</FONT>' in vote
    assert_golden("consensus.dot", dot)


def test_golden_debate_collapsed_dot() -> None:
    assert_golden("debate-collapsed.dot", build_debate_flow().to_dot(collapse=["debate/round1"]))


# --------------------------------------------------------------------------- SVG through dot


@pytest.mark.parametrize("build", [build_research_flow, build_debate_flow, build_consensus_flow, build_broken_flow])
def test_svg_holds_every_node_id(build: object) -> None:
    assert callable(build)
    flow = build()
    assert isinstance(flow, Flow)
    svg = dot_svg(flow.to_dot(diagnostics=True))
    titles = set(svg_texts(svg))
    for node in flow.to_graph().nodes:
        assert node.id in titles


def test_the_shipped_demo_flows_draw_cleanly() -> None:
    # Whatever shape the demo has today: dot lays it out without a warning, every id is drawn,
    # and its Mermaid passes the syntax check.
    from dagwright.cli import demo

    for flow in (demo.build_research_flow(), demo.build_broken_flow()):
        titles = set(svg_texts(dot_svg(flow.to_dot(diagnostics=True))))
        chart = check_mermaid(flow.to_mermaid(diagnostics=True))
        graph = flow.to_graph()
        for node in graph.nodes:
            assert node.id in titles
        drawn = {n.id for n in graph.nodes} | {e.source for e in graph.edges} | {e.target for e in graph.edges}
        assert len(chart.nodes) == len(drawn)


def test_render_writes_every_image_format(tmp_path: Path) -> None:
    require_dot()
    flow = build_research_flow()
    svg = flow.render(tmp_path / "flow.svg")
    assert svg == tmp_path / "flow.svg"
    assert "researcher" in svg_texts(svg.read_text(encoding="utf-8"))
    assert flow.render(tmp_path / "flow.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert flow.render(tmp_path / "flow.pdf").read_bytes().startswith(b"%PDF-")
    assert flow.render(tmp_path / "flow.out", format="svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert flow.render(tmp_path / "flow.dot").read_text(encoding="utf-8") == flow.to_dot()
    assert flow.render(tmp_path / "flow.gv").read_text(encoding="utf-8") == flow.to_dot()
    assert flow.render(tmp_path / "flow.mmd").read_text(encoding="utf-8") == flow.to_mermaid()
    assert flow.render(tmp_path / "flow.md").read_text(encoding="utf-8") == f"```mermaid\n{flow.to_mermaid()}```\n"


def test_unknown_format_and_suffix_are_named() -> None:
    with pytest.raises(ValueError, match=r"cannot tell the drawing format of 'flow\.jpeg' from its suffix '\.jpeg'"):
        format_for("flow.jpeg")
    with pytest.raises(ValueError, match=r"unknown drawing format 'gif'; expected one of dot, mermaid, svg, png, pdf"):
        format_for("flow.svg", "gif")


def test_without_dot_images_fail_clearly_and_text_formats_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    flow = build_research_flow()
    with pytest.raises(GraphvizNotFoundError) as info:
        flow.render(tmp_path / "flow.svg")
    message = str(info.value)
    assert "rendering SVG needs Graphviz's 'dot' program, which is not on PATH" in message
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "DOT and Mermaid output work without it" in message
    assert not (tmp_path / "flow.svg").exists()
    assert flow.render(tmp_path / "flow.dot").read_text(encoding="utf-8") == flow.to_dot()
    assert flow.render(tmp_path / "flow.mmd").read_text(encoding="utf-8") == flow.to_mermaid()


def test_dot_failure_is_reported_with_its_message(tmp_path: Path) -> None:
    require_dot()
    from dagwright.visualize.render import dot_to_image

    with pytest.raises(RenderError, match=r"dot failed to render SVG: .*syntax error"):
        dot_to_image("digraph { a -> }", "svg")


def test_unwritable_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"cannot write .*missing-dir/flow\.dot"):
        build_research_flow().render(tmp_path / "missing-dir" / "flow.dot")


# --------------------------------------------------------------------------- escaping


def test_every_id_is_escaped_and_kept_apart() -> None:
    ids = [*WEIRD_IDS, '"%22"']
    graph = weird_graph(ids)
    svg = dot_svg(to_dot(graph))
    texts = svg_texts(svg)
    for nid in ids:
        if "\t" in nid:
            assert nid.replace("\t", " ") in texts
        else:
            assert nid in texts, nid
    # Distinct ids stay distinct nodes: one SVG node per IR node, one edge per IR edge.
    assert svg.count('class="node"') == len(ids)
    assert svg.count('class="edge"') == len(ids) - 1
    assert 'weird "flow" <1>' in texts


def test_dot_names_are_injective_and_quote_safe() -> None:
    assert dot_name('a"b') == "a%22b"
    assert dot_name("%22") == "%2522"
    assert dot_name("a\\b") == "a%5Cb"
    assert dot_name("名前") == "名前"


def test_newlines_and_control_characters_in_ids_are_drawn_visibly() -> None:
    graph = weird_graph(["two\nlines", "bell\x07"])
    svg = dot_svg(to_dot(graph))
    texts = svg_texts(svg)
    assert "two" in texts and "lines" in texts
    assert "bell\\x07" in texts


_ID_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Cf", "Co", "Cn", "Mn", "Mc", "Me"),
    blacklist_characters="\ufffd",
)


@settings(max_examples=15)
@given(st.lists(st.text(_ID_CHARS, min_size=1, max_size=8), min_size=1, max_size=5, unique=True))
@example(["]", "]]", "[", "a]"])  # a label text of "]" alone is a syntax error to Graphviz unless encoded
def test_any_ids_render_as_written(ids: list[str]) -> None:
    svg = dot_svg(to_dot(weird_graph(ids)))
    texts = svg_texts(svg)
    assert svg.count('class="node"') == len(ids)
    for nid in ids:
        assert nid in texts


# --------------------------------------------------------------------------- secrets


SECRET_CONFIG = {
    "model": "gpt-4o-mini",
    "api_key": "sk-live-SECRET0123456789",
    "base_url": "https://alice:hunter2pass@llm.internal.example/v1",
    "openai_token": "tok-OPENAI-SECRET-42",
    "temperature": 0.3,
}
SECRETS = ("SECRET0123456789", "hunter2pass", "alice:", "OPENAI-SECRET-42", "llm.internal.example", "base_url")


def _assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_config_secrets_never_reach_a_drawing() -> None:
    flow = Flow("secrets")
    flow.input("question", str)
    flow.add_agent("qa", "question: str -> answer: str", config=SECRET_CONFIG)
    flow.output("answer", "qa.answer")
    dot = flow.to_dot(diagnostics=True)
    assert "gpt-4o-mini" in dot  # the model name is a safe, short field
    _assert_no_secrets(dot)
    _assert_no_secrets(flow.to_mermaid(diagnostics=True))
    _assert_no_secrets(dot_svg(dot))


def test_secrets_in_a_hand_written_ir_are_not_drawn_either() -> None:
    # A JSON file can hold anything: the drawing itself prints no config beyond safe, short facts.
    graph = Graph.from_dict(
        {
            "schema_version": 1,
            "name": "raw",
            "nodes": [
                {
                    "id": "qa",
                    "kind": "agent",
                    "config": {"agent": SECRET_CONFIG, "api_key": "sk-live-SECRET0123456789"},
                },
                {
                    "id": "tool",
                    "kind": "vote",
                    "config": {"strategy": "https://alice:hunter2pass@llm.internal.example"},
                },
                {"id": "auth", "kind": "vote", "config": {"openai_token": "tok-OPENAI-SECRET-42"}},
            ],
        }
    )
    dot = to_dot(graph)
    assert "agent · gpt-4o-mini" in dot
    _assert_no_secrets(dot)
    _assert_no_secrets(to_mermaid(graph))
    _assert_no_secrets(dot_svg(dot))


def test_run_errors_are_scrubbed_of_credentials() -> None:
    run = Run(
        {"researcher": Record("failed", error="POST https://alice:hunter2pass@api.example/v1 key sk-abcdef123456789")}
    )
    dot = build_research_flow().to_dot(run=run)
    assert "hunter2pass" not in dot and "sk-abcdef123456789" not in dot
    assert "POST https://api.example/v1 key sk-…" in dot


# --------------------------------------------------------------------------- diagnostics overlay


def test_diagnostics_overlay_marks_the_broken_demo() -> None:
    flow = build_broken_flow()
    plain = flow.to_dot()
    assert ERROR not in plain
    dot = flow.to_dot(diagnostics=True)
    # The wrong-typed connection: the edge, the input cell and the node border are red, with the code.
    edge = edge_line(dot, 'researcher:"o.sources":e', 'skeptic:"i.topic":w')
    assert f'color="{ERROR}"' in edge and 'label="DW007 list[str]"' in edge and "penwidth=2.4" in edge
    skeptic = node_line(dot, "skeptic")
    assert f'BORDER="2" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4" COLOR="{ERROR}"' in skeptic
    assert f'<TD PORT="i.topic" ALIGN="LEFT" BGCOLOR="{ERROR_FILL}">topic' in skeptic
    assert "<B>DW007</B>" in skeptic and "<B>DW009</B>" in skeptic
    # The typo: the edge leaves a port the node does not declare, drawn as such.
    researcher = node_line(dot, "researcher")
    assert '<TD PORT="o.finding" ALIGN="RIGHT"' in researcher and "(not declared)" in researcher
    assert "<B>DW004</B>" in researcher
    assert "label=DW004 " in edge_line(dot, 'researcher:"o.finding":e', 'optimist:"i.findings":w')
    # Untouched nodes keep their normal border.
    assert 'COLOR="#64748b"' in node_line(dot, "judge")
    assert f'<FONT COLOR="{ERROR}"><B>check: 3 errors</B></FONT>' in dot
    assert "<B>check: no errors or warnings</B>" in build_research_flow().to_dot(diagnostics=True)
    # The tooltips carry the full messages.
    assert "DW007 type-mismatch: researcher.sources (list[str]) cannot flow into skeptic.topic (str)" in skeptic


def test_warnings_are_orange_and_flow_level_problems_go_in_the_title() -> None:
    flow = Flow("warns")
    flow.input("text", str)
    flow.add_agent("used", "text: str -> summary: str")
    flow.add_agent("unused", "text: str -> mood: str")
    flow.output("summary", "used.summary")
    dot = flow.to_dot(diagnostics=True)
    unused = node_line(dot, "unused")
    assert f'COLOR="{WARNING}"' in unused and "DW012 dead-end" in unused
    assert ERROR not in dot
    empty = to_dot(Flow("empty").to_graph(), diagnostics=True)
    assert f"<FONT COLOR=\"{WARNING}\">DW017 empty-flow: flow 'empty' has no nodes</FONT>" in empty


def test_unknown_nodes_are_drawn_as_such() -> None:
    graph = Graph.from_dict(
        {
            "schema_version": 1,
            "name": "dangling",
            "nodes": [{"id": "a", "kind": "function", "outputs": [{"name": "x", "type": "int"}]}],
            "edges": [{"source": "a", "source_port": "x", "target": "ghost", "target_port": "y"}],
        }
    )
    dot = to_dot(graph, diagnostics=True)
    ghost = node_line(dot, "ghost")
    assert "unknown node" in ghost and 'STYLE="dashed"' in ghost and "DW003" in ghost
    assert "label=DW003 " in edge_line(dot, 'a:"o.x":e', 'ghost:"i.y":w')
    dot_svg(dot)


def test_diagnostics_argument_is_checked() -> None:
    graph = build_research_flow().to_graph()
    with pytest.raises(TypeError, match=r"diagnostics\[0\] is a str, not a Diagnostic"):
        to_dot(graph, diagnostics=["DW001"])
    with pytest.raises(TypeError, match="expected a Graph, got Flow"):
        to_dot(build_research_flow())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- run overlay


def test_run_overlay_colors_and_numbers() -> None:
    flow = build_research_flow()
    dot = flow.to_dot(run=demo_run())
    fills = {status: fill for status, (fill, _) in STATUS_COLORS.items()}
    researcher = node_line(dot, "researcher")
    assert f'BGCOLOR="{fills["done"]}" CELLPADDING="5"><B>researcher</B>' in researcher
    assert "done · 1.24 s · 1,234 tok · $0.0012" in researcher
    optimist = node_line(dot, "optimist")
    assert f'BGCOLOR="{fills["failed"]}" CELLPADDING="5"><B>optimist</B>' in optimist
    assert "TimeoutError: model did not answer in 30 s<" in optimist
    judge = node_line(dot, "judge")
    assert f'BGCOLOR="{fills["skipped"]}"' in judge and 'STYLE="dashed"' in judge
    assert "cached · 0 ms" in node_line(dot, "skeptic")
    # Edges into skipped nodes are dashed grey; edges out of a failed node dashed red.
    assert 'color="#9e9e9e" style=dashed' in edge_line(dot, 'transcript:"o.output":e', 'judge:"i.transcript":w')
    assert f'color="{ERROR}" style=dashed' in edge_line(dot, 'optimist:"o.argument":e', 'transcript:"i.optimist":w')
    assert "run run-1: 2 done, 1 cached, 1 failed, 2 skipped" not in dot  # done/cached counted apart
    assert "run run-1: 1 done, 1 cached, 1 failed, 2 skipped · 2,468 tok · $0.0024" in dot
    # Without a run, none of it.
    plain = flow.to_dot()
    assert fills["failed"] not in plain and "1,234 tok" not in plain
    dot_svg(dot)


def test_run_overlay_takes_the_runtime_record_shape_loosely() -> None:
    # A record with tokens but no total, and a status this version does not know.
    run = Run({"researcher": Record("paused", tokens={"prompt": 3, "completion": 4})})
    dot = build_research_flow().to_dot(run=run)
    assert "paused · 7 tok" in node_line(dot, "researcher")
    with pytest.raises(TypeError, match=r"run must be a RunResult \(an object with a \.nodes mapping\), got int"):
        build_research_flow().to_dot(run=3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- collapse


def test_collapse_draws_a_group_as_one_box_with_its_external_ports() -> None:
    flow = build_debate_flow()
    dot = flow.to_dot(collapse=["debate"])
    assert "debate.round1" not in dot and "cluster_debate" not in dot
    box = node_line(dot, '"group:debate"')
    assert "collapsed group · 6 nodes" in box
    assert re.findall(r'PORT="([io]\.[^"]+)"', box) == ["i.topic", "o.verdict", "o.reason"]
    # Five edges from the input into the group become one.
    assert edge_line(dot, '"input:topic"', '"group:debate":"i.topic":w')
    assert edge_line(dot, '"group:debate":"o.verdict":e', '"output:verdict"')
    assert dot.count(" -> ") == 3


def test_collapse_a_round_keeps_the_rest_and_names_clashing_ports() -> None:
    dot = build_debate_flow().to_dot(collapse=["debate/round1"])
    box = node_line(dot, '"group:debate/round1"')
    assert re.findall(r'PORT="([io]\.[^"]+)"', box) == ["i.topic", "o.optimist.argument", "o.skeptic.argument"]
    assert edge_line(dot, '"group:debate/round1":"o.optimist.argument":e', '"debate.round2.skeptic":"i.opponent":w')
    # The box sits inside the debate cluster, the round2 cluster is still there.
    assert dot.index("subgraph cluster_debate {") < dot.index('"group:debate/round1" [')
    assert 'subgraph "cluster_debate/round2" {' in dot


def test_collapse_carries_diagnostics_and_runs() -> None:
    flow = build_debate_flow()
    with flow.group("debate"), flow.group("round1"):
        flow.add_agent("debate.round1.extra", "topic: str, hint: str -> argument: str")  # hint never connected
    dot = flow.to_dot(collapse=["debate"], diagnostics=True)
    box = node_line(dot, '"group:debate"')
    assert f'COLOR="{ERROR}"' in box and "DW009 missing-input" in box
    assert "round1.extra: required input debate.round1.extra.hint (str) is not connected" in box
    run = Run({"debate.round1.optimist": Record("done", 100.0, {"total": 10}, 0.5), "debate.judge": Record("failed")})
    dot = build_debate_flow().to_dot(collapse=["debate"], run=run)
    assert "failed (2 nodes) · 100 ms · 10 tok · $0.5000" in node_line(dot, '"group:debate"')


def test_collapse_names_unknown_groups() -> None:
    with pytest.raises(ValueError, match=r"collapse: flow 'debate' has no group 'debat' \(groups: 'debate', "):
        build_debate_flow().to_dot(collapse=["debat"])
    with pytest.raises(ValueError, match="collapse takes group names"):
        build_debate_flow().to_dot(collapse=[""])


def test_collapse_takes_a_groups_own_name_when_it_is_unique() -> None:
    flow = build_debate_flow()
    assert flow.to_dot(collapse=["round1"]) == flow.to_dot(collapse=["debate/round1"])
    with flow.group("appeal"), flow.group("round1"):
        flow.add_agent("appeal.round1.clerk", "topic: str -> argument: str")
    with pytest.raises(
        ValueError, match=r"'round1' names several groups of flow 'debate': 'debate/round1', 'appeal/round1'"
    ):
        flow.to_dot(collapse=["round1"])


# --------------------------------------------------------------------------- scale and imports


def big_flow(nodes: int = 1000, width: int = 10) -> Flow:
    """``nodes`` agents in layers of ``width``, each fed by two nodes of the layer before; 10 layers a group."""
    flow = Flow("big")
    flow.input("a", str)
    flow.input("b", str)
    layers = nodes // width
    for layer in range(layers):
        with flow.group(f"stage{layer // 10}"):
            for j in range(width):
                node_id = f"s{layer}.n{j}"
                flow.add_agent(node_id, "a: str, b: str -> draft: str", config={"model": "gpt-4o-mini"})
                if layer:
                    flow.connect(f"s{layer - 1}.n{j}.draft", f"{node_id}.a")
                    flow.connect(f"s{layer - 1}.n{(j * 3 + 1) % width}.draft", f"{node_id}.b")
    for j in range(width):
        flow.output(f"out{j}", f"s{layers - 1}.n{j}.draft")
    return flow


def test_a_thousand_node_flow_renders_to_svg(tmp_path: Path) -> None:
    require_dot()
    flow = big_flow()
    start = time.perf_counter()
    path = flow.render(tmp_path / "big.svg", diagnostics=True)
    elapsed = time.perf_counter() - start
    svg = path.read_text(encoding="utf-8")
    assert svg.count('class="node"') == 1012
    assert svg.count('class="cluster"') == 10
    print(f"1000-node flow to SVG: {elapsed:.2f} s")


def test_import_dagwright_does_not_import_graphviz() -> None:
    code = (
        "import sys, dagwright; f = dagwright.Flow('x'); f.to_graph(); "
        "print('graphviz' in sys.modules, 'dagwright.visualize' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout.decode()
    assert out.split() == ["False", "False"]


def test_a_closing_bracket_at_the_start_of_a_cell_is_drawn() -> None:
    # Found by test_any_ids_render_as_written: Graphviz rejected a label cell whose text began with "]".
    texts = svg_texts(dot_svg(to_dot(weird_graph(["]", "]]", "a]", "x\n]y"]))))
    assert {"]", "]]", "a]", "]y"} <= set(texts)
