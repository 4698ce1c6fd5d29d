"""``dagwright mcp serve``: flows as MCP tools, called by a client of the official SDK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters

FLOWS = str(Path(__file__).parent / "mcp_servers" / "served_flows.py")


def serve_params(*targets: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "dagwright", "mcp", "serve", *targets])


async def session(targets: tuple[str, ...], calls: list[tuple[str, dict[str, Any]]]) -> tuple[Any, list[Any]]:
    async with Client(serve_params(*targets), read_timeout_seconds=60) as client:
        listed = await client.list_tools()
        results = [await client.call_tool(name, args) for name, args in calls]
    return listed, results


def test_a_sdk_client_lists_and_calls_served_flows_over_stdio() -> None:
    listed, (loud, research) = asyncio.run(
        session(
            (f"{FLOWS}:loud", f"{FLOWS}:research"),
            [("loud", {"topic": "tools", "times": 2}), ("research", {"topic": "MCP"})],
        )
    )
    tools = {t.name: t for t in listed.tools}
    assert sorted(tools) == ["loud", "research"]
    assert tools["loud"].description == "Shout a topic, several times if asked."
    schema = tools["loud"].input_schema
    assert schema["required"] == ["topic"] and schema["properties"]["times"]["default"] == 1
    assert tools["loud"].output_schema["properties"]["shouted"]["type"] == "string"
    assert not loud.is_error and loud.structured_content == {"shouted": "TOOLS!TOOLS"}
    assert not research.is_error
    assert set(research.structured_content) == {"findings", "confidence"}


def test_a_failing_run_is_a_tool_error_naming_the_node_and_the_server_goes_on() -> None:
    _, (failed, fine) = asyncio.run(
        session((f"{FLOWS}:broken", f"{FLOWS}:loud"), [("broken", {"topic": "x"}), ("loud", {"topic": "ok"})])
    )
    assert failed.is_error
    text = failed.content[0].text
    assert "flow 'broken' failed at node 'explode'" in text and "cannot handle 'X'" in text
    assert not fine.is_error and fine.structured_content == {"shouted": "OK"}


def test_bad_arguments_come_back_as_a_tool_error() -> None:
    _, (bad,) = asyncio.run(session((f"{FLOWS}:loud",), [("loud", {"topic": "x", "times": "many"})]))
    assert bad.is_error and "times" in bad.content[0].text


def test_a_flow_that_does_not_compile_is_refused_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "bad_flow.py"
    path.write_text(
        "from dagwright import Flow\n"
        "def f(x: int) -> int:\n    return x\n"
        "flow = Flow('bad')\nflow.add_function('f', f)\nflow.connect('f.nope', 'f.x')\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "dagwright", "mcp", "serve", f"{path}:flow"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert "dagwright mcp serve: flow 'bad' does not compile" in done.stderr and "DW004" in done.stderr


def test_a_python_call_builds_the_server_in_process() -> None:
    from dagwright.cli.loader import load_targets
    from dagwright.cli.mcp import mcp_server

    flow = load_targets(f"{FLOWS}:loud")[0].flow
    assert flow is not None

    async def call() -> Any:
        async with Client(mcp_server([flow])) as client:
            return await client.call_tool("loud", {"topic": "in process"})

    assert asyncio.run(call()).structured_content == {"shouted": "IN PROCESS"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_agent_served_over_streamable_http() -> None:
    import socket
    import time

    port = _free_port()
    command = [sys.executable, "-m", "dagwright", "mcp", "serve", f"{FLOWS}:summarizer", "--transport", "http"]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)

        async def call() -> tuple[Any, Any]:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                listed = await client.list_tools()
                return listed, await client.call_tool("summarizer", {"text": "MCP over HTTP"})

        listed, result = asyncio.run(call())
    finally:
        process.terminate()
        process.wait(10)
    assert [t.name for t in listed.tools] == ["summarizer"]
    assert not result.is_error and set(result.structured_content) == {"summary"}
