"""A flow output named with a space: flow inputs and outputs are named like identifiers."""

from dagwright import Flow

flow = Flow("qa")
flow.input("question", str)
flow.add_agent("answerer", "question: str -> answer: str")
flow.output("final answer", "answerer.answer")  # expect: DW002 output:final answer

EXPECTED = {("DW002", "output:final answer")}
