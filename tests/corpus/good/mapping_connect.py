"""Node-to-node connections with a mapping where the names differ, and by name where they match."""

from dagwright import Flow

flow = Flow("localize")
flow.input("document", str)
flow.input("language", str, default="fr")
flow.add_agent("summarizer", "document: str -> summary: str, keywords: list[str]")
flow.add_agent("translator", "text: str, terms: list[str], language: str -> translation: str")
flow.add_agent("proofreader", "translation: str, language: str -> final: str")
flow.connect("summarizer", "translator", mapping={"summary": "text", "keywords": "terms"})
flow.connect("translator", "proofreader")
flow.output("final", "proofreader.final")
