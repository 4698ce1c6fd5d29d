"""MCP servers over a whole run: connected and listed once, shared by every agent, in the run's graph, closed
at its end; on the built-in scheduler, in batches, on resume, on Kailash, and through the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_runtime import restore_ctrl_c

from dagwright import Flow
from dagwright.compiler.diagnostics import CompileError
from dagwright.llm.mcp import MCPTools
from dagwright.testing import Fault, OpenAITestServer

pytest.importorskip("mcp")

SERVER = str(Path(__file__).parent / "mcp_servers" / "inventory.py")


def started(log: Path) -> list[int]:
    """The process ids of the servers started so far (the test server writes one line as it starts)."""
    return [int(pid) for pid in log.read_text().split()] if log.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def shop(log: Path, **extra_tools: object) -> Flow:
    """Three agents on one server: two share one MCPTools, the third names the same server with its own."""
    env = {"INVENTORY_LOG": str(log)}
    shared = MCPTools(sys.executable, SERVER, env=env, tools=["stock"])
    flow = Flow("shop")
    flow.add_agent("counter", "question: str -> answer: str", tools=[shared, *extra_tools.values()])
    flow.add_agent("checker", "question: str -> note: str", tools=[shared])
    flow.add_agent("buyer", "question: str -> order: str", tools=[MCPTools(sys.executable, SERVER, env=env)])
    flow.input("question")
    return flow


@pytest.mark.parametrize("backend", ["builtin", "kailash-local", "kailash-async"])
def test_a_run_connects_once_for_all_its_agents_and_closes_at_its_end(tmp_path: Path, backend: str) -> None:
    log = tmp_path / "servers.log"
    flow = shop(log)
    for _ in range(2):
        before = len(started(log))
        if backend == "builtin":
            result = flow.run(question="How many are left?")
        else:
            result = flow.run_kailash(question="How many are left?", runtime=backend.split("-")[1])
        assert result.success, result.error
        assert [c["name"] for c in result.nodes["counter"].tool_calls or []] == ["stock"]
        assert [c["name"] for c in result.nodes["checker"].tool_calls or []] == ["stock"]
        assert sorted(c["name"] for c in result.nodes["buyer"].tool_calls or []) == ["reserve", "stock"]
        # One server process for the three agents of the run; none left running once it is over.
        pids = started(log)[before:]
        assert len(pids) == 1
        assert wait_gone(pids) == []


def test_the_run_lists_the_tools_into_its_graph(tmp_path: Path) -> None:
    flow = shop(tmp_path / "servers.log")
    node = flow.compile().node("counter")
    assert "tools" not in node.config and node.config["mcp_servers"][0]["tools"] == ("stock",)
    result = flow.run(question="Stock?")
    graph = flow.compile()
    # The graph the run ran is the one that lists the tools: its hash is the run's.
    assert result.graph_hash == graph.content_hash
    [tool] = graph.node("counter").config["tools"]
    assert tool["name"] == "stock" and tool["origin"] == {"kind": "mcp", "server": "inventory", "transport": "stdio"}
    assert tool["parameters"]["properties"]["sku"]["type"] == "string"
    assert sorted(t["name"] for t in graph.node("buyer").config["tools"]) == ["reserve", "stock"]
    assert "tools: stock" in flow.to_mermaid()
    assert "INVENTORY_LOG" not in graph.to_json()


def test_a_listed_name_that_clashes_fails_compile_before_any_agent_runs(tmp_path: Path) -> None:
    calls: list[str] = []

    def stock(sku: str) -> int:
        """A local tool named like one of the server's."""
        calls.append(sku)
        return 0

    log = tmp_path / "servers.log"
    flow = shop(log, local=stock)
    with pytest.raises(CompileError, match=r"DW303.*agent 'counter' has 2 tools named 'stock'"):
        flow.run(question="Stock?")
    assert calls == [] and wait_gone(started(log)) == []


def test_the_runs_of_a_batch_share_one_connection(tmp_path: Path) -> None:
    log = tmp_path / "servers.log"
    results = shop(log).run_batch([{"question": f"Stock {i}?"} for i in range(3)], concurrency=3)
    assert all(r.success for r in results)
    assert len(started(log)) == 1 and wait_gone(started(log)) == []


