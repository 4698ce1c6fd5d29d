"""Two tools named alike (the model calls by name) on one agent, and a name servers refuse on another."""

from dagwright import Flow
from dagwright.llm.tools import Tool


def price(sku: str) -> float:
    """The price of a product."""
    return 9.5


def stock(sku: str) -> int:
    """How many are in stock."""
    return 3


flow = Flow("shop")
flow.input("question", str)
flow.add_agent("clerk", "question: str -> answer: str", tools=[price, Tool(stock, name="price")])  # expect: DW303 clerk
flow.add_agent("buyer", "question: str -> order: str", tools=[Tool(stock, name="stock level")])  # expect: DW304 buyer
flow.output("answer", "clerk.answer")
flow.output("order", "buyer.order")

EXPECTED = {("DW303", "clerk"), ("DW304", "buyer")}
