"""Flows that the tests serve with ``dagwright mcp serve``."""

from dagwright import Flow


def shout(topic: str, times: int = 1) -> str:
    return "!".join([topic.upper()] * times)


def explode(text: str) -> str:
    raise RuntimeError(f"cannot handle {text!r}")


loud = Flow("loud", description="Shout a topic, several times if asked.")
loud.add_function("shout", shout)
loud.input("topic")
loud.input("times", default=1)
loud.output("shouted", "shout.output")

research = Flow("research")
research.add_agent("researcher", "topic: str -> findings: list[str], confidence: float")
research.input("topic")

broken = Flow("broken")
broken.add_function("shout", shout)
broken.add_function("explode", explode)
broken.connect("shout.output", "explode.text")
broken.input("topic")

from dagwright import BaseAgent  # noqa: E402

summarizer = BaseAgent(signature="text: str -> summary: str", name="summarizer")
