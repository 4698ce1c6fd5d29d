"""A reviewer answers approve/reject; the publisher gate only accepts yes/no."""

from typing import Literal

from dagwright import Flow, InputField, OutputField, Signature


class Review(Signature):
    """Review the draft."""

    draft: str = InputField()
    verdict: Literal["approve", "reject"] = OutputField()


class Publish(Signature):
    """Publish when told to."""

    draft: str = InputField()
    go: Literal["yes", "no"] = InputField()
    url: str = OutputField()


flow = Flow("publishing")
flow.input("draft", str)
flow.add_agent("reviewer", Review)
flow.add_agent("publisher", Publish)
flow.connect("reviewer.verdict", "publisher.go")  # expect: DW007 publisher.go
flow.output("url", "publisher.url")

EXPECTED = {("DW007", "publisher.go")}
