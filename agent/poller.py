"""Polls one meter on its wall-clock ticks, keeps its health, and hands each reading on.

- A read holds the meter's bus for all its blocks and is stamped with the time it began.
- A block the device refuses (exception 2 or 3) is bisected by its fields until the
  registers it refuses are found; those are reported once and left out, the rest goes on
  being read, and the whole block is asked for again on a backoff
  (agent.modbus.codec.refusals): registers come back, and the reads merge back into the
  fewest, once the device answers them again.
- A value that cannot be decoded (wrong byte count, NaN, infinity) is dropped and counted;
  the other values of the read are still delivered. So are the values of the other blocks
  when one block gets an exception reply.
- A meter that stops answering is offline after OFFLINE_AFTER failed reads and is then
  probed with exponential backoff (and jitter), on its ticks, so a dead meter costs its
  bus one timeout per probe. When it answers again it is back online and polled normally;
  its profile is resolved again each time it (re)connects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Container, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Final, Protocol

from agent.config import MeterSettings
from agent.modbus.codec.plan import Problem, ReadBlock, shared_plan
from agent.modbus.codec.refusals import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    Outcome,
    Retry,
    Split,
    read_block,
    settle,
)
from agent.modbus.codec.resolve import ReadRegisters, resolve_profile
from agent.modbus.codec.scale import PowerFactorSign, canonical_power_factors
from agent.modbus.errors import ReadError
from agent.modbus.transport.bus import Unit
from agent.modbus.transport.tcp import EXCEPTION_NAMES
from agent.profiles import Profile
from agent.profiles.model import Function
from agent.reading import Gathering, Read, custom_of
from agent.schedule import last_tick, next_tick
from greengauge.common.backoff import Backoff
from greengauge.common.logs import fields
from greengauge.contract import MeterHealth, MeterReading, MeterState, QuantityName

log = logging.getLogger(__name__)

OFFLINE_AFTER: Final = 3
"""Consecutive reads that gave nothing before a meter is reported offline."""
BACKOFF_CEILING: Final = 300.0
"""Longest pause, in seconds, between two probes of an offline meter, and between two
requests for registers a meter refuses."""

# Error kinds counted in MeterHealth.errors, besides ReadError kinds ("timeout", "connect",
# "exception", ...).
BAD_VALUE: Final = "bad_value"
ILLEGAL_ADDRESS: Final = "illegal_address"
ILLEGAL_VALUE: Final = "illegal_value"
_REFUSAL_KINDS: Final = {ILLEGAL_DATA_ADDRESS: ILLEGAL_ADDRESS, ILLEGAL_DATA_VALUE: ILLEGAL_VALUE}


class Clock(Protocol):
    """Wall-clock time and sleeping; tests pass a fake one."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class MeterBus(Protocol):
    """What a poller needs of its bus (agent.modbus.transport.bus.Bus; tests pass a fake one)."""

    @property
    def name(self) -> str: ...

    def session(self, unit: Unit) -> AbstractAsyncContextManager[ReadRegisters]: ...


StateSink = Callable[[str, MeterState], None]
"""Told (meter id, new state) when a meter goes offline or comes back."""


