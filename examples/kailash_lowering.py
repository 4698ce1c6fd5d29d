"""The same checked flow on the Kailash SDK: lowered to a WorkflowBuilder, run by Kailash's LocalRuntime.

Run: python examples/kailash_lowering.py
"""

from kailash.runtime.local import LocalRuntime

from dagwright import Kaizen

kaizen = Kaizen()
flow = kaizen.create_debate_workflow(
    agents=[("optimist", {}), ("skeptic", {}), ("judge", {})], topic="Adopt it?", rounds=2
)

if __name__ == "__main__":
    workflow = flow.build()  # checked first: an invalid flow raises CompileError here
    with LocalRuntime() as runtime:
        results, run_id = runtime.execute(workflow, parameters=flow.kailash_parameters(topic="Adopt Rust?"))
    print("kailash run", run_id)
    print("verdict:", results["verdict"]["decision"])
