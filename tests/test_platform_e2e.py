"""The running collector uploads to the platform by itself (`platform.schedule: true`):
`energy-collector run` with a broker, the worked day of test_platform_indicators in the
previous month's accounting, and a loopback HTTP server as the platform. The first cycle
uploads the oldest due period first: the previous month, whose total is the worked
day's 612.4034 kgce; every upload is in data_dir/platform.sqlite with the answer."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from notify_receivers import HttpReceiver
from processes import running, wait_for, write_yaml
from servers import Mosquitto
from test_platform_indicators import TZ, plant, seeded

from collector.platform.task import PER_CYCLE

UNIT = "91330000MA2XXXXX0X"


def recorded(data_dir: Path) -> int:
    """Uploads in the record, read from the file as another program would."""
    if not (data_dir / "platform.sqlite").exists():
        return 0
    with contextlib.closing(sqlite3.connect(data_dir / "platform.sqlite")) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM upload").fetchone()[0])
        except sqlite3.OperationalError:  # the table not made yet
            return 0


def test_the_collector_uploads_on_schedule(tmp_path: Path, mosquitto: Mosquitto) -> None:
    today = datetime.now(TZ).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=15)
    seeded(
        tmp_path / "accounting.sqlite", datetime.combine(last_month, datetime.min.time(), TZ)
    ).close()
    with HttpReceiver() as platform:
        platform.script = [(200, b'{"code":0}')] * PER_CYCLE
        config = write_yaml(
            tmp_path / "collector.yaml",
            {
                "mqtt": {"url": mosquitto.url},
                "data_dir": str(tmp_path),
                "accounting": plant().model_dump(mode="json", exclude_unset=True),
                "platform": {
                    "sites": {"p1": {"unit_code": UNIT}},
                    "transport": {"kind": "https_json", "url": platform.url + "/up"},
                    "schedule": True,
                    "settle": 0,
                },
            },
        )
        with running("energy-collector", ["run", "--config", str(config)], tmp_path / "c.log") as c:
            wait_for(lambda: recorded(tmp_path) >= PER_CYCLE, 30, "the first cycle's uploads")
            c.assert_running()
        first = platform.received[0].json()
    assert (first["period"], first["label"]) == ("month", last_month.strftime("%Y-%m"))
    total = next(x for x in first["indicators"] if x["key"] == "total_energy")
    assert total["value"] == pytest.approx(612.4034)
    assert first["unit_code"] == UNIT
    with contextlib.closing(sqlite3.connect(tmp_path / "platform.sqlite")) as conn:
        kept = conn.execute("SELECT period, label, ok, answer FROM upload ORDER BY id").fetchall()
    assert len(kept) >= PER_CYCLE
    assert kept[0] == ("month", last_month.strftime("%Y-%m"), 1, '{"code":0}')
