"""`energy-collector import` as users run it: a subprocess, real files, real stores.

A day of one-minute readings of a counter (kWh, given in Wh) and a power meter (W,
given in kW) is written as CSV, imported into the embedded SQLite store and into
VictoriaMetrics (InfluxDB write API), and read back; the accounting's total for the
day must be the counter's advance. Importing the same files again changes nothing:
not the readings, not the derived points, not the accounting.
"""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from processes import BIN, write_yaml
from servers import VictoriaMetrics, free_port

from collector.accounting.db import AccountingDB

SITE = "plant-imp"
ZONE = ZoneInfo("Asia/Shanghai")
MINUTES = 24 * 60
DAY = datetime.now(ZONE).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def counter_wh(minute: int) -> float:
    """Energy register in Wh: 50 to 150 kW, whole Wh (as meters give them)."""
    return 12_345_000.0 + sum(1000 * (50 + (m * 37) % 100) / 60 for m in range(minute)) // 1


def power_kw(minute: int) -> float:
    return round(50 + (minute * 37) % 100 + 0.25, 2)


def day_files(
    tmp_path: Path, day: datetime, name: str = "day", first: int = 0
) -> tuple[Path, Path]:
    """The counter in the long layout (naive local times, Wh); power in the wide one.
    `first`: the minute of the counter's model the day starts at (a later day continues
    the counter, so the reading both days hold at midnight is one value)."""
    long = tmp_path / f"{name}-energy.csv"
    wide = tmp_path / f"{name}-power.csv"
    with long.open("w", newline="") as out:
        out.write("time,meter,quantity,value,unit\r\n")
        for m in range(MINUTES + 1):
            ts = (day + timedelta(minutes=m)).replace(tzinfo=None).isoformat(sep=" ")
            out.write(f"{ts},incomer,energy_active_import,{counter_wh(first + m):.0f},Wh\r\n")
    with wide.open("w") as out:
        out.write("time,incomer/power_active[kW]\n")
        for m in range(MINUTES):
            out.write(f"{(day + timedelta(minutes=m)).isoformat()},{power_kw(first + m)}\n")
    return long, wide


def config(tmp_path: Path, influx: str | None = None) -> Path:
    data: dict[str, Any] = {
        "mqtt": {"url": "mqtt://127.0.0.1:1"},  # never connected to by `import`
        "data_dir": str(tmp_path / "data"),
        "accounting": {
            "sites": [
                {
                    "id": SITE,
                    "timezone": "Asia/Shanghai",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [{"id": "incomer", "carrier": "electricity", "role": "boundary"}],
                }
            ]
        },
    }
    if influx is not None:
        data["influxdb"] = {"url": influx, "org": "test", "bucket": "test", "token": "t"}
    return write_yaml(tmp_path / "collector.yaml", data)


def import_(
    yaml: Path, *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "energy-collector"), "import", "--config", str(yaml), "--site", SITE]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


def readings(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "data" / "readings.sqlite") as db:
        return db.execute("SELECT * FROM reading ORDER BY meter, quantity, ts").fetchall()


def points(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "data" / "readings.sqlite") as db:
        return db.execute("SELECT * FROM point ORDER BY measurement, series, field, ts").fetchall()


def accounted(tmp_path: Path, day: datetime) -> float:
    """The accounting's kWh of the incomer over the day."""
    db = AccountingDB(tmp_path / "data" / "accounting.sqlite")
    try:
        start = round(day.timestamp() * 1000)
        return db.totals(SITE, ["incomer"], start, start + 86_400_000)[0]
    finally:
        db.close()


def expected_readings() -> list[tuple[Any, ...]]:
    def ms(m: int) -> int:
        return round((DAY + timedelta(minutes=m)).timestamp() * 1000)

    energy = [
        (SITE, "import", "incomer", "energy_active_import", ms(m), counter_wh(m) / 1000)
        for m in range(MINUTES + 1)
    ]
    power = [
        (SITE, "import", "incomer", "power_active", ms(m), power_kw(m) * 1000)
        for m in range(MINUTES)
    ]
    return energy + power


