"""Supervisor-worker: a manager plans, assigns subtasks, reviews, and sends work back (at most twice).

Unassigned workers are skipped, not run; revision rounds are unrolled so the graph stays a DAG.

Run: python examples/supervisor.py
"""

from dagwright import Kaizen

kaizen = Kaizen()
flow = kaizen.create_supervisor_agent(
    "manager",
    {
        "workers": [("researcher", {}), ("analyst", {}), ("writer", {})],
        "task_allocation": "automatic",
        "quality_control": True,
        "max_revisions": 2,
    },
)

if __name__ == "__main__":
    result = flow.run(task="Write a one-page brief on battery recycling")
    print("plan:", result.outputs["plan"])
    print("answer:", result.outputs["answer"])
    print("approved:", result.outputs["approved"], "| review trail:", len(result.outputs["review_trail"]))
    skipped = [n for n, r in result.nodes.items() if r.status == "skipped"]
    print("skipped:", ", ".join(skipped) or "none")
