"""The agent's MQTT session: birth and last will, reading batches published with QoS 1."""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, datetime

import aiomqtt

from agent.backoff import Backoff
from agent.config import AgentConfig
from agent.logs import fields
from agent.wire import (
    AgentState,
    AgentStatus,
    MeterReading,
    ReadingBatch,
    Topic,
    topic,
)

log = logging.getLogger(__name__)

MAX_READINGS_PER_BATCH = 1000


class Publisher:
    """Collects readings from every poller and publishes them, one batch per message."""

    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self._queue: asyncio.Queue[MeterReading] = asyncio.Queue()
        self._readings_topic = topic(config.site, config.agent_id, Topic.READINGS)
        self._status_topic = topic(config.site, config.agent_id, Topic.STATUS)
        self._seq = 0
        self._pending: ReadingBatch | None = None
        self.published_readings = 0

    def submit(self, reading: MeterReading) -> None:
        self._queue.put_nowait(reading)

    def _status(self, state: AgentState) -> bytes:
        message = AgentStatus(
            site=self._config.site,
            agent=self._config.agent_id,
            state=state,
            ts=datetime.now(UTC),
        )
        return message.model_dump_json().encode()

    def _client(self) -> aiomqtt.Client:
        mqtt = self._config.mqtt
        return aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            identifier=mqtt.client_id
            or f"greengauge-agent-{self._config.site}-{self._config.agent_id}",
            keepalive=mqtt.keepalive,
            will=aiomqtt.Will(
                self._status_topic, self._status(AgentState.OFFLINE), qos=1, retain=True
            ),
            tls_context=ssl.create_default_context() if mqtt.tls else None,
        )

    async def run(self) -> None:
        """Publish forever, reconnecting with backoff; a batch is dropped only once acknowledged."""
        backoff = Backoff()
        while True:
            try:
                async with self._client() as client:
                    backoff.reset()
                    log.info("connected to broker", extra=fields(broker=self._config.mqtt.url))
                    await client.publish(
                        self._status_topic, self._status(AgentState.ONLINE), qos=1, retain=True
                    )
                    await self._publish_forever(client)
            except aiomqtt.MqttError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "broker connection lost",
                    extra=fields(
                        broker=self._config.mqtt.url, reason=str(exc), retry_in=f"{delay:.1f}s"
                    ),
                )
                await asyncio.sleep(delay)

    async def _publish_forever(self, client: aiomqtt.Client) -> None:
        while True:
            if self._pending is None:
                self._pending = await self._next_batch()
            # publish() returns once the broker's PUBACK arrived (QoS 1).
            await client.publish(
                self._readings_topic, self._pending.model_dump_json().encode(), qos=1
            )
            self.published_readings += len(self._pending.readings)
            self._pending = None
            self._seq += 1

    async def _next_batch(self) -> ReadingBatch:
        readings = [await self._queue.get()]
        while len(readings) < MAX_READINGS_PER_BATCH and not self._queue.empty():
            readings.append(self._queue.get_nowait())
        return ReadingBatch(
            site=self._config.site, agent=self._config.agent_id, seq=self._seq, readings=readings
        )
