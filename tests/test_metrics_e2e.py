"""Prometheus metrics scraped over HTTP: the agent's (metrics.listen) and the collector's
(/metrics on its API), with real processes and a real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.publish
from processes import Program, port_open, running, wait_for, write_yaml
from prometheus_client.parser import text_string_to_metric_families
from servers import Mosquitto, free_port

from greengauge.contract import MeterReading, Quantity, ReadingBatch

TIMEOUT = 30.0
FAULTY = ["--unit-ids", "1,2", "--fault", "2:timeout"]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    response = httpx.get(url, headers=headers or {}, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_agent_metrics(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sim_port, metrics_port = free_port(), free_port()
    sim = Program(
        "energy-agent",
        ["simulate", "--profile", "eastron_sdm630", "--port", str(sim_port), *FAULTY],
        tmp_path / "sim.log",
    )
    try:
        wait_for(lambda: port_open(sim_port), TIMEOUT, "the simulator")
        meters = [
            {
                "id": meter,
                "profile": "eastron_sdm630",
                "modbus": {"host": "127.0.0.1", "port": sim_port, "unit_id": unit, "timeout": 0.2},
                "interval": 0.5,
            }
            for meter, unit in (("good", 1), ("dead", 2))
        ]
        config = write_yaml(
            tmp_path / "agent.yaml",
            {
                "site": "s1",
                "agent_id": "gw",
                "mqtt": {"url": mosquitto.url},
                "state_dir": str(tmp_path / "state"),
                "outbox": {"max_batches": 3},
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "meters": meters,
            },
        )
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with running("energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log"):
            wait_for(lambda: port_open(metrics_port), TIMEOUT, "the agent's metrics")

            def polled() -> Samples | None:
                s = scrape(url)
                reads = value(s, "greengauge_agent_meter_reads_total", meter="good") or 0
                timeouts = (
                    value(s, "greengauge_agent_meter_errors_total", meter="dead", kind="timeout")
                    or 0
                )
                connected = value(s, "greengauge_agent_mqtt_connected")
                return s if reads >= 3 and timeouts >= 2 and connected == 1 else None

            s = wait_for(polled, TIMEOUT, "reads, timeouts and a connection in the metrics")
            assert (value(s, "greengauge_agent_poll_seconds_count", meter="good") or 0) >= 3
            assert (value(s, "greengauge_agent_poll_seconds_count", meter="dead") or 0) >= 1
            fast = value(s, "greengauge_agent_poll_seconds_bucket", meter="good", le="0.1") or 0
            assert fast >= 1  # a loopback read of an SDM630 takes milliseconds
            assert value(s, "greengauge_agent_meter_online", meter="good") == 1
            assert value(s, "greengauge_agent_outbox_depth") is not None
            assert value(s, "greengauge_agent_outbox_dropped_batches_total") == 0

            # The broker goes away: disconnected, the outbox fills and drops its oldest.
            mosquitto.stop()

            def dropping() -> Samples | None:
                s = scrape(url)
                dropped = value(s, "greengauge_agent_outbox_dropped_batches_total") or 0
                gone = value(s, "greengauge_agent_mqtt_connected") == 0
                return s if gone and dropped >= 1 else None

            s = wait_for(dropping, TIMEOUT, "disconnected and dropped batches in the metrics")
            assert value(s, "greengauge_agent_outbox_depth") == 3
            mosquitto.start()
    finally:
        sim.stop()


def test_agent_metrics_are_off_by_default() -> None:
    from agent.config import AgentConfig  # noqa: PLC0415

    config = AgentConfig.model_validate(
        {
            "site": "s",
            "mqtt": {"url": "mqtt://127.0.0.1"},
            "meters": [{"id": "m", "profile": "eastron_sdm630", "modbus": {"host": "h"}}],
        }
    )
    assert config.metrics.listen is None


def batch(seq: int) -> bytes:
    values = {Quantity.POWER_ACTIVE: 1.0, Quantity.FREQUENCY: 50.0}
    reading = MeterReading(meter="m1", ts=datetime.now(UTC), values=values)
    message = ReadingBatch(site="s1", agent="gw", seq=seq, readings=[reading])
    return message.model_dump_json().encode()


def test_collector_metrics(tmp_path: Path, mosquitto: Mosquitto) -> None:
    port = free_port()
    config = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {"url": mosquitto.url, "client_id": "collector-metrics"},
            "data_dir": str(tmp_path / "data"),
            "write": {"max_delay": 0.05},
            "api": {"listen": f"127.0.0.1:{port}"},
        },
    )
    url = f"http://127.0.0.1:{port}/metrics"
    topic = "greengauge/v1/s1/gw/readings"
    with running(
        "energy-collector", ["run", "--config", str(config)], tmp_path / "collector.log"
    ) as collector:
        wait_for(lambda: port_open(port), TIMEOUT, "the collector's API")
        wait_for(
            lambda: value(scrape(url), "greengauge_collector_mqtt_connected") == 1,
            TIMEOUT,
            "the collector subscribed",
        )
        for payload in (batch(0), batch(5), b"{not json"):
            paho.mqtt.publish.single(topic, payload, qos=1, port=mosquitto.port)

        def counted() -> Samples | None:
            s = scrape(url)
            return s if value(s, "greengauge_collector_messages_total") == 3 else None

        s = wait_for(counted, TIMEOUT, "three messages in the metrics")
        s = wait_for(
            lambda: (
                (s := scrape(url))
                and value(s, "greengauge_collector_readings_written_total") == 4
                and s
            ),
            TIMEOUT,
            "the values written",
        )
        assert value(s, "greengauge_collector_dead_letters_total") == 1
        assert value(s, "greengauge_collector_sequence_gaps_total") == 4
        assert value(s, "greengauge_collector_sequence_missing") == 4
        assert value(s, "greengauge_collector_spool_depth") == 0
        assert (value(s, "greengauge_collector_write_seconds_count") or 0) >= 1
        assert (value(s, "greengauge_collector_write_seconds_sum") or 0) > 0
        # Two readings stored, each observed once, fresh: read to stored well under 10 s.
        age = "greengauge_collector_reading_stored_age_seconds"
        assert value(s, f"{age}_count") == 2
        assert value(s, f"{age}_bucket", le="10.0") == 2
        collector.assert_running()
    entries = [
        json.loads(x) for x in (tmp_path / "data" / "dead-letters.jsonl").read_text().splitlines()
    ]
    assert len(entries) == 1
