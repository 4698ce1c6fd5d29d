"""Checkpoints: each finished node's outputs in SQLite, so an interrupted run resumes without redoing work.

A run with a checkpoint (``flow.run(..., checkpoint="runs.db")``) stores its inputs, the
graph's content hash and every node's fingerprint when it starts, then each node's outputs
the moment the node finishes, one transaction per node (WAL mode, so a crash leaves every
committed node readable and nothing half-written). ``flow.resume(run_id, checkpoint=...)``
reloads the stored outputs: those nodes are marked ``cached`` and not run again.

Outputs are stored as JSON and only when they survive a JSON round trip unchanged; an
output that does not (an object, a tuple, NaN) is not stored and its node runs again on
resume. Nothing read from the database is ever unpickled, imported or executed: rows are
parsed with :func:`json.loads` only.

A flow input whose name says it holds a secret (``api_token``, ``*_key``, ...: the audit log's
rule, :func:`dagwright.compiler.redact.is_secret_key`) is never written: the checkpoint holds
:data:`NOT_STORED` in its place, and a resume must be given it again (``prepare_resume(...,
inputs={"api_token": ...})``), or is refused with an error naming it.

A run is held by one process at a time: starting or resuming it takes a lease (a row naming
the holder, ``host:pid``, and an expiry), renewed by a thread while the run goes on and given
back when it ends. A second process resuming the same run is refused with a
:class:`RunLeasedError` naming the holder; the lease of a holder that died expires by itself
(at once when the holder was a process of this host that no longer exists).

A node's fingerprint is its :attr:`Node.content_hash` plus the edges into it, so a resume can
say which nodes changed, were added or were removed since the run started. Module names that
depend on how a file was started (``__main__`` under ``python flows.py``, the name
``dagwright run flows.py:flow`` imports it under) are read as the file's own module name first,
so either way of starting a flow resumes a run of the other.

The database files (and their ``-wal`` and ``-shm`` companions) are created readable by their
owner only (0600): they hold a run's inputs and outputs. The helpers that do this
(:func:`connect_private`, :func:`prepare_database`) also serve the agents' memory and the
result cache: several processes may create one database at the same moment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import socket
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dagwright.compiler.ir import INPUT_KIND, SCHEMA_VERSION, Graph, Node, thaw_json
from dagwright.compiler.redact import is_secret_key

__all__ = [
    "NOT_STORED",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointStore",
    "GraphChanges",
    "RunLeasedError",
    "StoredRun",
    "connect_private",
    "create_private_file",
    "prepare_database",
]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    graph_hash TEXT NOT NULL,
    node_hashes TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL,
    graph_hash TEXT NOT NULL,
    node_id TEXT NOT NULL,
    node_hash TEXT NOT NULL,
    outputs TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (run_id, graph_hash, node_id)
)""",
    # Tables of their own rather than new columns of ``runs``: an older dagwright still inserts its
    # eight-column rows into a database this version created.
    """CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS run_graphs (
    run_id TEXT PRIMARY KEY,
    portable_hash TEXT NOT NULL
)""",
)

BUSY_TIMEOUT = 30.0
"""Seconds a connection waits for another process's lock before giving up."""

NOT_STORED: dict[str, str] = {"$dagwright": "secret input, not stored: give it again to resume"}
"""What the checkpoint holds in place of a secret-named flow input."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unknown run, unreadable database, inputs that are not JSON."""


class CheckpointMismatchError(CheckpointError):
    """A resume against a graph that changed since the run started; ``changes`` says how."""

    def __init__(self, message: str, changes: GraphChanges) -> None:
        super().__init__(message)
        self.changes = changes


class RunLeasedError(CheckpointError):
    """The run is held by another live process (``holder``, ``host:pid``) until ``expires_at`` (epoch seconds)."""

    def __init__(self, message: str, holder: str, expires_at: float) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


@dataclass(frozen=True, slots=True)
class GraphChanges:
    """Node ids that differ between the graph a run started with and the current one."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        """``changed: a, b; added: c; removed: d`` (only the parts that apply)."""
        parts = [
            f"{label}: {', '.join(ids)}"
            for label, ids in (("changed", self.changed), ("added", self.added), ("removed", self.removed))
            if ids
        ]
        return "; ".join(parts) or "nothing"


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run's row: what it was started with (a secret input is :data:`NOT_STORED` unless given again)."""

    run_id: str
    flow: str
    graph_hash: str
    node_hashes: dict[str, str]
    inputs: dict[str, Any]
    status: str
    finished_nodes: int


