"""Checkpoint and resume: finished nodes are stored one transaction each and not run again on resume.

Function nodes count their own executions; agent nodes are counted by the loopback server's
requests. The crash and Ctrl-C tests run ``dagwright run`` in a subprocess and kill or interrupt
it for real, then resume in a new process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers_runtime import registered_kind, restore_ctrl_c
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright.cli import main
from dagwright.compiler.ir import Node, Port
from dagwright.compiler.types import INT
from dagwright.execution.executor import Executor, NodeContext
from dagwright.flow import Flow
from dagwright.ops.checkpoint import CheckpointError, CheckpointMismatchError, CheckpointStore
from dagwright.testing import OpenAITestServer

PYTHON = sys.executable
GUARD = 30.0


# ----------------------------------------------------------------------------- in-process flows


class Counted:
    """Function nodes that count their calls and fail while their id is in ``failing``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()

    def node(self, node_id: str, offset: int, version: int = 1) -> Any:
        def body(x: int) -> int:
            self.calls[node_id] += 1
            if node_id in self.failing:
                raise RuntimeError(f"{node_id} is broken")
            return x * 3 + offset

        # The function's name is what the graph records of it: a new version is a changed node.
        body.__name__ = body.__qualname__ = f"{node_id}_v{version}"
        return body


def diamond(counted: Counted, *, offset_c: int = 3, version_c: int = 1) -> Flow:
    """x -> a -> (b, c) -> d, plus e hanging off b."""
    flow = Flow("diamond")

    def d(left: int, right: int) -> int:
        counted.calls["d"] += 1
        if "d" in counted.failing:
            raise RuntimeError("d is broken")
        return left - right

    flow.add_function("a", counted.node("a", 1))
    flow.add_function("b", counted.node("b", 2))
    flow.add_function("c", counted.node("c", offset_c, version_c))
    flow.add_function("d", d)
    flow.add_function("e", counted.node("e", 5))
    flow.input("x", int, to="a.x")
    flow.connect("a.output", "b.x")
    flow.connect("a.output", "c.x")
    flow.connect("b.output", "d.left")
    flow.connect("c.output", "d.right")
    flow.connect("b.output", "e.x")
    flow.output("d", "d.output")
    flow.output("e", "e.output")
    return flow


def statuses(result: Any) -> dict[str, str]:
    return {node_id: record.status for node_id, record in result.nodes.items() if ":" not in node_id}


