"""The research flow with three mistakes at once: every one is reported, not just the first.

A typo in an output port, a list into a string, and an input left unconnected.
"""

from dagwright import Flow


def transcript(optimist: str, skeptic: str) -> list[str]:
    return [optimist, skeptic]


flow = Flow("debate")
flow.input("topic", str)
flow.add_agent("researcher", "topic: str -> findings: list[str], sources: list[str]")
flow.add_agent("optimist", "topic: str, findings: list[str] -> argument: str")
flow.add_agent("skeptic", "topic: str, findings: list[str] -> argument: str")  # expect: DW009 skeptic.findings
flow.add_function("transcript", transcript)
flow.add_agent("judge", "topic: str, transcript: list[str] -> decision: str")
flow.connect("researcher.finding", "optimist.findings")  # expect: DW004 researcher.finding
flow.connect("researcher.sources", "skeptic.topic")  # expect: DW007 skeptic.topic
flow.connect("optimist.argument", "transcript.optimist")
flow.connect("skeptic.argument", "transcript.skeptic")
flow.connect("transcript.output", "judge.transcript")
flow.output("decision", "judge.decision")

EXPECTED = {("DW004", "researcher.finding"), ("DW007", "skeptic.topic"), ("DW009", "skeptic.findings")}
