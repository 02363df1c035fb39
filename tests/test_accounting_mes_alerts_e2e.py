"""Production output from the MES over MQTT, and intensity alerts back, through real servers.

simulator (energy meter) -> energy-agent -> mosquitto -> energy-collector; the test plays
the MES on greengauge/v1/{site}/production and listens on greengauge/v1/{site}/alerts.
With a trickle of output the line's intensity is far above its baseline, so an alert is
raised; a big batch of output brings it under the baseline and the alert clears. A MES
message that is not valid is dead-lettered, never counted as output.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import paho.mqtt.publish
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from processes import running, simulated_meters, wait_for, write_yaml
from servers import Mosquitto

from greengauge.contract import Alert, AlertKind, ProductionOutput, alerts_topic, production_topic

SITE = "plant-mes"
UNIT = 38  # a ~140 kW simulated meter
TIMEOUT = 40.0


@pytest.fixture
def meter_port(tmp_path: Path) -> Iterator[int]:
    with simulated_meters(tmp_path, "schneider_iem3255", str(UNIT), hold=False) as (port, _):
        yield port


def configs(tmp_path: Path, port: int, broker: Mosquitto) -> tuple[Path, Path]:
    agent = write_yaml(
        tmp_path / "agent.yaml",
        {
            "site": SITE,
            "agent_id": "gw-mes",
            "mqtt": {"url": broker.url},
            "state_dir": str(tmp_path / "agent-state"),
            "meters": [
                {
                    "id": "line-1",
                    "profile": "schneider_iem3255",
                    "modbus": {"host": "127.0.0.1", "port": port, "unit_id": UNIT},
                    "interval": 0.5,
                }
            ],
        },
    )
    line: dict[str, Any] = {
        "id": "line-1",
        "product": "brackets",
        "output_unit": "pieces",
        "output": {"mes": True},
        "benchmark": {
            "custom": {
                "name": "test line",
                "unit": "kgce/pieces",
                "benchmark": 0.001,
                "baseline": 0.002,
                "source": "test values",
            }
        },
        "alert": {"window": "today", "band": 0.0005, "min_duration": 1},
    }
    collector = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {"url": broker.url, "client_id": "collector-mes"},
            "data_dir": str(tmp_path / "collector-data"),
            "write": {"max_delay": 0.1},
            "accounting": {
                "interval": 0.5,
                "intensity_interval": 0.5,
                "sites": [
                    {
                        "id": SITE,
                        "timezone": "Asia/Shanghai",
                        "grid_factor": {"series": "national_average", "year": 2023},
                        "meters": [{"id": "line-1", "carrier": "electricity", "line": "line-1"}],
                        "lines": [line],
                    }
                ],
            },
        },
    )
    return agent, collector


class Listener:
    """A subscriber at the broker, as an operator's system would be."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda _c, _u, message: self.messages.put(bytes(message.payload))
        self._client.connect("127.0.0.1", broker.port)
        self._client.subscribe(topic, qos=1)
        self._client.loop_start()

    def alert(self, kind: AlertKind) -> Alert:
        deadline = datetime.now(UTC) + timedelta(seconds=TIMEOUT)
        while datetime.now(UTC) < deadline:
            try:
                alert = Alert.model_validate_json(self.messages.get(timeout=1))
            except queue.Empty:
                continue
            if alert.kind is kind:
                return alert
        raise AssertionError(f"no {kind.value} alert within {TIMEOUT} s")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def output(quantity: float, start: datetime, end: datetime) -> bytes:
    message = ProductionOutput(
        site=SITE, line="line-1", start=start, end=end, quantity=quantity, unit="pieces"
    )
    return message.model_dump_json().encode()


def test_mes_output_drives_the_intensity_and_alerts_reach_the_broker(
    tmp_path: Path, meter_port: int, mosquitto: Mosquitto
) -> None:
    agent_yaml, collector_yaml = configs(tmp_path, meter_port, mosquitto)
    dead_letters = tmp_path / "collector-data" / "dead-letters.jsonl"
    listener = Listener(mosquitto, alerts_topic(SITE))
    collector_args = ["run", "--config", str(collector_yaml)]
    try:
        with (
            running("energy-collector", collector_args, tmp_path / "collector.log") as collector,
            running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"),
        ):
            wait_for(
                lambda: "subscribed" in collector.output(), TIMEOUT, "the collector to subscribe"
            )
            now = datetime.now(UTC)
            # ~140 kW for a few seconds is ~0.02 kgce: with 1 piece, ~0.02 kgce a piece,
            # ten times the baseline of 0.002.
            topic = production_topic(SITE)
            paho.mqtt.publish.single(
                topic, output(1, now - timedelta(minutes=1), now), qos=1, port=mosquitto.port
            )
            bad = b'{"kind": "output", "site": "plant-mes", "line": "line-1"}'
            paho.mqtt.publish.single(topic, bad, qos=1, port=mosquitto.port)
            raised = listener.alert(AlertKind.RAISED)
            assert (raised.site, raised.line) == (SITE, "line-1")
            assert raised.value > raised.threshold == pytest.approx(0.002)
            assert raised.unit == "kgce/pieces"

            later = datetime.now(UTC)
            # A million pieces: the intensity falls far below baseline - band.
            paho.mqtt.publish.single(
                topic, output(1_000_000, now, later), qos=1, port=mosquitto.port
            )
            cleared = listener.alert(AlertKind.CLEARED)
            assert cleared.line == "line-1"
            assert cleared.value < 0.002 - 0.0005
            collector.assert_running()
    finally:
        listener.close()
    entries = [json.loads(line) for line in dead_letters.read_text().splitlines()]
    assert [e["topic"] for e in entries] == [production_topic(SITE)]
    assert "start" in entries[0]["reason"] or "Field required" in entries[0]["reason"]
