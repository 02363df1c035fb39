"""The test servers themselves: they start, serve, keep their data across restarts, fail loudly."""

from __future__ import annotations

import asyncio
import socket
import time

import aiomqtt
import pytest
from servers import Mosquitto, VictoriaMetrics, require_binary

TOPIC = "greengauge/v1/test/fixture/readings"


async def _next_payload(client: aiomqtt.Client) -> bytes:
    async with asyncio.timeout(5):
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return message.payload
    raise AssertionError("message stream ended")


async def test_mosquitto_round_trip(mosquitto: Mosquitto) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="round-trip") as client:
        await client.subscribe(TOPIC, qos=1)
        await client.publish(TOPIC, b"hello", qos=1)
        assert await _next_payload(client) == b"hello"


async def test_mosquitto_restart_keeps_persistent_session(mosquitto: Mosquitto) -> None:
    def subscriber() -> aiomqtt.Client:
        return aiomqtt.Client(
            mosquitto.host, mosquitto.port, identifier="durable", clean_session=False
        )

    async with subscriber() as client:
        await client.subscribe(TOPIC, qos=1)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="pub") as publisher:
        await publisher.publish(TOPIC, b"queued while away", qos=1)

    mosquitto.restart()

    async with subscriber() as client:
        assert await _next_payload(client) == b"queued while away"


def test_mosquitto_kill_closes_the_port(mosquitto: Mosquitto) -> None:
    mosquitto.kill()
    assert not mosquitto.running
    with pytest.raises(OSError), socket.create_connection((mosquitto.host, mosquitto.port), 1):
        pass


def test_victoria_metrics_v2_write_naming(victoria_metrics: VictoriaMetrics) -> None:
    victoria_metrics.write_lines(
        "reading,agent=a\\,1,meter=m\\=2,site=s\\ 3 voltage_l1=230.25,energy_active_import=12.5 "
        "1700000000123\n"
    )

    series = victoria_metrics.export('{__name__=~"reading_.*"}')

    labels = {"agent": "a,1", "meter": "m=2", "site": "s 3"}
    assert series == [
        {
            "metric": {"__name__": "reading_energy_active_import", **labels},
            "values": [12.5],
            "timestamps": [1700000000123],
        },
        {
            "metric": {"__name__": "reading_voltage_l1", **labels},
            "values": [230.25],
            "timestamps": [1700000000123],
        },
    ]


def test_victoria_metrics_shows_points_of_the_current_second(
    victoria_metrics: VictoriaMetrics,
) -> None:
    now_ms = time.time_ns() // 1_000_000
    victoria_metrics.write_lines(f"fresh value=1 {now_ms}")

    assert [s["timestamps"] for s in victoria_metrics.export("fresh_value")] == [[now_ms]]


def test_victoria_metrics_restart_keeps_data(victoria_metrics: VictoriaMetrics) -> None:
    victoria_metrics.write_lines("kept value=7 1700000000000")
    victoria_metrics.force_flush()
    port = victoria_metrics.port

    victoria_metrics.restart()

    assert victoria_metrics.port == port
    assert [s["values"] for s in victoria_metrics.export("kept_value")] == [[7]]


def test_missing_binary_fails_instead_of_skipping() -> None:
    with pytest.raises(pytest.fail.Exception, match="make test"):
        require_binary("greengauge-no-such-server")