# ----------------------------------------------------------------------------- private SQLite files


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty, readable and writable by its owner only, unless something is there already.

    True when this call created it. A path that cannot be created is left to the caller's own open,
    which says why in its words (a missing directory, a directory in the way).
    """
    try:
        # O_EXCL: of several processes creating it at once, exactly one creates it, and none truncates it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


def connect_private(
    path: str | os.PathLike[str],
    *,
    timeout: float = BUSY_TIMEOUT,
    check_same_thread: bool = True,
    isolation_level: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None = "DEFERRED",
) -> sqlite3.Connection:
    """``sqlite3.connect(path)``, the file created 0600 first when it is new.

    SQLite gives the ``-wal`` and ``-shm`` files it creates the mode of the database file, so they
    are 0600 too (:func:`prepare_database` makes sure of it); an existing file keeps its mode.
    """
    name = os.fspath(path)
    if name and name != ":memory:":
        create_private_file(name)
    return sqlite3.connect(name, timeout=timeout, check_same_thread=check_same_thread, isolation_level=isolation_level)


def is_busy(exc: sqlite3.Error) -> bool:
    """Is ``exc`` another connection's lock (SQLITE_BUSY or SQLITE_LOCKED)?"""
    name = getattr(exc, "sqlite_errorname", "")  # Python 3.11+
    if name:
        return str(name).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def prepare_database(db: sqlite3.Connection, schema: Sequence[str], *, timeout: float = BUSY_TIMEOUT) -> None:
    """WAL mode, then ``schema`` (``CREATE ... IF NOT EXISTS`` statements) in one ``BEGIN IMMEDIATE``
    transaction, retried while other processes hold the lock, for at most ``timeout`` seconds.

    Several processes creating one new database at once each switch it to WAL mode and create its
    tables; SQLite answers some of them "database is locked" at once, without waiting (switching the
    journal mode, or upgrading a read lock, while another connection does the same), so waiting in
    SQLite's busy handler is not enough: the whole step is tried again.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchall()
            db.execute("BEGIN IMMEDIATE")  # the write lock now, not midway (a deadlock SQLite does not wait out)
            try:
                for statement in schema:
                    db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            break
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        # Jittered, growing pauses: processes that collided once do not collide again in step.
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.1)
    _private_companions(db)


def _private_companions(db: sqlite3.Connection) -> None:
    """Give the -wal and -shm files the database file's mode when the database file is private."""
    row = db.execute("PRAGMA database_list").fetchone()
    name = str(row[2]) if row is not None and row[2] else ""
    if not name:
        return  # in memory, or a temporary database
    with contextlib.suppress(OSError):
        if os.stat(name).st_mode & 0o077:
            return  # a file someone made readable by others: their choice, not ours to narrow
        for suffix in ("-wal", "-shm"):
            companion = name + suffix
            # SQLite already copies the mode; this covers a build that does not, or a leftover from before.
            if os.path.exists(companion) and os.stat(companion).st_mode & 0o077:
                os.chmod(companion, 0o600)


# ----------------------------------------------------------------------------- fingerprints

# A module name that depends on how its file was started: ``__main__`` (``python flows.py``) or the
# name ``dagwright run FILE.py`` imports a file under when its own name is taken (see cli/loader.py).
_STARTED_AS = re.compile(r"(__main__|_dagwright_target_[0-9a-f]{12}(?:_(\w+))?)(?=[:.])")


def _canonical(data: Any) -> str:
    # The same text as Graph/Node.content_hash hash, so a node without such names keeps its old fingerprint.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _file_module(name: str, stem: str | None) -> str | None:
    """The module name the file behind ``name`` has when imported by name, or None when unknown."""
    module = sys.modules.get(name)
    if name == "__main__":
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return str(spec.name)  # python -m pkg.flows
    if stem:
        return stem
    file = getattr(module, "__file__", None)
    return os.path.splitext(os.path.basename(str(file)))[0] if file else None


