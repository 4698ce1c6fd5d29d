"""Mermaid drawings: a syntax check of every chart, injective safe ids, goldens, overlays and collapse."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from visualize_support import (
    MERMAID_ID,
    RESERVED,
    WEIRD_IDS,
    assert_golden,
    build_broken_flow,
    build_consensus_flow,
    build_debate_flow,
    build_research_flow,
    check_mermaid,
    demo_run,
    weird_graph,
)

from dagwright.visualize import to_mermaid
from dagwright.visualize._text import mermaid_id, mermaid_label


def block(text: str, subgraph_id: str) -> list[str]:
    """The node ids declared directly inside one subgraph."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"subgraph {subgraph_id}["))
    depth = 0
    found: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith("subgraph "):
            depth += 1
        elif stripped == "end":
            if depth == 0:
                return found
            depth -= 1
        elif depth == 0:
            found.append(re.match(r"\w+", stripped).group())  # type: ignore[union-attr]
    raise AssertionError("unterminated subgraph")


def test_demo_chart() -> None:
    flow = build_research_flow()
    text = flow.to_mermaid()
    chart = check_mermaid(text)
    assert text.splitlines()[1] == "flowchart LR"
    graph = flow.to_graph()
    assert len(chart.nodes) == len(graph.nodes)
    assert len(chart.edges) == len(graph.edges)
    assert chart.subgraphs == ["g_debate"]
    assert block(text, "g_debate") == ["n_optimist", "n_skeptic", "n_transcript"]
    assert chart.nodes["n_researcher"] == "researcher<br/>agent · gpt-4o-mini"
    assert chart.nodes["n_input_3a_topic"] == "input<br/>topic: str"
    assert ("n_researcher", "-->", "findings: list[str]", "n_optimist") in chart.edges
    assert ("n_optimist", "-->", "argument → optimist: str", "n_transcript") in chart.edges
    assert chart.classes["agent"] == ["n_researcher", "n_optimist", "n_skeptic", "n_judge"]


def test_golden_debate_and_consensus_mermaid() -> None:
    debate = build_debate_flow().to_mermaid()
    chart = check_mermaid(debate)
    assert chart.subgraphs == ["g_debate", "g_debate_2f_round1", "g_debate_2f_round2"]
    assert block(debate, "g_debate") == ["n_debate_2e_transcript", "n_debate_2e_judge"]
    assert_golden("debate.mmd", debate)
    consensus = build_consensus_flow(voters=4).to_mermaid()
    chart = check_mermaid(consensus)
    votes = [e for e in chart.edges if e[3] == "n_consensus_2e_vote"]
    assert len(votes) == 4 and {e[2] for e in votes} == {"vote → votes: Literal['yes', 'no']"}
    assert_golden("consensus.mmd", consensus)


def test_weird_ids_get_safe_distinct_ids_and_escaped_labels() -> None:
    text = to_mermaid(weird_graph(WEIRD_IDS))
    chart = check_mermaid(text)
    assert len(chart.nodes) == len(WEIRD_IDS)
    assert chart.nodes[mermaid_id("n_", 'say "hi"')].startswith("say #34;hi#34;<br/>")
    assert chart.nodes[mermaid_id("n_", "<b>bold</b>")].startswith("#60;b#62;bold#60;/b#62;<br/>")
    assert chart.nodes[mermaid_id("n_", "fish & chips")].startswith("fish #38; chips<br/>")
    assert mermaid_id("n_", "end") == "n_end"
    assert text.startswith('%% dagwright flow: weird "flow" <1>\n')  # a comment line: nothing to escape


def test_mermaid_ids_examples() -> None:
    assert mermaid_id("n_", "a.b") == "n_a_2e_b"
    assert mermaid_id("n_", "a_b") == "n_a__b"
    assert mermaid_id("n_", "a__2e_b") == "n_a____2e__b"
    assert mermaid_label('a "b" <c> & #1 | `d`\nnext') == "a #34;b#34; #60;c#62; #38; #35;1 #124; #96;d#96;<br/>next"


@settings(max_examples=60)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8, unique=True))
def test_ids_are_injective_and_safe(ids: list[str]) -> None:
    made = [mermaid_id("n_", i) for i in ids]
    assert len(set(made)) == len(ids)
    for mid in made:
        assert MERMAID_ID.fullmatch(mid) and mid not in RESERVED


