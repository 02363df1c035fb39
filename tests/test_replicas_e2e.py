"""Collector replicas on one MQTT 5 shared subscription, through the real broker and store.

Three `energy-collector run` processes share `$share/e2e/...` on mosquitto and write
into one VictoriaMetrics while simulated agents publish the wire format at a steady
rate. Mid-stream one replica is killed with SIGKILL (and brought back by its
"supervisor" with the same id, as compose's restart policy or systemd would: mosquitto
keeps a dead member's share in its session, see docs/architecture.md), a fourth
replica joins, and one is stopped for good with SIGTERM (scaled down) and drained
(`run --drain`: it leaves its group and stores what the broker queued for it).
Afterwards: every reading published is in the store, each (series, ms) once; every
replica's sequence view is one range up to the last seq of every agent, without a gap
ever reported; each replica stored a share (the notices on the broker say who stored
what), the new one included.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from processes import Program, read_json, wait_for, write_yaml
from servers import Mosquitto, VictoriaMetrics

from collector.replicas import STORED_TOPIC

GROUP = "e2e"
SITE = "plant-r"
AGENTS = [f"gw-{i}" for i in range(4)]
METERS = [f"m{i}" for i in range(5)]
RATE = 8.0
"""batches a second per agent"""
SECONDS = 14.0
GRACE = 15.0
"""The share of the replica stopped for good is stored late by its stop and the drain's
start-up (up to ~8 s on a loaded 2-core machine): within the grace, so no gap."""
TIMEOUT = 40.0


def replica_config(tmp_path: Path, name: str, broker: Mosquitto, vm: VictoriaMetrics) -> Path:
    return write_yaml(
        tmp_path / f"{name}.yaml",
        {
            # One client id configured for all: each replica must still get its own.
            "mqtt": {"url": broker.url, "client_id": "collector"},
            "influxdb": {"url": vm.url, "org": "o", "bucket": "b", "token": "t"},
            "data_dir": str(tmp_path / "data"),  # one volume, as compose --scale shares
            "write": {"max_delay": 0.05},
            "ingest": {
                "shared_group": GROUP,
                "replica": name,
                "receive_maximum": 20,
                "sequence_grace_seconds": GRACE,
            },
        },
    )


def batch(agent: str, seq: int, ts: datetime) -> bytes:
    stamp = ts.isoformat().replace("+00:00", "Z")
    readings = [
        {"meter": m, "ts": stamp, "values": {"power_active": seq + i / 10, "voltage_l1": 230.5}}
        for i, m in enumerate(METERS)
    ]
    message = {"schema_version": 1, "site": SITE, "agent": agent, "seq": seq, "readings": readings}
    return json.dumps(message).encode()


class Agents(threading.Thread):
    """Every agent publishes a batch every 1/RATE s for SECONDS, QoS 1, seqs from 0."""

    def __init__(self, broker: Mosquitto) -> None:
        super().__init__(daemon=True)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="e2e-agents")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.published: dict[str, list[int]] = {a: [] for a in AGENTS}
        """agent -> the ms timestamp of each seq"""
        self.started = time.monotonic()

    def run(self) -> None:
        ticks = int(SECONDS * RATE)
        for tick in range(ticks):
            wait = self.started + tick / RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            now = datetime.now(UTC).replace(microsecond=(tick % 1000) * 1000)
            for agent in AGENTS:
                info = self.client.publish(
                    f"greengauge/v1/{SITE}/{agent}/readings", batch(agent, tick, now), qos=1
                )
                info.wait_for_publish(10)
                self.published[agent].append(int(now.timestamp() * 1000))

    def at(self, seconds: float) -> None:
        """Sleep until `seconds` after the agents started."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))


