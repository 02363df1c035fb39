"""The agent's disk outbox: store-and-forward of reading batches.

Every batch is committed here (SQLite, WAL, synchronous=FULL) before it is published,
and leaves only once the broker acknowledged it, so a broker outage, a network cut, a
`kill -9` or a power cut loses nothing that was committed. The outbox also owns the
batch sequence number and the count of readings taken: both are committed in the same
transaction as the batch, so they survive restarts and always agree with what is stored.

The outbox is bounded by number of batches, payload bytes and age; beyond a limit the
oldest batches are dropped, and what was dropped is counted (batches and readings).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_SCHEMA: Final = (
    """
    CREATE TABLE IF NOT EXISTS batch (
        seq      INTEGER PRIMARY KEY,
        created  REAL    NOT NULL,  -- epoch seconds
        readings INTEGER NOT NULL,
        payload  BLOB    NOT NULL
    )
    """,
    "CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

NEXT_SEQ: Final = "next_seq"
READINGS_TAKEN: Final = "readings_taken"
DROPPED_BATCHES: Final = "dropped_batches"
DROPPED_READINGS: Final = "dropped_readings"
_COUNTERS: Final = (NEXT_SEQ, READINGS_TAKEN, DROPPED_BATCHES, DROPPED_READINGS)


@dataclass(frozen=True, slots=True)
class Limits:
    max_batches: int = 500_000
    max_bytes: int = 512 * 1024 * 1024
    max_age: float = 30 * 86400.0
    """seconds"""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    created: float
    readings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dropped:
    """What one call dropped to stay within the limits."""

    batches: int = 0
    readings: int = 0
    first_seq: int | None = None
    last_seq: int | None = None


class OutboxError(Exception):
    """The outbox file cannot be opened or written."""


class Outbox:
    """Batches waiting for the broker's acknowledgement, oldest first.

    Not thread-safe: the agent uses it from its event loop only. Each call is one short
    transaction (an fsync of the WAL on commit).
    """

    def __init__(
        self, path: Path, limits: Limits = Limits(), clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.limits = limits
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None)
            (mode,) = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode=WAL refused (got {mode!r})")
            # FULL: a commit is on disk when it returns, even across a power cut.
            self._conn.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._conn.execute(statement)
            with self._transaction():
                for name in _COUNTERS:
                    self._conn.execute(
                        "INSERT OR IGNORE INTO counter (name, value) VALUES (?, 0)", (name,)
                    )
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from exc
        self._counters = dict(self._conn.execute("SELECT name, value FROM counter").fetchall())
        # Kept in memory so a bound check is not a table scan per batch.
        depth, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM batch"
        ).fetchone()
        self._depth: int = depth
        self._bytes: int = size
        # A batch left over from an older run keeps its seq; new ones continue after it.
        (highest,) = self._conn.execute("SELECT MAX(seq) FROM batch").fetchone()
        if highest is not None and highest >= self._counters[NEXT_SEQ]:
            self._counters[NEXT_SEQ] = highest + 1

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _save_counters(self, *names: str) -> None:
        self._conn.executemany(
            "UPDATE counter SET value = ? WHERE name = ?",
            [(self._counters[name], name) for name in names],
        )

    def add(self, build: Callable[[int], bytes], readings: int) -> tuple[int, Dropped]:
        """Commit a new batch; `build(seq)` makes its payload. Returns (seq, what was dropped).

        The readings are counted as taken in the same transaction.
        """
        seq = self._counters[NEXT_SEQ]
        payload = build(seq)
        counters = dict(self._counters)
        try:
            with self._transaction():
                self._conn.execute(
                    "INSERT INTO batch (seq, created, readings, payload) VALUES (?, ?, ?, ?)",
                    (seq, self._clock(), readings, payload),
                )
                self._counters[NEXT_SEQ] = seq + 1
                self._counters[READINGS_TAKEN] += readings
                self._depth += 1
                self._bytes += len(payload)
                dropped = self._enforce_limits()
                self._save_counters(*_COUNTERS)
        except sqlite3.Error as exc:
            self._counters = counters
            self._recount()
            raise OutboxError(f"cannot write to the outbox {self.path}: {exc}") from exc
        return seq, dropped

    def prune(self) -> Dropped:
        """Drop the batches that have grown too old (also done on every add)."""
        counters = dict(self._counters)
        try:
            with self._transaction():
                dropped = self._enforce_limits()
                if dropped.batches:
                    self._save_counters(DROPPED_BATCHES, DROPPED_READINGS)
        except sqlite3.Error as exc:
            self._counters = counters
            self._recount()
            raise OutboxError(f"cannot write to the outbox {self.path}: {exc}") from exc
        return dropped

    def _enforce_limits(self) -> Dropped:
        """Inside a transaction: drop oldest batches until every limit holds."""
        limits = self.limits
        too_old = self._clock() - limits.max_age
        batches = readings = 0
        first: int | None = None
        last: int | None = None
        while self._depth > 0:
            row = self._conn.execute(
                "SELECT seq, created, readings, LENGTH(payload) FROM batch ORDER BY seq LIMIT 1"
            ).fetchone()
            seq, created, count, size = row
            over = (
                self._depth > limits.max_batches
                or self._bytes > limits.max_bytes
                or created < too_old
            )
            if not over:
                break
            self._conn.execute("DELETE FROM batch WHERE seq = ?", (seq,))
            self._depth -= 1
            self._bytes -= size
            batches += 1
            readings += count
            first = seq if first is None else first
            last = seq
        self._counters[DROPPED_BATCHES] += batches
        self._counters[DROPPED_READINGS] += readings
        return Dropped(batches, readings, first, last)

    def _recount(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            depth, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM batch"
            ).fetchone()
            self._depth, self._bytes = depth, size

    def oldest(self, after: int = -1, before: int | None = None, limit: int = 1) -> list[Entry]:
        """Up to `limit` waiting batches with after < seq < before, in seq order."""
        upper = self._counters[NEXT_SEQ] if before is None else before
        rows = self._conn.execute(
            "SELECT seq, created, readings, payload FROM batch WHERE seq > ? AND seq < ? "
            "ORDER BY seq LIMIT ?",
            (after, upper, limit),
        ).fetchall()
        return [Entry(seq, created, count, bytes(payload)) for seq, created, count, payload in rows]

    def get(self, seq: int) -> Entry | None:
        found = self.oldest(after=seq - 1, before=seq + 1)
        return found[0] if found else None

    def remove(self, seq: int) -> bool:
        """The broker acknowledged the batch: forget it. False if it was not there.

        Committed without an fsync of its own (synchronous=NORMAL for this transaction):
        the WAL is appended in order, so the next batch's commit (FULL) makes this one
        durable too. A power cut in between can only bring an acknowledged batch back,
        to be sent again (the collector takes a seq it has as a repeat), never lose one; a crash of
        the agent alone loses nothing. That halves the fsyncs of a tick (bench/README.md).
        """
        try:
            self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._transaction():
                    row = self._conn.execute(
                        "SELECT LENGTH(payload) FROM batch WHERE seq = ?", (seq,)
                    ).fetchone()
                    if row is None:
                        return False
                    self._conn.execute("DELETE FROM batch WHERE seq = ?", (seq,))
            finally:
                self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot write to the outbox {self.path}: {exc}") from exc
        self._depth -= 1
        self._bytes -= row[0]
        return True

    @property
    def depth(self) -> int:
        """Batches waiting for an acknowledgement."""
        return self._depth

    @property
    def size(self) -> int:
        """Payload bytes waiting."""
        return self._bytes

    @property
    def next_seq(self) -> int:
        return int(self._counters[NEXT_SEQ])

    @property
    def readings_taken(self) -> int:
        return int(self._counters[READINGS_TAKEN])

    @property
    def dropped_batches(self) -> int:
        return int(self._counters[DROPPED_BATCHES])

    @property
    def dropped_readings(self) -> int:
        return int(self._counters[DROPPED_READINGS])

    def oldest_created(self) -> float | None:
        row = self._conn.execute("SELECT created FROM batch ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        self._conn.close()
