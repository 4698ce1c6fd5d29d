"""Values that flow into wider types: int into float, Literal into str, T into T | None, list covariance."""

from dagwright import Flow


def score(hits: list[int], label: str, threshold: float, fallback: str | None) -> float:
    return sum(hits) / max(len(hits), 1) if label else threshold if fallback is None else 0.0


flow = Flow("scoring")
flow.input("query", str)
flow.add_agent("counter", "query: str -> hits: list[bool], limit: int, grade: Literal['a', 'b'], note: str")
flow.add_function("score", score)
flow.connect("counter.hits", "score.hits")
flow.connect("counter.grade", "score.label")
flow.connect("counter.limit", "score.threshold")
flow.connect("counter.note", "score.fallback")
flow.output("score", "score.output")