@settings(max_examples=30)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6, unique=True))
def test_any_graph_passes_the_syntax_check(ids: list[str]) -> None:
    chart = check_mermaid(to_mermaid(weird_graph(ids)))
    assert len(chart.nodes) == len(ids)
    assert len(chart.edges) == len(ids) - 1


def test_group_paths_that_join_alike_stay_apart() -> None:
    from dagwright.compiler.ir import Graph

    graph = Graph.from_dict(
        {
            "schema_version": 1,
            "name": "groups",
            "nodes": [
                {"id": "x", "kind": "function", "group": ["a/b"]},
                {"id": "y", "kind": "function", "group": ["a", "b"]},
            ],
        }
    )
    chart = check_mermaid(to_mermaid(graph))
    assert chart.subgraphs == ["g_a_2f_b", "g_a", "g2_a_2f_b"]


def test_diagnostics_overlay() -> None:
    flow = build_broken_flow()
    assert "classDef error" not in flow.to_mermaid()
    text = flow.to_mermaid(diagnostics=True)
    chart = check_mermaid(text)
    assert chart.classes["error"] == ["n_researcher", "n_skeptic"]
    assert chart.nodes["n_skeptic"] == "skeptic<br/>agent<br/>⚠ DW007, DW009"
    wrong = chart.edges.index(("n_researcher", "-->", "DW007 · sources → topic: list[str]", "n_skeptic"))
    typo = chart.edges.index(("n_researcher", "-->", "DW004 · finding → findings", "n_optimist"))
    assert chart.link_styles[wrong] == chart.link_styles[typo] == "stroke:#c62828,stroke-width:3px,color:#c62828"
    assert len(chart.link_styles) == 2
    assert "%% check: 3 errors" in text.splitlines()


def test_run_overlay() -> None:
    text = build_research_flow().to_mermaid(run=demo_run())
    chart = check_mermaid(text)
    assert chart.classes["failed"] == ["n_optimist"]
    assert chart.classes["skipped"] == ["n_transcript", "n_judge"]
    assert chart.classes["done"] == ["n_researcher"]
    assert chart.classes["cached"] == ["n_skeptic"]
    assert chart.nodes["n_researcher"] == "researcher<br/>agent · gpt-4o-mini<br/>done · 1.24 s · 1,234 tok · $0.0012"
    assert "TimeoutError: model did not answer in 30 s" in chart.nodes["n_optimist"]
    assert ("n_transcript", "-.->", "output → transcript: list[str]", "n_judge") in chart.edges
    assert ("n_optimist", "-.->", "argument → optimist: str", "n_transcript") in chart.edges
    assert "%% run run-1: 1 done, 1 cached, 1 failed, 2 skipped · 2,468 tok · $0.0024" in text.splitlines()


def test_collapse() -> None:
    text = build_debate_flow().to_mermaid(collapse=["debate"])
    chart = check_mermaid(text)
    assert chart.subgraphs == []
    assert chart.nodes["n_group_3a_debate"] == "debate<br/>collapsed group · 6 nodes"
    assert chart.edges == [
        ("n_input_3a_topic", "-->", "topic: str", "n_group_3a_debate"),
        ("n_group_3a_debate", "-->", "verdict: Literal['optimist', 'skeptic']", "n_output_3a_verdict"),
        ("n_group_3a_debate", "-->", "reason: str", "n_output_3a_reason"),
    ]
