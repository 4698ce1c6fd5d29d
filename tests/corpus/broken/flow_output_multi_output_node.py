"""A flow output that names the judge node but not which of its three outputs.

No output is declared, so the judge's work is also reported as thrown away.
"""

from typing import Literal

from dagwright import Flow, InputField, OutputField, Signature


class Judge(Signature):
    """Decide on the proposal."""

    proposal: str = InputField()
    decision: Literal["adopt", "reject"] = OutputField()
    rationale: str = OutputField()
    confidence: float = OutputField()


flow = Flow("decide")
flow.input("proposal", str)
flow.add_agent("judge", Judge)  # expect: DW012 judge
flow.output("result", "judge")  # expect: DW018 judge

EXPECTED = {("DW018", "judge"), ("DW012", "judge")}
HINTS = {("DW018", "judge"): "flow.output('result', 'judge.<output>')"}
