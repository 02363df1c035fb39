"""The broker's ACL keeps each agent to its own topics, with a real mosquitto.

The broker runs with a password file and the project's ACL (deploy/mosquitto/acl, agents
added by deploy/mosquitto/add-agent.sh, the collector's password set with
mosquitto_passwd). An agent holding plant-a's credentials but configured as plant-b,
and a hand-made plant-b batch sent with the same credentials, never reach the collector:
nothing stored and nothing dead-lettered for plant-b, while plant-a's own readings
arrive. No password appears in any program's output.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from processes import read_json, running, simulated_meters, wait_for, write_yaml
from servers import Mosquitto, require_binary

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0
PASSWORDS = {  # user -> password; none may ever be printed
    "plant-a.gw-01": "pa-7d1e-secret",
    "plant-b.gw-01": "pb-44c0-secret",
    "collector": "col-9a2f-secret",
}


def broker_users(folder: Path) -> tuple[Path, Path]:
    """passwd and acl files the way a central team makes them."""
    folder.mkdir()
    acl = folder / "acl"
    shutil.copy(ROOT / "deploy/mosquitto/acl", acl)
    for user in ("plant-a.gw-01", "plant-b.gw-01"):
        site, agent = user.split(".")
        subprocess.run(
            [str(ROOT / "deploy/mosquitto/add-agent.sh"), site, agent],
            input=PASSWORDS[user] + "\n",
            text=True,
            check=True,
            env={"MOSQUITTO_DIR": str(folder), "PATH": "/usr/bin:/bin:/usr/sbin"},
        )
    passwd = folder / "passwd"
    tool = require_binary("mosquitto_passwd")
    subprocess.run([tool, "-b", str(passwd), "collector", PASSWORDS["collector"]], check=True)
    return passwd, acl


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwd, acl = broker_users(tmp_path / "users")
    broker = Mosquitto(
        tmp_path / "broker",
        extra_config=["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"],
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[int]:
    with simulated_meters(tmp_path, "eastron_sdm630", "1") as (port, dump):
        assert read_json(dump)["values"]["1"]
        yield port


def agent_yaml(path: Path, site: str, user: str, broker: Mosquitto, sim_port: int) -> Path:
    secret = path.with_suffix(".password")
    secret.write_text(PASSWORDS[user] + "\n")
    return write_yaml(
        path,
        {
            "site": site,
            "agent_id": "gw-01",
            "mqtt": {"url": broker.url, "username": user, "password": f"${{file:{secret.name}}}"},
            "state_dir": str(path.parent / f"state-{site}"),
            "meters": [
                {
                    "id": "incomer",
                    "profile": "eastron_sdm630",
                    "modbus": {"host": "127.0.0.1", "port": sim_port, "unit_id": 1},
                    "interval": 0.5,
                }
            ],
        },
    )


def stored_sites(database: Path) -> dict[str, int]:
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(database) as connection:
            return dict(connection.execute("SELECT site, count(*) FROM reading GROUP BY site"))
    except sqlite3.OperationalError:  # the collector has not made its table yet
        return {}


def publish_v5(broker: Mosquitto, user: str, topic: str, payload: bytes) -> int:
    """Publish at QoS 1 over MQTT 5 and return the PUBACK's reason code."""
    codes: list[int] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    client.on_publish = lambda _c, _u, _mid, code, _p: codes.append(int(code.value))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1)
        wait_for(lambda: codes, 10, "the PUBACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_an_agent_cannot_inject_readings_for_another_site(
    tmp_path: Path, locked_broker: Mosquitto, simulator: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLECTOR_MQTT_PASSWORD", PASSWORDS["collector"])
    data_dir = tmp_path / "collector-data"
    collector_yaml = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {
                "url": locked_broker.url,
                "username": "collector",
                "password": "${COLLECTOR_MQTT_PASSWORD}",
                "client_id": "collector-acl",
            },
            "data_dir": str(data_dir),
            "write": {"max_delay": 0.1},
        },
    )
    honest = agent_yaml(
        tmp_path / "agent-a.yaml", "plant-a", "plant-a.gw-01", locked_broker, simulator
    )
    # plant-a's gateway, reconfigured to pose as plant-b: same credentials, other site.
    intruder = agent_yaml(
        tmp_path / "agent-b.yaml", "plant-b", "plant-a.gw-01", locked_broker, simulator
    )
    database = data_dir / "readings.sqlite"
    forged = json.dumps(
        {
            "schema_version": 1,
            "site": "plant-b",
            "agent": "gw-01",
            "seq": 0,
            "readings": [
                {"meter": "incomer", "ts": "2026-01-01T00:00:00Z", "values": {"power_active": 1.0}}
            ],
        }
    ).encode()
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "c.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(intruder)], tmp_path / "b.log") as posing,
        running("energy-agent", ["run", "--config", str(honest)], tmp_path / "a.log") as agent,
    ):
        wait_for(lambda: stored_sites(database).get("plant-a", 0) >= 20, TIMEOUT, "plant-a stored")
        # The broker says no to a forged batch on plant-b's topic (MQTT 5: 0x87)...
        assert (
            publish_v5(
                locked_broker, "plant-a.gw-01", "greengauge/v1/plant-b/gw-01/readings", forged
            )
            == 0x87
        )
        before = stored_sites(database).get("plant-a", 0)
        wait_for(
            lambda: stored_sites(database).get("plant-a", 0) > before + 20,
            TIMEOUT,
            "more of plant-a",
        )
        time.sleep(1.0)  # whatever the intruder sent has had time to arrive
        for program in (collector, posing, agent):
            program.assert_running()
    assert set(stored_sites(database)) == {"plant-a"}
    dead_letters = data_dir / "dead-letters.jsonl"
    letters = dead_letters.read_text().splitlines() if dead_letters.exists() else []
    assert [line for line in letters if "plant-b" in line] == []
    assert "plant-b" not in collector.output()
    # The posing agent tried: the broker refused every batch (PUBACK 0x87), so none left
    # its outbox as published, and it says why.
    assert "the broker refused the message: Not authorized (0x87)" in posing.output()
    taken = re.findall(
        r"readings taken.* taken=(\d+) published=(\d+) backlog=(\d+)", posing.output()
    )
    assert taken and int(taken[-1][0]) > 0 and int(taken[-1][1]) == 0, posing.output()[-2000:]
    outputs = collector.output() + posing.output() + agent.output() + locked_broker.log_tail(400)
    for password in PASSWORDS.values():
        assert password not in outputs
