"""Shared by the drawing tests: flows, run records, a Mermaid checker, `dot` handling.

The research flow (research -> optimist || skeptic -> transcript -> judge, the
middle three in group ``debate``) and its broken twin (a typo, a type error, a
forgotten connection) are kept here so the drawing tests do not move when the
demo does. The debate and consensus flows are built by hand with :class:`Flow`
so the golden files do not depend on the pattern factories: a debate is two
rounds of two debaters in groups ``debate/round1`` and ``debate/round2`` and a
judge reading a collected transcript; a consensus is N voters in parallel and a
vote node with a collect input.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from dagwright.compiler.ir import FrozenDict, Graph, Node, Port
from dagwright.compiler.signature import InputField, OutputField, Signature
from dagwright.compiler.types import parse_type
from dagwright.flow import Flow

# --------------------------------------------------------------------------- `dot`


def require_dot() -> str:
    """The path of `dot`; fails in CI (where .ci/run installs Graphviz) and skips elsewhere when missing."""
    exe = shutil.which("dot")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's dot is not on PATH in CI; .ci/run installs it")
        pytest.skip("Graphviz's dot is not installed")
    return exe


def dot_svg(source: str) -> str:
    """``source`` laid out by `dot` as SVG text; fails the test on any `dot` warning or error."""
    exe = require_dot()
    proc = subprocess.run([exe, "-Tsvg"], input=source.encode(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr.decode().strip() == "", proc.stderr.decode()
    return proc.stdout.decode()


SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_texts(svg: str) -> list[str]:
    """Every ``<text>`` and ``<title>`` of an SVG, unescaped (what a reader sees or hovers)."""
    root = ET.fromstring(svg)
    out: list[str] = []
    for tag in ("text", "title"):
        out.extend("".join(el.itertext()) for el in root.iter(f"{SVG_NS}{tag}"))
    return out


# --------------------------------------------------------------------------- flows
# A research flow and its broken twin, kept here so the drawing tests do not move when the demo does.


class Research(Signature):
    """Research the topic and list the key findings with their sources."""

    topic: str = InputField(description="What to research")
    findings: list[str] = OutputField(description="Key findings, one sentence each")
    sources: list[str] = OutputField(description="Where each finding comes from")


class Argue(Signature):
    """Argue your side of the topic using the findings."""

    topic: str = InputField(description="The question under debate")
    findings: list[str] = InputField(description="The research findings")
    argument: str = OutputField(description="Your strongest argument")


class Judge(Signature):
    """Weigh the debate transcript and decide."""

    topic: str = InputField(description="The question under debate")
    transcript: list[str] = InputField(description="The arguments, in order")
    decision: Literal["adopt", "reject", "revise"] = OutputField(description="The verdict")
    rationale: str = OutputField(description="Why")
    confidence: float = OutputField(description="0.0 to 1.0")


def transcript(optimist: str, skeptic: str) -> list[str]:
    """Both arguments, labelled, in speaking order."""
    return [f"optimist: {optimist}", f"skeptic: {skeptic}"]


def build_research_flow() -> Flow:
    """The demo flow: research -> (optimist || skeptic) -> transcript -> judge."""
    flow = Flow("research", description="Research a topic, debate it, decide.")
    flow.input("topic", str, description="The question to research and decide")
    flow.add_agent("researcher", Research, config={"model": "gpt-4o-mini", "temperature": 0.2})
    with flow.group("debate"):
        flow.add_agent("optimist", Argue, config={"model": "gpt-4o-mini", "system_prompt": "Argue in favour."})
        flow.add_agent("skeptic", Argue, config={"model": "gpt-4o-mini", "system_prompt": "Argue against."})
        flow.add_function("transcript", transcript)
    flow.add_agent("judge", Judge, config={"model": "gpt-4o-mini", "temperature": 0.0})
    flow.connect("researcher.findings", "optimist.findings")
    flow.connect("researcher.findings", "skeptic.findings")
    flow.connect("optimist.argument", "transcript.optimist")
    flow.connect("skeptic.argument", "transcript.skeptic")
    flow.connect("transcript.output", "judge.transcript")
    flow.output("decision", "judge.decision")
    flow.output("rationale", "judge.rationale")
    flow.output("confidence", "judge.confidence")
    flow.output("sources", "researcher.sources")
    return flow


def build_broken_flow() -> Flow:
    """The demo flow with three mistakes: a typo, a type error, a forgotten connection."""
    flow = Flow("research-broken")
    flow.input("topic", str)
    flow.add_agent("researcher", Research)
    flow.add_agent("optimist", Argue)
    flow.add_agent("skeptic", Argue)
    flow.add_function("transcript", transcript)
    flow.add_agent("judge", Judge)
    flow.connect("researcher.finding", "optimist.findings")  # typo: the output is 'findings'
    flow.connect("researcher.sources", "skeptic.topic")  # list[str] into str
    flow.connect("optimist.argument", "transcript.optimist")
    flow.connect("skeptic.argument", "transcript.skeptic")
    flow.connect("transcript.output", "judge.transcript")  # ...and skeptic.findings is never connected
    flow.output("decision", "judge.decision")
    return flow


def build_debate_flow() -> Flow:
    """Two rounds of optimist vs skeptic (groups debate/round1, debate/round2), then a judge."""
    flow = Flow("debate", description="Two rounds of debate, then a verdict.")
    flow.input("topic", str, description="The question under debate")
    argue = "topic: str -> argument: str"
    rebut = "topic: str, opponent: str -> argument: str"
    with flow.group("debate"):
        with flow.group("round1"):
            flow.add_agent("debate.round1.optimist", argue, config={"model": "gpt-4o-mini"})
            flow.add_agent("debate.round1.skeptic", argue, config={"model": "gpt-4o-mini"})
        with flow.group("round2"):
            flow.add_agent("debate.round2.optimist", rebut, config={"model": "gpt-4o-mini"})
            flow.add_agent("debate.round2.skeptic", rebut, config={"model": "gpt-4o-mini"})
        flow.add_node(
            Node(
                "debate.transcript",
                "transcript",
                inputs=(Port("turns", parse_type("list[str]"), collect=True),),
                outputs=(Port("transcript", parse_type("list[str]")),),
            )
        )
        flow.add_agent(
            "debate.judge",
            "topic: str, transcript: list[str] -> verdict: Literal['optimist', 'skeptic'], reason: str",
            config={"model": "gpt-4o"},
        )
    flow.connect("debate.round1.optimist.argument", "debate.round2.skeptic.opponent")
    flow.connect("debate.round1.skeptic.argument", "debate.round2.optimist.opponent")
    for speaker in ("round1.optimist", "round1.skeptic", "round2.optimist", "round2.skeptic"):
        flow.connect(f"debate.{speaker}.argument", "debate.transcript.turns")
    flow.connect("debate.transcript.transcript", "debate.judge.transcript")
    flow.output("verdict", "debate.judge.verdict")
    flow.output("reason", "debate.judge.reason")
    return flow


def build_consensus_flow(voters: int = 3) -> Flow:
    """``voters`` agents answer in parallel; a vote node collects their votes and decides."""
    flow = Flow("consensus", description="Independent voters, majority decides.")
    flow.input("question", str)
    with flow.group("consensus"):
        for i in range(1, voters + 1):
            flow.add_agent(
                f"consensus.voter{i}",
                "question: str -> vote: Literal['yes', 'no'], reason: str",
                config={"model": "gpt-4o-mini", "temperature": 0.7},
            )
        flow.add_node(
            Node(
                "consensus.vote",
                "vote",
                inputs=(Port("votes", parse_type("list[Literal['yes', 'no']]"), collect=True),),
                outputs=(Port("decision", parse_type("Literal['yes', 'no']")), Port("agreement", parse_type("float"))),
                config=FrozenDict({"strategy": "majority"}),
            )
        )
    for i in range(1, voters + 1):
        flow.connect(f"consensus.voter{i}.vote", "consensus.vote.votes")
    flow.output("decision", "consensus.vote.decision")
    flow.output("agreement", "consensus.vote.agreement")
    return flow


# --------------------------------------------------------------------------- run records


@dataclass
class Record:
    """A node's run record with the shape the run overlay reads."""

    status: str
    duration_ms: float | None = None
    tokens: Mapping[str, int] | None = None
    cost: float | None = None
    error: str | None = None


