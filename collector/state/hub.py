"""The live stream: every subscriber (a dashboard, a script) gets the events it asked for.

Events are published on the event loop (no I/O, no waiting): a reading batch as it
arrives, a site's figures when recomputed, an alert when the accounting raises or clears
one. Each subscriber has a bounded queue; one that does not keep up is dropped (its
stream ends, a browser reconnects) rather than holding the collector back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Final

from collector.batch import Batch

QUEUE_SIZE: Final = 1000
KEEPALIVE: Final = 15.0
"""seconds between comment lines on an idle stream (proxies close silent connections)"""


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    site: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"), allow_nan=False)
        return f"event: {self.kind}\ndata: {body}\n\n".encode()


@dataclass(eq=False, slots=True)
class Subscriber:
    site: str | None
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )


class LiveHub:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        for sub in list(self._subscribers):
            if sub.site is not None and sub.site != event.site:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1
                self._subscribers.discard(sub)
                sub.queue.get_nowait()  # make room for the end-of-stream mark
                sub.queue.put_nowait(None)

    def readings(self, batch: Batch) -> None:
        if not self._subscribers:
            return
        data = batch.model().model_dump(mode="json", exclude={"schema_version", "seq"})
        self.publish(Event("reading", batch.site, data))

    async def stream(
        self, site: str | None, keepalive: float = KEEPALIVE
    ) -> AsyncGenerator[bytes, None]:
        """Server-sent events for one subscriber until it disconnects or falls behind."""
        sub = Subscriber(site)
        self._subscribers.add(sub)
        try:
            yield b"retry: 2000\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), keepalive)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:
                    return
                yield event.encode()
        finally:
            self._subscribers.discard(sub)
