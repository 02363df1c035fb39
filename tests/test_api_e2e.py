"""The API served by `energy-collector run` beside the ingest, through a real broker:
agents' retained status, a reading on the live stream within a second of its message,
the 401 counted on /metrics, the production write reaching the accounting."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.publish
import pytest
from processes import running, wait_for, write_yaml
from servers import Mosquitto, free_port

from greengauge.contract import (
    AgentState,
    AgentStatus,
    MeterHealth,
    MeterReading,
    MeterState,
    OutboxHealth,
    Quantity,
    ReadingBatch,
)

SITE = "plant-api"
READ = "e2e-read-token-0123456789"
WRITE = "e2e-write-token-0123456789"
AUTH = {"Authorization": f"Bearer {READ}"}


def config(tmp_path: Path, broker: Mosquitto, port: int, tokens: bool = True) -> Path:
    line = {
        "id": "line-1",
        "product": "brackets",
        "output_unit": "pieces",
        "output": {"mes": True},
        "benchmark": {
            "custom": {
                "name": "t",
                "unit": "kgce/pieces",
                "benchmark": 0.02,
                "baseline": 0.03,
                "source": "test",
            }
        },
    }
    return write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {"url": broker.url, "client_id": "collector-api-e2e"},
            "data_dir": str(tmp_path / "data"),
            "write": {"max_delay": 0.05},
            "api": {
                "listen": f"127.0.0.1:{port}",
                "summary_interval": 0.5,
                **(
                    {"read_token": "${TEST_API_READ}", "write_token": "${TEST_API_WRITE}"}
                    if tokens
                    else {}
                ),
            },
            "accounting": {
                "interval": 0.2,
                "sites": [
                    {
                        "id": SITE,
                        "grid_factor": {"series": "national_average", "year": 2023},
                        "meters": [{"id": "m1", "carrier": "electricity", "line": "line-1"}],
                        "lines": [line],
                    }
                ],
            },
        },
    )


def publish(broker: Mosquitto, topic: str, payload: bytes, retain: bool = False) -> None:
    paho.mqtt.publish.single(topic, payload, qos=1, retain=retain, port=broker.port)


def test_api_beside_the_ingest(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_API_READ", READ)
    monkeypatch.setenv("TEST_API_WRITE", WRITE)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    status = AgentStatus(
        site=SITE,
        agent="gw",
        state=AgentState.ONLINE,
        ts=datetime.now(UTC),
        meters={"m1": MeterHealth(state=MeterState.ONLINE, reads=3, errors={"timeout": 1})},
        outbox=OutboxHealth(depth=4),
    )
    # Retained before the collector starts: it must still know the agent.
    publish(mosquitto, f"greengauge/v1/{SITE}/gw/status", status.model_dump_json().encode(), True)
    args = ["run", "--config", str(config(tmp_path, mosquitto, port))]
    with running("energy-collector", args, tmp_path / "collector.log") as collector:
        wait_for(lambda: _up(base), 20, "the API to answer")
        assert httpx.get(f"{base}/api/v1/fleet").status_code == 401
        assert (
            httpx.get(f"{base}/api/v1/fleet", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )

        agents = wait_for(
            lambda: httpx.get(f"{base}/api/v1/sites/{SITE}/meters", headers=AUTH).json()["agents"],
            10,
            "the retained status",
        )
        assert agents[0]["state"] == "online" and agents[0]["outbox_depth"] == 4

        received: list[tuple[float, dict[str, object]]] = []
        with httpx.stream(
            "GET", f"{base}/api/v1/stream", params={"site": SITE}, headers=AUTH, timeout=10
        ) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"
            now = datetime.now(UTC)
            sent_at = time.monotonic()
            for seq, minutes in enumerate((2, 1, 0)):
                batch = ReadingBatch(
                    site=SITE,
                    agent="gw",
                    seq=seq,
                    readings=[
                        MeterReading(
                            meter="m1",
                            ts=now - timedelta(minutes=minutes),
                            values={
                                Quantity.ENERGY_ACTIVE_IMPORT: 100.0 + 5 * (2 - minutes),
                                Quantity.POWER_ACTIVE: 300_000.0,
                            },
                        )
                    ],
                )
                publish(
                    mosquitto,
                    f"greengauge/v1/{SITE}/gw/readings",
                    batch.model_dump_json().encode(),
                )
            event = ""
            for line in lines:
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "reading":
                    received.append((time.monotonic() - sent_at, json.loads(line[6:])))
                    if len(received) == 3:
                        break
        assert received[0][0] < 1.0, f"first reading on the stream after {received[0][0]:.2f} s"
        assert received[0][1]["readings"][0]["meter"] == "m1"  # type: ignore[index]

        # Output for the last 2 minutes: 10 kWh x 0.1229 kgce / 2 pieces: above baseline.
        body = {
            "kind": "output",
            "site": SITE,
            "line": "line-1",
            "start": (now - timedelta(minutes=2)).isoformat(),
            "end": now.isoformat(),
            "quantity": 2,
            "unit": "pieces",
        }
        write = {"Authorization": f"Bearer {WRITE}"}
        url = f"{base}/api/v1/sites/{SITE}/production"
        assert httpx.post(url, json=body, headers=AUTH).status_code == 403
        assert httpx.post(url, json={**body, "unit": "t"}, headers=write).status_code == 422
        assert httpx.post(url, json=body, headers=write).status_code == 202

        def standing() -> object:
            lines = httpx.get(f"{base}/api/v1/sites/{SITE}/lines", headers=AUTH).json()
            w = lines[0]["windows"]["rolling_1h"]
            return w["status"] == "above_baseline" and w

        window = wait_for(standing, 10, "line-1 above baseline")
        assert window["kwh"] > 0

        metrics = httpx.get(f"{base}/metrics", headers=AUTH).text
        assert 'greengauge_api_unauthorized_total{reason="missing"} 1.0' in metrics
        assert 'greengauge_api_unauthorized_total{reason="invalid"} 1.0' in metrics
        assert 'greengauge_api_unauthorized_total{reason="read_only"} 1.0' in metrics
        assert "greengauge_collector_messages_total 3.0" in metrics
        assert "greengauge_collector_write_seconds_count" in metrics
        assert httpx.get(f"{base}/openapi.json").status_code == 401
        openapi = httpx.get(f"{base}/openapi.json", headers=AUTH).json()
        assert "/api/v1/stream" in openapi["paths"]
        collector.assert_running()
    assert READ not in collector.output() and WRITE not in collector.output()
    assert "api listening" in collector.output()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_open_api_keeps_other_web_pages_out(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tokens, on loopback: a page on another site, in the operator's browser, cannot
    write production figures (a form-like text/plain POST, or JSON with its Origin), nor
    read through a rebound DNS name; the dashboard's own origin can write."""
    monkeypatch.delenv("GREENGAUGE_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GREENGAUGE_API_WRITE_TOKEN", raising=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/api/v1/sites/{SITE}/production"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    body = json.dumps(
        {
            "kind": "output",
            "site": SITE,
            "line": "line-1",
            "start": (now - timedelta(minutes=2)).isoformat(),
            "end": now.isoformat(),
            "quantity": 2,
            "unit": "pieces",
        }
    )
    evil = "http://evil.example"
    args = ["run", "--config", str(config(tmp_path, mosquitto, port, tokens=False))]
    with running("energy-collector", args, tmp_path / "collector.log") as collector:
        wait_for(lambda: _up(base), 20, "the API to answer")
        plain = {"Origin": evil, "Content-Type": "text/plain"}
        assert httpx.post(url, content=body, headers=plain).status_code == 403
        as_json = {"Origin": evil, "Content-Type": "application/json"}
        assert httpx.post(url, content=body, headers=as_json).status_code == 403
        own = {"Origin": base, "Content-Type": "text/plain"}
        assert httpx.post(url, content=body, headers=own).status_code == 415
        rebound = {"Host": f"evil.example:{port}"}
        assert httpx.get(f"{base}/api/v1/fleet", headers=rebound).status_code == 400
        assert httpx.get(f"{base}/openapi.json", headers=rebound).status_code == 400

        def output() -> object:
            lines = httpx.get(f"{base}/api/v1/sites/{SITE}/lines").json()
            return lines[0]["windows"]["rolling_1h"]["output"]

        assert not output()  # nothing recorded
        own = {"Origin": base, "Content-Type": "application/json"}
        assert httpx.post(url, content=body, headers=own).status_code == 202
        assert wait_for(output, 10, "the output recorded") == 2
        metrics = httpx.get(f"{base}/metrics").text
        assert 'greengauge_api_unauthorized_total{reason="origin"} 2.0' in metrics
        assert 'greengauge_api_unauthorized_total{reason="host"} 2.0' in metrics
        collector.assert_running()