def test_a_day_is_stored_and_accounted_and_importing_it_again_changes_nothing(
    tmp_path: Path,
) -> None:
    yaml = config(tmp_path)
    long, wide = day_files(tmp_path, DAY)
    done = import_(yaml, "--timezone", "Asia/Shanghai", long, wide)
    assert done.returncode == 0, done.stderr
    assert f"rows accepted    {2 * MINUTES + 1}\n" in done.stdout
    stored = readings(tmp_path)
    assert stored == expected_readings()  # to the last bit: Wh / 1000, kW * 1000
    advance = (counter_wh(MINUTES) - counter_wh(0)) / 1000
    assert accounted(tmp_path, DAY) == pytest.approx(advance, rel=1e-9)
    derived = points(tmp_path)
    assert {p[0] for p in derived} == {"energy_interval"}  # a day long settled: all written

    again = import_(yaml, "--timezone", "Asia/Shanghai", long, wide)
    assert again.returncode == 0, again.stderr
    assert readings(tmp_path) == stored
    assert points(tmp_path) == derived
    assert accounted(tmp_path, DAY) == pytest.approx(advance, rel=1e-9)


def test_a_day_imported_after_later_readings_were_counted_is_accounted(tmp_path: Path) -> None:
    yaml = config(tmp_path)
    later = day_files(tmp_path, DAY + timedelta(days=1), "later", MINUTES)
    assert import_(yaml, "--timezone", "Asia/Shanghai", *later).returncode == 0
    assert import_(yaml, "--timezone", "Asia/Shanghai", *day_files(tmp_path, DAY)).returncode == 0
    advance = (counter_wh(MINUTES) - counter_wh(0)) / 1000
    assert accounted(tmp_path, DAY) == pytest.approx(advance, rel=1e-9)


