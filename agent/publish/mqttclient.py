"""aiomqtt's client, with a PUBACK that refuses a message treated as a failure.

Under MQTT 5 a broker acknowledges a publish it will not deliver with a failing reason
code (0x87 "not authorized" when the ACL denies the topic, 0x97 quota exceeded, ...).
aiomqtt 2.x returns from `publish` all the same, and an outbox that trusted it would
delete a batch nobody received. Here `publish` raises PublishRefused instead, so the
batch stays in the outbox and the reason is logged.

A connection the broker drops before its CONNACK (a TLS alert under TLS 1.3: no client
certificate) fails the connect at once with what paho met on the socket, instead of
"Operation timed out" after the whole timeout.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from greengauge.common.tls import SocketErrors

# The mid paho gave the publish of the current task: aiomqtt calls paho's publish
# synchronously inside our task, so a context variable carries the mid back out.
_last_mid: ContextVar[int | None] = ContextVar("last_mid", default=None)


class PublishRefused(aiomqtt.MqttError):
    """The broker acknowledged a publish with a failing reason code."""


class CheckedClient(aiomqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused: dict[int, ReasonCode] = {}
        self._socket_errors = SocketErrors(self._client)
        publish = self._client.publish

        def recording(*p_args: Any, **p_kwargs: Any) -> paho.MQTTMessageInfo:
            info = publish(*p_args, **p_kwargs)
            _last_mid.set(info.mid)
            return info

        setattr(self._client, "publish", recording)  # noqa: B010 - a method cannot be assigned

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._refused[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any = None,
    ) -> None:
        # aiomqtt ignores a disconnect before the CONNACK and lets the connect time out.
        if not self._connected.done():
            reason = self._socket_errors.closed_before_connack(reason_code)
            self._connected.set_exception(aiomqtt.MqttError(reason))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        _last_mid.set(None)
        await super().publish(*args, **kwargs)
        mid = _last_mid.get()
        refused = self._refused.pop(mid, None) if mid is not None else None
        if refused is not None:
            raise PublishRefused(f"the broker refused the message: {refused} ({refused.value:#x})")
