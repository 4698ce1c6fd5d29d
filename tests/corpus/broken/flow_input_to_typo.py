"""A flow input routed with ``to=`` at a misspelled port: ``qeury`` for ``query``."""

from dagwright import Flow

flow = Flow("search")
flow.input("question", str, to="search.qeury")  # expect: DW005 search.qeury
flow.add_agent("search", "query: str -> hits: list[str]")  # expect: DW009 search.query
flow.output("hits", "search.hits")

EXPECTED = {("DW005", "search.qeury"), ("DW009", "search.query")}
HINTS = {("DW005", "search.qeury"): "did you mean 'query'?"}
