"""Oversized payloads: the broker refuses what is over its max_packet_size, and the
collector dead-letters (reason, size, sha256, a prefix) what is over its own limit.

mosquitto (configured as deploy/mosquitto/mosquitto.conf) -> energy-collector.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from processes import running, wait_for, write_yaml
from servers import Mosquitto

from collector.config import DeadLetterSettings, IngestSettings

TOPIC = "greengauge/v1/plant-big/gw/readings"
REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0


def packet_limit(conf: Path) -> int:
    found = re.search(r"^max_packet_size (\d+)$", conf.read_text(), re.MULTILINE)
    assert found, f"{conf} sets no max_packet_size"
    return int(found.group(1))


def test_every_shipped_broker_config_limits_packets_just_above_the_collector() -> None:
    limit = IngestSettings().max_payload
    confs = [REPO / "deploy/mosquitto/mosquitto.conf", REPO / "configs/demo/mosquitto.conf"]
    for conf in confs:
        # Room for the fixed header, the topic and properties; no room for a second payload.
        assert limit < packet_limit(conf) <= limit + 4096, conf


def test_over_the_collectors_limit_is_dead_lettered_over_the_brokers_never_arrives(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    limit = IngestSettings().max_payload
    data = tmp_path / "data"
    config = write_yaml(
        tmp_path / "collector.yaml",
        {"mqtt": {"url": mosquitto.url, "client_id": "collector-big"}, "data_dir": str(data)},
    )
    over_collector = b"[" * (limit + 100)  # the broker takes it: its limit is a bit higher
    over_broker = b"]" * (limit + 10_000)
    dead_letters = data / "dead-letters.jsonl"
    with running("energy-collector", ["run", "--config", str(config)], tmp_path / "c.log") as c:
        wait_for(lambda: "subscribed" in c.output(), TIMEOUT, "subscribed")
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
        dropped = threading.Event()
        client.on_disconnect = lambda *_args: dropped.set()
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        try:
            client.publish(TOPIC, over_collector, qos=1).wait_for_publish(TIMEOUT)
            # The broker drops the connection of a client that sends too large a packet.
            client.publish(TOPIC, over_broker, qos=1)
            assert dropped.wait(TIMEOUT), "the broker took a packet over its max_packet_size"
            wait_for(lambda: dead_letters.exists() and dead_letters.read_bytes(), TIMEOUT, "entry")
        finally:
            client.loop_stop()
        wait_for(lambda: "over the limit" in c.output(), TIMEOUT, "the log line")
        c.assert_running()
    (entry,) = [json.loads(line) for line in dead_letters.read_text().splitlines()]
    assert entry["size"] == limit + 100
    assert entry["sha256"] == hashlib.sha256(over_collector).hexdigest()
    assert entry["reason"] == f"payload of {limit + 100} bytes is over the limit of {limit} bytes"
    assert entry["payload"] == "[" * DeadLetterSettings().payload_prefix
    assert dead_letters.stat().st_size < 10_000
