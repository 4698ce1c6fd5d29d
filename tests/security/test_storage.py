"""What dagwright writes to disk: private files, no secrets, one process per run, safe creation, portable resumes.

* the checkpoint, memory and cache databases (with their ``-wal``/``-shm``) and the audit log are
  created 0600, whatever the umask lets through;
* a secret-named flow input (the audit log's rule) is not stored in the checkpoint, and a resume
  must be given it again;
* a run is leased: a second process resuming it is refused, naming the holder, until the lease
  ends or its holder dies;
* several processes creating one new database at the same moment all succeed;
* a run started as ``python flows.py`` resumes with ``dagwright run flows.py:flow --resume`` (and the
  other way round) without running finished nodes again.

Every database is a real SQLite file in ``tmp_path``; where two processes are involved, they are
real processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dagwright.cli import main
from dagwright.compiler.redact import REDACTED
from dagwright.execution.policy import RunOptions
from dagwright.flow import Flow
from dagwright.llm.memory import SqliteMemory, Turn
from dagwright.ops.audit import Approval, AuditLog
from dagwright.ops.cache import SqliteCache
from dagwright.ops.checkpoint import (
    NOT_STORED,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointStore,
    RunLeasedError,
    node_fingerprints,
)

PYTHON = sys.executable
GUARD = 60.0
HOST = socket.gethostname()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The umask most systems have (0022): without care, new files are readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def current_umask() -> int:
    value = os.umask(0o022)
    os.umask(value)
    return value


def run(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=GUARD, check=False)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([PYTHON, "-m", "dagwright", *args], env=env, cwd=cwd)


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def only_run_id(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        ((run_id,),) = conn.execute("SELECT run_id FROM runs").fetchall()
    return str(run_id)


# ----------------------------------------------------------------------------- 1. private files


def _checkpoint(path: Path) -> Callable[[], Any]:
    store = CheckpointStore(path)
    flow = Flow("private")
    flow.add_function("double", lambda x: x * 2)
    flow.input("x", int, to="double.x")
    flow.output("y", "double.output")

    def write() -> Any:
        assert flow.run(x=2, checkpoint=store, run_id="r").outputs == {"y": 4}
        return store

    return write


def _memory(path: Path) -> Callable[[], Any]:
    memory = SqliteMemory(str(path))
    return lambda: asyncio.run(memory.append("s", Turn("what is private?", "this conversation")))


def _cache(path: Path) -> Callable[[], Any]:
    cache = SqliteCache(path)
    return lambda: cache.put("key", {"answer": 42})


@pytest.mark.parametrize("make", [_checkpoint, _memory, _cache], ids=["checkpoint", "memory", "cache"])
def test_databases_and_their_wal_and_shm_are_created_private(
    tmp_path: Path, open_umask: None, make: Callable[[Path], Callable[[], Any]]
) -> None:
    path = tmp_path / "store.db"
    write = make(path)
    # A reader keeps the database open, so its -wal and -shm stay on disk to be looked at.
    with sqlite3.connect(path) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        kept = write()
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
        assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
    if isinstance(kept, CheckpointStore):
        kept.close()
    assert current_umask() == 0o022  # the process umask is left as it was


def test_the_audit_log_is_created_private_also_after_rotation(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path, policy="full")
    assert oct(mode(path)) == "0o600"
    path.unlink()  # rotated away while the process runs: the next entry creates it again
    log.write_approval(Approval("approved", "dana", None, time.time()))
    assert oct(mode(path)) == "0o600"
    assert [e["event"] for e in log.entries()] == ["approved"]


def test_an_existing_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    CheckpointStore(path).close()
    assert oct(mode(path)) == "0o640"


# ----------------------------------------------------------------------------- 2. secret inputs

TOKEN = "tok-9f8e7d6c5b4a39281706"


class TokenFlow:
    """topic -> prepare -> call(api_token): ``call`` fails while ``broken``, and records the token it got."""

    def __init__(self) -> None:
        self.broken = True
        self.calls: Counter[str] = Counter()
        self.tokens: list[str] = []

    def flow(self) -> Flow:
        def prepare(topic: str) -> str:
            self.calls["prepare"] += 1
            return f"about {topic}"

        def call(text: str, api_token: str) -> str:
            self.calls["call"] += 1
            self.tokens.append(api_token)
            if self.broken:
                raise RuntimeError("the service is down")
            return f"{text}: {len(api_token)} characters of token"

        flow = Flow("tokens")
        flow.add_function("prepare", prepare)
        flow.add_function("call", call)
        flow.input("topic", str, to="prepare.topic")
        flow.input("api_token", str, to="call.api_token")
        flow.connect("prepare.output", "call.text")
        flow.output("reply", "call.output")
        return flow


def database_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def test_a_secret_input_is_not_stored_in_the_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    tokens = TokenFlow()
    first = tokens.flow().run(topic="weather", api_token=TOKEN, checkpoint=str(db), run_id="r")
    assert not first.success
    assert TOKEN.encode() not in database_bytes(db)
    with CheckpointStore(db) as store:
        assert store.run("r").inputs == {"topic": "weather", "api_token": NOT_STORED}


def test_the_checkpoint_and_the_audit_log_keep_out_the_same_inputs(tmp_path: Path) -> None:
    names = ["api_token", "openai_api_key", "password", "Client-Secret", "topic", "token_count", "keyword"]
    inputs = {name: f"value of {name}" for name in names}
    blanked = {
        n for n, v in (AuditLog(tmp_path / "a.jsonl", policy="full").protect(inputs) or {}).items() if v == REDACTED
    }
    with CheckpointStore(tmp_path / "runs.db") as store:
        store.begin_run("r", TokenFlow().flow().compile(), inputs)
        kept_out = {n for n, v in store.run("r").inputs.items() if v == NOT_STORED}
        # Never written, so a secret need not even be JSON.
        store.begin_run("r2", TokenFlow().flow().compile(), {"api_token": object()})
    assert kept_out == blanked == {"api_token", "openai_api_key", "password", "Client-Secret"}


async def test_a_resume_needs_the_secret_inputs_again_and_uses_them(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    tokens = TokenFlow()
    flow = tokens.flow()
    await flow.arun(topic="weather", api_token=TOKEN, checkpoint=db, run_id="r")
    tokens.broken = False
    with pytest.raises(CheckpointError) as info:
        await flow.aresume("r", checkpoint=db)
    message = str(info.value)
    assert "started with the secret input(s) 'api_token', which the checkpoint does not store" in message
    assert "inputs={'api_token': ...}" in message and "--input api_token=..." in message
    assert tokens.calls == Counter({"prepare": 1, "call": 1})

    with CheckpointStore(db) as store:
        with pytest.raises(CheckpointError, match=r"'topic' cannot be given to a resume: .* only its secret inputs"):
            store.prepare_resume("r", flow.compile(), inputs={"topic": "other", "api_token": TOKEN})
        # What flow.resume(..., inputs=...) does: the given secret joins the stored inputs.
        scheduler = flow._scheduler()
        stored = store.prepare_resume("r", scheduler.plan.graph, inputs={"api_token": "tok-new"})
        assert stored.inputs == {"topic": "weather", "api_token": "tok-new"}
        result = await scheduler.run(stored.inputs, RunOptions(run_id="r", checkpoint=store, resume=True))
    assert result.success, result.error
    assert result.nodes["prepare"].status == "cached"
    assert tokens.tokens == [TOKEN, "tok-new"]
    assert tokens.calls == Counter({"prepare": 1, "call": 2})
    assert b"tok-new" not in database_bytes(Path(db))


def test_flow_resume_takes_the_secret_inputs(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    tokens = TokenFlow()
    tokens.flow().run(topic="weather", api_token=TOKEN, checkpoint=db, run_id="r")
    tokens.broken = False
    flow = tokens.flow()
    with pytest.raises(CheckpointError, match=r"'topic' cannot be given to a resume"):
        flow.resume("r", checkpoint=db, inputs={"topic": "other", "api_token": TOKEN})
    with pytest.raises(ValueError, match=r"resume\(\) needs the id of a stored run; got ''"):
        flow.resume("", checkpoint=db)
    resumed = flow.resume("r", checkpoint=db, inputs={"api_token": "tok-new"})
    assert resumed.success, resumed.error
    assert resumed.nodes["prepare"].status == "cached"
    assert tokens.tokens == [TOKEN, "tok-new"]


SECRET_FLOW = """
from dagwright.flow import Flow

