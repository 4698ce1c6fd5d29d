"""A mapping that writes ``txt`` instead of the translator's ``text`` input."""

from dagwright import Flow

flow = Flow("translate")
flow.input("document", str)
flow.add_agent("summarizer", "document: str -> summary: str")
flow.add_agent("translator", "text: str -> translation: str")  # expect: DW009 translator.text
flow.connect("summarizer", "translator", mapping={"summary": "txt"})  # expect: DW005 translator.txt
flow.output("translation", "translator.translation")

EXPECTED = {("DW005", "translator.txt"), ("DW009", "translator.text")}
HINTS = {("DW005", "translator.txt"): "did you mean 'text'?"}
