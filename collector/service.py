"""`energy-collector run`: subscribe to every agent, validate, store."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta

from collector import sequences
from collector.accounting.live import accounting_for
from collector.api.live import LiveHub
from collector.api.status import AgentStatuses
from collector.config import CollectorConfig
from collector.deadletters import DeadLetters
from collector.guard import Guard
from collector.ingest import Ingest, Message
from collector.livetable import LatestReadings, render
from collector.metrics import CollectorMetrics
from collector.spool import Spool
from collector.stores import RetentionStore, Store
from collector.validate import DEFAULT_MAX_AGE, Window, reading_batch
from collector.writer import BatchWriter
from greengauge.common.broker import BrokerSettings
from greengauge.common.files import open_state
from greengauge.common.logs import fields
from greengauge.common.secrets import redact_url
from greengauge.contract import ReadingBatch, Topic, subscription

log = logging.getLogger(__name__)

DEAD_LETTERS_FILE = "dead-letters.jsonl"
EMBEDDED_STORE_FILE = "readings.sqlite"
SPOOL_FILE = "spool.sqlite"
SEQUENCES_FILE = "sequences.json"


def open_store(config: CollectorConfig) -> Store:
    if config.influxdb is not None:
        from collector.stores.influx import InfluxStore  # noqa: PLC0415 - only when configured

        influx = config.influxdb
        return InfluxStore(
            influx.url, influx.org, influx.bucket, influx.token.get_secret_value(), influx.timeout
        )
    from collector.stores.sqlite import SqliteStore  # noqa: PLC0415

    path = config.data_dir / EMBEDDED_STORE_FILE
    return open_state(path, lambda: SqliteStore(path), "embedded store")


def client_id(mqtt: BrokerSettings) -> str:
    # Fixed per host: the broker keeps the session, and the messages queued for it, by id.
    return mqtt.client_id or f"greengauge-collector-{socket.gethostname()}"


def accepted_window(config: CollectorConfig, retention: timedelta | None) -> Window:
    """Not older than configured, else than the store keeps, else 10 years."""
    ingest = config.ingest
    if ingest.max_age_days is not None:
        max_age = timedelta(days=ingest.max_age_days)
    else:
        max_age = retention or DEFAULT_MAX_AGE
    return Window(max_age, timedelta(seconds=ingest.max_future_seconds))


def store_retention(store: Store) -> timedelta | None:
    """How long the store keeps points, if it can say (a blocking call: once, at start)."""
    return store.retention() if isinstance(store, RetentionStore) else None


class Collector:
    def __init__(
        self,
        config: CollectorConfig,
        store: Store,
        table: bool = False,
        retention: timedelta | None = None,
    ) -> None:
        self._config = config
        data_dir = config.data_dir
        ingest = config.ingest
        self.dead_letters = DeadLetters(data_dir / DEAD_LETTERS_FILE, config.dead_letters)
        self.guard = Guard(self.dead_letters)
        self.window = accepted_window(config, retention)
        spool = data_dir / SPOOL_FILE
        self.spool = open_state(spool, lambda: Spool(spool), "spool")
        self.sequences = sequences.load(
            data_dir / SEQUENCES_FILE, ingest.max_seq_jump, ingest.agents
        )
        self.writer = BatchWriter(
            store,
            config.write,
            self.dead_letters,
            self.spool,
            self.sequences,
            data_dir / SEQUENCES_FILE,
        )
        self.disk_faults = [self.dead_letters.fault, self.writer.disk, self.writer.sequences_disk]
        # Kept only for its readers, the terminal table and the API: per reading, it is a
        # measurable share of the collector's CPU at hundreds of thousands of values a second.
        self.latest = (
            LatestReadings(ingest.meters_per_agent, ingest.latest_meters)
            if table or config.api is not None
            else None
        )
        self.messages = 0
        # The API's view (issue 6): agents' status messages, the live event stream.
        self.statuses = AgentStatuses(
            self.window, ingest.agents, ingest.meters_per_agent, ingest.latest_meters
        )
        self.hub = LiveHub()
        self.ingest = Ingest(
            config.mqtt,
            client_id(config.mqtt),
            subscription(Topic.READINGS),
            self.dead_letters.size_limited(self.receive, ingest.max_payload),
            ingest.receive_maximum,
            ingest.ack_overdue_seconds,
        )
        # Energy and carbon accounting (issue 5): None without a plant model.
        self.accounting = accounting_for(config, self.guard, self.window)
        self.ingests = [self.ingest]
        """every subscription (the API adds the status one), for the metrics"""
        if self.accounting is not None:
            self.disk_faults.append(self.accounting.accounting.disk)
            if self.accounting.mes is not None:
                self.ingests.append(self.accounting.mes)

    def receive(self, message: Message) -> None:
        """One message: dead-lettered now, or batched for the store; acked once durable.

        Whatever goes wrong with it is the guard's: it never escapes to the subscription,
        where it would leave the message unacknowledged and hold back every later ack."""
        self.messages += 1
        batch = self.guard.run("readings", message, lambda: self._use(message))
        if batch is not None:
            # Last, so that nothing can fail once the writer holds the ack.
            message.progress.stage = "store"
            self.writer.add(message.topic, message.payload, batch, message.ack)

    def _use(self, message: Message) -> ReadingBatch:
        """Validate a reading batch and show it (table, stream, accounting); raise if not."""
        progress = message.progress
        progress.stage = "parse"
        batch = reading_batch(message.topic, message.payload)
        progress.stage = "validate"
        self.window.check_batch(batch, datetime.now(UTC))
        if self.latest is not None:
            self.latest.admit(batch)
            progress.stage = "latest table"
            self.latest.update(batch)
        progress.stage = "live stream"
        self.hub.readings(batch)
        if self.accounting is not None:
            progress.stage = "accounting"
            self.accounting.feed(batch)
        return batch

    async def subscribe_forever(self) -> None:
        await self.ingest.run()

    def status_line(self) -> str:
        api = self._config.api
        dashboard = f"dashboard http://{api.listen}/\n" if api is not None else ""
        return dashboard + (
            f"messages {self.messages}  values stored {self.writer.values_written}  "
            f"spooled {self.spool.depth}  dead letters {self.dead_letters.count}  "
            f"missing batches {self.sequences.missing}  (Ctrl-C to stop)"
        )

    async def show_table(self, latest: LatestReadings) -> None:
        while True:
            table = render(latest.rows(), datetime.now(UTC), self.status_line())
            # Home the cursor and clear below, so the table refreshes in place.
            sys.stdout.write("\x1b[H\x1b[J" + table + "\n")
            sys.stdout.flush()
            await asyncio.sleep(1.0)


async def run_collector(config: CollectorConfig, table: bool) -> None:
    metrics = CollectorMetrics()
    raw_store = open_store(config)
    retention = await asyncio.to_thread(store_retention, raw_store)
    store = metrics.timed(raw_store)
    collector = Collector(config, store, table, retention)
    metrics.watch(collector)
    if collector.accounting is not None and collector.accounting.notices is not None:
        from collector.notify.notifier import NotifierMetrics  # noqa: PLC0415

        metrics.registry.register(NotifierMetrics(collector.accounting.notices.notifier))
    log.info(
        "collector starting",
        extra=fields(
            broker=redact_url(config.mqtt.url),
            store=redact_url(config.influxdb.url) if config.influxdb else "embedded sqlite",
            data_dir=str(config.data_dir),
            spooled=collector.spool.depth,
            accepted_days=collector.window.max_age.days,
        ),
    )
    # SIGTERM stops as Ctrl-C does: what is pending is made durable before exit (and
    # what cannot be acknowledged any more is delivered again by the broker).
    main = asyncio.current_task()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        if main is not None:
            main.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(collector.writer.run())
            tasks.create_task(collector.subscribe_forever())
            if table and collector.latest is not None:
                tasks.create_task(collector.show_table(collector.latest))
            if collector.accounting is not None:
                tasks.create_task(collector.accounting.run())
            if config.api is not None:
                from collector.api.server import Api  # noqa: PLC0415 - only when configured

                tasks.create_task(Api(collector, config, metrics).run())
            if config.alert_rules is not None:
                from collector.notify.watch import watcher_for  # noqa: PLC0415

                tasks.create_task(watcher_for(config, collector).run())
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
    finally:
        await collector.writer.flush()
        log.info(
            "collector stopped",
            extra=fields(
                messages=collector.messages,
                values_stored=collector.writer.values_written,
                spooled=collector.spool.depth,
                dead_letters=collector.dead_letters.count,
                sequence_repeats=collector.sequences.repeats,
                missing_batches=collector.sequences.missing,
            ),
        )
        collector.spool.close()
        if collector.accounting is not None:
            collector.accounting.close()
        store.close()
