"""Raw readings read back from the store, for `energy-collector import --from-store`.

Readings already stored (written before the accounting was configured, or by another
collector) are read series by series, in time order and in chunks, so that a month of a
large plant never sits in memory at once. From the embedded store: its SQLite file on a
read-only connection of its own, each (agent, meter, quantity) walked along the primary
key. From InfluxDB: one Flux query per meter and quantity, as the history API reads
(VictoriaMetrics, which the test suite runs, does not speak Flux: that path is checked
on its query text and on the records it turns into readings).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from collector.batch import epoch_millis
from collector.stores import StoreError
from collector.stores.history import flux_string, rfc3339
from collector.stores.lineprotocol import MEASUREMENT
from greengauge.contract import Quantity

CHUNK: Final = 10_000
"""readings per chunk handed on"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored value of one series."""

    agent: str
    ts: int
    """epoch ms UTC"""
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """What to read: one quantity of one meter of a site, [start, end) in epoch ms."""

    site: str
    meter: str
    quantity: Quantity
    start: int
    end: int


class ReadingSource(Protocol):
    def read(self, series: Series, chunk: int = CHUNK) -> Iterator[list[Stored]]:
        """The series' stored values in time order (of one time, every agent's), in chunks;
        StoreError if the store cannot be read."""
        ...

    def close(self) -> None: ...


_AGENT_AFTER: Final = "SELECT min(agent) FROM reading WHERE site = ? AND agent > ?"
_VALUES: Final = (
    "SELECT ts, value FROM reading WHERE site = ? AND agent = ? AND meter = ? "
    "AND quantity = ? AND ts >= ? AND ts < ? ORDER BY ts"
)


class SqliteReadings:
    """Reads the embedded store's file; never writes to it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._agents: dict[str, list[str]] = {}

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self._path.exists():
            uri = f"{self._path.resolve().as_uri()}?mode=ro"
            # read from worker threads, one call at a time
            self._conn = sqlite3.connect(uri, uri=True, timeout=5.0, check_same_thread=False)
        return self._conn

    def _agents_of(self, conn: sqlite3.Connection, site: str) -> list[str]:
        """The agents that stored readings of a site: each found by one step along the
        primary key (site, agent, ...), not by a scan of the site's readings."""
        if site not in self._agents:
            found: list[str] = []
            after = ""
            while (agent := conn.execute(_AGENT_AFTER, (site, after)).fetchone()[0]) is not None:
                after = str(agent)
                found.append(after)
            self._agents[site] = found
        return self._agents[site]

    def read(self, series: Series, chunk: int = CHUNK) -> Iterator[list[Stored]]:
        try:
            conn = self._connection()
            if conn is None:
                return
            try:
                agents = self._agents_of(conn, series.site)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return  # a file the collector has not written yet
                raise
            for agent in agents:
                cursor = conn.execute(
                    _VALUES,
                    (
                        series.site,
                        agent,
                        series.meter,
                        series.quantity.value,
                        series.start,
                        series.end,
                    ),
                )
                while rows := cursor.fetchmany(chunk):
                    yield [Stored(agent, int(ts), float(value)) for ts, value in rows]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the SQLite store {self._path}: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def flux_readings(bucket: str, series: Series, start: datetime, end: datetime) -> str:
    """The Flux text of a series' raw values, [start, end), in time order."""
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {rfc3339(start)}, stop: {rfc3339(end)})\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(MEASUREMENT)}"
        f" and r.site == {flux_string(series.site)} and r.meter == {flux_string(series.meter)}"
        f" and r._field == {flux_string(series.quantity.value)})\n"
        '  |> keep(columns: ["_time", "_value", "agent"])\n'
        '  |> group()\n  |> sort(columns: ["_time", "agent"])'
    )


def stored_of(records: Iterable[Mapping[str, Any]], chunk: int = CHUNK) -> Iterator[list[Stored]]:
    """Flux records (`values` of each) as stored values, in chunks; a record without a
    number is the store's fault, named."""
    out: list[Stored] = []
    for values in records:
        value = values.get("_value")
        when = values.get("_time")
        if not isinstance(value, int | float) or isinstance(value, bool) or when is None:
            raise StoreError(f"InfluxDB answered a record without a time and number: {values}")
        out.append(Stored(str(values.get("agent", "")), epoch_millis(when), float(value)))
        if len(out) >= chunk:
            yield out
            out = []
    if out:
        yield out


class FluxReadings:
    """Raw readings from InfluxDB 2 through its query API (Flux), streamed."""

    def __init__(self, url: str, org: str, bucket: str, token: str, timeout: float) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415

        from greengauge.common.secrets import redact_url  # noqa: PLC0415

        self._url = redact_url(url)
        self._bucket = bucket
        self._org = org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=round(timeout * 1000))

    def read(self, series: Series, chunk: int = CHUNK) -> Iterator[list[Stored]]:
        import urllib3  # noqa: PLC0415
        from influxdb_client.rest import ApiException  # noqa: PLC0415

        from collector.stores.influx import _server_message  # noqa: PLC0415

        start = datetime.fromtimestamp(series.start / 1000, UTC)
        end = datetime.fromtimestamp(series.end / 1000, UTC)
        query = flux_readings(self._bucket, series, start, end)
        try:
            records = self._client.query_api().query_stream(query, org=self._org)
            yield from stored_of((r.values for r in records), chunk)
        except ApiException as exc:
            raise StoreError(
                f"{self._url}: cannot read bucket {self._bucket!r} of org {self._org!r} through "
                f"the Flux query API (HTTP {exc.status}): {_server_message(exc)}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreError(f"cannot reach {self._url}: {exc}") from exc

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