def call(topic: str, api_token: str) -> str:
    raise RuntimeError("down")

flow = Flow("secret_cli")
flow.add_function("call", call)
flow.input("topic", str, to="call.topic")
flow.input("api_token", str, to="call.api_token")
flow.output("reply", "call.output")
"""


def test_the_cli_resume_names_the_missing_secret_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "secret_cli.py"
    script.write_text(SECRET_FLOW)
    db = tmp_path / "runs.db"
    target = f"{script}:flow"
    assert main(["run", target, "-i", "topic=t", "-i", f"api_token={TOKEN}", "--checkpoint", str(db)]) == 1
    capsys.readouterr()
    assert TOKEN.encode() not in database_bytes(db)
    run_id = only_run_id(db)
    assert main(["run", target, "--resume", run_id, "--checkpoint", str(db)]) == 2
    err = capsys.readouterr().err
    assert "secret input(s) 'api_token', which the checkpoint does not store" in err
    assert "--input api_token=..." in err


def test_the_cli_resume_takes_the_secret_input_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "secret_cli.py"
    broken = tmp_path / "broken"
    broken.touch()
    script.write_text(SECRET_FLOW.replace('    raise RuntimeError("down")', RECOVERING.format(broken=str(broken))))
    db = tmp_path / "runs.db"
    target = f"{script}:flow"
    assert main(["run", target, "-i", "topic=t", "-i", f"api_token={TOKEN}", "--checkpoint", str(db)]) == 1
    capsys.readouterr()
    run_id = only_run_id(db)
    broken.unlink()
    resume = ["run", target, "--resume", run_id, "--checkpoint", str(db), "--json"]
    assert main([*resume, "-i", "topic=other", "-i", "api_token=tok-new"]) == 2
    assert "'topic' cannot be given to a resume" in capsys.readouterr().err
    assert main([*resume, "-i", "api_token=tok-new"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"reply": "t with a token of 7"}
    assert b"tok-new" not in database_bytes(db)


RECOVERING = """    if __import__("os").path.exists({broken!r}):
        raise RuntimeError("down")
    return f"{{topic}} with a token of {{len(api_token)}}"
