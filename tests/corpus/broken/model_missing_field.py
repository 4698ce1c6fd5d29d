"""A ``Draft`` model flows into an input typed ``Article``, which requires an ``author`` the draft lacks."""

from pydantic import BaseModel

from dagwright import Flow


class Draft(BaseModel):
    title: str
    body: str


class Article(BaseModel):
    title: str
    body: str
    author: str


def write(topic: str) -> Draft:
    return Draft(title=topic, body="...")


def publish(article: Article) -> str:
    return f"/posts/{article.title}"


flow = Flow("publish")
flow.input("topic", str)
flow.add_function("write", write)
flow.add_function("publish", publish)
flow.connect("write.output", "publish.article")  # expect: DW007 publish.article
flow.output("url", "publish.output")

EXPECTED = {("DW007", "publish.article")}
