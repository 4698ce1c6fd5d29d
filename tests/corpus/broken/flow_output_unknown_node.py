"""A flow output read from a node that was renamed: ``summary`` is now ``summarizer``."""

from dagwright import Flow

flow = Flow("digest")
flow.input("articles", list[str])
flow.add_agent("summarizer", "articles: list[str] -> digest: str")  # expect: DW012 summarizer
flow.output("digest", "summary.digest")  # expect: DW003 summary

EXPECTED = {("DW003", "summary"), ("DW012", "summarizer")}
