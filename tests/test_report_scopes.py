"""Emission scopes, process emissions and graded indicators, on a clinker month by hand.

The plant (10 minutes from 10:00 Shanghai time on 2026-11-24, readings every 10 s):

    incomer  electricity, boundary  360 kW x 1/6 h  = 60 kWh
    l1       electricity, kiln      330 kW x 1/6 h  = 55 kWh
    gas      natural gas, boundary, kiln  600 m3/h x 1/6 h = 100 m3
    steam    steam, boundary        0.6 t/h x 1/6 h = 0.1 t (bought in)
    clinker  output counter, mass   6 t/h x 1/6 h   = 1 t

CO2 (location-based):
    incomer  60 x 0.5306 (national average 2023)  = 31.836 kg   scope 2
    gas      100 x 2.16 kgCO2/m3 (fuel table)      = 216 kg      scope 1
    steam    0.1 x 300 kgCO2/t (configured)        = 30 kg       scope 2
    process  1 t x 525 kgCO2/t (configured calcination factor) = 525 kg   scope 1
    scope 1 = 216 + 525 = 741; scope 2 = 31.836 + 30 = 61.836
    energy CO2 = 216 + 61.836 = 277.836; with process 277.836 + 525 = 802.836
Market-based (residual 0.6096, 40 % green certificates):
    electricity 60 x 0.6 x 0.6096 = 21.9456; scope 2 = 30 + 21.9456 = 51.9456;
    total 216 + 525 + 51.9456 = 792.9456
Kiln indicators (its meters: l1 and gas):
    kgce  55 x 0.1229 + 100 x 1.2143 = 6.7595 + 121.43 = 128.1895 kgce/t
          GB 16780-2021 clinker comprehensive grades 100/107/117: above grade 3 (fails)
    kWh   55 / 1 = 55 kWh/t; GB 16780-2021 clinker electricity 48/57/61: grade 2
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.accounting.core import data
from collector.accounting.core.emissions import by_scope, process
from collector.accounting.core.factors import Confidence
from collector.accounting.engine import Accounting
from collector.api import figures
from collector.plant import CARRIER_SCOPE, AccountingConfig, Carrier
from collector.reports.build import build
from collector.reports.numbers import TERMS, term
from collector.reports.render import render
from collector.state.latest import LatestReadings
from collector.state.statuses import AgentStatuses
from collector.stores.sqlite import SqliteStore
from greengauge.common import i18n
from greengauge.contract import MeterReading, Quantity, ReadingBatch

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
E = Quantity.ENERGY_ACTIVE_IMPORT
CALCINATION = {
    "name": "clinker calcination",
    "value": 525,
    "unit": "kgCO2/t",
    "source": "test: the plant's raw-meal CaO/MgO analysis",
    "confidence": "configured",
}

PER_PIECE = {
    "name": "per piece",
    "unit": "kgce/pieces",
    "benchmark": 1,
    "baseline": 2,
    "source": "x",
}


def plant(**site: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": "kiln",
        "product": "clinker",
        "output_unit": "t",
        "output": {"meter": "clinker", "quantity": "mass"},
        "benchmark": {"energy_limit": "cement_clinker_comprehensive"},
        "indicators": [{"energy_limit": "clinker_electricity"}],
        "process_emissions": [CALCINATION],
        "green_factory": {"baseline": 117, "leading": 100, "source": "test sector rule"},
    }
    line |= site.pop("line", {})
    return {
        "settle": 0,
        "conversion": {
            "coefficients": {
                "natural_gas": {"value": 1.2143, "unit": "kgce/m3", "source": "test"},
                "steam": {"value": 108.6, "unit": "kgce/t", "source": "test"},
            }
        },
        "sites": [
            {
                "id": "c1",
                "grid_factor": {"series": "national_average", "year": 2023},
                "market_based": {
                    "residual": {"series": "national_excl_market_nonfossil", "year": 2023},
                    "green_share": 0.4,
                },
                "co2_factors": {
                    "steam": {"value": 300, "unit": "kgCO2/t", "source": "test steam supplier"}
                },
                "meters": [
                    {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                    {"id": "l1", "carrier": "electricity", "line": "kiln"},
                    {"id": "gas", "carrier": "natural_gas", "role": "boundary", "line": "kiln"},
                    {"id": "steam", "carrier": "steam", "role": "boundary"},
                ],
                "lines": [line],
                **site,
            }
        ],
    }


def batches() -> list[ReadingBatch]:
    out = []
    for k in range(61):
        s = 10 * k
        values = {
            "incomer": {E: 1000.0 + 360 * s / 3600},
            "l1": {E: 500.0 + 330 * s / 3600},
            "gas": {Quantity.VOLUME: 20.0 + 600 * s / 3600},
            "steam": {Quantity.MASS: 3.0 + 0.6 * s / 3600},
            "clinker": {Quantity.MASS: 7000.0 + 6 * s / 3600},
        }
        readings = [
            MeterReading(meter=m, ts=T0 + timedelta(seconds=s), values=v) for m, v in values.items()
        ]
        out.append(ReadingBatch(site="c1", agent="gw", seq=k, readings=readings))
    return out


def month(tmp_path: Path, **site: Any) -> tuple[Accounting, dict[str, Any]]:
    store = SqliteStore(tmp_path / "store.sqlite")
    acc = Accounting(
        AccountingConfig.model_validate(plant(**site)),
        tmp_path,
        store,
        clock=lambda: T0 + timedelta(minutes=30),
    )
    acc.process(batches())
    acc.flush()
    store.close()
    return acc, build(acc.config, acc.db, "c1", "2026-11", now=T0 + timedelta(minutes=30))


def test_scope_split_and_process_emissions_in_the_json(tmp_path: Path) -> None:
    _, report = month(tmp_path)
    e = report["emissions"]
    assert [(c["carrier"], c["scope"]) for c in e["by_carrier"]] == [
        ("electricity", 2),
        ("natural_gas", 1),
        ("steam", 2),
    ]
    assert e["scope1_combustion_kgco2"] == pytest.approx(216.0, rel=1e-9)
    assert e["scope1_process_kgco2"] == pytest.approx(525.0, rel=1e-9)
    assert e["scope1_kgco2"] == pytest.approx(741.0, rel=1e-9)
    assert e["scope2_location_kgco2"] == pytest.approx(61.836, rel=1e-9)
    assert e["energy_kgco2"] == pytest.approx(277.836, rel=1e-9)
    assert e["process_kgco2"] == pytest.approx(525.0, rel=1e-9)
    assert e["total_kgco2"] == pytest.approx(802.836, rel=1e-9)
    assert e["scope2_market_kgco2"] == pytest.approx(51.9456, rel=1e-9)
    assert e["total_market_kgco2"] == pytest.approx(792.9456, rel=1e-9)
    # The energy CO2 is the report's location-based total, unchanged.
    assert e["energy_kgco2"] == pytest.approx(report["co2"]["location_based_kgco2"], rel=1e-12)
    (p,) = e["process"]
    assert p["output"] == pytest.approx(1.0, rel=1e-9)
    assert p["source"] == CALCINATION["source"] and p["confidence"] == "configured"
    (line,) = report["lines"]
    assert line["process_kgco2"] == pytest.approx(525.0, rel=1e-9)
    # The kiln's own energy CO2: l1 55 x 0.5306 = 29.183 + gas 216 = 245.183 kg;
    # with its process CO2 245.183 + 525 = 770.183 kg, per t of clinker the same.
    assert line["kgco2"] == pytest.approx(245.183, rel=1e-9)
    assert line["total_kgco2"] == pytest.approx(770.183, rel=1e-9)
    assert line["total_kgco2_per_unit"] == pytest.approx(770.183, rel=1e-9)
    assert {m["meter"]: m["scope"] for m in report["meters"]} == {
        "incomer": 2,
        "l1": 2,
        "gas": 1,
        "steam": 2,
    }


def test_a_site_making_its_own_steam_counts_it_in_scope_1(tmp_path: Path) -> None:
    _, report = month(tmp_path, scopes={"steam": 1})
    e = report["emissions"]
    # steam's 30 kg moves: scope 1 combustion 216 + 30 = 246, scope 2 31.836.
    assert e["scope1_combustion_kgco2"] == pytest.approx(246.0, rel=1e-9)
    assert e["scope2_location_kgco2"] == pytest.approx(31.836, rel=1e-9)
    assert e["total_kgco2"] == pytest.approx(802.836, rel=1e-9)


def test_grades_of_several_indicators_per_line(tmp_path: Path) -> None:
    _, report = month(tmp_path)
    (line,) = report["lines"]
    comprehensive, electricity = line["indicators"]
    assert comprehensive["unit"] == "kgce/t"
    assert comprehensive["value"] == pytest.approx(128.1895, rel=1e-9)
    assert comprehensive["grade"] is None  # 128.19 > 117: fails the mandatory limit
    assert comprehensive["status"] == "above_baseline"
    assert electricity["unit"] == "kWh/t"
    assert electricity["value"] == pytest.approx(55.0, rel=1e-9)
    assert electricity["grade"] == 2  # 48 < 55 <= 57
    assert electricity["source"] and electricity["confidence"] == "M"
    table = render(report, "table")
    assert "grade 2" in table and "above grade 3: fails the limit" in table
    # GB/T 36132: no sourced scoring rule, so no score, and the report says why.
    assert line["green_factory"]["score"] is None
    assert "GB/T 36132-2025 score: no score" in table


def test_table_and_csv_print_the_scopes(tmp_path: Path) -> None:
    _, report = month(tmp_path)
    table = render(report, "table")
    assert "Scope 1: 741.000 kgCO2 (combustion 216.000, process 525.000)" in table
    assert "scope 2: 61.836 kgCO2 (location-based)" in table
    assert "Energy CO2 277.836 kgCO2 + process CO2 525.000 kgCO2 = 802.836 kgCO2" in table
    assert "Market-based: scope 2 51.946 kgCO2; with scope 1, 792.946 kgCO2" in table
    kiln = "kiln: energy CO2 245.183 + process CO2 525.000 = 770.183 kgCO2, 770.183 kgCO2/t"
    assert kiln in table
    assert "[confidence configured]" in table.split("CO2 by scope")[1]
    rows = list(csv.reader(io.StringIO(render(report, "csv").lstrip("\ufeff"))))
    by_key = {(r[0], r[1], r[2]): r for r in rows}
    assert by_key[("emissions", "c1", "total_kgco2")][3] == "802.836"
    assert by_key[("emissions", "c1", "scope2_market_kgco2")][3] == "51.946"
    assert by_key[("carrier", "steam", "scope")][3] == "2"
    assert by_key[("line", "kiln", "total_kgco2")][3:5] == ["770.183", "kgCO2"]
    assert by_key[("line", "kiln", "total_kgco2_per_unit")][3:5] == ["770.183", "kgCO2/t"]
    calcination = by_key[("process", "kiln clinker calcination", "kgco2_per_unit")]
    assert calcination[3:] == ["525", "kgCO2/t", CALCINATION["source"], "configured"]
    assert by_key[("indicator", "kiln GB 16780-2021 clinker_electricity", "grade")][3] == "2"
    assert (
        by_key[("indicator", "kiln GB 16780-2021 cement_clinker_comprehensive", "grade")][3] == "-"
    )


def test_the_store_holds_the_scope_and_the_process_co2(tmp_path: Path) -> None:
    month(tmp_path)
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        by_scope = dict(
            db.execute(
                "SELECT substr(series, instr(series, 'scope=') + 6, 1), total(value) FROM point "
                "WHERE measurement = 'energy_interval' AND field = 'kgco2' "
                "AND series LIKE '%role=boundary%' GROUP BY 1"
            ).fetchall()
        )
        ((process,),) = db.execute(
            "SELECT total(value) FROM point WHERE measurement = 'output_interval' "
            "AND field = 'process_kgco2'"
        ).fetchall()
    assert by_scope == {"1": pytest.approx(216.0, rel=1e-9), "2": pytest.approx(61.836, rel=1e-9)}
    assert process == pytest.approx(525.0, rel=1e-9)


def test_the_api_site_summary_splits_today_by_scope(tmp_path: Path) -> None:
    acc, _ = month(tmp_path)
    state = figures.State(LatestReadings(), AgentStatuses(), acc)
    today = figures.accounting(state, "c1", T0 + timedelta(minutes=30))
    assert today is not None
    e = today["today"]["emissions"]
    assert e["scope1_combustion_kgco2"] == pytest.approx(216.0, rel=1e-9)
    assert e["scope1_process_kgco2"] == pytest.approx(525.0, rel=1e-9)
    assert e["scope2_kgco2"] == pytest.approx(61.836, rel=1e-9)
    assert e["total_kgco2"] == pytest.approx(802.836, rel=1e-9)
    assert e["process_kgco2_by_line"] == {"kiln": pytest.approx(525.0, rel=1e-9)}
    (line,) = today["lines"]
    month_to_date = line["indicators"]
    assert month_to_date["window"] == "month_to_date"
    graded = {i["unit"]: (i["value"], i["grade"]) for i in month_to_date["indicators"]}
    assert graded == {
        "kgce/t": (pytest.approx(128.1895, rel=1e-9), None),
        "kWh/t": (pytest.approx(55.0, rel=1e-9), 2),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scopes": {"electricity": 1}}, "scopes.electricity: always scope 2"),
        ({"scopes": {"natural_gas": 2}}, "scopes.natural_gas: always scope 1"),
        (
            {"line": {"process_emissions": [CALCINATION | {"unit": "kgCO2/pieces"}]}},
            "unit 'kgCO2/pieces', expected 'kgCO2/t'",
        ),
        (
            {
                "line": {
                    "process_emissions": [{k: v for k, v in CALCINATION.items() if k != "source"}]
                }
            },
            "source\n  Field required",
        ),
        (
            {
                "line": {
                    "process_emissions": [
                        {k: v for k, v in CALCINATION.items() if k != "confidence"}
                    ]
                }
            },
            "confidence\n  Field required",
        ),
        (
            {"line": {"indicators": [{"custom": PER_PIECE}]}},
            "line kiln: benchmark per piece is per pieces, the line's output per t",
        ),
        (
            {"line": {"indicators": [{"energy_limit": "cement_clinker_comprehensive"}]}},
            "indicators: an indicator given twice (or the benchmark again)",
        ),
        (
            {"line": {"indicators": [{"energy_limit": "no_such_product"}]}},
            "line kiln: no energy-limit grades for 'no_such_product'",
        ),
    ],
)
def test_bad_scopes_process_factors_and_indicators_are_refused(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        AccountingConfig.model_validate(plant(**change))
    assert message in str(exc.value)


def test_a_line_with_one_benchmark_still_loads_and_is_graded(tmp_path: Path) -> None:
    # The configuration before several indicators: `benchmark` alone, no process factor.
    _, report = month(
        tmp_path, line={"indicators": [], "process_emissions": [], "green_factory": None}
    )
    (line,) = report["lines"]
    (only,) = line["indicators"]
    assert only["name"] == "GB 16780-2021 cement_clinker_comprehensive" and only["grade"] is None
    assert report["emissions"]["process_kgco2"] == 0.0
    assert report["emissions"]["total_kgco2"] == pytest.approx(277.836, rel=1e-9)


def test_benchmark_and_factor_sources_cite_the_document_and_its_table() -> None:
    """Item of issue 17: the standard or official table is the source (document number,
    table, edition); a blog or code repository only as a pointer after it."""
    tables = data.benchmarks()
    for limit in tables.energy_limits:
        assert limit.source.startswith(f"{limit.standard}, "), limit.source
        assert "Table" in limit.source or "table not checked" in limit.source, limit.source
        assert "; pointer: " in limit.source, limit.source
    for level in tables.ndrc:
        assert "能效标杆水平和基准水平" in level.source, level.source
        assert f"{level.edition} edition" in level.source, level.source
        assert "; pointer: " in level.source, level.source
    coal = data.coal_table()
    assert coal.electricity.equivalent_value.source.startswith("GB/T 2589-2008")
    assert coal.carriers["raw_coal"].source.startswith("GB/T 2589-2008")
    grid = data.grid_factors()
    assert grid.series["national_average"].source.startswith("MEE/NBS")
    assert "公告2024年第12号" in grid.series["national_average"].source
    every = [
        *(x.source for x in tables.energy_limits),
        *(x.source for x in tables.ndrc),
        coal.electricity.equivalent_value.source,
        *(x.source for x in coal.carriers.values()),
        *(x.source for x in grid.series.values()),
        *(x.source for x in data.fuel_factors().fuels.values()),
    ]
    assert not [s for s in every if "many code repos" in s]


def test_the_chinese_report_uses_the_scope_terms(tmp_path: Path) -> None:
    _, report = month(tmp_path)
    with i18n.using("zh-CN"):
        table = render(report, "table")
    # Full-width punctuation on purpose: the Chinese texts' own.
    assert "范围一：741.000 kgCO2（燃料燃烧 216.000，工业生产过程 525.000）" in table  # noqa: RUF001
    assert "能源 CO2 277.836 kgCO2 + 过程 CO2 525.000 kgCO2 = 802.836 kgCO2" in table
    assert "2 级" in table and "超过 3 级：未达到能耗限定值" in table  # noqa: RUF001
    assert "Scope 1" not in table and "grade 2" not in table


amounts = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(
    st.lists(st.tuples(st.sampled_from([1, 2]), amounts), max_size=12),
    st.lists(st.floats(min_value=0, max_value=1e9), max_size=4),
    st.none() | st.floats(min_value=0, max_value=1e9),
)
def test_every_scope_total_is_the_exact_sum_of_its_parts(
    energy: list[tuple[int, float]], process_kg: list[float], market: float | None
) -> None:
    """ROUNDING_RULE: each figure is the exact sum (fsum) of the parts listed with it:
    a subtotal of the meters' CO2, a total of the subtotals printed beside it."""
    s = by_scope(energy, process_kg, market)
    assert s.scope1_combustion == math.fsum(kg for scope, kg in energy if scope == 1)
    assert s.scope2_location == math.fsum(kg for scope, kg in energy if scope == 2)
    assert s.scope1_process == math.fsum(process_kg)
    assert s.scope1 == math.fsum([s.scope1_combustion, s.scope1_process])
    assert s.energy_location == math.fsum([s.scope1_combustion, s.scope2_location])
    assert s.total_location == math.fsum([s.scope1_combustion, s.scope1_process, s.scope2_location])
    if market is None:
        assert s.total_market is None
    else:
        assert s.total_market == math.fsum([s.scope1_combustion, s.scope1_process, market])


