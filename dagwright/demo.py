"""``dagwright demo``: a multi-agent research flow, compiled, checked and shown.

A researcher gathers findings, an optimist and a skeptic argue over them side by
side, their arguments are collected into a transcript, and a judge decides. Then
the same flow with three typical wiring mistakes, to show what the checker
reports before anything runs.
"""

from __future__ import annotations

from typing import Literal

from dagwright.compiler.diagnostics import CompileError
from dagwright.compiler.flow import Flow
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node
from dagwright.compiler.report import render
from dagwright.compiler.signature import InputField, OutputField, Signature

__all__ = ["build_research_flow", "run_demo"]


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


def _ports(node: Node) -> str:
    ins = ", ".join(f"{p.name}: {p.type}" for p in node.inputs)
    outs = ", ".join(f"{p.name}: {p.type}" for p in node.outputs)
    return f"({ins}) -> ({outs})"


def describe(graph: Graph) -> str:
    """A readable summary of a compiled graph."""
    lines = [f"flow {graph.name!r}: {len(graph.nodes)} nodes, {len(graph.edges)} edges"]
    ins = [n.outputs[0] for n in graph.nodes if n.kind == INPUT_KIND]
    outs = [n.inputs[0] for n in graph.nodes if n.kind == OUTPUT_KIND]
    lines.append("  inputs:  " + ", ".join(f"{p.name}: {p.type}" for p in ins))
    lines.append("  outputs: " + ", ".join(f"{p.name}: {p.type}" for p in outs))
    lines.append("  nodes, in dependency order:")
    for nid in graph.topological_order():
        node = graph.node(nid)
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            continue
        group = f"  [{'/'.join(node.group)}]" if node.group else ""
        lines.append(f"    {node.id:<11} {node.kind:<9}{_ports(node)}{group}")
    lines.append("  edges:")
    lines.extend(f"    {edge}" for edge in graph.edges)
    lines.append(f"  content hash: {graph.content_hash[:16]}")
    return "\n".join(lines)


def run_demo() -> int:
    """Print the demo; returns the exit code (0 when the good flow compiles clean)."""
    flow = build_research_flow()
    graph = flow.compile(strict=True)
    print("== 1. compile and check a multi-agent research flow\n")
    print(describe(graph))
    print("\n" + render([(flow.name, flow.validate())], "text"))
    broken = build_broken_flow()
    print("\n== 2. the same flow with three wiring mistakes: caught before any LLM call\n")
    try:
        broken.compile()
    except CompileError as exc:
        print(render([(broken.name, exc.diagnostics)], "text"))
    else:  # the checker missing these would be a bug: say so loudly
        print("error: the broken flow compiled")
        return 1
    return 0
