"""The collector's Prometheus metrics, served at `/metrics` by the API.

Counters and gauges are read from the collector's own counts at scrape time (nothing
on the message path changes); the store's write latency is measured by wrapping the
store. Names: `greengauge_collector_*`, `greengauge_api_*`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from agent.wire import ReadingBatch
from collector.stores import Store

if TYPE_CHECKING:
    from collector.service import Collector

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
WRITE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class TimedStore:
    """A store whose every write is timed (success or failure)."""

    def __init__(self, store: Store, histogram: Histogram) -> None:
        self._store = store
        self._histogram = histogram

    def write(self, batches: Sequence[ReadingBatch]) -> int:
        started = time.perf_counter()
        try:
            return self._store.write(batches)
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return repr(self._store)


class _Counts(PromCollector):
    def __init__(self, collector: Collector) -> None:
        self._c = collector

    def collect(self) -> Iterator[Metric]:
        c = self._c
        yield CounterMetricFamily(
            "greengauge_collector_messages",
            "Reading messages received from the broker (valid or not)",
            value=c.messages,
        )
        yield CounterMetricFamily(
            "greengauge_collector_readings_written",
            "Values written to the store (one quantity of one meter at one time)",
            value=c.writer.values_written,
        )
        yield CounterMetricFamily(
            "greengauge_collector_store_writes", "Writes to the store", value=c.writer.writes
        )
        yield CounterMetricFamily(
            "greengauge_collector_dead_letters",
            "Messages dead-lettered (invalid, or refused by the store) since start",
            value=c.dead_letters.count,
        )
        agents = c.sequences.agents.values()
        yield CounterMetricFamily(
            "greengauge_collector_sequence_gaps",
            "Batch sequence numbers skipped when they opened a gap (later filled or not)",
            value=sum(a.gaps for a in agents),
        )
        yield GaugeMetricFamily(
            "greengauge_collector_sequence_missing",
            "Batches inside sequence gaps now (lost unless a backlog brings them)",
            value=c.sequences.missing,
        )
        yield CounterMetricFamily(
            "greengauge_collector_sequence_repeats",
            "Batches delivered again (harmless)",
            value=c.sequences.repeats,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_spool_depth",
            "Messages waiting in the local spool for the store",
            value=c.spool.depth,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_pending",
            "Messages waiting for the next store write",
            value=c.writer.pending,
        )
        yield GaugeMetricFamily(
            "greengauge_collector_mqtt_connected",
            "1 while subscribed to the broker",
            value=1.0 if c.ingest.connected else 0.0,
        )
        yield GaugeMetricFamily(
            "greengauge_api_stream_subscribers",
            "Clients of the live event stream",
            value=c.hub.subscribers,
        )
        yield CounterMetricFamily(
            "greengauge_collector_status_rejected",
            "Agent status messages dead-lettered",
            value=c.statuses.rejected,
        )
        if c.accounting is not None:
            yield CounterMetricFamily(
                "greengauge_accounting_readings_used",
                "Counter readings the energy accounting used",
                value=c.accounting.accounting.readings_used,
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
        self.unauthorized = Counter(
            "greengauge_api_unauthorized",
            "API requests refused: missing or invalid token (401), read-only token (403)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("missing", "invalid", "read_only"):
            self.unauthorized.labels(reason)

    def timed(self, store: Store) -> TimedStore:
        return TimedStore(store, self.write_seconds)

    def watch(self, collector: Collector) -> None:
        self.registry.register(_Counts(collector))

    def refused(self, reason: str) -> None:
        self.unauthorized.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
