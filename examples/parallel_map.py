"""Parallel map: one agent over every item of a list, at most two at a time.

The mapped step is checked once, statically; at run time it fans out per item.

Run: python examples/parallel_map.py
"""

from dagwright import Kaizen

kaizen = Kaizen()
summarize = kaizen.create_agent("summarize", signature="document: str, audience: str -> summary: str")
flow = kaizen.create_parallel_map(summarize, over="document", concurrency=2)

if __name__ == "__main__":
    docs = ["Quarterly report ...", "Incident review ...", "Roadmap draft ..."]
    result = flow.run(document=docs, audience="executives")
    for doc, summary in zip(docs, result.outputs["summary"], strict=True):
        print(f"- {doc[:20]!r}: {summary}")
