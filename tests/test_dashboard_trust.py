"""What the dashboard is told about how far a figure can be trusted (collector.api.trust):
the freshness of the meters a line or the site rests on, the data quality of its figures
and an alert building up but not raised yet. Against the demo plant's model and a real
accounting database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.accounting.core.alerts import AlarmState, Phase
from collector.accounting.db import AccountingDB, MinuteRow, ms
from collector.accounting.targets import output_series
from collector.api import trust
from collector.plant import AccountingConfig, SiteConfig, resolve_benchmark

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 10, 14, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture
def plant() -> SiteConfig:
    data = yaml.safe_load((ROOT / "configs" / "demo" / "collector.yaml").read_text())
    [site] = AccountingConfig.model_validate(data["accounting"]).sites
    return site


def meter(meter_id: str, state: str = "online", age: float | None = 1.0) -> dict[str, Any]:
    return {"id": meter_id, "state": state, "age_s": age}


def test_a_line_rests_on_its_energy_meters_and_its_output_counter(plant: SiteConfig) -> None:
    assert trust.line_meters(plant, plant.line("line-1")) == ["line-1", "line-1-counter"]
    # The site's figures rest on its boundary; other-loads (virtual) is not the boundary.
    assert trust.boundary_meters(plant) == ["incomer"]


def test_freshness_names_every_meter_that_is_not_current() -> None:
    feeding = ["line-1", "line-1-counter"]
    live = trust.freshness([meter("line-1", age=0.4), meter("line-1-counter", age=3.0)], feeding)
    assert live == {"state": "live", "age_s": 3.0, "meters": [], "fed_by": feeding}

    # The counter is fresh, the energy meter offline: the line is stale, and says why.
    stale = trust.freshness(
        [meter("line-1", "offline", 51.0), meter("line-1-counter", age=2.0)], feeding
    )
    assert stale["state"] == "stale"
    assert stale["age_s"] == 51.0
    assert stale["meters"] == [{"id": "line-1", "state": "offline", "age_s": 51.0}]

    # A meter the collector never heard of is not current either.
    unheard = trust.freshness([meter("line-1")], feeding)
    assert unheard["state"] == "stale"
    assert unheard["meters"] == [{"id": "line-1-counter", "state": "unknown", "age_s": None}]

    assert trust.freshness([], feeding)["state"] == "no_data"
    assert trust.freshness([meter("x", "stale", 99.0)], ["x"])["state"] == "stale"


def test_quality_of_a_line_in_plain_figures(tmp_path: Path, plant: SiteConfig) -> None:
    db = AccountingDB(tmp_path / "accounting.sqlite")
    hour = NOW - timedelta(hours=1)
    first = ms(hour)
    rows = []
    for i in range(60):
        minute = first + i * 60_000
        if i < 45:  # 45 minutes measured, 15 spread over a gap: a quarter of the energy
            rows.append(MinuteRow("line-1", minute, 1.0, 1.0, 1.0, 0))
        else:
            rows.append(MinuteRow("line-1", minute, 1.0, 1.0, 1.0, 1))
        rows.append(MinuteRow(output_series("line-1"), minute, 10.0, 0.0, 0.0, 0))
    with db.transaction() as conn:
        db.add_minutes(conn, plant.id, rows)
    q = trust.line_quality(db, plant, plant.line("line-1"), NOW)["rolling_1h"]
    assert q["expected_minutes"] == 60
    assert q["measured_minutes"] == 45
    assert q["completeness"] == pytest.approx(0.75)
    assert q["estimated_share"] == pytest.approx(0.25)
    assert q["by_quality"]["spread_over_gap"] == pytest.approx(15.0)
    assert q["findings"] == []
    empty = trust.line_quality(db, plant, plant.line("line-2"), NOW)["rolling_1h"]
    assert empty["completeness"] == 0.0 and empty["estimated_share"] is None


def test_an_alert_building_up_is_told_with_its_start_and_when_it_fires(
    tmp_path: Path, plant: SiteConfig
) -> None:
    db = AccountingDB(tmp_path / "accounting.sqlite")
    line = plant.line("line-1")
    judged = resolve_benchmark(line)
    assert trust.pending_alert(db, plant, line, judged) is None
    began = NOW - timedelta(minutes=3)
    db.save_alarm(
        plant.id, line.id, AlarmState(Phase.RISING, began, NOW), [], "rolling_1h", "u", "b"
    )
    pending = trust.pending_alert(db, plant, line, judged)
    assert pending == {
        "phase": "rising",
        "since": began.isoformat(timespec="seconds"),
        "min_duration_s": 900.0,
        "threshold": judged.baseline,
        "window": "rolling_1h",
    }
    db.save_alarm(
        plant.id, line.id, AlarmState(Phase.ACTIVE, None, NOW), [], "rolling_1h", "u", "b"
    )
    assert trust.pending_alert(db, plant, line, judged) is None
