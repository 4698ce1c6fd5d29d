"""Agent nodes: an agent (or just a signature and settings) called with the node's inputs.

A node added from a signature and a config is bound to an
:class:`~dagwright.compiler.redact.AgentBinding`: its agent is built from the caller's
full config, API key and base URL included, which never entered the IR. A node loaded
from JSON has no binding: its agent is built from the node's ports, instructions and
(secret-free) settings, and API keys then come from the environment, never from the graph.

Such a node is built as its object's ``ir_notes()`` said: a named access policy is installed
afresh (``"team_lead_approval_required"`` then denies until approved in this process), and a
node whose agent held something only its process has (a callable access policy, a custom
strategy; ``in_process``) is refused when bound, naming it, rather than run without it.
"""

from __future__ import annotations

from typing import Any

from dagwright.compiler.ir import Node, thaw_json
from dagwright.compiler.ports import signature_of
from dagwright.compiler.redact import AgentBinding
from dagwright.execution.events import Usage
from dagwright.execution.executor import Executor, NodeContext

__all__ = ["agent_executor"]


def agent_executor(node: Node, binding: object) -> Executor:
    """The executor of an ``agent`` node."""
    # Imported here: the LLM side (pydantic models, the prompt templates) loads when an agent node is bound.
    from dagwright.llm.agent import AgentCore
    from dagwright.llm.tools import ToolError

    agent: Any
    if isinstance(binding, AgentCore) or (hasattr(binding, "invoke") and hasattr(binding, "signature")):
        agent = binding
    else:
        if not isinstance(binding, AgentBinding) and node.config.get("tools"):
            names = ", ".join(str(t.get("name")) for t in node.config["tools"])
            raise ValueError(
                f"agent node {node.id!r} calls tools ({names}) that a graph loaded from JSON does not carry: "
                "run the flow from its Python source"
            )
        settings: Any = binding.config if isinstance(binding, AgentBinding) else thaw_json(node.config.get("agent", {}))
        # The node's signature, not the binding's: collect= makes some of its inputs lists.
        tools = binding.tools if isinstance(binding, AgentBinding) else ()
        agent = AgentCore(config=dict(settings), signature=signature_of(node), name=node.id, tools=tools)
        _apply_notes(agent, node)

    agent_tools = bool(getattr(agent, "tools", None))
    counts_failures = isinstance(agent, AgentCore)

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        outputs: dict[str, Any]
        try:
            if counts_failures:
                # The record's usage is filled request by request: a failed attempt's requests count too.
                usage = ctx.record.usage if ctx.record.usage is not None else Usage()
                ctx.record.usage = usage
                outputs, context = await agent.invoke(inputs, usage=usage)
            else:
                outputs, context = await agent.invoke(inputs)
        except ToolError as exc:  # the calls made before the loop gave up belong in the failed node's record
            ctx.record.tool_calls = exc.calls
            raise
        ctx.record.usage = context.usage
        ctx.record.model = context.model
        if agent_tools:
            ctx.record.tool_calls = [call.to_dict() for call in context.tool_calls]
        return outputs

    return run


def _apply_notes(agent: Any, node: Node) -> None:
    """Install what the node's notes carry by name; refuse what only the building process held."""
    held = node.config.get("in_process")
    if held:
        raise ValueError(
            f"agent node {node.id!r} was built with {', '.join(map(str, held))}, which only the Python process "
            "that built the flow holds; a graph loaded from JSON or an exported script cannot run it without "
            "that, so it does not run at all: run the flow from its Python source (dagwright run FILE.py:NAME), "
            "or, for an access policy, register it by name (register_access_policy) and set it by that name"
        )
    name = node.config.get("access_policy")
    if name is not None:
        from dagwright.ops.audit import named_access_policy

        if not isinstance(name, str):
            raise ValueError(f"agent node {node.id!r}: access_policy must be a policy name, got {name!r}")
        agent._access_policy = named_access_policy(name, where=f"agent node {node.id!r}")
        agent._access_policy_name = name
