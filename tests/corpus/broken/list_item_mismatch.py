"""Page numbers (``list[int]``) into an input of quotes (``list[str]``)."""

from dagwright import Flow

flow = Flow("citations")
flow.input("document", str)
flow.add_agent("finder", "document: str -> pages: list[int], quotes: list[str]")
flow.add_agent("formatter", "quotes: list[str] -> bibliography: str")
flow.connect("finder.pages", "formatter.quotes")  # expect: DW007 formatter.quotes
flow.output("bibliography", "formatter.bibliography")

EXPECTED = {("DW007", "formatter.quotes")}
