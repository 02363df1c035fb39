"""`energy-agent test`'s read and table, against the poller tests' fake device: every value
shown is the one the agent's own read delivered, with the registers it came from, and
every value that did not come is shown with why. DL/T 645 meters against the DL/T 645
poller tests' fake line, the same way."""

from __future__ import annotations

import asyncio
import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_dlt645_poller import PROFILE as DLT645_PROFILE
from test_dlt645_poller import FakeLine
from test_dlt645_poller import meter as dlt645_meter
from test_poller import PROFILE, FakeBus, FakeClock

from agent.commission import (
    Commissioning,
    Link,
    MeterResult,
    RecordingBus,
    RecordingDlt645Bus,
    ValueResult,
    dlt645_link,
    dlt645_value_results,
    modbus_link,
    value_results,
)
from agent.config import Dlt645Settings, MeterSettings, ModbusSettings
from agent.dlt645.codec import NO_SUCH_DATA, encode_bcd
from agent.dlt645.poller import Dlt645Poller
from agent.modbus.errors import ReadError
from agent.poller import MeterPoller
from agent.profiles.model import Function
from greengauge.contract import MeterReading, Quantity

EPOCH = 1_767_225_600.0
ADDRESSES = (0, 2, 4, 6, 70, 100)
METER = MeterSettings.model_validate(
    {"id": "m1", "profile": "fake", "modbus": {"host": "127.0.0.1", "unit_id": 7}}
)


def read_once(bus: FakeBus) -> tuple[MeterPoller, RecordingBus, MeterReading | None]:
    recording = RecordingBus(bus)
    poller = MeterPoller(METER, PROFILE, recording, lambda _: None, clock=bus.clock)
    return poller, recording, asyncio.run(poller.read_once())


def results(bus: FakeBus) -> tuple[MeterResult, MeterPoller, MeterReading | None]:
    poller, recording, reading = read_once(bus)
    values = value_results(
        poller.plan, recording.requests, dict(reading.items()) if reading else {}, poller.excluded
    )
    assert METER.modbus is not None
    meter = MeterResult("m1", "fake", modbus_link(METER.modbus), poller.last_failure, values)
    return meter, poller, reading


def words(value: float) -> str:
    """A float32 ABCD value's registers as the table shows them."""
    return " ".join(f"{word:04X}" for word in struct.unpack(">2H", struct.pack(">f", value)))


def by_quantity(meter: MeterResult) -> dict[str, ValueResult]:
    return {str(v.quantity): v for v in meter.values}


def test_a_meter_that_answers_everything_is_ok_with_its_raw_registers() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    meter, _, reading = results(bus)
    assert reading is not None
    assert meter.ok and meter.result == "ok"
    shown = by_quantity(meter)
    assert set(shown) == {str(r.quantity) for r in PROFILE.registers}
    voltage = shown["voltage_l2"]
    assert voltage.value == 202.0 == reading.values[Quantity.VOLTAGE_L2]
    assert voltage.raw == words(202.0)
    assert (voltage.request, voltage.where, voltage.format, voltage.note) == (
        "input (4)",
        "0x0002",
        "float32 ABCD",
        "",
    )


def test_a_refused_register_is_shown_refused_and_its_neighbours_from_their_own_read() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.refused = {2}
    meter, poller, _ = results(bus)
    shown = by_quantity(meter)
    assert shown["voltage_l2"].refused == "exception 2 (illegal data address)"
    assert shown["voltage_l2"].value is None
    assert shown["voltage_l2"].note == "refused: exception code 2"
    assert shown["voltage_l2"].raw == ""
    # Bisected: voltage_l1 and voltage_l3 came from smaller reads, not the refused block.
    assert shown["voltage_l1"].value == 200.0 and shown["voltage_l3"].value == 204.0
    assert shown["voltage_l3"].raw == words(204.0)
    assert poller.excluded == {(Function.INPUT, 2)}
    assert not meter.ok
    assert meter.result == "exception 2 (illegal data address): 1 refused"


def test_an_exception_that_is_no_refusal_drops_the_block_and_says_so() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.exception_at = {70: 4}
    meter, _, _ = results(bus)
    frequency = by_quantity(meter)["frequency"]
    assert frequency.exception == "exception 4 (server device failure)"
    assert frequency.refused is None
    assert meter.result == "exception 4 (server device failure): 1 dropped"


