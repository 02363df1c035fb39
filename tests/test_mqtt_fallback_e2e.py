"""Every MQTT client of both programs falls back to 3.1.1 when a broker refuses MQTT 5.

The broker is the real mosquitto behind a loopback proxy that answers an MQTT 5 CONNECT
as a 3.1.1-only broker does (CONNACK "unacceptable protocol version", then close) and
passes 3.1.1 connections through: the agent's publisher, the collector's subscription
and its alerts publisher must each end up connected in 3.1.1 and move their messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from processes import wait_for
from servers import HOST, Mosquitto, free_port

from agent.config import AgentConfig
from agent.publish.outbox import Outbox
from agent.publish.publisher import Publisher
from collector.accounting.core.alerts import AlarmState, AlertEvent, EventKind, Phase
from collector.accounting.db import AccountingDB
from collector.alerts_publisher import AlertsPublisher
from collector.ingest import Ingest, Message
from greengauge.common.broker import BrokerSettings
from greengauge.contract import MeterReading, Quantity, ReadingBatch, alerts_topic

pytestmark = pytest.mark.e2e
T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)


class Refusing:
    """Refuses MQTT 5 CONNECTs as a 3.1.1 broker does; relays everything else."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.port = free_port()
        self.connects: Counter[int] = Counter()  # protocol level -> CONNECT packets seen

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(1)
        length, shift, size_bytes = 0, 0, b""
        while True:  # the remaining length, a variable byte integer
            byte = await reader.readexactly(1)
            size_bytes += byte
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        body = await reader.readexactly(length)
        level = body[6]  # after the 2-byte length and "MQTT"
        self.connects[level] += 1
        if level == 5:
            writer.write(bytes([0x20, 0x02, 0x00, 0x01]))
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(HOST, self.broker_port)
        up_writer.write(head + size_bytes + body)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[BrokerSettings]:
        server = await asyncio.start_server(self._client, HOST, self.port)
        try:
            yield BrokerSettings(url=f"mqtt://{HOST}:{self.port}")
        finally:
            server.close()


def watch(mosquitto: Mosquitto, topic: str) -> tuple[paho.Client, list[bytes]]:
    seen: list[bytes] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}")
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, m: seen.append(bytes(m.payload))
    client.connect(HOST, mosquitto.port)
    client.loop_start()
    return client, seen


async def test_the_agent_publisher_falls_back_and_publishes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    refusing = Refusing(mosquitto.port)
    watcher, seen = watch(mosquitto, "greengauge/v1/s/a/readings")
    async with refusing.serving() as broker:
        config = AgentConfig.model_validate(
            {
                "site": "s",
                "agent_id": "a",
                "mqtt": {"url": broker.url},
                "meters": [{"id": "m1", "profile": "eastron_sdm630", "modbus": {"host": "x"}}],
                "state_dir": str(tmp_path),
            }
        )
        publisher = Publisher(config, Outbox(tmp_path / "outbox.sqlite"), {})
        running = asyncio.create_task(publisher.run())
        try:
            publisher.submit(MeterReading(meter="m1", ts=T0, values={Quantity.POWER_ACTIVE: 7}))
            await asyncio.to_thread(wait_for, lambda: seen, 15, "the batch at the broker")
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    watcher.loop_stop()
    [batch] = [ReadingBatch.model_validate_json(p) for p in seen]
    assert batch.readings[0].values[Quantity.POWER_ACTIVE] == 7
    assert refusing.connects[5] == 1
    assert refusing.connects[4] >= 1


async def test_the_collector_subscription_falls_back_and_receives(mosquitto: Mosquitto) -> None:
    refusing = Refusing(mosquitto.port)
    received: list[Message] = []
    async with refusing.serving() as broker:
        ingest = Ingest(broker, "fallback-ingest", "fallback/#", received.append)
        running = asyncio.create_task(ingest.run())
        try:
            await asyncio.to_thread(wait_for, lambda: ingest.connected, 15, "subscribed")
            sender = paho.Client(CallbackAPIVersion.VERSION2)
            sender.connect(HOST, mosquitto.port)
            sender.loop_start()
            sender.publish("fallback/x", b"hello", qos=1).wait_for_publish(5)
            sender.loop_stop()
            await asyncio.to_thread(wait_for, lambda: received, 15, "the message")
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert [(m.topic, m.payload) for m in received] == [("fallback/x", b"hello")]
    assert refusing.connects[5] == 1


async def test_the_alerts_publisher_falls_back_and_publishes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db = AccountingDB(tmp_path / "accounting.sqlite")
    event = AlertEvent("kiln", EventKind.RAISED, T0, T0 - timedelta(minutes=15), 130.0, 120.0)
    [alert_id] = db.save_alarm(
        "s", "kiln", AlarmState(Phase.ACTIVE, None, T0), [event], "rolling_1h", "kgce/t", "b"
    )
    refusing = Refusing(mosquitto.port)
    watcher, seen = watch(mosquitto, alerts_topic("s"))
    async with refusing.serving() as broker:
        publisher = AlertsPublisher(broker, "fallback-alerts", db)
        running = asyncio.create_task(publisher.run())
        try:
            await asyncio.to_thread(wait_for, lambda: seen, 15, "the alert at the broker")
            await asyncio.to_thread(
                wait_for, lambda: not db.alerts(unpublished=True), 15, "marked published"
            )
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    watcher.loop_stop()
    assert [json.loads(p)["id"] for p in seen] == [alert_id]
    assert refusing.connects[5] == 1
