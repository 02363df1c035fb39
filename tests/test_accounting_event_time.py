"""Accounting by event time: the figures are a function of the readings, not of the order
or the time they arrived in. A late reading re-opens the minutes it touches; a day of
history sent after live data is counted; `recompute` gives what the live path gave."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import test_accounting_engine as engine_tests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_accounting_engine import FakeStore

from collector.accounting.engine import Accounting
from collector.api.figures import alert_view
from collector.cli import main
from collector.config import load_config
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.stores.opening import EMBEDDED_STORE_FILE
from greengauge.contract import MeterReading, Quantity, ReadingBatch

E = Quantity.ENERGY_ACTIVE_IMPORT
P = Quantity.POWER_ACTIVE
PEAK = (8, 9, 10, 11, 17, 18, 19, 20)
VALLEY = tuple(h for h in range(24) if h not in PEAK)
# 11:00 in Shanghai (the site's time zone), a peak hour; 12:00 starts a valley hour.
T11 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def config(meters: Sequence[dict[str, Any]] | None = None) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "s1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "tou": {
                        "source": "test calendar",
                        "seasons": {
                            "all_year": {
                                "months": list(range(1, 13)),
                                "hours": {"peak": list(PEAK), "valley": list(VALLEY)},
                                "prices": {"peak": 1.0, "valley": 0.5},
                            }
                        },
                    },
                    "meters": list(
                        meters or [{"id": "incomer", "carrier": "electricity", "role": "boundary"}]
                    ),
                    "lines": [],
                }
            ],
        }
    )


def batch(ts: datetime, seq: int = 0, **values: dict[Quantity, float]) -> ReadingBatch:
    readings = [MeterReading(meter=m, ts=ts, values=v) for m, v in values.items()]
    return ReadingBatch(site="s1", agent="gw", seq=seq, readings=readings)


def incomer(
    minutes: range, kw: Any, start: datetime = T11, base: float = 0.0
) -> list[ReadingBatch]:
    """A reading a minute of a kWh counter whose meter draws kw(minute) over each minute."""
    out, value = [], base
    for i in minutes:
        if i > minutes.start:
            value += kw(i - 1) / 60.0
        out.append(batch(start + timedelta(minutes=i), i, incomer={E: value}))
    return out


def minute_rows(acc: Accounting) -> list[tuple[Any, ...]]:
    return acc.db.query(
        "SELECT site, series, minute, amount, kgce, kgco2, quality FROM minute "
        "ORDER BY site, series, minute"
    )


# --- the worked examples -------------------------------------------------------------------


def peak_kw(i: int) -> float:
    """12,000 kW, except 14,000 kW from 11:45 to 12:00 (minutes 45..59)."""
    return 14_000.0 if 45 <= i < 60 else 12_000.0


def test_a_late_peak_is_placed_where_it_was_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Readings every minute 11:00..13:00; those of 11:45..12:19 (an outage) arrive last.

    By hand: 11:45-12:00 draws 14,000 kW, so that window holds 15 x 14,000 / 60 = 3,500 kWh
    and its demand is 3,500 kWh / 0.25 h = 14,000 kW. Peak (11:00-12:00) takes
    45 x 200 + 3,500 = 12,500 kWh, valley (12:00-13:00) 60 x 200 = 12,000 kWh.
    Spreading the gap 11:44..12:20 evenly instead (200 + 3,500 + 20 x 200 = 7,700 kWh over
    36 minutes, 12,833 kW) would give a demand of 12,833 kW, peak 8,800 + 16 x 7,700 / 36 =
    12,222 kWh and valley 12,278 kWh.
    """
    readings = incomer(range(121), peak_kw)
    held = [b for b in readings if 45 <= b.seq < 80]
    live = [b for b in readings if not 45 <= b.seq < 80]
    acc = Accounting(config(), tmp_path)
    for b in live:  # one pass per reading, as the live path takes them
        acc.process([b])
    with caplog.at_level(logging.INFO, "collector.accounting.engine"):
        acc.process(held)
    report = build(acc.config, acc.db, "s1", "2026-11")
    (demand,) = report["demand"]
    assert demand["kw"] == pytest.approx(14_000.0, rel=1e-9)
    periods = {p["period"]: p["kwh"] for p in report["tou"]["periods"]}
    assert periods == {"peak": pytest.approx(12_500.0), "valley": pytest.approx(12_000.0)}
    assert acc.corrections == 1 and acc.late_readings == 35
    assert "late readings: minutes accounted again" in caplog.text
    # The same as the readings in time order give, row for row.
    in_order = Accounting(config(), tmp_path / "in-order")
    in_order.process(readings)
    assert minute_rows(acc) == minute_rows(in_order)
    assert in_order.corrections == 0


