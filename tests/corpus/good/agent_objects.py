"""Agent objects (anything with a ``signature`` and a ``config``) added with ``add`` and ``add_agent``."""

from dagwright import Flow, InputField, OutputField, Signature


class Classify(Signature):
    """Classify the support ticket."""

    ticket: str = InputField()
    category: str = OutputField()
    urgent: bool = OutputField()


class SupportAgent:
    """A minimal agent: what the flow reads is its signature and config."""

    def __init__(self, signature: object, **config: object) -> None:
        self.signature = signature
        self.config = config


def route(category: str, urgent: bool) -> str:
    return "pager" if urgent else f"queue:{category}"


classifier = SupportAgent(Classify, model="gpt-4o-mini", temperature=0.0)
responder = SupportAgent("ticket: str, category: str -> reply: str", model="gpt-4o-mini")

flow = Flow("support")
flow.input("ticket", str)
flow.add("classify", classifier)
flow.add_agent("respond", responder)
flow.add("route", route)
flow.connect("classify", "route")
flow.connect("classify.category", "respond.category")
flow.output("reply", "respond.reply")
flow.output("queue", "route.output")