"""


# ----------------------------------------------------------------------------- 3. one process per run

LEASED = """
import os
import time
from pathlib import Path
from dagwright.flow import Flow

LOG = Path(os.environ["DW_LOG"])
RELEASE = Path(os.environ["DW_RELEASE"])

def note(what: str) -> None:
    with LOG.open("a") as f:
        f.write(f"{what} {os.getpid()}\\n")

def first(x: int) -> int:
    note("first")
    return x + 1

def slow(x: int) -> int:
    note("slow")
    if os.environ.get("DW_FAIL"):
        raise RuntimeError("slow is broken")
    deadline = time.monotonic() + 60
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return x * 10

flow = Flow("leased")
flow.add_function("first", first)
flow.add_function("slow", slow)
flow.input("x", int, to="first.x")
flow.connect("first.output", "slow.x")
flow.output("result", "slow.output")
"""


class Leased:
    """A run of LEASED whose ``slow`` node failed, ready to resume; ``slow`` then waits for ``release()``."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "leased.py"
        self.script.write_text(LEASED)
        self.db = tmp_path / "runs.db"
        self.log = tmp_path / "calls.log"
        self.gate = tmp_path / "release"
        self.env = {**os.environ, "DW_LOG": str(self.log), "DW_RELEASE": str(self.gate)}
        self.env.pop("DW_FAIL", None)
        failed = cli(*self.command("-i", "x=4"), env={**self.env, "DW_FAIL": "1"})
        assert failed.returncode == 1, failed.stderr
        self.run_id = only_run_id(self.db)

    def command(self, *extra: str) -> list[str]:
        return ["run", f"{self.script}:flow", "--checkpoint", str(self.db), "--json", *extra]

    def resume_command(self) -> list[str]:
        return [PYTHON, "-m", "dagwright", *self.command("--resume", self.run_id)]

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def release(self) -> None:
        self.gate.touch()


