"""The agent's MQTT session: readings through the disk outbox to the broker, and status.

Readings from the pollers are committed to the outbox in batches (within BATCH_LINGER
of being read), and a batch leaves the outbox only when the broker acknowledged it
(QoS 1 PUBACK). While connected, new batches are published at once ("live"); whatever
was waiting when the connection came up (the backlog) is sent beside them, oldest
first, at `outbox.drain_rate` batches per second, so current values show at once and a
long backlog does not flood the broker and the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from agent.config import AgentConfig
from agent.mqttclient import CheckedClient
from agent.outbox import Dropped, Entry, Outbox, OutboxError
from greengauge.common.backoff import Backoff
from greengauge.common.files import DiskFault, write_atomically
from greengauge.common.logs import fields
from greengauge.common.mqtt import Protocol, reason_value, stay_connected
from greengauge.common.secrets import redact_url
from greengauge.common.tls import ssl_context
from greengauge.contract import (
    AgentState,
    AgentStatus,
    MeterHealth,
    MeterReading,
    MeterState,
    OutboxHealth,
    ReadingBatch,
    Topic,
    topic,
)

log = logging.getLogger(__name__)

MAX_READINGS_PER_BATCH: Final = 100
# About 4,000 values, 150 KB of JSON. A batch exists in several copies at once (JSON,
# SQLite, the MQTT packet): at 500 meters, five batches a tick instead of one keep a
# small gateway's memory ~3.5 MiB lower for four more commits a second (~1 % of its CPU).
# Pollers read on the same wall-clock tick; waiting this long after the first reading
# puts one tick's readings in one batch (and one fsync) instead of one per meter.
BATCH_LINGER: Final = 0.1
# Backlog batches awaiting their PUBACK at once: keeps the drain rate reachable over
# a link with a long round trip, without flooding the broker's in-flight window.
DRAIN_WINDOW: Final = 10
PUBLISH_TIMEOUT: Final = 15.0
STATS_FILE: Final = "stats.json"
# Readings kept in memory while the outbox cannot be written (disk full, read-only):
# beyond this, the oldest are dropped, counted and logged.
MAX_UNSAVED_READINGS: Final = 20_000
OUTBOX_FILE: Final = "outbox.sqlite"


def refusal(exc: BaseException) -> int | None:
    """The CONNACK code of a refused connect, for the protocol fallback."""
    return reason_value(exc.rc) if isinstance(exc, MqttConnectError) else None


class Publisher:
    """Batches readings into the outbox and forwards the outbox to the broker."""

    def __init__(
        self, config: AgentConfig, outbox: Outbox, meters: Mapping[str, MeterHealth]
    ) -> None:
        """`meters`: each meter's health as its poller keeps it, read when a status is built."""
        self._config = config
        self._outbox = outbox
        self._queue: asyncio.Queue[MeterReading] = asyncio.Queue()
        self._held: list[MeterReading] = []
        self._connected = False
        self._sent = asyncio.Event()  # set on every acknowledged batch
        self._live: asyncio.Queue[int] = asyncio.Queue()
        self._readings_topic = topic(config.site, config.agent_id, Topic.READINGS)
        self._status_topic = topic(config.site, config.agent_id, Topic.STATUS)
        self._status_changed = asyncio.Event()
        self._meters = meters
        self._protocol = Protocol(config.mqtt)
        # When the current broker connection began, in every status of it and its last will.
        self._connected_at = datetime.now(UTC)
        self._stats_path = config.state_dir / STATS_FILE
        self.published_batches = 0
        self.published_readings = 0
        # Batches of readings the outbox could not take yet, oldest first.
        self._unsaved: list[list[MeterReading]] = []
        self._unsaved_backoff = Backoff(start=0.2, ceiling=10.0)
        self.unsaved_dropped = 0
        self.outbox_disk = DiskFault("outbox", outbox.path)
        self.stats_disk = DiskFault("stats", self._stats_path)

    @property
    def connected(self) -> bool:
        """Whether a broker connection is up now (for the metrics)."""
        return self._connected

    def submit(self, reading: MeterReading) -> None:
        self._queue.put_nowait(reading)

    def meter_state_changed(self, meter: str, state: MeterState) -> None:
        """A meter went offline or came back: a status is published at once."""
        log.debug("meter state changed", extra=fields(meter=meter, state=state.value))
        self._status_changed.set()

    # -- readings into the outbox ------------------------------------------------------

    def _commit(self, readings: list[MeterReading]) -> int:
        config = self._config

        def build(seq: int) -> bytes:
            batch = ReadingBatch(
                site=config.site, agent=config.agent_id, seq=seq, readings=readings
            )
            # Bytes straight from the serializer: model_dump_json() would make a str of the
            # whole batch (750 KB at 500 meters) only to encode it again.
            return batch.__pydantic_serializer__.to_json(batch)

        seq, dropped = self._outbox.add(build, len(readings))
        self._report_dropped(dropped)
        self._live.put_nowait(seq)
        return seq

    def _report_dropped(self, dropped: Dropped) -> None:
        if not dropped.batches:
            return
        self._status_changed.set()
        log.warning(
            "outbox full: oldest batches dropped",
            extra=fields(
                batches=dropped.batches,
                readings=dropped.readings,
                first_seq=dropped.first_seq,
                last_seq=dropped.last_seq,
                dropped_total=self._outbox.dropped_batches,
                depth=self._outbox.depth,
            ),
        )

    async def _batch_forever(self) -> None:
        while True:
            # Held on the object, not a local: a shutdown during the linger commits them.
            self._held.append(await self._queue.get())
            await asyncio.sleep(BATCH_LINGER)
            # What came meanwhile goes now, in as many batches as it takes (none when a
            # shutdown took the readings meanwhile).
            while self._held or not self._queue.empty():
                while len(self._held) < MAX_READINGS_PER_BATCH and not self._queue.empty():
                    self._held.append(self._queue.get_nowait())
                readings, self._held = self._held, []
                self._unsaved.append(readings)
                while (error := self._save_unsaved()) is not None:
                    delay = self._unsaved_backoff.next_delay()
                    self.outbox_disk.failed(error, delay)
                    await asyncio.sleep(delay)
                    self._take_queued()
                self._unsaved_backoff.reset()

    def _save_unsaved(self) -> BaseException | None:
        """Commit the batches waiting for the outbox, oldest first; the error if it cannot."""
        while self._unsaved:
            try:
                self._commit(self._unsaved[0])
            except OutboxError as exc:
                return exc.__cause__ or exc
            self._unsaved.pop(0)
        self.outbox_disk.ok()
        return None

    def _take_queued(self) -> None:
        """While the outbox cannot be written: the readings that came meanwhile join the
        waiting batches, and beyond MAX_UNSAVED_READINGS the oldest are dropped, counted."""
        while not self._queue.empty():
            readings = [self._queue.get_nowait()]
            while len(readings) < MAX_READINGS_PER_BATCH and not self._queue.empty():
                readings.append(self._queue.get_nowait())
            self._unsaved.append(readings)
        dropped = 0
        while sum(len(b) for b in self._unsaved) > MAX_UNSAVED_READINGS:
            dropped += len(self._unsaved.pop(0))
        if dropped:
            self.unsaved_dropped += dropped
            log.warning(
                "outbox cannot be written: oldest readings in memory dropped",
                extra=fields(readings=dropped, dropped_total=self.unsaved_dropped),
            )

    def _commit_queued(self) -> None:
        """On shutdown: whatever readings are still in memory go to the outbox."""
        readings, self._held = self._held, []
        while not self._queue.empty():
            readings.append(self._queue.get_nowait())
        for start in range(0, len(readings), MAX_READINGS_PER_BATCH):
            self._unsaved.append(readings[start : start + MAX_READINGS_PER_BATCH])
        error = self._save_unsaved()
        if error is not None:
            lost = sum(len(b) for b in self._unsaved)
            log.error(
                "outbox cannot be written: readings in memory lost at shutdown",
                extra=fields(readings=lost, path=str(self._outbox.path), error=str(error)),
            )
            self.unsaved_dropped += lost
            self._unsaved = []

    # -- the outbox to the broker ------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        mqtt = self._config.mqtt
        self._connected_at = datetime.now(UTC)
        return CheckedClient(
            mqtt.host,
            mqtt.port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            identifier=mqtt.client_id
            or f"greengauge-agent-{self._config.site}-{self._config.agent_id}",
            protocol=aiomqtt.ProtocolVersion(self._protocol.version.value),
            keepalive=mqtt.keepalive,
            timeout=PUBLISH_TIMEOUT,
            will=aiomqtt.Will(
                self._status_topic, self._status(AgentState.OFFLINE), qos=1, retain=True
            ),
            tls_context=ssl_context(mqtt),
        )

    async def _connect_forever(self) -> None:
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
                self._connected = True
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
            self._connected = False

    async def _session(self, client: aiomqtt.Client) -> None:
        # Everything committed before this point is backlog; later batches are live.
        backlog_end = self._outbox.next_seq
        await client.publish(
            self._status_topic, self._status(AgentState.ONLINE), qos=1, retain=True
        )
        await _until_one_fails(
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
        self._sent.set()
        try:
            removed = self._outbox.remove(entry.seq)
        except OutboxError as exc:
            # The broker has it; left in the outbox, it is sent again later (a repeat the
            # collector recognises by its sequence number).
            self.outbox_disk.failed(exc.__cause__ or exc)
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
        self._status_changed.set()

    # -- status and stats --------------------------------------------------------------

    def _health(self) -> OutboxHealth:
        oldest = self._outbox.oldest_created()
        return OutboxHealth(
            depth=self._outbox.depth,
            oldest=None if oldest is None else datetime.fromtimestamp(oldest, UTC),
            dropped=self._outbox.dropped_batches,
        )

    def _status(self, state: AgentState) -> bytes:
        message = AgentStatus(
            site=self._config.site,
            agent=self._config.agent_id,
            state=state,
            ts=datetime.now(UTC),
            connected=self._connected_at,
            outbox=self._health() if state is AgentState.ONLINE else None,
            meters=dict(self._meters) if state is AgentState.ONLINE else {},
        )
        return message.model_dump_json().encode()

    async def _status_forever(self, client: aiomqtt.Client) -> None:
        """Retained status, republished periodically and when the outbox changes state."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_changed.wait(), self._config.status_interval)
            self._status_changed.clear()
            await client.publish(
                self._status_topic, self._status(AgentState.ONLINE), qos=1, retain=True
            )

    def stats(self) -> dict[str, Any]:
        outbox = self._outbox
        return {
            "readings_taken": outbox.readings_taken,
            "next_seq": outbox.next_seq,
            "outbox_depth": outbox.depth,
            "dropped_batches": outbox.dropped_batches,
            "dropped_readings": outbox.dropped_readings,
            "published_batches": self.published_batches,
            "published_readings": self.published_readings,
            "dropped_unsaved_readings": self.unsaved_dropped,
            "written": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }

    def report(self, final: bool = False) -> None:
        """Log the counters and write them to the stats file (also at shutdown)."""
        stats = self.stats()
        log.info(
            "agent stopped: readings taken" if final else "readings taken",
            extra=fields(
                taken=stats["readings_taken"],
                published=stats["published_readings"],
                backlog=stats["outbox_depth"],
                dropped_batches=stats["dropped_batches"],
                dropped_readings=stats["dropped_readings"],
            ),
        )
        try:
            write_atomically(self._stats_path, json.dumps(stats, indent=2) + "\n")
        except OSError as exc:
            self.stats_disk.failed(exc, self._config.status_interval)
        else:
            self.stats_disk.ok()

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.status_interval)
            try:
                self._report_dropped(self._outbox.prune())
            except OutboxError as exc:
                self.outbox_disk.failed(exc.__cause__ or exc)
            self.report()

    async def shutdown(self, grace: float) -> None:
        """Before stopping: commit what is held, and give the live sender `grace` seconds
        to send what the outbox holds, while connected."""
        self._commit_queued()
        deadline = time.monotonic() + grace
        while self._outbox.depth and self._connected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent.wait(), remaining)

    async def run(self) -> None:
        """Batch, store and forward until cancelled; then commit and report what is left."""
        try:
            await _until_one_fails(
                self._batch_forever(), self._connect_forever(), self._report_forever()
            )
        finally:
            self._commit_queued()
            self.report(final=True)


async def _until_one_fails(*coroutines: Coroutine[Any, Any, None]) -> None:
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
