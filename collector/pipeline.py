"""The path of one reading message through the running collector.

validate -> latest table, live stream, accounting -> the writer, which acknowledges it
once it is durable (stored, spooled or dead-lettered). Built by collector.app. A replica
(collector.replicas) has two: one storing its share, without the views, and, when it
serves the API or the accounting, one with the views and no writer, fed every batch.
"""

from __future__ import annotations

from datetime import UTC, datetime

from collector.accounting.live import LiveAccounting
from collector.batch import Batch
from collector.guard import Guard
from collector.ingest import Message
from collector.state.hub import LiveHub
from collector.state.latest import LatestReadings
from collector.validate import Window, reading_batch
from collector.writer import BatchWriter


class Pipeline:
    def __init__(
        self,
        guard: Guard,
        window: Window,
        writer: BatchWriter | None,
        hub: LiveHub,
        latest: LatestReadings | None,
        accounting: LiveAccounting | None,
    ) -> None:
        self._guard = guard
        self._window = window
        self._writer = writer
        self._hub = hub
        self._latest = latest
        self._accounting = accounting
        self.messages = 0

    def receive(self, message: Message) -> None:
        """One message: dead-lettered now, or batched for the store; acked once durable.

        Whatever goes wrong with it is the guard's: it never escapes to the subscription,
        where it would leave the message unacknowledged and hold back every later ack."""
        self.messages += 1
        batch = self._guard.run("readings", message, lambda: self._use(message))
        if batch is None:
            return
        if self._writer is None:  # a replica's full view, stored by the shared subscription
            message.ack()
            return
        # Last, so that nothing can fail once the writer holds the ack.
        message.progress.stage = "store"
        self._writer.add(message.topic, message.payload, batch, message.ack)

    def _use(self, message: Message) -> Batch:
        """Validate a reading batch and show it (table, stream, accounting); raise if not."""
        progress = message.progress
        progress.stage = "parse"
        batch = reading_batch(message.topic, message.payload)
        progress.stage = "validate"
        self._window.check_batch(batch, datetime.now(UTC))
        if self._latest is not None:
            self._latest.admit(batch)
            progress.stage = "latest table"
            self._latest.update(batch)
        progress.stage = "live stream"
        self._hub.readings(batch)
        if self._accounting is not None:
            progress.stage = "accounting"
            self._accounting.feed(batch)
        return batch
