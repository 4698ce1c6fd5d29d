"""A flow declared but never filled in."""

from dagwright import Flow

flow = Flow("todo")

EXPECTED = {("DW017", "<flow>")}
