"""A three-step writing pipeline declared entirely with signature strings."""

from dagwright import Flow

flow = Flow("article")
flow.input("topic", str)
flow.add_agent("research", "topic -> findings: list[str], sources: list[str]")
flow.add_agent("outline", "topic: str, findings: list[str] -> sections: list[str]")
flow.add_agent("write", "topic: str, sections: list[str], findings: list[str] -> article: str, word_count: int")
flow.connect("research.findings", "outline.findings")
flow.connect("research.findings", "write.findings")
flow.connect("outline.sections", "write.sections")
flow.output("article", "write.article")
flow.output("word_count", "write.word_count")
flow.output("sources", "research.sources")
