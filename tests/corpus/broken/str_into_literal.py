"""Free text wired into a ``Literal`` input: any string may not be one of the allowed values."""

from dagwright import Flow

flow = Flow("triage")
flow.input("ticket", str)
flow.add_agent("classifier", "ticket: str -> category: str")
flow.add_agent("router", "ticket: str, category: Literal['billing', 'bug', 'other'] -> queue: str")
flow.connect("classifier.category", "router.category")  # expect: DW007 router.category
flow.output("queue", "router.queue")

EXPECTED = {("DW007", "router.category")}
