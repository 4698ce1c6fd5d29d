"""Node ids with spaces and slashes: ids are checkpoint keys, Kailash ids and DOT ids."""

from dagwright import Flow

flow = Flow("search")
flow.input("query", str)
flow.add_agent("web search", "query: str -> results: list[str]")  # expect: DW002 web search
flow.add_agent("rank/v2", "results: list[str] -> best: str")  # expect: DW002 rank/v2
flow.connect("web search.results", "rank/v2.results")
flow.output("best", "rank/v2.best")

EXPECTED = {("DW002", "web search"), ("DW002", "rank/v2")}