class Notices:
    """Every stored notice on the broker: which replica stored which (agent, seq)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.by_replica: Counter[str] = Counter()
        self.seqs: Counter[tuple[str, int]] = Counter()
        self.lock = threading.Lock()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="e2e-notices")
        client.on_message = self._message
        client.on_connect = lambda c, *_: c.subscribe(STORED_TOPIC, qos=1)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        self.client = client

    def _message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        notice = json.loads(message.payload)
        with self.lock:
            self.by_replica[notice["replica"]] += len(notice["seqs"])
            for _site, agent, seq in notice["seqs"]:
                self.seqs[(agent, seq)] += 1


def subscribed(program: Program, subscriptions: int) -> bool:
    return program.output().count("msg=subscribed") >= subscriptions


def stored(vm: VictoriaMetrics) -> dict[tuple[str, str, str], list[int]]:
    return {
        (s["metric"]["__name__"], s["metric"]["agent"], s["metric"]["meter"]): s["timestamps"]
        for s in vm.export(f'{{__name__=~"reading_.*",site="{SITE}"}}')
    }


def sequence_views(tmp_path: Path, names: list[str]) -> dict[str, dict[str, list[list[int]]]]:
    views = {}
    for name in names:
        path = tmp_path / "data" / "replicas" / name / "sequences.json"
        views[name] = (
            {item["agent"]: item["ranges"] for item in read_json(path)} if path.exists() else {}
        )
    return views


def test_replicas_share_the_stream_and_survive_a_kill_and_a_join(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    names = ["r1", "r2", "r3", "r4"]
    configs = {n: replica_config(tmp_path, n, mosquitto, victoria_metrics) for n in names}

    def start(name: str, run: int = 0, *more: str) -> Program:
        args = ["run", "--config", str(configs[name]), *more]
        return Program("energy-collector", args, tmp_path / f"{name}-{run}.log")

    notices = Notices(mosquitto)
    programs = {n: start(n) for n in names[:3]}
    restarted: Program | None = None
    try:
        wait_for(  # readings and notices
            lambda: all(subscribed(p, 2) for p in programs.values()), TIMEOUT, "subscribed"
        )
        agents = Agents(mosquitto)
        agents.start()
        agents.at(4.0)
        programs["r2"].stop(signal.SIGKILL)  # holding unacknowledged batches
        agents.at(5.0)
        programs["r4"] = start("r4")
        agents.at(6.5)
        restarted = start("r2", 1)
        agents.at(9.0)
        # Scaled down: stopped for good. Mosquitto keeps queueing its share in its
        # session, so the operator drains it (`run --drain` with its id).
        programs["r3"].stop(signal.SIGTERM)
        assert programs["r3"].process.returncode == 0, programs["r3"].output()[-2000:]
        drain = programs["r3-drain"] = start("r3", 1, "--drain")
        agents.join()
        wait_for(lambda: drain.process.poll() is not None, TIMEOUT, "the drain to finish")
        assert drain.process.returncode == 0, drain.output()[-2000:]
        assert "drained" in drain.output()
        expected = {a: list(range(len(agents.published[a]))) for a in AGENTS}
        last = {a: len(seqs) - 1 for a, seqs in expected.items()}

        def whole(view: dict[str, list[list[int]]]) -> bool:
            """One range per agent up to its last seq: no hole. It starts where the
            replica first saw the agent (r4 joined late; the others at its first feed)."""
            return set(view) == set(AGENTS) and all(
                len(ranges) == 1 and ranges[0][1] == last[agent] for agent, ranges in view.items()
            )

        live = ["r1", "r2", "r4"]
        views = wait_for(
            lambda: (v := sequence_views(tmp_path, live)) and all(map(whole, v.values())) and v,
            TIMEOUT,
            "every replica's sequence view to hold every seq of every agent",
        )
        # r4 joined 5 s in: what was stored before is not its to judge.
        assert all(ranges[0][0] > 4 * RATE for ranges in views["r4"].values()), views["r4"]
        store = stored(victoria_metrics)
        for program in [*programs.values(), restarted]:
            if program not in (programs["r2"], programs["r3"], drain):
                program.assert_running()
    finally:
        for program in [*programs.values(), *([restarted] if restarted else [])]:
            program.stop()
        notices.client.loop_stop()

    # Every reading stored, each (series, ms) once.
    for agent in AGENTS:
        for meter in METERS:
            for quantity in ("reading_power_active", "reading_voltage_l1"):
                assert sorted(store[(quantity, agent, meter)]) == agents.published[agent]
    # Every replica stored a share, the one that joined and the restarted one too.
    with notices.lock:
        assert {n for n, count in notices.by_replica.items() if count} == set(names)
        assert set(notices.seqs) == {(a, s) for a, seqs in expected.items() for s in seqs}
        repeats = sum(count - 1 for count in notices.seqs.values())
    # Redelivered batches (r2 was killed holding some) are repeats, never gaps.
    logs = "".join(p.output() for p in [*programs.values(), restarted] if p is not None)
    assert "sequence gap" not in logs
    assert "sequence restarted" not in logs
    print(f"shares {dict(notices.by_replica)}, repeats {repeats}")
