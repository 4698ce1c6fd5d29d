"""Async functions around an agent: fetch pages concurrently, summarize, post the digest."""

import asyncio

from dagwright import Flow


async def fetch_all(urls: list[str], timeout: float = 10.0) -> list[str]:
    await asyncio.sleep(0)
    return [f"<html>{u}</html>" for u in urls]


async def post(digest: str, channel: str) -> bool:
    await asyncio.sleep(0)
    return bool(digest and channel)


flow = Flow("digest")
flow.input("urls", list[str])
flow.input("channel", str, default="#news")
flow.add_function("fetch", fetch_all)
flow.add_agent("summarize", "pages: list[str] -> digest: str")
flow.add_function("post", post)
flow.connect("fetch.output", "summarize.pages")
flow.connect("summarize.digest", "post.digest")
flow.output("posted", "post.output")
flow.output("digest", "summarize.digest")
