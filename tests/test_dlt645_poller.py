"""The DL/T 645 poller against a fake line, and the dlt645: section of the config."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import Dlt645Settings, MeterSettings, load_config
from agent.dlt645.codec import NO_SUCH_DATA, encode_bcd
from agent.dlt645.poller import NO_DATA, Dlt645Poller
from agent.dlt645.profile import Dlt645Profile, load_dlt645_profile
from agent.dlt645.transport import ReadIdentifier
from agent.modbus.errors import ReadError
from agent.poller import BAD_VALUE, OFFLINE_AFTER
from greengauge.common.configfile import ConfigError
from greengauge.contract import MeterReading, MeterState, Quantity

PROFILE = load_dlt645_profile("chint_ddsu666_dlt645")
VOLTAGE, ENERGY, FREQUENCY = 0x02010100, 0x00010000, 0x02800002


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeLine:
    """Answers each identifier from `values` (bytes), or raises what `errors` holds."""

    name = "/dev/fake"

    def __init__(self, profile: Dlt645Profile) -> None:
        self.values = {
            spec.di: encode_bcd(1.5, spec.size, spec.decimals, spec.signed)
            for spec in profile.values
        }
        self.errors: dict[int, ReadError] = {}
        self.silent = False
        self.asked: list[int] = []

    @contextlib.asynccontextmanager
    async def session(self, meter: Dlt645Settings) -> AsyncIterator[ReadIdentifier]:
        async def read(identifier: int) -> bytes:
            self.asked.append(identifier)
            if self.silent:
                raise ReadError("timeout", f"meter {meter.address}: no reply in 1s")
            if identifier in self.errors:
                raise self.errors[identifier]
            return self.values[identifier]

        yield read


def meter(interval: float = 1.0) -> MeterSettings:
    return MeterSettings.model_validate(
        {
            "id": "m",
            "profile": "chint_ddsu666_dlt645",
            "interval": interval,
            "dlt645": {"serial": {"device": "/dev/fake"}, "address": "000000000001"},
        }
    )


def poller(line: FakeLine, clock: FakeClock) -> Dlt645Poller:
    return Dlt645Poller(meter(), PROFILE, line, lambda _r: None, clock=clock)


async def test_reads_every_value_scaled() -> None:
    line = FakeLine(PROFILE)
    reading = await poller(line, FakeClock(1000.0)).read_once()
    assert isinstance(reading, MeterReading)
    assert reading.values[Quantity.VOLTAGE_L1] == 1.5
    assert reading.values[Quantity.POWER_ACTIVE] == 1500.0  # kW in the profile, W on the wire
    assert len(reading.values) == len(PROFILE.values)


async def test_refused_identifier_is_left_out_on_a_backoff_and_comes_back() -> None:
    line = FakeLine(PROFILE)
    line.errors[FREQUENCY] = ReadError("exception", "error reply: 02", NO_SUCH_DATA)
    clock = FakeClock(1000.0)
    p = poller(line, clock)
    reading = await p.read_once()
    assert reading is not None and Quantity.FREQUENCY not in reading.values
    assert Quantity.VOLTAGE_L1 in reading.values
    assert p.errors[NO_DATA] == 1 and p.health().excluded == 1
    # Asked again on a doubling backoff, as refused Modbus registers are: at +1 s, +3 s, ...
    asked_at = []
    for _ in range(6):
        line.asked.clear()
        clock.now += 1.0
        await p.read_once()
        if FREQUENCY in line.asked:
            asked_at.append(clock.now - 1000.0)
    assert asked_at == [1.0, 3.0]
    assert p.errors[NO_DATA] == 3
    del line.errors[FREQUENCY]
    clock.now += 1.0
    reading = await p.read_once()
    assert reading is not None and reading.values[Quantity.FREQUENCY] == 1.5
    assert p.health().excluded == 0


async def test_bad_bcd_drops_one_value() -> None:
    line = FakeLine(PROFILE)
    line.values[VOLTAGE] = b"\x1a\x00"
    p = poller(line, FakeClock(1000.0))
    reading = await p.read_once()
    assert reading is not None and Quantity.VOLTAGE_L1 not in reading.values
    assert p.errors[BAD_VALUE] == 1
    line.values[VOLTAGE] = b"\x00\x12\x00"  # three bytes where XXX.X has two
    reading = await p.read_once()
    assert reading is not None and Quantity.VOLTAGE_L1 not in reading.values
    assert p.errors[BAD_VALUE] == 2


async def test_silent_meter_costs_one_request_per_read_and_goes_offline() -> None:
    line = FakeLine(PROFILE)
    line.silent = True
    states: list[MeterState] = []
    p = Dlt645Poller(
        meter(),
        PROFILE,
        line,
        lambda _r: None,
        clock=FakeClock(1000.0),
        on_state=lambda _m, s: states.append(s),
    )
    for _ in range(OFFLINE_AFTER):
        assert await p.read_once() is None
    assert len(line.asked) == OFFLINE_AFTER
    assert states == [MeterState.OFFLINE] and p.errors["timeout"] == OFFLINE_AFTER
    line.silent = False
    assert await p.read_once() is not None
    assert states == [MeterState.OFFLINE, MeterState.ONLINE]


# --- config ---------------------------------------------------------------------------------


def write(tmp_path: Path, meters: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"site: s\nagent_id: a\nmqtt: {{url: mqtt://localhost}}\nmeters:\n{meters}")
    return path


def test_a_dlt645_meter_loads_with_its_profile(tmp_path: Path) -> None:
    setup = load_config(
        write(
            tmp_path,
            "  - {id: m, profile: chint_dtsu666_dlt645,\n"
            "     dlt645: {address: '000012345678', serial: {device: /dev/ttyUSB0, baud: 2400,"
            " parity: even}}}\n",
        )
    )
    assert setup.dlt645_profiles["m"].model == "chint_dtsu666_dlt645"
    settings = setup.config.meters[0].dlt645
    assert settings is not None and settings.bus_key == ("serial", "/dev/ttyUSB0")


def test_a_line_speaks_one_protocol(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - {id: a, profile: chint_dtsu666,"
        " modbus: {serial: {device: /dev/ttyUSB0}, unit_id: 1}}\n"
        "  - {id: b, profile: chint_dtsu666_dlt645,\n"
        "     dlt645: {address: '000000000001', serial: {device: /dev/ttyUSB0}}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert ":7: meters.1.dlt645: meter 'b' and meter 'a' (meters.0) share /dev/ttyUSB0" in problem
    assert "protocol Modbus vs DL/T 645; a line speaks one protocol" in problem


def test_dlt645_meters_on_one_line_agree_on_its_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - {id: a, profile: chint_dtsu666_dlt645,"
        " dlt645: {address: '000000000001', serial: {device: /dev/ttyS1, baud: 2400}}}\n"
        "  - {id: b, profile: chint_dtsu666_dlt645,"
        " dlt645: {address: '000000000002', serial: {device: /dev/ttyS1, baud: 9600}}}\n",
    )
    with pytest.raises(ConfigError, match="baud 2400 vs 9600; meters on one bus must agree"):
        load_config(path)


def test_an_unknown_dlt645_profile_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - {id: a, profile: chint_dtsu666,"
        " dlt645: {address: '000000000001', host: gw, port: 8899}}\n",
    )
    with pytest.raises(ConfigError, match="unknown DL/T 645 profile 'chint_dtsu666'"):
        load_config(path)


@pytest.mark.parametrize(
    ("dlt645", "problem"),
    [
        ({"address": "12345", "host": "gw", "port": 1}, "should match pattern"),
        ({"address": "000000000001"}, "give either host and port"),
        ({"address": "000000000001", "host": "gw"}, "a TCP gateway needs its port"),
        (
            {"address": "000000000001", "serial": {"device": "/dev/x"}, "port": 1},
            "only for host, not with serial",
        ),
    ],
)
def test_bad_dlt645_settings_are_named(dlt645: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Dlt645Settings.model_validate(dlt645)


def test_a_meter_speaks_modbus_or_dlt645() -> None:
    with pytest.raises(ValidationError, match="give either modbus or dlt645"):
        MeterSettings.model_validate({"id": "m", "profile": "p"})
