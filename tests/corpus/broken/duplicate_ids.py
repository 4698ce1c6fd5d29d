"""Two agents added under one id, ``writer``: the second silently shadows the first."""

from dagwright import Flow

flow = Flow("newsletter")
flow.input("topic", str)
flow.add_agent("writer", "topic: str -> draft: str")
flow.add_agent("writer", "draft: str -> final: str")  # expect: DW001 writer
flow.output("draft", "writer.draft")

EXPECTED = {("DW001", "writer")}
