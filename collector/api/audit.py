"""The audit log: every write through the API, with who (the authenticated principal),
when, what and how it ended, in `data_dir/audit.sqlite`.

Append-only: a trigger refuses any UPDATE, and a DELETE of any row newer than the
retention cut-off, so only `prune` (rows older than `api.audit_days`) removes rows. That
holds the collector's own code to it; whoever can write the file can of course do
anything, so keep data_dir the service user's.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from collector.accounting.db import from_ms, ms
from collector.api.principals import Principal

FILE_NAME: Final = "audit.sqlite"
MAX_DETAIL: Final = 4096
"""Characters of a request body kept: enough for any valid write, bounded for the rest."""
PRUNE_EVERY: Final = timedelta(hours=1)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    via TEXT NOT NULL,
    action TEXT NOT NULL,
    site TEXT,
    target TEXT,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS audit_kept (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    since INTEGER NOT NULL
);
INSERT OR IGNORE INTO audit_kept (one, since) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
WHEN OLD.at >= (SELECT since FROM audit_kept)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: only rows past retention go');
END;
"""
_COLUMNS: Final = "id, at, who, role, via, action, site, target, status, outcome, body"


@dataclass(frozen=True, slots=True)
class Write:
    """One write as the API saw it."""

    action: str
    """production, swap or ack"""
    site: str | None
    target: str | None
    """what it was about: the alert's id, the meter swapped, the line"""
    body: str


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    names = _COLUMNS.split(", ")
    row = dict(zip(names, values, strict=True))
    row["at"] = from_ms(int(row["at"])).isoformat(timespec="milliseconds")
    return row


class AuditLog:
    def __init__(self, path: Path, keep_days: int) -> None:
        self.path = path
        self._keep = timedelta(days=keep_days)
        self._lock = threading.Lock()
        # The API writes from worker threads (one at a time, under the lock).
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._pruned: datetime | None = None

    def close(self) -> None:
        self._conn.close()

    def record(self, who: Principal, write: Write, status: int, outcome: str, at: datetime) -> int:
        """Append one write; its row id. Rows past retention go at most once an hour."""
        with self._lock:
            cur = self._conn.execute(
                f"INSERT INTO audit ({_COLUMNS.partition(', ')[2]}) "  # noqa: S608 - constant
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ms(at),
                    who.name,
                    who.role.value,
                    who.via.value,
                    write.action,
                    write.site,
                    write.target,
                    status,
                    outcome,
                    write.body[:MAX_DETAIL],
                ),
            )
            if self._pruned is None or at - self._pruned >= PRUNE_EVERY:
                self._prune(at)
            return int(cur.lastrowid or 0)

    def _prune(self, now: datetime) -> None:
        cutoff = ms(now - self._keep)
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("UPDATE audit_kept SET since = max(since, ?)", (cutoff,))
            self._conn.execute("DELETE FROM audit WHERE at < ?", (cutoff,))
        self._pruned = now

    def page(
        self,
        limit: int,
        before: int | None = None,
        site: str | None = None,
        who: str | None = None,
    ) -> list[dict[str, Any]]:
        """Up to `limit` rows, newest first, older than row id `before` if given."""
        where, args = ["1"], list[Any]()
        for column, value in (("id <", before), ("site =", site), ("who =", who)):
            if value is not None:
                where.append(f"{column} ?")
                args.append(value)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY id DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [_row(r) for r in rows]


def body_text(body: bytes) -> str:
    """A request body as kept in the log: text (invalid UTF-8 replaced), bounded."""
    return body[: MAX_DETAIL * 4].decode("utf-8", "replace")[:MAX_DETAIL]
