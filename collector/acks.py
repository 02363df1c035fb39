"""Acknowledgements released in the order the messages arrived. Pure.

MQTT 3.1.1 (section 4.6) requires a client to send PUBACKs in the order the PUBLISH
packets were received, and the collector acknowledges a message only once it is
durable, which can finish out of order (a dead letter before an earlier batch's
database write). This holds each finished message back until all earlier ones are
finished too.
"""

from __future__ import annotations


class OrderedAcks:
    """Tickets in arrival order; `done(ticket)` returns the packet ids now safe to ack."""

    def __init__(self) -> None:
        self._next_ticket = 0
        self._released = 0  # every ticket below this one has been released
        self._mids: dict[int, int] = {}
        self._done: set[int] = set()

    def received(self, mid: int) -> int:
        ticket = self._next_ticket
        self._next_ticket += 1
        self._mids[ticket] = mid
        return ticket

    def done(self, ticket: int) -> list[int]:
        if ticket < self._released or ticket not in self._mids:
            return []
        self._done.add(ticket)
        ready: list[int] = []
        while self._released in self._done:
            self._done.discard(self._released)
            ready.append(self._mids.pop(self._released))
            self._released += 1
        return ready

    @property
    def waiting(self) -> int:
        """Messages received and not yet released."""
        return len(self._mids)
