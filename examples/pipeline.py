"""Pipeline: research -> outline -> write, each step's outputs feeding the next by name.

Run: python examples/pipeline.py   (offline model unless OPENAI_API_KEY / OPENAI_BASE_URL are set)
"""

from dagwright import Kaizen

kaizen = Kaizen(config={"model": "gpt-4o-mini"})
research = kaizen.create_agent("research", signature="topic: str -> findings: list[str]")
outline = kaizen.create_agent("outline", signature="findings: list[str] -> sections: list[str]")
write = kaizen.create_agent("write", signature="topic: str, findings: list[str], outline: list[str] -> article: str")

# `write` takes `outline`, which the previous step calls `sections`: map it explicitly.
flow = kaizen.create_pipeline([research, outline, (write, {"mapping": {"sections": "outline"}})], name="article")

if __name__ == "__main__":
    result = flow.run(topic="Heat pumps in cold climates")
    print("article:", result.outputs["article"])
    print("LLM calls:", result.usage.calls)
