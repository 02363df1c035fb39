"""The accounting database: the system of record for energy reports and alerts.

One SQLite file in the collector's data_dir (WAL, synchronous=FULL). Per series (a
meter's counter, or a line's output) it keeps every counter reading used, each with the
counter walker's state after it (core.walk), so a restarted collector continues where
it stopped and a late reading is placed where it belongs: the minutes it touches are
computed again from the readings and replaced, never added to. A re-delivered reading
changes nothing. Amounts are kept per minute: native amount, kgce, kgCO2 and quality.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from collector.accounting.core.alerts import AlarmState, AlertEvent, Phase
from collector.accounting.core.counters import Finding, Issue, Replacement, Sample
from collector.accounting.core.series import EPOCH
from collector.accounting.core.walk import State
from collector.batch import epoch_millis

FILE: Final = "accounting.sqlite"
_FIRST_CHUNK: Final = 16
"""Kept readings read at first after where a walk starts: a live pass usually settles
within a few; a recompute reads on in chunks four times as large, up to _CHUNK."""
_CHUNK: Final = 16_384

_SCHEMA: Final = (
    # Before readings were kept (read once, to carry a series over: engine._carry_over).
    """CREATE TABLE IF NOT EXISTS counter_state (
        site TEXT NOT NULL, series TEXT NOT NULL,
        ts INTEGER NOT NULL, value REAL NOT NULL,
        pending TEXT NOT NULL DEFAULT '[]',  -- [[ts ms, value], ...] after the last used
        PRIMARY KEY (site, series)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS reading (
        site TEXT NOT NULL, series TEXT NOT NULL,
        ts INTEGER NOT NULL, value REAL NOT NULL,   -- the lowest, of two at one time
        good_ts INTEGER NOT NULL, good_value REAL NOT NULL,  -- the walker's state after it
        pending_ts INTEGER, pending_value REAL,
        PRIMARY KEY (site, series, ts)) WITHOUT ROWID""",
    # Readings at or before a series' horizon were pruned (accounting.retention).
    """CREATE TABLE IF NOT EXISTS reading_horizon (
        site TEXT NOT NULL, series TEXT NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (site, series)) WITHOUT ROWID""",
    # When intensity points were written (to write them again after late readings).
    """CREATE TABLE IF NOT EXISTS intensity_time (
        site TEXT NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (site, ts)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS minute (
        site TEXT NOT NULL, series TEXT NOT NULL,
        minute INTEGER NOT NULL,           -- start, epoch ms UTC
        amount REAL NOT NULL,              -- native unit (kWh, m3, t) or output units
        kgce REAL NOT NULL, kgco2 REAL NOT NULL,
        quality INTEGER NOT NULL,          -- core.series.Quality, worst of the minute
        dirty INTEGER NOT NULL,            -- 1: not yet written to the store as it is now
        PRIMARY KEY (site, series, minute)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS minute_dirty ON minute (dirty, minute) WHERE dirty = 1",
    """CREATE TABLE IF NOT EXISTS counter_swap (
        site TEXT NOT NULL, meter TEXT NOT NULL,
        ts INTEGER NOT NULL,               -- the new counter's readings from here on
        old_final REAL, new_initial REAL NOT NULL,  -- as read off the meters (unscaled)
        by TEXT NOT NULL, recorded INTEGER NOT NULL,
        PRIMARY KEY (site, meter, ts)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS counter_finding (
        site TEXT NOT NULL, series TEXT NOT NULL, issue TEXT NOT NULL,
        start INTEGER NOT NULL, end INTEGER NOT NULL,
        before REAL NOT NULL, after REAL NOT NULL,
        excluded REAL,                     -- left out of the totals; NULL: unknown
        estimate REAL,                     -- put in the totals, marked estimated
        counted REAL NOT NULL,             -- what the totals hold for [start, end)
        detail TEXT NOT NULL,
        PRIMARY KEY (site, series, start, end, issue)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS mes_output (
        site TEXT NOT NULL, line TEXT NOT NULL,
        start INTEGER NOT NULL, end INTEGER NOT NULL, quantity REAL NOT NULL,
        PRIMARY KEY (site, line, start, end)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS value_added (
        site TEXT NOT NULL, month TEXT NOT NULL, cny REAL NOT NULL,
        PRIMARY KEY (site, month)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS alarm_state (
        site TEXT NOT NULL, line TEXT NOT NULL,
        phase TEXT NOT NULL, since INTEGER, last INTEGER,
        PRIMARY KEY (site, line)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS alert (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL, line TEXT NOT NULL, kind TEXT NOT NULL,
        ts INTEGER NOT NULL, since INTEGER NOT NULL,
        value REAL NOT NULL, threshold REAL NOT NULL,
        window TEXT NOT NULL, unit TEXT NOT NULL, benchmark TEXT NOT NULL,
        published INTEGER NOT NULL DEFAULT 0,
        corrected INTEGER NOT NULL DEFAULT 0)  -- 1: the figures it was judged on changed later
    """,
    """CREATE TABLE IF NOT EXISTS alert_ack (
        alert_id INTEGER PRIMARY KEY REFERENCES alert (id),
        by TEXT NOT NULL, at INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '')""",
)

# "(?)" is replaced by as many placeholders as there are values.
_MINUTES_IN: Final = (
    "SELECT series, minute, amount, kgce, kgco2, quality FROM minute "
    "WHERE site = ? AND series = ? AND minute IN (?)"
)
_TOTALS: Final = (
    "SELECT total(amount), total(kgce), total(kgco2), max(quality) FROM minute "
    "WHERE site = ? AND series IN (?) AND minute >= ? AND minute < ?"
)

_BY_QUALITY: Final = (
    "SELECT series, quality, count(*), total(amount), total(kgce), total(kgco2) FROM minute "
    "WHERE site = ? AND series IN (?) AND minute >= ? AND minute < ? "
    "GROUP BY series, quality ORDER BY series, quality"
)
# Minutes where every series has a row (HAVING count = the number of series), and of those
# the ones where the worst quality is MEASURED (0).
_COVERED: Final = (
    "SELECT count(*), total(worst = 0) FROM (SELECT max(quality) AS worst FROM minute "
    "WHERE site = ? AND series IN (?) AND minute >= ? AND minute < ? "
    "GROUP BY minute HAVING count(*) = ?)"
)


_FINDING: Final = (
    "SELECT series, issue, start, end, before, after, excluded, estimate, detail, counted "
    "FROM counter_finding WHERE site = ?"
)


def _finding_row(r: Sequence[Any]) -> FindingRow:
    finding = Finding(Issue(r[1]), from_ms(r[2]), from_ms(r[3]), r[4], r[5], r[6], r[8], r[7])
    return FindingRow(r[0], finding, r[9])


def ms(ts: datetime) -> int:
    return epoch_millis(ts)


def from_ms(value: int) -> datetime:
    return EPOCH + timedelta(milliseconds=value)


ReadingRow = tuple[int, float, int, float, int | None, float | None]
"""A kept reading: ts, value, and the walker's state after it: good ts and value, pending
ts and value (None: no reading out of line waits)."""

_READINGS: Final = (
    "SELECT ts, value, good_ts, good_value, pending_ts, pending_value FROM reading "
    "WHERE site = ? AND series = ? "
)


def _reading_row(r: Sequence[Any]) -> ReadingRow:
    return (
        int(r[0]),
        float(r[1]),
        int(r[2]),
        float(r[3]),
        None if r[4] is None else int(r[4]),
        None if r[5] is None else float(r[5]),
    )


def state_of(row: ReadingRow) -> State:
    """The walker's state after a kept reading."""
    good = Sample(from_ms(row[2]), row[3])
    pending = None if row[4] is None or row[5] is None else Sample(from_ms(row[4]), row[5])
    return State(good, pending)


def reading_row(sample: Sample, state: State) -> ReadingRow:
    p = state.pending
    return (
        ms(sample.ts),
        sample.value,
        ms(state.good.ts),
        state.good.value,
        None if p is None else ms(p.ts),
        None if p is None else p.value,
    )


@dataclass(frozen=True, slots=True)
class CounterState:
    good: Sample
    pending: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A counter finding as kept for the report: what the totals hold for the interval
    (`counted`), what was left out and what was estimated, and why."""

    series: str
    finding: Finding
    counted: float


class KeptReadings:
    """Kept readings of a series, in time order, as columns: a recompute walks millions.
    Most readings are their own good reading with none pending (in line); only their
    good value is read with them, the whole state of the others when the walk asks."""

    __slots__ = ("_full", "good", "simple", "ts", "value")

    def __init__(self, columns: npt.NDArray[np.float64], full: Callable[[int], ReadingRow]) -> None:
        # epoch ms are exact in a float64 (below 2**53: the year 287396)
        self.ts = columns[:, 0].astype(np.int64)
        self.value = columns[:, 1]
        self.good = columns[:, 2]
        """The good value after an in-line reading; -inf after another."""
        self.simple = np.isfinite(self.good)
        self._full = full

    def __len__(self) -> int:
        return len(self.ts)

    def row(self, i: int) -> ReadingRow:
        t = int(self.ts[i])
        if not self.simple[i]:
            return self._full(t)
        return (t, float(self.value[i]), t, float(self.good[i]), None, None)

    def index(self, t: int) -> int:
        """The first reading at or after a time."""
        return int(np.searchsorted(self.ts, t))


@dataclass(frozen=True, slots=True)
class Minutes:
    """A series' minutes as columns: start (epoch ms, ascending), amount, kgce, kgCO2,
    quality."""

    minute: npt.NDArray[np.int64]
    amount: npt.NDArray[np.float64]
    kgce: npt.NDArray[np.float64]
    kgco2: npt.NDArray[np.float64]
    quality: npt.NDArray[np.int64]
    per_unit: tuple[float, float] | None = None
    """kgce and kgCO2 per unit of amount when every minute's are amount x these."""


class MinuteRow(NamedTuple):
    """A series' figures over one minute (a tuple: a month's recompute makes millions)."""

    series: str
    minute: int
    amount: float
    kgce: float
    kgco2: float
    quality: int


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    site: str
    line: str
    kind: str
    ts: int
    since: int
    value: float
    threshold: float
    window: str
    unit: str
    benchmark: str
    published: bool
    corrected: bool = False
    """Raised or cleared on figures that late readings changed afterwards."""


def _changed_minutes(
    conn: sqlite3.Connection, where: tuple[str, str, int, int], rows: Minutes
) -> tuple[list[tuple[Any, ...]], list[int]]:
    """`replace_minutes` over columns (a month at once): the rows that differ from those
    kept or are new, and the kept minutes that are not among them.

    The fewer columns read, the faster (SQLite's rows cost per value): a minute's start and
    quality come as one number (a start is a whole minute, a quality below 8), and with
    one factor per unit SQLite checks kgce and kgCO2 itself (the same IEEE product)."""
    if rows.per_unit is None:
        columns = "minute + quality + 8, amount, kgce, kgco2"
        params: tuple[Any, ...] = where
    else:
        columns = "minute + quality + IIF(kgce = amount * ? AND kgco2 = amount * ?, 8, 0), amount"
        params = (*rows.per_unit, *where)
    old = np.fromiter(
        itertools.chain.from_iterable(
            conn.execute(
                f"SELECT {columns} FROM minute WHERE site = ? AND series = ? "  # noqa: S608
                "AND minute >= ? AND minute < ? ORDER BY minute",
                params,
            )
        ),
        np.float64,
    )
    old = old.reshape(-1, 2 if rows.per_unit is not None else 4)
    key = old[:, 0].astype(np.int64)
    low = key % 60_000
    kept = key - low
    same = np.zeros(len(rows.minute), bool)
    if len(kept):
        at = np.minimum(np.searchsorted(kept, rows.minute), len(kept) - 1)
        same = (kept[at] == rows.minute) & (low[at] == rows.quality + 8)
        same &= old[at, 1] == rows.amount
        if rows.per_unit is None:
            same &= (old[at, 2] == rows.kgce) & (old[at, 3] == rows.kgco2)
    gone = kept.tolist()
    if len(rows.minute):
        back = np.minimum(np.searchsorted(rows.minute, kept), len(rows.minute) - 1)
        gone = kept[rows.minute[back] != kept].tolist()
    new = np.flatnonzero(~same)
    changed = list(
        zip(
            itertools.repeat(where[0]),
            itertools.repeat(where[1]),
            rows.minute[new].tolist(),
            rows.amount[new].tolist(),
            rows.kgce[new].tolist(),
            rows.kgco2[new].tolist(),
            rows.quality[new].tolist(),
        )
    )
    return changed, gone


class AccountingDB:
    """The accounting file; every method is one transaction; safe from worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._conn.execute(statement)
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(alert)")}
        if "corrected" not in columns:  # a file from before late readings were corrected
            self._conn.execute("ALTER TABLE alert ADD COLUMN corrected INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    # --- counters -----------------------------------------------------------------------

    @staticmethod
    def load_state(conn: sqlite3.Connection, site: str, series: str) -> CounterState | None:
        row = conn.execute(
            "SELECT ts, value, pending FROM counter_state WHERE site = ? AND series = ?",
            (site, series),
        ).fetchone()
        if row is None:
            return None
        pending = tuple(Sample(from_ms(t), v) for t, v in json.loads(row[2]))
        return CounterState(Sample(from_ms(row[0]), row[1]), pending)

    @staticmethod
    def stored_values(
        conn: sqlite3.Connection, site: str, series: str, first_ms: int, last_ms: int
    ) -> dict[int, float]:
        """The readings of a series in [first, last], by time (ms)."""
        rows = conn.execute(
            "SELECT ts, value FROM reading WHERE site = ? AND series = ? AND ts BETWEEN ? AND ?",
            (site, series, first_ms, last_ms),
        )
        return {int(t): float(v) for t, v in rows}

    @staticmethod
    def state_before(
        conn: sqlite3.Connection, site: str, series: str, before_ms: int
    ) -> tuple[int, State] | None:
        """The time of the last reading before a time, and the state after it."""
        row = AccountingDB.reading_before(conn, site, series, before_ms)
        return None if row is None else (row[0], state_of(row))

    @staticmethod
    def reading_before(
        conn: sqlite3.Connection, site: str, series: str, before_ms: int
    ) -> ReadingRow | None:
        rows = AccountingDB.last_readings(conn, site, series, before_ms, 1)
        return rows[0] if rows else None

    @staticmethod
    def last_readings(
        conn: sqlite3.Connection, site: str, series: str, before_ms: int, n: int
    ) -> list[ReadingRow]:
        """The last n readings before a time, newest first."""
        rows = conn.execute(
            _READINGS + "AND ts < ? ORDER BY ts DESC LIMIT ?",
            (site, series, before_ms, n),
        ).fetchall()
        return [_reading_row(r) for r in rows]

    @staticmethod
    def readings_from(
        conn: sqlite3.Connection, site: str, series: str, start_ms: int
    ) -> Iterator[KeptReadings]:
        """The readings at or after a time, in time order, in chunks (read lazily: a walk
        usually stops after a few, a recompute reads them all)."""

        def full(t: int) -> ReadingRow:
            return _reading_row(
                conn.execute(_READINGS + "AND ts = ?", (site, series, t)).fetchone()
            )

        size = _FIRST_CHUNK
        while True:
            # readings are finite (the contract's bounds): -inf marks a state to ask for
            columns = np.fromiter(
                itertools.chain.from_iterable(
                    conn.execute(
                        "SELECT ts, value, IIF(good_ts = ts AND pending_ts IS NULL, good_value, "
                        "-9e999) FROM reading WHERE site = ? AND series = ? AND ts >= ? "
                        "ORDER BY ts LIMIT ?",
                        (site, series, start_ms, size),
                    )
                ),
                np.float64,
            ).reshape(-1, 3)
            if len(columns):
                yield KeptReadings(columns, full)
            if len(columns) < size:
                return
            start_ms = int(columns[-1, 0]) + 1
            size = min(size * 4, _CHUNK)

    @staticmethod
    def save_readings(
        conn: sqlite3.Connection, site: str, series: str, rows: Sequence[ReadingRow]
    ) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO reading (site, series, ts, value, good_ts, good_value, "
            "pending_ts, pending_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(site, series, *r) for r in rows],
        )

    @staticmethod
    def set_horizon(conn: sqlite3.Connection, site: str, series: str, ts_ms: int) -> None:
        conn.execute(
            "INSERT INTO reading_horizon (site, series, ts) VALUES (?, ?, ?) "
            "ON CONFLICT (site, series) DO UPDATE SET ts = max(ts, excluded.ts)",
            (site, series, ts_ms),
        )

    def add_intensity_time(self, site: str, ts_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO intensity_time (site, ts) VALUES (?, ?)", (site, ts_ms)
            )

    def intensity_times(self, site: str, from_ms: int, limit: int) -> list[int]:
        """When intensity points of a site were written, from a time on, oldest first."""
        rows = self.query(
            "SELECT ts FROM intensity_time WHERE site = ? AND ts > ? ORDER BY ts LIMIT ?",
            (site, from_ms, limit),
        )
        return [int(r[0]) for r in rows]

    def horizons(self, site: str) -> dict[str, int]:
        """Per series of a site, the time at or before which its readings were pruned."""
        rows = self.query("SELECT series, ts FROM reading_horizon WHERE site = ?", (site,))
        return {str(series): int(ts) for series, ts in rows}

    @staticmethod
    def replace_minutes(
        conn: sqlite3.Connection,
        site: str,
        series: str,
        first_ms: int,
        end_ms: int,
        rows: Minutes | Sequence[MinuteRow],
    ) -> int:
        """Make a series' minutes in [first, end) these; those that change are written to
        the store again (an unchanged minute is not, so a recompute that changes nothing
        writes nothing). The number of minutes changed."""
        where = (site, series, first_ms, end_ms)
        if isinstance(rows, Minutes):
            changed, gone = _changed_minutes(conn, where, rows)
        else:
            old = {
                r[1]: r
                for r in conn.execute(
                    "SELECT series, minute, amount, kgce, kgco2, quality FROM minute "
                    "WHERE site = ? AND series = ? AND minute >= ? AND minute < ?",
                    where,
                )
            }
            changed = [(site, *r) for r in rows if old.get(r.minute) != r]
            gone = list(old.keys() - {r.minute for r in rows})
        if gone:
            conn.executemany(
                "DELETE FROM minute WHERE site = ? AND series = ? AND minute = ?",
                [(site, series, m) for m in gone],
            )
        conn.executemany(
            "INSERT OR REPLACE INTO minute (site, series, minute, amount, kgce, kgco2, quality, "
            "dirty) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            changed,
        )
        return len(changed) + len(gone)

    @staticmethod
    def swaps(conn: sqlite3.Connection, site: str, meter: str) -> list[Replacement]:
        """A meter's recorded swaps, oldest first (readings as read off the meters)."""
        rows = conn.execute(
            "SELECT ts, new_initial, old_final, by FROM counter_swap "
            "WHERE site = ? AND meter = ? ORDER BY ts",
            (site, meter),
        ).fetchall()
        return [Replacement(from_ms(r[0]), r[1], r[2], r[3]) for r in rows]

    @staticmethod
    def add_swap(
        conn: sqlite3.Connection, site: str, meter: str, swap: Replacement, recorded: datetime
    ) -> None:
        conn.execute(
            "INSERT INTO counter_swap (site, meter, ts, old_final, new_initial, by, recorded) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (site, meter, ms(swap.ts), swap.old_final, swap.new_initial, swap.by, ms(recorded)),
        )

    @staticmethod
    def put_findings(conn: sqlite3.Connection, site: str, rows: Sequence[FindingRow]) -> None:
        """Keep findings for the report; one of the same interval and kind replaces it."""
        conn.executemany(
            "INSERT OR REPLACE INTO counter_finding (site, series, issue, start, end, before, "
            "after, excluded, estimate, counted, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    site,
                    r.series,
                    r.finding.issue.value,
                    ms(r.finding.start),
                    ms(r.finding.end),
                    r.finding.before,
                    r.finding.after,
                    r.finding.excluded,
                    r.finding.estimate,
                    r.counted,
                    r.finding.detail,
                )
                for r in rows
            ],
        )

    @staticmethod
    def drop_findings(
        conn: sqlite3.Connection, site: str, series: str, after_ms: int | None, through_ms: int
    ) -> None:
        """Drop the findings a walk of the readings after one (None: from the first) up to
        another gives again: those ending in (after, through], and a glitch at `after` (a
        reading out of line is judged by the next)."""
        low = -(2**62) if after_ms is None else after_ms
        conn.execute(
            "DELETE FROM counter_finding WHERE site = ? AND series = ? AND end <= ? "
            "AND (end > ? OR (issue = ? AND end = ?))",
            (site, series, through_ms, low, Issue.GLITCH.value, low),
        )

    @staticmethod
    def findings_across(
        conn: sqlite3.Connection, site: str, series: str, issues: Sequence[Issue], at: datetime
    ) -> list[FindingRow]:
        """Findings of a series over intervals [start, end) with start < at <= end."""
        marks = ",".join("?" * len(issues))
        rows = conn.execute(
            _FINDING + f" AND series = ? AND issue IN ({marks}) AND start < ? AND end >= ?",
            (site, series, *(i.value for i in issues), ms(at), ms(at)),
        ).fetchall()
        return [_finding_row(r) for r in rows]

    def findings(self, site: str, start_ms: int, end_ms: int) -> list[FindingRow]:
        """The findings of a site over [start, end), oldest first."""
        rows = self.query(
            _FINDING + " AND end > ? AND start < ? ORDER BY start, series", (site, start_ms, end_ms)
        )
        return [_finding_row(r) for r in rows]

    @staticmethod
    def add_minutes(conn: sqlite3.Connection, site: str, rows: Sequence[MinuteRow]) -> None:
        conn.executemany(
            "INSERT INTO minute (site, series, minute, amount, kgce, kgco2, quality, dirty) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (site, series, minute) DO UPDATE SET "
            "amount = amount + excluded.amount, kgce = kgce + excluded.kgce, "
            "kgco2 = kgco2 + excluded.kgco2, quality = max(quality, excluded.quality), dirty = 1",
            [(site, r.series, r.minute, r.amount, r.kgce, r.kgco2, r.quality) for r in rows],
        )

    # --- reading back ---------------------------------------------------------------------

    def dirty_minutes(self, before_ms: int) -> list[tuple[str, MinuteRow]]:
        rows = self.query(
            "SELECT site, series, minute, amount, kgce, kgco2, quality FROM minute "
            "WHERE dirty = 1 AND minute < ? ORDER BY minute",
            (before_ms,),
        )
        return [(r[0], MinuteRow(*r[1:])) for r in rows]

    def minutes_of(
        self, site: str, series: Sequence[str], minutes: Sequence[int]
    ) -> dict[tuple[str, int], MinuteRow]:
        """The rows of some series at some minutes (for virtual meters)."""
        if not series or not minutes:
            return {}
        out: dict[tuple[str, int], MinuteRow] = {}
        with self._lock:
            for name in series:
                for chunk_start in range(0, len(minutes), 500):
                    chunk = list(minutes[chunk_start : chunk_start + 500])
                    marks = ",".join("?" * len(chunk))
                    sql = _MINUTES_IN.replace("(?)", f"({marks})")
                    for r in self._conn.execute(
                        sql,
                        (site, name, *chunk),
                    ):
                        out[(r[0], r[1])] = MinuteRow(r[0], r[1], r[2], r[3], r[4], r[5])
        return out

    def mark_clean(self, keys: Sequence[tuple[str, str, int]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE minute SET dirty = 0 WHERE site = ? AND series = ? AND minute = ?", keys
            )

    def totals(
        self, site: str, series: Sequence[str], start_ms: int, end_ms: int
    ) -> tuple[float, float, float, int | None]:
        """amount, kgce, kgCO2 and the worst quality of series over [start, end)."""
        if not series:
            return 0.0, 0.0, 0.0, None
        marks = ",".join("?" * len(series))
        sql = _TOTALS.replace("(?)", f"({marks})")
        ((amount, kgce, kgco2, quality),) = self.query(
            sql,
            (site, *series, start_ms, end_ms),
        )
        return (
            float(amount),
            float(kgce),
            float(kgco2),
            None if quality is None else int(quality),
        )

    def by_quality(
        self, site: str, series: Sequence[str], start_ms: int, end_ms: int
    ) -> list[tuple[str, int, int, float, float, float]]:
        """Per series and quality over [start, end): minutes, amount, kgce, kgCO2."""
        if not series:
            return []
        marks = ",".join("?" * len(series))
        rows = self.query(
            _BY_QUALITY.replace("(?)", f"({marks})"), (site, *series, start_ms, end_ms)
        )
        return [
            (str(r[0]), int(r[1]), int(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows
        ]

    def covered_minutes(
        self, site: str, series: Sequence[str], start_ms: int, end_ms: int
    ) -> tuple[int, int]:
        """Minutes of [start, end) where every one of the series has a row, and where every
        one of them is also MEASURED (a counter difference over exactly that interval)."""
        if not series:
            return 0, 0
        names = sorted(set(series))
        marks = ",".join("?" * len(names))
        ((covered, measured),) = self.query(
            _COVERED.replace("(?)", f"({marks})"), (site, *names, start_ms, end_ms, len(names))
        )
        return int(covered), int(measured)

    def covered_per_slot(
        self, site: str, series: Sequence[str], start_ms: int, end_ms: int, slot_ms: int
    ) -> dict[int, int]:
        """Per slot of `slot_ms` from `start_ms` (its start, epoch ms): the minutes of it
        where every one of the series has a row; slots without one are left out."""
        if not series:
            return {}
        names = sorted(set(series))
        marks = ",".join("?" * len(names))
        rows = self.query(
            f"SELECT (minute - ?) / ? AS slot, count(*) FROM (SELECT minute FROM minute "  # noqa: S608 - marks only
            f"WHERE site = ? AND series IN ({marks}) AND minute >= ? AND minute < ? "
            "GROUP BY minute HAVING count(*) = ?) GROUP BY slot",
            (start_ms, slot_ms, site, *names, start_ms, end_ms, len(names)),
        )
        return {start_ms + int(r[0]) * slot_ms: int(r[1]) for r in rows}

    def series_minutes(self, site: str, series: str, start_ms: int, end_ms: int) -> list[MinuteRow]:
        rows = self.query(
            "SELECT series, minute, amount, kgce, kgco2, quality FROM minute "
            "WHERE site = ? AND series = ? AND minute >= ? AND minute < ? ORDER BY minute",
            (site, series, start_ms, end_ms),
        )
        return [MinuteRow(*r) for r in rows]

    # --- MES --------------------------------------------------------------------------------

    @staticmethod
    def replace_mes_output(
        conn: sqlite3.Connection, site: str, line: str, start: int, end: int, quantity: float
    ) -> float | None:
        """Record a MES output report; the quantity it replaces (None: new)."""
        row = conn.execute(
            "SELECT quantity FROM mes_output WHERE site = ? AND line = ? AND start = ? AND end = ?",
            (site, line, start, end),
        ).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO mes_output (site, line, start, end, quantity) "
            "VALUES (?, ?, ?, ?, ?)",
            (site, line, start, end, quantity),
        )
        return None if row is None else float(row[0])

    def set_value_added(self, site: str, month: str, cny: float) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO value_added (site, month, cny) VALUES (?, ?, ?)",
                (site, month, cny),
            )

    def value_added(self, site: str, month: str) -> float | None:
        rows = self.query("SELECT cny FROM value_added WHERE site = ? AND month = ?", (site, month))
        return float(rows[0][0]) if rows else None

    # --- alerts ----------------------------------------------------------------------------

    def alarm_state(self, site: str, line: str) -> AlarmState:
        rows = self.query(
            "SELECT phase, since, last FROM alarm_state WHERE site = ? AND line = ?", (site, line)
        )
        if not rows:
            return AlarmState()
        phase, since, last = rows[0]
        return AlarmState(
            Phase(str(phase)),
            None if since is None else from_ms(int(since)),
            None if last is None else from_ms(int(last)),
        )

    def save_alarm(
        self,
        site: str,
        line: str,
        state: AlarmState,
        events: Sequence[AlertEvent],
        window: str,
        unit: str,
        benchmark: str,
        subject: str | None = None,
        published: bool = False,
    ) -> list[int]:
        """The state and its events, in one transaction; the new alert ids. `subject`: the
        alerts' line column when the alarm's key is not a line (other alert kinds);
        `published`: not for the MQTT alerts publisher."""
        ids: list[int] = []
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alarm_state (site, line, phase, since, last) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    site,
                    line,
                    state.phase.value,
                    None if state.since is None else ms(state.since),
                    None if state.last is None else ms(state.last),
                ),
            )
            for e in events:
                cursor = conn.execute(
                    "INSERT INTO alert (site, line, kind, ts, since, value, threshold, window, "
                    "unit, benchmark, published) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        site,
                        line if subject is None else subject,
                        e.kind.value,
                        ms(e.ts),
                        ms(e.since),
                        e.value,
                        e.threshold,
                        window,
                        unit,
                        benchmark,
                        int(published),
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def alerts(
        self, site: str | None = None, unpublished: bool = False, alert_id: int | None = None
    ) -> list[AlertRow]:
        where: list[str] = []
        args: list[object] = []
        if site is not None:
            where.append("site = ?")
            args.append(site)
        if unpublished:
            where.append("published = 0")
        if alert_id is not None:
            where.append("id = ?")
            args.append(alert_id)
        sql = (
            "SELECT id, site, line, kind, ts, since, value, threshold, window, unit, benchmark, "
            "published, corrected FROM alert"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.query(sql + " ORDER BY id", args)
        return [
            AlertRow(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                int(r[4]),
                int(r[5]),
                float(r[6]),
                float(r[7]),
                str(r[8]),
                str(r[9]),
                str(r[10]),
                bool(r[11]),
                bool(r[12]),
            )
            for r in rows
        ]

    def mark_corrected(self, alert_ids: Sequence[int]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE alert SET corrected = 1 WHERE id = ?", [(i,) for i in alert_ids]
            )

    def mark_published(self, alert_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE alert SET published = 1 WHERE id = ?", (alert_id,))
