"""TLS end to end: agent and collector verify the broker against a CA, with a real mosquitto.

The PKI comes from deploy/pki/make-test-pki.sh (what the compose demo uses too). The
broker's TLS listener wants a client certificate and a password; readings travel from
the simulator to the store over it. Given another CA, both programs refuse the broker,
and their logs say that certificate verification failed and name the broker.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from processes import Program, running, simulated_meters, wait_for, write_yaml
from servers import Mosquitto, require_binary

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0
AGENT_PASSWORD = "tls-agent-5e0b-secret"  # noqa: S105 - a test secret
COLLECTOR_PASSWORD = "tls-collector-8c1d-secret"  # noqa: S105 - a test secret


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [str(ROOT / "deploy/pki/make-test-pki.sh"), str(out), "collector", "gw-tls"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path) -> Iterator[Mosquitto]:
    passwd = tmp_path / "passwd"
    tool = require_binary("mosquitto_passwd")
    passwd.touch()
    for user, password in (("gw-tls", AGENT_PASSWORD), ("collector", COLLECTOR_PASSWORD)):
        subprocess.run([tool, "-b", str(passwd), user, password], check=True)
    broker = Mosquitto(
        tmp_path / "broker",
        extra_config=[  # these apply to the fixture's one listener: TLS only
            f"cafile {pki / 'ca.pem'}",
            f"certfile {pki / 'broker.pem'}",
            f"keyfile {pki / 'broker.key'}",
            "require_certificate true",
            "tls_version tlsv1.2",
            "allow_anonymous false",
            f"password_file {passwd}",
        ],
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[int]:
    with simulated_meters(tmp_path, "chint_dtsu666", "1") as (port, _):
        yield port


def tls_url(broker: Mosquitto) -> str:
    return f"mqtts://127.0.0.1:{broker.port}"


def configs(
    tmp_path: Path, broker: Mosquitto, pki: Path, ca: str, sim_port: int
) -> tuple[Path, Path]:
    agent = write_yaml(
        tmp_path / "agent.yaml",
        {
            "site": "plant-tls",
            "agent_id": "gw-tls",
            "mqtt": {
                "url": tls_url(broker),
                "username": "gw-tls",
                "password": "${AGENT_MQTT_PASSWORD}",
                "ca_file": str(pki / ca),
                "cert_file": str(pki / "gw-tls.pem"),
                "key_file": str(pki / "gw-tls.key"),
            },
            "state_dir": str(tmp_path / "agent-state"),
            "meters": [
                {
                    "id": "line-1",
                    "profile": "chint_dtsu666",
                    "modbus": {"host": "127.0.0.1", "port": sim_port, "unit_id": 1},
                    "interval": 0.5,
                }
            ],
        },
    )
    collector = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {
                "url": tls_url(broker),
                "username": "collector",
                "password": "${COLLECTOR_MQTT_PASSWORD}",
                "client_id": "collector-tls",
                "ca_file": str(pki / ca),
                "cert_file": str(pki / "collector.pem"),
                "key_file": str(pki / "collector.key"),
            },
            "data_dir": str(tmp_path / "collector-data"),
            "write": {"max_delay": 0.1},
        },
    )
    return agent, collector


def stored(database: Path) -> int:
    try:
        with sqlite3.connect(database) as connection:
            count: int = connection.execute("SELECT count(*) FROM reading").fetchone()[0]
            return count
    except sqlite3.OperationalError:  # no file or no table yet
        return 0


def verification_failure(output: str) -> str | None:
    lines = output.splitlines()
    return next((line for line in lines if "certificate verify failed" in line.lower()), None)


def failure_in(program: Program) -> Callable[[], str | None]:
    return lambda: verification_failure(program.output())


@pytest.fixture(autouse=True)
def _passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MQTT_PASSWORD", AGENT_PASSWORD)
    monkeypatch.setenv("COLLECTOR_MQTT_PASSWORD", COLLECTOR_PASSWORD)


def test_readings_travel_over_tls_with_client_certificates(
    tmp_path: Path, tls_broker: Mosquitto, pki: Path, simulator: int
) -> None:
    agent_yaml, collector_yaml = configs(tmp_path, tls_broker, pki, "ca.pem", simulator)
    database = tmp_path / "collector-data" / "readings.sqlite"
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "c.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "a.log") as agent,
    ):
        wait_for(lambda: stored(database) >= 20, TIMEOUT, "readings stored over TLS")
        agent.assert_running()
        collector.assert_running()
    assert f"broker={tls_url(tls_broker)}" in agent.output()
    assert "connected to broker" in agent.output()
    assert "subscribed" in collector.output()
    for output in (agent.output(), collector.output(), tls_broker.log_tail(400)):
        assert AGENT_PASSWORD not in output
        assert COLLECTOR_PASSWORD not in output


def test_a_broker_signed_by_another_ca_is_refused_with_a_clear_error(
    tmp_path: Path, tls_broker: Mosquitto, pki: Path, simulator: int
) -> None:
    agent_yaml, collector_yaml = configs(tmp_path, tls_broker, pki, "other-ca.pem", simulator)
    database = tmp_path / "collector-data" / "readings.sqlite"
    url = tls_url(tls_broker)
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "c.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "a.log") as agent,
    ):
        for program in (agent, collector):
            line = wait_for(
                failure_in(program),
                TIMEOUT,
                f"{program.name} to report the failed verification",
            )
            assert "level=warning" in line
            assert f"broker={url}" in line
            assert "TLS certificate verification failed: the certificate of broker " in line
            assert f"127.0.0.1:{tls_broker.port} is not trusted by CA file {pki}" in line
        agent.assert_running()  # it keeps retrying, with backoff, and keeps its readings
        collector.assert_running()
    assert stored(database) == 0
    assert "connected to broker" not in agent.output()
    assert "subscribed" not in collector.output()


def lost_in(program: Program) -> Callable[[], str | None]:
    def line() -> str | None:
        lines = program.output().splitlines()
        return next((x for x in lines if 'msg="broker connection lost"' in x), None)

    return line


def test_a_missing_client_certificate_is_named_at_once(
    tmp_path: Path, tls_broker: Mosquitto, pki: Path, simulator: int
) -> None:
    # Under TLS 1.3 the broker's alert comes after the handshake: the client must say it,
    # not wait out its CONNACK timeout (15 s agent, 10 s collector) and report a timeout.
    agent_yaml, collector_yaml = configs(tmp_path, tls_broker, pki, "ca.pem", simulator)
    for path in (agent_yaml, collector_yaml):
        document = yaml.safe_load(path.read_text())
        del document["mqtt"]["cert_file"], document["mqtt"]["key_file"]
        write_yaml(path, document)
    url = tls_url(tls_broker)
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "c.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "a.log") as agent,
    ):
        for program in (agent, collector):
            line = wait_for(
                lost_in(program),
                8.0,
                f"{program.name} to report the refused connection before its CONNACK timeout",
            )
            assert f"broker={url}" in line
            # What the broker said: its alert, unless its close reset the connection before
            # the client read it (then the likely cause, as a hint).
            assert "none is configured (mqtt.cert_file, mqtt.key_file)" in line
            alert = "TLSV13_ALERT_CERTIFICATE_REQUIRED" in line
            assert alert == (
                f"TLS refused by broker 127.0.0.1:{tls_broker.port} (alert 'certificate "
                "required'): it requires a client certificate" in line
            )
        agent.assert_running()
        collector.assert_running()
    for output in (agent.output(), collector.output()):
        assert "Operation timed out" not in output and "no CONNACK" not in output
