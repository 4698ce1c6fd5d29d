"""A score without bounds flows into an input that takes only values from 0 to 1 (a warning)."""

from dagwright import Flow


def guess(text: str) -> float:
    return len(text) / 10


flow = Flow("scoring")
flow.input("text", str)
flow.add_function("guess", guess)
flow.add_agent("judge", "text: str, prior: float[0, 1] -> verdict: str")
flow.connect("guess.output", "judge.prior")  # expect: DW020 judge.prior
flow.output("verdict", "judge.verdict")

EXPECTED = {("DW020", "judge.prior")}
