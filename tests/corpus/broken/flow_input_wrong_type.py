"""A flow input declared as text feeds a function parameter typed ``int``."""

from dagwright import Flow


def top_k(hits: list[str], k: int) -> list[str]:
    return hits[:k]


flow = Flow("search")
flow.input("query", str)
flow.input("k", str, description="how many results to keep")  # expect: DW007 top.k
flow.add_agent("search", "query: str -> hits: list[str]")
flow.add_function("top", top_k)
flow.connect("search.hits", "top.hits")
flow.output("results", "top.output")

EXPECTED = {("DW007", "top.k")}
