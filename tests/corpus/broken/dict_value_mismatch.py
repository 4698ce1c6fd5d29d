"""Scores as labels (``dict[str, str]``) into a ranker expecting numbers (``dict[str, float]``)."""

from dagwright import Flow


def rank(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=scores.__getitem__, reverse=True)


flow = Flow("ranking")
flow.input("candidates", list[str])
flow.add_agent("scorer", "candidates: list[str] -> scores: dict[str, str]")
flow.add_function("rank", rank)
flow.connect("scorer.scores", "rank.scores")  # expect: DW007 rank.scores
flow.output("ranking", "rank.output")

EXPECTED = {("DW007", "rank.scores")}