def _portable(value: Any, memo: dict[str, str | None]) -> Any:
    """``value`` with every ``module:name`` / ``module.Name`` of a started-as module name read as the file's."""
    if isinstance(value, str):
        match = _STARTED_AS.match(value)
        if match is None:
            return value
        name = match.group(1)
        if name not in memo:
            memo[name] = _file_module(name, match.group(2))
        stable = memo[name]
        return value if stable is None else stable + value[match.end(1) :]
    if isinstance(value, dict):
        return {k: _portable(v, memo) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, memo) for v in value]
    return value


def _node_hash(node: Node, memo: dict[str, str | None]) -> str:
    """:attr:`Node.content_hash`, with started-as module names read as the file's own module name."""
    data = node.to_dict(locations=False)
    text = _canonical(data)
    if "__main__" in text or "_dagwright_target_" in text:
        text = _canonical(_portable(data, memo))
    return _sha256(text)


# Fingerprints by graph identity, for as long as the graph lives: a graph never changes, and a flow run many
# times with a checkpoint would otherwise hash every node again for every run (~45 µs a node).
_FINGERPRINTS: dict[int, tuple[weakref.ref[Graph], dict[str, str]]] = {}


def node_fingerprints(graph: Graph) -> dict[str, str]:
    """Node id -> hash of the node's content and of the edges feeding it (in port order).

    The same whether the flow's file was run as a script or imported (see the module docstring).
    """
    key = id(graph)
    known = _FINGERPRINTS.get(key)
    if known is not None and known[0]() is graph:
        return dict(known[1])
    out = _fingerprints(graph)

    def forget(gone: weakref.ref[Graph]) -> None:
        if _FINGERPRINTS.get(key, (None,))[0] is gone:
            del _FINGERPRINTS[key]

    _FINGERPRINTS[key] = (weakref.ref(graph, forget), out)
    return dict(out)


def _fingerprints(graph: Graph) -> dict[str, str]:
    incoming: dict[str, list[str]] = {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, []).append(f"{edge.source}.{edge.source_port}->{edge.target_port}")
    memo: dict[str, str | None] = {}
    out: dict[str, str] = {}
    for node in graph.nodes:
        text = _node_hash(node, memo) + "\n" + "\n".join(incoming.get(node.id, ()))
        out[node.id] = hashlib.sha256(text.encode()).hexdigest()
    return out


def portable_graph_hash(graph: Graph, fingerprints: Mapping[str, str]) -> str:
    """The graph's content hash as :func:`node_fingerprints` sees its nodes: the same for a flow run as
    a script and imported, different when anything else differs (a node, an edge, the name, the description)."""
    head = {"schema_version": SCHEMA_VERSION, "name": graph.name, "metadata": thaw_json(graph.metadata)}
    return _sha256(_canonical({"graph": _portable(head, {}), "nodes": dict(fingerprints)}))


def diff_fingerprints(old: Mapping[str, str], new: Mapping[str, str]) -> GraphChanges:
    """What changed from ``old`` to ``new`` (node id -> fingerprint), ids sorted."""
    return GraphChanges(
        added=tuple(sorted(k for k in new if k not in old)),
        removed=tuple(sorted(k for k in old if k not in new)),
        changed=tuple(sorted(k for k in new if k in old and old[k] != new[k])),
    )


