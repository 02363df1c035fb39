"""A poison message between valid ones, on every topic, through real servers.

mosquitto -> energy-collector (receive maximum 5, API and plant model on) ->
victoria-metrics. On each topic the collector subscribes to (readings, agent status, MES
production) valid messages are published with poison among them: a time valid in ISO
8601 that overflows in UTC (which once escaped validation, held back every later
acknowledgement and stopped the broker's deliveries after the receive maximum), a key
twice, a seq beyond 64 bits, a time before 1970. Each poison must be dead-lettered, every
valid message used (read back from the store, the API, the accounting database), many
more than the receive maximum of them, and all acknowledged: a restarted collector gets
nothing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish
import pytest
from processes import Program, running, wait_for, write_yaml
from servers import Mosquitto, VictoriaMetrics, free_port

from collector.ingest import Ingest, Message
from greengauge.common.broker import BrokerSettings

SITE, AGENT = "plant-poison", "gw-1"
RECEIVE_MAXIMUM = 5
OVERFLOWS = "0001-01-01T00:00:00+01:00"
TIMEOUT = 40.0


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def config(tmp_path: Path, broker: Mosquitto, database: VictoriaMetrics, port: int) -> Path:
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
            "mqtt": {"url": broker.url, "client_id": "collector-poison"},
            "influxdb": {
                "url": database.url,
                "org": "plant",
                "bucket": "energy",
                "token": "not-checked",
            },
            "data_dir": str(tmp_path / "data"),
            "write": {"max_delay": 0.05},
            "ingest": {"receive_maximum": RECEIVE_MAXIMUM},
            "api": {"listen": f"127.0.0.1:{port}"},
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


def readings(seq: int, ts: str) -> bytes:
    reading = {"meter": "m1", "ts": ts, "values": {"power_active": float(seq)}}
    body = {"schema_version": 1, "site": SITE, "agent": AGENT, "seq": seq, "readings": [reading]}
    return json.dumps(body).encode()


def status(agent: str, ts: str) -> bytes:
    body = {"schema_version": 1, "site": SITE, "agent": agent, "state": "online", "ts": ts}
    return json.dumps(body).encode()


def output(start: datetime, ts: str | None = None) -> bytes:
    body = {
        "kind": "output",
        "site": SITE,
        "line": "line-1",
        "start": ts or iso(start),
        "end": iso(start + timedelta(minutes=1)),
        "quantity": 10.0,
        "unit": "pieces",
    }
    return json.dumps(body).encode()


def key_twice(payload: bytes, key: str) -> bytes:
    return b'{"' + key.encode() + b'": 1, ' + payload[1:]


def messages(now: datetime) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """Every message in publishing order, and what the valid ones should leave behind."""
    readings_topic = f"greengauge/v1/{SITE}/{AGENT}/readings"
    ts = [now - timedelta(seconds=60) + timedelta(milliseconds=100 * i) for i in range(30)]
    poison = {
        3: readings(3, OVERFLOWS),
        10: key_twice(readings(10, iso(ts[10])), "seq"),
        17: readings(10**30, iso(ts[17])),
        24: readings(24, "1969-12-31T23:59:59Z"),
    }
    out = [(readings_topic, poison.get(i, readings(i, iso(ts[i])))) for i in range(30)]
    stored = [int(t.timestamp() * 1000) for i, t in enumerate(ts) if i not in poison]

    agents = [f"gw-{c}" for c in "abcdefgh"]
    for i, agent in enumerate(agents):
        topic = f"greengauge/v1/{SITE}/{agent}/status"
        out.append((topic, status(agent, OVERFLOWS if i == 1 else iso(now))))
    shown = [a for i, a in enumerate(agents) if i != 1]

    production_topic = f"greengauge/v1/{SITE}/production"
    starts = [now - timedelta(minutes=30 - i) for i in range(8)]
    bad = {2: output(starts[2], OVERFLOWS), 5: key_twice(output(starts[5]), "quantity")}
    out += [(production_topic, bad.get(i, output(s))) for i, s in enumerate(starts)]
    recorded = [int(s.timestamp() * 1000) for i, s in enumerate(starts) if i not in bad]
    return out, {
        "stored": stored,
        "agents": shown,
        "recorded": recorded,
        "dead": len(poison) + 1 + len(bad),
    }


def stored_ts(database: VictoriaMetrics) -> list[int]:
    series = database.export(f'{{__name__="reading_power_active", site="{SITE}"}}')
    return sorted(t for s in series for t in s["timestamps"])


def recorded_starts(data: Path) -> list[int]:
    with sqlite3.connect(data / "accounting.sqlite") as db:
        rows = db.execute("SELECT start FROM mes_output WHERE site = ?", (SITE,)).fetchall()
    return sorted(start for (start,) in rows)


def dead_letters(data: Path) -> list[dict[str, str]]:
    path = data / "dead-letters.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def agents_shown(base: str) -> list[str]:
    answer = httpx.get(f"{base}/api/v1/sites/{SITE}/meters")
    return sorted(a["id"] for a in answer.json()["agents"]) if answer.status_code == 200 else []


def subscribed(collector: Program) -> bool:
    # Readings, status and MES: each subscription logs it once per connection.
    return collector.output().count("subscribed") >= 3


def test_poison_on_every_topic_is_dead_lettered_and_ingest_goes_on(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    args = ["run", "--config", str(config(tmp_path, mosquitto, victoria_metrics, port))]
    published, expected = messages(datetime.now(UTC))
    with running("energy-collector", args, tmp_path / "collector.log") as collector:
        wait_for(lambda: subscribed(collector), TIMEOUT, "the collector's 3 subscriptions")
        paho.mqtt.publish.multiple(
            [{"topic": t, "payload": p, "qos": 1} for t, p in published], port=mosquitto.port
        )
        wait_for(
            lambda: stored_ts(victoria_metrics) == expected["stored"],
            TIMEOUT,
            "every valid reading batch in the store",
        )
        wait_for(lambda: agents_shown(base) == expected["agents"], TIMEOUT, "the valid statuses")
        wait_for(
            lambda: recorded_starts(data) == expected["recorded"],
            TIMEOUT,
            "the valid production reports",
        )
        dead = wait_for(
            lambda: len(found := dead_letters(data)) >= expected["dead"] and found,
            TIMEOUT,
            "the poison in the dead letters",
        )
        metrics = httpx.get(f"{base}/metrics").text
        collector.assert_running()
    reasons = [d["reason"] for d in dead]
    assert len(dead) == expected["dead"], reasons
    assert sum("out of range in UTC" in r for r in reasons) == 3  # one per topic
    assert sum("appears more than once" in r for r in reasons) == 2
    assert any("seq: Input should be less than or equal to" in r for r in reasons)
    assert any("readings[0] (meter 'm1') ts 1969-12-31T23:59:59+00:00" in r for r in reasons)
    assert 'greengauge_collector_messages_rejected_total{topic="readings"} 4.0' in metrics
    assert 'greengauge_collector_messages_rejected_total{topic="status"} 1.0' in metrics
    assert 'greengauge_collector_messages_rejected_total{topic="production"} 2.0' in metrics
    assert "greengauge_collector_messages_failed_total{" not in metrics

    # Everything was acknowledged: a restarted collector is sent nothing again. The broker
    # sends what it kept for the session first, so once a new batch is stored, nothing
    # kept came before it.
    later = datetime.now(UTC)
    with running("energy-collector", args, tmp_path / "collector-2.log") as again:
        wait_for(lambda: subscribed(again), TIMEOUT, "the restarted collector's subscriptions")
        paho.mqtt.publish.single(
            f"greengauge/v1/{SITE}/{AGENT}/readings",
            readings(30, iso(later)),
            qos=1,
            port=mosquitto.port,
        )
        wait_for(
            lambda: stored_ts(victoria_metrics)[-1] == int(later.timestamp() * 1000),
            TIMEOUT,
            "a batch published after the restart",
        )
        again.assert_running()
    assert len(dead_letters(data)) == expected["dead"]


async def test_a_message_holding_the_acks_is_logged_with_its_topic_and_stage(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    held: list[Message] = []

    def deliver(message: Message) -> None:
        message.progress.stage = "store"  # and never acknowledged, as a wedged write would
        held.append(message)

    settings = BrokerSettings(url=mosquitto.url)
    ingest = Ingest(settings, "collector-watchdog", "greengauge/v1/+/+/readings", deliver, 5, 0.4)
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.to_thread(wait_for, lambda: ingest.connected, TIMEOUT, "the subscription")
        topic = f"greengauge/v1/{SITE}/{AGENT}/readings"
        paho.mqtt.publish.single(topic, b"{}", qos=1, port=mosquitto.port)
        await asyncio.to_thread(wait_for, lambda: ingest.overdue, TIMEOUT, "the overdue ack")
        await asyncio.sleep(1.0)  # named once, not on every check
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    [record] = [r for r in caplog.records if r.getMessage().startswith("acknowledgement overdue")]
    assert record.levelno == logging.ERROR
    assert (record.kv["topic"], record.kv["stage"]) == (topic, "store")  # type: ignore[attr-defined]
    assert ingest.overdue == 1 and len(held) == 1
