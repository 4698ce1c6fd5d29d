"""Agent nodes: an agent (or just a signature and settings) called with the node's inputs.

A node added from a signature alone, or loaded from JSON, gets an agent built
from the node's ports, instructions and (secret-free) settings; API keys then
come from the environment, never from the graph.
"""

from __future__ import annotations

from typing import Any

from dagwright.compiler.ir import Node, thaw_json
from dagwright.compiler.signature import MISSING, FieldSpec, SignatureSpec
from dagwright.nodes.base import Executor, NodeContext

__all__ = ["agent_executor", "signature_of"]


def signature_of(node: Node) -> SignatureSpec:
    """The signature an agent node's ports describe."""
    inputs = tuple(
        FieldSpec(p.name, p.type, "input", p.description, thaw_json(p.default) if p.default is not MISSING else MISSING)
        for p in node.inputs
    )
    outputs = tuple(FieldSpec(p.name, p.type, "output", p.description) for p in node.outputs)
    instructions = node.config.get("instructions", "")
    name = node.config.get("signature", "")
    return SignatureSpec(inputs, outputs, instructions if isinstance(instructions, str) else "", str(name or ""))


def agent_executor(node: Node, binding: object) -> Executor:
    """The executor of an ``agent`` node."""
    from dagwright.agent import BaseAgent

    if isinstance(binding, BaseAgent):
        agent = binding
    elif hasattr(binding, "invoke") and hasattr(binding, "signature"):
        agent = binding  # type: ignore[assignment]
    else:
        settings: Any = node.config.get("agent", {})
        agent = BaseAgent(config=thaw_json(settings), signature=signature_of(node), name=node.id)

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        outputs, context = await agent.invoke(inputs)
        ctx.record.usage = context.usage
        ctx.record.model = context.model
        return outputs

    return run
