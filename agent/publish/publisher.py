"""The agent's store and forward, put together: the batcher commits readings to the
disk outbox, the forwarder sends the outbox to the broker with the agent's status, and
the counters are logged and written to the stats file every status interval."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from agent.config import AgentConfig
from agent.publish.batcher import Batcher
from agent.publish.forwarder import Forwarder, until_one_fails
from agent.publish.outbox import Outbox, OutboxError
from agent.publish.status import status_message
from agent.reading import Read
from greengauge.common.files import DiskFault, write_atomically
from greengauge.common.logs import fields
from greengauge.contract import AgentState, MeterHealth, MeterReading, MeterState

log = logging.getLogger(__name__)

STATS_FILE: Final = "stats.json"
OUTBOX_FILE: Final = "outbox.sqlite"


class Publisher:
    """Batches readings into the outbox and forwards the outbox to the broker."""

    def __init__(
        self, config: AgentConfig, outbox: Outbox, meters: Mapping[str, MeterHealth]
    ) -> None:
        """`meters`: each meter's health as its poller keeps it, read when a status is built."""
        self._config = config
        self._outbox = outbox
        self._stats_path = config.state_dir / STATS_FILE
        self.outbox_disk = DiskFault("outbox", outbox.path)
        self.stats_disk = DiskFault("stats", self._stats_path)
        live: asyncio.Queue[int] = asyncio.Queue()

        def status(state: AgentState, connected: datetime) -> bytes:
            return status_message(config.site, config.agent_id, state, connected, outbox, meters)

        self.forwarder = Forwarder(config, outbox, self.outbox_disk, live, status)
        self.batcher = Batcher(
            config.site,
            config.agent_id,
            outbox,
            self.outbox_disk,
            live,
            self.forwarder.status_changed.set,
        )

    @property
    def connected(self) -> bool:
        """Whether a broker connection is up now (for the metrics)."""
        return self.forwarder.connected

    @property
    def published_batches(self) -> int:
        return self.forwarder.published_batches

    @property
    def unsaved_dropped(self) -> int:
        return self.batcher.unsaved_dropped

    def submit(self, reading: Read | MeterReading) -> None:
        self.batcher.submit(reading)

    def meter_state_changed(self, meter: str, state: MeterState) -> None:
        """A meter went offline or came back: a status is published at once."""
        log.debug("meter state changed", extra=fields(meter=meter, state=state.value))
        self.forwarder.status_changed.set()

    def stats(self) -> dict[str, Any]:
        outbox = self._outbox
        return {
            "readings_taken": outbox.readings_taken,
            "next_seq": outbox.next_seq,
            "outbox_depth": outbox.depth,
            "dropped_batches": outbox.dropped_batches,
            "dropped_readings": outbox.dropped_readings,
            "published_batches": self.forwarder.published_batches,
            "published_readings": self.forwarder.published_readings,
            "dropped_unsaved_readings": self.batcher.unsaved_dropped,
            "refused_readings": self.batcher.refused,
            "written": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }

    def report(self, final: bool = False) -> None:
        """Log the counters and write them to the stats file (also at shutdown)."""
        stats = self.stats()
        log.info(
            "agent stopped: readings taken" if final else "readings taken",
            extra=fields(
                taken=stats["readings_taken"],
                published=stats["published_readings"],
                backlog=stats["outbox_depth"],
                dropped_batches=stats["dropped_batches"],
                dropped_readings=stats["dropped_readings"],
            ),
        )
        try:
            write_atomically(self._stats_path, json.dumps(stats, indent=2) + "\n")
        except OSError as exc:
            self.stats_disk.failed(exc, self._config.status_interval)
        else:
            self.stats_disk.ok()

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.status_interval)
            try:
                self.batcher.report_dropped(self._outbox.prune())
            except OutboxError as exc:
                self.outbox_disk.failed(exc.__cause__ or exc)
            self.report()

    async def shutdown(self, grace: float) -> None:
        """Before stopping: commit what is held, and give the live sender `grace` seconds
        to send what the outbox holds, while connected."""
        self.batcher.commit_queued()
        deadline = time.monotonic() + grace
        sent = self.forwarder.sent
        while self._outbox.depth and self.forwarder.connected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sent.wait(), remaining)

    async def run(self) -> None:
        """Batch, store and forward until cancelled; then commit and report what is left."""
        try:
            await until_one_fails(self.batcher.run(), self.forwarder.run(), self._report_forever())
        finally:
            self.batcher.commit_queued()
            self.report(final=True)
