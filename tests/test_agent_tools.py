"""`energy-agent check`, `profiles` and `schema` as an integrator runs them."""

from __future__ import annotations

import copy
import functools
import json
import operator
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from processes import BIN

from agent.check import config_schema
from agent.config import load_config
from agent.profiles import builtin_names, load_profile

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "energy-agent"), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("config", ["demo/agent.yaml", "agent.example.yaml"])
def test_check_accepts_the_shipped_configs(config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret-value")
    result = agent("check", "--config", str(CONFIGS / config))
    assert result.returncode == 0, result.stderr
    assert ": OK" in result.stdout
    assert "s3cret-value" not in result.stdout + result.stderr


def test_check_says_when_the_ids_cannot_make_a_broker_user(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    body = (
        "mqtt: {url: mqtt://broker}\n"
        "meters: [{id: m1, profile: eastron_sdm630, modbus: {host: 10.0.0.1}}]\n"
    )
    config.write_text("site: plant:a\nagent_id: gw-01\n" + body)
    result = agent("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "note: site or agent_id holds ':', which cannot be in a mosquitto user" in result.stdout
    config.write_text("site: plant.a\nagent_id: gw.01\n" + body)
    assert "note:" not in agent("check", "--config", str(config)).stdout


def test_check_names_file_line_and_field_of_every_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: a b\n"
        'mqtt: {url: "http://broker"}\n'
        "meters:\n"
        "  - id: m1\n"
        "    profile: eastron_sdm630\n"
        "    modbus: {host: 10.0.0.1}\n"
        "    intervall: 3\n"
    )
    result = agent("check", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"energy-agent: {config}:1: site: invalid id (' ' at character 2)")
    assert lines[1] == f"{config}:2: mqtt.url: the scheme must be mqtt:// or mqtts://"
    assert (
        lines[2] == f"{config}:7: meters.0.intervall: unknown field (misspelt, or not valid here)"
    )
    assert "Traceback" not in result.stderr


def test_check_reports_an_unknown_profile_at_its_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: plant\nmqtt: {url: mqtt://b}\nmeters:\n"
        "  - id: m1\n    modbus: {host: h}\n    profile: eastron_sdm999\n"
    )
    result = agent("check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:6: meters.0.profile: unknown profile 'eastron_sdm999'" in result.stderr
    assert "eastron_sdm630" in result.stderr  # says what is allowed


def test_check_names_every_problem_across_meters_in_one_run(tmp_path: Path) -> None:
    """A schema error, a repeated id, one unit id twice on a bus, a line set up two ways
    and an unknown profile: one run names them all, each at its line."""
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: a b\n"
        "mqtt: {url: mqtt://b}\n"
        "meters:\n"
        "  - {id: m1, profile: eastron_sdm630, modbus: {host: gw, unit_id: 1}}\n"
        "  - {id: m1, profile: eastron_sdm630, modbus: {host: gw, unit_id: 2}}\n"
        "  - {id: m3, profile: eastron_sdm630, modbus: {host: gw, unit_id: 1}}\n"
        "  - {id: s1, profile: eastron_sdm630, modbus: {serial: {device: /dev/ttyS1}}}\n"
        "  - {id: s2, profile: nope, modbus: {unit_id: 2,\n"
        "                                     serial: {device: /dev/ttyS1, baud: 19200}}}\n"
        "  - {id: bad, profile: eastron_sdm630, modbus: {host: gw, unit_id: 999}}\n"
    )
    result = agent("check", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.removeprefix("energy-agent: ").strip().splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{config}:1", "site"],
        [f"{config}:10", "meters.5.modbus.unit_id"],
        [f"{config}:8", "meters.4.profile"],
        [f"{config}:5", "meters.1.id"],
        [f"{config}:6", "meters.2.modbus.unit_id"],
        [f"{config}:9", "meters.4.modbus"],
    ]
    assert "'m1' is already meters.0's" in lines[3]
    assert "'m3' and meter 'm1' (meters.0) are both unit 1 on gw:502" in lines[4]
    assert "baud 9600 vs 19200" in lines[5]


def test_profiles_lists_every_builtin_profile() -> None:
    result = agent("profiles")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert listed == builtin_names()


def test_quantities_count_what_is_read_not_the_unconfirmed(tmp_path: Path) -> None:
    """Unconfirmed registers are not read (unless a profile opts in): not counted as read."""
    profile = load_profile("janitza_umg96rm")
    read, unconfirmed = len(profile.read_registers), sum(r.unconfirmed for r in profile.registers)
    assert unconfirmed > 0
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: s\nmqtt: {url: mqtt://b}\n"
        "meters: [{id: m1, profile: janitza_umg96rm, modbus: {host: h}}]\n"
    )
    result = agent("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    header, _, row = result.stdout.splitlines()[-3:]
    assert header.split()[-2:] == ["quantities", "requests"]
    assert row.split()[-2] == str(read)
    rows = {line.split()[0]: line.split() for line in agent("profiles").stdout.splitlines()}
    header_cells = rows["profile"]
    umg = rows["janitza_umg96rm"]
    quantities = header_cells.index("quantities")
    assert umg[quantities : quantities + 2] == [str(read), str(unconfirmed)]


def _leaves(data: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(data, list):
        return [leaf for i, value in enumerate(data) for leaf in _leaves(value, (*path, i))]
    return [path]


_EXAMPLE = yaml.safe_load((CONFIGS / "agent.serial.example.yaml").read_text())
_SCHEMA = json.loads(config_schema())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_leaves(_EXAMPLE)), min_size=1, max_size=4, unique=True))
def test_schema_accepts_a_variable_wherever_the_agent_does(
    paths: list[tuple[str | int, ...]],
) -> None:
    """`port: ${PORT}` is valid for the agent, so for the schema an editor checks with."""
    data = copy.deepcopy(_EXAMPLE)
    env = {"MQTT_PASSWORD": "x"}
    for n, path in enumerate(paths):
        *parents, last = path
        holder = functools.reduce(operator.getitem, parents, data)
        value = holder[last]
        env[f"V{n}"] = json.dumps(value) if not isinstance(value, str) else value
        holder[last] = f"${{V{n}}}"
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        config = Path(folder) / "agent.yaml"
        config.write_text(yaml.safe_dump(data))
        load_config(config)  # the agent takes it
    jsonschema.validate(data, _SCHEMA)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("meters", 0, "modbus", "serial", "baud"), 12),
        (("meters", 0, "modbus", "serial", "parity"), "mark"),
        (("meters", 0, "modbus", "unit_id"), "one"),
        (("meters", 0, "modbus", "serial"), "${SERIAL}"),
        (("meters", 0, "modbus", "unit_id"), 256),
    ],
)
def test_schema_still_rejects_what_the_agent_rejects(
    path: tuple[str | int, ...], value: object
) -> None:
    data = copy.deepcopy(_EXAMPLE)
    *parents, last = path
    functools.reduce(operator.getitem, parents, data)[last] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _SCHEMA)


