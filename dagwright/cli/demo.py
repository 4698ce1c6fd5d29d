"""``dagwright demo``: a multi-agent research flow, compiled, checked, drawn and run.

A researcher gathers findings; an optimist and a skeptic debate them over two
rounds and a judge decides; three reviewers then vote on the verdict. The whole
thing is one pipeline whose middle step is a debate and whose last step is a
consensus. It is checked before anything runs, drawn to ``demo.svg``, and run on
the embedded offline model (or on any OpenAI-compatible server the environment
configures). Then the same kind of flow with three wiring mistakes, to show what
the checker reports before any LLM call.
"""

from __future__ import annotations

import dataclasses
import linecache
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Literal

from dagwright.compiler.diagnostics import CompileError, Diagnostic
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node, SourceLocation
from dagwright.compiler.report import render
from dagwright.compiler.signature import InputField, OutputField, Signature
from dagwright.execution.events import Event
from dagwright.flow import Flow
from dagwright.kaizen import Kaizen

__all__ = ["build_broken_flow", "build_research_flow", "run_demo"]


class Research(Signature):
    """Research the topic and list the key findings with their sources."""

    topic: str = InputField(description="What to research")
    findings: list[str] = OutputField(description="Key findings, one sentence each")
    sources: list[str] = OutputField(description="Where each finding comes from")


class Argue(Signature):
    """Argue your side of the topic using the findings; answer earlier turns of the transcript."""

    topic: str = InputField(description="The question under debate")
    findings: list[str] = InputField(description="The research findings")
    transcript: list[str] = InputField(description="Earlier turns, in order")
    argument: str = OutputField(description="Your strongest argument")


class Judge(Signature):
    """Weigh the debate transcript and decide."""

    topic: str = InputField(description="The question under debate")
    transcript: list[str] = InputField(description="The arguments, in order")
    decision: Literal["adopt", "reject", "revise"] = OutputField(description="The verdict")
    rationale: str = OutputField(description="Why")


class Review(Signature):
    """Review the verdict of a debate: do you endorse it?"""

    verdict: str = InputField(description="The decision under review")
    rationale: str = InputField(description="The judge's reasons")
    decision: Literal["endorse", "object"] = OutputField(description="Your vote")
    confidence: float = OutputField(description="How sure", ge=0, le=1)


def build_research_flow(kaizen: Kaizen | None = None) -> Flow:
    """The demo flow: research -> debate (2 rounds) -> consensus of three reviewers."""
    kaizen = kaizen or Kaizen(config={"model": "gpt-4o-mini"})
    research = kaizen.create_agent("researcher", signature=Research, config={"temperature": 0.2})
    optimist = kaizen.create_agent("optimist", signature=Argue, config={"system_prompt": "Argue in favour."})
    skeptic = kaizen.create_agent("skeptic", signature=Argue, config={"system_prompt": "Argue against."})
    judge = kaizen.create_agent("judge", signature=Judge, config={"temperature": 0.0})
    debate = kaizen.create_debate_workflow(agents=[optimist, skeptic, judge], rounds=2)
    reviewers = kaizen.create_consensus_workflow(
        [kaizen.create_agent(name, signature=Review) for name in ("ethicist", "economist", "engineer")],
        decision_criteria="majority_vote",
        confidence_threshold=0.5,
    )
    return kaizen.create_pipeline(
        [research, debate, (reviewers, {"mapping": {"decision": "verdict"}})], name="research"
    )


def build_broken_flow() -> Flow:
    """A research flow with three mistakes: a typo, a type error, a forgotten connection."""

    class Argue1(Signature):
        """Argue your side of the topic using the findings."""

        topic: str = InputField()
        findings: list[str] = InputField()
        argument: str = OutputField()

    def transcript(optimist: str, skeptic: str) -> list[str]:
        return [optimist, skeptic]

    flow = Flow("research-broken")
    flow.input("topic", str)
    flow.add_agent("researcher", Research)
    flow.add_agent("optimist", Argue1)
    flow.add_agent("skeptic", Argue1)
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe(graph: Graph) -> str:
    """A readable summary of a compiled graph.

    The IR has a node for each flow input and output besides the steps that do work, and
    a run records all of them; the count says both, so neither number surprises later.
    """
    work = [n for n in graph.nodes if n.kind not in (INPUT_KIND, OUTPUT_KIND)]
    ins = [n.outputs[0] for n in graph.nodes if n.kind == INPUT_KIND]
    outs = [n.inputs[0] for n in graph.nodes if n.kind == OUTPUT_KIND]
    lines = [
        f"flow {graph.name!r}: {_plural(len(work), 'step')} ({len(graph.nodes)} nodes with its "
        f"{_plural(len(ins), 'input')} and {_plural(len(outs), 'output')}), {_plural(len(graph.edges), 'edge')}"
    ]
    lines.append("  inputs:  " + ", ".join(f"{p.name}: {p.type}" for p in ins))
    lines.append("  outputs: " + ", ".join(f"{p.name}: {p.type}" for p in outs))
    lines.append("  steps, in dependency order:")
    width = max(len(n.id) for n in work)
    for nid in graph.topological_order():
        node = graph.node(nid)
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            continue
        lines.append(f"    {node.id:<{width}}  {node.kind:<8} {_ports(node)}")
    lines.append(f"  content hash: {graph.content_hash[:16]}")
    return "\n".join(lines)


