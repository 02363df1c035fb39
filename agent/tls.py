"""TLS to the broker, the same for the agent and the collector."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.files import require_regular
from agent.wire import BrokerSettings

# A CA bundle with every public CA is ~250 KiB.
MAX_TLS_FILE_BYTES = 4 * 1024 * 1024


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


def explain(reason: str, mqtt: BrokerSettings) -> str:
    """A connection failure's reason for the log, saying plainly when TLS verification failed."""
    if "CERTIFICATE_VERIFY_FAILED" not in reason:
        return reason
    trusted = f"CA file {mqtt.ca_file}" if mqtt.ca_file else "the system's trusted CAs"
    return (
        f"TLS certificate verification failed: the certificate of broker "
        f"{mqtt.host}:{mqtt.port} is not trusted by {trusted}, or does not name that host "
        f"({reason})"
    )