def test_a_silent_server_fails_the_nodes_naming_it_and_the_other_branches_finish() -> None:
    flow = Flow("shop")
    ghost = MCPTools(sys.executable, "/nonexistent/ghost.py", timeout=5)
    flow.add_agent("clerk", "question: str -> answer: str", tools=[ghost])
    flow.add_agent("again", "question: str -> note: str", tools=[ghost])
    flow.add_agent("plain", "question: str -> summary: str")
    flow.input("question")
    result = flow.run(question="Stock?", failure_mode="continue")
    assert not result.success and result.nodes["plain"].status == "done"
    for node in ("clerk", "again"):
        record = result.nodes[node]
        assert record.status == "failed" and record.error_type == "ConnectionError"
        assert "MCP server 'ghost' (stdio: " in (record.error or "") and "did not answer" in (record.error or "")


def test_a_resume_lists_the_servers_before_comparing_the_graph(tmp_path: Path) -> None:
    failures = [True]

    def pack(answer: str) -> str:
        if failures.pop() if failures else False:
            raise RuntimeError("the packer is out")
        return answer.upper()

    def build() -> Flow:
        flow = Flow("shop")
        flow.add_agent("clerk", "question: str -> answer: str", tools=[MCPTools(sys.executable, SERVER)])
        flow.add_function("pack", pack)
        flow.connect("clerk.answer", "pack.answer")
        flow.input("question")
        flow.output("packed", "pack.output")
        return flow

    store = tmp_path / "runs.db"
    first = build().run(question="Stock?", checkpoint=str(store), run_id="r1")
    assert not first.success and first.nodes["clerk"].status == "done"
    # A flow built afresh (as in a new process) has not listed its server yet: the resume lists it first,
    # so the graph it compares with the stored run is the same, and the clerk is not asked again.
    resumed = build().resume("r1", checkpoint=str(store))
    assert resumed.success, resumed.error
    assert (
        resumed.nodes["clerk"].status == "cached"
        and resumed.outputs["packed"] == first.nodes["clerk"].outputs["answer"].upper()
    )