def test_a_value_that_is_not_a_number_is_a_decode_error_with_its_raw_registers() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.values[100] = math.nan
    meter, _, _ = results(bus)
    power = by_quantity(meter)["power_active"]
    assert power.undecodable and power.failed and power.note.startswith("not a number")
    assert power.raw == words(math.nan)
    assert meter.result == "decode errors: 1"


def test_a_silent_meter_fails_with_the_timeout() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.silent = True
    meter, _, reading = results(bus)
    assert reading is None
    assert meter.result == "timeout: no answer"
    assert all(v.failed and v.value is None for v in meter.values)


def test_the_report_has_a_table_per_meter_an_overview_and_a_summary() -> None:
    good = results(FakeBus(FakeClock(EPOCH)))[0]
    refusing = FakeBus(FakeClock(EPOCH))
    refusing.refused = {6}
    bad = results(refusing)[0]
    report = Commissioning("title", [good, bad])
    assert not report.ok and Commissioning("title", [good]).ok
    text = report.report()
    assert "meter m1: fake, tcp 127.0.0.1:502, unit 7: ok" in text
    assert "refused: exception code 2" in text
    assert text.endswith(
        "meters: 1 ok, 1 failed; values read: 11; values refused: 1; decode errors: 0"
    )


@settings(max_examples=60, deadline=None)
@given(
    refused=st.sets(st.sampled_from(ADDRESSES)),
    failing=st.dictionaries(st.sampled_from(ADDRESSES), st.sampled_from([4, 6, 11]), max_size=2),
    nan=st.sets(st.sampled_from(ADDRESSES)),
    silent=st.booleans(),
)
def test_every_quantity_is_shown_once_as_the_poller_delivered_it(
    refused: set[int], failing: dict[int, int], nan: set[int], silent: bool
) -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.refused, bus.exception_at, bus.silent = refused, failing, silent
    for address in nan:
        bus.values[address] = math.nan
    meter, poller, reading = results(bus)
    delivered = dict(reading.items()) if reading is not None else {}
    quantities = [v.quantity for v in meter.values]
    assert sorted(quantities) == sorted(f.quantity for b in poller.plan for f in b.fields)
    assert len(set(quantities)) == len(quantities)
    excluded = {(f"{f.value} ({f.code})", f"0x{a:04X}") for f, a in poller.excluded}
    for value in meter.values:
        assert value.value == delivered.get(value.quantity)
        assert value.failed == (value.value is None)
        assert (value.refused is not None) == ((value.request, value.where) in excluded)
        if value.value is not None:
            assert value.raw == words(value.value)
        else:
            assert value.note
    assert meter.ok == (poller.last_failure is None and len(delivered) == len(meter.values) > 0)
    assert (meter.result == "ok") == meter.ok


def test_the_transport_is_shown_as_the_meter_is_wired() -> None:
    def shown(modbus: dict[str, object]) -> Link:
        return modbus_link(ModbusSettings.model_validate(modbus))

    assert shown({"host": "192.0.2.1"}) == Link("tcp 192.0.2.1:502", "unit 1")
    assert shown({"host": "192.0.2.1", "port": 4001, "framer": "rtu", "unit_id": 3}) == Link(
        "rtu-over-tcp 192.0.2.1:4001", "unit 3"
    )
    serial = {"device": "/dev/ttyUSB0", "baud": 19200, "parity": "even", "stop_bits": 1}
    assert shown({"serial": serial}).transport == "rtu /dev/ttyUSB0 19200 8E1"
    address = "000012345678"
    gateway = Dlt645Settings(address=address, host="192.0.2.7", port=8899)
    assert dlt645_link(gateway) == Link("dlt645 gateway 192.0.2.7:8899", f"address {address}")
    line = Dlt645Settings.model_validate(
        {"address": address, "serial": {"device": "/dev/ttyS1", "baud": 2400, "parity": "even"}}
    )
    assert dlt645_link(line).transport == "dlt645 /dev/ttyS1 2400 8E1"


VOLTAGE, FREQUENCY, ENERGY = 0x02010100, 0x02800002, 0x00010000
DLT645_SPECS = {spec.di: spec for spec in DLT645_PROFILE.read_values}


