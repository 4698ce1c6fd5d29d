"""Flow inputs with defaults, routed explicitly with ``to=`` to ports named differently."""

from dagwright import Flow


def clamp(n: int, low: int = 1, high: int = 10) -> int:
    return max(low, min(high, n))


flow = Flow("brainstorm")
flow.input("topic", str)
flow.input("count", int, default=5, to="clamp.n")
flow.input("style", str, default="playful", to=["ideas.tone", "pitch.tone"])
flow.add_function("clamp", clamp)
flow.add_agent("ideas", "topic: str, n: int, tone: str -> ideas: list[str]")
flow.add_agent("pitch", "ideas: list[str], tone: str -> pitch: str")
flow.connect("clamp.output", "ideas.n")
flow.connect("ideas.ideas", "pitch.ideas")
flow.output("ideas", "ideas.ideas")
flow.output("pitch", "pitch.pitch")
