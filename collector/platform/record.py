"""The upload record: every upload to the platform, what was sent and what it answered.

One SQLite file in the collector's data_dir (platform.sqlite), apart from the accounting
database so that the record's writes never wait on the accounting's. Each upload (its
attempts together) is one row; the latest row of a period is its standing. The record
answers the data-quality questions that need what was sent, not what is computed now:
the slots uploaded (completeness of uploaded data) and the days as uploaded (a month's
consistency with its days).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from collector.platform.indicators import additive

FILE: Final = "platform.sqlite"
MAX_ANSWER_CHARS: Final = 65_536

_SCHEMA: Final = """CREATE TABLE IF NOT EXISTS upload (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL, period TEXT NOT NULL, label TEXT NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL,  -- the period, epoch ms
    at INTEGER NOT NULL,                           -- when the last attempt ended, epoch ms
    transport TEXT NOT NULL, attempts INTEGER NOT NULL,
    ok INTEGER NOT NULL,                           -- 1: the platform took it
    answer TEXT NOT NULL,                          -- the platform's answer, or the error
    payload TEXT NOT NULL)                         -- what was sent (JSON)"""
_INDEX: Final = "CREATE INDEX IF NOT EXISTS upload_period ON upload (site, period, start)"
_LATEST: Final = (
    "SELECT id, site, period, label, start, end, at, transport, attempts, ok, answer, payload "
    "FROM upload WHERE id IN (SELECT max(id) FROM upload WHERE site = ? AND start >= ? "
    "AND start < ? {period} GROUP BY period, label) ORDER BY start, period"
)


@dataclass(frozen=True, slots=True)
class Uploaded:
    id: int
    site: str
    period: str
    label: str
    start: int
    end: int
    at: int
    transport: str
    attempts: int
    ok: bool
    answer: str
    payload: str

    def sent(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload)
        return value


class Record:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_INDEX)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(
        self,
        upload: Mapping[str, Any],
        span: tuple[int, int],
        at: int,
        transport: str,
        attempts: int,
        ok: bool,
        answer: str,
    ) -> int:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO upload (site, period, label, start, end, at, transport, attempts, "
                "ok, answer, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upload["site"],
                    upload["period"],
                    upload["label"],
                    span[0],
                    span[1],
                    at,
                    transport,
                    attempts,
                    int(ok),
                    answer[:MAX_ANSWER_CHARS],
                    json.dumps(upload, ensure_ascii=False),
                ),
            )
            return int(cursor.lastrowid or 0)

    def latest(
        self, site: str, start_ms: int, end_ms: int, period: str | None = None
    ) -> list[Uploaded]:
        """The latest upload of every period starting in [start, end)."""
        args: list[object] = [site, start_ms, end_ms]
        where = ""
        if period is not None:
            where = "AND period = ?"
            args.append(period)
        with self._lock:
            rows = self._conn.execute(_LATEST.format(period=where), args).fetchall()
        return [
            Uploaded(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                int(r[4]),
                int(r[5]),
                int(r[6]),
                str(r[7]),
                int(r[8]),
                bool(r[9]),
                str(r[10]),
                str(r[11]),
            )
            for r in rows
        ]

    def slots_uploaded(self, site: str, start_ms: int, end_ms: int) -> set[int]:
        """Starts of the slots in [start, end) the platform took."""
        return {u.start for u in self.latest(site, start_ms, end_ms, "slot") if u.ok}

    def days_uploaded(self, site: str, start_ms: int, end_ms: int) -> dict[str, dict[str, float]]:
        """Per day taken by the platform: its additive indicators as sent."""
        return {
            u.label: additive(u.sent()["indicators"])
            for u in self.latest(site, start_ms, end_ms, "day")
            if u.ok
        }

    def last_ok_end(self, site: str, period: str) -> int | None:
        """The end of the latest period taken by the platform."""
        with self._lock:
            row = self._conn.execute(
                "SELECT max(end) FROM upload WHERE site = ? AND period = ? AND ok = 1",
                (site, period),
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])
