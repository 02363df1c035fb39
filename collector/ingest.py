"""The collector's MQTT subscription, acknowledging each message only once it is durable.

aiomqtt acknowledges a QoS 1 message as soon as it arrives, which leaves a window in
which a crashed collector has acknowledged a message it never stored. paho-mqtt's
`manual_ack=True` closes it: the PUBACK is sent by `Client.ack(mid, 1)` when the
collector says the message is stored (or spooled, or dead-lettered). Until then the
broker keeps the message in the collector's persistent session and sends it again
after a reconnect (clean_session False / MQTT 5 session that does not expire, a fixed
client id, QoS 1).

paho runs its network loop in its own thread (loop_start); its callbacks hand every
event to the asyncio loop with `call_soon_threadsafe`, which also keeps them in order.
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
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector.acks import OrderedAcks, Progress
from greengauge.common.backoff import Backoff
from greengauge.common.broker import BrokerSettings
from greengauge.common.logs import fields
from greengauge.common.secrets import redact_url
from greengauge.common.tls import SocketErrors, explain, ssl_context

log = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0
# MQTT 5: keep the session (and the messages queued for it) while the collector is
# away, for at most this long (about 136 years: as long as 3.1.1's clean_session False).
SESSION_EXPIRY: Final = 0xFFFFFFFF
_PROTOCOL_REFUSED: Final = frozenset({1, 132})


class IngestError(Exception):
    """The broker refused or dropped the connection."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    ack: Callable[[], None]
    """call once the message is durable (stored, spooled or dead-lettered)"""
    progress: Progress = field(default_factory=Progress)
    """the stage its handling reached, named in the log if its ack is overdue"""


class _Connection:
    """One paho client and the messages it received, acknowledged in order."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.acks = OrderedAcks()
        self.open = True
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.lost: asyncio.Future[str] = loop.create_future()
        self.socket_errors = SocketErrors(client)

    async def connack_code(self) -> int:
        """The CONNACK's reason code; IngestError when none comes in time."""
        # A broker may drop the connection instead of answering (a TLS alert: no client
        # certificate): that is the reason, not the missing CONNACK.
        await asyncio.wait(
            (self.connack, self.lost), timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if self.connack.done():
            return self.connack.result()
        if self.lost.done():
            raise IngestError(self.socket_errors.closed_before_connack(self.lost.result()))
        raise IngestError("no CONNACK from the broker")

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
        self._protocol = MQTTProtocolVersion.MQTTv5
        self.connected = False
        self.overdue = 0
        """messages whose acknowledgement waited longer than `ack_overdue` seconds"""

    def _new_client(self) -> paho.Client:
        mqtt = self._mqtt
        v5 = self._protocol is MQTTProtocolVersion.MQTTv5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=None if v5 else False,
            protocol=self._protocol,
            reconnect_on_failure=False,  # reconnects are ours, with backoff and jitter
            manual_ack=True,
        )
        if mqtt.username is not None:
            client.username_pw_set(
                mqtt.username, mqtt.password.get_secret_value() if mqtt.password else None
            )
        context = ssl_context(mqtt)
        if context is not None:
            client.tls_set_context(context)
        return client

    async def run(self) -> None:
        """Stay subscribed forever, reconnecting with backoff."""
        backoff = Backoff()
        while True:
            try:
                await self._session(backoff)
            except (IngestError, OSError) as exc:
                code = getattr(exc, "code", None)
                if code in _PROTOCOL_REFUSED and self._protocol is MQTTProtocolVersion.MQTTv5:
                    self._protocol = MQTTProtocolVersion.MQTTv311
                    log.info(
                        "broker refused MQTT 5, using 3.1.1",
                        extra=fields(broker=redact_url(self._mqtt.url)),
                    )
                    continue
                delay = backoff.next_delay()
                log.warning(
                    "broker connection lost",
                    extra=fields(
                        broker=redact_url(self._mqtt.url),
                        reason=explain(str(exc), self._mqtt),
                        retry_in=f"{delay:.1f}s",
                    ),
                )
                await asyncio.sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        loop = asyncio.get_running_loop()
        client = self._new_client()
        connection = _Connection(client)

        def later(callback: Callable[..., None], *args: Any) -> None:
            loop.call_soon_threadsafe(callback, *args)

        def on_connect(
            _c: paho.Client, _u: Any, flags: Any, code: ReasonCode, _p: Any = None
        ) -> None:
            if not code.is_failure:
                # On every connect: a broker that lost its state still delivers.
                client.subscribe(self._topic, qos=1)
            later(_settle, connection.connack, int(code.value), bool(flags.session_present))

        def on_disconnect(
            _c: paho.Client, _u: Any, _f: Any, code: ReasonCode, _p: Any = None
        ) -> None:
            later(_settle, connection.lost, str(code), False)

        def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
            later(
                self._received, connection, message.mid, message.qos, message.topic, message.payload
            )

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        properties = None
        if self._protocol is MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY
            # The broker sends at most this many unacknowledged messages at once.
            properties.ReceiveMaximum = self._receive_maximum
        mqtt = self._mqtt
        connect_args: dict[str, Any] = {"keepalive": mqtt.keepalive, "properties": properties}
        if properties is not None:
            connect_args["clean_start"] = False
        await asyncio.to_thread(client.connect, mqtt.host, mqtt.port, **connect_args)
        client.loop_start()
        try:
            code = await connection.connack_code()
            if code != 0:
                raise IngestError(f"broker refused the connection (reason code {code})", code)
            self.connected = True
            backoff.reset()
            log.info(
                "subscribed",
                extra=fields(
                    broker=redact_url(mqtt.url),
                    mqtt="5" if properties is not None else "3.1.1",
                    client_id=self._client_id,
                ),
            )
            watchdog = asyncio.create_task(self._watch(connection))
            try:
                reason = await connection.lost
            finally:
                watchdog.cancel()
            raise IngestError(f"disconnected: {reason}")
        finally:
            self.connected = False
            connection.open = False
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    async def _watch(self, connection: _Connection) -> None:
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

    def _received(
        self, connection: _Connection, mid: int, qos: int, topic: str, payload: bytes
    ) -> None:
        if qos == 0:  # nothing to acknowledge
            self._deliver(Message(topic, payload, _nothing))
            return
        progress = Progress()
        ticket = connection.acks.received(mid, topic, progress, time.monotonic())
        self._deliver(Message(topic, payload, lambda: connection.ack(ticket), progress))


def _settle(future: asyncio.Future[Any], value: Any, _flag: bool) -> None:
    if not future.done():
        future.set_result(value)


def _nothing() -> None:
    pass
