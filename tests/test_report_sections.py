"""The monthly report's optional sections, on a small month computed by hand.

The plant: an incomer drawing a steady 120 kW and a kiln line drawing 60 kW (a submeter),
making one piece a second, from 10:00 to 10:10 Shanghai time on 2026-11-24 (02:00 UTC):

    incomer  120 kW x 1/6 h = 20 kWh      kiln  60 kW x 1/6 h = 10 kWh
    kgce     20 x 0.1229   = 2.458        CO2   20 x 0.5306   = 10.612 kg (national 2023)
    output   600 s x 1 piece/s = 600 pieces

Time of use: 10:00-10:10 is a peak hour in the test calendar, at 1.2 CNY/kWh:
    cost 20 x 1.2 = 24 CNY; per piece 24 / 600 = 0.04 CNY.
Market-based: residual factor 0.6096 (national excluding market-traded non-fossil, 2023),
40 % covered by green certificates: 20 x 0.6 x 0.6096 = 7.3152 kg.
Value added 100,000 CNY: 2.458 / 10 = 0.2458 kgce and 1.0612 kg CO2 per 10,000 CNY.
Target: base 2020 intensity 0.01 kgce a piece for the kiln, -13.5 % by 2025.
    kiln kgce a piece: 10 x 0.1229 / 600 = 0.0020483; achieved 1 - 0.0020483/0.01 = 79.5 %.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.accounting.engine import Accounting
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.reports.render import render
from greengauge.contract import MeterReading, Quantity, ReadingBatch

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
E = Quantity.ENERGY_ACTIVE_IMPORT
ALL_HOURS = tuple(range(24))
PEAK = (8, 9, 10, 11, 17, 18, 19, 20)
REST = tuple(h for h in ALL_HOURS if h not in PEAK)


def config() -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "s1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "market_based": {
                        "residual": {"series": "national_excl_market_nonfossil", "year": 2023},
                        "green_share": 0.4,
                    },
                    "value_added": {"2026-11": 100_000},
                    "targets": {"base_energy_intensity": {"kiln": 0.01}},
                    "tou": {
                        "source": "test calendar",
                        "seasons": {
                            "all_year": {
                                "months": list(range(1, 13)),
                                "hours": {"peak": list(PEAK), "valley": list(REST)},
                                "prices": {"peak": 1.2, "valley": 0.3},
                            }
                        },
                    },
                    "meters": [
                        {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                        {"id": "l1", "carrier": "electricity", "line": "kiln"},
                    ],
                    "lines": [
                        {
                            "id": "kiln",
                            "product": "widgets",
                            "output_unit": "pieces",
                            "output": {"meter": "counter", "quantity": "count"},
                            "benchmark": {
                                "custom": {
                                    "name": "test",
                                    "unit": "kgce/pieces",
                                    "benchmark": 0.001,
                                    "baseline": 0.003,
                                    "source": "test",
                                }
                            },
                            "green_factory": {
                                "baseline": 0.004,
                                "leading": 0.001,
                                "source": "test sector rule",
                            },
                        }
                    ],
                }
            ],
        }
    )


def month(tmp_path: Path) -> dict[str, Any]:
    acc = Accounting(config(), tmp_path)
    acc.process(month_batches())
    return build(acc.config, acc.db, "s1", "2026-11")


def month_batches() -> list[ReadingBatch]:
    """Ten minutes of readings every 10 s: incomer 120 kW, l1 60 kW, a piece a second."""
    batches = []
    for k in range(61):  # every 10 s for 10 minutes
        s = 10 * k
        values = {
            "incomer": {E: 1000.0 + 120 * s / 3600},
            "l1": {E: 500.0 + 60 * s / 3600},
            "counter": {Quantity.COUNT: 7000.0 + s},
        }
        readings = [
            MeterReading(meter=m, ts=T0 + timedelta(seconds=s), values=v) for m, v in values.items()
        ]
        batches.append(ReadingBatch(site="s1", agent="gw", seq=k, readings=readings))
    return batches


def test_time_of_use_cost_per_piece(tmp_path: Path) -> None:
    tou = month(tmp_path)["tou"]
    assert tou["kwh"] == pytest.approx(20.0, rel=1e-6)
    assert tou["cny"] == pytest.approx(24.0, rel=1e-6)
    assert tou["cny_per_unit"] == pytest.approx(0.04, rel=1e-6)
    assert [(p["period"], p["kwh"]) for p in tou["periods"] if p["kwh"]] == [("peak", 20.0)]
    assert tou["source"] == "test calendar"


def test_market_based_co2_beside_location_based(tmp_path: Path) -> None:
    co2 = month(tmp_path)["co2"]
    assert co2["location_based_kgco2"] == pytest.approx(10.612, rel=1e-6)
    assert co2["market_based_kgco2"] == pytest.approx(20 * 0.6 * 0.6096, rel=1e-6)
    assert "0.5306" in co2["grid_factor"] or "national_average" in co2["grid_factor"]


def test_value_added_intensities(tmp_path: Path) -> None:
    va = month(tmp_path)["value_added"]
    assert va["cny"] == 100_000
    assert va["kgce_per_10k_cny"] == pytest.approx(0.2458, rel=1e-6)
    assert va["kgco2_per_10k_cny"] == pytest.approx(1.0612, rel=1e-6)


def test_target_progress_of_a_line(tmp_path: Path) -> None:
    (line,) = month(tmp_path)["lines"]
    (energy,) = line["targets"]
    assert energy["kind"] == "energy"
    assert energy["target_intensity"] == pytest.approx(0.01 * (1 - 0.135), rel=1e-9)
    assert energy["reduction_achieved"] == pytest.approx(1 - (10 * 0.1229 / 600) / 0.01, rel=1e-9)
    # November 2026 is after the default target year 2025: no path to be on, and no
    # projection (it would step backwards); only whether the target is reached.
    assert energy["on_path"] is None and energy["path_intensity"] is None
    assert energy["projected_target_year_intensity"] is None and energy["on_track"] is None
    assert energy["target_reached"] is True


def test_csv_and_table_carry_the_same_figures(tmp_path: Path) -> None:
    report = month(tmp_path)
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    flat = [cell for row in rows for cell in row]
    assert ["site", "s1", "kgce", "2.458", "kgce", "sum of the carriers", ""] in rows
    assert "incomer" in flat and "kiln" in flat
    table = render(report, "table")
    assert "Site total: 2.458 kgce, 10.612 kgCO2" in table and "24.000 CNY" in table


def test_green_factory_position_between_baseline_and_leading_value(tmp_path: Path) -> None:
    (line,) = month(tmp_path)["lines"]
    indicator = line["green_factory"]
    # (0.004 - 0.0020483) / (0.004 - 0.001) = 0.6506
    assert indicator["position"] == pytest.approx((0.004 - 10 * 0.1229 / 600) / 0.003, rel=1e-4)
    assert indicator["standard"] == "GB/T 36132-2025"
    assert "of the way from the baseline" in render(month(tmp_path / "again"), "table")
