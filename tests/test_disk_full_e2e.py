"""A full or read-only data_dir never stops the collector and loses nothing.

mosquitto -> energy-collector (embedded SQLite store, spool and dead letters all in a
data_dir on a 2 MiB tmpfs). The test fills that filesystem while the collector ingests
valid and invalid messages: the collector logs one line per file and condition, holds the
messages back unacknowledged, and resumes by itself when space is freed. Then it fills it
again and kills the collector (SIGKILL) while it holds messages back: the broker delivers
them again to the restarted collector, so none was acknowledged before it was durable.
In the end every message is in the store or the dead letters, once (read back).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from disks import fill, small_filesystem
from paho.mqtt.enums import CallbackAPIVersion
from processes import BIN, Program, wait_for, write_yaml
from servers import Mosquitto, free_port
from test_metrics_e2e import scrape, value

from collector.deadletters import files_of
from greengauge.contract import MeterReading, Quantity, ReadingBatch

SITE, AGENT = "plant-df", "gw-df"
TOPIC = f"greengauge/v1/{SITE}/{AGENT}/readings"
START = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT = 60.0
DISK = 2 * 1024 * 1024
FAULT = "greengauge_collector_disk_fault"


def payload(index: int) -> bytes:
    """Message `index`: every 7th is invalid (dead-lettered), the rest a one-value batch."""
    if index % 7 == 3:
        return f"not json #{index}".encode()
    reading = MeterReading(
        meter="m1", ts=START + timedelta(seconds=index), values={Quantity.POWER_ACTIVE: index}
    )
    return (
        ReadingBatch(site=SITE, agent=AGENT, seq=index, readings=[reading])
        .model_dump_json()
        .encode()
    )


def valid(indexes: range) -> set[int]:
    return {i for i in indexes if i % 7 != 3}


def invalid(indexes: range) -> list[str]:
    return [f"not json #{i}" for i in indexes if i % 7 == 3]


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[paho.Client]:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="disk-full-publisher")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: paho.Client, indexes: range) -> None:
    infos = [client.publish(TOPIC, payload(i), qos=1) for i in indexes]
    for info in infos:
        info.wait_for_publish(TIMEOUT)


def stored(database: Path) -> list[int]:
    """The stored values (each message's index), with repeats if any."""
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        try:
            rows = connection.execute("SELECT value FROM reading ORDER BY ts").fetchall()
        except sqlite3.OperationalError:  # the collector has not made the table yet
            return []
    return [int(value) for (value,) in rows]


def dead_lettered(path: Path) -> list[str]:
    reasons: list[str] = []
    for file in reversed(files_of(path, 10)):
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file} ends in a partial line"
        reasons += [json.loads(line)["payload"] for line in data.splitlines()]
    return reasons


def everything_in(database: Path, dead_letters: Path, indexes: range) -> bool:
    return set(stored(database)) >= valid(indexes) and set(dead_lettered(dead_letters)) >= set(
        invalid(indexes)
    )


def start_collector(config: Path, log: Path) -> Program:
    return Program("energy-collector", ["run", "--config", str(config)], log)


def test_a_full_disk_holds_messages_back_and_the_collector_resumes_by_itself(
    tmp_path: Path, mosquitto: Mosquitto, publisher: paho.Client
) -> None:
    api_port = free_port()
    metrics = f"http://127.0.0.1:{api_port}/metrics"
    with small_filesystem(tmp_path / "data", DISK) as data:
        config = write_yaml(
            tmp_path / "collector.yaml",
            {
                "mqtt": {"url": mosquitto.url, "client_id": "collector-disk-full"},
                "data_dir": str(data),
                "api": {"listen": f"127.0.0.1:{api_port}"},
            },
        )
        database, dead_letters = data / "readings.sqlite", data / "dead-letters.jsonl"
        collector = start_collector(config, tmp_path / "collector.log")
        try:
            # Its session exists from its first subscription on: then nothing is lost.
            wait_for(lambda: "subscribed" in collector.output(), TIMEOUT, "subscribed")
            publish(publisher, range(0, 30))
            wait_for(
                lambda: everything_in(database, dead_letters, range(0, 30)), TIMEOUT, "first 30"
            )

            filler = fill(data)
            publish(publisher, range(30, 130))
            wait_for(
                lambda: 'msg="cannot write' in collector.output(), TIMEOUT, "the disk-full line"
            )
            wait_for(
                lambda: collector.output().count("message dead-lettered") >= 30 // 7 + 15,
                TIMEOUT,
                "held dead letters",
            )
            collector.assert_running()
            full = scrape(metrics)
            faults = {f: value(full, FAULT, file=f) for f in ("spool", "dead letters")}
            assert 1 in faults.values(), faults
            assert (
                value(full, "greengauge_collector_disk_write_failures_total", file="spool") or 0
            ) > 0
            held_stored = set(stored(database))
            assert not valid(range(30, 130)) <= held_stored, "everything stored on a full disk?"
            filler.unlink()
            wait_for(
                lambda: everything_in(database, dead_letters, range(0, 130)), TIMEOUT, "resumed"
            )
            wait_for(lambda: "writable again" in collector.output(), TIMEOUT, "the resumed line")
            collector.assert_running()
            after = scrape(metrics)
            assert (
                value(after, FAULT, file="spool") == value(after, FAULT, file="dead letters") == 0
            )
            assert value(after, "greengauge_collector_dead_letters_pending") == 0
            output = collector.output()
            failures = [line for line in output.splitlines() if 'msg="cannot write' in line]
            # One line per file and condition, not one per message (the spool's and the
            # dead letters' at most; the store's failed writes are what the spool retries).
            assert 1 <= len(failures) <= 2, failures
            assert "disk full" in failures[0]
            assert "Traceback" not in output

            # Again, and now the collector is killed while it holds messages back: what
            # it never acknowledged, the broker delivers again after the restart.
            filler = fill(data)
            publish(publisher, range(130, 200))
            wait_for(
                lambda: collector.output().count('msg="cannot write') > len(failures),
                TIMEOUT,
                "full again",
            )
            collector.stop(signal.SIGKILL)
            filler.unlink()
            collector = start_collector(config, tmp_path / "collector-2.log")
            wait_for(
                lambda: everything_in(database, dead_letters, range(0, 200)),
                TIMEOUT,
                "after restart",
            )
            collector.assert_running()
        finally:
            collector.stop()
        assert sorted(stored(database)) == sorted(valid(range(0, 200)))  # stored once each
        assert sorted(dead_lettered(dead_letters)) == sorted(invalid(range(0, 200)))  # once each


def test_a_read_only_data_dir_is_one_clear_line_and_exit_status_2(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with small_filesystem(tmp_path / "data", 64 * 1024, read_only=True) as data:
        config = write_yaml(
            tmp_path / "collector.yaml", {"mqtt": {"url": mosquitto.url}, "data_dir": str(data)}
        )
        done = subprocess.run(
            [str(BIN / "energy-collector"), "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [
        f"energy-collector: data_dir {data} is not writable: read-only filesystem "
        "(Read-only file system)"
    ]