def dlt645_results(line: FakeLine) -> tuple[MeterResult, MeterReading | None]:
    """A DL/T 645 meter read once by its poller through a recording bus, as `test` reads it."""
    settings = dlt645_meter()
    assert settings.dlt645 is not None
    recording = RecordingDlt645Bus(line)
    poller = Dlt645Poller(settings, DLT645_PROFILE, recording, lambda _: None)
    reading = asyncio.run(poller.read_once())
    values = dlt645_value_results(
        DLT645_PROFILE.read_values, recording.requests, dict(reading.items()) if reading else {}
    )
    link = dlt645_link(settings.dlt645)
    return MeterResult("m", settings.profile, link, poller.last_failure, values), reading


def test_a_dlt645_meter_shows_identifier_raw_bytes_refusal_and_bad_bcd() -> None:
    line = FakeLine(DLT645_PROFILE)
    line.values[VOLTAGE] = encode_bcd(230.1, 2, 1, False)
    line.values[FREQUENCY] = b"\x0a\x50"  # 0A is no BCD digit pair
    line.errors[ENERGY] = ReadError("exception", "error reply: 02", NO_SUCH_DATA)
    meter, reading = dlt645_results(line)
    assert reading is not None
    shown = by_quantity(meter)
    voltage = shown["voltage_l1"]
    assert voltage.value == 230.1 == reading.values[Quantity.VOLTAGE_L1]
    # Low byte first, as received, 0x33 already taken off: 230.1 V is 01 23.
    assert (voltage.where, voltage.request, voltage.format, voltage.raw, voltage.note) == (
        "02 01 01 00",
        "read data (0x11)",
        "XXX.X",
        "01 23",
        "",
    )
    energy = by_quantity(meter)[DLT645_SPECS[ENERGY].quantity.value]
    refusal = "error 02 (no such data (the meter does not have this data identifier))"
    assert (energy.value, energy.refused, energy.raw) == (None, refusal, "")
    assert energy.note == f"refused: {refusal}"
    frequency = shown["frequency"]
    assert frequency.undecodable and frequency.raw == "0A 50"
    assert frequency.note == "0A 50 is not BCD"
    assert meter.result == f"{refusal}: 1 refused; decode errors: 1"
    text = Commissioning("title", [meter]).report()
    assert (
        "meter m: chint_ddsu666_dlt645, dlt645 /dev/fake 9600 8N1, address 000000000001: " in text
    )
    assert "values refused: 1; decode errors: 1" in text


@settings(max_examples=60, deadline=None)
@given(
    refused=st.sets(st.sampled_from(sorted(DLT645_SPECS))),
    bad=st.sets(st.sampled_from(sorted(DLT645_SPECS))),
    dead_at=st.none() | st.sampled_from(sorted(DLT645_SPECS)),
)
def test_every_dlt645_value_is_shown_once_as_the_poller_delivered_it(
    refused: set[int], bad: set[int], dead_at: int | None
) -> None:
    line = FakeLine(DLT645_PROFILE)
    for identifier in refused:
        line.errors[identifier] = ReadError("exception", "error reply", NO_SUCH_DATA)
    for identifier in bad:
        line.values[identifier] = b"\xff" * DLT645_SPECS[identifier].size
    if dead_at is not None:
        # The meter stops answering at this identifier, refused or not.
        line.errors[dead_at] = ReadError("timeout", "no reply in 1s")
        refused.discard(dead_at)
    meter, reading = dlt645_results(line)
    delivered = dict(reading.items()) if reading is not None else {}
    assert [v.quantity for v in meter.values] == [s.quantity for s in DLT645_PROFILE.read_values]
    asked = set(line.asked)
    for value, spec in zip(meter.values, DLT645_PROFILE.read_values, strict=True):
        assert value.value == delivered.get(spec.quantity)
        assert value.failed == (value.value is None) == (value.note != "")
        assert (value.refused is not None) == (spec.di in refused and spec.di in asked)
        assert value.undecodable == (
            spec.di in bad and spec.di not in refused and spec.di in asked and spec.di != dead_at
        )
        if spec.di not in asked:
            assert value.note == "not read: the read stopped before it"
        if value.value is not None:
            assert value.raw == line.values[spec.di].hex(" ").upper()
    assert meter.ok == (not refused and not bad and dead_at is None)
    assert (meter.failure is not None) == (dead_at is not None)