def _flow_file(tmp_path: Path, log: Path | None = None) -> Path:
    env = f", env={{'INVENTORY_LOG': {str(log)!r}}}" if log is not None else ""
    path = tmp_path / "shop_flow.py"
    path.write_text(
        "import sys\n"
        "from dagwright import Flow\n"
        "from dagwright.llm.mcp import MCPTools\n"
        "flow = Flow('shop')\n"
        f"server = MCPTools(sys.executable, {SERVER!r}{env})\n"
        "flow.add_agent('clerk', 'question: str -> answer: str', tools=[server])\n"
        "flow.add_agent('auditor', 'answer: str -> note: str', tools=[server])\n"
        "flow.connect('clerk.answer', 'auditor.answer')\n"
        "flow.input('question')\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("checkpoint", [False, True])
def test_a_run_of_the_command_line_connects_once(tmp_path: Path, checkpoint: bool) -> None:
    log = tmp_path / "servers.log"
    path = _flow_file(tmp_path, log)
    command = [sys.executable, "-m", "dagwright", "run", str(path), "--input", "question=Stock?", "--json"]
    if checkpoint:
        command += ["--checkpoint", str(tmp_path / "runs.db")]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["success"], report["error"]
    # Listed before the graph is taken and used by both agents: one server process for the whole command.
    pids = started(log)
    assert len(pids) == 1 and wait_gone(pids) == []


def test_export_connect_writes_the_tools_schemas_into_the_ir(tmp_path: Path) -> None:
    path = _flow_file(tmp_path)
    command = [sys.executable, "-m", "dagwright", "export", str(path)]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "tools" not in json.loads(plain.stdout)["nodes"][1]["config"]
    asked = subprocess.run([*command, "--connect"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    [clerk] = [n for n in json.loads(asked.stdout)["nodes"] if n["id"] == "clerk"]
    assert sorted(t["name"] for t in clerk["config"]["tools"]) == ["reserve", "stock"]
    assert clerk["config"]["tools"][0]["origin"]["kind"] == "mcp"


def test_render_connect_draws_the_servers_tools(tmp_path: Path) -> None:
    path = _flow_file(tmp_path)
    command = [sys.executable, "-m", "dagwright", "render", str(path), "--format", "mermaid"]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "tools: mcp:inventory" in plain.stdout
    asked = subprocess.run([*command, "--connect"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert "tools: stock, reserve" in asked.stdout


def test_a_call_that_times_out_leaves_the_shared_connection_working(server: OpenAITestServer) -> None:
    server.enqueue(
        Fault(tool_calls=(("recount", {"sku": "A-1", "seconds": 30}), ("stock", {"sku": "A-1"}))),
        Fault(tool_calls=(("recount", {"sku": "A-1"}), ("stock", {"sku": "B-22"}))),
        Fault(content='{"answer": "counted"}'),
    )
    config = {"base_url": server.base_url, "api_key": "k", "tool_timeout": 2}
    flow = Flow("shop")
    # Two objects naming one server (same command and arguments): one connection for both agents.
    clerk_tools = MCPTools(sys.executable, SERVER, "slow")
    flow.add_agent("clerk", "question: str -> answer: str", config=config, tools=[clerk_tools])
    auditor_tools = MCPTools(sys.executable, SERVER, "slow", tools=["stock"])
    flow.add_agent("auditor", "answer: str -> note: str", config=config, tools=[auditor_tools])
    flow.connect("clerk.answer", "auditor.answer")
    flow.input("question")
    result = flow.run(question="Count A-1")
    assert result.success, result.error
    slow, first, recounted, second = result.nodes["clerk"].tool_calls or []
    assert slow["error"] == "TimeoutError: tool 'recount' did not finish within 2 s"
    assert first["result"] == {"result": 30}
    # After the call that was given up on, the same connection answers this agent and the next one.
    assert recounted["result"] == {"result": 3} and second["result"] == {"result": 40}
    [third] = result.nodes["auditor"].tool_calls or []
    assert third["name"] == "stock" and "error" not in third and third["result"]["result"] > 0


def test_a_server_that_exits_during_a_run_is_started_again_for_the_next_agent(
    server: OpenAITestServer, tmp_path: Path
) -> None:
    log = tmp_path / "servers.log"
    server.enqueue(Fault(tool_calls=(("crash", {"sku": "A-1"}),)), Fault(content='{"answer": "it fell over"}'))
    config = {"base_url": server.base_url, "api_key": "k", "tool_timeout": 10}
    tools = MCPTools(sys.executable, SERVER, "slow", env={"INVENTORY_LOG": str(log)})
    flow = Flow("shop")
    flow.add_agent("clerk", "question: str -> answer: str", config=config, tools=[tools])
    later = MCPTools(sys.executable, SERVER, "slow", env={"INVENTORY_LOG": str(log)}, tools=["stock"])
    flow.add_agent("auditor", "answer: str -> note: str", config=config, tools=[later])
    flow.connect("clerk.answer", "auditor.answer")
    flow.input("question")
    result = flow.run(question="Count A-1")
    assert result.success, result.error
    [crashed] = result.nodes["clerk"].tool_calls or []
    assert crashed["name"] == "crash" and crashed["error"]
    [counted] = result.nodes["auditor"].tool_calls or []
    assert "error" not in counted and counted["result"]["result"] > 0
    pids = started(log)
    assert len(pids) == 2 and wait_gone(pids) == []


def test_a_run_of_the_command_line_records_the_graph_a_python_resume_finds(tmp_path: Path) -> None:
    path = _flow_file(tmp_path)
    store = tmp_path / "runs.db"
    command = [sys.executable, "-m", "dagwright", "run", str(path), "--inputs-json", '{"question": "Stock?"}']
    ran = subprocess.run(
        [*command, "--json", "--checkpoint", str(store)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    flow = namespace["flow"]
    assert isinstance(flow, Flow)
    # The command line listed the server before it took the graph, as a Python run or resume does: same graph.
    resumed = flow.resume(run_id, checkpoint=str(store))
    assert resumed.success and resumed.nodes["clerk"].status == "cached"


def test_ctrl_c_during_a_command_line_run_closes_the_server_and_says_how_to_resume(tmp_path: Path) -> None:
    log = tmp_path / "servers.log"
    started_marker = tmp_path / "slow.started"
    path = _flow_file(tmp_path, log)
    path.write_text(
        path.read_text()
        + "import asyncio\n"
        + "async def slow(note: str) -> str:\n"
        + f"    open({str(started_marker)!r}, 'w').close()\n"
        + "    await asyncio.sleep(60)\n"
        + "    return note\n"
        + "flow.add_function('slow', slow)\n"
        + "flow.connect('auditor.note', 'slow.note')\n",
        encoding="utf-8",
    )
    db = tmp_path / "runs.db"
    command = [sys.executable, "-m", "dagwright", "run", str(path), "-i", "question=Stock?", "--checkpoint", str(db)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=restore_ctrl_c
    )
    try:
        deadline = time.monotonic() + 60
        while not started_marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow node never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-3] == "interrupted: the run was cancelled"
    assert lines[-2] == f"2 finished node(s) are stored in {db}; resume the run with:"
    assert lines[-1].split()[:2] == ["dagwright", "run"]
    # The one server the command started is gone with it.
    pids = started(log)
    assert len(pids) == 1 and wait_gone(pids) == []
