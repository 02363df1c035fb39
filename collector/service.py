"""`energy-collector run`: subscribe to every agent, validate, store."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from agent.files import open_state
from agent.logs import fields
from agent.wire import BrokerSettings, Topic, subscription
from collector import sequences
from collector.accounting.live import accounting_for
from collector.api.live import LiveHub
from collector.api.status import AgentStatuses
from collector.config import CollectorConfig
from collector.deadletters import DeadLetters
from collector.ingest import Ingest, Message
from collector.livetable import LatestReadings, render
from collector.metrics import CollectorMetrics
from collector.spool import Spool
from collector.stores import Store
from collector.validate import Rejected, reading_batch
from collector.writer import BatchWriter

log = logging.getLogger(__name__)

DEAD_LETTERS_FILE = "dead-letters.jsonl"
EMBEDDED_STORE_FILE = "readings.sqlite"
SPOOL_FILE = "spool.sqlite"
SEQUENCES_FILE = "sequences.json"


def _noop() -> None:
    pass


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


class Collector:
    def __init__(self, config: CollectorConfig, store: Store, table: bool = False) -> None:
        self._config = config
        data_dir = config.data_dir
        self.dead_letters = DeadLetters(data_dir / DEAD_LETTERS_FILE)
        spool = data_dir / SPOOL_FILE
        self.spool = open_state(spool, lambda: Spool(spool), "spool")
        self.sequences = sequences.load(data_dir / SEQUENCES_FILE)
        self.writer = BatchWriter(
            store,
            config.write,
            self.dead_letters,
            self.spool,
            self.sequences,
            data_dir / SEQUENCES_FILE,
        )
        # Kept only for its readers, the terminal table and the API: per reading, it is a
        # measurable share of the collector's CPU at hundreds of thousands of values a second.
        self.latest = LatestReadings() if table or config.api is not None else None
        self.messages = 0
        # The API's view (issue 6): agents' status messages, the live event stream.
        self.statuses = AgentStatuses()
        self.hub = LiveHub()
        self.ingest = Ingest(
            config.mqtt,
            client_id(config.mqtt),
            subscription(Topic.READINGS),
            self.receive,
            config.ingest.receive_maximum,
        )
        # Energy and carbon accounting (issue 5): None without a plant model.
        self.accounting = accounting_for(config, self.dead_letters)

    def receive(self, message: Message) -> None:
        self.handle(message.topic, message.payload, message.ack)

    def handle(self, topic: str, payload: bytes, ack: Callable[[], None] = _noop) -> None:
        """One message: dead-lettered now, or batched for the store; `ack` once durable."""
        self.messages += 1
        try:
            batch = reading_batch(topic, payload)
        except Rejected as exc:
            self.dead_letters.add(topic, payload, str(exc), ack)
            return
        self.writer.add(topic, payload, batch, ack)
        if self.latest is not None:
            self.latest.update(batch)
        self.hub.readings(batch)
        if self.accounting is not None:
            self.accounting.feed(batch)

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
    store = metrics.timed(open_store(config))
    collector = Collector(config, store, table)
    metrics.watch(collector)
    log.info(
        "collector starting",
        extra=fields(
            broker=config.mqtt.url,
            store=config.influxdb.url if config.influxdb else "embedded sqlite",
            data_dir=str(config.data_dir),
            spooled=collector.spool.depth,
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
