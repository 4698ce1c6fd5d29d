"""Router (handoff): a triage agent picks the specialist; only that one runs.

Run: python examples/router.py
"""

from dagwright import Kaizen

kaizen = Kaizen()
billing = kaizen.create_agent("billing", signature="request: str -> response: str")
technical = kaizen.create_agent("technical", signature="request: str -> response: str")
flow = kaizen.create_router(("triage", {"system_prompt": "Route the request to the right team."}), [billing, technical])

if __name__ == "__main__":
    result = flow.run(request="I was charged twice this month")
    print("route:", result.outputs["route"])
    print("response:", result.outputs["response"])
    print("statuses:", {n: r.status for n, r in result.nodes.items() if n in ("billing", "technical")})
