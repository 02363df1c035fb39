"""`energy-agent check`, `profiles` and `schema` as an integrator runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from processes import BIN

from agent.profiles import builtin_names

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
