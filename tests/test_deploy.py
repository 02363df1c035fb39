"""The deployment files, checked without a Docker engine: compose, Dockerfile, env, systemd.

`docker compose config` and `docker build` need an engine this suite cannot assume, so
these tests read the files the way those tools do: every file a service mounts exists,
every variable compose needs is documented in .env.example (with no real secret there),
the Dockerfile runs as a non-root user with a health check and copies only what
.dockerignore lets in. The broker's compose config runs in a real mosquitto, and the
systemd unit passes `systemd-analyze verify`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from processes import BIN, wait_for
from servers import DeployedMosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def with_defaults(text: str) -> str:
    """A compose string with every ${VAR:-default} replaced by its default."""
    return _VAR.sub(lambda m: m.group(3) if m.group(2) == "-" else f"<{m.group(1)}>", text)


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_every_variable_compose_uses_is_documented_in_env_example() -> None:
    used = {m.group(1) for m in _VAR.finditer(COMPOSE.read_text())}
    documented = env_example()
    assert used - set(documented) == set()
    assert set(documented) - used == set(), "documented but unused"


def test_env_example_holds_no_secret() -> None:
    for name, value in env_example().items():
        if re.search(r"PASSWORD|TOKEN|SECRET", name):
            assert value in ("", "change-me"), name
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"/deploy/.env", "/deploy/data/", "/deploy/pki/out/"} <= set(ignored)


def test_every_service_has_an_image_and_the_demo_is_a_profile() -> None:
    services = compose()["services"]
    assert {"mosquitto", "influxdb", "grafana", "collector"} <= set(services)
    for name, service in services.items():
        assert "image" in service, name
        if name.startswith("demo-"):
            assert service["profiles"] == ["demo"], name
        else:
            assert "profiles" not in service, name
    assert services["collector"]["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert (DEPLOY / ".." / "Dockerfile").is_file()
    init = services["influxdb"]["environment"]
    for key in ("MODE", "USERNAME", "PASSWORD", "ORG", "BUCKET", "ADMIN_TOKEN"):
        assert f"DOCKER_INFLUXDB_INIT_{key}" in init


def test_our_services_are_locked_down() -> None:
    for name, service in compose()["services"].items():
        if service["image"].startswith("greengauge:"):
            assert service["read_only"] is True, name
            assert service["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in service["security_opt"], name


def test_every_mounted_file_exists() -> None:
    missing = []
    grafana = []
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = with_defaults(volume).split(":")[0]
            if not source.startswith("."):
                continue  # a named volume
            path = (DEPLOY / source).resolve()
            if source.startswith(("./pki/out", "./data/")):
                continue  # made by make-test-pki.sh and add-agent.sh, never committed
            if source.startswith("./grafana"):
                grafana.append(path)
            elif not path.exists():
                missing.append(f"{name}: {source}")
    assert missing == []
    assert grafana == [DEPLOY / "grafana"]
    assert (grafana[0] / "provisioning").is_dir()
    assert list((grafana[0] / "dashboards").glob("*.json"))


def test_the_collector_and_demo_agent_configs_are_valid(tmp_path: Path) -> None:
    from agent.config import load_config as load_agent  # noqa: PLC0415
    from collector.config import load_config as load_collector  # noqa: PLC0415

    env = {"MQTT_PASSWORD": "x", "INFLUX_TOKEN": "y"}
    env |= {"GREENGAUGE_API_READ_TOKEN": "r" * 16, "GREENGAUGE_API_WRITE_TOKEN": "w" * 16}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        collector = load_collector(ROOT / "configs/collector.central.example.yaml")
        agent = load_agent(DEPLOY / "demo-agent.yaml").config
    assert collector.mqtt.url == "mqtts://mosquitto:8884"
    assert collector.influxdb is not None
    assert collector.influxdb.url == "http://influxdb:8086"
    assert collector.data_dir == Path("/var/lib/greengauge")
    assert (agent.site, agent.agent_id, agent.mqtt.username) == (
        "demo-plant",
        "gw-demo",
        "demo-plant/gw-demo",
    )
    acl = (DEPLOY / "mosquitto/acl").read_text()
    assert "user demo-plant/gw-demo\ntopic write greengauge/v1/demo-plant/gw-demo/#" in acl


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_runs_as_a_user_with_a_health_check() -> None:
    lines = _dockerfile()
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM")) :]
    users = [line.split()[1] for line in final if line.startswith("USER")]
    assert users == ["greengauge:greengauge"]
    assert any(line.startswith("HEALTHCHECK") for line in final)
    assert "ARG PYTHON_IMAGE=python:3.12-slim-bookworm" in lines
    assert [line for line in lines if line.startswith("FROM")] == [
        "FROM ${PYTHON_IMAGE} AS build",
        "FROM ${PYTHON_IMAGE}",
    ]
    # No network at build time beyond pip's package index.
    assert not [line for line in lines if re.search(r"\b(curl|wget|apt-get|git clone)\b", line)]


def test_dockerfile_copies_only_what_dockerignore_lets_in() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = []
    for line in _dockerfile():
        if line.startswith("COPY") and "--from=" not in line:
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), source


def test_healthcheck_script(tmp_path: Path) -> None:
    script = DEPLOY / "healthcheck.py"
    stats = tmp_path / "stats.json"

    errors: list[str] = []

    def health(**env: str) -> int:
        done = subprocess.run(
            ["python3", str(script)], env=env, capture_output=True, text=True, check=False
        )
        errors.append(done.stderr)
        return done.returncode

    assert health() == 0
    assert health(GREENGAUGE_HEALTH_FILE=str(stats)) == 1
    stats.write_text("{}")
    assert health(GREENGAUGE_HEALTH_FILE=str(stats)) == 0
    assert health(GREENGAUGE_HEALTH_FILE=str(stats), GREENGAUGE_HEALTH_MAX_AGE="-1") == 1
    assert health(GREENGAUGE_HEALTH_URL=f"http://127.0.0.1:{free_port()}/healthz") == 1
    secret = "hc-secret-0f3e"  # noqa: S105 - a test secret
    assert health(GREENGAUGE_HEALTH_URL=f"http://u:{secret}@127.0.0.1:{free_port()}/") == 1
    assert "health: GREENGAUGE_HEALTH_URL: " in errors[-1] and secret not in errors[-1]


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd/energy-agent.service").read_text()
    for directive in (
        "User=greengauge",
        "SupplementaryGroups=dialout",
        "EnvironmentFile=/etc/greengauge/agent.env",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "StateDirectory=greengauge-agent",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "CapabilityBoundingSet=",
    ):
        assert directive in unit.splitlines(), directive
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) is needed to verify the unit"
    local = tmp_path / "energy-agent.service"
    local.write_text(unit.replace("/opt/greengauge/bin/", f"{BIN}/"))
    done = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def _unit_settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit, in order (keys such as DeviceAllow repeat)."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd/energy-agent.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_gives_up_on_a_config_error_and_after_a_few_crashes() -> None:
    unit = _unit_settings()
    # RestartPreventExitStatus= does not cover ExecStartPre (systemd issue #11868): a
    # pre-start check that exits 2 would restart forever.
    assert "ExecStartPre" not in unit
    assert unit["ExecStart"] == [
        "/opt/greengauge/bin/energy-agent run --config /etc/greengauge/agent.yaml"
    ]
    assert unit["RestartPreventExitStatus"] == ["2"]
    (interval,) = unit["StartLimitIntervalSec"]
    assert interval not in ("0", "infinity")
    assert 1 <= int(unit["StartLimitBurst"][0]) <= 10


def test_systemd_unit_allows_the_serial_devices_of_industrial_gateways() -> None:
    allowed = {entry.split()[0] for entry in _unit_settings()["DeviceAllow"]}
    wanted = {"ttymxc", "ttySC", "ttyAMA", "ttyS", "ttyUSB", "ttyACM"}
    assert allowed == {f"char-{name}" for name in wanted}


def test_systemd_unit_documentation_is_what_the_gateway_guide_installs() -> None:
    (documentation,) = _unit_settings()["Documentation"]
    guide = (DEPLOY / "GATEWAY.md").read_text()
    install = "sudo install -D -m 0644 -t /usr/share/doc/greengauge deploy/GATEWAY.md README.md"
    assert install in guide
    for uri in documentation.split():
        scheme, _, path = uri.partition(":")
        assert scheme == "file", uri
        assert Path(path).parent == Path("/usr/share/doc/greengauge"), uri
        assert Path(path).name in install.split()[-2:] or f"deploy/{Path(path).name}" in install


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("site: [unclosed\n", "agent.yaml:"),
        # `check` found this, `run` did not: a pre-start check was the only guard.
        (
            "site: s\nagent_id: a\n"
            "mqtt: {url: 'mqtts://127.0.0.1:1', ca_file: /nonexistent/ca.pem}\n"
            "meters: [{id: m, profile: eastron_sdm630, modbus: {host: 127.0.0.1, port: 1}}]\n",
            "cannot load the TLS files",
        ),
    ],
)
def test_the_units_command_exits_2_with_the_error_on_a_bad_config(
    tmp_path: Path, config: str, error: str
) -> None:
    """The unit's own ExecStart, run for real: exit 2 (no restart), the reason on stderr."""
    (command,) = _unit_settings()["ExecStart"]
    path = tmp_path / "agent.yaml"
    path.write_text(config)
    argv = command.replace("/etc/greengauge/agent.yaml", str(path)).split()
    argv[0] = str(BIN / "energy-agent")
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert error in done.stderr


