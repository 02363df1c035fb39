"""What the agents say about themselves: their retained status messages, kept per agent.

The collector subscribes to `greengauge/v1/+/+/status`; every message is validated like a
reading batch (topic and body must agree, its time inside the accepted window, no more
meters than one agent may have) and kept, the newest per agent, or dead-lettered with
the reason. The broker keeps the last one retained, so a restarted collector knows every
agent's state at once, and an agent that vanished shows `offline` (its last will: made
when its connection opened, it is still newer than that connection's updates). At
most `max_agents` are kept, naming at most `max_meters` meters in all: the least recently
updated is evicted (and counted).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from collector.guard import Guard
from collector.ingest import Message
from collector.validate import DEFAULT_WINDOW, Rejected, Window, agent_message
from greengauge.contract import AgentStatus, Topic

StatusRejected = Rejected


def agent_status(topic: str, payload: bytes) -> AgentStatus:
    """A valid status message of the agent its topic names; StatusRejected with the reason."""
    return agent_message(topic, payload, Topic.STATUS, AgentStatus)


@dataclass(frozen=True, slots=True)
class Known:
    status: AgentStatus
    received: datetime


class AgentStatuses:
    """The newest status of every agent, by (site, agent)."""

    def __init__(
        self,
        window: Window = DEFAULT_WINDOW,
        max_agents: int = 10_000,
        meters_per_agent: int = 1000,
        max_meters: int = 50_000,
    ) -> None:
        self.agents: OrderedDict[tuple[str, str], AgentStatus] = OrderedDict()
        self._window = window
        self._max_agents = max_agents
        self._meters_per_agent = meters_per_agent
        self._max_meters = max_meters
        self._meters = 0  # meters named by the statuses kept, in all
        self.rejected = 0
        self.evicted = 0

    def update(self, status: AgentStatus) -> None:
        key = (status.site, status.agent)
        known = self.agents.get(key)
        if known is not None and known.newer(status):
            # An older message (by ts, or the last will of an older connection).
            return
        self._meters += len(status.meters) - (len(known.meters) if known is not None else 0)
        self.agents[key] = status
        self.agents.move_to_end(key)
        # Both bounds: many agents, or agents naming many meters each.
        while len(self.agents) > 1 and (
            len(self.agents) > self._max_agents or self._meters > self._max_meters
        ):
            _, evicted = self.agents.popitem(last=False)
            self._meters -= len(evicted.meters)
            self.evicted += 1

    def check(self, status: AgentStatus, now: datetime) -> None:
        """Raise StatusRejected for a status that must not be kept."""
        # A time far ahead would pin this status: no later one would ever replace it.
        self._window.check(status.ts, now, "status ts")
        if status.connected is not None:
            # A connection far ahead would pin its statuses the same way.
            self._window.check(status.connected, now, "status connected")
        for meter, health in status.meters.items():
            if health.last_read is not None:
                self._window.check(health.last_read, now, f"meters.{meter}.last_read")
        if status.outbox is not None and status.outbox.oldest is not None:
            self._window.check(status.outbox.oldest, now, "outbox.oldest")
        if len(status.meters) > self._meters_per_agent:
            raise StatusRejected(
                f"status names {len(status.meters)} meters, more than one agent may "
                f"(ingest.meters_per_agent {self._meters_per_agent})"
            )

    def receive(self, message: Message, guard: Guard) -> None:
        """One message of the status subscription: kept or dead-lettered, then acked."""

        def use() -> bool:
            message.progress.stage = "parse"
            status = agent_status(message.topic, message.payload)
            message.progress.stage = "validate"
            self.check(status, datetime.now(UTC))
            message.progress.stage = "keep"
            self.update(status)
            return True

        if guard.run("status", message, use):
            message.ack()
        else:
            self.rejected += 1

    def of_site(self, site: str) -> list[AgentStatus]:
        return [s for (k, _), s in sorted(self.agents.items()) if k == site]

    def sites(self) -> set[str]:
        return {site for site, _ in self.agents}
