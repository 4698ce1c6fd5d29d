"""A typo in an output port: the researcher produces ``findings``, the connection reads ``finding``."""

from dagwright import Flow

flow = Flow("report")
flow.input("topic", str)
flow.add_agent("researcher", "topic: str -> findings: list[str]")
flow.add_agent("writer", "findings: list[str] -> report: str")
flow.connect("researcher.finding", "writer.findings")  # expect: DW004 researcher.finding
flow.output("report", "writer.report")

EXPECTED = {("DW004", "researcher.finding")}
HINTS = {("DW004", "researcher.finding"): "did you mean 'findings'?"}