def test_schema_is_the_config_json_schema() -> None:
    result = agent("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"site", "mqtt", "meters"} <= set(schema["required"])
    assert "agent_id" in schema["properties"]


def test_check_notes_a_byte_order_that_says_nothing(tmp_path: Path) -> None:
    # CDAB swaps registers: on a 16-bit value it changes nothing, and the integrator who
    # wrote it probably meant BADC (a device that swaps the bytes of every register).
    (tmp_path / "swapped.yaml").write_text(
        "model: swapped\nmanufacturer: tests\ndescription: tests\nsources: {t: t}\n"
        "function: holding\nbyte_order: CDAB\nregisters:\n"
        "  - {quantity: power_active, address: 0, type: int16, unit: W, source: t}\n"
        "  - {quantity: voltage_l1, address: 1, type: uint16, unit: V, source: t,"
        " byte_order: CDAB}\n"
        "  - {quantity: voltage_l2, address: 2, type: uint16, unit: V, source: t,"
        " byte_order: BADC}\n"
    )
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: plant\nagent_id: gw-01\nmqtt: {url: mqtt://broker}\n"
        "meters: [{id: m1, profile: swapped.yaml, modbus: {host: 10.0.0.1}}]\n"
    )
    result = agent("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: profile swapped: registers.1 (voltage_l1): byte_order CDAB swaps registers, "
        "and its uint16 has one: it is read as ABCD (BADC or DCBA swap its two bytes)",
        "note: profile swapped: byte_order CDAB swaps registers, and no value it applies to "
        "has more than one: they are read as ABCD (BADC or DCBA swap their two bytes)",
    ]
    # The built-in profiles say nothing meaningless.
    assert {name: load_profile(name).byte_order_notes() for name in builtin_names()} == {
        name: [] for name in builtin_names()
    }
