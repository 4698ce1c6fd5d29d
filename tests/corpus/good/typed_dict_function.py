"""A function returning a ``TypedDict`` gives one port per key; agents read them separately."""

from typing import TypedDict

from dagwright import Flow


class Split(TypedDict):
    title: str
    body: str
    tags: list[str]


def split_markdown(document: str) -> Split:
    head, _, rest = document.partition("\n")
    return {"title": head.lstrip("# "), "body": rest, "tags": []}


flow = Flow("markdown-review")
flow.input("document", str)
flow.add_function("split", split_markdown)
flow.add_agent("title_check", "title: str -> ok: bool, suggestion: str | None")
flow.add_agent("body_review", "body: str, tags: list[str] -> comments: list[str]")
flow.connect("split.title", "title_check.title")
flow.connect("split", "body_review")
flow.output("title_ok", "title_check.ok")
flow.output("suggestion", "title_check.suggestion")
flow.output("comments", "body_review.comments")