@dataclass
class Run:
    """A run result with the shape the run overlay reads."""

    nodes: dict[str, Record] = field(default_factory=dict)
    run_id: str = "run-1"


def demo_run() -> Run:
    """A run of the demo flow: one node done, one cached, one failed, two skipped."""
    tokens = {"prompt": 1000, "completion": 234, "total": 1234}
    return Run(
        {
            "researcher": Record("done", 1240.0, tokens, 0.0012),
            "optimist": Record("failed", 312.0, None, None, "TimeoutError: model did not answer in 30 s\nretry 3"),
            "skeptic": Record("cached", 0.4, tokens, 0.0012),
            "transcript": Record("skipped"),
            "judge": Record("skipped"),
        }
    )


# --------------------------------------------------------------------------- hand-written IR with odd ids


WEIRD_IDS = [
    'say "hi"',
    "<b>bold</b>",
    "fish & chips",
    "名前.ünï",
    "back\\slash",
    "trailing\\",
    "end",
    "node",
    "%22",
    "a:b:c",
    "tab\there",
    "x]y[z",
    "emoji 🦜",
]


def weird_graph(ids: list[str]) -> Graph:
    """A chain through function nodes with these ids (and port names), as a hand-written JSON IR would hold."""
    nodes = [
        {
            "id": nid,
            "kind": "function",
            "inputs": [{"name": f"in {nid}", "type": "str"}],
            "outputs": [{"name": f"out {nid}", "type": "str"}],
            "group": [f"g {nid}"] if i % 2 else [],
        }
        for i, nid in enumerate(ids)
    ]
    edges = [
        {"source": a, "source_port": f"out {a}", "target": b, "target_port": f"in {b}"}
        for a, b in itertools.pairwise(ids)
    ]
    return Graph.from_dict({"schema_version": 1, "name": 'weird "flow" <1>', "nodes": nodes, "edges": edges})


