"""The agent's Prometheus metrics at http://{metrics.listen}/metrics (off by default).

Poll latency is measured per meter by timing each bus session (the read of all of a
meter's blocks, once its bus is free), and the session's Modbus requests are counted (so
requests per read show a plan split around refused registers); everything else is read
at scrape time from what the agent keeps anyway: each meter's health (reads, errors by
kind, online, registers left out), the outbox (depth, dropped batches) and the broker
connection. Names: `greengauge_agent_*`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.watchedbus import ArgsP, KeyT, SessionBus, ValueT, WatchedBus
from greengauge.common.logs import fields
from greengauge.contract import MeterHealth, MeterState

if TYPE_CHECKING:
    from agent.dlt645.poller import Dlt645MeterBus
    from agent.poller import MeterBus
    from agent.publish.outbox import Outbox
    from agent.publish.publisher import Publisher

log = logging.getLogger(__name__)

POLL_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: give host:port, e.g. 127.0.0.1:9108")
    return host.strip("[]"), int(port)


class TimedBus(WatchedBus[KeyT, ArgsP, ValueT]):
    """A meter's view of its bus that times each of its sessions and counts its requests
    (a Modbus read, a DL/T 645 data identifier)."""

    def __init__(
        self,
        bus: SessionBus[KeyT, Callable[ArgsP, Awaitable[ValueT]]],
        histogram: Histogram,
        requests: Counter,
    ) -> None:
        super().__init__(bus)
        self._histogram = histogram
        self._requests = requests

    @contextlib.asynccontextmanager
    async def _watch(self) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._histogram.observe(time.perf_counter() - started)

    async def _request(
        self,
        read: Callable[ArgsP, Awaitable[ValueT]],
        *args: ArgsP.args,
        **kwargs: ArgsP.kwargs,
    ) -> ValueT:
        self._requests.inc()
        return await read(*args, **kwargs)


class _State(Collector):
    def __init__(
        self, publisher: Publisher, outbox: Outbox, health: Mapping[str, MeterHealth]
    ) -> None:
        self._publisher = publisher
        self._outbox = outbox
        self._health = health

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "greengauge_agent_meter_errors",
            "Failed reads and dropped values since start, by meter and kind",
            labels=["meter", "kind"],
        )
        reads = CounterMetricFamily(
            "greengauge_agent_meter_reads",
            "Reads that gave values since start",
            labels=["meter"],
        )
        online = GaugeMetricFamily(
            "greengauge_agent_meter_online", "1 while the meter answers", labels=["meter"]
        )
        excluded = GaugeMetricFamily(
            "greengauge_agent_meter_excluded_registers",
            "Registers left out of reads now because the meter refuses them",
            labels=["meter"],
        )
        for meter, health in sorted(self._health.items()):
            reads.add_metric([meter], health.reads)
            online.add_metric([meter], 1.0 if health.state is MeterState.ONLINE else 0.0)
            excluded.add_metric([meter], health.excluded)
            for kind, count in sorted(health.errors.items()):
                errors.add_metric([meter, kind], count)
        yield errors
        yield reads
        yield online
        yield excluded
        outbox = self._outbox
        yield GaugeMetricFamily(
            "greengauge_agent_outbox_depth",
            "Batches waiting in the outbox for the broker's acknowledgement",
            value=outbox.depth,
        )
        yield CounterMetricFamily(
            "greengauge_agent_outbox_dropped_batches",
            "Oldest batches dropped because the outbox was full or too old",
            value=outbox.dropped_batches,
        )
        yield CounterMetricFamily(
            "greengauge_agent_outbox_dropped_readings",
            "Readings in the dropped batches",
            value=outbox.dropped_readings,
        )
        yield CounterMetricFamily(
            "greengauge_agent_readings_taken", "Readings taken", value=outbox.readings_taken
        )
        yield CounterMetricFamily(
            "greengauge_agent_published_batches",
            "Batches the broker acknowledged",
            value=self._publisher.published_batches,
        )
        yield GaugeMetricFamily(
            "greengauge_agent_mqtt_connected",
            "1 while connected to the broker",
            value=1.0 if self._publisher.connected else 0.0,
        )


class AgentMetrics:
    def __init__(
        self, publisher: Publisher, outbox: Outbox, health: Mapping[str, MeterHealth]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._poll = Histogram(
            "greengauge_agent_poll_seconds",
            "Time to read all of a meter's registers once (its bus held)",
            ["meter"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            "greengauge_agent_meter_requests",
            "Requests made to read the meter (Modbus: bisections of refused reads included; "
            "DL/T 645: one per data identifier)",
            ["meter"],
            registry=self.registry,
        )
        self.registry.register(_State(publisher, outbox, health))
        self._server: WSGIServer | None = None

    def timed(self, bus: MeterBus, meter: str) -> MeterBus:
        return TimedBus(bus, self._poll.labels(meter), self._requests.labels(meter))

    def timed_dlt645(self, bus: Dlt645MeterBus, meter: str) -> Dlt645MeterBus:
        return TimedBus(bus, self._poll.labels(meter), self._requests.labels(meter))

    def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        self._server, _ = start_http_server(port, host, self.registry)
        log.info("metrics listening", extra=fields(url=f"http://{listen}/metrics"))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
