"""A reviser that feeds its own output back into its input (a revision loop not unrolled)."""

from dagwright import Flow

flow = Flow("revise")
flow.input("draft", str)
flow.add_agent("reviser", "draft: str, previous: str -> revised: str")
flow.connect("reviser.revised", "reviser.previous")  # expect: DW006 reviser
flow.output("revised", "reviser.revised")

EXPECTED = {("DW006", "reviser")}