def test_a_day_of_history_sent_after_live_data_is_counted(tmp_path: Path) -> None:
    """500 kW for two local days: 24 x 500 = 12,000 kWh a day. The 25th arrives live, the
    24th afterwards (history): the month holds 24,000 kWh, not 12,000."""
    day = 24 * 60
    midnight = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 24 Nov 00:00 in Shanghai
    readings = incomer(range(2 * day + 1), lambda _: 500.0, midnight, base=10_000.0)
    acc = Accounting(config(), tmp_path)
    acc.process(readings[day:])  # the 25th, live
    assert acc.meter_totals(
        "s1", acc.config.sites[0].meters[0], midnight, midnight + 2 * (timedelta(days=1))
    )[0] == pytest.approx(12_000.0)
    acc.process(readings[:day])  # the 24th, sent afterwards
    amount, _, _, quality = acc.meter_totals(
        "s1", acc.config.sites[0].meters[0], midnight, midnight + timedelta(days=2)
    )
    assert amount == pytest.approx(24_000.0, rel=1e-12) and quality == 0
    assert build(acc.config, acc.db, "s1", "2026-11")["tou"]["kwh"] == pytest.approx(24_000.0)
    assert acc.corrections == 1 and acc.late_readings == day


def test_a_redelivery_changes_nothing_and_is_no_correction(tmp_path: Path) -> None:
    readings = incomer(range(30), peak_kw)
    acc = Accounting(config(), tmp_path)
    acc.process(readings)
    before = minute_rows(acc)
    acc.process(readings[5:20])
    assert minute_rows(acc) == before and acc.corrections == 0


def test_late_minutes_are_written_to_the_store_again(tmp_path: Path) -> None:
    store = FakeStore()
    readings = incomer(range(61), peak_kw)
    acc = Accounting(config(), tmp_path, store, clock=lambda: T11 + timedelta(hours=2))
    acc.process([b for b in readings if not 45 <= b.seq < 55])
    acc.flush()
    acc.process([b for b in readings if 45 <= b.seq < 55])
    acc.flush()
    latest = {p.ts_ms: dict(p.fields)["amount"] for p in store.points}  # later points win
    assert len(latest) == 60
    assert all(latest[m] == pytest.approx(peak_kw(i) / 60) for i, m in enumerate(sorted(latest)))


# --- any order, any duplication ----------------------------------------------------------------

METERS: list[dict[str, Any]] = [
    {
        "id": "incomer",
        "carrier": "electricity",
        "role": "boundary",
        "counter": {"max_rate": 20_000, "modulus": 100_000},
    },
    {"id": "fan", "carrier": "electricity", "quantity": "power_active"},
]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[ReadingBatch], list[list[ReadingBatch]]]:
    """Readings 10-90 s apart over about an hour (a glitch, a rollover, a power meter), cut
    into batches delivered in any order, some twice."""
    n = draw(st.integers(2, 60))
    gaps = draw(st.lists(st.integers(10, 90), min_size=n, max_size=n))
    kws = draw(st.lists(st.sampled_from([0.0, 800.0, 12_000.0, 14_000.0]), min_size=n, max_size=n))
    glitch = draw(st.integers(0, n))
    readings, ts, value = [], T11, 99_000.0
    for i in range(n):
        shown = value % 100_000 if i != glitch else 5.0  # one reading out of line
        readings.append(batch(ts, i, incomer={E: shown}, fan={P: 1000.0 * kws[i] / 10}))
        ts += timedelta(seconds=gaps[i])
        value += kws[i] * gaps[i] / 3600.0
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=8)))
    chunks = [readings[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True) if a < b]
    order = draw(st.permutations(chunks))
    twice = draw(st.lists(st.sampled_from(chunks), max_size=3))
    return readings, [*order, *twice]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deliveries())
def test_any_delivery_order_gives_the_in_order_figures(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[ReadingBatch], list[list[ReadingBatch]]],
) -> None:
    readings, delivered = case
    cfg = config(METERS)
    in_order = Accounting(cfg, tmp_path_factory.mktemp("in-order"))
    in_order.process(readings)
    shuffled = Accounting(cfg, tmp_path_factory.mktemp("shuffled"))
    for chunk in delivered:
        shuffled.process(chunk)
    assert minute_rows(shuffled) == minute_rows(in_order)
    every_reading = "SELECT * FROM reading ORDER BY site, series, ts"
    assert shuffled.db.query(every_reading) == in_order.db.query(every_reading)
    a, b = build(cfg, in_order.db, "s1", "2026-11"), build(cfg, shuffled.db, "s1", "2026-11")
    assert a["demand"] == b["demand"] and a["tou"] == b["tou"]
    in_order.close()
    shuffled.close()


# --- recompute ------------------------------------------------------------------------------------


