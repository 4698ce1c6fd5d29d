"""Pydantic model ports: a richer model flows into an input that needs a structural subset of it."""

from pydantic import BaseModel

from dagwright import Flow


class Invoice(BaseModel):
    number: str
    customer: str
    total: float
    lines: list[str]
    note: str | None = None


class Billable(BaseModel):
    customer: str
    total: float
    note: str | None = None


def parse_invoice(text: str) -> Invoice:
    return Invoice(number="1", customer=text, total=0.0, lines=[])


def charge(billable: Billable, currency: str = "EUR") -> str:
    return f"charged {billable.customer} {billable.total} {currency}"


def archive(invoice: Invoice) -> bool:
    return bool(invoice.number)


flow = Flow("billing")
flow.input("text", str)
flow.add_function("parse", parse_invoice)
flow.add_function("charge", charge)
flow.add_function("archive", archive)
flow.connect("parse.output", "charge.billable")
flow.connect("parse.output", "archive.invoice")
flow.output("receipt", "charge.output")
flow.output("archived", "archive.output")
