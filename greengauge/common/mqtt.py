"""One MQTT connection layer for every client of both programs: the agent's publisher,
the collector's subscriptions and its alerts publisher.

What they share lives here once: credentials and TLS on a paho client, the MQTT 5 ->
3.1.1 fallback when a broker does not speak 5, the CONNACK and the loss of a paho
connection as asyncio futures (paho's network thread hands them over with
`call_soon_threadsafe`), and the reconnect loop with backoff and one log line per loss.
Client ids are in `greengauge.common.clientid`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from greengauge.common.backoff import Backoff
from greengauge.common.broker import BrokerSettings
from greengauge.common.logs import fields
from greengauge.common.secrets import redact_url
from greengauge.common.tls import SocketErrors, explain, ssl_context

log = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0
PROTOCOL_REFUSED: Final = frozenset({1, 132})
"""CONNACK answers that mean "this broker does not speak MQTT 5": 3.1.1's "unacceptable
protocol version" and 5's "unsupported protocol version"."""


class ConnectionFailed(Exception):
    """The broker refused the connection (with its CONNACK code) or dropped it."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class Protocol:
    """The protocol version a client speaks: MQTT 5 until a broker refuses it."""

    def __init__(self, settings: BrokerSettings) -> None:
        self._settings = settings
        self.version = MQTTProtocolVersion.MQTTv5

    @property
    def v5(self) -> bool:
        return self.version is MQTTProtocolVersion.MQTTv5

    @property
    def name(self) -> str:
        return "5" if self.v5 else "3.1.1"

    def fall_back(self, code: int | None) -> bool:
        """Switch to 3.1.1 when `code` says the broker does not speak 5; whether it did."""
        if code not in PROTOCOL_REFUSED or not self.v5:
            return False
        self.version = MQTTProtocolVersion.MQTTv311
        log.info(
            "broker refused MQTT 5, using 3.1.1",
            extra=fields(broker=redact_url(self._settings.url)),
        )
        return True


def reason_value(code: ReasonCode | int | None) -> int | None:
    return code.value if isinstance(code, ReasonCode) else code


def paho_client(
    settings: BrokerSettings, client_id: str, protocol: Protocol, **options: Any
) -> paho.Client:
    """A paho client with the settings' credentials and TLS; it does not reconnect by
    itself (`stay_connected` does, with backoff and jitter)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol.version,
        reconnect_on_failure=False,
        **options,
    )
    if settings.username is not None:
        client.username_pw_set(
            settings.username, settings.password.get_secret_value() if settings.password else None
        )
    context = ssl_context(settings)
    if context is not None:
        client.tls_set_context(context)
    return client


class Connection:
    """One paho connection, driven from asyncio: its CONNACK and its loss as futures.

    `on_connected` runs in paho's thread right after a successful CONNACK (to subscribe
    there, before any message can arrive)."""

    def __init__(
        self, client: paho.Client, on_connected: Callable[[], object] | None = None
    ) -> None:
        self.client = client
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.lost: asyncio.Future[str] = loop.create_future()
        self.socket_errors = SocketErrors(client)

        def on_connect(_c: paho.Client, _u: Any, _f: Any, code: ReasonCode, _p: Any = None) -> None:
            if not code.is_failure and on_connected is not None:
                on_connected()
            loop.call_soon_threadsafe(_settle, self.connack, int(code.value))

        def on_disconnect(
            _c: paho.Client, _u: Any, _f: Any, code: ReasonCode, _p: Any = None
        ) -> None:
            loop.call_soon_threadsafe(_settle, self.lost, str(code))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect

    async def open(self, settings: BrokerSettings, **connect: Any) -> None:
        """Connect and start paho's network thread; ConnectionFailed unless accepted."""
        await asyncio.to_thread(
            self.client.connect, settings.host, settings.port, settings.keepalive, **connect
        )
        self.client.loop_start()
        # A broker may drop the connection instead of answering (a TLS alert: no client
        # certificate): that is the reason, not the missing CONNACK.
        await asyncio.wait(
            (self.connack, self.lost), timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if self.connack.done():
            code = self.connack.result()
            if code != 0:
                raise ConnectionFailed(f"broker refused the connection (reason code {code})", code)
            return
        if self.lost.done():
            raise ConnectionFailed(self.socket_errors.closed_before_connack(self.lost.result()))
        raise ConnectionFailed("no CONNACK from the broker")

    async def until_lost(self) -> NoReturn:
        raise ConnectionFailed(f"disconnected: {await self.lost}")

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


async def stay_connected(
    settings: BrokerSettings,
    protocol: Protocol,
    session: Callable[[Backoff], Awaitable[None]],
    errors: tuple[type[BaseException], ...] = (ConnectionFailed, OSError),
    refusal: Callable[[BaseException], int | None] = lambda exc: getattr(exc, "code", None),
    context: Callable[[], dict[str, object]] = dict,
) -> NoReturn:
    """Run `session` forever: after a loss, again after a backoff (which the session
    resets once connected), or at once in 3.1.1 when the broker refused MQTT 5."""
    backoff = Backoff()
    broker = redact_url(settings.url)
    while True:
        try:
            await session(backoff)
        except errors as exc:
            if protocol.fall_back(refusal(exc)):
                continue
            delay = backoff.next_delay()
            log.warning(
                "broker connection lost",
                extra=fields(
                    broker=broker,
                    reason=explain(str(exc), settings),
                    retry_in=f"{delay:.1f}s",
                    **context(),
                ),
            )
            await asyncio.sleep(delay)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
