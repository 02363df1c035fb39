"""TLS to the broker, the same for the agent and the collector."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho

from greengauge.common.broker import BrokerSettings
from greengauge.common.files import require_regular

# A CA bundle with every public CA is ~250 KiB.
MAX_TLS_FILE_BYTES = 4 * 1024 * 1024

# OpenSSL names a TLS alert the broker sent as e.g. "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED]"
# or "[SSL: SSLV3_ALERT_BAD_CERTIFICATE]".
_ALERT: Final = re.compile(r"\[SSL: (?:SSLV3|TLSV1(?:3)?)_ALERT_([A-Z_]+)\]")
_CLOSED_BEFORE_CONNACK: Final = "the broker closed the connection before accepting it"
_REFUSED_CERTIFICATE: Final = frozenset(
    {"BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN", "CERTIFICATE_EXPIRED"}
    | {"CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE", "DECRYPT_ERROR"}
)


def ssl_context(mqtt: BrokerSettings) -> ssl.SSLContext | None:
    """For mqtts:// URLs: the CA file (or the system's CAs) and an optional client cert."""
    if not mqtt.tls:
        return None
    for name in (mqtt.ca_file, mqtt.cert_file, mqtt.key_file):
        if name:
            require_regular(Path(name), MAX_TLS_FILE_BYTES)
    context = ssl.create_default_context(cafile=mqtt.ca_file)
    if mqtt.cert_file:
        context.load_cert_chain(mqtt.cert_file, mqtt.key_file)
    return context


class SocketErrors:
    """The first error paho met on a client's socket, which paho only logs (later ones,
    such as "Client is not connected", are its consequences).

    Under TLS 1.3 a broker checks the client's certificate after the handshake: its alert
    ("certificate required") comes on the first read, and paho drops the connection
    without a CONNACK. The reason of that failure is this error, not a timeout."""

    def __init__(self, client: paho.Client) -> None:
        self.first: str | None = None
        client.on_log = self._on_log

    def _on_log(self, _client: paho.Client, _userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR and self.first is None:
            self.first = text

    def closed_before_connack(self, code: object) -> str:
        """The reason a connection closed before the broker accepted it."""
        said = self.first or f"reason {code}"
        return f"{_CLOSED_BEFORE_CONNACK}: {said}"


def explain(reason: str, mqtt: BrokerSettings) -> str:
    """A connection failure's reason for the log, saying plainly what failed in TLS:
    the broker's certificate, or the broker's alert about the client's."""
    broker = f"{mqtt.host}:{mqtt.port}"
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        trusted = f"CA file {mqtt.ca_file}" if mqtt.ca_file else "the system's trusted CAs"
        return (
            f"TLS certificate verification failed: the certificate of broker {broker} is "
            f"not trusted by {trusted}, or does not name that host ({reason})"
        )
    alert = _ALERT.search(reason)
    if alert is None:
        if mqtt.tls and not mqtt.cert_file and _CLOSED_BEFORE_CONNACK in reason:
            # The alert itself is lost when the broker's close resets the connection
            # before the client read it.
            return (
                f"{reason}; if broker {broker} requires client certificates, none is "
                "configured (mqtt.cert_file, mqtt.key_file)"
            )
        return reason
    name = alert[1]
    certificate = f"the client certificate {mqtt.cert_file}" if mqtt.cert_file else None
    if name == "CERTIFICATE_REQUIRED" or (name == "HANDSHAKE_FAILURE" and certificate is None):
        meaning = (
            "it requires a client certificate and did not accept " + certificate
            if certificate is not None
            else "it requires a client certificate, and none is configured "
            "(mqtt.cert_file, mqtt.key_file)"
        )
    elif name in _REFUSED_CERTIFICATE and certificate is not None:
        meaning = (
            f"it refused {certificate}: it must be signed by a CA the broker trusts "
            "(its cafile), be valid now and be meant for client authentication"
        )
    else:
        meaning = "see the broker's log for why"
    words = name.lower().replace("_", " ")
    return f"TLS refused by broker {broker} (alert '{words}'): {meaning} ({reason})"
