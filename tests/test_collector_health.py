"""The collector's health file (collector/health.py) and the image's health check
(deploy/healthcheck.py) reading it: healthy only while the collector is subscribed to
the broker, its store takes writes and its files can be written."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from processes import running, wait_for, write_yaml
from servers import Mosquitto

from collector.health import HEALTH_FILE, HealthFile, assess
from collector.spool import Spool
from collector.stats import DiskStat, Stats
from greengauge.common.files import DiskFault

ROOT = Path(__file__).resolve().parent.parent
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"


def healthcheck(path: Path) -> tuple[int, str]:
    done = subprocess.run(
        ["python3", str(HEALTHCHECK)],
        env={"GREENGAUGE_HEALTH_FILE": str(path)},
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stderr


@given(
    connected=st.booleans(),
    depths=st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
    faults=st.lists(st.sampled_from(["spool", "sequences", "dead letters"]), unique=True),
)
def test_healthy_exactly_when_subscribed_draining_and_writable(
    connected: bool, depths: list[int], faults: list[str]
) -> None:
    health = assess(connected, depths, faults)
    shrank = any(depths[i + 1] < depths[i] for i in range(len(depths) - 1))
    stuck = depths[-1] > 0 and len(depths) > 1 and not shrank
    assert health.spool_stuck == stuck
    assert (health.problems == []) == (connected and not stuck and not faults)
    report = json.loads(health.document(datetime.now(UTC)))
    assert report["healthy"] == (health.problems == [])
    assert report["problems"] == health.problems
    assert len(health.problems) == (not connected) + stuck + len(faults)


def test_a_spool_that_fills_and_does_not_drain_is_the_stores_fault(tmp_path: Path) -> None:
    """The collector's own spool (SQLite): filling for a whole window is unhealthy,
    draining again is healthy; the broker state and the disks are observed as they are."""
    spool = Spool(tmp_path / "spool.sqlite")
    connected = [True]
    disk = DiskFault("sequences", tmp_path / "sequences.json")
    watch = HealthFile(
        lambda: Stats(
            mqtt_connected=connected[0],
            spool_depth=spool.depth,
            disks=[DiskStat(disk.name, disk.failing, disk.failures)],
        ),
        tmp_path / HEALTH_FILE,
        interval=1,
        window=3,
    )
    try:
        depths = []
        for _ in range(4):  # the store refuses every write: the spool only grows
            spool.append([("greengauge/v1/s/a/readings", b"{}", 1)])
            health = watch.sample()
            depths.append(health.spool_depth)
        assert depths == [1, 2, 3, 4]
        assert health.problems == [
            "store: 4 messages spooled and not draining (the store refuses or times out writes)"
        ]
        (oldest,) = spool.oldest(max_values=1)
        spool.remove_through(oldest.id)  # the store takes writes again: replay drains
        assert watch.sample().problems == []
        connected[0] = False
        disk.failed(OSError(28, "No space left on device"))
        assert watch.sample().problems == [
            "ingest: not subscribed to the broker",
            "disk: cannot write sequences",
        ]
    finally:
        spool.close()


def test_the_running_collector_reports_the_broker_and_the_health_check_reads_it(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    data = tmp_path / "data"
    config = write_yaml(
        tmp_path / "collector.yaml", {"mqtt": {"url": broker.url}, "data_dir": str(data)}
    )
    health = data / HEALTH_FILE

    def report() -> dict[str, object] | None:
        try:
            loaded: dict[str, object] = json.loads(health.read_text())
        except (OSError, ValueError):
            return None
        return loaded

    try:
        with running("energy-collector", ["run", "--config", str(config)], tmp_path / "c.log") as c:
            wait_for(lambda: (report() or {}).get("broker_connected") is True, 20, "healthy")
            assert report() is not None and report()["healthy"] is True  # type: ignore[index]
            assert healthcheck(health) == (0, "")
            broker.stop()
            wait_for(lambda: (report() or {}).get("healthy") is False, 20, "unhealthy")
            code, error = healthcheck(health)
            assert (code, error) == (1, "health: ingest: not subscribed to the broker\n")
            c.assert_running()
    finally:
        broker.stop()
