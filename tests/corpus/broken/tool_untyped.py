"""A tool whose parameter and return value carry no type hints: the model cannot be told what to pass."""

from dagwright import Flow


def lookup(sku):  # type: ignore[no-untyped-def]
    """Find a product by its SKU."""
    return {"sku": sku}


flow = Flow("shop")
flow.input("question", str)
flow.add_agent("clerk", "question: str -> answer: str", tools=[lookup])  # expect: DW301 clerk
flow.output("answer", "clerk.answer")

EXPECTED = {("DW301", "clerk")}