def restorable(graph: Graph, stored: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored outputs a resume reuses, by node id: every back end restores exactly these.

    A node's stored outputs stand only when they name outputs the node has and every node
    feeding it is restored too (or is a flow input): a node that ran on a default because its
    upstream failed (``continue`` mode) must see the value that upstream produces now.
    """
    restored: dict[str, dict[str, Any]] = {}
    if not stored:
        return restored
    for node_id in graph.topological_order():
        outputs = stored.get(node_id)
        if outputs is None:
            continue
        node = graph.node(node_id)
        if not {p.name for p in node.outputs}.issuperset(outputs):
            continue
        if all(p in restored or graph.node(p).kind == INPUT_KIND for p in graph.predecessors(node_id)):
            restored[node_id] = dict(outputs)
    return restored


def descendants(graph: Graph, roots: Iterable[str]) -> set[str]:
    """``roots`` and every node reachable from them."""
    children: dict[str, set[str]] = {}
    for edge in graph.edges:
        children.setdefault(edge.source, set()).add(edge.target)
    seen: set[str] = set()
    stack = [r for r in roots]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(children.get(node, ()))
    return seen


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    # Exact types only: a str subclass, a tuple or a float NaN would come back different from JSON.
    if depth > 200:
        return False
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_is_plain_json(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def to_json(value: Any) -> str | None:
    """``value`` as JSON text when it round-trips exactly, else None."""
    if not _is_plain_json(value):
        return None
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


# ----------------------------------------------------------------------------- leases


def _holder() -> str:
    # Read each time, not once: a forked child is another holder.
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_alive(holder: str) -> bool:
    """False only for a process of this host that no longer exists: elsewhere, only the expiry tells."""
    host, _, pid = holder.rpartition(":")
    if os.name != "posix" or host != socket.gethostname() or not pid.isdigit():
        return True  # (on Windows, os.kill(pid, 0) would end the process)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, under another user
    return True


def _renew_leases(ref: weakref.ReferenceType[CheckpointStore], stop: threading.Event, every: float) -> None:
    """The renewal thread of a store: a weak reference, so a store dropped without close() still goes."""
    while not stop.wait(every):
        store = ref()
        if store is None or not store._renew():
            return
        del store


class CheckpointStore:
    """A SQLite checkpoint database (created on first use, 0600). Safe to share between threads.

    ``CheckpointStore("runs.db")`` or ``CheckpointStore(":memory:")``; use it as a context
    manager or call :meth:`close`. ``lease_seconds``: how long a run's lease outlives a holder
    that stopped renewing it (it is renewed every third of that while the run goes on);
    ``busy_timeout``: how long to wait for another process's lock on the database.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, lease_seconds: float = 30.0, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        self.path = os.fspath(path)
        self.lease_seconds = float(lease_seconds)
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.Lock()
        # Set by the flow front ends for a store they opened from a path, so they close it after the run.
        self.close_after_run = False
        # This store's leases: a store may take its own run's lease again (a resume after a failed attempt).
        self._token = uuid.uuid4().hex
        self._held: set[str] = set()
        self._closed = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), one per write.
            self._db = connect_private(
                self.path, timeout=self.busy_timeout, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise CheckpointError(self._open_problem(exc)) from None
        try:
            prepare_database(self._db, _SCHEMA, timeout=self.busy_timeout)
            # NORMAL in WAL mode: a commit survives a killed process (not a power cut) without an fsync per node.
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            self._db.close()
            raise CheckpointError(self._open_problem(exc)) from None

    def _open_problem(self, exc: sqlite3.Error) -> str:
        if is_busy(exc):
            return (
                f"checkpoint {self.path!r}: the database stayed locked by another process for {self.busy_timeout:g} s "
                f"({exc}); try again when that process is done"
            )
        return f"checkpoint {self.path!r}: cannot open it as a SQLite database: {exc}"

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointStore({self.path!r})"

    def close(self) -> None:
        """Give back the leases this store holds and close the database (a second call does nothing)."""
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._held:
                # Best effort: a lease that cannot be deleted now expires by itself.
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("DELETE FROM leases WHERE token = ?", (self._token,))
                self._held.clear()
            self._db.close()

    # ---- writing

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _storable_inputs(self, inputs: Mapping[str, Any]) -> str:
        """The run's inputs as stored: JSON, with :data:`NOT_STORED` for every secret-named one."""
        stored: dict[str, Any] = {}
        for name, value in inputs.items():
            if is_secret_key(name):
                # The audit log's rule (it writes these as "<redacted>"): a secret never reaches the disk.
                stored[name] = dict(NOT_STORED)
                continue
            if to_json(value) is None:
                raise CheckpointError(
                    f"checkpoint {self.path!r}: flow input {name!r} is a {type(value).__name__}, which is not "
                    "plain JSON, so the run could not be resumed; pass JSON values (str, int, float, bool, "
                    "None, list, dict) or run without a checkpoint"
                )
            stored[name] = value
        text = to_json(stored)
        assert text is not None  # every value was checked above
        return text

    def begin_run(self, run_id: str, graph: Graph, inputs: Mapping[str, Any]) -> None:
        """Record a new run (its flow, graph hash, node fingerprints and inputs, which must be JSON apart
        from secret-named ones, which are not stored) and take its lease until :meth:`finish_run`."""
        text = self._storable_inputs(inputs)
        fingerprints = node_fingerprints(graph)
        now = time.time()
        with self._transaction() as db:
            # In the transaction: of two processes starting one run id at once, the second is told.
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None:
                raise CheckpointError(
                    f"checkpoint {self.path!r} already holds run {run_id!r}; resume it with "
                    f"flow.resume({run_id!r}, checkpoint=...) or choose another run_id"
                )
            self._claim(db, run_id, now)
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                (run_id, graph.name, graph.content_hash, json.dumps(fingerprints, sort_keys=True), text, now, now),
            )
            db.execute(
                "INSERT OR REPLACE INTO run_graphs VALUES (?, ?)", (run_id, portable_graph_hash(graph, fingerprints))
            )
        self._holding(run_id)

    def save_node(self, run_id: str, graph_hash: str, node_id: str, node_hash: str, outputs: Any) -> bool:
        """Store one finished node's outputs in its own transaction; False (nothing stored) when
        the outputs are not plain JSON. A run whose lease this store lost is refused."""
        text = to_json(outputs)
        if text is None:
            return False
        with self._transaction() as db:
            if run_id in self._held:
                self._check_lease(db, run_id)
            db.execute(
                "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, graph_hash, node_id, node_hash, text, time.time()),
            )
        return True

    def finish_run(self, run_id: str, status: str) -> None:
        """Set the run's status (``succeeded``, ``failed``, ``cancelled``) and give back its lease."""
        with self._transaction() as db:
            if run_id in self._held and not self._owns(db, run_id):
                # Another process took the run over (this one stopped renewing): the status is its to set.
                pass
            else:
                db.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, time.time(), run_id))
                db.execute("DELETE FROM leases WHERE run_id = ? AND token = ?", (run_id, self._token))
            self._held.discard(run_id)

    # ---- leases

    def take_lease(self, run_id: str) -> None:
        """Hold run ``run_id`` until :meth:`finish_run`, :meth:`release_lease` or :meth:`close`;
        :class:`RunLeasedError` when another live process holds it."""
        with self._transaction() as db:
            self._claim(db, run_id, time.time())
        self._holding(run_id)

    def release_lease(self, run_id: str) -> None:
        """Give back the run's lease, when this store holds it."""
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE run_id = ? AND token = ?", (run_id, self._token))
            self._held.discard(run_id)

    def _claim(self, db: sqlite3.Connection, run_id: str, now: float) -> None:
        row = db.execute("SELECT holder, token, expires_at FROM leases WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            holder, token, expires_at = str(row[0]), str(row[1]), float(row[2])
            if token != self._token and expires_at > now and _holder_alive(holder):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expires_at))
                raise RunLeasedError(
                    f"run {run_id!r} in checkpoint {self.path!r} is being run by {holder}, whose lease on it "
                    f"expires at {when} (in {math.ceil(expires_at - now)} s) unless that process renews it; "
                    "running it here too would run its remaining nodes twice. Wait for that run to end or "
                    "stop it (the lease of a process that is gone expires by itself), then resume",
                    holder,
                    expires_at,
                )
        db.execute(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
            (run_id, _holder(), self._token, now + self.lease_seconds),
        )

    def _owns(self, db: sqlite3.Connection, run_id: str) -> bool:
        row = db.execute("SELECT token FROM leases WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row[0] == self._token

    def _check_lease(self, db: sqlite3.Connection, run_id: str) -> None:
        if self._owns(db, run_id):
            return
        row = db.execute("SELECT holder FROM leases WHERE run_id = ?", (run_id,)).fetchone()
        by = f" to {row[0]}" if row is not None else ""
        raise CheckpointError(
            f"checkpoint {self.path!r}: this process lost its lease on run {run_id!r}{by} (it was not renewed "
            f"for {self.lease_seconds:g} s, and another process resumed the run); its results are not stored"
        )

    def _holding(self, run_id: str) -> None:
        with self._lock:
            self._held.add(run_id)
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=_renew_leases,
                    args=(weakref.ref(self), self._stop, self.lease_seconds / 3),
                    name=f"dagwright-checkpoint-lease:{self.path}",
                    daemon=True,
                )
                self._renewer.start()

    def _renew(self) -> bool:
        """Push the expiry of every lease this store holds; False once the store is closed."""
        with self._lock:
            if self._closed:
                return False
            held = sorted(self._held)
        if held:
            # A database busy for longer than the wait, or closed meanwhile: the next tick tries again.
            with contextlib.suppress(sqlite3.Error), self._transaction() as db:
                until = time.time() + self.lease_seconds
                db.executemany(
                    "UPDATE leases SET expires_at = ? WHERE run_id = ? AND token = ?",
                    [(until, run_id, self._token) for run_id in held],
                )
        return True

    # ---- reading

    def find_run(self, run_id: str) -> StoredRun | None:
        """The stored run, or None when there is none with that id."""
        with self._lock:
            row = self._db.execute(
                "SELECT run_id, flow, graph_hash, node_hashes, inputs, status FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return None
            count = self._db.execute(
                "SELECT COUNT(*) FROM nodes WHERE run_id = ? AND graph_hash = ?", (run_id, row[2])
            ).fetchone()[0]
        try:
            hashes = json.loads(row[3])
            inputs = json.loads(row[4])
        except (json.JSONDecodeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {self.path!r}: run {run_id!r} is damaged: {exc}") from None
        if not isinstance(hashes, dict) or not isinstance(inputs, dict):
            raise CheckpointError(f"checkpoint {self.path!r}: run {run_id!r} is damaged: not a JSON object")
        return StoredRun(row[0], row[1], row[2], hashes, inputs, row[5], count)

    def run(self, run_id: str) -> StoredRun:
        """The stored run; :class:`CheckpointError` naming the run ids it holds when there is none."""
        found = self.find_run(run_id)
        if found is None:
            with self._lock:
                ids = [r[0] for r in self._db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 5")]
            held = f"; recent runs: {', '.join(ids)}" if ids else "; it holds no runs"
            raise CheckpointError(f"checkpoint {self.path!r} has no run {run_id!r}{held}")
        return found

    def node_outputs(self, run_id: str, graph_hash: str) -> dict[str, dict[str, Any]]:
        """Node id -> stored outputs of every finished node of the run under ``graph_hash``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT node_id, outputs FROM nodes WHERE run_id = ? AND graph_hash = ?", (run_id, graph_hash)
            ).fetchall()
        out: dict[str, dict[str, Any]] = {}
        for node_id, text in rows:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue  # a damaged row: the node simply runs again
            if isinstance(value, dict):
                out[node_id] = value
        return out

    def finished_nodes(self, run_id: str) -> list[str]:
        """Ids of the run's stored nodes, in the order they finished."""
        with self._lock:
            rows = self._db.execute(
                "SELECT n.node_id FROM nodes n JOIN runs r ON r.run_id = n.run_id AND r.graph_hash = n.graph_hash "
                "WHERE n.run_id = ? ORDER BY n.finished_at, n.rowid",
                (run_id,),
            ).fetchall()
        return [r[0] for r in rows]

    # ---- resuming

    def prepare_resume(
        self, run_id: str, graph: Graph, *, rerun_changed: bool = False, inputs: Mapping[str, Any] | None = None
    ) -> StoredRun:
        """Take the run's lease and check that ``graph`` is the one the run started with, or
        (``rerun_changed``) move the run onto it, keeping only outputs of nodes that neither changed
        nor depend on a change. Returns the run, its ``inputs`` ready for the resume.

        ``inputs`` gives the run's secret-named inputs again (the checkpoint does not store them);
        a run that had some cannot resume without them. The lease is held until :meth:`finish_run`
        (the run's end), :meth:`release_lease` or :meth:`close`; :class:`RunLeasedError` when
        another process holds it.
        """
        values = self._resume_inputs(self.run(run_id), inputs or {})
        self.take_lease(run_id)
        try:
            stored = self._onto(run_id, graph, rerun_changed)
        except BaseException:
            self.release_lease(run_id)
            raise
        return dataclasses.replace(stored, inputs=values)

    def _resume_inputs(self, stored: StoredRun, given: Mapping[str, Any]) -> dict[str, Any]:
        """The stored inputs with the secret ones given again; an error naming those missing."""
        secret = [name for name in stored.inputs if is_secret_key(name)]
        where = f"run {stored.run_id!r} in checkpoint {self.path!r}"
        extra = sorted(set(given) - set(secret))
        if extra:
            allowed = f"only its secret inputs ({_names(secret)})" if secret else "no input (it has no secret one)"
            raise CheckpointError(
                f"{where}: {_names(extra)} cannot be given to a resume: the run's inputs are stored with it, and "
                f"{allowed} may be given again"
            )
        missing = [name for name in secret if name not in given and stored.inputs[name] == NOT_STORED]
        if missing:
            example = ", ".join(f"{name!r}: ..." for name in missing)
            flags = " ".join(f"--input {name}=..." for name in missing)
            raise CheckpointError(
                f"{where} was started with the secret input(s) {_names(missing)}, which the checkpoint does not "
                f"store; give them again: flow.resume({stored.run_id!r}, checkpoint=..., inputs={{{example}}}), "
                f"or dagwright run ... --resume {stored.run_id} --checkpoint ... {flags}"
            )
        return {**stored.inputs, **given}

    def _onto(self, run_id: str, graph: Graph, rerun_changed: bool) -> StoredRun:
        """The run, on ``graph``: as it is, moved onto it (the same flow started another way, or
        ``rerun_changed``), or a :class:`CheckpointMismatchError`."""
        stored = self.run(run_id)
        if stored.graph_hash == graph.content_hash:
            return stored
        current = node_fingerprints(graph)
        changes = diff_fingerprints(stored.node_hashes, current)
        with self._lock:
            row = self._db.execute("SELECT portable_hash FROM run_graphs WHERE run_id = ?", (run_id,)).fetchone()
        if not changes and row is not None and row[0] == portable_graph_hash(graph, current):
            # The same flow, started another way (`python flows.py`, then `dagwright run flows.py:flow`):
            # only module names in the content hash differ. Every stored output stands.
            self._move(stored, graph, current, list(current))
            return self.run(run_id)
        if not rerun_changed:
            what = changes.describe() if changes else "its description (nodes are the same)"
            raise CheckpointMismatchError(
                f"run {run_id!r} in checkpoint {self.path!r} was started with a different version of flow "
                f"{stored.flow!r}: {what}. Resume with rerun_changed=True (dagwright run ... --rerun-changed) "
                "to re-run the changed nodes and everything downstream of them",
                changes,
            )
        stale = descendants(graph, [*changes.changed, *changes.added])
        kept = [n for n in self.node_outputs(run_id, stored.graph_hash) if n in current and n not in stale]
        self._move(stored, graph, current, kept)
        return self.run(run_id)

    def _move(self, stored: StoredRun, graph: Graph, current: Mapping[str, str], kept: Sequence[str]) -> None:
        """Move the run onto ``graph``, keeping the stored outputs of the ``kept`` nodes only."""
        run_id, new_hash = stored.run_id, graph.content_hash
        with self._transaction() as db:
            db.execute("DELETE FROM nodes WHERE run_id = ? AND graph_hash = ?", (run_id, new_hash))
            for node_id in kept:
                db.execute(
                    "UPDATE nodes SET graph_hash = ?, node_hash = ? WHERE run_id = ? AND graph_hash = ? "
                    "AND node_id = ?",
                    (new_hash, current[node_id], run_id, stored.graph_hash, node_id),
                )
            db.execute("DELETE FROM nodes WHERE run_id = ? AND graph_hash != ?", (run_id, new_hash))
            db.execute(
                "UPDATE runs SET graph_hash = ?, node_hashes = ?, flow = ?, updated_at = ? WHERE run_id = ?",
                (new_hash, json.dumps(dict(current), sort_keys=True), graph.name, time.time(), run_id),
            )
            db.execute("INSERT OR REPLACE INTO run_graphs VALUES (?, ?)", (run_id, portable_graph_hash(graph, current)))
