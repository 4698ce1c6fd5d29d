"""Three agents wired in a loop: planner -> coder -> reviewer -> planner.

A review loop must be unrolled into rounds; as written it never starts.
"""

from dagwright import Flow

flow = Flow("code-review")
flow.input("goal", str)
flow.add_agent("planner", "goal: str, review: str -> plan: str")
flow.add_agent("coder", "plan: str -> code: str")
flow.add_agent("reviewer", "code: str -> review: str, approved: bool")
flow.connect("planner.plan", "coder.plan")
flow.connect("coder.code", "reviewer.code")
flow.connect("reviewer.review", "planner.review")  # expect: DW006 planner
flow.output("approved", "reviewer.approved")

EXPECTED = {("DW006", "planner")}
