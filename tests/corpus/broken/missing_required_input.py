"""The answerer needs ``context`` from the retriever, but nobody connected it."""

from dagwright import Flow

flow = Flow("rag")
flow.input("question", str)
flow.add_agent("retriever", "question: str -> passages: list[str]")
flow.add_agent("answerer", "question: str, context: list[str] -> answer: str")  # expect: DW009 answerer.context
flow.output("answer", "answerer.answer")
flow.output("passages", "retriever.passages")

EXPECTED = {("DW009", "answerer.context")}