class PollerBase:
    """What every meter's poller shares, whatever protocol it speaks: reads on the
    meter's ticks, its health, and offline detection with backoff (DL/T 645 meters:
    agent.dlt645.poller)."""

    def __init__(
        self,
        meter: MeterSettings,
        bus_name: str,
        deliver: Callable[[Read], None],
        *,
        clock: Clock | None = None,
        on_state: StateSink | None = None,
    ) -> None:
        self.meter = meter
        self._bus_name = bus_name
        self._deliver = deliver
        self._clock: Clock = clock or SystemClock()
        self._on_state = on_state
        self._backoff = Backoff(start=meter.interval, ceiling=max(meter.interval, BACKOFF_CEILING))
        self._retry_at = 0.0
        self._failures = 0
        self.state = MeterState.ONLINE
        self.reads = 0
        self.errors: Counter[str] = Counter()
        self._stopping = False
        self.last_read: datetime | None = None
        self.last_failure: ReadError | None = None
        """What cut the last read short (no answer, or a profile the device lacks)."""

    def health(self) -> MeterHealth:
        return MeterHealth(
            state=self.state,
            last_read=self.last_read,
            reads=self.reads,
            errors=dict(self.errors),
            excluded=self._excluded_count(),
        )

    def _excluded_count(self) -> int:
        """Values left out because the meter refuses them."""
        return 0

    async def run(self) -> None:
        """Read on every tick until stopped; an offline meter only on ticks after its backoff."""
        interval = self.meter.interval
        while not self._stopping:
            tick = next_tick(max(self._clock.time(), self._retry_at), interval)
            # A timer can fire before the wall clock reaches the tick (uvloop's are whole
            # milliseconds; NTP may slew the wall clock against the loop's): a read that
            # began then would be stamped in the tick before, and could be read twice.
            while (left := tick - self._clock.time()) > 0:
                await self._clock.sleep(left)
            read = await self._read()
            if read is not None and not self._stopping:
                self._deliver(read)

    def stop(self) -> None:
        """End `run` after the read under way, even if a cancel of its task gets lost.

        Python 3.11's asyncio.wait_for, which pymodbus awaits for every request, can
        swallow a cancel that lands as the reply arrives; a poller relying on the cancel
        alone would then read on and keep the agent from exiting.
        """
        self._stopping = True

    async def read_once(self) -> MeterReading | None:
        """One read of every value of the meter, as the contract's reading (checked);
        None when nothing could be read."""
        read = await self._read()
        return None if read is None else read.model()

    async def _read(self) -> Read | None:
        """One read of every value of the meter; None when nothing could be read."""
        raise NotImplementedError

    def _tick(self) -> float:
        # Retries are scheduled in ticks: a read that starts a little after its tick must
        # not find a retry one interval later not yet due.
        return last_tick(self._clock.time(), self.meter.interval)

    def _where(self) -> dict[str, object]:
        """Where the meter is on its bus, for log lines."""
        return {}

    def _lost(self) -> None:
        """Told on every failed read of an offline meter."""

    def _answered(self, ts: datetime) -> None:
        self.reads += 1
        self.last_read = ts
        self._failures = 0
        self._retry_at = 0.0
        self._backoff.reset()
        if self.state is MeterState.OFFLINE:
            self._set_state(MeterState.ONLINE)
            log.info("meter online again", extra=fields(meter=self.meter.id, bus=self._bus_name))

    def _set_state(self, state: MeterState) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(self.meter.id, state)

    def _read_failed(self, error: ReadError | None) -> None:
        self._failures += 1
        reason = str(error) if error is not None else "no value could be read"
        if self._failures == 1:
            # One line when a meter starts failing, not one per tick while it stays down.
            log.warning(
                "meter read failed",
                extra=fields(
                    meter=self.meter.id,
                    bus=self._bus_name,
                    **self._where(),
                    kind=error.kind if error is not None else "no_values",
                    reason=reason,
                ),
            )
        if self._failures >= OFFLINE_AFTER:
            if self.state is MeterState.ONLINE:
                self._set_state(MeterState.OFFLINE)
                log.warning(
                    "meter offline",
                    extra=fields(meter=self.meter.id, bus=self._bus_name, reason=reason),
                )
            self._lost()
            self._retry_at = self._clock.time() + self._backoff.next_delay()


