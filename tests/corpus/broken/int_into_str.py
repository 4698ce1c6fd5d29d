"""A word count (``int``) wired into an agent input that expects text."""

from dagwright import Flow


def count_words(text: str) -> int:
    return len(text.split())


flow = Flow("editor")
flow.input("text", str)
flow.add_function("counter", count_words)
flow.add_agent("editor", "text: str, feedback: str -> revised: str")
flow.connect("counter.output", "editor.feedback")  # expect: DW007 editor.feedback
flow.output("revised", "editor.revised")

EXPECTED = {("DW007", "editor.feedback")}
