"""The collector's local spool: messages kept on disk while the database is unreachable.

A message may be acknowledged to the broker once it is durable, and while the database
cannot take it, durable means here: one SQLite file (WAL, synchronous=FULL) in the
data_dir. Messages are replayed to the database oldest first when it answers again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spooled (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    n       INTEGER NOT NULL  -- values in the message
)
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    topic: str
    payload: bytes
    values: int


class SpoolError(Exception):
    """The spool file cannot be written: nothing may be acknowledged."""


class Spool:
    """Used from one thread at a time (the collector's event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
            (self._depth,) = self._conn.execute("SELECT COUNT(*) FROM spooled").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open the spool {path}: {exc}") from exc

    @property
    def depth(self) -> int:
        """Messages waiting for the database."""
        return int(self._depth)

    def append(self, messages: Sequence[tuple[str, bytes, int]]) -> None:
        """Keep (topic, payload, values) messages durably, in this order, in one commit."""
        if not messages:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO spooled (topic, payload, n) VALUES (?, ?, ?)", messages
            )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise SpoolError(f"cannot write to the spool {self.path}: {exc}") from exc
        self._depth += len(messages)

    def oldest(self, max_values: int) -> list[Spooled]:
        """The oldest messages, as many as fit in `max_values` (at least one)."""
        taken: list[Spooled] = []
        total = 0
        cursor = self._conn.execute("SELECT id, topic, payload, n FROM spooled ORDER BY id")
        for ident, topic, payload, values in cursor:
            if taken and total + values > max_values:
                break
            taken.append(Spooled(ident, topic, bytes(payload), values))
            total += values
        cursor.close()
        return taken

    def remove_through(self, last_id: int) -> None:
        """The database has these: forget every message up to and including `last_id`."""
        try:
            removed = self._conn.execute("DELETE FROM spooled WHERE id <= ?", (last_id,)).rowcount
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write to the spool {self.path}: {exc}") from exc
        self._depth -= removed

    def close(self) -> None:
        self._conn.close()
