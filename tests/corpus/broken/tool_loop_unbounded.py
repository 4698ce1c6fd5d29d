"""An agent whose tool loop has no bound: a model that keeps asking for tools never lets the flow end."""

from dagwright import Flow


def price(sku: str) -> float:
    """The price of a product."""
    return 9.5


flow = Flow("shop")
flow.input("question", str)
flow.add_agent(  # expect: DW307 clerk
    "clerk", "question: str -> answer: str", config={"max_tool_steps": None}, tools=[price]
)
flow.output("answer", "clerk.answer")

EXPECTED = {("DW307", "clerk")}
