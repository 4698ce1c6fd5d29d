"""An async fetcher returns raw ``bytes``; the summarizer agent reads ``str``."""

from dagwright import Flow


async def fetch(url: str) -> bytes:
    return url.encode()


flow = Flow("fetch-and-summarize")
flow.input("url", str)
flow.add_function("fetch", fetch)
flow.add_agent("summarizer", "page: str -> summary: str")
flow.connect("fetch.output", "summarizer.page")  # expect: DW007 summarizer.page
flow.output("summary", "summarizer.summary")

EXPECTED = {("DW007", "summarizer.page")}
