"""A node-to-node connection between nodes whose port names do not match.

The summarizer outputs ``summary`` and the translator reads ``text``: without a
mapping nothing is connected: the translator's input stays empty and the summary is
thrown away.
"""

from dagwright import Flow

flow = Flow("translate")
flow.input("document", str)
flow.add_agent("summarizer", "document: str -> summary: str")  # expect: DW012 summarizer
flow.add_agent("translator", "text: str, language: str = 'fr' -> translation: str")  # expect: DW009 translator.text
flow.connect("summarizer", "translator")  # expect: DW015 translator
flow.output("translation", "translator.translation")

EXPECTED = {("DW015", "translator"), ("DW009", "translator.text"), ("DW012", "summarizer")}
