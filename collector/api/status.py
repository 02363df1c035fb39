"""What the agents say about themselves: their retained status messages, kept per agent.

The collector subscribes to `greengauge/v1/+/+/status`; every message is validated like a
reading batch (topic and body must agree) and kept, the newest per agent, or
dead-lettered with the reason. The broker keeps the last one retained, so a restarted
collector knows every agent's state at once, and an agent that vanished shows `offline`
(its last will).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.wire import AgentStatus, Topic
from collector.deadletters import DeadLetters
from collector.ingest import Message
from collector.validate import Rejected, agent_message

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

    def __init__(self) -> None:
        self.agents: dict[tuple[str, str], AgentStatus] = {}
        self.rejected = 0

    def update(self, status: AgentStatus) -> None:
        key = (status.site, status.agent)
        known = self.agents.get(key)
        if known is None or known.ts <= status.ts:
            self.agents[key] = status

    def receive(self, message: Message, dead_letters: DeadLetters) -> None:
        """One message of the status subscription: kept or dead-lettered, then acked."""
        try:
            self.update(agent_status(message.topic, message.payload))
        except StatusRejected as exc:
            self.rejected += 1
            dead_letters.add(message.topic, message.payload, str(exc), message.ack)
            return
        message.ack()

    def of_site(self, site: str) -> list[AgentStatus]:
        return [s for (k, _), s in sorted(self.agents.items()) if k == site]

    def sites(self) -> set[str]:
        return {site for site, _ in self.agents}
