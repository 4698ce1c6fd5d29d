"""Session memory: earlier turns of a conversation, sent back to the model.

Turns are kept per ``session_id`` and never cross sessions. ``BufferMemory``
lives in the process; ``SqliteMemory`` survives a restart (one row per turn,
WAL mode, each write its own transaction); both recall the most recent turns.
``RelevanceMemory`` (``enable_memory(provider="vector_db")``) recalls the turns
most relevant to the new request instead: it ranks every turn of the session by
BM25 over words (no embedding model, nothing downloaded), ties going to the more
recent, and sends the best ``max_turns`` back in the order they happened.
"""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from dagwright.ops.checkpoint import BUSY_TIMEOUT, connect_private, is_busy, prepare_database

__all__ = ["MEMORY_PROVIDERS", "BufferMemory", "Memory", "RelevanceMemory", "SqliteMemory", "Turn", "make_memory"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: what was asked (the rendered user message) and what the model replied."""

    user: str
    assistant: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]


class Memory(Protocol):
    """Where an agent's sessions are kept."""

    async def recent(self, session_id: str, max_turns: int) -> list[Turn]: ...

    async def recall(self, session_id: str, query: str, max_turns: int) -> list[Turn]:
        """The turns to send back with a request reading ``query`` (at most ``max_turns``, in order)."""
        ...

    async def append(self, session_id: str, turn: Turn) -> None: ...


class BufferMemory:
    """In-process memory; keeps at most ``capacity`` turns per session."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._sessions: dict[str, deque[Turn]] = {}

    async def recent(self, session_id: str, max_turns: int) -> list[Turn]:
        turns = self._sessions.get(session_id)
        if not turns or max_turns <= 0:
            return []
        return list(turns)[-max_turns:]

    async def recall(self, session_id: str, query: str, max_turns: int) -> list[Turn]:
        return await self.recent(session_id, max_turns)

    async def append(self, session_id: str, turn: Turn) -> None:
        self._sessions.setdefault(session_id, deque(maxlen=self.capacity)).append(turn)

    def sessions(self) -> list[str]:
        return list(self._sessions)


_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


class RelevanceMemory(BufferMemory):
    """In-process memory that recalls the turns most relevant to a request (BM25 over words; see above)."""

    K1 = 1.5
    B = 0.75

    async def recall(self, session_id: str, query: str, max_turns: int) -> list[Turn]:
        turns = list(self._sessions.get(session_id, ()))
        if not turns or max_turns <= 0:
            return []
        if len(turns) <= max_turns:
            return turns
        scores = bm25(query, [f"{t.user} {t.assistant}" for t in turns], self.K1, self.B)
        # Best first, the later turn first among equals; then back into the order they happened.
        best = sorted(range(len(turns)), key=lambda i: (-scores[i], -i))[:max_turns]
        return [turns[i] for i in sorted(best)]


def bm25(query: str, documents: list[str], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """The Okapi BM25 score of each document for ``query`` (words compared case-insensitively)."""
    docs = [_words(d) for d in documents]
    if not docs:
        return []
    average = sum(len(d) for d in docs) / len(docs) or 1.0
    frequency: dict[str, int] = {}
    for d in docs:
        for word in set(d):
            frequency[word] = frequency.get(word, 0) + 1
    terms = set(_words(query))
    scores = []
    for d in docs:
        counts: dict[str, int] = {}
        for word in d:
            if word in terms:
                counts[word] = counts.get(word, 0) + 1
        score = 0.0
        for word, tf in counts.items():
            idf = math.log(1.0 + (len(docs) - frequency[word] + 0.5) / (frequency[word] + 0.5))
            score += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len(d) / average))
        scores.append(score)
    return scores


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dagwright_turns ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,"
    " user TEXT NOT NULL, assistant TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dagwright_turns_session ON dagwright_turns (session_id, id)",
)


class SqliteMemory:
    """Memory in a SQLite file, shared by every agent that points at it.

    The file (and its ``-wal`` and ``-shm``) is created readable by its owner only: it holds
    conversations. Several processes may create it at the same moment.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        db = self._connect()
        try:
            prepare_database(db, _SCHEMA, timeout=BUSY_TIMEOUT)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise OSError(
                    f"the memory database {self.path!r} stayed locked by another process for {BUSY_TIMEOUT:g} s: {exc}"
                ) from None
            raise OSError(f"cannot open the memory database {self.path!r}: {exc}") from None
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            # Private even when the file is made here, after __init__ (someone deleted it meanwhile).
            return connect_private(self.path, timeout=BUSY_TIMEOUT)
        except sqlite3.Error as exc:
            raise OSError(f"cannot open the memory database {self.path!r}: {exc}") from None

    def _recent(self, session_id: str, max_turns: int) -> list[Turn]:
        with self._lock, self._connect() as db:
            rows = db.execute(
                "SELECT user, assistant FROM dagwright_turns WHERE session_id = ? ORDER BY id DESC LIMIT ?",
                (session_id, max_turns),
            ).fetchall()
        return [Turn(u, a) for u, a in reversed(rows)]

    def _append(self, session_id: str, turn: Turn) -> None:
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO dagwright_turns (session_id, user, assistant, created) VALUES (?, ?, ?, ?)",
                (session_id, turn.user, turn.assistant, time.time()),
            )

    async def recent(self, session_id: str, max_turns: int) -> list[Turn]:
        if max_turns <= 0:
            return []
        return await asyncio.to_thread(self._recent, session_id, max_turns)

    async def recall(self, session_id: str, query: str, max_turns: int) -> list[Turn]:
        return await self.recent(session_id, max_turns)

    async def append(self, session_id: str, turn: Turn) -> None:
        await asyncio.to_thread(self._append, session_id, turn)


MEMORY_PROVIDERS = ("default", "buffer", "sqlite", "vector_db")
"""``enable_memory(provider=...)``: ``default`` and ``buffer`` keep recent turns in the process, ``sqlite``
in a file (``path=``), ``vector_db`` recalls the most relevant turns (:class:`RelevanceMemory`)."""


def make_memory(provider: str, path: str | None, *, owner: str) -> Memory:
    """The memory a provider name stands for; errors name the agent and the known providers."""
    if provider in ("default", "buffer"):
        return BufferMemory()
    if provider == "vector_db":
        return RelevanceMemory()
    if provider == "sqlite":
        if not path:
            raise ValueError(f"{owner}: enable_memory(provider='sqlite') needs path='memory.db'")
        return SqliteMemory(path)
    known = ", ".join(repr(p) for p in MEMORY_PROVIDERS)
    raise ValueError(f"{owner}: unknown memory provider {provider!r}; choose one of {known}")
