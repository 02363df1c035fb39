"""History of one quantity of one meter over a time range, at a chosen resolution.

From the embedded store: its SQLite file read on a connection of its own (WAL lets it
read while the collector writes), averaged per `step` in SQL. From InfluxDB: one Flux
query (`aggregateWindow` with mean, min and max). The Flux path is checked by unit tests
on the query text only: the test suite's VictoriaMetrics does not speak Flux.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

from collector.batch import epoch_millis
from collector.stores.lineprotocol import MEASUREMENT
from greengauge.contract import QuantityName

MAX_POINTS: Final = 5000


class HistoryError(ValueError):
    """The request cannot be answered as asked (too many points, bad range)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    ts: int
    """start of the bucket, epoch ms UTC"""
    mean: float
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class Query:
    site: str
    meter: str
    quantity: QuantityName
    start: datetime
    end: datetime
    step: float
    """seconds per bucket"""
    agent: str | None = None

    def check(self) -> None:
        if not self.end > self.start:
            raise HistoryError("end must be after start")
        if self.step <= 0:
            raise HistoryError("step must be positive")
        points = (self.end - self.start).total_seconds() / self.step
        if points > MAX_POINTS:
            raise HistoryError(
                f"{points:.0f} buckets asked, at most {MAX_POINTS}: choose a larger step"
            )


class History(Protocol):
    def query(self, q: Query) -> list[Bucket]: ...

    def custom_unit(self, site: str, meter: str, quantity: str) -> str | None:
        """The unit a user-named quantity of the meter was last stored with, if known."""
        ...

    def close(self) -> None: ...


_SQL: Final = (
    "SELECT (ts / :step) * :step AS bucket, avg(value), min(value), max(value), count(*) "
    "FROM reading WHERE site = :site AND meter = :meter AND quantity = :quantity "
    "AND ts >= :start AND ts < :end {agent} GROUP BY bucket ORDER BY bucket"
)


_UNIT_SQL: Final = (
    "SELECT unit FROM custom_quantity WHERE site = ? AND meter = ? AND quantity = ? LIMIT 1"
)


class SqliteHistory:
    """Reads the embedded store's file; never writes to it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self._path.exists():
            uri = f"{self._path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
        return self._conn

    def query(self, q: Query) -> list[Bucket]:
        q.check()
        step = max(1, round(q.step * 1000))
        args: dict[str, object] = {
            "step": step,
            "site": q.site,
            "meter": q.meter,
            "quantity": str(q.quantity),
            "start": epoch_millis(q.start),
            "end": epoch_millis(q.end),
        }
        sql = _SQL.format(agent="AND agent = :agent" if q.agent else "")
        if q.agent:
            args["agent"] = q.agent
        with self._lock:
            conn = self._connection()
            if conn is None:
                return []
            try:
                rows = conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
        return [Bucket(int(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4])) for r in rows]

    def custom_unit(self, site: str, meter: str, quantity: str) -> str | None:
        with self._lock:
            conn = self._connection()
            if conn is None:
                return None
            try:
                row = conn.execute(_UNIT_SQL, (site, meter, quantity)).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rfc3339(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def flux_query(bucket: str, q: Query) -> str:
    """The Flux text of a history query: mean, min and max per step, one table each."""
    q.check()
    step_ms = max(1, round(q.step * 1000))
    agent = f" and r.agent == {flux_string(q.agent)}" if q.agent else ""
    base = (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {rfc3339(q.start)}, stop: {rfc3339(q.end)})\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(MEASUREMENT)}"
        f" and r.site == {flux_string(q.site)} and r.meter == {flux_string(q.meter)}"
        f" and r._field == {flux_string(str(q.quantity))}{agent})\n"
    )
    parts = []
    for fn in ("mean", "min", "max", "count"):
        parts.append(
            f"{fn} = data\n  |> aggregateWindow(every: {step_ms}ms, fn: {fn}, createEmpty: false,"
            f' timeSrc: "_start")\n  |> set(key: "agg", value: "{fn}")'
        )
    return (
        f"data = {base}\n"
        + "\n".join(parts)
        + "\nunion(tables: [mean, min, max, count])\n"
        + '  |> pivot(rowKey: ["_time"], columnKey: ["agg"], valueColumn: "_value")\n'
        + '  |> sort(columns: ["_time"])'
    )


class FluxHistory:
    """History from InfluxDB 2 through its query API (Flux)."""

    def __init__(self, url: str, org: str, bucket: str, token: str, timeout: float) -> None:
        from influxdb_client.client.influxdb_client import (  # noqa: PLC0415
            InfluxDBClient,
        )

        self._bucket = bucket
        self._org = org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout * 1000))

    def query(self, q: Query) -> list[Bucket]:
        tables = self._client.query_api().query(flux_query(self._bucket, q), org=self._org)
        out: list[Bucket] = []
        for table in tables:
            for record in table.records:
                values = record.values
                out.append(
                    Bucket(
                        epoch_millis(values["_time"]),
                        float(values.get("mean") or 0.0),
                        float(values.get("min") or 0.0),
                        float(values.get("max") or 0.0),
                        int(values.get("count") or 0),
                    )
                )
        return out

    def custom_unit(self, site: str, meter: str, quantity: str) -> str | None:
        return None  # units of user-named quantities are not written to InfluxDB

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
