"""The agent's status message: online with its outbox's and meters' health, or offline
(the last will)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from agent.publish.outbox import Outbox
from greengauge.contract import AgentState, AgentStatus, MeterHealth, OutboxHealth


def outbox_health(outbox: Outbox) -> OutboxHealth:
    oldest = outbox.oldest_created()
    return OutboxHealth(
        depth=outbox.depth,
        oldest=None if oldest is None else datetime.fromtimestamp(oldest, UTC),
        dropped=outbox.dropped_batches,
    )


def status_message(
    site: str,
    agent: str,
    state: AgentState,
    connected: datetime,
    outbox: Outbox,
    meters: Mapping[str, MeterHealth],
) -> bytes:
    """`connected`: when the broker connection began (in every status of it and its last
    will); `meters`: each meter's health as its poller keeps it."""
    online = state is AgentState.ONLINE
    message = AgentStatus(
        site=site,
        agent=agent,
        state=state,
        ts=datetime.now(UTC),
        connected=connected,
        outbox=outbox_health(outbox) if online else None,
        meters=dict(meters) if online else {},
    )
    return message.model_dump_json().encode()
