"""A function default that does not fit its annotation; a flow input default that does not fit its port."""

from dagwright import Flow


def shortlist(hits: list[str], limit: int = "ten") -> list[str]:  # type: ignore[assignment]
    return hits[:limit]


flow = Flow("search")
flow.input("query", str)
flow.input("threshold", default="high")  # expect: DW014 input:threshold.threshold
flow.add_agent("search", "query: str, threshold: float -> hits: list[str]")
flow.add_function("top", shortlist)  # expect: DW014 top.limit
flow.connect("search.hits", "top.hits")
flow.output("results", "top.output")

EXPECTED = {("DW014", "top.limit"), ("DW014", "input:threshold.threshold")}
