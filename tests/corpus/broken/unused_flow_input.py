"""A declared flow input that no node reads: the agents call it ``audience``, the flow ``readers``."""

from dagwright import Flow

flow = Flow("blog")
flow.input("topic", str)
flow.input("readers", str)  # expect: DW016 input:readers
flow.add_agent("writer", "topic: str, audience: str = 'general' -> post: str")
flow.output("post", "writer.post")

EXPECTED = {("DW016", "input:readers")}
