"""Two researchers both write the writer's single ``findings`` input.

Only a collect port takes several connections; this one would be overwritten.
"""

from dagwright import Flow

flow = Flow("two-sources")
flow.input("topic", str)
flow.add_agent("web", "topic: str -> findings: list[str]")
flow.add_agent("papers", "topic: str -> findings: list[str]")
flow.add_agent("writer", "findings: list[str] -> report: str")
flow.connect("web.findings", "writer.findings")
flow.connect("papers.findings", "writer.findings")  # expect: DW010 writer.findings
flow.output("report", "writer.report")

EXPECTED = {("DW010", "writer.findings")}
