"""Polls one meter on its wall-clock ticks and hands each reading on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from agent.config import MeterSettings
from agent.logs import fields
from agent.modbus.connection import TcpConnection
from agent.modbus.errors import ReadError
from agent.modbus.plan import plan_reads
from agent.profiles import Profile
from agent.schedule import next_tick
from agent.wire import MeterReading, Quantity

log = logging.getLogger(__name__)


class MeterPoller:
    def __init__(
        self,
        meter: MeterSettings,
        profile: Profile,
        connection: TcpConnection,
        deliver: Callable[[MeterReading], None],
    ) -> None:
        self.meter = meter
        self._plan = plan_reads(profile)
        self._connection = connection
        self._deliver = deliver
        self._failing = False
        self.reads = 0
        self.errors = 0

    async def run(self) -> None:
        interval = self.meter.interval
        while True:
            delay = next_tick(time.time(), interval) - time.time()
            await asyncio.sleep(max(delay, 0.0))
            reading = await self.read_once()
            if reading is not None:
                self._deliver(reading)

    async def read_once(self) -> MeterReading | None:
        """One read of every block of the meter; None when nothing could be read."""
        ts = datetime.now(UTC)
        values: dict[Quantity, float] = {}
        for block in self._plan:
            try:
                registers = await self._connection.read(
                    block.function, block.address, block.count, self.meter.modbus.unit_id
                )
            except ReadError as exc:
                self._read_failed(block.address, exc)
                return None
            decoded, problems = block.decode(registers)
            values.update(decoded)
            for problem in problems:
                self.errors += 1
                log.warning(
                    "value dropped",
                    extra=fields(
                        meter=self.meter.id,
                        quantity=problem.quantity.value,
                        register=problem.address,
                        reason=problem.reason,
                    ),
                )
        if not values:
            return None
        self.reads += 1
        if self._failing:
            self._failing = False
            log.info("meter answers again", extra=fields(meter=self.meter.id))
        return MeterReading(meter=self.meter.id, ts=ts, values=values)

    def _read_failed(self, address: int, error: ReadError) -> None:
        self.errors += 1
        # One line when a meter starts failing, not one per tick while it stays down.
        if not self._failing:
            self._failing = True
            log.warning(
                "meter read failed",
                extra=fields(
                    meter=self.meter.id,
                    connection=self._connection.name,
                    unit_id=self.meter.modbus.unit_id,
                    register=address,
                    kind=error.kind,
                    reason=str(error),
                ),
            )
