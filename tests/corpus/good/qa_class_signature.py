"""Question answering with class-form signatures: retrieve, answer, then check the answer."""

from dagwright import Flow, InputField, OutputField, Signature


class Retrieve(Signature):
    """Find passages that help answer the question."""

    question: str = InputField(description="User question")
    k: int = InputField(description="How many passages", default=3)
    passages: list[str] = OutputField(description="Relevant passages")


class Answer(Signature):
    """Answer the question from the passages only."""

    question: str = InputField()
    passages: list[str] = InputField()
    answer: str = OutputField()
    confidence: float = OutputField(description="0.0 to 1.0")


class Check(Signature):
    """Say whether the answer is supported by the passages."""

    answer: str = InputField()
    passages: list[str] = InputField()
    supported: bool = OutputField()


flow = Flow("qa", description="Retrieval-augmented question answering with a self-check.")
flow.input("question", str, description="What the user asked")
flow.add_agent("retrieve", Retrieve, config={"model": "gpt-4o-mini"})
flow.add_agent("answer", Answer, config={"model": "gpt-4o-mini", "temperature": 0.1})
flow.add_agent("check", Check)
flow.connect("retrieve.passages", "answer.passages")
flow.connect("retrieve.passages", "check.passages")
flow.connect("answer.answer", "check.answer")
flow.output("answer", "answer.answer")
flow.output("confidence", "answer.confidence")
flow.output("supported", "check.supported")
