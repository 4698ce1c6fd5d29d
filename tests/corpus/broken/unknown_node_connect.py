"""A misspelled node id in a connection: ``reseacher`` for ``researcher``."""

from dagwright import Flow

flow = Flow("report")
flow.input("topic", str)
flow.add_agent("researcher", "topic: str -> findings: list[str]")
flow.add_agent("writer", "findings: list[str] -> report: str")
flow.connect("reseacher.findings", "writer.findings")  # expect: DW003 reseacher
flow.output("report", "writer.report")
flow.output("findings", "researcher.findings")

EXPECTED = {("DW003", "reseacher")}
HINTS = {("DW003", "reseacher"): "did you mean 'researcher'?"}
