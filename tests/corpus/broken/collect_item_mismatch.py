"""Scores (``float``) collected into a list of ballots (``list[str]``)."""

from dagwright import Flow, Node, Port, parse_type

flow = Flow("panel")
flow.input("question", str)
flow.add_agent("alice", "question: str -> ballot: str")
flow.add_agent("bob", "question: str -> score: float")
flow.add_node(
    Node(
        "tally",
        "vote",
        inputs=(Port("ballots", parse_type("list[str]"), collect=True),),
        outputs=(Port("winner", parse_type("str")),),
    )
)
flow.connect("alice.ballot", "tally.ballots")
flow.connect("bob.score", "tally.ballots")  # expect: DW007 tally.ballots
flow.output("winner", "tally.winner")

EXPECTED = {("DW007", "tally.ballots")}
