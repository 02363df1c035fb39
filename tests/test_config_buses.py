"""The meters' Modbus settings: TCP as before, serial lines, RTU over TCP, shared buses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import Framer, MeterSettings, Parity, load_config, meter_problems
from greengauge.common.configfile import ConfigError

HEAD = """\
site: s1
agent_id: gw
mqtt: {url: "mqtt://127.0.0.1:1883"}
meters:
"""


def load(tmp_path: Path, meters: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(HEAD + meters)
    return path


def test_the_tcp_form_is_unchanged(tmp_path: Path) -> None:
    setup = load_config(
        load(
            tmp_path,
            "  - {id: a, profile: eastron_sdm630,"
            " modbus: {host: 10.0.0.5, port: 502, unit_id: 1}}\n",
        )
    )
    modbus = setup.config.meters[0].modbus
    assert modbus is not None
    assert (modbus.host, modbus.port, modbus.unit_id, modbus.framer) == (
        "10.0.0.5",
        502,
        1,
        Framer.TCP,
    )
    assert modbus.timeout == 1.0 and modbus.retries == 0
    assert modbus.bus_key == ("tcp", "10.0.0.5", "502")


def test_serial_meters_share_their_line(tmp_path: Path) -> None:
    meters = """\
  - id: a
    profile: eastron_sdm630
    modbus:
      serial: {device: /dev/ttyUSB0, baud: 19200, parity: even, stop_bits: 1}
      unit_id: 2
      timeout: 0.3
      retries: 2
  - id: b
    profile: chint_dtsu666
    modbus:
      serial: {device: /dev/ttyUSB0, baud: 19200, parity: even}
      unit_id: 3
  - {id: c, profile: chint_dtsu666, modbus: {host: gw.local, port: 4001, framer: rtu, unit_id: 3}}
"""
    config = load_config(load(tmp_path, meters)).config
    a, b, c = (m.modbus for m in config.meters)
    assert a is not None and b is not None and c is not None
    assert a.bus_key == b.bus_key == ("serial", "/dev/ttyUSB0")
    assert a.serial is not None and a.serial.parity is Parity.EVEN and a.retries == 2
    # 3.5 characters of 11 bits at 19200 baud
    assert a.serial.silence == pytest.approx(3.5 * 11 / 19200)
    assert c.framer is Framer.RTU and c.bus_key == ("tcp", "gw.local", "4001")


def test_conflicting_settings_of_one_line_name_both_meters(tmp_path: Path) -> None:
    meters = """\
  - id: incomer
    profile: eastron_sdm630
    modbus: {serial: {device: /dev/ttyUSB0, baud: 9600}, unit_id: 1}
  - id: press
    profile: eastron_sdm630
    modbus:
      unit_id: 2
      serial: {device: /dev/ttyUSB0, baud: 19200, parity: odd}
"""
    with pytest.raises(ConfigError) as caught:
        load_config(load(tmp_path, meters))
    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'agent.yaml'}:12: meters.1.modbus: ")
    assert "'press'" in problem and "'incomer'" in problem and "/dev/ttyUSB0" in problem
    assert "baud 9600 vs 19200" in problem and "parity none vs odd" in problem


def test_conflicting_framers_of_one_host(tmp_path: Path) -> None:
    meters = """\
  - {id: a, profile: eastron_sdm630, modbus: {host: gw, port: 4001, unit_id: 1}}
  - {id: b, profile: eastron_sdm630, modbus: {host: gw, port: 4001, framer: rtu, unit_id: 2}}
"""
    with pytest.raises(ConfigError, match=r"'b' and meter 'a'.*framer tcp vs rtu"):
        load_config(load(tmp_path, meters))


@pytest.mark.parametrize(
    ("modbus", "message"),
    [
        ("{unit_id: 1}", "either host"),
        ("{host: h, serial: {device: /dev/ttyS0}}", "either host"),
        ("{serial: {device: /dev/ttyS0}, port: 502}", "port: only for host"),
        ("{serial: {device: /dev/ttyS0}, unit_id: 0}", "units 1..247"),
        ("{serial: {device: /dev/ttyS0, parity: mark}}", "meters.0.modbus.serial.parity"),
        ("{serial: {device: /dev/ttyS0, stop_bits: 3}}", "meters.0.modbus.serial.stop_bits"),
        ("{serial: {device: /dev/ttyS0, bauds: 9600}}", "unknown field"),
        ("{host: h, framer: ascii}", "meters.0.modbus.framer"),
    ],
)
def test_bad_modbus_settings(tmp_path: Path, modbus: str, message: str) -> None:
    path = load(tmp_path, f"  - {{id: a, profile: eastron_sdm630, modbus: {modbus}}}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert all(p.startswith(f"{path}:5: ") for p in caught.value.problems)


def test_the_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", "x")
    root = Path(__file__).resolve().parent.parent / "configs"
    for name in ("agent.example.yaml", "agent.serial.example.yaml"):
        setup = load_config(root / name)
        assert setup.config.meters


_METERS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["/dev/ttyS1", "/dev/ttyS2"]),
        st.sampled_from([9600, 19200]),
        st.integers(1, 3),
    ),
    max_size=8,
)


@given(_METERS)
def test_every_problem_across_meters_is_named_at_once(
    drawn: list[tuple[str, str, int, int]],
) -> None:
    """Each repeat of an id, of a unit id on a line and each line set up two ways is
    reported, whatever else is wrong with the other meters."""
    meters = [
        (
            index,
            MeterSettings.model_validate(
                {
                    "id": meter_id,
                    "profile": "eastron_sdm630",
                    "modbus": {"serial": {"device": device, "baud": baud}, "unit_id": unit},
                }
            ),
        )
        for index, (meter_id, device, baud, unit) in enumerate(drawn)
    ]
    found = {(index, field) for index, field, _ in meter_problems(meters)}
    for index, (meter_id, device, baud, unit) in enumerate(drawn):
        before = drawn[:index]
        assert ((index, ("id",)) in found) == any(m[0] == meter_id for m in before)
        same_line = [m for m in before if m[1] == device]
        assert ((index, ("modbus", "unit_id")) in found) == any(m[3] == unit for m in same_line)
        assert ((index, ("modbus",)) in found) == bool(same_line and same_line[0][2] != baud)
