"""Agents with tools on the other back ends: Kailash (in this process), Dask (on worker processes), exports."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

from dagwright import Flow
from dagwright.backends.kailash.export import to_kailash_script, to_kailash_yaml

SERVER = str(Path(__file__).parent / "mcp_servers" / "inventory.py")


def forecast(city: str, days: int = 1) -> dict[str, float]:
    """Forecast the temperature of a city."""
    return {f"day{i + 1}": 20.0 + i for i in range(max(1, min(days, 3)))}


def tool_flow(*tools: object) -> Flow:
    flow = Flow("trip")
    flow.add_agent("planner", "question: str -> answer: str", tools=list(tools or [forecast]))
    flow.input("question")
    return flow


def test_python_tools_run_on_kailash_in_this_process() -> None:
    for runtime in ("local", "async"):
        result = tool_flow().run_kailash(question="Paris?", runtime=runtime)
        assert result.success, result.error
        [call] = result.nodes["planner"].tool_calls or []
        assert call["name"] == "forecast" and call["result"]["day1"] == 20.0


def test_mcp_tools_run_on_kailash_local_runtime() -> None:
    pytest.importorskip("mcp")
    from dagwright.llm.mcp import MCPTools

    result = tool_flow(MCPTools(sys.executable, SERVER, tools=["stock"])).run_kailash(question="Stock?")
    assert result.success, result.error
    [call] = result.nodes["planner"].tool_calls or []
    assert call["name"] == "stock" and call["result"]["result"] > 0


def test_exports_refuse_agents_with_tools_naming_them() -> None:
    flow = tool_flow()
    for export in (to_kailash_yaml, to_kailash_script):
        with pytest.raises(ValueError, match=r"agent node 'planner' has tools \(forecast\), which only this Python"):
            export(flow)


def test_python_and_mcp_tools_run_on_dask_workers() -> None:
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        result = tool_flow().run(question="Paris?", backend="dask", client=client)
        remote = None
        if importlib.util.find_spec("mcp") is not None:
            from dagwright.llm.mcp import MCPTools

            remote = tool_flow(MCPTools(sys.executable, SERVER, tools=["stock"]))
            remote_result = remote.run(question="Stock?", backend="dask", client=client)
    assert result.success, result.error
    [call] = result.nodes["planner"].tool_calls or []
    assert call["name"] == "forecast" and call["result"]["day1"] == 20.0
    if remote is not None:
        assert remote_result.success, remote_result.error
        assert [c["name"] for c in remote_result.nodes["planner"].tool_calls or []] == ["stock"]
        # Listed from this process before submitting, as a built-in run does: the run's graph lists the tools.
        graph = remote.compile()
        assert remote_result.graph_hash == graph.content_hash
        [tool] = graph.node("planner").config["tools"]
        assert tool["name"] == "stock" and tool["origin"]["kind"] == "mcp"
