"""A tool taking a plain class, which has no JSON schema to show the model."""

from dagwright import Flow


class Basket:
    def __init__(self) -> None:
        self.items: list[str] = []


def checkout(basket: Basket) -> str:
    """Pay for a basket."""
    return "paid"


flow = Flow("shop")
flow.input("question", str)
flow.add_agent("clerk", "question: str -> answer: str", tools=[checkout])  # expect: DW302 clerk
flow.output("answer", "clerk.answer")

EXPECTED = {("DW302", "clerk")}
