"""Agents calling tools of MCP servers built on the official SDK, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagwright import BaseAgent, Flow
from dagwright.compiler.ir import Graph
from dagwright.llm.mcp import MCPTools, connect_diagnostics
from dagwright.llm.tools import ToolError
from dagwright.testing import Fault, OpenAITestServer

pytest.importorskip("mcp")

SERVER = str(Path(__file__).parent / "mcp_servers" / "inventory.py")


def inventory(**options: object) -> MCPTools:
    return MCPTools(sys.executable, SERVER, **options)  # type: ignore[arg-type]


def clerk(*tools: object, **config: object) -> BaseAgent:
    return BaseAgent(config=config, signature="question: str -> answer: str", name="clerk", tools=tools)


def test_an_agent_calls_a_stdio_server_through_the_offline_model() -> None:
    out = clerk(inventory()).run(question="How many in stock? Use stock.")
    [call] = out["_tool_calls"]
    assert call["name"] == "stock" and "error" not in call
    assert call["result"] == {"result": len(call["arguments"]["sku"]) * 10}


def test_scripted_calls_through_the_loopback_server_errors_included(server: OpenAITestServer) -> None:
    server.enqueue(
        Fault(tool_calls=(("reserve", {"sku": "A-1", "count": 500}), ("stock", {"sku": "A-1"}))),
        Fault(tool_calls=(("reserve", {"sku": "A-1", "count": 2}),)),
    )
    agent = clerk(inventory(), base_url=server.base_url, api_key="k")
    out = agent.run(question="Reserve A-1")
    refused, stocked, reserved = out["_tool_calls"]
    assert "cannot reserve 500 of A-1: only 100 at a time" in refused["error"]
    assert stocked["result"] == {"result": 30}
    assert reserved["result"] == {"sku": "A-1", "count": 2} and reserved["round"] == 2
    offered = sorted(t["function"]["name"] for t in server.requests[0]["tools"])
    assert offered == ["reserve", "stock"]
    told = [m["content"] for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert told[0].startswith("error: RuntimeError: MCP server 'inventory' says:")
    assert agent.get_execution_monitor().metrics()["llm_calls"] == 3


def test_a_failing_mcp_tool_twice_ends_the_run(server: OpenAITestServer) -> None:
    refused = Fault(tool_calls=(("reserve", {"sku": "A-1", "count": 500}),))
    server.enqueue(refused, refused)
    with pytest.raises(ToolError, match=r"clerk: tool 'reserve' failed again: RuntimeError: MCP server 'inventory'"):
        clerk(inventory(), base_url=server.base_url, api_key="k").run(question="Reserve A-1")


def test_named_tools_are_the_only_ones_offered_and_must_exist() -> None:
    out = clerk(inventory(tools=["reserve"])).run(question="Go.")
    assert [c["name"] for c in out["_tool_calls"]] == ["reserve"]
    with pytest.raises(ToolError, match=r"MCP server 'inventory' has no tool 'restock'; it has: reserve, stock"):
        clerk(inventory(tools=["restock"])).run(question="Go.")
    failed = clerk(inventory(tools=["restock"])).execute(question="Go.")
    assert not failed.success and failed.error_type == "ToolError" and "has no tool 'restock'" in str(failed.error)
    done = clerk(inventory(tools=["stock"])).execute(question="Go.")
    assert done.success and [c["name"] for c in done.metadata["tool_calls"]] == ["stock"]


def test_a_server_that_does_not_start_fails_the_execution_naming_it() -> None:
    with pytest.raises(ConnectionError, match=r"MCP server 'nothing_here' \(stdio: .*nothing_here.py\) did not"):
        clerk(MCPTools(sys.executable, "/nonexistent/nothing_here.py", timeout=5)).run(question="Go.")


def test_the_ir_lists_the_server_without_secrets_and_its_tools_once_listed() -> None:
    secret = "sk-live-abcdefghijklmnop1234"
    server = inventory(env={"API_TOKEN": secret}, tools=["stock"])
    server.args = (*server.args, f"--token={secret}")
    flow = Flow("shop")
    flow.add_agent("clerk", "question: str -> answer: str", tools=[server])
    flow.input("question")
    graph = flow.compile()
    [entry] = graph.node("clerk").config["mcp_servers"]
    assert entry["name"] == "inventory" and entry["transport"] == "stdio" and entry["tools"] == ("stock",)
    assert entry["command"].endswith("inventory.py <redacted>")
    assert secret not in graph.to_json()
    assert "tools" not in graph.node("clerk").config  # not listed yet: names only

    listed = inventory(tools=["stock"])
    assert sorted(spec.name for spec in listed.connect()) == ["reserve", "stock"]
    flow2 = Flow("shop")
    flow2.add_agent("clerk", "question: str -> answer: str", tools=[listed])
    flow2.input("question")
    [tool] = flow2.compile().node("clerk").config["tools"]
    assert tool["name"] == "stock" and tool["origin"] == {"kind": "mcp", "server": "inventory", "transport": "stdio"}
    assert tool["parameters"]["required"] == ("sku",)
    result = flow2.run(question="Stock?")
    assert [c["name"] for c in result.nodes["clerk"].tool_calls or []] == ["stock"]


def test_connect_diagnostics_report_silent_servers_missing_tools_and_clashes() -> None:
    def stock(sku: str) -> int:
        """A local tool with the same name as one of the server's."""
        return 1

    flow = Flow("shop")
    flow.add_agent("clerk", "question: str -> answer: str", tools=[stock, inventory()])
    flow.add_agent("buyer", "question: str -> order: str", tools=[inventory(tools=["restock"])])
    flow.add_agent("ghost", "question: str -> note: str", tools=[MCPTools(sys.executable, "/nonexistent/ghost.py")])
    flow.input("question")
    graph = flow.compile()
    found = asyncio.run(connect_diagnostics(graph, {n: flow.binding(n) for n in flow.node_ids}))
    by_code = {d.code: d for d in found}
    assert sorted(by_code) == ["DW303", "DW305", "DW306"]
    assert by_code["DW303"].node == "clerk" and "2 tools named 'stock'" in by_code["DW303"].message
    assert by_code["DW306"].message == (
        "agent 'buyer': MCP server 'inventory' has no tool 'restock'; it has: reserve, stock"
    )
    assert by_code["DW305"].node == "ghost" and "did not list its tools" in by_code["DW305"].message
    # From the IR alone (no bindings), the servers are rebuilt from their entries.
    loaded = Graph.from_json(graph.to_json())
    again = asyncio.run(connect_diagnostics(loaded))
    assert sorted(d.code for d in again) == ["DW303", "DW305", "DW306"]


