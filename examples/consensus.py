"""Consensus: three reviewers vote in parallel; a vote node applies the rule and the threshold.

Run: python examples/consensus.py
"""

from dagwright import Kaizen

kaizen = Kaizen()
signature = kaizen.create_signature(
    "proposal: str -> decision: Literal['approve', 'reject'], confidence: float[0, 1], rationale: str",
    "Review the proposal and vote.",
)
reviewers = [kaizen.create_agent(name, signature=signature) for name in ("security", "finance", "operations")]
flow = kaizen.create_consensus_workflow(
    reviewers,
    decision_criteria="weighted_vote",
    confidence_threshold=0.6,
    weights={"security": 2.0, "finance": 1.0, "operations": 1.0},
)

if __name__ == "__main__":
    out = flow.run(proposal="Move the billing service to a managed database").outputs
    for vote in out["votes"]:
        print(f"- {vote['agent']}: {vote['decision']} ({vote['confidence']:.2f})")
    print(f"decision: {out['decision']}  agreement: {out['agreement']:.0%}  reached: {out['consensus_reached']}")
    print("reason:", out["reason"])
