"""A typo in an input port: the writer's input is ``findings``, the connection writes ``finding``.

The real input is then left unconnected, which is reported too.
"""

from dagwright import Flow

flow = Flow("report")
flow.input("topic", str)
flow.add_agent("researcher", "topic: str -> findings: list[str]")
flow.add_agent("writer", "findings: list[str] -> report: str")  # expect: DW009 writer.findings
flow.connect("researcher.findings", "writer.finding")  # expect: DW005 writer.finding
flow.output("report", "writer.report")

EXPECTED = {("DW005", "writer.finding"), ("DW009", "writer.findings")}
HINTS = {("DW005", "writer.finding"): "did you mean 'findings'?"}
