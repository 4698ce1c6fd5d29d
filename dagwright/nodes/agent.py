"""Agent nodes: an agent (or just a signature and settings) called with the node's inputs.

A node added from a signature and a config is bound to an
:class:`~dagwright.compiler.redact.AgentBinding`: its agent is built from the caller's
full config, API key and base URL included, which never entered the IR. A node loaded
from JSON has no binding: its agent is built from the node's ports, instructions and
(secret-free) settings, and API keys then come from the environment, never from the graph.
"""

from __future__ import annotations

from typing import Any

from dagwright.compiler.ir import Node, thaw_json
from dagwright.compiler.ports import signature_of
from dagwright.compiler.redact import AgentBinding
from dagwright.execution.executor import Executor, NodeContext

__all__ = ["agent_executor"]


def agent_executor(node: Node, binding: object) -> Executor:
    """The executor of an ``agent`` node."""
    # Imported here: the LLM side (pydantic models, the prompt templates) loads when an agent node is bound.
    from dagwright.llm.agent import AgentCore

    agent: Any
    if isinstance(binding, AgentCore) or (hasattr(binding, "invoke") and hasattr(binding, "signature")):
        agent = binding
    else:
        settings: Any = binding.config if isinstance(binding, AgentBinding) else thaw_json(node.config.get("agent", {}))
        # The node's signature, not the binding's: collect= makes some of its inputs lists.
        agent = AgentCore(config=dict(settings), signature=signature_of(node), name=node.id)

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        outputs: dict[str, Any]
        outputs, context = await agent.invoke(inputs)
        ctx.record.usage = context.usage
        ctx.record.model = context.model
        return outputs

    return run