def test_energy_co2_of_another_scope_is_refused() -> None:
    with pytest.raises(ValueError, match=r"scope \[3\]: energy CO2 is scope 1 or 2"):
        by_scope([(3, 1.0)])


def test_process_co2_is_output_times_the_factor() -> None:
    # 2.5 t x 525 kgCO2/t = 1312.5 kg
    e = process(2.5, "t", "clinker calcination", 525, "lab", Confidence.CONFIGURED)
    assert e.kg_co2 == 1312.5
    assert e.basis == "2.5 t x 525 kgCO2/t (clinker calcination)"


def test_every_carrier_has_a_scope_and_a_printed_name() -> None:
    assert set(CARRIER_SCOPE) == set(Carrier)
    assert {c.value for c in Carrier} <= TERMS
    with i18n.using("zh-CN"):
        untranslated = [c.value for c in Carrier if term(c.value) == c.value]
    assert untranslated == []


@pytest.mark.parametrize("carrier", list(Carrier))
@pytest.mark.parametrize("scope", [1, 2])
def test_a_scope_is_configurable_only_for_what_a_site_may_make_or_buy(
    carrier: Carrier, scope: int
) -> None:
    raw = plant(scopes={carrier.value: scope})
    adjustable = carrier in (Carrier.STEAM, Carrier.HOT_WATER, Carrier.COMPRESSED_AIR)
    if adjustable or scope == CARRIER_SCOPE[carrier]:
        site = AccountingConfig.model_validate(raw).sites[0]
        assert site.scope(carrier) == scope
    else:
        with pytest.raises(ValidationError, match=f"scopes.{carrier.value}: always scope"):
            AccountingConfig.model_validate(raw)
