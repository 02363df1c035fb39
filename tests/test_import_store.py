"""`energy-collector import --from-store`: readings already in the embedded store accounted.

A collector that ran without a plant model stored two days of a counter (one agent, a
stretch sent again by a second); the import of one day from the store must give the
accounting exactly the minutes the live path gives for the same readings, change nothing
when run again, leave the readings outside the period alone, refuse (and list) what a live
value would be refused for, and name every usage error. The InfluxDB path: its Flux text
and the records it turns into readings.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from processes import write_yaml

from collector.accounting.db import AccountingDB, MinuteRow
from collector.accounting.engine import Accounting
from collector.batch import Batch, epoch_millis
from collector.cli import main
from collector.config import load_config
from collector.importer_store import StoreOptions, StoreSummary, account
from collector.stores import StoreError
from collector.stores.readback import Series, SqliteReadings, Stored, flux_readings, stored_of
from collector.stores.sqlite import SqliteStore
from greengauge.contract import MeterReading, Quantity, ReadingBatch

SITE = "plant-st"
E = Quantity.ENERGY_ACTIVE_IMPORT
P = Quantity.POWER_ACTIVE
DAY = datetime(2026, 10, 14, 16, tzinfo=UTC)  # 15 October 00:00 in Asia/Shanghai
MINUTES = 24 * 60


def kwh(minute: int) -> float:
    """The incomer's register: 60 to 159 kW, so 1 to 2.65 kWh a minute."""
    return 5_000.0 + sum((60 + (m * 37) % 100) / 60 for m in range(minute))


def config(tmp_path: Path) -> Path:
    return write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {"url": "mqtt://127.0.0.1:1"},  # never connected to by `import`
            "data_dir": str(tmp_path / "data"),
            "accounting": {
                "settle": 0,
                "sites": [
                    {
                        "id": SITE,
                        "timezone": "Asia/Shanghai",
                        "grid_factor": {"series": "national_average", "year": 2023},
                        "meters": [{"id": "incomer", "carrier": "electricity", "role": "boundary"}],
                    }
                ],
            },
        },
    )


def day_batches(agent: str = "gw", first: int = 0, last: int = 2 * MINUTES) -> list[ReadingBatch]:
    """Minutes [first, last] from DAY, 60 readings a batch, energy and power."""
    readings = [
        MeterReading(
            meter="incomer",
            ts=DAY + timedelta(minutes=m),
            values={E: kwh(m), P: 1000 * (60 + (m * 37) % 100)},
        )
        for m in range(first, last + 1)
    ]
    return [
        ReadingBatch(site=SITE, agent=agent, seq=i, readings=readings[i : i + 60])
        for i in range(0, len(readings), 60)
    ]


def stored_before_accounting(tmp_path: Path) -> list[ReadingBatch]:
    """Two days stored by a collector without accounting: the gateway's, then a second
    agent's re-send of 10:00-11:00 of the first day; delivered out of order."""
    live = day_batches()
    again = day_batches("gw-backup", 600, 660)
    store = SqliteStore(tmp_path / "data" / "readings.sqlite")
    try:
        store.write([Batch.of(b) for b in [*reversed(live), *again]])
    finally:
        store.close()
    return live


