"""`energy-agent test`'s read and table, against the poller tests' fake device: every value
shown is the one the agent's own read delivered, with the registers it came from, and
every value that did not come is shown with why."""

from __future__ import annotations

import asyncio
import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_poller import PROFILE, FakeBus, FakeClock

from agent.commission import (
    Commissioning,
    MeterResult,
    RecordingBus,
    ValueResult,
    transport,
    value_results,
)
from agent.config import MeterSettings, ModbusSettings
from agent.poller import MeterPoller
from agent.profiles.model import Function
from agent.wire import MeterReading, Quantity

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
        poller.plan, recording.requests, reading.values if reading else {}, poller.excluded
    )
    meter = MeterResult("m1", "fake", METER.modbus, poller.last_failure, values)
    return meter, poller, reading


def by_quantity(meter: MeterResult) -> dict[str, ValueResult]:
    return {v.quantity.value: v for v in meter.values}


def test_a_meter_that_answers_everything_is_ok_with_its_raw_registers() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    meter, _, reading = results(bus)
    assert reading is not None
    assert meter.ok and meter.result == "ok"
    shown = by_quantity(meter)
    assert set(shown) == {r.quantity.value for r in PROFILE.registers}
    voltage = shown["voltage_l2"]
    assert voltage.value == 202.0 == reading.values[Quantity.VOLTAGE_L2]
    assert voltage.raw == tuple(struct.unpack(">2H", struct.pack(">f", 202.0)))
    assert (voltage.function, voltage.address, voltage.note) == (Function.INPUT, 2, "")


def test_a_refused_register_is_shown_refused_and_its_neighbours_from_their_own_read() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.refused = {2}
    meter, poller, _ = results(bus)
    shown = by_quantity(meter)
    assert shown["voltage_l2"].refused == 2 and shown["voltage_l2"].value is None
    assert shown["voltage_l2"].note == "refused: exception code 2"
    assert shown["voltage_l2"].raw == ()
    # Bisected: voltage_l1 and voltage_l3 came from smaller reads, not the refused block.
    assert shown["voltage_l1"].value == 200.0 and shown["voltage_l3"].value == 204.0
    assert shown["voltage_l3"].raw == tuple(struct.unpack(">2H", struct.pack(">f", 204.0)))
    assert poller.excluded == {(Function.INPUT, 2)}
    assert not meter.ok
    assert meter.result == "exception 2 (illegal data address): 1 refused"


def test_an_exception_that_is_no_refusal_drops_the_block_and_says_so() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.exception_at = {70: 4}
    meter, _, _ = results(bus)
    frequency = by_quantity(meter)["frequency"]
    assert frequency.exception == 4 and frequency.refused is None
    assert meter.result == "exception 4 (server device failure): 1 dropped"


def test_a_value_that_is_not_a_number_is_a_decode_error_with_its_raw_registers() -> None:
    bus = FakeBus(FakeClock(EPOCH))
    bus.values[100] = math.nan
    meter, _, _ = results(bus)
    power = by_quantity(meter)["power_active"]
    assert power.undecodable and power.failed and power.note.startswith("not a number")
    assert power.raw == tuple(struct.unpack(">2H", struct.pack(">f", math.nan)))
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
        "meters: 1 ok, 1 failed; values read: 11; registers refused: 1; decode errors: 0"
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
    delivered = reading.values if reading is not None else {}
    quantities = [v.quantity for v in meter.values]
    assert sorted(quantities) == sorted(f.quantity for b in poller.plan for f in b.fields)
    assert len(set(quantities)) == len(quantities)
    for value in meter.values:
        assert value.value == delivered.get(value.quantity)
        assert value.failed == (value.value is None)
        assert (value.refused is not None) == ((value.function, value.address) in poller.excluded)
        if value.value is not None:
            assert value.raw == tuple(struct.unpack(">2H", struct.pack(">f", value.value)))
        else:
            assert value.note
    assert meter.ok == (poller.last_failure is None and len(delivered) == len(meter.values) > 0)
    assert (meter.result == "ok") == meter.ok


def test_the_transport_is_shown_as_the_meter_is_wired() -> None:
    def shown(modbus: dict[str, object]) -> str:
        return transport(ModbusSettings.model_validate(modbus))

    assert shown({"host": "192.0.2.1"}) == "tcp 192.0.2.1:502"
    assert (
        shown({"host": "192.0.2.1", "port": 4001, "framer": "rtu"}) == "rtu-over-tcp 192.0.2.1:4001"
    )
    serial = {"device": "/dev/ttyUSB0", "baud": 19200, "parity": "even", "stop_bits": 1}
    assert shown({"serial": serial}) == "rtu /dev/ttyUSB0 19200 8E1"