def test_resume_skips_finished_nodes_and_reuses_their_outputs(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    counted = Counted()
    counted.failing = {"d"}
    first = diamond(counted).run(x=2, checkpoint=str(db), run_id="r1", failure_mode="continue")
    assert not first.success
    assert first.error == "d: RuntimeError: d is broken"
    assert statuses(first) == {"a": "done", "b": "done", "c": "done", "d": "failed", "e": "done"}

    counted.failing = set()
    resumed = diamond(counted).resume("r1", checkpoint=str(db))
    assert resumed.success
    assert resumed.run_id == "r1"
    assert statuses(resumed) == {"a": "cached", "b": "cached", "c": "cached", "d": "done", "e": "cached"}
    # a = 7, b = 23, c = 24: d = -1, e = 74, exactly what an uninterrupted run gives.
    assert resumed.outputs == {"d": -1, "e": 74}
    assert counted.calls == Counter({"a": 1, "b": 1, "c": 1, "d": 2, "e": 1})
    assert resumed.nodes["b"].outputs == {"output": 23}

    with CheckpointStore(db) as store:
        stored = store.run("r1")
        assert stored.status == "succeeded"
        assert stored.inputs == {"x": 2}
        assert sorted(store.finished_nodes("r1")) == ["a", "b", "c", "d", "e"]


def test_a_finished_run_resumes_without_running_anything(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    counted = Counted()
    assert diamond(counted).run(x=1, checkpoint=db, run_id="done").outputs == {"d": -1, "e": 47}
    again = diamond(counted).resume("done", checkpoint=db)
    assert again.outputs == {"d": -1, "e": 47}
    assert set(statuses(again).values()) == {"cached"}
    assert counted.calls == Counter({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1})


async def test_aresume_and_a_shared_store(tmp_path: Path) -> None:
    counted = Counted()
    counted.failing = {"e"}
    with CheckpointStore(tmp_path / "runs.db") as store:
        first = await diamond(counted).arun(x=0, checkpoint=store, run_id="a1", failure_mode="continue")
        assert statuses(first)["e"] == "failed"
        counted.failing = set()
        resumed = await diamond(counted).aresume("a1", checkpoint=store)
        # The store was passed in, so it stays open for the caller.
        assert store.run("a1").status == "succeeded"
    assert resumed.outputs == {"d": -1, "e": 20}
    assert counted.calls["e"] == 2 and counted.calls["a"] == 1


def test_a_changed_graph_is_refused_with_what_changed(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    counted = Counted()
    counted.failing = {"d"}
    diamond(counted).run(x=2, checkpoint=db, run_id="r1", failure_mode="continue")
    counted.failing = set()
    changed = diamond(counted, offset_c=4, version_c=2)
    changed.add_function("f", counted.node("f", 0))
    changed.connect("e.output", "f.x")
    with pytest.raises(CheckpointMismatchError) as info:
        changed.resume("r1", checkpoint=db)
    message = str(info.value)
    assert "run 'r1'" in message and "flow 'diamond'" in message
    assert "changed: c; added: f." in message
    assert "rerun_changed=True" in message
    assert info.value.changes.changed == ("c",) and info.value.changes.added == ("f",)
    assert counted.calls == Counter({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1})

    # Re-running the changed node and its descendants only: c, then d (downstream of c); f is new.
    resumed = changed.resume("r1", checkpoint=db, rerun_changed=True)
    assert statuses(resumed) == {"a": "cached", "b": "cached", "c": "done", "d": "done", "e": "cached", "f": "done"}
    assert resumed.outputs == {"d": -2, "e": 74}
    assert counted.calls == Counter({"a": 1, "b": 1, "c": 2, "d": 2, "e": 1, "f": 1})
    # The run now belongs to the new graph: resuming it again is plain.
    assert set(statuses(changed.resume("r1", checkpoint=db)).values()) == {"cached"}


def test_a_removed_node_is_named(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    counted = Counted()
    flow = diamond(counted)
    flow.run(x=1, checkpoint=db, run_id="r")
    smaller = Flow("diamond")
    smaller.add_function("a", counted.node("a", 1))
    smaller.input("x", int, to="a.x")
    smaller.output("a", "a.output")
    with pytest.raises(CheckpointMismatchError, match=r"added: output:a; removed: b, c, d, e, output:d, output:e"):
        smaller.resume("r", checkpoint=db)


def test_outputs_that_are_not_plain_json_are_not_stored(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    calls: Counter[str] = Counter()

    def pair(x: int) -> tuple[int, int]:
        calls["pair"] += 1
        return (x, x)

    def total(p: tuple[int, int]) -> int:
        calls["total"] += 1
        return sum(p)

    def nan(x: int) -> float:
        calls["nan"] += 1
        return float("nan")

    def plain(x: int) -> int:
        calls["plain"] += 1
        return x + 1

    flow = Flow("odd")
    flow.add_function("pair", pair)
    flow.add_function("total", total)
    flow.add_function("nan", nan)
    flow.add_function("plain", plain)
    flow.input("x", int, to=["pair.x", "nan.x", "plain.x"])
    flow.connect("pair.output", "total.p")
    flow.output("total", "total.output")
    flow.output("nan", "nan.output")
    flow.output("plain", "plain.output")
    assert flow.run(x=4, checkpoint=db, run_id="r").outputs["total"] == 8
    with CheckpointStore(db) as store:
        # A tuple would come back as a list and NaN is not JSON: neither is stored, so both run again.
        assert sorted(store.finished_nodes("r")) == ["plain", "total"]
    resumed = flow.resume("r", checkpoint=db)
    assert resumed.outputs["total"] == 8 and resumed.outputs["plain"] == 5
    # total's stored output is not used: its input is computed again, so total must see the new value.
    assert statuses(resumed) == {"pair": "done", "total": "done", "nan": "done", "plain": "cached"}
    assert calls == Counter({"pair": 2, "total": 2, "nan": 2, "plain": 1})


def test_an_output_that_fails_validation_is_never_stored(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")

    def factory(node: Node, binding: object) -> Executor:
        async def run(inputs: dict[str, Any], ctx: NodeContext) -> Any:
            return {"nope": inputs["x"]}

        return run

    with registered_kind("test_checkpoint_bad", factory):
        flow = Flow("bad")
        flow.add_node(Node("f", "test_checkpoint_bad", (Port("x", INT),), (Port("y", INT),)))
        flow.input("x", int, to="f.x")
        flow.output("y", "f.y")
        result = flow.run(x=1, checkpoint=db, run_id="r")
    assert result.nodes["f"].status == "failed"
    assert result.nodes["f"].error == "returned unknown output(s) 'nope'"
    with CheckpointStore(db) as store:
        assert store.finished_nodes("r") == []
        assert store.run("r").status == "failed"


def test_bad_uses_give_clear_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    counted = Counted()
    flow = diamond(counted)
    with pytest.raises(CheckpointError, match=r"has no run 'nope'; it holds no runs"):
        flow.resume("nope", checkpoint=db)
    flow.run(x=1, checkpoint=db, run_id="r1")
    with pytest.raises(CheckpointError, match=r"has no run 'nope'; recent runs: r1"):
        flow.resume("nope", checkpoint=db)
    with pytest.raises(CheckpointError, match=r"already holds run 'r1'; resume it with flow.resume\('r1'"):
        flow.run(x=1, checkpoint=db, run_id="r1")
    with pytest.raises(TypeError, match=r"resume\(\) needs checkpoint="):
        flow.resume("r1")
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) 'x': the run's inputs are stored"):
        flow.resume("r1", checkpoint=db, x=3)
    with pytest.raises(TypeError, match=r"checkpoint must be a SQLite file path or a CheckpointStore, got int"):
        flow.run(x=1, checkpoint=3)
    not_db = tmp_path / "text.db"
    not_db.write_text("this is not a database, just text that is long enough to have a header" * 20)
    with pytest.raises(CheckpointError, match=r"cannot open it as a SQLite database"):
        flow.run(x=1, checkpoint=str(not_db))

    blob = Flow("blob")
    blob.add_function("f", lambda v: 1)
    blob.input("v", object, to="f.v")
    blob.output("y", "f.output")
    with pytest.raises(CheckpointError, match=r"flow input 'v' is a set, which is not plain JSON"):
        blob.run(v={1}, checkpoint=db)


def test_the_database_holds_only_json_and_damaged_rows_rerun(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    counted = Counted()
    diamond(counted).run(x=2, checkpoint=str(db), run_id="r")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = conn.execute("SELECT node_id, outputs FROM nodes ORDER BY node_id").fetchall()
        assert [(n, json.loads(o)) for n, o in rows] == [
            ("a", {"output": 7}),
            ("b", {"output": 23}),
            ("c", {"output": 24}),
            ("d", {"output": -1}),
            ("e", {"output": 74}),
        ]
        # A pickle in place of JSON is data to reject, never something to load: the node just runs again.
        conn.execute("UPDATE nodes SET outputs = ? WHERE node_id = 'b'", ("\x80\x04\x95cos\nsystem\n",))
    resumed = diamond(counted).resume("r", checkpoint=str(db))
    assert statuses(resumed)["b"] == "done"
    assert resumed.outputs == {"d": -1, "e": 74}
    assert counted.calls["b"] == 2 and counted.calls["a"] == 1


@st.composite
def chains_and_failures(draw: st.DrawFn) -> tuple[list[list[int]], set[int]]:
    """A random DAG (each node reads one to two earlier nodes or the input) and the nodes that fail first."""
    n = draw(st.integers(1, 7))
    parents = [sorted(set(draw(st.lists(st.integers(-1, i - 1), min_size=1, max_size=2)))) for i in range(n)]
    failing = set(draw(st.lists(st.integers(0, n - 1), max_size=3)))
    return parents, failing


@settings(max_examples=20)
@given(chains_and_failures(), st.sampled_from(["fail_fast", "continue"]))
def test_resume_equals_an_uninterrupted_run_and_runs_each_node_once(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[list[list[int]], set[int]], mode: str
) -> None:
    parents, failing = case
    db = str(tmp_path_factory.mktemp("ck") / "runs.db")

    def build(calls: Counter[str], fail: set[int]) -> Flow:
        flow = Flow("random")
        for i, ps in enumerate(parents):

            def body(a: int, b: int = 0, i: int = i) -> int:
                calls[f"n{i}"] += 1
                if i in fail:
                    raise RuntimeError(f"n{i} fails")
                return (a + b) * 2 + i

            flow.add_function(f"n{i}", body)
            for port, p in zip(("a", "b"), ps, strict=False):
                if p < 0:
                    continue
                flow.connect(f"n{p}.output", f"n{i}.{port}")
        sources = [f"n{i}.a" for i, ps in enumerate(parents) if ps[0] < 0]
        flow.input("x", int, to=sources)
        flow.output("last", f"n{len(parents) - 1}.output")
        return flow

    clean_calls: Counter[str] = Counter()
    expected = build(clean_calls, set()).run(x=1)
    calls: Counter[str] = Counter()
    fail = set(failing)
    first = build(calls, fail).run(x=1, checkpoint=db, run_id="r", failure_mode=mode)
    finished = {n for n, r in first.nodes.items() if r.status == "done" and n.startswith("n")}
    first_calls = Counter(calls)
    fail.clear()
    resumed = build(calls, fail).resume("r", checkpoint=db)
    assert resumed.success
    assert resumed.outputs == expected.outputs
    # A finished node is reused only when everything upstream of it is reused too (in ``continue`` mode a
    # node may have run on a default in place of a failed input).
    trusted: set[str] = set()
    for i, ps in enumerate(parents):
        if f"n{i}" in finished and all(p < 0 or f"n{p}" in trusted for p in ps):
            trusted.add(f"n{i}")
    for node_id in clean_calls:
        if node_id in trusted:
            assert calls[node_id] == 1
            assert resumed.nodes[node_id].status == "cached"
        else:
            assert calls[node_id] == first_calls[node_id] + 1
            assert resumed.nodes[node_id].status == "done"


# ----------------------------------------------------------------------------- the command line, in subprocesses

CHAIN = """
import os
from dagwright.agent import BaseAgent
from dagwright.flow import Flow
from dagwright.compiler.signature import make_signature

config = {"provider": "openai", "base_url": os.environ["DW_BASE_URL"], "api_key": "sk-test",
          "model": "gpt-4o-mini", "retry_initial_delay": 0.01}
flow = Flow("chain")
flow.input("topic", str, to="step0.text")
N = 6
for i in range(N):
    sig = make_signature("text: str -> result: str", f"Step marker step{i}.")
    flow.add_agent(f"step{i}", BaseAgent(config=config, signature=sig, name=f"step{i}"))
    if i:
        flow.connect(f"step{i - 1}.result", f"step{i}.text")
flow.output("final", f"step{N - 1}.result")
"""

SLOW = """
import asyncio
import os
from pathlib import Path
from dagwright.flow import Flow

LOG = Path(os.environ["DW_LOG"])

def note(name: str) -> None:
    with LOG.open("a") as f:
        f.write(name + "\\n")

def first(x: int) -> int:
    note("first")
    return x + 1

def second(x: int) -> int:
    note("second")
    return x * 10

async def slow(x: int) -> int:
    note("slow")
    await asyncio.sleep(float(os.environ.get("DW_SLOW", "60")))
    return x + 5

flow = Flow("slow")
flow.add_function("first", first)
flow.add_function("second", second)
flow.add_function("slow", slow)
flow.input("x", int, to="first.x")
flow.connect("first.output", "second.x")
flow.connect("second.output", "slow.x")
flow.output("result", "slow.output")
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "dagwright", *args], env=env, capture_output=True, text=True, timeout=GUARD, check=False
    )


def stored_nodes(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [r[0] for r in conn.execute("SELECT node_id FROM nodes ORDER BY finished_at")]
    except sqlite3.OperationalError:
        return []  # tables not created yet


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def requests_per_step(server: OpenAITestServer) -> Counter[str]:
    counts: Counter[str] = Counter()
    for request in server.requests:
        text = " ".join(str(m.get("content")) for m in request["messages"])
        counts.update(f"step{i}" for i in range(6) if f"Step marker step{i}." in text)
    return counts


def test_a_run_killed_midway_resumes_without_calling_finished_nodes_again(tmp_path: Path) -> None:
    script = tmp_path / "chain.py"
    script.write_text(CHAIN)
    db = tmp_path / "runs.db"
    with OpenAITestServer(latency=0.15) as server:
        env = {**os.environ, "DW_BASE_URL": server.base_url}
        clean = cli("run", f"{script}:flow", "-i", "topic=crash", "--json", env=env)
        assert clean.returncode == 0, clean.stderr
        expected = json.loads(clean.stdout)["outputs"]
        assert requests_per_step(server) == Counter({f"step{i}": 1 for i in range(6)})
        server.reset()

        proc = subprocess.Popen(
            [PYTHON, "-m", "dagwright", "run", f"{script}:flow", "-i", "topic=crash", "--checkpoint", str(db)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: len(stored_nodes(db)) >= 2, "two finished nodes in the checkpoint")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(GUARD)
        assert proc.returncode == -signal.SIGKILL
        finished = stored_nodes(db)
        assert 2 <= len(finished) < 6
        assert finished == [f"step{i}" for i in range(len(finished))]
        before = requests_per_step(server)
        assert all(before[n] == 1 for n in finished)

        with sqlite3.connect(db) as conn:
            ((run_id, status),) = conn.execute("SELECT run_id, status FROM runs").fetchall()
        assert status == "running"  # killed: nobody could mark it
        resumed = cli("run", f"{script}:flow", "--resume", run_id, "--checkpoint", str(db), "--json", env=env)
        assert resumed.returncode == 0, resumed.stderr
        payload = json.loads(resumed.stdout)
        assert payload["run_id"] == run_id
        assert payload["outputs"] == expected
        assert payload["summary"]["nodes"]["cached"] == len(finished)
        after = requests_per_step(server)
        for i in range(6):
            node = f"step{i}"
            # Finished nodes are never asked again; the rest are asked once more (the one in flight at the kill twice).
            assert after[node] == (1 if node in finished else before[node] + 1), (node, before, after)
        assert stored_nodes(db) == [f"step{i}" for i in range(6)]


def test_ctrl_c_stops_cleanly_and_prints_how_to_resume(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    db = tmp_path / "runs.db"
    log = tmp_path / "calls.log"
    env = {**os.environ, "DW_LOG": str(log)}
    target = f"{script}:flow"
    proc = subprocess.Popen(
        [PYTHON, "-m", "dagwright", "run", target, "-i", "x=4", "--checkpoint", str(db)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_ctrl_c,
    )
    try:
        wait_for(lambda: log.exists() and "slow" in log.read_text().split(), "the slow node to start")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-3] == "interrupted: the run was cancelled"
    assert lines[-2] == f"2 finished node(s) are stored in {db}; resume the run with:"
    command = lines[-1].strip().split()
    assert command[:3] == ["dagwright", "run", target] and command[3] == "--resume"
    run_id = command[4]
    assert command[5:] == ["--checkpoint", str(db)]
    with CheckpointStore(db) as store:
        assert store.run(run_id).status == "cancelled"
        assert store.finished_nodes(run_id) == ["first", "second"]

    resumed = cli(*command[1:], "--json", env={**env, "DW_SLOW": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outputs"] == {"result": 55}
    assert log.read_text().split() == ["first", "second", "slow", "slow"]


def test_cli_resume_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    os.environ.setdefault("DW_LOG", str(tmp_path / "calls.log"))
    db = str(tmp_path / "runs.db")
    target = f"{script}:flow"
    assert main(["run", target, "--resume", "r1"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err
    assert main(["run", target, "--rerun-changed", "--checkpoint", db, "-i", "x=1"]) == 2
    assert "--rerun-changed applies to --resume only" in capsys.readouterr().err
    assert main(["run", target, "--resume", "r1", "--checkpoint", db]) == 2
    assert f"checkpoint {db!r} has no run 'r1'; it holds no runs" in capsys.readouterr().err


def test_run_sync_inside_a_loop_with_checkpoint(tmp_path: Path) -> None:
    counted = Counted()

    async def inside() -> Any:
        return diamond(counted).run(x=3, checkpoint=str(tmp_path / "r.db"), run_id="loop")

    assert asyncio.run(inside()).outputs == {"d": -1, "e": 101}


def test_a_graph_is_fingerprinted_once_for_as_long_as_it_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from dagwright.ops import checkpoint

    hashed: list[str] = []
    real = checkpoint._fingerprints

    def counting(graph: Any) -> dict[str, str]:
        hashed.append(graph.name)
        return real(graph)

    monkeypatch.setattr(checkpoint, "_fingerprints", counting)

    async def add(x: int) -> int:
        return x + 1

    flow = Flow("fingerprinted")
    flow.add_function("a", add)
    flow.add_function("b", add)
    flow.connect("a.output", "b.x")
    flow.input("x", int, to="a.x")
    with CheckpointStore(":memory:") as store:
        for run_id in ("r1", "r2", "r3"):
            assert flow.run(x=1, checkpoint=store, run_id=run_id).success
        assert [row[0] for row in store._db.execute("SELECT DISTINCT node_hash FROM nodes ORDER BY node_id")] == [
            real(flow.compile())["a"],
            real(flow.compile())["b"],
        ]
    assert hashed == ["fingerprinted"]
    fingerprints = checkpoint.node_fingerprints(flow.compile())
    fingerprints["a"] = "changed by the caller"
    assert checkpoint.node_fingerprints(flow.compile())["a"] != "changed by the caller"

    flow.add_function("c", add)  # a new graph: fingerprinted anew, the old one forgotten with its graph
    flow.connect("b.output", "c.x")
    assert flow.run(x=1, checkpoint=":memory:").success
    gc.collect()
    assert hashed == ["fingerprinted", "fingerprinted"]
    assert all(ref() is not None for ref, _ in checkpoint._FINGERPRINTS.values())
