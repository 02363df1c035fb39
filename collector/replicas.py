"""Several collectors sharing the readings: MQTT 5 shared subscription, one sequence view.

Replicas subscribe to `$share/<group>/greengauge/v1/+/+/readings`, each with a client id
and a persistent session of its own, so the broker hands each agent's batches round
robin to whichever replicas are subscribed. A replica's own sequence tracker would then
see every N-th batch of an agent and report the others as gaps. Instead, once a write
is durable and before its messages are acknowledged, a replica publishes a *stored
notice* (the site, agent and seq of each batch, QoS 1, awaited until the broker has it)
on `STORED_TOPIC`, and every replica subscribes to the notices of all of them with a
session of its own: each tracks the union of what the replicas stored, the same view
everywhere.

A batch is never acknowledged before its notice is at the broker, so a replica that
dies in between leaves the batch unacknowledged: it is delivered again and noticed
again (a repeat). Replicas write at different moments, so notices of one agent arrive
out of order by up to a write's duration: a seq that would open a gap waits up to
`grace` seconds for the ones before it (`SharedSequences`), so that such an interleaving
never opens one. A batch that trails by more (it waits in a replica that is down, or in
a replica's spool) opens a gap that is filled once it is stored: `missing` counts only
what is not stored anywhere yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.batch import Batch
from collector.ingest import Message
from collector.sequences import SequenceTracker, see_all
from greengauge.common.backoff import Backoff
from greengauge.common.broker import BrokerSettings
from greengauge.common.files import DiskFault, write_atomically
from greengauge.common.logs import fields
from greengauge.common.mqtt import Connection, Protocol, paho_client, stay_connected

log = logging.getLogger(__name__)

STORED_TOPIC: Final = "greengauge/collectors/stored"
"""Where replicas say which batches they stored: outside greengauge/v1/, where an agent
whose ids spelt such a topic could publish under its own prefix (the ACL's
greengauge/v1/SITE/AGENT/# also matches its parent level)."""
REPLICAS_DIR: Final = "replicas"
"""data_dir/replicas/<id>: one replica's spool, dead letters and sequence state."""
REPLICA_ENV: Final = "GREENGAUGE_REPLICA"
RETRY_DELAY: Final = 0.1
NOTICE_RECEIVE_MAXIMUM: Final = 65535
"""Notices are tiny and may wait `grace` seconds for their ack: let the broker send them."""


def shared(group: str, topic: str) -> str:
    return f"$share/{group}/{topic}"


def replica_id(configured: str | None) -> str:
    """The configured id, else $GREENGAUGE_REPLICA, else the host name (a container's
    name under compose --scale): stable across restarts, unlike a process id, because
    the broker keeps the messages queued for a replica under its client id."""
    return configured or os.environ.get(REPLICA_ENV) or socket.gethostname()


def state_dir(data_dir: Path, replica: str) -> Path:
    path = data_dir / REPLICAS_DIR / replica
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Notice(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    replica: str = Field(max_length=64)
    seqs: list[tuple[str, str, int]] = Field(max_length=1_000_000)


def notice_payload(replica: str, batches: Sequence[Batch]) -> bytes:
    return json.dumps(
        {"replica": replica, "seqs": [[b.site, b.agent, b.seq] for b in batches]},
        separators=(",", ":"),
    ).encode()


class NoticeUnavailable(ConnectionError):
    """No notice can be published any more (the collector is stopping)."""


class StoredNotices:
    """Publishes stored notices on a connection of its own; `publish` returns once the
    broker acknowledged the notice (QoS 1), and waits while the broker is away."""

    def __init__(self, mqtt: BrokerSettings, client_id: str, replica: str) -> None:
        self._mqtt = mqtt
        self._client_id = client_id
        self._replica = replica
        self._protocol = Protocol(mqtt)
        self._client: paho.Client | None = None
        """the connected client, set and read on the event loop only"""
        self._connected = asyncio.Event()
        self._stopped = False
        self._inflight: dict[int, asyncio.Future[None]] = {}

    async def run(self) -> None:
        try:
            await stay_connected(self._mqtt, self._protocol, self._session)
        finally:
            # Stopping: a publish waiting for the broker gives up (its batches stay
            # unacknowledged and are delivered again) instead of holding the shutdown.
            self._stopped = True
            self._connected.set()

    async def _session(self, backoff: Backoff) -> None:
        loop = asyncio.get_running_loop()
        client = paho_client(self._mqtt, self._client_id, self._protocol)

        def on_publish(_c: paho.Client, _u: Any, mid: int, _rc: Any, _p: Any = None) -> None:
            loop.call_soon_threadsafe(self._acknowledged, mid)

        client.on_publish = on_publish
        connection = Connection(client)
        try:
            await connection.open(self._mqtt)
            backoff.reset()
            self._client = client
            self._connected.set()
            await connection.until_lost()
        finally:
            self._connected.clear()
            self._client = None
            lost, self._inflight = self._inflight, {}
            for future in lost.values():  # published again by their callers
                if not future.done():
                    future.set_exception(ConnectionError("broker connection lost"))
            await connection.close()

    def _acknowledged(self, mid: int) -> None:
        future = self._inflight.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def publish(self, batches: Sequence[Batch]) -> None:
        """Until the broker has the notice: the batches' acks wait for it, so a notice is
        never missing for a batch the broker considers delivered. NoticeUnavailable once
        the publisher has stopped."""
        payload = notice_payload(self._replica, batches)
        loop = asyncio.get_running_loop()
        while True:
            await self._connected.wait()
            if self._stopped:
                raise NoticeUnavailable("the collector is stopping")
            client = self._client
            info = client.publish(STORED_TOPIC, payload, qos=1) if client is not None else None
            if info is None or info.rc != paho.MQTT_ERR_SUCCESS:
                # Lost, and not noticed yet: let the session see it before trying again.
                await asyncio.sleep(RETRY_DELAY)
                continue
            # paho reports the PUBACK through the event loop, so after this registration.
            future: asyncio.Future[None] = loop.create_future()
            self._inflight[info.mid] = future
            try:
                await future
            except ConnectionError:
                continue
            return


@dataclass(slots=True)
class _Held:
    """A notice whose seqs are not all fed yet; acknowledged once they are."""

    remaining: int
    ack: Callable[[], None]


class SharedSequences:
    """Every replica's stored notices, fed to this replica's tracker in seq order.

    Per agent, a seq is fed at once when it opens no gap (the next one, a repeat, a late
    one filling a gap), else it waits until it, or a higher seq of its agent, has waited
    `grace` seconds: the batches between were then not stored in time, a real gap. A seq
    below an agent's first tracked seq is before this replica's time (it joined later,
    or a replica that was down stores it late): ignored, never a gap. An agent new to
    the tracker starts at the highest seq noticed within `grace` seconds of its first
    notice: at most a gap at an agent's first appearance goes unreported. The tracker
    is saved to `path` before the notices are acknowledged."""

    def __init__(
        self,
        tracker: SequenceTracker,
        path: Path,
        grace: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = tracker
        self._path = path
        self._grace = grace
        self._clock = clock
        # (site, agent) -> (seq, arrived, notice) not fed yet
        self._waiting: dict[tuple[str, str], list[tuple[int, float, _Held]]] = {}
        self.disk = DiskFault("sequences", path)
        self.rejected = 0
        self.before_start = 0
        """seqs older than an agent's first tracked one, left out"""

    def receive(self, message: Message) -> None:
        """Buffer a notice; it is acknowledged once fed and saved, so that a replica that
        crashes meanwhile receives it again instead of reporting its seqs as a gap."""
        try:
            notice = _Notice.model_validate_json(message.payload)
        except ValidationError as exc:
            self.rejected += 1
            log.warning("stored notice ignored: invalid", extra=fields(reason=str(exc)[:200]))
            message.ack()
            return
        if not notice.seqs:
            message.ack()
            return
        held = _Held(len(notice.seqs), message.ack)
        now = self._clock()
        for site, agent, seq in notice.seqs:
            self._waiting.setdefault((site, agent), []).append((seq, now, held))

    def due(self) -> tuple[list[tuple[str, str, int]], list[_Held]]:
        """The seqs to feed now, in (site, agent, seq) order, and the notices they were in."""
        now = self._clock()
        feed: list[tuple[str, str, int]] = []
        held: list[_Held] = []
        for key, entries in list(self._waiting.items()):
            entries.sort(key=lambda e: e[0])
            seqs = self.tracker.agents.get(key)
            waited = [seq for seq, arrived, _ in entries if now - arrived >= self._grace]
            if seqs is None or not seqs.ranges:
                if not waited:
                    continue
                # New to this replica: what arrived within its first `grace` seconds may
                # come from replicas that stored it minutes apart (one was down, or this
                # one joined late), so only the highest is surely not before its time.
                start = entries[-1][0]
                highest = start - 1
            else:
                start, highest = seqs.ranges[0][0], seqs.ranges[-1][1]
            due_through = max(waited, default=start - 1)
            keep: list[tuple[int, float, _Held]] = []
            for entry in entries:
                seq = entry[0]
                if seq < start:
                    self.before_start += 1
                elif seq <= highest + 1 or seq <= due_through:
                    feed.append((key[0], key[1], seq))
                    highest = max(highest, seq)
                else:
                    keep.append(entry)
                    continue
                held.append(entry[2])
            if keep:
                self._waiting[key] = keep
            else:
                del self._waiting[key]
        return feed, held

    async def run(self, interval: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.feed()

    async def feed(self) -> None:
        seqs, held = self.due()
        if not held:
            return
        see_all(self.tracker, seqs)
        try:
            await asyncio.to_thread(write_atomically, self._path, self.tracker.to_json())
        except OSError as exc:
            # Acknowledged anyway: a restart then reports false gaps at most, as a single
            # collector does when it cannot save this file.
            self.disk.failed(exc)
        else:
            self.disk.ok()
        for notice in held:
            notice.remaining -= 1
            if notice.remaining == 0:
                notice.ack()