# The flows above are built in this file, so their diagnostics point into it; wherever the package is
# installed, the user reads them as the demo's own source, quoted line by line below each diagnostic.
_HERE = os.path.abspath(__file__)
_SHOWN_AS = "dagwright/cli/demo.py"


def report(name: str, diagnostics: Sequence[Diagnostic]) -> str:
    """``render``'s text report, with demo lines named by the package path and quoted under each diagnostic."""
    shown = [_relabel(d) for d in diagnostics]
    lines = render([(name, shown)], "text").splitlines()[:1]
    for original, d in zip(diagnostics, shown, strict=True):
        lines.append("  " + str(d).replace("\n", "\n  "))
        if original.location is not None and os.path.abspath(original.location.file) == _HERE:
            code = linecache.getline(_HERE, original.location.line).strip()
            if code:
                lines.append(f"      {original.location.line} | {code}")
    return "\n".join(lines)


def _relabel(d: Diagnostic) -> Diagnostic:
    if d.location is None or os.path.abspath(d.location.file) != _HERE:
        return d
    return dataclasses.replace(d, location=SourceLocation(_SHOWN_AS, d.location.line))


def _progress(event: Event) -> None:
    record = event.record
    if event.kind == "node_finished" and record is not None and record.kind != "output":
        tokens = f", {record.usage.total} tokens" if record.usage is not None and record.usage.calls else ""
        print(f"  done  {event.node_id:<28} {record.duration_ms or 0.0:6.1f} ms{tokens}")
    elif event.kind in ("node_failed", "node_skipped"):
        print(f"  {event.kind[5:]:<5} {event.node_id}: {event.error}")


def run_demo(out_dir: str = ".") -> int:
    """Print the demo; returns the exit code (0 when everything behaves as shown)."""
    import asyncio

    flow = build_research_flow()
    print("== 1. compile and check: a research pipeline with a debate and a reviewer vote\n")
    graph = flow.compile(strict=True)
    print(describe(graph))
    print(f"\n  (the demo's source: {_SHOWN_AS}; `python -m inspect dagwright.cli.demo` prints it)\n")
    print(report(flow.name, flow.validate()))

    print("\n== 2. draw it\n")
    svg = os.path.join(out_dir, "demo.svg")
    if shutil.which("dot"):
        flow.render(svg)
        print(f"  wrote {svg} (Graphviz)")
    else:
        print("  Graphviz's `dot` is not installed, so no SVG (apt-get install graphviz / brew install graphviz);")
    mermaid = os.path.join(out_dir, "demo.mmd")
    flow.render(mermaid)
    print(f"  wrote {mermaid} (Mermaid, renders on GitHub)")

    print("\n== 3. run it\n")
    topic = "Should our team adopt a four-day work week?"
    print(f"  topic: {topic}")
    scheduler = flow._scheduler()
    result = asyncio.run(scheduler.run({"topic": topic}, None, _progress))
    if not result.success:
        print(f"\nthe run failed: {result.error}", file=sys.stderr)
        return 1
    models = sorted({r.model for r in result.nodes.values() if r.model})
    usage = result.usage
    out = result.outputs
    print(
        f"\n  reviewers' decision: {out['decision']} (agreement {out['agreement']:.0%}, "
        f"confidence {out['confidence']:.2f}, consensus reached: {out['consensus_reached']})"
    )
    print(f"  reason: {out['reason']}")
    print(
        f"  {usage.calls} LLM calls answered by {', '.join(models)}, {usage.total} tokens, ${usage.cost:.4f}, "
        f"{result.duration_ms:.0f} ms"
    )
    svg_run = os.path.join(out_dir, "demo-run.svg")
    if shutil.which("dot"):
        flow.render(svg_run, run=result)
        print(f"  wrote {svg_run} (the run drawn on the graph)")

    broken = build_broken_flow()
    print("\n== 4. three wiring mistakes, caught before any LLM call\n")
    try:
        broken.compile()
    except CompileError as exc:
        print(report(broken.name, exc.errors))
    else:  # the checker missing these would be a bug: say so loudly
        print("error: the broken flow compiled", file=sys.stderr)
        return 1
    return 0
