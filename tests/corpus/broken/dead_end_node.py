"""A sentiment agent runs on every ticket but nothing reads its outputs."""

from dagwright import Flow

flow = Flow("support")
flow.input("ticket", str)
flow.add_agent("sentiment", "ticket: str -> mood: str, score: float")  # expect: DW012 sentiment
flow.add_agent("responder", "ticket: str -> reply: str")
flow.output("reply", "responder.reply")

EXPECTED = {("DW012", "sentiment")}
