"""A two-sided debate inside a group, judged outside it; functions and agents mixed."""

from typing import Literal

from dagwright import Flow, InputField, OutputField, Signature


class Argue(Signature):
    """Argue your side of the topic."""

    topic: str = InputField()
    argument: str = OutputField()


class Judge(Signature):
    """Weigh both arguments and decide."""

    topic: str = InputField()
    transcript: list[str] = InputField()
    decision: Literal["adopt", "reject"] = OutputField()
    rationale: str = OutputField()


def transcript(optimist: str, skeptic: str) -> list[str]:
    return [f"optimist: {optimist}", f"skeptic: {skeptic}"]


flow = Flow("debate")
flow.input("topic", str)
with flow.group("debate"):
    flow.add_agent("optimist", Argue, config={"system_prompt": "Argue in favour."})
    flow.add_agent("skeptic", Argue, config={"system_prompt": "Argue against."})
    with flow.group("record"):
        flow.add_function("transcript", transcript)
flow.add_agent("judge", Judge)
flow.connect("optimist.argument", "transcript.optimist")
flow.connect("skeptic.argument", "transcript.skeptic")
flow.connect("transcript.output", "judge.transcript")
flow.output("decision", "judge.decision")
flow.output("rationale", "judge.rationale")