class MeterPoller(PollerBase):
    """A Modbus meter's poller."""

    def __init__(
        self,
        meter: MeterSettings,
        profile: Profile,
        bus: MeterBus,
        deliver: Callable[[Read], None],
        *,
        clock: Clock | None = None,
        on_state: StateSink | None = None,
    ) -> None:
        super().__init__(meter, bus.name, deliver, clock=clock, on_state=on_state)
        modbus = meter.modbus
        assert modbus is not None  # a Modbus meter
        self._profile = profile
        self._custom = custom_of(profile.custom_units)
        self._signs_power_factors = profile.power_factor_sign is not PowerFactorSign.ACTIVE_POWER
        self._bus = bus
        self._unit = Unit(modbus.unit_id, modbus.timeout, modbus.retries)
        self._resolve = True
        """Resolve the profile on the device before the next read (a new connection)."""
        self._resolve_at: float | None = None
        """When to resolve again a profile whose resolution met exception replies."""
        self._resolve_tries = 0
        self._plan: tuple[ReadBlock, ...] = ()
        """The fewest reads of every register; `_splits` says how each is read now."""
        self._splits: dict[int, Split] = {}
        """Blocks of `_plan` (by index) the device refused whole; most meters have none."""
        self._retry = Retry(start=meter.interval, ceiling=max(meter.interval, BACKOFF_CEILING))
        self._failing_values: set[tuple[int, str]] = set()

    @property
    def plan(self) -> tuple[ReadBlock, ...]:
        """The reads of every register, as resolved on the device (empty before a read)."""
        return self._plan

    @property
    def excluded(self) -> frozenset[tuple[Function, int]]:
        """(table, address) of the registers left out because the meter refuses them."""
        return frozenset(
            (self._plan[index].function, address)
            for index, split in self._splits.items()
            for address in split.excluded
        )

    def _excluded_count(self) -> int:
        return sum(len(split.excluded) for split in self._splits.values())

    def _where(self) -> dict[str, object]:
        return {"unit_id": self._unit.unit_id}

    def _lost(self) -> None:
        # Resolved again when it answers: it may be another device now.
        self._resolve = True

    async def _read(self) -> Read | None:
        """One read of every block of the meter; None when nothing could be read."""
        # Blocks of float32 values whose decimals the Read makes when it is written; not
        # when the power factors' signs are changed here.
        gathering = Gathering(runs=not self._signs_power_factors)
        failure: ReadError | None = None
        ts = None
        async with self._bus.session(self._unit) as read:
            try:
                if self._resolve or (
                    self._resolve_at is not None and self._tick() >= self._resolve_at
                ):
                    await self._resolve_profile(read)
                now = self._clock.time()
                ts = datetime.fromtimestamp(now, UTC)
                failure = await self._read_blocks(read, now, gathering)
            except ReadError as exc:
                failure = exc
        self.last_failure = failure
        if failure is not None:
            self.errors[failure.kind] += 1
        canonical_power_factors(gathering.values, self._profile.power_factor_sign)
        if gathering and ts is not None:
            self._answered(ts)
            return gathering.read(self.meter.id, ts, self._custom)
        self._read_failed(failure)
        return None

    async def _resolve_profile(self, read: ReadRegisters) -> None:
        """Settle the profile's addresses on the device, and plan its reads.

        A candidate address the device refuses is passed over, so a refusal that was
        transient (busy, booting) may have settled on the wrong one: such a resolution
        is done again on the refusals' backoff until one meets no exception reply. Most
        profiles resolve without a read and are never done again.
        """
        refusals = 0

        async def watched(function: Function, address: int, count: int) -> Sequence[int]:
            nonlocal refusals
            try:
                return await read(function, address, count)
            except ReadError as exc:
                refusals += exc.kind == "exception"
                raise

        plan = shared_plan(await resolve_profile(self._profile, watched))
        if plan != self._plan:
            if self._plan:
                log.info(
                    "registers resolved anew",
                    extra=fields(meter=self.meter.id, reads=len(plan)),
                )
            # The blocks differ, so what they refused no longer applies. The same plan
            # (the same device again) keeps it: refused registers are asked on schedule.
            self._splits.clear()
            self._plan = plan
        self._resolve = False
        if refusals:
            self._resolve_at = self._tick() + self._retry.delay(self._resolve_tries)
            self._resolve_tries += 1
        else:
            self._resolve_at = None
            self._resolve_tries = 0

    async def _read_blocks(
        self, read: ReadRegisters, now: float, gathering: Gathering
    ) -> ReadError | None:
        """Read the plan into `gathering`; the error that cut the read short, if any."""
        tick = last_tick(now, self.meter.interval)
        for index, block in enumerate(self._plan):
            split = self._splits.get(index)
            if split is None:
                # Nothing refused (nearly every block of every read): one request, and
                # the refusal bookkeeping only if the device refuses it now.
                try:
                    registers = await read(block.function, block.address, block.count)
                except ReadError as exc:
                    outcome = await read_block(block, split, tick, read, first=exc)
                else:
                    self._take(block, registers, gathering)
                    continue
            else:
                outcome = await read_block(block, split, tick, read)
            for part, registers in outcome.replies:
                decoded, problems = part.decode(registers)
                gathering.decoded(decoded)
                self._value_problems(part, decoded, problems)
            for part, error in outcome.failed:
                # The device answered, but not this read: its quantities are dropped.
                self.errors[error.kind] += 1
                self._dropped(part, f"{error}")
            if outcome.failure is not None:
                # No answer: a silent meter would cost a timeout per block, so stop here.
                return outcome.failure
            after = settle(block, split, outcome, tick, self._retry)
            if after is None:
                self._splits.pop(index, None)
            else:
                self._splits[index] = after
            if split is not None or after is not None:
                # Nothing refused before or now (nearly every read): nothing to report.
                self._report_refusals(block, split, after, outcome, tick)
        return None

    def _take(self, block: ReadBlock, registers: Sequence[int], gathering: Gathering) -> None:
        """A block's reply into the read's values, as a Float32Run when it is one."""
        if gathering.runs is not None and (run := block.float32_run(registers)) is not None:
            gathering.run(run)
            if self._failing_values:
                # Every value of the block is there: those that were failing are back.
                self._value_problems(block, run.quantities, [])
            return
        decoded, problems = block.decode(registers)
        gathering.decoded(decoded)
        if problems or self._failing_values:
            self._value_problems(block, decoded, problems)

    def _report_refusals(
        self,
        block: ReadBlock,
        before: Split | None,
        after: Split | None,
        outcome: Outcome,
        now: float,
    ) -> None:
        """One line when a register is left out, one when it is read again."""
        was = before.excluded if before is not None else frozenset()
        now_excluded = after.excluded if after is not None else frozenset()
        by_address = {f.address: f for f in block.fields}
        for address, code in outcome.bad:
            if address in was:
                continue
            self.errors[_REFUSAL_KINDS[code]] += 1
            assert after is not None  # a refusal leaves the block split
            log.warning(
                "register refused, left out",
                extra=fields(
                    meter=self.meter.id,
                    register=address,
                    table=block.function.value,
                    quantity=str(by_address[address].quantity),
                    reason=f"exception {code} ({EXCEPTION_NAMES[code]})",
                    retry_in=round(after.retry_at - now, 3),
                ),
            )
        for address in sorted(was - now_excluded):
            log.info(
                "register answered again",
                extra=fields(
                    meter=self.meter.id,
                    register=address,
                    table=block.function.value,
                    quantity=str(by_address[address].quantity),
                ),
            )

    def _value_problems(
        self, block: ReadBlock, decoded: Container[QuantityName], problems: list[Problem]
    ) -> None:
        for problem in problems:
            if problem.quiet:
                # The meter itself says it has no such value: worth a count, not a log line.
                self.errors[problem.kind.value] += 1
                continue
            self.errors[BAD_VALUE] += 1
            self._value_failing(block, problem.address, problem.quantity, problem.reason)
        if not self._failing_values:
            # Nothing was failing: nothing can be back (nearly every read).
            return
        for field in block.fields:
            if field.quantity in decoded:
                self._failing_values.discard((field.address, block.function.value))

    def _dropped(self, block: ReadBlock, reason: str) -> None:
        for field in block.fields:
            self._value_failing(block, field.address, field.quantity, reason)

    def _value_failing(
        self, block: ReadBlock, address: int, quantity: QuantityName, reason: str
    ) -> None:
        key = (address, block.function.value)
        # One line when a value starts failing, not one per tick while it stays bad.
        if key in self._failing_values:
            return
        self._failing_values.add(key)
        log.warning(
            "value dropped",
            extra=fields(
                meter=self.meter.id, quantity=str(quantity), register=address, reason=reason
            ),
        )
