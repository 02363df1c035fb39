"""The accounting glue on a temporary SQLite file: counters to minutes, restart, re-delivery,
virtual meters, intensities (insufficient output never divided), alerts, derived points."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.accounting.engine import Accounting
from collector.accounting.queries import meter_totals
from collector.accounting.targets import SITE_LINE
from collector.plant import AccountingConfig
from collector.stores.lineprotocol import Point
from greengauge.contract import MeterReading, Quantity, ReadingBatch

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
E = Quantity.ENERGY_ACTIVE_IMPORT


def config(**line: Any) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "s1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [
                        {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                        {"id": "l1", "carrier": "electricity", "line": "kiln"},
                        {
                            "id": "rest",
                            "carrier": "electricity",
                            "plus": ["incomer"],
                            "minus": ["l1"],
                        },
                    ],
                    "lines": [
                        {
                            "id": "kiln",
                            "product": "widgets",
                            "output_unit": "pieces",
                            "benchmark": {
                                "custom": {
                                    "name": "test",
                                    "unit": "kgce/pieces",
                                    "benchmark": 0.1,
                                    "baseline": 0.2,
                                    "source": "test",
                                }
                            },
                            "output": {"meter": "counter", "quantity": "count"},
                            "min_output": {"rolling_15min": 5},
                            **line,
                        }
                    ],
                }
            ],
        }
    )


class FakeStore:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def write_points(self, points: Sequence[Point]) -> int:
        self.points.extend(points)
        return len(points)

    def close(self) -> None:
        pass


def batch(seq: int, ts: datetime, **values: dict[Quantity, float]) -> ReadingBatch:
    readings = [MeterReading(meter=m, ts=ts, values=v) for m, v in values.items()]
    return ReadingBatch(site="s1", agent="gw", seq=seq, readings=readings)


def readings(minutes: int, start: int = 0) -> list[ReadingBatch]:
    """incomer 120 kW, l1 60 kW, 1 piece a second, one batch every 10 s."""
    out = []
    for k in range(start * 6, minutes * 6 + 1):
        s = 10 * k
        ts = T0 + timedelta(seconds=s)
        out.append(
            batch(
                k,
                ts,
                incomer={E: 1000.0 + 120 * s / 3600},
                l1={E: 500.0 + 60 * s / 3600},
                counter={Quantity.COUNT: 7000.0 + s},
            )
        )
    return out


def totals(acc: Accounting, meter: str, hours: float = 1.0) -> tuple[float, float, float]:
    site = acc.config.sites[0]
    amount, kgce, kgco2, _ = meter_totals(
        acc.db,
        acc.config,
        "s1",
        site.meter(meter),
        0,
        int((T0 + timedelta(hours=hours)).timestamp() * 1000),
    )
    return amount, kgce, kgco2


def test_counters_become_energy_kgce_and_co2(tmp_path: Path) -> None:
    acc = Accounting(config(), tmp_path)
    acc.process(readings(10))
    kwh, kgce, kgco2 = totals(acc, "incomer")
    assert kwh == pytest.approx(20.0, rel=1e-9)  # 120 kW for 10 minutes
    assert kgce == pytest.approx(20.0 * 0.1229, rel=1e-9)
    assert kgco2 == pytest.approx(20.0 * 0.5306, rel=1e-9)
    assert totals(acc, "rest")[0] == pytest.approx(10.0, rel=1e-9)  # incomer - l1
    rows = acc.db.series_minutes("s1", "incomer", 0, 2**62)
    assert len(rows) == 10 and all(r.amount == pytest.approx(2.0) for r in rows)


def test_a_restart_continues_and_a_redelivery_counts_nothing_twice(tmp_path: Path) -> None:
    every = readings(10)
    acc = Accounting(config(), tmp_path)
    acc.process(every[:31])
    acc.close()
    acc = Accounting(config(), tmp_path)  # restarted: state from the file
    acc.process(every[20:])  # ten batches delivered again, then new ones
    acc.process(every[:5])  # an old re-delivery
    assert totals(acc, "incomer")[0] == pytest.approx(20.0, rel=1e-9)
    assert totals(acc, "l1")[0] == pytest.approx(10.0, rel=1e-9)


def test_a_lost_stretch_of_readings_is_apportioned_not_lost(tmp_path: Path) -> None:
    every = readings(10)
    acc = Accounting(config(), tmp_path)
    acc.process(every[:12] + every[40:])
    assert totals(acc, "incomer")[0] == pytest.approx(20.0, rel=1e-9)


def test_intensity_windows_and_insufficient_output(tmp_path: Path) -> None:
    now = T0 + timedelta(minutes=10)
    store = FakeStore()
    acc = Accounting(config(), tmp_path, store, clock=lambda: now)
    acc.process(readings(10))
    points = acc.evaluate()
    by = {
        (dict(p.tags)["line"], dict(p.tags)["window"]): dict(p.fields)
        for p in points
        if p.measurement == "intensity"
    }
    kiln = by[("kiln", "rolling_15min")]
    # 10 kWh x 0.1229 over 600 pieces
    assert kiln["value"] == pytest.approx(10 * 0.1229 / 600, rel=1e-9)
    assert kiln["output"] == pytest.approx(600.0)
    assert kiln["status"] == 1.0  # leading: below 0.1
    site = by[(SITE_LINE, "today")]
    assert site["kgce"] == pytest.approx(20 * 0.1229, rel=1e-9)
    # now an output too small for the 15-minute window: no value, marked insufficient
    acc2 = Accounting(
        config(min_output={"rolling_15min": 1000}), tmp_path / "b", FakeStore(), clock=lambda: now
    )
    acc2.process(readings(10))
    fields = {
        dict(p.tags)["window"]: dict(p.fields)
        for p in acc2.evaluate()
        if dict(p.tags)["line"] == "kiln"
    }
    assert math.isnan(fields["rolling_15min"]["value"])
    assert fields["rolling_15min"]["status"] == 0.0


def test_energy_interval_points_for_real_and_virtual_meters(tmp_path: Path) -> None:
    store = FakeStore()
    acc = Accounting(config(), tmp_path, store, clock=lambda: T0 + timedelta(minutes=30))
    acc.process(readings(10))
    assert acc.flush() > 0
    energy = [p for p in store.points if p.measurement == "energy_interval"]
    rest = [p for p in energy if dict(p.tags)["meter"] == "rest"]
    assert len(rest) == 10
    assert all(dict(p.fields)["amount"] == pytest.approx(1.0) for p in rest)
    assert dict(energy[0].tags)["carrier"] == "electricity"
    # Role and line as tags: a dashboard adds each kWh once (tests/test_grafana.py).
    assert {
        (dict(p.tags)["meter"], dict(p.tags)["role"], dict(p.tags)["line"]) for p in energy
    } == {
        ("incomer", "boundary", "_site"),
        ("l1", "submeter", "kiln"),
        ("rest", "virtual", "_site"),
    }
    outputs = [p for p in store.points if p.measurement == "output_interval"]
    assert sum(dict(p.fields)["amount"] for p in outputs) == pytest.approx(600.0)
    assert acc.flush() == 0  # written once


def test_a_line_above_its_baseline_raises_then_clears(tmp_path: Path) -> None:
    clock = [T0]
    sent: list[int] = []

    class Sink:
        def publish_alert(self, site: str, alert_id: int) -> None:
            sent.append(alert_id)

    acc = Accounting(
        config(
            alert={"window": "rolling_15min", "band": 0.01, "min_duration": 120, "threshold": 0.001}
        ),
        tmp_path,
        FakeStore(),
        Sink(),
        clock=lambda: clock[0],
    )
    acc.process(readings(10))
    for minute in (5, 6, 7, 8):
        clock[0] = T0 + timedelta(minutes=minute)
        acc.evaluate()
    alerts = acc.db.alerts("s1")
    assert [a.kind for a in alerts] == ["raised"]
    assert alerts[0].since == int((T0 + timedelta(minutes=5)).timestamp() * 1000)
    assert sent == [alerts[0].id]
    assert acc.db.alarm_state("s1", "kiln").phase.value == "active"
