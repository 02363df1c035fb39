"""The embedded store: one SQLite file, for the demo and small single-plant installs.

A write is acknowledged only once it is durable: WAL journal with synchronous=FULL
fsyncs the log on every commit, and a whole write is one transaction, so a crash
leaves either all of a write's readings or none of them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Final

from collector.batch import Batch, named_values
from collector.stores import StoreError, StoreRejected
from collector.stores.lineprotocol import Point
from greengauge.common.logs import fields
from greengauge.contract import MeterReading

log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS reading (
    site     TEXT    NOT NULL,
    agent    TEXT    NOT NULL,
    meter    TEXT    NOT NULL,
    quantity TEXT    NOT NULL,
    ts       INTEGER NOT NULL,  -- epoch milliseconds, UTC
    value    REAL    NOT NULL,
    PRIMARY KEY (site, agent, meter, quantity, ts)
) WITHOUT ROWID
"""

# Derived measurements (energy_interval, intensity), one row per field; the series is
# the point's tags as `k=v,k=v` in key order.
_POINT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS point (
    measurement TEXT    NOT NULL,
    series      TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    ts          INTEGER NOT NULL,  -- epoch milliseconds, UTC
    value       REAL    NOT NULL,
    PRIMARY KEY (measurement, series, field, ts)
) WITHOUT ROWID
"""
# The unit and kind of each user-named quantity as last received, per meter: the
# readings table holds only values, and history shows a custom quantity with its unit.
_CUSTOM_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS custom_quantity (
    site     TEXT NOT NULL,
    agent    TEXT NOT NULL,
    meter    TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    PRIMARY KEY (site, agent, meter, quantity)
) WITHOUT ROWID
"""
_INSERT_CUSTOM: Final = (
    "INSERT OR REPLACE INTO custom_quantity (site, agent, meter, quantity, unit, kind) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_POINT: Final = (
    "INSERT OR REPLACE INTO point (measurement, series, field, ts, value) VALUES (?, ?, ?, ?, ?)"
)

# REPLACE makes a re-delivered batch (same series, same time) land on the same row.
_INSERT: Final = (
    "INSERT OR REPLACE INTO reading (site, agent, meter, quantity, ts, value) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

# Plain str keeps the sqlite3 module off its slower path for str subclasses.

Row = tuple[str, str, str, str, int, float]


class SqliteStore:
    """Readings in table `reading` of one SQLite file; safe to call from a worker thread."""

    def __init__(self, path: str | PathLike[str], busy_timeout: float = 5.0) -> None:
        """Open (creating folder, file and schema as needed) or raise StoreError.

        `busy_timeout` (seconds) is how long a write waits for another connection's lock.
        """
        self._path = Path(path)
        # The collector writes via asyncio.to_thread, so calls come from pool threads;
        # the lock keeps a stray concurrent call from interleaving transactions.
        self._lock = threading.Lock()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self._path,
                timeout=busy_timeout,
                isolation_level=None,  # transactions are explicit, see write()
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite store {self._path}: {exc}") from exc
        try:
            self._configure()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot set up SQLite store {self._path}: {exc}") from exc
        log.debug("sqlite store open", extra=fields(path=str(self._path)))

    def _configure(self) -> None:
        (mode,) = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            # Some filesystems (network mounts) cannot share memory for the WAL index.
            raise sqlite3.OperationalError(f"journal_mode=WAL refused (got {mode!r})")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_POINT_SCHEMA)
        self._conn.execute(_CUSTOM_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteStore(path={str(self._path)!r})"

    def write(self, batches: Sequence[Batch]) -> int:
        """Store every value of the batches in one transaction; return how many."""
        rows = _rows(batches)
        if not rows:
            return 0
        units = _custom_units(batches)
        with self._lock:
            try:
                self._insert(rows, units=units)
            except (sqlite3.IntegrityError, sqlite3.DataError) as exc:
                raise StoreRejected(reason=f"SQLite refused the readings: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to SQLite store {self._path}: {exc}") from exc
        return len(rows)

    def write_points(self, points: Sequence[Point]) -> int:
        """Store derived points in table `point`, one row per field; a point written again
        (same measurement, series, field and time) replaces the earlier one."""
        rows = [
            (p.measurement, p.series, name, p.ts_ms, value)
            for p in points
            for name, value in p.fields
            if math.isfinite(value)
        ]
        if not rows:
            return 0
        with self._lock:
            try:
                self._insert(rows, _INSERT_POINT)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to SQLite store {self._path}: {exc}") from exc
        return len(points)

    def _insert(
        self,
        rows: Sequence[tuple[object, ...]],
        statement: str = _INSERT,
        units: Sequence[tuple[str, ...]] = (),
    ) -> None:
        # IMMEDIATE takes the write lock up front, so waiting for it honours busy_timeout
        # instead of failing half-way through with SQLITE_BUSY.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(statement, rows)
            if units:
                self._conn.executemany(_INSERT_CUSTOM, units)
            self._conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back on its own (disk full, I/O error).
            if self._conn.in_transaction:
                # A failing ROLLBACK must not mask the error that made it necessary.
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _rows(batches: Sequence[Batch]) -> list[Row]:
    return [
        (batch.site, batch.agent, meter, name, ms, value)
        for batch in batches
        for meter, ms, kept in zip(batch.meters, batch.stamps, batch.kept, strict=True)
        for name, value in named_values(kept)
    ]


def _custom_units(batches: Sequence[Batch]) -> list[tuple[str, ...]]:
    """One row per (meter, user-named quantity), the last reading's unit winning."""
    units = {
        (batch.site, batch.agent, kept.meter, name): (custom.unit, custom.kind.value)
        for batch in batches
        for kept in batch.kept
        if isinstance(kept, MeterReading)  # user-named quantities come by the strict path
        for name, custom in kept.custom.items()
    }
    return [(*key, unit, kind) for key, (unit, kind) in units.items()]
