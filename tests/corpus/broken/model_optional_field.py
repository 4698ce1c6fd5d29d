"""A ``Lead`` whose ``email`` may be missing flows into ``Contact``, which requires it (a warning)."""

from pydantic import BaseModel

from dagwright import Flow


class Lead(BaseModel):
    name: str
    email: str | None = None


class Contact(BaseModel):
    name: str
    email: str


def extract(page: str) -> Lead:
    return Lead(name=page)


def send(contact: Contact) -> bool:
    return "@" in contact.email


flow = Flow("outreach")
flow.input("page", str)
flow.add_function("extract", extract)
flow.add_function("send", send)
flow.connect("extract.output", "send.contact")  # expect: DW008 send.contact
flow.output("sent", "send.output")

EXPECTED = {("DW008", "send.contact")}
