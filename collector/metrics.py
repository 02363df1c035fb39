"""The collector's Prometheus metrics, served at `/metrics` by the API.

Counters and gauges are read from the collector's own counts at scrape time (nothing
on the message path changes); the store's write latency, and how old readings are when
the store acknowledges them (read to stored: the data's freshness), are measured by
wrapping the store. Names: `greengauge_collector_*`, `greengauge_api_*`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector as PromCollector

from collector.batch import Batch
from collector.stats import Stats
from collector.stores import PointStore, Store
from collector.stores.lineprotocol import Point

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
WRITE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Fine around the target (p99 under 1.5 s), then up to an outage's spool replay.
STORED_AGE_BUCKETS: Final = (
    *(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10),
    *(30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)


class BulkHistogram(PromCollector):
    """A histogram observed a write at a time: the ages of a write's readings (a thousand
    and more) are counted into buckets by numpy, not one `observe` call each (a lock and a
    walk along the buckets per reading). Observed from the store's worker threads."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = np.array([*buckets, float("inf")])
        self._counts = np.zeros(len(self._bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray) -> None:
        # side="left": a value equal to a bound counts in its bucket (`le`), as Prometheus's.
        slots = np.searchsorted(self._bounds, values, side="left")
        counts = np.bincount(slots, minlength=len(self._bounds))
        total = float(values.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        yield HistogramMetricFamily(
            self._name,
            self._documentation,
            buckets=[
                ("+Inf" if bound == float("inf") else repr(bound), count)
                for bound, count in zip(self._bounds.tolist(), cumulative, strict=True)
            ],
            sum_value=total,
        )


class TimedStore:
    """A store whose every write is timed (success or failure), and the age of every
    reading it stored observed when the store acknowledged it."""

    def __init__(self, store: Store, histogram: Histogram, stored_age: BulkHistogram) -> None:
        self._store = store
        self._histogram = histogram
        self._stored_age = stored_age

    def write(self, batches: Sequence[Batch]) -> int:
        started = time.perf_counter()
        try:
            written = self._store.write(batches)
        finally:
            self._histogram.observe(time.perf_counter() - started)
        now_ms = time.time() * 1000
        stamps = np.fromiter(
            (ms for batch in batches for ms in batch.stamps),
            dtype=np.float64,
            count=sum(len(batch) for batch in batches),
        )
        self._stored_age.observe_many((now_ms - stamps) / 1000)
        return written

    def write_points(self, points: Sequence[Point]) -> int:
        if not isinstance(self._store, PointStore):
            raise TypeError(f"{self._store!r} cannot store derived measurements")
        started = time.perf_counter()
        try:
            return self._store.write_points(points)
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return repr(self._store)


class _Counts(PromCollector):
    def __init__(self, stats: Callable[[], Stats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        c = self._stats()
        yield CounterMetricFamily(
            "greengauge_collector_messages",
            "Reading messages received from the broker (valid or not)",
            value=c.messages,
        )
        yield CounterMetricFamily(
            "greengauge_collector_readings_written",
            "Values written to the store (one quantity of one meter at one time)",
            value=c.values_written,
        )
        yield CounterMetricFamily(
            "greengauge_collector_store_writes", "Writes to the store", value=c.store_writes
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letters",
            "Messages dead-lettered (invalid, or refused by the store) since start",
            value=c.dead_letters,
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letter_bytes",
            "Bytes written to the dead-letter files since start",
            value=c.dead_letter_bytes,
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letters_truncated",
            "Dead letters whose payload was kept as a prefix only (size and sha256 in full)",
            value=c.dead_letters_truncated,
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letter_files_deleted",
            "Oldest dead-letter files deleted by rotation (max_files reached)",
            value=c.dead_letter_files_deleted,
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letter_repeats",
            "Messages delivered again whose dead letter was already written (kept once)",
            value=c.dead_letter_repeats,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_dead_letters_pending",
            "Dead letters waiting for the disk (their messages not acknowledged)",
            value=c.dead_letters_pending,
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letter_repaired_bytes",
            "Bytes of a partial last line cut off the dead-letter file at start",
            value=c.dead_letter_repaired_bytes,
        )
        failing = GaugeMetricFamily(
            "greengauge_collector_disk_fault",
            "1 while a file cannot be written (disk full, read-only); messages are held back",
            labels=["file"],
        )
        failures = CounterMetricFamily(
            "greengauge_collector_disk_write_failures",
            "Failed writes of a file (disk full, read-only), each retried",
            labels=["file"],
        )
        for fault in c.disks:
            failing.add_metric([fault.name], 1.0 if fault.failing else 0.0)
            failures.add_metric([fault.name], fault.failures)
        yield failing
        yield failures
        yield CounterMetricFamily(
            "greengauge_collector_sequence_gaps",
            "Batch sequence numbers skipped when they opened a gap (later filled or not)",
            value=c.sequence_gaps,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_sequence_missing",
            "Batches inside sequence gaps now (lost unless a backlog brings them)",
            value=c.sequence_missing,
        )
        yield CounterMetricFamily(
            "greengauge_collector_sequence_repeats",
            "Batches delivered again (harmless)",
            value=c.sequence_repeats,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_spool_depth",
            "Messages waiting in the local spool for the store",
            value=c.spool_depth,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_pending",
            "Messages waiting for the next store write",
            value=c.pending,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_mqtt_connected",
            "1 while subscribed to the broker",
            value=1.0 if c.mqtt_connected else 0.0,
        )
        yield GaugeMetricFamily(
            "greengauge_api_stream_subscribers",
            "Clients of the live event stream",
            value=c.stream_subscribers,
        )
        yield CounterMetricFamily(
            "greengauge_collector_status_rejected",
            "Agent status messages dead-lettered",
            value=c.status_rejected,
        )
        rejected = CounterMetricFamily(
            "greengauge_collector_messages_rejected",
            "Messages dead-lettered as invalid, by topic (readings, status, production)",
            labels=["topic"],
        )
        for kind, count in sorted(c.rejected.items()):
            rejected.add_metric([kind], count)
        yield rejected
        failed = CounterMetricFamily(
            "greengauge_collector_messages_failed",
            "Messages whose handling raised (a collector fault), dead-lettered, by topic "
            "and the stage reached",
            labels=["topic", "stage"],
        )
        for (kind, stage), count in sorted(c.failed.items()):
            failed.add_metric([kind, stage], count)
        yield failed
        yield CounterMetricFamily(
            "greengauge_collector_store_faults",
            "Store writes that raised an unforeseen error (then written message by message)",
            value=c.store_faults,
        )
        yield CounterMetricFamily(
            "greengauge_collector_ack_overdue",
            "Messages that held back the acknowledgements longer than ack_overdue_seconds",
            value=c.ack_overdue,
        )
        yield CounterMetricFamily(
            "greengauge_collector_sequence_epochs",
            "Agents' seq numbering restarted (a seq beyond max_seq_jump from every earlier one)",
            value=c.sequence_epochs,
        )
        yield CounterMetricFamily(
            "greengauge_collector_sequence_agents_forgotten",
            "Agents whose sequence numbers were forgotten (least recently seen) to stay within "
            "ingest.agents",
            value=c.sequence_agents_forgotten,
        )
        yield CounterMetricFamily(
            "greengauge_collector_agent_statuses_evicted",
            "Agent statuses forgotten, least recently updated first, to stay within the bound",
            value=c.statuses_evicted,
        )
        if c.latest_meters is not None:
            yield GaugeMetricFamily(
                "greengauge_collector_latest_meters",
                "Meters in the latest-readings table",
                value=c.latest_meters,
            )
            yield CounterMetricFamily(
                "greengauge_collector_latest_evicted",
                "Meters evicted from the latest-readings table, least recently updated first",
                value=c.latest_evicted,
            )
        if c.accounting is not None:
            yield CounterMetricFamily(
                "greengauge_accounting_readings_used",
                "Counter readings the energy accounting used",
                value=c.accounting.readings_used,
            )
            yield CounterMetricFamily(
                "greengauge_accounting_corrections",
                "Accounting passes that replaced minutes because readings arrived late",
                value=c.accounting.corrections,
            )
            yield CounterMetricFamily(
                "greengauge_accounting_late_readings",
                "Counter readings that arrived before the last one the accounting had used",
                value=c.accounting.late_readings,
            )
            yield CounterMetricFamily(
                "greengauge_accounting_too_old_readings",
                "Late counter readings refused: older than accounting.keep_readings_days keeps",
                value=c.accounting.too_old_readings,
            )


class CollectorMetrics:
    """One registry per collector (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.write_seconds = Histogram(
            "greengauge_collector_write_seconds",
            "Latency of one write of reading batches to the store",
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.stored_age = BulkHistogram(
            "greengauge_collector_reading_stored_age_seconds",
            "Time from a meter's read (the reading's ts) to the store acknowledging its write "
            "(replays from the spool included): how fresh the stored data is",
            STORED_AGE_BUCKETS,
        )
        self.registry.register(self.stored_age)
        self.unauthorized = Counter(
            "greengauge_api_unauthorized",
            "API requests refused: missing or invalid token (401), read-only token (403), "
            "host name not allowed (400), write from another origin (403), operator on an "
            "admin route (not_admin, 403), proxy user header invalid (proxy_user, 401) or in "
            "no allowed group (no_role, 403)",
            ["reason"],
            registry=self.registry,
        )
        for reason in (
            "missing",
            "invalid",
            "read_only",
            "not_admin",
            "proxy_user",
            "no_role",
            "host",
            "origin",
        ):
            self.unauthorized.labels(reason)

    def timed(self, store: Store) -> TimedStore:
        return TimedStore(store, self.write_seconds, self.stored_age)

    def watch(self, stats: Callable[[], Stats]) -> None:
        self.registry.register(_Counts(stats))

    def refused(self, reason: str) -> None:
        self.unauthorized.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
