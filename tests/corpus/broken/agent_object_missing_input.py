"""An agent object whose signature grew a required ``tone`` input the flow never supplies."""

from dagwright import Flow, InputField, OutputField, Signature


class Draft(Signature):
    """Draft a reply to the customer."""

    message: str = InputField()
    tone: str = InputField(description="formal or casual")
    reply: str = OutputField()


class ReplyAgent:
    def __init__(self) -> None:
        self.signature = Draft
        self.config = {"model": "gpt-4o-mini", "temperature": 0.3}


flow = Flow("support")
flow.input("message", str)
flow.add_agent("drafter", ReplyAgent())  # expect: DW009 drafter.tone
flow.output("reply", "drafter.reply")

EXPECTED = {("DW009", "drafter.tone")}