# --------------------------------------------------------------------------- goldens


GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, text: str) -> None:
    """``text`` equals tests/golden/NAME; DAGWRIGHT_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("DAGWRIGHT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "now"))
        pytest.fail(f"{name} differs from the golden file (DAGWRIGHT_UPDATE_GOLDEN=1 regenerates it):\n{diff}")


# --------------------------------------------------------------------------- Mermaid


MERMAID_ID = re.compile(r"[A-Za-z0-9_]+")
RESERVED = {"end", "subgraph", "graph", "flowchart", "style", "class", "classDef", "click", "linkStyle", "direction"}
LABEL = r'"([^"]*)"'
NODE_DECL = re.compile(rf"^({MERMAID_ID.pattern})(\(\[{LABEL}\]\)|\[\[{LABEL}\]\]|\[{LABEL}\]|\({LABEL}\))$")
SUBGRAPH = re.compile(rf"^subgraph ({MERMAID_ID.pattern})\[{LABEL}\]$")
EDGE = re.compile(rf"^({MERMAID_ID.pattern}) (-->|-\.->)\|{LABEL}\| ({MERMAID_ID.pattern})$")
STYLE_PART = r"[a-z-]+:[#A-Za-z0-9.]+(?: [0-9]+)*"
CLASSDEF = re.compile(rf"^classDef ([A-Za-z][A-Za-z0-9_]*) ({STYLE_PART}(?:,{STYLE_PART})*)$")
CLASS = re.compile(rf"^class ((?:{MERMAID_ID.pattern},)*{MERMAID_ID.pattern}) ([A-Za-z][A-Za-z0-9_]*)$")
LINKSTYLE = re.compile(rf"^linkStyle ((?:\d+,)*\d+) ({STYLE_PART}(?:,{STYLE_PART})*)$")


@dataclass
class MermaidChart:
    """What the checker read: node ids with their labels, subgraph ids, edges, and classes."""

    nodes: dict[str, str] = field(default_factory=dict)
    subgraphs: list[str] = field(default_factory=list)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)
    link_styles: dict[int, str] = field(default_factory=dict)


def _check_label(label: str, where: str) -> None:
    # Quotes end a label; raw angle brackets would be HTML. Only our own <br/> is allowed.
    assert '"' not in label, f"{where}: raw quote in label {label!r}"
    assert "<" not in label.replace("<br/>", ""), f"{where}: raw '<' in label {label!r}"
    assert ">" not in label.replace("<br/>", ""), f"{where}: raw '>' in label {label!r}"


def check_mermaid(text: str) -> MermaidChart:
    """A syntax check of the Mermaid subset the writer emits; returns what it read.

    Every line is one of: a ``%%`` comment (never a ``%%{`` directive), the
    ``flowchart LR`` header (first), a node declaration, ``subgraph``/``end``
    (balanced), an edge between declared nodes, ``classDef``/``class``/``linkStyle``.
    """
    chart = MermaidChart()
    lines = [line for line in text.split("\n") if line.strip()]
    assert text.endswith("\n")
    body = [line.strip() for line in lines if not line.strip().startswith("%%")]
    for line in lines:
        if line.strip().startswith("%%"):
            assert not line.strip().startswith("%%{"), f"directive-like comment {line!r}"
    assert body and body[0] == "flowchart LR", body[:1]
    depth = 0
    declared_classes: set[str] = set()
    for i, line in enumerate(body[1:], start=2):
        where = f"line {i}: {line!r}"
        if m := SUBGRAPH.match(line):
            assert m.group(1) not in RESERVED, where
            assert m.group(1) not in chart.subgraphs, f"{where}: subgraph id reused"
            _check_label(m.group(2), where)
            chart.subgraphs.append(m.group(1))
            depth += 1
        elif line == "end":
            depth -= 1
            assert depth >= 0, f"{where}: 'end' without 'subgraph'"
        elif m := EDGE.match(line):
            _check_label(m.group(3), where)
            chart.edges.append((m.group(1), m.group(2), m.group(3), m.group(4)))
        elif m := NODE_DECL.match(line):
            node_id = m.group(1)
            label = next(g for g in m.groups()[2:] if g is not None)
            assert node_id not in RESERVED, where
            assert node_id not in chart.nodes, f"{where}: node declared twice"
            _check_label(label, where)
            chart.nodes[node_id] = label
        elif m := CLASSDEF.match(line):
            declared_classes.add(m.group(1))
        elif m := CLASS.match(line):
            assert m.group(2) in declared_classes, f"{where}: class used before classDef"
            for node_id in m.group(1).split(","):
                assert node_id in chart.nodes, f"{where}: class on undeclared node {node_id}"
                chart.classes.setdefault(m.group(2), []).append(node_id)
        elif m := LINKSTYLE.match(line):
            for index in m.group(1).split(","):
                chart.link_styles[int(index)] = m.group(2)
        else:
            raise AssertionError(f"{where}: not a line the writer emits")
    assert depth == 0, "unbalanced subgraph/end"
    assert not set(chart.subgraphs) & set(chart.nodes), "a subgraph id is also a node id"
    for source, _, _, target in chart.edges:
        assert source in chart.nodes, f"edge from undeclared node {source}"
        assert target in chart.nodes, f"edge to undeclared node {target}"
    for index in chart.link_styles:
        assert 0 <= index < len(chart.edges), f"linkStyle {index} names no edge"
    return chart
