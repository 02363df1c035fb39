"""A reading travels from a Modbus meter to the database, through real servers.

simulator (held values) -> energy-agent -> mosquitto -> energy-collector -> store,
every program started through its CLI on free loopback ports. What the simulator
served (its --dump) must be exactly what the database holds, for every quantity of
both built-in profiles.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.publish
import pytest
from processes import Program, port_open, read_json, running, wait_for, write_yaml
from servers import Mosquitto, VictoriaMetrics, free_port

from agent.profiles import load_profile

SITE = "plant-e2e"
AGENT = "gw-e2e"
# meter id -> (profile, unit id)
METERS = {
    "incomer": ("eastron_sdm630", 1),
    "compressor": ("eastron_sdm630", 2),
    "line-1": ("chint_dtsu666", 3),
}
TIMEOUT = 30.0


@dataclass
class Plant:
    """Simulators with held values, and what each meter serves."""

    ports: dict[str, int]
    expected: dict[str, dict[str, float]]
    """meter id -> quantity -> value served"""


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    ports: dict[str, int] = {}
    dumps: dict[str, Path] = {}
    programs: list[Program] = []
    try:
        for profile in sorted({p for p, _ in METERS.values()}):
            unit_ids = ",".join(str(u) for p, u in METERS.values() if p == profile)
            ports[profile] = free_port()
            dumps[profile] = tmp_path / f"{profile}.json"
            args = ["simulate", "--profile", profile, "--port", str(ports[profile])]
            args += ["--unit-ids", unit_ids, "--hold", "--dump", str(dumps[profile])]
            programs.append(Program("energy-agent", args, tmp_path / f"sim-{profile}.log"))
        for profile, dump in dumps.items():
            wait_for(dump.exists, TIMEOUT, f"the {profile} simulator's dump")
        # The simulator serves the unconfirmed registers too; the agent reads the others.
        read = {p: {str(r.quantity) for r in load_profile(p).read_registers} for p in dumps}
        expected = {
            meter: {
                quantity: value
                for quantity, value in read_json(dumps[profile])["values"][str(unit)].items()
                if quantity in read[profile]
            }
            for meter, (profile, unit) in METERS.items()
        }
        yield Plant(ports, expected)
    finally:
        for program in programs:
            program.stop()


def agent_config(path: Path, plant: Plant, broker: Mosquitto) -> Path:
    meters = [
        {
            "id": meter,
            "profile": profile,
            "modbus": {"host": "127.0.0.1", "port": plant.ports[profile], "unit_id": unit},
            "interval": 0.5,
        }
        for meter, (profile, unit) in METERS.items()
    ]
    return write_yaml(
        path, {"site": SITE, "agent_id": AGENT, "mqtt": {"url": broker.url}, "meters": meters}
    )


def collector_config(path: Path, broker: Mosquitto, influx: VictoriaMetrics | None) -> Path:
    config: dict[str, Any] = {
        "mqtt": {"url": broker.url, "client_id": "collector-e2e"},
        "data_dir": str(path.parent / "collector-data"),
        "write": {"max_delay": 0.1},
    }
    if influx is not None:
        config["influxdb"] = {
            "url": influx.url,
            "org": "plant",
            "bucket": "energy",
            "token": "${TEST_INFLUX_TOKEN}",
        }
    return write_yaml(path, config)


def stored_in_victoria(influx: VictoriaMetrics) -> dict[str, dict[str, list[float]]]:
    """meter -> quantity -> every value stored, from the database itself."""
    result: dict[str, dict[str, list[float]]] = {}
    for series in influx.export('{__name__=~"reading_.*"}'):
        labels = series["metric"]
        assert (labels["site"], labels["agent"]) == (SITE, AGENT), labels
        quantity = labels["__name__"].removeprefix("reading_")
        result.setdefault(labels["meter"], {})[quantity] = series["values"]
    return result


def stored_in_sqlite(database: Path) -> dict[str, dict[str, list[float]]]:
    result: dict[str, dict[str, list[float]]] = {}
    if not database.exists():
        return result
    with sqlite3.connect(database) as connection:
        try:
            rows = connection.execute(
                "SELECT site, agent, meter, quantity, value FROM reading ORDER BY ts"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            # The collector creates the file a moment before its tables: not stored yet.
            if "no such table" not in str(exc):
                raise
            return result
    for site, agent, meter, quantity, value in rows:
        assert (site, agent) == (SITE, AGENT)
        result.setdefault(meter, {}).setdefault(quantity, []).append(value)
    return result


def complete(stored: dict[str, dict[str, list[float]]], plant: Plant, reads: int) -> bool:
    """Every quantity of every meter stored at least `reads` times."""
    return all(
        len(stored.get(meter, {}).get(quantity, [])) >= reads
        for meter, values in plant.expected.items()
        for quantity in values
    )


def assert_stored_equals_served(stored: dict[str, dict[str, list[float]]], plant: Plant) -> None:
    assert sorted(stored) == sorted(plant.expected)
    for meter, served in plant.expected.items():
        assert sorted(stored[meter]) == sorted(served), meter
        for quantity, value in served.items():
            for got in stored[meter][quantity]:
                assert got == pytest.approx(value, rel=1e-12, abs=1e-12), (meter, quantity)


def test_every_quantity_of_both_profiles_reaches_influxdb(
    tmp_path: Path,
    plant: Plant,
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "e2e-token")
    profiles = [load_profile(p) for p in sorted({p for p, _ in METERS.values()})]
    assert [p.model for p in profiles] == ["chint_dtsu666", "eastron_sdm630"]
    for profile in profiles:  # every quantity the agent reads, so the test covers them all
        meters = [m for m, (p, _) in METERS.items() if p == profile.model]
        for meter in meters:
            assert set(plant.expected[meter]) == {str(r.quantity) for r in profile.read_registers}

    collector_yaml = collector_config(tmp_path / "collector.yaml", mosquitto, victoria_metrics)
    agent_yaml = agent_config(tmp_path / "agent.yaml", plant, mosquitto)
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "collector.log"
        ) as collector,
        running(
            "energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"
        ) as agent,
    ):
        stored = wait_for(
            lambda: (s := stored_in_victoria(victoria_metrics)) and complete(s, plant, 2) and s,
            TIMEOUT,
            "two reads of every quantity in victoria-metrics",
        )
        agent.assert_running()
        collector.assert_running()
    assert_stored_equals_served(stored, plant)
    assert "e2e-token" not in collector.output()


def test_the_same_through_the_embedded_sqlite_store(
    tmp_path: Path, plant: Plant, mosquitto: Mosquitto
) -> None:
    collector_yaml = collector_config(tmp_path / "collector.yaml", mosquitto, None)
    agent_yaml = agent_config(tmp_path / "agent.yaml", plant, mosquitto)
    database = tmp_path / "collector-data" / "readings.sqlite"
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "collector.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"),
    ):
        stored = wait_for(
            lambda: (s := stored_in_sqlite(database)) and complete(s, plant, 2) and s,
            TIMEOUT,
            "two reads of every quantity in the SQLite store",
        )
        collector.assert_running()
    assert_stored_equals_served(stored, plant)
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_malformed_message_is_dead_lettered_and_ingest_goes_on(
    tmp_path: Path, plant: Plant, mosquitto: Mosquitto
) -> None:
    collector_yaml = collector_config(tmp_path / "collector.yaml", mosquitto, None)
    agent_yaml = agent_config(tmp_path / "agent.yaml", plant, mosquitto)
    database = tmp_path / "collector-data" / "readings.sqlite"
    dead_letters = tmp_path / "collector-data" / "dead-letters.jsonl"
    topic = f"greengauge/v1/{SITE}/{AGENT}/readings"
    bad = {
        "not json": b"{this is not json",
        "missing readings": json.dumps(
            {"schema_version": 1, "site": SITE, "agent": AGENT, "seq": 7}
        ).encode(),
        "another site": json.dumps(
            {
                "schema_version": 1,
                "site": "elsewhere",
                "agent": AGENT,
                "seq": 1,
                "readings": [
                    {"meter": "m", "ts": "2026-01-01T00:00:00Z", "values": {"power_active": 1.0}}
                ],
            }
        ).encode(),
    }
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "collector.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"),
    ):
        wait_for(lambda: complete(stored_in_sqlite(database), plant, 1), TIMEOUT, "first reads")
        for payload in bad.values():
            paho.mqtt.publish.single(topic, payload, qos=1, port=mosquitto.port)
        entries = wait_for(
            lambda: (
                dead_letters.exists()
                and len(lines := dead_letters.read_text().splitlines()) == len(bad)
                and [json.loads(line) for line in lines]
            ),
            TIMEOUT,
            "three dead letters",
        )
        before = len(stored_in_sqlite(database)["incomer"]["power_active"])
        wait_for(
            lambda: len(stored_in_sqlite(database)["incomer"]["power_active"]) > before + 1,
            TIMEOUT,
            "readings stored after the bad messages",
        )
        collector.assert_running()
    assert [e["topic"] for e in entries] == [topic] * 3
    assert [e["payload"].encode() for e in entries] == list(bad.values())
    reasons = [e["reason"] for e in entries]
    assert "invalid reading batch" in reasons[0] and "json" in reasons[0].lower()
    assert "readings" in reasons[1] and "Field required" in reasons[1]
    assert "site 'elsewhere'" in reasons[2]
    assert collector.output().count("message dead-lettered") == 3
    assert port_open(mosquitto.port)
