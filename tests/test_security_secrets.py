"""Secrets come from the environment or from files, and `check` never shows them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from processes import BIN
from pydantic import BaseModel, SecretStr

from agent.configfile import ConfigError, load_yaml
from agent.secrets import MASK, redacted

PASSWORD = "pw-9f3b-never-shown"  # noqa: S105 - a test secret
TOKEN = "tok-71c2-never-shown"  # noqa: S105 - a test secret


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_file_secret_is_read_relative_to_the_config_without_its_newline(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    write(tmp_path / "secrets" / "mqtt", PASSWORD + "\n")
    data, _ = load_yaml(write(tmp_path / "c.yaml", "password: ${file:secrets/mqtt}\n"), {})
    assert data == {"password": PASSWORD}


def test_an_absolute_file_secret_and_env_in_one_value(tmp_path: Path) -> None:
    secret = write(tmp_path / "token", "abc\r\n")
    config = write(tmp_path / "c.yaml", f"token: ${{file:{secret}}}-${{SUFFIX}}\n")
    data, _ = load_yaml(config, {"SUFFIX": "x"})
    assert data == {"token": "abc-x"}


def test_a_secret_is_not_expanded_again(tmp_path: Path) -> None:
    write(tmp_path / "pw", "${HOME}")
    data, _ = load_yaml(write(tmp_path / "c.yaml", "password: ${file:pw}\n"), {"HOME": "/root"})
    assert data == {"password": "${HOME}"}


def test_a_missing_secret_file_names_the_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "mqtt:\n  password: ${file:nope}\n")
    with pytest.raises(ConfigError) as error:
        load_yaml(config, {})
    assert error.value.problems == [
        f"{config}:2: mqtt.password: cannot read secret file {tmp_path / 'nope'}: "
        "No such file or directory"
    ]


def test_an_unreadable_secret_never_shows_its_content(tmp_path: Path) -> None:
    write(tmp_path / "big", PASSWORD * 10_000)
    with pytest.raises(ConfigError) as error:
        load_yaml(write(tmp_path / "c.yaml", "password: ${file:big}\n"), {})
    assert "larger than 64 KiB" in str(error.value)
    assert PASSWORD not in str(error.value)


class _Api(BaseModel):
    token: str
    tokens: list[SecretStr]
    token_file: str
    url: str


def test_redacted_masks_secret_types_and_secret_names() -> None:
    api = _Api(
        token="t",  # noqa: S106 - a test secret
        tokens=[SecretStr("a")],
        token_file="/run/secrets/api",  # noqa: S106 - a path
        url="http://x",
    )
    assert redacted(api) == {
        "token": MASK,
        "tokens": [MASK],
        "token_file": "/run/secrets/api",
        "url": "http://x",
    }


def _run(program: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / program), *args], capture_output=True, text=True, env=env, check=False
    )


def test_check_commands_redact_secrets_from_env_and_files(tmp_path: Path) -> None:
    write(tmp_path / "mqtt-password", PASSWORD + "\n")
    agent = write(
        tmp_path / "agent.yaml",
        "site: plant-a\nagent_id: gw-01\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1883', username: gw-01, password: '${file:mqtt-password}'}\n"
        "meters: [{id: m1, profile: eastron_sdm630, modbus: {host: 127.0.0.1}}]\n",
    )
    collector = write(
        tmp_path / "collector.yaml",
        "mqtt: {url: 'mqtt://127.0.0.1:1883', username: collector, password: '${MQTT_PASSWORD}'}\n"
        "influxdb: {url: 'http://127.0.0.1:8086', org: o, bucket: b, token: '${file:token}'}\n",
    )
    write(tmp_path / "token", TOKEN)
    env = {"PATH": "/usr/bin:/bin", "MQTT_PASSWORD": PASSWORD}
    outputs = []
    for program, config in (("energy-agent", agent), ("energy-collector", collector)):
        done = _run(program, "check", "--config", str(config), env=env)
        assert done.returncode == 0, done.stderr
        assert "(password set)" in done.stdout
        outputs.append(done.stdout + done.stderr)
    assert "(token set)" in outputs[1]
    for output in outputs:
        assert PASSWORD not in output
        assert TOKEN not in output


def test_check_refuses_tls_files_that_do_not_load(tmp_path: Path) -> None:
    config = write(
        tmp_path / "collector.yaml",
        "mqtt: {url: 'mqtts://127.0.0.1:8883', ca_file: /nonexistent/ca.pem, "
        "password: '${MQTT_PASSWORD}'}\n",
    )
    done = _run(
        "energy-collector", "check", "--config", str(config), env={"MQTT_PASSWORD": PASSWORD}
    )
    assert done.returncode == 2
    assert "cannot load the TLS files (ca_file /nonexistent/ca.pem)" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_check_refuses_ca_file_on_a_plain_mqtt_url(tmp_path: Path) -> None:
    config = write(
        tmp_path / "collector.yaml", "mqtt: {url: 'mqtt://127.0.0.1:1883', ca_file: ca.pem}\n"
    )
    done = _run("energy-collector", "check", "--config", str(config), env={})
    assert done.returncode == 2
    assert "mqtt.ca_file: only used with mqtts:// URLs" in done.stderr