def test_refused_rows_are_listed_by_line_and_the_others_stored(tmp_path: Path) -> None:
    yaml = config(tmp_path)
    csv = tmp_path / "mixed.csv"
    ts = DAY.isoformat()
    csv.write_bytes(
        "time,meter,quantity,value,unit\n"
        f"{ts},m1,power_active,1.5,kW\n"
        f"{ts},m1,power_active,1.5,kWh\n"
        f"{DAY.replace(tzinfo=None).isoformat()},m1,energy_active_import,1,kWh\n"
        f"{ts},m1,energy_active_import,1,kWh\n".encode()
        + f"{ts},m\xff,count,1,1\n".encode("latin-1")
        + f"{ts},m1,power_active,2,kW\n".encode()
    )
    refusals = tmp_path / "refused.txt"
    done = import_(yaml, "--refusals", refusals, "--show", "1", csv)
    assert done.returncode == 1, done.stderr
    lines = refusals.read_text().splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{csv}:{n}" for n in (3, 4, 6, 7)]
    assert lines[0] == f"{csv}:3: column 'unit': unit 'kWh': power_active is in 'W' or one " + (
        "convertible to it ('kW', 'MW')"
    )
    assert "has no zone" in lines[1] and "not UTF-8" in lines[2]
    assert lines[3].endswith("is 2000, line 2 said 1500")
    assert "rows read        6\n" in done.stdout and "rows accepted    2\n" in done.stdout
    assert f"first refusals:\n  {lines[0]}\n  ... and 3 more" in done.stdout
    assert [(r[2], r[3], r[5]) for r in readings(tmp_path)] == [
        ("m1", "energy_active_import", 1.0),
        ("m1", "power_active", 1500.0),
    ]


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        ((), "time,m1/watts[W]\n", "f.csv:1: column 2 'm1/watts[W]': unknown quantity"),
        (("--timezone", "Mars/Base"), "time,m1/power_active[W]\n", "unknown zone 'Mars/Base'"),
        (("--agent", "a b"), "time,m1/power_active[W]\n", "--agent: invalid id"),
        (("--show", "-1"), "time,m1/power_active[W]\n", "--show: not negative"),
        (("--encoding", "klingon"), "time,m1/power_active[W]\n", "unknown encoding 'klingon'"),
    ],
)
def test_a_usage_error_exits_2_and_stores_nothing(
    tmp_path: Path, args: tuple[str, ...], content: str, message: str
) -> None:
    csv = tmp_path / "f.csv"
    csv.write_text(content + f"{DAY.isoformat()},1\n")
    done = import_(config(tmp_path), *args, "f.csv", cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
    database = tmp_path / "data" / "readings.sqlite"
    assert not database.exists() or readings(tmp_path) == []


def test_a_file_in_another_encoding_is_read_with_encoding(tmp_path: Path) -> None:
    csv = tmp_path / "gbk.csv"
    csv.write_bytes(f"time,进线/power_active[kW]\n{DAY.isoformat()},1.5\n".encode("gbk"))
    yaml = config(tmp_path)
    done = import_(yaml, csv)
    assert done.returncode == 2
    assert f"{csv}:1: bytes that are not UTF-8 (another encoding: see --encoding)" in done.stderr
    assert import_(yaml, "--encoding", "gbk", csv).returncode == 0
    assert [(r[2], r[5]) for r in readings(tmp_path)] == [("进线", 1500.0)]


def test_a_store_down_stops_the_import_with_exit_2_saying_where(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text(f"time,m1/power_active[W]\n{DAY.isoformat()},1\n")
    done = import_(config(tmp_path, f"http://127.0.0.1:{free_port()}"), csv)
    assert done.returncode == 2
    assert f"{csv} from line 2 on is not imported" in done.stderr
    assert "importing again stores nothing twice" in done.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    done = import_(config(tmp_path), tmp_path / "nope.csv")
    assert done.returncode == 2
    assert f"{tmp_path / 'nope.csv'}: not a file" in done.stderr


def test_a_day_is_stored_in_victoria_metrics_once(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    yaml = config(tmp_path, victoria_metrics.url)
    long, wide = day_files(tmp_path, DAY)
    for _ in range(2):
        done = import_(yaml, "--timezone", "Asia/Shanghai", long, wide)
        assert done.returncode == 0, done.stderr
    found = {
        item["metric"]["__name__"]: list(zip(item["timestamps"], item["values"], strict=True))
        for item in victoria_metrics.export('{__name__=~"reading_.*"}')
        if item["metric"] == {**item["metric"], "site": SITE, "agent": "import", "meter": "incomer"}
    }
    want: dict[str, list[tuple[int, float]]] = {}
    for *_, quantity, ts, value in expected_readings():
        want.setdefault(f"reading_{quantity}", []).append((ts, value))
    assert found.keys() == want.keys()
    for name, series in want.items():
        assert found[name] == series
    energy = victoria_metrics.export("energy_interval_amount")
    total = sum(sum(item["values"]) for item in energy)
    assert total == pytest.approx((counter_wh(MINUTES) - counter_wh(0)) / 1000, rel=1e-9)


def test_progress_is_shown_on_stderr_for_a_long_file(tmp_path: Path) -> None:
    csv = tmp_path / "long.csv"
    start = datetime.now(UTC) - timedelta(days=300)
    with csv.open("w") as out:
        out.write("time,m1/power_active[W],m2/power_active[W]\n")
        for s in range(200_000):
            out.write(f"{(start + timedelta(seconds=s)).isoformat()},{s},{-s}\n")
    done = import_(config(tmp_path), csv)
    assert done.returncode == 0, done.stderr
    assert "import: " in done.stderr and " rows (" in done.stderr
    assert "rows accepted    200000\n" in done.stdout
    assert "values           400000  (stored: 400000;" in done.stdout


def test_from_store_on_victoria_metrics_stops_naming_the_store(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    # VictoriaMetrics takes InfluxDB writes but has no Flux query API: reading back is
    # refused with the server's answer, not taken for an empty store.
    yaml = config(tmp_path, victoria_metrics.url)
    start = DAY.isoformat()
    end = (DAY + timedelta(days=1)).isoformat()
    done = import_(yaml, "--from-store", "--from", start, "--to", end)
    assert done.returncode == 2, done.stdout
    assert (
        f"stopped: {victoria_metrics.url}: cannot read bucket 'test' of org 'test' through "
        "the Flux query API (HTTP 400): " in done.stderr
    )
    assert "importing again accounts nothing twice" in done.stderr
    assert "values accounted 0\n" in done.stdout
