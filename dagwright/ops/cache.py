"""Result caching: an agent's or a node's outputs reused for the same request, without an LLM call.

Opt-in: ``agent.enable_cache(backend="memory")`` or ``backend="sqlite", path="cache.db"``, and
``flow.configure(node_id, cache=True)`` (or a :class:`ResultCache`) for one node of a flow.
The key is a SHA-256 over everything that decides the reply: the model, the full prompt
messages (system prompt, instructions, memory turns, rendered inputs), the response format
and the input values; for a flow node, the node's content (kind, config, ports) and its inputs.
Only outputs that were produced and validated are stored; a failed or invalid result never is.
Entries are JSON, so a hit returns a fresh copy that the caller may change freely.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from dagwright.compiler.ir import Node
from dagwright.execution._recent import Recent
from dagwright.execution.executor import Executor, NodeContext
from dagwright.ops.checkpoint import connect_private, prepare_database

__all__ = ["MemoryCache", "ResultCache", "SqliteCache", "cache_key", "cached_executor", "make_cache"]


def cache_key(**parts: Any) -> str:
    """A SHA-256 over canonical JSON of ``parts`` (values that are not JSON count by their ``str``)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(outputs: dict[str, Any]) -> str | None:
    """Outputs as JSON, or None when they do not survive a JSON round trip unchanged (not cacheable)."""
    try:
        text = json.dumps(outputs, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return None
    return text if json.loads(text) == outputs else None


class ResultCache(abc.ABC):
    """The cache interface, with hit and miss counts. Thread-safe.

    A storage of its own subclasses this and implements ``_load``, ``_store``,
    ``_clear`` and ``_size`` over JSON text keyed by strings (see :class:`MemoryCache`).
    """

    backend = "abstract"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stored = 0

    def get(self, key: str) -> dict[str, Any] | None:
        """The outputs stored under ``key`` (counted as a hit), or None (a miss)."""
        text = self._load(key)
        with self._lock:
            if text is None:
                self.misses += 1
                return None
            self.hits += 1
        value: dict[str, Any] = json.loads(text)
        return value

    def put(self, key: str, outputs: dict[str, Any]) -> bool:
        """Store outputs; False (and nothing stored) when they are not plain JSON."""
        text = _encode(outputs)
        if text is None:
            return False
        self._store(key, text)
        with self._lock:
            self.stored += 1
        return True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"backend": self.backend, "hits": self.hits, "misses": self.misses, "stored": self.stored}

    def clear(self) -> None:
        """Drop every entry and reset the counts."""
        self._clear()
        with self._lock:
            self.hits = self.misses = self.stored = 0

    def __len__(self) -> int:
        return self._size()

    @abc.abstractmethod
    def _load(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def _store(self, key: str, text: str) -> None: ...

    @abc.abstractmethod
    def _clear(self) -> None: ...

    @abc.abstractmethod
    def _size(self) -> int: ...


class MemoryCache(ResultCache):
    """In process memory, least recently used entries dropped beyond ``max_entries``."""

    backend = "memory"

    def __init__(self, max_entries: int = 10_000) -> None:
        super().__init__()
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: Recent[str, str] = Recent(max_entries)

    def _load(self, key: str) -> str | None:
        return self._entries.get(key)

    def _store(self, key: str, text: str) -> None:
        self._entries.put(key, text)

    def _clear(self) -> None:
        self._entries.clear()

    def _size(self) -> int:
        return len(self._entries)


class SqliteCache(ResultCache):
    """In a SQLite file (WAL mode), shared by processes and kept across restarts."""

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            db = self._connect()
            try:
                # WAL and the table in a retried BEGIN IMMEDIATE: several processes may create the file at once.
                prepare_database(
                    db, ("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, outputs TEXT NOT NULL)",)
                )
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise ValueError(f"cannot use {str(self.path)!r} as a result cache: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        # Created 0600 (and so its -wal and -shm): cached outputs are as private as the runs that made them.
        return connect_private(self.path)

    def _load(self, key: str) -> str | None:
        db = self._connect()
        try:
            row = db.execute("SELECT outputs FROM results WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
        return str(row[0]) if row is not None else None

    def _store(self, key: str, text: str) -> None:
        db = self._connect()
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO results (key, outputs) VALUES (?, ?)", (key, text))
        finally:
            db.close()

    def _clear(self) -> None:
        db = self._connect()
        try:
            with db:
                db.execute("DELETE FROM results")
        finally:
            db.close()

    def _size(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            db.close()


def make_cache(cache: object, *, path: str | os.PathLike[str] | None = None, owner: str = "cache") -> ResultCache:
    """A cache from ``True``/``"memory"``, ``"sqlite"`` (with ``path``) or a :class:`ResultCache`."""
    if isinstance(cache, ResultCache):
        return cache
    if cache is True or cache == "memory":
        return MemoryCache()
    if cache == "sqlite":
        if not path:
            raise ValueError(f"{owner}: a sqlite cache needs path='cache.db'")
        return SqliteCache(path)
    raise ValueError(f"{owner}: unknown cache {cache!r}; choose 'memory', 'sqlite' (with path=...) or a ResultCache")


_WITH_CALLS = "__dagwright_node_entry__"
"""Marks a node's cache entry that keeps the tool calls which produced its outputs (plain entries are the
outputs themselves)."""


def cached_executor(executor: Executor, node: Node, cache: ResultCache) -> Executor:
    """``executor`` answering from ``cache`` for inputs it has already answered (a flow node's cache).

    An agent node's entry keeps the tool calls that produced its outputs: a hit puts them back in the node's
    record, each marked ``cached`` (made then, not now)."""
    node_key = node.content_hash
    outputs_allowed = frozenset(p.name for p in node.outputs)

    async def run(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        key = cache_key(node=node_key, inputs=inputs)
        hit = cache.get(key)
        if hit is not None:
            if _WITH_CALLS not in hit:
                return hit
            ctx.record.tool_calls = [{**call, "cached": True} for call in hit.get("tool_calls") or ()]
            outputs_hit: dict[str, Any] = hit["outputs"]
            return outputs_hit
        outputs = await executor(inputs, ctx)
        # Only a result the scheduler will accept is stored: a dict of this node's own outputs.
        if type(outputs) is dict and outputs_allowed.issuperset(outputs):
            calls = ctx.record.tool_calls
            if calls:
                # The calls as JSON (a value without a JSON form by its text), so that the entry can be stored.
                kept = json.loads(json.dumps(calls, default=str))
                if cache.put(key, {_WITH_CALLS: 1, "outputs": outputs, "tool_calls": kept}):
                    return outputs
            cache.put(key, outputs)
        return outputs

    return run
