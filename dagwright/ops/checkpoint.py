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

A node's fingerprint is its :attr:`Node.content_hash` plus the edges into it, so a resume can
say which nodes changed, were added or were removed since the run started.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dagwright.compiler.ir import INPUT_KIND, Graph

__all__ = ["CheckpointError", "CheckpointMismatchError", "CheckpointStore", "GraphChanges", "StoredRun"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    graph_hash TEXT NOT NULL,
    node_hashes TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL,
    graph_hash TEXT NOT NULL,
    node_id TEXT NOT NULL,
    node_hash TEXT NOT NULL,
    outputs TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (run_id, graph_hash, node_id)
);
"""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unknown run, unreadable database, inputs that are not JSON."""


class CheckpointMismatchError(CheckpointError):
    """A resume against a graph that changed since the run started; ``changes`` says how."""

    def __init__(self, message: str, changes: GraphChanges) -> None:
        super().__init__(message)
        self.changes = changes


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
    """A run's row: what it was started with."""

    run_id: str
    flow: str
    graph_hash: str
    node_hashes: dict[str, str]
    inputs: dict[str, Any]
    status: str
    finished_nodes: int


def node_fingerprints(graph: Graph) -> dict[str, str]:
    """Node id -> hash of the node's content and of the edges feeding it (in port order)."""
    incoming: dict[str, list[str]] = {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, []).append(f"{edge.source}.{edge.source_port}->{edge.target_port}")
    out: dict[str, str] = {}
    for node in graph.nodes:
        text = node.content_hash + "\n" + "\n".join(incoming.get(node.id, ()))
        out[node.id] = hashlib.sha256(text.encode()).hexdigest()
    return out


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


class CheckpointStore:
    """A SQLite checkpoint database (created on first use). Safe to share between threads.

    ``CheckpointStore("runs.db")`` or ``CheckpointStore(":memory:")``; use it as a context
    manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        # Set by the flow front ends for a store they opened from a path, so they close it after the run.
        self.close_after_run = False
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), one per write.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process (not a power cut) without an fsync per node.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path!r}: cannot open it as a SQLite database: {exc}") from None

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointStore({self.path!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def begin_run(self, run_id: str, graph: Graph, inputs: Mapping[str, Any]) -> None:
        """Record a new run: its flow, graph hash, node fingerprints and inputs (which must be JSON)."""
        for name, value in inputs.items():
            if to_json(value) is None:
                raise CheckpointError(
                    f"checkpoint {self.path!r}: flow input {name!r} is a {type(value).__name__}, which is not "
                    "plain JSON, so the run could not be resumed; pass JSON values (str, int, float, bool, "
                    "None, list, dict) or run without a checkpoint"
                )
        if self.find_run(run_id) is not None:
            raise CheckpointError(
                f"checkpoint {self.path!r} already holds run {run_id!r}; resume it with "
                f"flow.resume({run_id!r}, checkpoint=...) or choose another run_id"
            )
        now = time.time()
        self._write(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
            (
                run_id,
                graph.name,
                graph.content_hash,
                json.dumps(node_fingerprints(graph), sort_keys=True),
                to_json(dict(inputs)),
                now,
                now,
            ),
        )

    def save_node(self, run_id: str, graph_hash: str, node_id: str, node_hash: str, outputs: Any) -> bool:
        """Store one finished node's outputs in its own transaction; False (nothing stored) when
        the outputs are not plain JSON."""
        text = to_json(outputs)
        if text is None:
            return False
        self._write(
            "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, graph_hash, node_id, node_hash, text, time.time()),
        )
        return True

    def finish_run(self, run_id: str, status: str) -> None:
        """Set the run's status (``succeeded``, ``failed``, ``cancelled``)."""
        self._write("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, time.time(), run_id))

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

    def prepare_resume(self, run_id: str, graph: Graph, *, rerun_changed: bool = False) -> StoredRun:
        """Check that ``graph`` is the one the run started with, or (``rerun_changed``) move the
        run onto it, keeping only outputs of nodes that neither changed nor depend on a change."""
        stored = self.run(run_id)
        if stored.graph_hash == graph.content_hash:
            return stored
        current = node_fingerprints(graph)
        changes = diff_fingerprints(stored.node_hashes, current)
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
        new_hash = graph.content_hash
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
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
                    (new_hash, json.dumps(current, sort_keys=True), graph.name, time.time(), run_id),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return self.run(run_id)