def test_recompute_equals_live_and_is_idempotent(tmp_path: Path) -> None:
    readings = incomer(range(121), peak_kw)
    acc = Accounting(config(), tmp_path)
    for b in [*readings[80:], *readings[:45], *readings[45:80]]:
        acc.process([b])
    live = minute_rows(acc)
    # Lose the accounting's minutes (an old bug, a hand edit): recompute rebuilds them.
    acc.db.query("UPDATE minute SET amount = amount * 2 WHERE minute % 120000 = 0")
    acc.db.query("DELETE FROM minute WHERE minute % 180000 = 0")
    spans = acc.recompute("s1", T11, T11 + timedelta(hours=2))
    # 120 minutes: 60 doubled (every other) and 40 deleted (every third), 20 both.
    assert [(s.series, s.late, s.changed) for s in spans] == [("incomer", 0, 80)]
    assert minute_rows(acc) == live
    again = acc.recompute("s1", T11 - timedelta(hours=1), T11 + timedelta(hours=3))
    assert minute_rows(acc) == live and [s.changed for s in again] == [0]
    with pytest.raises(ValueError, match="site 'nowhere'"):
        acc.recompute("nowhere", T11, T11 + timedelta(hours=1))


def test_the_recompute_command_rebuilds_and_writes_beside_the_readings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounting = config().model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "collector.yaml"
    path.write_text(
        yaml.safe_dump(
            {"mqtt": {"url": "mqtt://127.0.0.1"}, "data_dir": "data", "accounting": accounting}
        )
    )
    acc = Accounting(load_config(path).accounting or config(), tmp_path / "data")
    acc.process(incomer(range(61), peak_kw))
    live = minute_rows(acc)
    acc.db.query("UPDATE minute SET amount = 0")
    acc.close()
    args = ["recompute", "--config", str(path), "--site", "s1"]
    # Site time (Shanghai): 11:00 to 12:00 is 03:00 to 04:00 UTC.
    assert main([*args, "--from", "2026-11-24T11:00", "--to", "2026-11-24T12:00"]) == 0
    out, err = capsys.readouterr()
    assert "recompute: 1/1 series (100 %)" in err  # progress, on stderr
    assert (
        "s1 incomer: minutes 2026-11-24T03:00:00+00:00 .. 2026-11-24T04:01:00+00:00 "
        "accounted again, 60 changed"
    ) in out
    assert "1 series accounted again, 60 points written to the store" in out
    # Idempotent: nothing changes, nothing is written.
    assert main([*args, "--from", "2026-11-24T11:00", "--to", "2026-11-24T12:00"]) == 0
    assert "accounted again, 0 changed" in (out := capsys.readouterr().out)
    assert "0 points written to the store" in out
    acc = Accounting(config(), tmp_path / "data")
    assert minute_rows(acc) == live
    acc.close()
    with sqlite3.connect(tmp_path / "data" / EMBEDDED_STORE_FILE) as store:
        ((stored,),) = store.execute(
            "SELECT total(value) FROM point WHERE measurement = 'energy_interval' "
            "AND field = 'amount'"
        )
    assert stored == pytest.approx(45 * 200 + 15 * 14_000 / 60)
    assert main([*args, "--from", "yesterday", "--to", "2026-11-24T12:00"]) == 2
    assert "--from 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
    assert main([*args, "--from", "2026-11-24T12:00", "--to", "2026-11-24T11:00"]) == 2
    assert "--to must be after --from" in capsys.readouterr().err


def test_an_alert_on_figures_late_readings_changed_is_marked(tmp_path: Path) -> None:
    clock = [engine_tests.T0]
    acc = Accounting(
        engine_tests.config(
            alert={"window": "rolling_15min", "band": 0.01, "min_duration": 120, "threshold": 0.001}
        ),
        tmp_path,
        FakeStore(),
        clock=lambda: clock[0],
    )
    every = engine_tests.readings(10)
    held = every[12:19]  # minutes 2 to 3 of the line, held back
    acc.process([b for b in every if b not in held])
    for minute in (5, 6, 7, 8):
        clock[0] = engine_tests.T0 + timedelta(minutes=minute)
        acc.evaluate()
    (raised,) = acc.db.alerts("s1")
    assert raised.kind == "raised" and not raised.corrected
    # A late reading of the boundary meter only: not a figure of the line's.
    acc.process(
        [batch(engine_tests.T0 + timedelta(seconds=125), incomer={E: 1000.0 + 120 * 125 / 3600})]
    )
    assert acc.corrections == 1 and not acc.db.alerts("s1")[0].corrected
    acc.process(held)
    (marked,) = acc.db.alerts("s1")
    assert marked.id == raised.id and marked.corrected
    assert alert_view(marked)["corrected"] is True


def test_a_database_from_before_readings_were_kept_continues(tmp_path: Path) -> None:
    """Such a file has only the last good reading per series (counter_state): the next
    reading is counted from it, 10 minutes x 12,000 kW / 60 = 2,000 kWh."""
    acc = Accounting(config(), tmp_path)
    acc.db.query(
        "INSERT INTO counter_state (site, series, ts, value) VALUES ('s1', 'incomer', ?, 500.0)",
        (int(T11.timestamp() * 1000),),
    )
    acc.process([batch(T11 + timedelta(minutes=10), incomer={E: 2500.0})])
    amount, _, _, _ = acc.meter_totals(
        "s1", acc.config.sites[0].meters[0], T11, T11 + timedelta(hours=1)
    )
    assert amount == pytest.approx(2000.0) and len(minute_rows(acc)) == 10
