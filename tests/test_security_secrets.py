"""Secrets come from the environment or from files, and `check` never shows them."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from processes import BIN, running, wait_for, write_yaml
from pydantic import BaseModel, SecretStr
from servers import free_port

from agent.config import load_config as load_agent
from collector.config import load_config as load_collector
from greengauge.common.configfile import ConfigError, load_yaml
from greengauge.common.secrets import MASK, redact_url, redacted

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
    # Only `env` (and where the code is, PYTHONPATH): no secret leaks in from this one.
    env = {**env, **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
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


# --- credentials in URLs, secrets in the wrong field -------------------------------------

# Secret-like text: printable ASCII without '$' (which the config loader expands), and a
# prefix no message or URL part contains, so "not in the output" means "not shown".
SECRETS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="$"),
    min_size=8,
    max_size=40,
).map(lambda text: "Zq9" + text)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@influx:8086/base", f"http://{MASK}@influx:8086/base"),
        ("https://tokenonly@influx", f"https://{MASK}@influx"),
        ("http://user:pw@[::1]:8086", f"http://{MASK}@[::1]:8086"),
        ("http://user:p/w?#@influx:8086", f"http://{MASK}@influx:8086"),
        (
            "http://influx:8086/?org=o&token=t0k;api_key=k",
            f"http://influx:8086/?org=o&token={MASK};api_key={MASK}",
        ),
        ("user:pw@influx:8086", f"{MASK}@influx:8086"),
        ("http://influx:8086", "http://influx:8086"),
        ("mqtts://broker:8883", "mqtts://broker:8883"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(secret=SECRETS, host=st.sampled_from(["influx", "10.0.0.5:8086", "[::1]:8086", ""]))
def test_redact_url_never_shows_a_credential(secret: str, host: str) -> None:
    for url in (
        f"http://user:{secret}@{host}/path",
        f"https://{secret}@{host}",
        f"mqtt://{secret}:x@{host}",
        f"{secret}@{host}",
    ):
        assert secret not in redact_url(url), url
    in_query = secret.translate(str.maketrans("", "", "&;#"))
    assert in_query not in redact_url(f"http://{host}/write?org=o&token={in_query}")


def _agent_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": "plant-a",
        "agent_id": "gw-01",
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "meters": [{"id": "m1", "profile": "eastron_sdm630", "modbus": {"host": "127.0.0.1"}}],
    }
    return _changed(data, changes)


def _collector_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"mqtt": {"url": "mqtt://127.0.0.1:1883"}}
    return _changed(data, changes)


def _changed(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`data` with dotted paths (given with '__' for '.') set to values."""
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[last] = value
    return data


# (field, how a secret pasted there makes it invalid); each must be refused without the
# secret in the message, naming the field.
AGENT_FIELDS: list[tuple[str, Callable[[str], str]]] = [
    ("site", lambda s: f"{s} x"),
    ("site", lambda s: s * 8),  # over 64 characters
    ("agent_id", lambda s: f"{s}/gw"),
    ("mqtt__client_id", lambda s: f"{s}#"),
    ("mqtt__url", lambda s: f"mqtt://user:{s}@broker"),
    ("mqtt__url", lambda s: f"mqtt://{s}@broker"),
    ("mqtt__url", lambda s: f"http://{s}"),
    ("mqtt__url", lambda s: f"mqtt://broker:{s}"),
    ("mqtt__url", lambda s: s),
    ("meters__0__id", lambda s: f"{s}+"),
]
COLLECTOR_FIELDS: list[tuple[str, Callable[[str], str]]] = [
    ("mqtt__client_id", lambda s: f"{s} "),
    ("mqtt__url", lambda s: f"mqtts://u:{s}@broker:8883"),
    ("mqtt__url", lambda s: s),
]


def _problems(program: str, data: dict[str, Any]) -> str:
    load = load_agent if program == "agent" else load_collector
    with tempfile.TemporaryDirectory() as folder:
        path = write_yaml(Path(folder) / "config.yaml", data)
        with pytest.raises(ConfigError) as error:
            load(path)
    return "\n".join(error.value.problems)


@settings(max_examples=25, deadline=None)
@given(secret=SECRETS)
def test_a_secret_in_a_wrong_field_is_never_echoed(secret: str) -> None:
    for program, fields, make in (
        ("agent", AGENT_FIELDS, _agent_data),
        ("collector", COLLECTOR_FIELDS, _collector_data),
    ):
        for field, bad in fields:
            problems = _problems(program, make(**{field: bad(secret)}))
            assert f": {field.replace('__', '.')}: " in problems, problems
            assert secret not in problems, (field, problems)


def test_url_credentials_and_wrong_fields_stay_out_of_check_output(tmp_path: Path) -> None:
    """The CLIs: `check` shows an InfluxDB URL with its credentials masked, and a secret
    pasted into an id or URL field is refused without being repeated."""
    secret = "Zq9-pasted-" + PASSWORD
    collector = write_yaml(
        tmp_path / "collector.yaml",
        _collector_data(
            influxdb={"url": f"http://admin:{secret}@127.0.0.1:8086", "org": "o", "bucket": "b"},
            influxdb__token=TOKEN,
        ),
    )
    done = _run("energy-collector", "check", "--config", str(collector), env={})
    assert done.returncode == 0, done.stderr
    assert f"InfluxDB http://{MASK}@127.0.0.1:8086 org o bucket b (token set)" in done.stdout
    assert secret not in done.stdout + done.stderr and TOKEN not in done.stdout
    for field, bad in AGENT_FIELDS:
        agent = write_yaml(tmp_path / "agent.yaml", _agent_data(**{field: bad(secret)}))
        done = _run("energy-agent", "check", "--config", str(agent), env={})
        assert done.returncode == 2, done.stdout
        assert f": {field.replace('__', '.')}: " in done.stderr
        assert secret not in done.stdout + done.stderr, field


def test_the_collector_log_never_shows_url_credentials(tmp_path: Path) -> None:
    """`run` with an InfluxDB URL holding user:password: the start line, the broker's
    connection errors and the store's all show it masked."""
    secret = "Zq9-influx-" + PASSWORD
    config = write_yaml(
        tmp_path / "collector.yaml",
        _collector_data(
            mqtt__url=f"mqtt://127.0.0.1:{free_port()}",
            influxdb={
                "url": f"http://admin:{secret}@127.0.0.1:{free_port()}",
                "org": "o",
                "bucket": "b",
                "token": TOKEN,
            },
            data_dir=str(tmp_path / "data"),
        ),
    )
    with running("energy-collector", ["run", "--config", str(config)], tmp_path / "c.log") as c:
        started = wait_for(lambda: "collector starting" in c.output(), 20, "the start line")
        wait_for(lambda: "broker" in c.output().split("collector starting", 1)[1], 20, "a retry")
    assert started
    output = c.output()
    assert f"http://{MASK}@127.0.0.1:" in output
    assert secret not in output and TOKEN not in output
