"""A list of bullet points (``list[str]``) into an input that takes one string."""

from dagwright import Flow

flow = Flow("summary")
flow.input("document", str)
flow.add_agent("extract", "document: str -> bullets: list[str]")
flow.add_agent("polish", "text: str -> summary: str")
flow.connect("extract.bullets", "polish.text")  # expect: DW007 polish.text
flow.output("summary", "polish.summary")

EXPECTED = {("DW007", "polish.text")}
