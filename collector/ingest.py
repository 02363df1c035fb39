"""The collector's MQTT subscription, acknowledging each message only once it is durable.

aiomqtt acknowledges a QoS 1 message as soon as it arrives, which leaves a window in
which a crashed collector has acknowledged a message it never stored. paho-mqtt's
`manual_ack=True` closes it: the PUBACK is sent by `Client.ack(mid, 1)` when the
collector says the message is stored (or spooled, or dead-lettered). Until then the
broker keeps the message in the collector's persistent session and sends it again
after a reconnect (clean_session False / MQTT 5 session that does not expire, a fixed
client id, QoS 1).

paho runs its network loop in its own thread (loop_start); its callbacks hand every
event to the asyncio loop in order, messages in bursts (collector.handoff).
`Client.ack` may be called from the asyncio thread: it only queues the packet and wakes
paho's thread, as `publish` from another thread does. Each connection is a new paho
client, and an acknowledgement for a message of an earlier connection is not sent: the
broker delivers that message again on the new one (a harmless duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.acks import OrderedAcks, Progress
from collector.handoff import Handoff
from greengauge.common.backoff import Backoff
from greengauge.common.broker import BrokerSettings
from greengauge.common.logs import fields
from greengauge.common.mqtt import Connection, Protocol, paho_client, stay_connected
from greengauge.common.secrets import redact_url

log = logging.getLogger(__name__)

# MQTT 5: keep the session (and the messages queued for it) while the collector is
# away, for at most this long (about 136 years: as long as 3.1.1's clean_session False).
SESSION_EXPIRY: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    ack: Callable[[], None]
    """call once the message is durable (stored, spooled or dead-lettered)"""
    progress: Progress = field(default_factory=Progress)
    """the stage its handling reached, named in the log if its ack is overdue"""


class SharedSubscriptionNeedsMqtt5(RuntimeError):
    """A shared subscription (`$share/...`) on a broker that refused MQTT 5.

    Not retried: mosquitto 2 shares on 3.1.1 too, as an extension, but a broker too old
    for 5 is too old to share, and would refuse the filter or take it for an ordinary
    topic nothing is published on: a collector that silently receives nothing."""

    def __init__(self, topic: str) -> None:
        super().__init__(
            f"ingest.shared_group: the broker refused MQTT 5, which the shared subscription "
            f"{topic} needs; upgrade the broker (mosquitto >= 1.6, EMQX) or leave "
            f"shared_group out to run one collector"
        )


class _Acks:
    """The messages of one connection, acknowledged in order, never on a later one."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.acks = OrderedAcks()
        self.open = True

    def ack(self, ticket: int) -> None:
        for mid in self.acks.done(ticket):
            if self.open:
                self.client.ack(mid, 1)


class Ingest:
    """Subscribes to `topic` with QoS 1 and hands each message to `deliver`."""

    def __init__(
        self,
        mqtt: BrokerSettings,
        client_id: str,
        topic: str,
        deliver: Callable[[Message], None],
        receive_maximum: int = 100,
        ack_overdue: float = 60.0,
    ) -> None:
        self._mqtt = mqtt
        self._client_id = client_id
        self._topic = topic
        self._deliver = deliver
        self._receive_maximum = receive_maximum
        self._ack_overdue = ack_overdue
        self._protocol = Protocol(mqtt)
        self._client: paho.Client | None = None
        self._acks: _Acks | None = None
        self._leaving = False
        self._up = asyncio.Event()
        self.received = 0
        self.connected = False
        self.overdue = 0
        """messages whose acknowledgement waited longer than `ack_overdue` seconds"""

    async def run(self) -> None:
        """Stay subscribed forever, reconnecting with backoff."""
        await stay_connected(self._mqtt, self._protocol, self._session)

    async def _session(self, backoff: Backoff) -> None:
        loop = asyncio.get_running_loop()
        v5 = self._protocol.v5
        if self._topic.startswith("$share/") and not v5:
            raise SharedSubscriptionNeedsMqtt5(self._topic)
        client = paho_client(
            self._mqtt,
            self._client_id,
            self._protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        acks = _Acks(client)
        # On every connect: a broker that lost its state still delivers.
        connection = Connection(
            client, lambda: None if self._leaving else client.subscribe(self._topic, qos=1)
        )

        received: Callable[..., None] = self._received  # paho types the payload loosely
        handoff: Handoff[tuple[Any, ...]] = Handoff(loop, lambda item: received(acks, *item))

        def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
            handoff.put((message.mid, message.qos, message.topic, message.payload))

        client.on_message = on_message
        connect: dict[str, Any] = {}
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY
            # The broker sends at most this many unacknowledged messages at once.
            properties.ReceiveMaximum = self._receive_maximum
            connect = {"properties": properties, "clean_start": False}
        try:
            await connection.open(self._mqtt, **connect)
            self.connected = True
            self._client, self._acks = client, acks
            self._up.set()
            backoff.reset()
            log.info(
                "subscribed",
                extra=fields(
                    broker=redact_url(self._mqtt.url),
                    mqtt=self._protocol.name,
                    client_id=self._client_id,
                ),
            )
            watchdog = asyncio.create_task(self._watch(acks))
            try:
                await connection.until_lost()
            finally:
                watchdog.cancel()
        finally:
            self.connected = False
            self._client = self._acks = None
            self._up.clear()
            acks.open = False
            await connection.close()

    async def leave(self, quiet: float = 1.0) -> None:
        """Unsubscribe, so that the broker gives this client no more messages (a replica
        leaving its shared group: mosquitto would otherwise queue its share for it while
        it is away), and return once every message it was sent (its session's queue
        included) is acknowledged and none came for `quiet` seconds. Waits for a
        connection first."""
        self._leaving = True
        await self._up.wait()
        client = self._client
        assert client is not None  # set with _up, on the event loop
        client.unsubscribe(self._topic)
        while True:
            before = self.received
            await asyncio.sleep(quiet)
            acks = self._acks
            if acks is None or (acks.acks.waiting == 0 and self.received == before):
                return

    async def _watch(self, connection: _Acks) -> None:
        """Log every message that holds the acknowledgements back longer than the bound.

        Only logged: a message waiting for a slow store write or the spool is held
        rightly, and acknowledging it anyway could lose it."""
        bound = self._ack_overdue
        while True:
            await asyncio.sleep(min(bound / 4, 5.0))
            for held in connection.acks.overdue(time.monotonic(), bound):
                self.overdue += 1
                log.error(
                    "acknowledgement overdue: later messages are held back",
                    extra=fields(
                        topic=held.topic,
                        stage=held.progress.stage,
                        seconds=f"{time.monotonic() - held.since:.1f}",
                        waiting=connection.acks.waiting,
                    ),
                )

    def _received(self, connection: _Acks, mid: int, qos: int, topic: str, payload: bytes) -> None:
        self.received += 1
        if qos == 0:  # nothing to acknowledge
            self._deliver(Message(topic, payload, _nothing))
            return
        progress = Progress()
        ticket = connection.acks.received(mid, topic, progress, time.monotonic())
        self._deliver(Message(topic, payload, lambda: connection.ack(ticket), progress))


def _nothing() -> None:
    pass
