"""`energy-agent check`, `profiles` and `schema` as an integrator runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from processes import BIN

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


def test_profiles_lists_every_builtin_profile() -> None:
    result = agent("profiles")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert listed == builtin_names()


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
