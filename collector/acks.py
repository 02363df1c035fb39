"""Acknowledgements released in the order the messages arrived. Pure.

MQTT 3.1.1 (section 4.6) requires a client to send PUBACKs in the order the PUBLISH
packets were received, and the collector acknowledges a message only once it is
durable, which can finish out of order (a dead letter before an earlier batch's
database write). This holds each finished message back until all earlier ones are
finished too.

One message that is never finished would hold back every later acknowledgement (and,
past the receive maximum, the broker's deliveries): `overdue` names the messages that
have waited longer than a bound, with how far the collector got with each, so that it
is logged rather than silent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Progress:
    """How far the collector got with one message (set by whoever handles it)."""

    stage: str = "received"


@dataclass(slots=True)
class Held:
    """A message whose acknowledgement has not been released."""

    mid: int
    topic: str
    progress: Progress
    since: float
    """when it was received (monotonic seconds)"""
    reported: bool = False


class OrderedAcks:
    """Tickets in arrival order; `done(ticket)` returns the packet ids now safe to ack."""

    def __init__(self) -> None:
        self._next_ticket = 0
        self._released = 0  # every ticket below this one has been released
        self._held: dict[int, Held] = {}
        self._done: set[int] = set()

    def received(
        self, mid: int, topic: str = "", progress: Progress | None = None, now: float = 0.0
    ) -> int:
        ticket = self._next_ticket
        self._next_ticket += 1
        self._held[ticket] = Held(mid, topic, progress or Progress(), now)
        return ticket

    def done(self, ticket: int) -> list[int]:
        if ticket < self._released or ticket not in self._held:
            return []
        self._done.add(ticket)
        ready: list[int] = []
        while self._released in self._done:
            self._done.discard(self._released)
            ready.append(self._held.pop(self._released).mid)
            self._released += 1
        return ready

    def overdue(self, now: float, bound: float) -> list[Held]:
        """Messages not finished `bound` seconds after they arrived, each named once."""
        found: list[Held] = []
        for ticket, held in self._held.items():  # in arrival order: oldest first
            if held.since > now - bound:
                break
            if not held.reported and ticket not in self._done:
                held.reported = True
                found.append(held)
        return found

    @property
    def waiting(self) -> int:
        """Messages received and not yet released."""
        return len(self._held)
