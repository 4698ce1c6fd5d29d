"""Session memory: the last turns of a conversation, sent back to the model.

Turns are kept per ``session_id`` and never cross sessions. ``BufferMemory``
lives in the process; ``SqliteMemory`` survives a restart (one row per turn,
WAL mode, each write its own transaction).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BufferMemory", "Memory", "SqliteMemory", "Turn"]


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

    async def append(self, session_id: str, turn: Turn) -> None:
        self._sessions.setdefault(session_id, deque(maxlen=self.capacity)).append(turn)

    def sessions(self) -> list[str]:
        return list(self._sessions)


class SqliteMemory:
    """Memory in a SQLite file, shared by every agent that points at it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS dagwright_turns ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,"
                " user TEXT NOT NULL, assistant TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS dagwright_turns_session ON dagwright_turns (session_id, id)")

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self.path, timeout=30)
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

    async def append(self, session_id: str, turn: Turn) -> None:
        await asyncio.to_thread(self._append, session_id, turn)
