"""The poller against a fake bus and a fake clock: ticks without drift, backoff of a
silent meter, bisection of refused reads, bad values dropped alone."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent.poller as poller_module
from agent.config import MeterSettings
from agent.modbus.codec.resolve import ReadRegisters
from agent.modbus.errors import ReadError
from agent.modbus.transport.bus import Unit
from agent.poller import BACKOFF_CEILING, OFFLINE_AFTER, MeterPoller
from agent.profiles import Profile
from agent.profiles.model import Function
from agent.reading import Read
from greengauge.common.backoff import Backoff
from greengauge.contract import MeterReading, MeterState, Quantity

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0

PROFILE = Profile.model_validate(
    {
        "model": "fake",
        "manufacturer": "tests",
        "description": "three float32 blocks",
        "sources": {"t": "t"},
        "function": "input",
        "max_gap": 0,
        "registers": [
            {"quantity": q, "address": a, "type": "float32", "unit": u, "source": "t"}
            for q, a, u in [
                ("voltage_l1", 0, "V"),
                ("voltage_l2", 2, "V"),
                ("voltage_l3", 4, "V"),
                ("current_l1", 6, "A"),
                ("frequency", 70, "Hz"),
                ("power_active", 100, "W"),
            ]
        ],
    }
)


class Stop(Exception):
    pass


class FakeClock:
    def __init__(
        self, start: float, overshoot: tuple[float, ...] = (0.0,), early: float = 0.0
    ) -> None:
        self.now = start
        self.slept: list[float] = []
        self._overshoot = itertools.cycle(overshoot)
        """Wakes this much late, in turn (a loaded machine's timers)."""
        self._early = early
        """A sleep longer than twice this wakes this much too soon (uvloop's millisecond
        timers); a shorter one on time, so that the clock always moves on."""

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        early = self._early if seconds > 2 * self._early else 0.0
        self.now += seconds - early + next(self._overshoot)


def float_words(value: float) -> list[int]:
    return list(struct.unpack(">2H", struct.pack(">f", value)))


class FakeBus:
    """A device: register address -> value (float32 at even addresses); reads of any
    address in `refused` get exception 2; `silent` makes every read time out."""

    name = "fake-bus"

    def __init__(self, clock: FakeClock, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.values = {a: 200.0 + a for a in (0, 2, 4, 6, 70, 100)}
        self.refused: set[int] = set()
        self.flaky: set[int] = set()
        """Refused on every other request that touches them."""
        self.longest = 125
        """Longer reads get exception 3 (a device that takes fewer registers per read)."""
        self.exception_at: dict[int, int] = {}
        self.silent = False
        self.flaked = False
        self.requests: list[tuple[int, int]] = []

    async def _read(self, function: Function, address: int, count: int) -> list[int]:
        assert function is Function.INPUT
        self.requests.append((address, count))
        if self.silent:
            self.clock.now += 1.0
            raise ReadError("timeout", "no answer")
        self.clock.now += self.latency
        span = set(range(address, address + count))
        if span & self.refused:
            raise ReadError("exception", "exception code 2", 2)
        if span & self.flaky:
            self.flaked = not self.flaked
            if self.flaked:
                raise ReadError("exception", "exception code 2", 2)
        if count > self.longest:
            raise ReadError("exception", "exception code 3", 3)
        for start, code in self.exception_at.items():
            if start in span:
                raise ReadError("exception", f"exception code {code}", code)
        words: list[int] = []
        for a in range(address, address + count, 2):
            words += float_words(self.values.get(a, 0.0))
        return words[:count]

    @contextlib.asynccontextmanager
    async def session(self, unit: Unit) -> AsyncIterator[ReadRegisters]:
        assert unit.unit_id == 7
        yield self._read


def make_poller(
    bus: FakeBus,
    clock: FakeClock,
    deliver: Callable[[Read], None],
    interval: float = 10.0,
    profile: Profile = PROFILE,
) -> MeterPoller:
    meter = MeterSettings.model_validate(
        {
            "id": "m1",
            "profile": "fake",
            "modbus": {"host": "h", "unit_id": 7},
            "interval": interval,
        }
    )
    return MeterPoller(meter, profile, bus, deliver, clock=clock)


async def test_a_day_of_ticks_without_drift() -> None:
    clock = FakeClock(EPOCH + 0.3)
    bus = FakeBus(clock, latency=0.137)  # every read takes time: the ticks must not shift
    stamps: list[float] = []

    def deliver(reading: Read) -> None:
        stamps.append(reading.ts.timestamp())
        if clock.now > EPOCH + DAY:
            raise Stop

    poller = make_poller(bus, clock, deliver, interval=10.0)
    with pytest.raises(Stop):
        await poller.run()
    assert len(stamps) == 8640  # 10 s ticks, EPOCH + 10 .. EPOCH + 86400
    # stamped at the read, which starts on the tick: whole multiples of 10 s, none missed
    assert stamps == [EPOCH + 10 * (i + 1) for i in range(len(stamps))]


@given(early=st.floats(min_value=1e-6, max_value=0.002), start=st.floats(0.0, 10.0))
@settings(max_examples=50, deadline=None)
async def test_a_timer_that_fires_early_still_reads_on_the_tick(early: float, start: float) -> None:
    clock = FakeClock(EPOCH + start, early=early)
    bus = FakeBus(clock)  # an instant read: one begun early could be done before the tick
    stamps: list[float] = []

    def deliver(reading: Read) -> None:
        stamps.append(reading.ts.timestamp())
        if len(stamps) == 20:
            raise Stop

    with pytest.raises(Stop):
        await make_poller(bus, clock, deliver, interval=1.0).run()
    first = math.floor(start) + 1
    assert stamps == [EPOCH + first + i for i in range(20)]


async def test_an_overrunning_read_skips_to_the_next_tick_on_the_grid() -> None:
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock, latency=0.6)  # 3 blocks * 0.6 s > a 1 s interval
    stamps: list[float] = []

    def deliver(reading: Read) -> None:
        stamps.append(reading.ts.timestamp())
        if len(stamps) == 5:
            raise Stop

    with pytest.raises(Stop):
        await make_poller(bus, clock, deliver, interval=1.0).run()
    assert stamps == [EPOCH + 1, EPOCH + 3, EPOCH + 5, EPOCH + 7, EPOCH + 9]


async def test_a_silent_meter_is_backed_off_and_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved: list[float] = []

    async def resolve(profile: Profile, read: ReadRegisters) -> Profile:
        resolved.append(clock.now)
        return profile

    monkeypatch.setattr(poller_module, "resolve_profile", resolve)
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    readings: list[Read] = []
    attempts: list[float] = []
    poller = make_poller(bus, clock, readings.append, interval=1.0)
    original = poller._read

    async def read() -> Read | None:
        attempts.append(clock.now)
        if len(attempts) == 3:
            bus.silent = True
        if clock.now > EPOCH + 200:
            bus.silent = False
        if clock.now > EPOCH + 800:  # the longest backoff (300 s) has passed since healing
            raise Stop
        return await original()

    monkeypatch.setattr(poller, "_read", read)
    with pytest.raises(Stop):
        await poller.run()
    silent = [t for t in attempts if EPOCH + 3 <= t <= EPOCH + 200]
    gaps = [b - a for a, b in itertools.pairwise(silent)]
    # offline after OFFLINE_AFTER failed reads, then probed ever less often
    assert gaps[: OFFLINE_AFTER - 1] == [2.0] * (OFFLINE_AFTER - 1)  # 1 s tick + 1 s timeout
    later = gaps[OFFLINE_AFTER:]
    assert later == sorted(later) or max(later) > 30
    assert max(later) > 30
    assert len(silent) < 20  # instead of ~100 timeouts
    # every probe lands on a tick
    assert all(t == math.floor(t) for t in attempts)
    # answering again: online, polled every second, profile resolved again on reconnect
    assert poller.state is MeterState.ONLINE
    after = [t for t in attempts if t > EPOCH + 200 + BACKOFF_CEILING + 1]
    assert after == [after[0] + i for i in range(len(after))]
    # resolved on the first connection and on each probe of the offline meter (each is a
    # new connection attempt), never while it answers
    healed = after[0] if after else 0
    recovery = min(t for t in attempts if t > EPOCH + 200)
    assert resolved[0] == EPOCH + 1
    assert resolved[-1] == recovery < healed
    assert not [t for t in resolved if EPOCH + 1 < t < EPOCH + 3]
    health = poller.health()
    assert health.state is MeterState.ONLINE
    assert health.errors["timeout"] == len(silent)
    assert health.last_read is not None


async def test_offline_meter_reports_offline_health() -> None:
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.silent = True
    poller = make_poller(bus, clock, lambda r: None)
    seen: list[MeterState] = []
    poller._on_state = lambda meter, state: seen.append(state)
    for _ in range(OFFLINE_AFTER):
        assert await poller.read_once() is None
    assert seen == [MeterState.OFFLINE]
    assert poller.health().state is MeterState.OFFLINE
    assert poller.health().errors == {"timeout": OFFLINE_AFTER}
    assert poller.health().last_read is None
    bus.silent = False
    assert await poller.read_once() is not None
    assert seen == [MeterState.OFFLINE, MeterState.ONLINE]


def test_backoff_schedule_doubles_with_jitter_up_to_the_ceiling() -> None:
    backoff = Backoff(start=1.0, ceiling=16.0)
    delays = [backoff.next_delay() for _ in range(8)]
    nominal = [1, 2, 4, 8, 16, 16, 16, 16]
    for delay, bound in zip(delays, nominal, strict=True):
        assert bound * 0.5 <= delay <= bound
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


async def test_refused_registers_are_found_reported_once_and_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.refused = {4}  # voltage_l3 (4-5) is not on this unit
    poller = make_poller(bus, clock, lambda r: None)
    with caplog.at_level(logging.WARNING):
        first = await poller.read_once()
        bus.requests.clear()
        second = await poller.read_once()
    assert first is not None and second is not None
    expected = {
        Quantity.VOLTAGE_L1: 200.0,
        Quantity.VOLTAGE_L2: 202.0,
        Quantity.CURRENT_L1: 206.0,
        Quantity.FREQUENCY: 270.0,
        Quantity.POWER_ACTIVE: 300.0,
    }
    assert first.values == expected
    assert second.values == expected
    assert poller.excluded == {(Function.INPUT, 4)}
    # the second read asks for nothing refused, in no more requests than needed: the
    # registers either side of the refused one in one read each
    assert all(not set(range(a, a + c)) & {4, 5} for a, c in bus.requests)
    assert bus.requests == [(0, 4), (6, 2), (70, 2), (100, 2)]
    lines = [r for r in caplog.records if r.getMessage() == "register refused, left out"]
    assert len(lines) == 1
    kv: dict[str, Any] = lines[0].kv  # type: ignore[attr-defined]
    assert kv["meter"] == "m1" and kv["register"] == 4 and "illegal data address" in kv["reason"]
    assert kv["retry_in"] == 10.0  # one interval, then doubling
    assert poller.health().errors == {"illegal_address": 1}
    assert poller.health().excluded == 1


async def test_bad_values_and_exception_replies_drop_only_their_quantities(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.values[2] = math.nan
    bus.values[6] = math.inf
    bus.exception_at = {70: 4}  # device failure on the frequency block
    poller = make_poller(bus, clock, lambda r: None)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            reading = await poller.read_once()
            assert reading is not None
            assert reading.values == {
                Quantity.VOLTAGE_L1: 200.0,
                Quantity.VOLTAGE_L3: 204.0,
                Quantity.POWER_ACTIVE: 300.0,
            }
    health = poller.health()
    assert health.state is MeterState.ONLINE
    assert health.errors == {"bad_value": 6, "exception": 3}
    dropped = [r.kv for r in caplog.records if r.getMessage() == "value dropped"]  # type: ignore[attr-defined]
    # one line per value when it starts failing, not one per read
    assert sorted(d["register"] for d in dropped) == [2, 6, 70]
    assert all(d["meter"] == "m1" and d["reason"] for d in dropped)


async def test_a_value_that_comes_back_is_logged_again_when_it_fails_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A float32 block read whole again (its decimals left to the Read) clears what was
    failing in it: the next failure is a new line, not swallowed as still failing."""
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    poller = make_poller(bus, clock, lambda r: None)
    with caplog.at_level(logging.WARNING):
        for value in (math.nan, 202.0, math.nan, 202.0):
            bus.values[2] = value
            reading = await poller.read_once()
            assert reading is not None
            assert (Quantity.VOLTAGE_L2 in reading.values) is math.isfinite(value)
            if math.isfinite(value):
                assert reading.values[Quantity.VOLTAGE_L2] == 202.0
    dropped = [r.kv for r in caplog.records if r.getMessage() == "value dropped"]  # type: ignore[attr-defined]
    assert [d["register"] for d in dropped] == [2, 2]
    assert poller.health().errors == {"bad_value": 2}


ALL_VALUES = {
    q: 200.0 + a
    for q, a in [
        (Quantity.VOLTAGE_L1, 0),
        (Quantity.VOLTAGE_L2, 2),
        (Quantity.VOLTAGE_L3, 4),
        (Quantity.CURRENT_L1, 6),
        (Quantity.FREQUENCY, 70),
        (Quantity.POWER_ACTIVE, 100),
    ]
}
MINIMUM = [(0, 8), (70, 2), (100, 2)]
"""The fewest reads of PROFILE (max_gap 0)."""


async def test_a_register_refused_half_the_time_comes_back_and_the_reads_merge_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The issue: a meter answering "illegal data address" for a register every other
    # time lost it for good (and the split reads with it) until the agent restarted.
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.flaky = {4}
    poller = make_poller(bus, clock, lambda r: None, interval=10.0)
    flaky_reads = 60
    with caplog.at_level(logging.INFO):
        for _ in range(flaky_reads):
            assert await poller.read_once() is not None
            clock.now += 10.0
        bus.flaky = set()
        healed = clock.now
        last: MeterReading | None = None
        while clock.now <= healed + BACKOFF_CEILING + 10.0:
            bus.requests.clear()
            last = await poller.read_once()
            clock.now += 10.0
    assert last is not None and last.values == ALL_VALUES
    assert bus.requests == MINIMUM
    assert poller.excluded == frozenset()
    assert poller.health().excluded == 0
    left_out = [r for r in caplog.records if r.getMessage() == "register refused, left out"]
    back = [r for r in caplog.records if r.getMessage() == "register answered again"]
    # one line per episode, and episodes are backed off: nowhere near one per read
    assert 1 <= len(left_out) <= 8 and len(back) == len(left_out)
    assert all(r.kv["register"] == 4 for r in left_out + back)  # type: ignore[attr-defined]
    assert poller.health().errors == {"illegal_address": len(left_out)}


async def test_refused_registers_are_asked_for_on_a_backoff_and_merge_back() -> None:
    # reads start a little late, by varying amounts, and take time: the schedule holds
    clock = FakeClock(EPOCH, overshoot=(0.004, 0.001, 0.009))
    bus = FakeBus(clock, latency=0.137)
    bus.refused = {4}
    asked: list[float] = []

    def deliver(reading: Read) -> None:
        assert Quantity.VOLTAGE_L3 not in reading.values
        if any(a <= 4 < a + c for a, c in bus.requests):
            asked.append(math.floor(reading.ts.timestamp()))
        bus.requests.clear()
        if len(asked) == 9:
            raise Stop

    poller = make_poller(bus, clock, deliver, interval=10.0)
    with pytest.raises(Stop):
        await poller.run()
    # asked again after 10, 20, 40, ... s, then every BACKOFF_CEILING
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert gaps == [10, 20, 40, 80, 160, 300, 300, 300]
    # in between, the block is read without it in two requests (not the bisection's pieces)
    bus.requests.clear()
    await poller.read_once()
    assert bus.requests == [(0, 4), (6, 2), (70, 2), (100, 2)]
    bus.refused = set()
    clock.now += BACKOFF_CEILING
    bus.requests.clear()
    reading = await poller.read_once()
    assert reading is not None and reading.values == ALL_VALUES
    assert bus.requests == MINIMUM


async def test_a_device_that_takes_fewer_registers_per_read_gets_smaller_reads() -> None:
    # Exception 3: the profile's block is longer than this unit takes.
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.longest = 4
    poller = make_poller(bus, clock, lambda r: None, interval=10.0)
    for _ in range(3):
        bus.requests.clear()
        reading = await poller.read_once()
        assert reading is not None and reading.values == ALL_VALUES
        clock.now += 10.0
    assert bus.requests == [(0, 4), (4, 4), (70, 2), (100, 2)]
    assert poller.excluded == frozenset()
    bus.longest = 125  # a firmware update
    clock.now += BACKOFF_CEILING
    bus.requests.clear()
    assert await poller.read_once() is not None
    assert bus.requests == MINIMUM


@pytest.mark.parametrize("code", [4, 5, 6, 10, 11])
async def test_other_exception_replies_drop_their_block_for_that_read_only(code: int) -> None:
    # Device failure, acknowledge, busy, gateway path / target: transient, nothing kept.
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.exception_at = {0: code, 70: code}
    poller = make_poller(bus, clock, lambda r: None, interval=10.0)
    for _ in range(3):
        reading = await poller.read_once()
        assert reading is not None and reading.values == {Quantity.POWER_ACTIVE: 300.0}
        clock.now += 10.0
    bus.exception_at = {}
    bus.requests.clear()
    reading = await poller.read_once()
    assert reading is not None and reading.values == ALL_VALUES
    assert bus.requests == MINIMUM
    assert poller.health().errors == {"exception": 6}
    assert poller.health().excluded == 0


async def test_a_resolution_that_met_a_refusal_is_done_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Firmware variants: energy at 20 on this unit, 10 on others (which read 0 here). A
    # busy reply to the probe of 20 settled on 10 for good, and the meter read 0 kWh.
    profile = Profile.model_validate(
        {
            **PROFILE.model_dump(include={"model", "manufacturer", "description", "sources"}),
            "function": "input",
            "max_gap": 0,
            "registers": [
                {
                    "quantity": "voltage_l1",
                    "address": 0,
                    "type": "float32",
                    "unit": "V",
                    "source": "t",
                },
                {
                    "quantity": "energy_active_import",
                    "address": 10,
                    "alternatives": [20],
                    "type": "float32",
                    "unit": "kWh",
                    "source": "t",
                },
            ],
        }
    )
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.values = {0: 230.0, 20: 1234.5}
    bus.exception_at = {20: 6}  # server device busy
    meter = MeterSettings.model_validate(
        {"id": "m1", "profile": "fake", "modbus": {"host": "h", "unit_id": 7}, "interval": 10}
    )
    poller = MeterPoller(meter, profile, bus, lambda r: None, clock=clock)
    first = await poller.read_once()
    assert first is not None and first.values[Quantity.ENERGY_ACTIVE_IMPORT] == 0.0
    bus.exception_at = {}
    energy: list[float] = []
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            clock.now += 10.0
            reading = await poller.read_once()
            assert reading is not None
            energy.append(reading.values[Quantity.ENERGY_ACTIVE_IMPORT])
    assert energy == [1234.5] * 3
    assert [r.getMessage() for r in caplog.records] == ["registers resolved anew"]
    # settled without a refusal: not resolved again
    bus.requests.clear()
    clock.now += BACKOFF_CEILING
    await poller.read_once()
    assert bus.requests == [(0, 2), (20, 2)]


async def test_a_busy_reply_at_the_retry_is_no_news(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.refused = {4}
    poller = make_poller(bus, clock, lambda r: None, interval=10.0)
    await poller.read_once()
    clock.now += 10.0  # the retry: the device is busy
    bus.exception_at = {0: 6}
    with caplog.at_level(logging.INFO):
        await poller.read_once()
    assert poller.excluded == {(Function.INPUT, 4)}
    assert not [r for r in caplog.records if r.getMessage() == "register answered again"]
    bus.exception_at = {}
    bus.requests.clear()
    clock.now += 10.0  # not yet asked again: read without it
    await poller.read_once()
    assert bus.requests == [(0, 4), (6, 2), (70, 2), (100, 2)]


@pytest.mark.parametrize(
    ("sign", "active", "published"),
    [
        ("reactive_power", -5000.0, -0.9),  # DTSU666: +0.9 "inductive" while exporting
        ("reactive_power", 5000.0, 0.9),
        ("active_power", -5000.0, 0.9),  # already canonical: taken as it comes
    ],
)
async def test_power_factors_are_published_in_the_canonical_sign(
    sign: str, active: float, published: float
) -> None:
    data = PROFILE.model_dump(mode="json", exclude_none=True)
    data["power_factor_sign"] = sign
    data["registers"].append(
        {"quantity": "power_factor", "address": 8, "type": "float32", "unit": "1", "source": "t"}
    )
    clock = FakeClock(EPOCH)
    bus = FakeBus(clock)
    bus.values |= {8: 0.9, 100: active}
    meter = make_poller(bus, clock, lambda _r: None)
    poller = MeterPoller(
        meter.meter, Profile.model_validate(data), bus, lambda _r: None, clock=clock
    )
    reading = await poller.read_once()
    assert reading is not None
    assert reading.values[Quantity.POWER_FACTOR] == pytest.approx(published)
    # Without the active power read, a meter-convention power factor cannot be signed.
    bus.refused = {100, 101}
    reading = await poller.read_once()
    assert reading is not None
    assert (Quantity.POWER_FACTOR in reading.values) == (sign == "active_power")


def test_a_power_factor_sign_needs_the_active_power_it_takes_its_sign_from() -> None:
    data = PROFILE.model_dump(mode="json", exclude_none=True)
    data["power_factor_sign"] = "reactive_power"
    data["registers"].append(
        {"quantity": "power_factor_l2", "address": 8, "type": "float32", "unit": "1", "source": "t"}
    )
    with pytest.raises(ValueError, match=r"power_factor_l2: .* needs power_active_l2"):
        Profile.model_validate(data)
