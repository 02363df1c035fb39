"""The MQTT client ids both programs use: the configured one, else a default that stays
the same across restarts.

Stable because the broker keeps a session, and the messages queued for it, by id; a
second connection of one program takes a suffix (`-status`, `-mes`, `-alerts`) so that
it never kicks the first off the broker.
"""

from __future__ import annotations

import socket

from greengauge.common.broker import BrokerSettings


def per_host(program: str) -> str:
    """A default id for a program that runs once per host (the collector)."""
    return f"greengauge-{program}-{socket.gethostname()}"


def client_id(settings: BrokerSettings, default: str, role: str = "", instance: str = "") -> str:
    """`instance`: one of several processes sharing a configured id (a collector replica),
    stable across its restarts so that the broker gives it back its session."""
    base = settings.client_id or default
    parts = [base, instance, role]
    return "-".join(p for p in parts if p)