def _connack(url_port: int, ca_file: Path, user: str, password: str) -> int:
    """Connect over TLS and return the CONNACK's reason code (0: accepted)."""
    connected: list[int] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="deploy-test")
    client.username_pw_set(user, password)
    client.tls_set(ca_certs=str(ca_file))
    client.on_connect = lambda _c, _u, _f, code, _p: connected.append(int(code.value))
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    try:
        wait_for(lambda: connected, 10, "CONNACK over TLS")
    finally:
        client.disconnect()
        client.loop_stop()
    return connected[0]


def test_the_compose_broker_config_runs_in_a_real_mosquitto(tmp_path: Path) -> None:
    """mosquitto.conf and acl as compose mounts them (servers.DeployedMosquitto): the
    collector logs in on its own listener, and its password is not valid on the gateways'."""
    password = "pw-compose-test"  # noqa: S105 - a test broker's
    broker = DeployedMosquitto(tmp_path, password)
    broker.start()
    try:
        assert _connack(broker.collector_port, broker.ca_file, "collector", password) == 0
        # Not authorised (0x87; 5 in MQTT 3.1.1, which paho reports as 0x87).
        assert _connack(broker.port, broker.ca_file, "collector", password) == 0x87
    finally:
        broker.stop()


def test_each_listener_has_its_own_users() -> None:
    """mosquitto.conf and entrypoint.sh agree: the gateways' listener (8883) ties client
    ids to user names and reads passwd, the collector's (8884) reads a file that
    entrypoint.sh fills with the collector alone (the e2e tests run these files)."""
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    assert "per_listener_settings true" in conf.splitlines()
    blocks = {
        block.split("\n", 1)[0]: block.splitlines() for block in conf.split("\nlistener ")[1:]
    }
    assert set(blocks) == {"8883", "8884"}
    assert "use_username_as_clientid true" in blocks["8883"]
    assert "use_username_as_clientid true" not in blocks["8884"]
    for port, passwd in (("8883", "passwd"), ("8884", "passwd-collector")):
        assert f"password_file /mosquitto/data/{passwd}" in blocks[port]
        assert "allow_anonymous false" in blocks[port]
    entrypoint = (DEPLOY / "mosquitto/entrypoint.sh").read_text()
    assert "collector=/mosquitto/data/passwd-collector" in entrypoint
    users = re.findall(r"^add_user (\S+) (\S+)", entrypoint, re.MULTILINE)
    assert users == [
        ('"$collector.new"', "collector"),
        ('"$passwd.new"', "mes"),
        ('"$passwd.new"', "demo-plant/gw-demo"),
    ]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["services"]["mosquitto"]["ports"] == ["${MQTT_TLS_PORT:-8883}:8883"]
