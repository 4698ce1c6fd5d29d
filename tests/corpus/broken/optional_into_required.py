"""A lookup that may find nothing (``str | None``) feeds an agent input that requires text."""

from dagwright import Flow

KNOWN = {"acme": "Acme builds rockets."}


def lookup_company(name: str) -> str | None:
    return KNOWN.get(name)


flow = Flow("company-brief")
flow.input("name", str)
flow.add_function("lookup", lookup_company)
flow.add_agent("briefer", "profile: str -> brief: str")
flow.connect("lookup.output", "briefer.profile")  # expect: DW008 briefer.profile
flow.output("brief", "briefer.brief")

EXPECTED = {("DW008", "briefer.profile")}
