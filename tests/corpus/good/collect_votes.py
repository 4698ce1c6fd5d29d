"""A consensus vote: three voters into one collect port of a hand-made tally node."""

from typing import Literal

from dagwright import Flow, Node, Port, parse_type

VOTE = "question: str -> vote: Literal['yes', 'no'], reason: str"


def tally(votes: list[Literal["yes", "no"]]) -> Literal["yes", "no"]:
    return "yes" if votes.count("yes") > len(votes) / 2 else "no"


flow = Flow("consensus")
flow.input("question", str)
for name in ("alice", "bob", "carol"):
    flow.add_agent(name, VOTE, config={"model": "gpt-4o-mini", "system_prompt": f"You are {name}."})
flow.add_node(
    Node(
        "tally",
        "vote",
        inputs=(Port("votes", parse_type("list[Literal['yes', 'no']]"), collect=True),),
        outputs=(Port("decision", parse_type("Literal['yes', 'no']")),),
    ),
    binding=tally,
)
flow.add_node(
    Node(
        "reasons",
        "collect",
        inputs=(Port("reasons", parse_type("list[str]"), collect=True),),
        outputs=(Port("transcript", parse_type("list[str]")),),
    )
)
for name in ("alice", "bob", "carol"):
    flow.connect(f"{name}.vote", "tally.votes")
    flow.connect(f"{name}.reason", "reasons.reasons")
flow.output("decision", "tally.decision")
flow.output("transcript", "reasons.transcript")
