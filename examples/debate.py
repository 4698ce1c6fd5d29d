"""Debate: two debaters argue for three rounds; a judge decides from the whole transcript.

The rounds are unrolled at compile time (round1.optimist ... verdict), so every turn is
type-checked and drawn, and the two turns of a round run concurrently.

Run: python examples/debate.py
"""

from dagwright import Kaizen

kaizen = Kaizen()
flow = kaizen.create_debate_workflow(
    agents=[
        ("optimist", {"system_prompt": "Argue for the proposal."}),
        ("skeptic", {"system_prompt": "Argue against the proposal."}),
        ("judge", {"temperature": 0.0}),
    ],
    topic="Should the city close its centre to cars on weekends?",
    rounds=3,
)

if __name__ == "__main__":
    result = flow.run()
    for turn in result.outputs["transcript"]:
        print("-", turn)
    print("decision:", result.outputs["decision"])
    print("LLM calls:", result.usage.calls)  # 3 rounds x 2 debaters + 1 judge = 7
