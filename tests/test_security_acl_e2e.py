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
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from processes import read_json, running, simulated_meters, wait_for, write_yaml
from servers import DeployedMosquitto, Mosquitto, require_binary

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0
PASSWORDS = {  # user -> password; none may ever be printed
    "plant-a/gw-01": "pa-7d1e-secret",
    "plant-b/gw-01": "pb-44c0-secret",
    "collector": "col-9a2f-secret",
    # Ids with dots: under the old user name SITE.AGENT both were user a.b.c.
    "a.b/c": "abc-31f0-secret",
    "a/b.c": "abc-77e2-secret",
}


def broker_users(folder: Path) -> tuple[Path, Path]:
    """passwd and acl files the way a central team makes them."""
    folder.mkdir()
    for user in ("plant-a/gw-01", "plant-b/gw-01"):
        site, agent = user.split("/")
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
    # As the broker's entrypoint.sh assembles it: the committed rules, then the gateways'.
    acl = folder / "acl"
    acl.write_text(
        (ROOT / "deploy/mosquitto/acl").read_text() + (folder / "agents.acl").read_text()
    )
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


@dataclass
class Session:
    """What one MQTT client saw: its CONNACK, PUBACK reason codes, messages received."""

    client: paho.Client
    connack: list[int] = field(default_factory=list)
    pubacks: list[int] = field(default_factory=list)
    received: list[tuple[str, bytes]] = field(default_factory=list)


@contextmanager
def mqtt_session(
    port: int,
    user: str,
    *,
    ca_file: Path | None = None,
    client_id: str = "",
    clean: bool = True,
    v5: bool = True,
) -> Iterator[Session]:
    """A connected client (QoS 1 publishes count their PUBACKs), disconnected at the end."""
    if v5:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
    else:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    session = Session(client)
    client.username_pw_set(user, PASSWORDS[user])
    if ca_file is not None:
        client.tls_set(ca_certs=str(ca_file))
    client.on_connect = lambda _c, _u, _f, code, _p: session.connack.append(int(code.value))
    client.on_publish = lambda _c, _u, _mid, code, _p: session.pubacks.append(int(code.value))
    client.on_message = lambda _c, _u, m: session.received.append((m.topic, bytes(m.payload)))
    client.connect("127.0.0.1", port, clean_start=clean if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY)
    client.loop_start()
    try:
        wait_for(lambda: session.connack, 10, "the CONNACK")
        yield session
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(session: Session, topic: str, payloads: list[bytes]) -> list[int]:
    """Publish at QoS 1 and return the PUBACKs' reason codes."""
    before = len(session.pubacks)
    for payload in payloads:
        session.client.publish(topic, payload, qos=1)
    wait_for(lambda: len(session.pubacks) >= before + len(payloads), 20, "the PUBACKs")
    return session.pubacks[before:]


def publish_v5(broker: Mosquitto, user: str, topic: str, payload: bytes) -> int:
    """Publish at QoS 1 over MQTT 5 and return the PUBACK's reason code."""
    with mqtt_session(broker.port, user) as session:
        return publish_all(session, topic, [payload])[0]


def batch(site: str, agent: str, seq: int) -> bytes:
    """A valid one-reading batch, its time one second per sequence number."""
    ts = f"2026-01-01T00:{seq // 60:02d}:{seq % 60:02d}Z"
    return json.dumps(
        {
            "schema_version": 1,
            "site": site,
            "agent": agent,
            "seq": seq,
            "readings": [{"meter": "incomer", "ts": ts, "values": {"power_active": 1.0}}],
        }
    ).encode()


def test_gateway_users_for_ids_with_dots_stay_apart(tmp_path: Path) -> None:
    """add-agent.sh a.b c, then a b.c: two users, each kept to its own topics; under the
    old user name SITE.AGENT both were a.b.c, the first locked out and the second free to
    publish as site a.b. Shipped broker config, TLS, counted at the collector's listener."""
    broker = DeployedMosquitto(tmp_path / "broker", PASSWORDS["collector"])
    for user in ("a.b/c", "a/b.c"):
        site, agent = user.split("/")
        done = broker.add_agent(site, agent, PASSWORDS[user])
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
        assert f"broker user {user}: may publish under greengauge/v1/{site}/{agent}/" in done.stderr
    # mosquitto's password file is USER:HASH: a ':' is refused with the reason.
    refused = broker.add_agent("plant:a", "gw-01", "x-secret")
    assert refused.returncode == 2
    assert "':' cannot be in a broker user name" in refused.stderr
    assert "plant:a" not in (broker.users_dir / "agents.acl").read_text()
    broker.start()
    try:
        with mqtt_session(
            broker.collector_port, "collector", ca_file=broker.ca_file, client_id="acl-watch"
        ) as watch:
            watch.client.subscribe("greengauge/v1/#", qos=1)
            time.sleep(0.3)  # the SUBACK
            codes = {}
            for user in ("a.b/c", "a/b.c"):
                with mqtt_session(broker.port, user, ca_file=broker.ca_file) as gateway:
                    for target in ("a.b/c", "a/b.c"):
                        site, agent = target.split("/")
                        topic = f"greengauge/v1/{target}/readings"
                        codes[user, target] = publish_all(gateway, topic, [batch(site, agent, 0)])
            wait_for(lambda: len(watch.received) >= 2, 10, "the accepted messages")
            time.sleep(0.5)  # anything else would have arrived
        assert codes == {
            ("a.b/c", "a.b/c"): [0],
            ("a.b/c", "a/b.c"): [0x87],
            ("a/b.c", "a.b/c"): [0x87],
            ("a/b.c", "a/b.c"): [0],
        }
        assert sorted(topic for topic, _ in watch.received) == [
            "greengauge/v1/a.b/c/readings",
            "greengauge/v1/a/b.c/readings",
        ]
    finally:
        broker.stop()
    assert not [p for p in PASSWORDS.values() if p in broker.log_tail(400)]


