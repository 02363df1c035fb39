"""The outbox to the broker: a batch leaves the outbox only when the broker acknowledged
it (QoS 1 PUBACK).

While connected, new batches are published at once ("live"); whatever was waiting when
the connection came up (the backlog) is sent beside them, oldest first, at
`outbox.drain_rate` batches per second, so current values show at once and a long
backlog does not flood the broker and the collector. The retained status goes out on
connect, periodically and when something changed; the last will says offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Final

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from agent.config import AgentConfig
from agent.publish.mqttclient import CheckedClient
from agent.publish.outbox import Entry, Outbox, OutboxError
from greengauge.common.backoff import Backoff
from greengauge.common.clientid import client_id
from greengauge.common.files import DiskFault
from greengauge.common.logs import fields
from greengauge.common.mqtt import Protocol, reason_value, stay_connected
from greengauge.common.secrets import redact_url
from greengauge.common.tls import ssl_context
from greengauge.contract import AgentState, Topic, topic

log = logging.getLogger(__name__)

# Backlog batches awaiting their PUBACK at once: keeps the drain rate reachable over
# a link with a long round trip, without flooding the broker's in-flight window.
DRAIN_WINDOW: Final = 10
PUBLISH_TIMEOUT: Final = 15.0


def refusal(exc: BaseException) -> int | None:
    """The CONNACK code of a refused connect, for the protocol fallback."""
    return reason_value(exc.rc) if isinstance(exc, MqttConnectError) else None


class Forwarder:
    def __init__(
        self,
        config: AgentConfig,
        outbox: Outbox,
        disk: DiskFault,
        live: asyncio.Queue[int],
        status: Callable[[AgentState, datetime], bytes],
    ) -> None:
        """`live`: sequence numbers of batches committed now; `status(state, connected)`
        builds the status message."""
        self._config = config
        self._outbox = outbox
        self._disk = disk
        self._live = live
        self._status = status
        self._readings_topic = topic(config.site, config.agent_id, Topic.READINGS)
        self._status_topic = topic(config.site, config.agent_id, Topic.STATUS)
        self._protocol = Protocol(config.mqtt)
        # When the current broker connection began, in every status of it and its last will.
        self._connected_at = datetime.now(UTC)
        self.status_changed = asyncio.Event()
        self.sent = asyncio.Event()  # set on every acknowledged batch
        self.connected = False
        self.published_batches = 0
        self.published_readings = 0

    def _client(self) -> aiomqtt.Client:
        mqtt = self._config.mqtt
        self._connected_at = datetime.now(UTC)
        return CheckedClient(
            mqtt.host,
            mqtt.port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            identifier=client_id(
                mqtt, f"greengauge-agent-{self._config.site}-{self._config.agent_id}"
            ),
            protocol=aiomqtt.ProtocolVersion(self._protocol.version.value),
            keepalive=mqtt.keepalive,
            timeout=PUBLISH_TIMEOUT,
            will=aiomqtt.Will(
                self._status_topic,
                self._status(AgentState.OFFLINE, self._connected_at),
                qos=1,
                retain=True,
            ),
            tls_context=ssl_context(mqtt),
        )

    async def run(self) -> None:
        await stay_connected(
            self._config.mqtt,
            self._protocol,
            self._connection,
            (aiomqtt.MqttError,),
            refusal,
            lambda: {"backlog": self._outbox.depth},
        )

    async def _connection(self, backoff: Backoff) -> None:
        try:
            async with self._client() as client:
                self.connected = True
                backoff.reset()
                log.info(
                    "connected to broker",
                    extra=fields(
                        broker=redact_url(self._config.mqtt.url),
                        mqtt=self._protocol.name,
                        backlog=self._outbox.depth,
                    ),
                )
                await self._session(client)
        finally:
            self.connected = False

    async def _session(self, client: aiomqtt.Client) -> None:
        # Everything committed before this point is backlog; later batches are live.
        backlog_end = self._outbox.next_seq
        await self._publish_status(client)
        await until_one_fails(
            self._watch(client),
            self._send_live(client, backlog_end),
            self._drain(client, backlog_end),
            self._status_forever(client),
        )

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Raises MqttError as soon as the connection drops, even while nothing is sent."""
        async for _ in client.messages:
            pass

    async def _publish(self, client: aiomqtt.Client, entry: Entry) -> None:
        # publish() returns once the broker's PUBACK arrived (QoS 1): only then is the
        # batch the broker's responsibility and may leave the outbox.
        await client.publish(self._readings_topic, entry.payload, qos=1)
        self.sent.set()
        try:
            removed = self._outbox.remove(entry.seq)
        except OutboxError as exc:
            # The broker has it; left in the outbox, it is sent again later (a repeat the
            # collector recognises by its sequence number).
            self._disk.failed(exc.__cause__ or exc)
            return
        if removed:
            self.published_batches += 1
            self.published_readings += entry.readings

    async def _send_live(self, client: aiomqtt.Client, backlog_end: int) -> None:
        while True:
            seq = await self._live.get()
            if seq < backlog_end:
                continue  # committed before this connection: the drain sends it
            entry = self._outbox.get(seq)
            if entry is not None:  # None: already dropped by the outbox limits
                await self._publish(client, entry)

    async def _drain(self, client: aiomqtt.Client, backlog_end: int) -> None:
        """Send the backlog, oldest first, at the configured rate beside the live batches."""
        first = self._outbox.oldest(before=backlog_end)
        if not first:
            return
        interval = 1.0 / self._config.outbox.drain_rate
        window = asyncio.Semaphore(DRAIN_WINDOW)
        sending: set[asyncio.Task[None]] = set()
        started = next_at = time.monotonic()
        cursor, sent = first[0].seq - 1, 0
        log.info(
            "sending backlog",
            extra=fields(
                batches=backlog_end - first[0].seq,
                first_seq=first[0].seq,
                rate=f"{self._config.outbox.drain_rate:g}/s",
            ),
        )

        async def send(entry: Entry) -> None:
            try:
                await self._publish(client, entry)
            finally:
                window.release()

        try:
            while entries := self._outbox.oldest(after=cursor, before=backlog_end):
                entry = entries[0]
                cursor = entry.seq
                await window.acquire()
                for task in [t for t in sending if t.done()]:
                    sending.discard(task)
                    task.result()  # a failed publish ends the session
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic()) + interval
                sending.add(asyncio.create_task(send(entry)))
                sent += 1
            await asyncio.gather(*sending)
        finally:
            for task in sending:
                task.cancel()
        seconds = time.monotonic() - started
        log.info(
            "backlog sent",
            extra=fields(
                batches=sent, seconds=f"{seconds:.1f}", rate=f"{sent / max(seconds, 1e-3):.1f}/s"
            ),
        )
        self.status_changed.set()

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        status = self._status(AgentState.ONLINE, self._connected_at)
        await client.publish(self._status_topic, status, qos=1, retain=True)

    async def _status_forever(self, client: aiomqtt.Client) -> None:
        """Retained status, republished periodically and when the outbox changes state."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.status_changed.wait(), self._config.status_interval)
            self.status_changed.clear()
            await self._publish_status(client)


async def until_one_fails(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run side by side until one raises (re-raised) or all return; cancel the rest."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
