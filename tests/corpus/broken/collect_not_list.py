"""A hand-made vote counter whose collect port is typed ``str`` instead of ``list[str]``."""

from dagwright import Flow, Node, Port, parse_type

flow = Flow("vote")
flow.input("question", str)
for name in ("alice", "bob", "carol"):
    flow.add_agent(name, "question: str -> vote: str")
flow.add_node(  # expect: DW014 tally.votes
    Node(
        "tally",
        "vote",
        inputs=(Port("votes", parse_type("str"), collect=True),),
        outputs=(Port("winner", parse_type("str")),),
    )
)
for name in ("alice", "bob", "carol"):
    flow.connect(f"{name}.vote", "tally.votes")
flow.output("winner", "tally.winner")

EXPECTED = {("DW014", "tally.votes")}
