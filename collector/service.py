"""`energy-collector run`: subscribe to every agent, validate, store."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from datetime import UTC, datetime

import aiomqtt

from agent.backoff import Backoff
from agent.logs import fields
from agent.wire import BrokerSettings, Topic, subscription
from collector.config import CollectorConfig
from collector.deadletters import DeadLetters
from collector.livetable import LatestReadings, render
from collector.stores import Store
from collector.validate import Rejected, reading_batch
from collector.writer import BatchWriter

log = logging.getLogger(__name__)

DEAD_LETTERS_FILE = "dead-letters.jsonl"
EMBEDDED_STORE_FILE = "readings.sqlite"


def open_store(config: CollectorConfig) -> Store:
    if config.influxdb is not None:
        from collector.stores.influx import InfluxStore  # noqa: PLC0415 - only when configured

        influx = config.influxdb
        return InfluxStore(
            influx.url, influx.org, influx.bucket, influx.token.get_secret_value(), influx.timeout
        )
    from collector.stores.sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore(config.data_dir / EMBEDDED_STORE_FILE)


def _client(mqtt: BrokerSettings) -> aiomqtt.Client:
    return aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        identifier=mqtt.client_id or f"greengauge-collector-{socket.gethostname()}",
        keepalive=mqtt.keepalive,
        clean_session=False,
        tls_context=ssl.create_default_context() if mqtt.tls else None,
    )


class Collector:
    def __init__(self, config: CollectorConfig, store: Store) -> None:
        self._config = config
        self.dead_letters = DeadLetters(config.data_dir / DEAD_LETTERS_FILE)
        self.writer = BatchWriter(store, config.write, self.dead_letters)
        self.latest = LatestReadings()
        self.messages = 0

    def handle(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        try:
            batch = reading_batch(topic, payload)
        except Rejected as exc:
            self.dead_letters.add(topic, payload, str(exc))
            return
        self.writer.add(topic, payload, batch)
        self.latest.update(batch)

    async def subscribe_forever(self) -> None:
        mqtt = self._config.mqtt
        backoff = Backoff()
        while True:
            try:
                async with _client(mqtt) as client:
                    # Subscribing on every connect: a broker that lost its state still delivers.
                    await client.subscribe(subscription(Topic.READINGS), qos=1)
                    backoff.reset()
                    log.info("subscribed", extra=fields(broker=mqtt.url))
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes):
                            payload = str(payload).encode()
                        self.handle(message.topic.value, payload)
            except aiomqtt.MqttError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "broker connection lost",
                    extra=fields(broker=mqtt.url, reason=str(exc), retry_in=f"{delay:.1f}s"),
                )
                await asyncio.sleep(delay)

    def status_line(self) -> str:
        return (
            f"messages {self.messages}  values stored {self.writer.values_written}  "
            f"dead letters {self.dead_letters.count}  (Ctrl-C to stop)"
        )

    async def show_table(self) -> None:
        while True:
            table = render(self.latest.rows(), datetime.now(UTC), self.status_line())
            # Home the cursor and clear below, so the table refreshes in place.
            sys.stdout.write("\x1b[H\x1b[J" + table + "\n")
            sys.stdout.flush()
            await asyncio.sleep(1.0)


async def run_collector(config: CollectorConfig, table: bool) -> None:
    store = open_store(config)
    collector = Collector(config, store)
    log.info(
        "collector starting",
        extra=fields(
            broker=config.mqtt.url,
            store=config.influxdb.url if config.influxdb else "embedded sqlite",
            data_dir=str(config.data_dir),
        ),
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(collector.writer.run())
            tasks.create_task(collector.subscribe_forever())
            if table:
                tasks.create_task(collector.show_table())
    finally:
        await collector.writer.flush()
        store.close()
