"""``dagwright mcp serve FILE[:NAME]``: flows and agents as MCP tools, on the official SDK.

Each flow becomes one tool named after it: the flow's inputs are the tool's parameters (typed, with
their defaults), its outputs the tool's structured result (an object with one field per output).
Claude Desktop, IDEs and any other MCP client call it over stdio or streamable HTTP. A run that fails
answers the call as a tool error naming the failed node; the server itself keeps serving. Flows that
do not compile are refused before the server starts, with their diagnostics.

From Python: ``mcp_server([flow, ...])`` gives the SDK's ``MCPServer`` to run or mount, and
``serve([flow], transport="http", port=8000)`` runs one. The SDK is imported only here, only when
serving (``pip install 'dagwright[mcp]'``).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Sequence
from typing import Any

from dagwright.cli.loader import Target, load_targets
from dagwright.compiler.diagnostics import CompileError, Diagnostic
from dagwright.compiler.ir import Graph
from dagwright.flow import Flow

__all__ = ["add_mcp_parser", "mcp_server", "run_mcp", "serve"]

_INSTALL = "dagwright mcp needs the mcp extra: pip install 'dagwright[mcp]'"


def _tool_name(name: str) -> str:
    """A flow name as a tool name MCP clients and model servers accept."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "flow"


def flow_tool(flow: Flow) -> Any:
    """An async function the SDK can register as the tool of ``flow``: its signature is the flow's inputs,
    its return annotation a model of the flow's outputs. Raises :class:`CompileError` for a broken flow."""
    from pydantic import create_model

    from dagwright.compiler.ir import INPUT_KIND, thaw_json
    from dagwright.llm.structured import python_type

    graph = flow.compile()
    params = []
    for node in graph.input_nodes:
        port = node.outputs[0]
        default = thaw_json(node.config["default"]) if "default" in node.config else inspect.Parameter.empty
        name = node.id[len(INPUT_KIND) + 1 :]
        kind = inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(name, kind, default=default, annotation=python_type(port.type)))
    fields: dict[str, Any] = {
        node.id.split(":", 1)[1]: (python_type(node.inputs[0].type), ...) for node in graph.output_nodes
    }
    outputs = create_model(f"{_tool_name(flow.name)}_outputs", **fields)

    async def run(**inputs: Any) -> Any:
        from mcp.server.mcpserver.exceptions import ToolError

        result = await flow.arun(inputs)
        if not result.success:
            failed = [nid for nid, record in result.nodes.items() if record.status == "failed"]
            where = f" at node {failed[0]!r}" if failed else ""
            raise ToolError(f"flow {flow.name!r} failed{where}: {result.error}")
        return outputs.model_validate(result.outputs)

    run.__name__ = _tool_name(flow.name)
    run.__doc__ = flow.description or f"Run the dagwright flow {flow.name!r}."
    run.__signature__ = inspect.Signature(params, return_annotation=outputs)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": outputs}
    return run


def mcp_server(flows: Sequence[Flow], *, name: str = "dagwright") -> Any:
    """The SDK's ``MCPServer`` with one tool per flow (see the module docstring)."""
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc
    server = MCPServer(name, log_level="WARNING")
    seen: dict[str, str] = {}
    for flow in flows:
        tool = flow_tool(flow)
        if tool.__name__ in seen:
            raise ValueError(
                f"flows {seen[tool.__name__]!r} and {flow.name!r} would both be the tool {tool.__name__!r}"
            )
        seen[tool.__name__] = flow.name
        server.add_tool(tool, name=tool.__name__, description=tool.__doc__, structured_output=True)
    return server


def serve(flows: Sequence[Flow], *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``flows`` as MCP tools until stopped: over stdio, or streamable HTTP at ``http://host:port/mcp``."""
    server = mcp_server(flows)
    if transport == "stdio":
        server.run("stdio")
    elif transport == "http":
        server.run("streamable-http", host=host, port=port)
    else:
        raise ValueError(f"transport must be 'stdio' or 'http', got {transport!r}")


def connected_diagnostics(target: Target) -> tuple[Graph, list[Diagnostic]]:
    """``dagwright check --connect``: the target's diagnostics plus what its MCP servers say when asked."""
    from dagwright.compiler.diagnostics import sort_key
    from dagwright.compiler.passes import validate
    from dagwright.execution._sync import run_sync
    from dagwright.llm.mcp import connect_diagnostics

    flow = target.flow
    if flow is not None:
        graph = flow.to_graph()
        bindings = {nid: flow.binding(nid) for nid in flow.node_ids if nid in flow._bindings}
    else:
        assert target.graph is not None
        graph, bindings = target.graph, {}
    connected = run_sync(connect_diagnostics(graph, bindings))
    if flow is None:
        found = [*validate(graph), *connected]
    else:
        # The servers the flow's agents hold are listed now: the graph lists their tools' schemas, and its
        # checks see their names (what they report, connect_diagnostics reports too: said once).
        graph = flow.to_graph()
        found = list({(d.code, d.node, d.message): d for d in [*flow.validate(), *connected]}.values())
    found.sort(key=sort_key)
    return graph, found


def add_mcp_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = sub.add_parser("mcp", help="serve flows and agents as MCP tools", description="Model Context Protocol.")
    commands = mcp.add_subparsers(dest="mcp_command", metavar="COMMAND", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="serve flows as MCP tools",
        description="Serve the flows (or agents) TARGET names as MCP tools, one tool per flow.",
    )
    serve_parser.add_argument("targets", nargs="+", metavar="TARGET", help="FILE.py[:NAME] or module:NAME")
    serve_parser.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default: stdio")
    serve_parser.add_argument("--host", default="127.0.0.1", help="HTTP host (default: 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")


def run_mcp(args: argparse.Namespace) -> int:
    """``dagwright mcp serve``: 0 when the server stops, 1 for flows that do not compile."""
    targets: list[Target] = [t for spec in args.targets for t in load_targets(spec)]
    flows = [t.flow for t in targets if t.flow is not None]
    if len(flows) != len(targets):
        print("dagwright mcp serve: an exported IR cannot run; name the flow's Python source", file=sys.stderr)
        return 2
    try:
        server = mcp_server(flows)
    except CompileError as exc:
        print(f"dagwright mcp serve: {exc}", file=sys.stderr)
        return 1
    except (ImportError, ValueError) as exc:
        print(f"dagwright mcp serve: {exc}", file=sys.stderr)
        return 2
    if args.transport == "http":
        print(f"dagwright mcp serve: http://{args.host}:{args.port}/mcp", file=sys.stderr)
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run("stdio")
    return 0
