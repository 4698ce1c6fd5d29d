"""A mapping given together with port endpoints: a mapping connects two nodes, not two ports.

Nothing is connected, so the translator's input stays empty and the summary is thrown away.
"""

from dagwright import Flow

flow = Flow("translate")
flow.input("document", str)
flow.add_agent("summarizer", "document: str -> summary: str")  # expect: DW012 summarizer
flow.add_agent("translator", "text: str -> translation: str")  # expect: DW009 translator.text
flow.connect("summarizer.summary", "translator.text", mapping={"summary": "text"})  # expect: DW015 translator
flow.output("translation", "translator.translation")

EXPECTED = {("DW015", "translator"), ("DW009", "translator.text"), ("DW012", "summarizer")}