def test_a_second_process_cannot_resume_a_run_another_is_resuming(tmp_path: Path) -> None:
    case = Leased(tmp_path)
    (made_by,) = {line.split()[1] for line in case.calls()}
    holder = subprocess.Popen(
        case.resume_command(), env=case.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: f"slow {holder.pid}" in case.calls(), "the first resume to reach the slow node")
        # Its slow node would not wait: were it let in, it would finish (and show in the log) at once.
        second = cli(*case.command("--resume", case.run_id), env={**case.env, "DW_RELEASE": str(case.script)})
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"is being run by {HOST}:{holder.pid}, whose lease on it expires at " in second.stderr
        assert "running it here too would run its remaining nodes twice" in second.stderr
        case.release()
        out, err = holder.communicate(timeout=GUARD)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == 0, err
    assert json.loads(out)["outputs"] == {"result": 50}
    # The slow node ran once in the failed run and once in the resume that held the lease, never in the second.
    assert case.calls() == [f"first {made_by}", f"slow {made_by}", f"slow {holder.pid}"]

    # The lease was given back at the end of the run: the run resumes again, with nothing left to do.
    again = cli(*case.command("--resume", case.run_id), env=case.env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"]["nodes"]["cached"] == 2
    assert len(case.calls()) == 3


def test_the_lease_of_a_killed_process_does_not_block_a_resume(tmp_path: Path) -> None:
    case = Leased(tmp_path)
    holder = subprocess.Popen(case.resume_command(), env=case.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: f"slow {holder.pid}" in case.calls(), "the resume to reach the slow node")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(GUARD)
    with sqlite3.connect(case.db) as conn:
        (expires_at,) = conn.execute("SELECT expires_at FROM leases").fetchone()
    assert expires_at > time.time()  # not expired: the holder is known to be gone
    case.release()
    resumed = cli(*case.command("--resume", case.run_id), env=case.env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outputs"] == {"result": 50}
    assert [line.split()[0] for line in case.calls()] == ["first", "slow", "slow", "slow"]


HANG = """
import os, signal, sys
from dagwright.ops.checkpoint import CheckpointStore

store = CheckpointStore(sys.argv[1], lease_seconds=float(sys.argv[3]))
store.take_lease(sys.argv[2])
print("held", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)  # hung: alive, but renewing nothing
"""


def test_a_hung_holder_blocks_a_resume_only_until_its_lease_expires(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    flow = Flow("hung")
    flow.add_function("double", lambda x: x * 2)
    flow.input("x", int, to="double.x")
    flow.output("y", "double.output")
    flow.run(x=1, checkpoint=db, run_id="r")
    hung = subprocess.Popen([PYTHON, "-c", HANG, db, "r", "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert hung.stdout is not None and hung.stdout.readline() == "held\n"
        with pytest.raises(RunLeasedError, match=f"is being run by {HOST}:{hung.pid}, ") as info:
            flow.resume("r", checkpoint=db)
        assert info.value.holder == f"{HOST}:{hung.pid}"
        time.sleep(max(0.0, info.value.expires_at - time.time()) + 0.2)
        assert flow.resume("r", checkpoint=db).outputs == {"y": 2}
    finally:
        hung.kill()
        hung.wait(GUARD)


def test_the_lease_is_renewed_while_the_run_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    started, release = threading.Event(), threading.Event()

    def slow(x: int) -> int:
        started.set()
        release.wait(GUARD)
        return x

    flow = Flow("renewed")
    flow.add_function("slow", slow)
    flow.input("x", int, to="slow.x")
    flow.output("y", "slow.output")
    holder = CheckpointStore(db, lease_seconds=0.6)
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.append(flow.run(x=1, checkpoint=holder, run_id="r")))
    runner.start()
    try:
        assert started.wait(GUARD)
        time.sleep(1.5)  # more than twice the lease: only its renewals keep it
        with CheckpointStore(db) as other, pytest.raises(RunLeasedError, match=f"run by {HOST}:{os.getpid()}"):
            other.take_lease("r")
    finally:
        release.set()
        runner.join(GUARD)
    assert results[0].success
    with CheckpointStore(db) as other:
        other.take_lease("r")  # given back when the run ended
    holder.close()


# ----------------------------------------------------------------------------- 4. creating one database at once

CREATE = """
import sys
import time
from pathlib import Path

kind, base, workers, trials, me = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if kind == "memory":
    from dagwright.llm.memory import SqliteMemory as make
elif kind == "cache":
    from dagwright.ops.cache import SqliteCache as make
else:
    from dagwright.ops.checkpoint import CheckpointStore as make
for trial in range(trials):
    # A barrier made of files: every worker creates database number `trial` at the same moment.
    (base / f"ready-{trial}-{me}").touch()
    deadline = time.monotonic() + 60
    while len(list(base.glob(f"ready-{trial}-*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.0005)
    try:
        made = make(str(base / f"{trial}.db"))
        getattr(made, "close", lambda: None)()
        print("ok", trial, flush=True)
    except Exception as exc:
        print("error", trial, type(exc).__name__, exc, flush=True)
"""


@pytest.mark.parametrize("kind", ["checkpoint", "memory", "cache"])
def test_processes_creating_one_database_at_once_all_succeed(tmp_path: Path, kind: str) -> None:
    workers, trials = 4, 25
    script = tmp_path / "create.py"
    script.write_text(CREATE)
    base = tmp_path / "dbs"
    base.mkdir()
    procs = [
        subprocess.Popen(
            [PYTHON, str(script), kind, str(base), str(workers), str(trials), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=GUARD * 2)
        assert proc.returncode == 0, err
        lines.extend(out.splitlines())
    errors = [line for line in lines if not line.startswith("ok ")]
    assert not errors, f"{len(errors)} of {workers * trials} creations failed:\n" + "\n".join(errors)
    assert len(lines) == workers * trials
    for trial in range(trials):
        assert oct(mode(base / f"{trial}.db")) == "0o600"


def test_a_locked_checkpoint_says_it_is_locked_not_that_it_is_no_database(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path, isolation_level=None) as other:
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write, in rollback-journal mode
        started = time.monotonic()
        with pytest.raises(CheckpointError) as info:
            CheckpointStore(path, busy_timeout=0.5)
        assert time.monotonic() - started >= 0.5
        other.execute("ROLLBACK")
    message = str(info.value)
    assert "stayed locked by another process for 0.5 s" in message
    assert "cannot open it as a SQLite database" not in message
    not_db = tmp_path / "text.db"
    not_db.write_text("not a database " * 100)
    with pytest.raises(CheckpointError, match="cannot open it as a SQLite database: file is not a database"):
        CheckpointStore(not_db)


# ----------------------------------------------------------------------------- 5. started as a script or by the CLI

STARTED = """
import os
import sys
from pathlib import Path
from dagwright.flow import Flow

LOG = Path(os.environ["DW_LOG"])

def note(what: str) -> None:
    with LOG.open("a") as f:
        f.write(what + "\\n")

def first(x: int) -> int:
    note("first")
    return x + 1

def second(x: int) -> int:
    note("second")
    return x * 10

def third(x: int) -> int:
    note("third")
    if os.environ.get("DW_FAIL"):
        raise RuntimeError("third is broken")
    return x + 7

flow = Flow("started")
flow.add_function("first", first)
flow.add_function("second", second)
flow.add_function("third", third)
flow.input("x", int, to="first.x")
flow.connect("first.output", "second.x")
flow.connect("second.output", "third.x")
flow.output("result", "third.output")

if __name__ == "__main__":
    db, run_id = sys.argv[1], sys.argv[2]
    if sys.argv[3:] == ["--resume"]:
        result = flow.resume(run_id, checkpoint=db)
    else:
        result = flow.run(x=4, checkpoint=db, run_id=run_id)
    print(result.outputs, [r.status for r in result.nodes.values()].count("cached"))
"""


def test_a_run_started_as_a_script_resumes_through_the_cli_and_back(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(STARTED)
    log = tmp_path / "calls.log"
    env = {**os.environ, "DW_LOG": str(log)}
    env.pop("DW_FAIL", None)
    broken = {**env, "DW_FAIL": "1"}

    # python flows.py, then dagwright run flows.py:flow --resume.
    db = tmp_path / "script.db"
    started = run([PYTHON, "flows.py", str(db), "from-script"], env=broken, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    resumed = cli(
        "run", "flows.py:flow", "--resume", "from-script", "--checkpoint", str(db), "--json", env=env, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    payload = json.loads(resumed.stdout)
    assert payload["outputs"] == {"result": 57}
    assert payload["summary"]["nodes"]["cached"] == 2
    assert log.read_text().split() == ["first", "second", "third", "third"]

    # dagwright run flows.py:flow, then python flows.py ... --resume.
    log.unlink()
    db = tmp_path / "cli.db"
    first = cli("run", "flows.py:flow", "-i", "x=4", "--checkpoint", str(db), env=broken, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    back = run([PYTHON, "flows.py", str(db), only_run_id(db), "--resume"], env=env, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert back.stdout.split() == ["{'result':", "57}", "2"]
    assert log.read_text().split() == ["first", "second", "third", "third"]


MODELLED = """
import json
from pydantic import BaseModel
from dagwright.flow import Flow

class Answer(BaseModel):
    text: str

def answer(question: str) -> Answer:
    return Answer(text=question)

class Shout:
    def __call__(self, answer: Answer) -> str:
        return answer.text.upper()

flow = Flow("modelled")
flow.add_function("answer", answer)
flow.add_function("shout", Shout())
flow.input("question", str, to="answer.question")
flow.connect("answer.output", "shout.answer")
flow.output("loud", "shout.output")

def report(flow: Flow) -> str:
    from dagwright.ops.checkpoint import node_fingerprints, portable_graph_hash

    graph = flow.compile()
    prints = node_fingerprints(graph)
    return json.dumps({"raw": graph.content_hash, "nodes": prints, "graph": portable_graph_hash(graph, prints)})

if __name__ == "__main__":
    print(report(flow))
"""

LOAD = """
import sys
from dagwright.cli.loader import load_targets

(target,) = load_targets(sys.argv[1])
graph = target.flow.compile()
ref = next(n.config["function"] for n in graph.nodes if n.kind == "function")
module = sys.modules[ref.split(":")[0]]
print(module.__name__, module.report(target.flow))
"""


@pytest.mark.parametrize("stem", ["modelled", "this"])
def test_fingerprints_do_not_depend_on_how_the_file_was_started(tmp_path: Path, stem: str) -> None:
    # "this" is also a module of the standard library: dagwright run imports the file under a name of its own.
    script = tmp_path / f"{stem}.py"
    script.write_text(MODELLED)
    as_script = run([PYTHON, str(script)], cwd=tmp_path)
    assert as_script.returncode == 0, as_script.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    as_target = run([PYTHON, "-c", LOAD, f"{script}:flow"], cwd=elsewhere)
    assert as_target.returncode == 0, as_target.stderr
    name, _, text = as_target.stdout.partition(" ")
    if stem == "modelled":
        assert name == "modelled"
    else:
        assert name.startswith("_dagwright_target_") and name.endswith("_this")
    started, imported = json.loads(as_script.stdout), json.loads(text)
    assert started["raw"] != imported["raw"]  # the module name is in the content of the graph ...
    assert started["nodes"] == imported["nodes"]  # ... but not in what a resume compares
    assert started["graph"] == imported["graph"]


def test_fingerprints_of_code_imported_by_name_are_what_they_were(tmp_path: Path) -> None:
    # Checkpoints made before started-as module names were read as the file's still resume.
    graph = TokenFlow().flow().compile()
    incoming: dict[str, list[str]] = {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, []).append(f"{edge.source}.{edge.source_port}->{edge.target_port}")
    before = {
        node.id: hashlib.sha256((node.content_hash + "\n" + "\n".join(incoming.get(node.id, ()))).encode()).hexdigest()
        for node in graph.nodes
    }
    assert node_fingerprints(graph) == before


def test_a_changed_description_is_still_a_changed_flow(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")

    def build(description: str) -> Flow:
        flow = Flow("described", description=description)
        flow.add_function("double", lambda x: x * 2)
        flow.input("x", int, to="double.x")
        flow.output("y", "double.output")
        return flow

    build("one").run(x=1, checkpoint=db, run_id="r")
    with pytest.raises(CheckpointMismatchError, match=r"its description \(nodes are the same\)"):
        build("two").resume("r", checkpoint=db)
