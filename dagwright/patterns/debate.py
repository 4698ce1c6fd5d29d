"""Debate: debaters argue over rounds, a judge decides.

``rounds x debaters`` turns are unrolled at compile time (node ids
``round1.optimist`` ... and ``verdict``), so every turn is type-checked and drawn.
Each turn sees the topic and the transcript of all earlier turns (a collect input,
round by round, debaters in the order given); turns of one round only see earlier
rounds, so they run concurrently. The judge (the last agent) gets the whole
transcript. Outputs: the judge's outputs plus ``transcript``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.kinds import gather_node
from dagwright.compiler.signature import MISSING, FieldSpec, SignatureSpec
from dagwright.compiler.types import STR, is_assignable
from dagwright.flow import Flow, PortRef
from dagwright.patterns._members import AgentFactory, Member, add_members, declare_member_inputs

__all__ = ["DEBATER_SIGNATURE", "JUDGE_SIGNATURE", "debate"]

DEBATER_SIGNATURE = "topic: str, transcript: list[str] -> argument: str"
JUDGE_SIGNATURE = "topic: str, transcript: list[str] -> decision: str, rationale: str"


def _argument_port(spec: SignatureSpec) -> str | None:
    fields = spec.output_fields
    if "argument" in fields and is_assignable(fields["argument"].type, STR).level == "ok":
        return "argument"
    for f in spec.outputs:
        if is_assignable(f.type, STR).level == "ok":
            return f.name
    return None


def _check_role(flow: Flow, m: Member, role: str) -> bool:
    spec = m.signature
    if spec is None:
        flow.report(dg.make("DW204", f"debate {role} {m.name!r} must be an agent, not a sub-flow", node=m.name))
        return False
    ok = True
    inputs = spec.input_fields
    if "topic" not in inputs or is_assignable(STR, inputs["topic"].type).level == "error":
        flow.report(
            dg.make(
                "DW204",
                f"debate {role} {m.name!r} cannot take the topic: its signature ({spec}) needs an input "
                "'topic' that accepts str",
                node=m.name,
                hint=f"use a signature like {DEBATER_SIGNATURE!r}",
            )
        )
        ok = False
    transcript = inputs.get("transcript")
    if (
        transcript is None
        or transcript.type.kind not in ("list", "any")
        or (transcript.type.kind == "list" and is_assignable(STR, transcript.type.args[0]).level == "error")
    ):
        flow.report(
            dg.make(
                "DW204",
                f"debate {role} {m.name!r} cannot take the transcript: its signature ({spec}) needs an input "
                "'transcript: list[str]'",
                node=m.name,
                hint=f"use a signature like {DEBATER_SIGNATURE!r}",
            )
        )
        ok = False
    return ok


def debate(
    agents: Sequence[object],
    topic: str | None = None,
    rounds: int = 3,
    *,
    name: str = "debate",
    defaults: Mapping[str, Any] | None = None,
    factory: AgentFactory | None = None,
) -> Flow:
    """A debate between ``agents[:-1]`` judged by ``agents[-1]``; ``topic`` is the topic input's default."""
    flow = Flow(name)
    if not isinstance(rounds, int) or rounds < 1:
        flow.report(dg.make("DW202", f"a debate needs at least one round, got rounds={rounds!r}", hint="rounds=3"))
        rounds = 0
    specs = list(agents)
    if len(specs) < 3:
        flow.report(
            dg.make(
                "DW203",
                f"a debate needs at least two debaters and a judge (the last agent); got {len(specs)} agent(s)",
                hint="create_debate_workflow(agents=[optimist, skeptic, judge], ...)",
            )
        )
    debater_specs, judge_spec = (specs[:-1], specs[-1:]) if specs else ([], [])
    debaters = add_members(flow, debater_specs, DEBATER_SIGNATURE, defaults, "debate", factory)
    judges = add_members(flow, judge_spec, JUDGE_SIGNATURE, defaults, "debate", factory)
    usable = [m for m in debaters if _check_role(flow, m, "debater")]
    arguments: dict[str, str] = {}
    for m in usable:
        assert m.signature is not None
        port = _argument_port(m.signature)
        if port is None:
            flow.report(
                dg.make(
                    "DW204",
                    f"debater {m.name!r} has no text output to add to the transcript ({m.signature})",
                    node=m.name,
                    hint="give it an output 'argument: str'",
                )
            )
        else:
            arguments[m.name] = port
    turns: list[tuple[str, str]] = []  # (node id, argument port), in transcript order
    extra_inputs: list[FieldSpec] = []
    with flow.group(name):
        for r in range(1, rounds + 1):
            earlier = list(turns)
            with flow.group(f"round{r}"):
                for m in usable:
                    if m.name not in arguments:
                        continue
                    node_id = f"round{r}.{m.name}"
                    flow.add_agent(node_id, m.agent, collect=["transcript"])
                    for source, port in earlier:
                        flow.connect(PortRef(source, port), PortRef(node_id, "transcript"))
                    turns.append((node_id, arguments[m.name]))
                    assert m.signature is not None
                    extra_inputs.extend(f for f in m.signature.inputs if f.name not in ("topic", "transcript"))
        flow.add_node(gather_node("transcript", STR, description="Every turn, in order"))
        for source, port in turns:
            flow.connect(PortRef(source, port), PortRef("transcript", "values"))
        judge = judges[0] if judges else None
        if judge is not None and _check_role(flow, judge, "judge"):
            flow.add_agent("verdict", judge.agent, collect=["transcript"])
            for source, port in turns:
                flow.connect(PortRef(source, port), PortRef("verdict", "transcript"))
            assert judge.signature is not None
            extra_inputs.extend(f for f in judge.signature.inputs if f.name not in ("topic", "transcript"))
            for f in judge.signature.outputs:
                flow.output(f.name, PortRef("verdict", f.name))
    flow.input("topic", str, default=topic if topic is not None else MISSING, description="The question debated")
    declare_member_inputs(flow, sorted(extra_inputs, key=lambda f: f.name))
    flow.output("transcript", PortRef("transcript", "values"))
    return flow