def import_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    code = main(["import", "--config", str(tmp_path / "collector.yaml"), "--site", SITE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def minutes(data_dir: Path) -> list[MinuteRow]:
    db = AccountingDB(data_dir / "accounting.sqlite")
    try:
        return db.series_minutes(SITE, "incomer", 0, 2**62)
    finally:
        db.close()


FIRST_DAY = ("--from", "2026-10-15T00:00:00", "--to", "2026-10-16T00:00:00")


def test_a_stored_day_is_accounted_as_live_and_importing_again_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = stored_before_accounting(tmp_path / "imp")
    yaml = config(tmp_path / "imp")
    code, out, err = import_store(tmp_path / "imp", capsys, "--from-store", *FIRST_DAY)
    assert code == 0, err
    # one series (incomer energy): the day's 1440 minutes [00:00, 24:00) of the gateway
    # and 61 of the backup agent, the same values
    assert "series read      1\n" in out
    assert f"values read      {MINUTES + 61}\n" in out
    assert f"values accounted {MINUTES + 61}\n" in out
    assert f"import: store: incomer energy_active_import: {MINUTES + 61} values" in err
    got = minutes(tmp_path / "imp" / "data")
    # The live path, fed the first day's readings (and the 24:00 one it would have had
    # by then, which the import's [from, to) leaves out):
    acc = Accounting(load_config(yaml).accounting, tmp_path / "live")  # type: ignore[arg-type]
    acc.process([b for b in live if b.readings[0].ts < DAY + timedelta(days=1)])
    acc.close()
    want = minutes(tmp_path / "live")
    # The live path also split the 23:59-24:00 interval it got; the import has readings
    # up to 23:59 only: every minute up to then is identical.
    assert got == want[: len(got)]
    assert len(got) == MINUTES - 1
    assert sum(r.amount for r in got) == pytest.approx(kwh(MINUTES - 1) - kwh(0), rel=1e-12)
    # again: exit 0, the same minutes to the bit
    code, out, err = import_store(tmp_path / "imp", capsys, "--from-store", *FIRST_DAY)
    assert code == 0, err
    assert minutes(tmp_path / "imp" / "data") == got
    # the second day then ([16 Oct 00:00, 17 Oct 00:00): the reading at its end is not
    # in it), and the accounting is the counter's advance over both
    code, _, err = import_store(
        tmp_path / "imp", capsys, "--from-store", "--from", "2026-10-16", "--to", "2026-10-17"
    )
    assert code == 0, err
    total = sum(r.amount for r in minutes(tmp_path / "imp" / "data"))
    assert total == pytest.approx(kwh(2 * MINUTES - 1) - kwh(0), rel=1e-12)


def test_only_the_given_agents_readings_are_accounted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored_before_accounting(tmp_path)
    config(tmp_path)
    code, out, err = import_store(
        tmp_path, capsys, "--from-store", "--agent", "gw-backup", *FIRST_DAY
    )
    assert code == 0, err
    assert "values read      61\n" in out
    got = minutes(tmp_path / "data")
    # 10:00 to 11:00 site time, 60 minutes
    assert [r.minute for r in (got[0], got[-1])] == [
        epoch_millis(DAY + timedelta(minutes=600)),
        epoch_millis(DAY + timedelta(minutes=659)),
    ]
    assert sum(r.amount for r in got) == pytest.approx(kwh(660) - kwh(600), rel=1e-12)


def test_values_a_live_reading_would_be_refused_for_are_listed_and_not_accounted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored_before_accounting(tmp_path)
    config(tmp_path)
    with sqlite3.connect(tmp_path / "data" / "readings.sqlite") as db:
        db.executemany(
            "INSERT INTO reading VALUES (?, ?, 'incomer', 'energy_active_import', ?, ?)",
            [
                (SITE, "gw", epoch_millis(DAY + timedelta(minutes=5, seconds=30)), 1e19),
                (SITE, "bad agent", epoch_millis(DAY + timedelta(minutes=7, seconds=30)), 5e3),
            ],
        )
    code, out, err = import_store(tmp_path, capsys, "--from-store", *FIRST_DAY)
    assert code == 1, err
    assert "values refused   2\n" in out
    assert "incomer energy_active_import at 2026-10-14T16:05:30+00:00 (agent gw): " in out
    assert "1e+19 is beyond ±1e+18" in out
    assert "(agent bad agent): " in out
    total = sum(r.amount for r in minutes(tmp_path / "data"))
    assert total == pytest.approx(kwh(MINUTES - 1) - kwh(0), rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from-store",), "--from-store needs --from and --to"),
        (("--from-store", "--from", "2026-10-15"), "--from-store needs --from and --to"),
        (("--from-store", *FIRST_DAY, "f.csv"), "leave out FILE (f.csv)"),
        (("--from-store", *FIRST_DAY, "--timezone", "UTC"), "leave out --timezone"),
        (("--from-store", *FIRST_DAY, "--encoding", "gbk"), "leave out --encoding"),
        (("--from-store", *FIRST_DAY, "--refusals", "r.txt"), "leave out --refusals"),
        (("--from-store", "--from", "yesterday", "--to", "2026-10-16"), "--from 'yesterday' is"),
        (("--from-store", "--from", "2026-10-16", "--to", "2026-10-15"), "--to must be after"),
        (("--from-store", *FIRST_DAY, "--agent", "a b"), "--agent: invalid id"),
        ((*FIRST_DAY, "f.csv"), "--from and --to: only with --from-store"),
        ((), "give the CSV files to import, or --from-store"),
    ],
)
def test_a_usage_error_exits_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    config(tmp_path)
    code, _, err = import_store(tmp_path, capsys, *args)
    assert code == 2
    assert message in err


def test_a_site_not_in_the_plant_model_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config(tmp_path)
    yaml = str(tmp_path / "collector.yaml")
    code = main(["import", "--config", yaml, "--site", "other", "--from-store", *FIRST_DAY])
    assert code == 2
    assert "--site: 'other' is not in the plant model" in capsys.readouterr().err


def test_the_flux_query_reads_one_series_raw_in_time_order() -> None:
    series = Series(SITE, 'in"comer', E, epoch_millis(DAY), epoch_millis(DAY) + 86_400_000)
    text = flux_readings("b", series, DAY, DAY + timedelta(days=1))
    assert "range(start: 2026-10-14T16:00:00Z, stop: 2026-10-15T16:00:00Z)" in text
    assert 'r.meter == "in\\"comer" and r._field == "energy_active_import"' in text
    assert 'r._measurement == "reading" and r.site == "plant-st"' in text
    assert "aggregateWindow" not in text  # raw values, as stored
    assert text.rstrip().endswith('|> sort(columns: ["_time", "agent"])')


def test_flux_records_become_stored_values_in_chunks_and_a_bad_one_is_named() -> None:
    records: list[dict[str, Any]] = [
        {"_time": DAY + timedelta(minutes=m), "_value": float(m), "agent": "gw"} for m in range(5)
    ]
    chunks = list(stored_of(records, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert chunks[2] == [Stored("gw", epoch_millis(DAY) + 4 * 60_000, 4.0)]
    with pytest.raises(StoreError, match="without a time and number"):
        list(stored_of([{"_time": DAY, "_value": "x", "agent": "gw"}]))


def test_progress_lines_go_to_the_given_stream(tmp_path: Path) -> None:
    stored_before_accounting(tmp_path)
    plant = load_config(config(tmp_path)).accounting
    assert plant is not None
    acc = Accounting(plant, tmp_path / "data")
    source = SqliteReadings(tmp_path / "data" / "readings.sqlite")
    progress, summary = io.StringIO(), StoreSummary()
    options = StoreOptions(SITE, DAY, DAY + timedelta(hours=1), chunk=7)
    asyncio.run(account(source, acc, options, progress, summary))
    source.close()
    acc.close()
    # 60 values of the gateway's: 9 chunks of 7 (the last of 4), one line for the series
    assert progress.getvalue() == (
        "import: store: incomer energy_active_import: 60 values (series 1 of 1)\n"
    )
    assert (summary.read, summary.fed, summary.series) == (60, 60, 1)


def test_a_stored_day_before_live_accounting_started_is_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: the accounting counted 16 Oct live; 15 Oct is in the store
    (another collector's) but was never accounted. Imported from the store, the accounting
    holds both days: the counter's advance from 15 Oct 00:00 to 16 Oct 23:59."""
    live = stored_before_accounting(tmp_path)
    plant = load_config(config(tmp_path)).accounting
    assert plant is not None
    acc = Accounting(plant, tmp_path / "data")
    acc.process([b for b in live if b.readings[0].ts >= DAY + timedelta(days=1)])
    acc.close()
    one_day = sum(r.amount for r in minutes(tmp_path / "data"))
    assert one_day == pytest.approx(kwh(2 * MINUTES) - kwh(MINUTES), rel=1e-12)
    code, out, err = import_store(tmp_path, capsys, "--from-store", *FIRST_DAY)
    assert code == 0, err
    # 1,440 of the gateway's readings were before the ones the accounting had
    assert "1440 came before ones it had" in out
    both = sum(r.amount for r in minutes(tmp_path / "data"))
    assert both == pytest.approx(kwh(2 * MINUTES) - kwh(0), rel=1e-12)