def test_an_agent_cannot_take_over_the_collectors_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real collector on the shipped broker config: while it is away, 50 batches queue
    in its persistent session; a gateway's credentials with the collector's client id
    (clean session, which would discard the queue, and persistent, which would take it)
    get nothing, and on the collector's listener no gateway password is valid. The
    collector comes back and stores all 50."""
    broker = DeployedMosquitto(tmp_path / "broker", PASSWORDS["collector"])
    done = broker.add_agent("plant-a", "gw-01", PASSWORDS["plant-a/gw-01"])
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("COLLECTOR_MQTT_PASSWORD", PASSWORDS["collector"])
    client_id = "greengauge-collector"
    data_dir = tmp_path / "collector-data"
    collector_yaml = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {
                "url": broker.collector_url,
                "username": "collector",
                "password": "${COLLECTOR_MQTT_PASSWORD}",
                "client_id": client_id,
                "ca_file": str(broker.ca_file),
            },
            "data_dir": str(data_dir),
            "write": {"max_delay": 0.1},
        },
    )
    database = data_dir / "readings.sqlite"
    topic = "greengauge/v1/plant-a/gw-01/readings"
    args = ["run", "--config", str(collector_yaml)]
    broker.start()
    try:
        with running("energy-collector", args, tmp_path / "c1.log"):
            with mqtt_session(broker.port, "plant-a/gw-01", ca_file=broker.ca_file) as gateway:
                # 0x10 (no matching subscribers) until the collector has subscribed.
                wait_for(
                    lambda: publish_all(gateway, topic, [batch("plant-a", "gw-01", 0)]) == [0],
                    TIMEOUT,
                    "the collector's subscription",
                    interval=0.2,
                )
            wait_for(lambda: stored_sites(database).get("plant-a"), TIMEOUT, "the first batch")
        per_batch = stored_sites(database)["plant-a"]
        with mqtt_session(broker.port, "plant-a/gw-01", ca_file=broker.ca_file) as gateway:
            queued = [batch("plant-a", "gw-01", seq) for seq in range(1, 51)]
            assert publish_all(gateway, topic, queued) == [0] * 50
        for clean in (True, False):
            with mqtt_session(
                broker.port,
                "plant-a/gw-01",
                ca_file=broker.ca_file,
                client_id=client_id,
                clean=clean,
                v5=False,
            ) as intruder:
                intruder.client.subscribe("greengauge/v1/#", qos=1)
                time.sleep(1.0)
            # Let in as itself (the client id is its user name), it receives nothing.
            assert (intruder.connack, intruder.received) == ([0], [])
        with mqtt_session(
            broker.collector_port,
            "plant-a/gw-01",
            ca_file=broker.ca_file,
            client_id=client_id,
            v5=False,
        ) as intruder:
            assert intruder.connack == [0x87]  # not authorised: no gateway user here
        with running("energy-collector", args, tmp_path / "c2.log") as collector:
            wait_for(
                lambda: stored_sites(database).get("plant-a", 0) >= 51 * per_batch,
                TIMEOUT,
                "the 50 queued batches",
            )
            collector.assert_running()
    finally:
        broker.stop()
    assert stored_sites(database) == {"plant-a": 51 * per_batch}
    dead_letters = data_dir / "dead-letters.jsonl"
    assert not dead_letters.exists() or dead_letters.read_text() == ""


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
        tmp_path / "agent-a.yaml", "plant-a", "plant-a/gw-01", locked_broker, simulator
    )
    # plant-a's gateway, reconfigured to pose as plant-b: same credentials, other site.
    intruder = agent_yaml(
        tmp_path / "agent-b.yaml", "plant-b", "plant-a/gw-01", locked_broker, simulator
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
                locked_broker, "plant-a/gw-01", "greengauge/v1/plant-b/gw-01/readings", forged
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