# --------------------------------------------------------------------------- streamable HTTP


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_inventory() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def test_an_agent_calls_a_streamable_http_server(http_inventory: str) -> None:
    server = MCPTools(url=http_inventory, headers={"Authorization": "Bearer sk-live-abcdefghijklmnop1234"})
    assert server.name == "127.0.0.1" and server.ir_entry()["url"] == http_inventory
    out = clerk(server).run(question="Use stock.")
    [call] = out["_tool_calls"]
    assert call["name"] == "stock" and call["result"]["result"] > 0


def test_check_connect_asks_the_servers_and_plain_check_does_not(tmp_path: Path) -> None:
    path = tmp_path / "shop_flow.py"
    path.write_text(
        "import sys\n"
        "from dagwright import Flow\n"
        "from dagwright.llm.mcp import MCPTools\n"
        f"inventory = MCPTools(sys.executable, {SERVER!r}, tools=['restock'])\n"
        "flow = Flow('shop')\n"
        "flow.add_agent('clerk', 'question: str -> answer: str', tools=[inventory])\n"
        "flow.input('question')\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "dagwright", "check", str(path)]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    asked = subprocess.run([*command, "--connect"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert asked.returncode == 1
    assert "error DW306 [mcp-tool-missing] clerk: agent 'clerk': MCP server 'inventory' has no tool 'restock'" in (
        asked.stdout
    )


def test_drawings_name_a_server_until_its_tools_are_listed() -> None:
    flow = Flow("shop")
    flow.add_agent("clerk", "question: str -> answer: str", tools=[inventory()])
    flow.input("question")
    assert "tools: mcp:inventory" in flow.to_mermaid()


def test_a_denied_execution_starts_no_server_and_a_cached_one_replays_its_calls_without_a_server() -> None:
    denied = clerk(MCPTools(sys.executable, "/nonexistent/never_started.py"))
    denied.set_access_policy(lambda request: "closed today")
    with pytest.raises(PermissionError, match=r"clerk: access denied: closed today"):
        denied.run(question="Stock?")
    server = inventory(tools=["stock"])
    cached = clerk(server)
    cached.enable_cache("memory")
    first = cached.run(question="Stock? Use stock.")
    assert [c["name"] for c in first["_tool_calls"]] == ["stock"] and first["_cache"] == "miss"
    assert "cached" not in first["_tool_calls"][0]
    server.cwd = "/nonexistent"  # not part of the cache key: a hit that started the server would fail
    again = cached.run(question="Stock? Use stock.")
    assert again["_cache"] == "hit" and again["answer"] == first["answer"] and again["_tokens"]["total"] == 0
    # The calls that produced the cached answer come back with it, each marked as made then, not now.
    assert again["_tool_calls"] == [{**first["_tool_calls"][0], "cached": True}]


def test_tool_names_model_servers_refuse_are_caught_before_any_request() -> None:
    dotted = MCPTools(sys.executable, SERVER, "dotted")
    with pytest.raises(ValueError, match=r"MCP server 'inventory' offers tools whose names model servers refuse"):
        clerk(dotted).run(question="Go.")
    flow = Flow("shop")
    flow.add_agent("clerk", "question: str -> answer: str", tools=[MCPTools(sys.executable, SERVER, "dotted")])
    flow.input("question")
    [found] = asyncio.run(connect_diagnostics(flow.compile(), {"clerk": flow.binding("clerk")}))
    assert found.code == "DW304" and "tool 'stock.count' of agent 'clerk' (MCP server 'inventory')" in found.message
