"""The MQTT client ids both programs use: the configured one, else one fixed per host.

Fixed per host because the broker keeps a session, and the messages queued for it, by
id; a second connection of one program takes a suffix (`-status`, `-mes`, `-alerts`) so
that it never kicks the first off the broker.
"""

from __future__ import annotations

import socket

from greengauge.common.broker import BrokerSettings


def client_id(settings: BrokerSettings, program: str, role: str = "") -> str:
    base = settings.client_id or f"greengauge-{program}-{socket.gethostname()}"
    return f"{base}-{role}" if role else base
