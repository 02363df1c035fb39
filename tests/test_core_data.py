"""The packaged, sourced data files: they load, they are consistent, and they hold no
figure that the domain reference marks unconfirmed."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import pytest
from test_architecture import IO_LIBRARIES, imports

from collector.accounting.core import data
from collector.accounting.core.factors import Confidence, FactorPurpose

LEDGER = Path(__file__).resolve().parent.parent / "collector" / "accounting" / "core"


@pytest.mark.parametrize("module", sorted(p.name for p in LEDGER.glob("*.py")))
def test_every_ledger_module_is_pure(module: str) -> None:
    used = imports(LEDGER / module)
    doing_io = {n for n in used for lib in IO_LIBRARIES if n == lib or n.startswith(lib + ".")}
    assert doing_io == set()


def test_only_the_loader_touches_package_resources() -> None:
    reading = {"importlib", "importlib.resources", "yaml"}
    readers = {p.name for p in LEDGER.glob("*.py") if reading & imports(p)}
    assert readers == {"data.py"}


def test_electricity_equivalent_value_is_gbt_2589() -> None:
    eq = data.coal_table().electricity.equivalent_value
    assert eq.value == 0.1229
    assert eq.confidence is Confidence.HIGH
    # 3600 kJ/kWh / 29307 kJ/kgce = 0.12284 kgce/kWh, published rounded to 0.1229
    assert math.isclose(3600 / data.coal_table().kgce_kj, eq.value, rel_tol=1e-3)


def test_electricity_equal_value_has_no_default() -> None:
    assert data.coal_table().electricity.equal_value.value is None


def test_coal_coefficients_agree_with_their_calorific_values() -> None:
    table = data.coal_table()
    checked = 0
    for name, coef in table.carriers.items():
        assert coef.source and coef.confidence, name
        if coef.value is not None and coef.lhv_kj is not None:
            # kgce per unit = LHV (kJ per unit) / 29307 kJ/kgce
            assert math.isclose(coef.lhv_kj / table.kgce_kj, coef.value, rel_tol=2e-3), name
            checked += 1
    assert checked >= 12
    # heat: 1 MJ / 29.307 MJ/kgce = 0.034121 kgce/MJ
    assert math.isclose(table.carriers["heat"].value or 0, 1000 / 29307, rel_tol=1e-3)


def test_a_range_without_a_single_value_stays_a_range() -> None:
    cog = data.coal_table().carriers["coke_oven_gas"]
    assert cog.value is None
    assert cog.range == (0.5714, 0.6143)


def test_fuel_factors_agree_with_their_components() -> None:
    for name, fuel in data.fuel_factors().fuels.items():
        # EF = NCV x carbon x oxidation x 44/12; the table rounds to 2 significant digits
        computed = fuel.ncv_gj * fuel.kg_co2_per_gj / 1000
        assert math.isclose(computed, fuel.per_unit, rel_tol=0.02), (name, computed)
    # the reference's own check: 38.931 x 15.3 x 0.99 x 44/12 = 2.162 kgCO2/m3
    gas = data.fuel_factors().fuels["natural_gas"]
    assert math.isclose(gas.ncv_gj * gas.kg_co2_per_gj / 1000, 2.162, rel_tol=1e-3)


def test_every_grid_factor_has_a_series_and_a_year() -> None:
    table = data.grid_factors()
    assert table.get("national_average", 2022).value == 0.5366
    assert table.get("national_average", 2023).value == 0.5306
    assert table.get("power_sector_reporting", 2022).value == 0.5703
    assert table.get("national_excl_market_nonfossil", 2022).value == 0.5856
    assert table.get("regional_average", 2023, "east").value == 0.55
    assert table.get("provincial_average", 2022, "yunnan").value == 0.1073
    fp = table.get("electricity_carbon_footprint", 2023)
    assert fp.purpose is FactorPurpose.PRODUCT_FOOTPRINT


@pytest.mark.parametrize(
    ("series", "year", "region"),
    [
        ("regional_average", 2021, "east"),  # unconfirmed
        ("national_excl_market_nonfossil", 2021, None),  # not in the reference
        ("provincial_average", 2022, "jiangsu"),  # not among the examples seen
        ("national_average", 2024, None),  # not published
    ],
)
def test_no_fallback_to_another_year_or_region(series: str, year: int, region: str | None) -> None:
    with pytest.raises(KeyError, match="published"):
        data.grid_factors().get(series, year, region)


def test_an_unnamed_grid_factor_does_not_exist() -> None:
    with pytest.raises(KeyError, match="no grid factor series"):
        data.grid_factors().get("grid", 2022)


def test_benchmarks() -> None:
    table = data.benchmarks()
    clinker = table.ndrc_level("cement_clinker")
    assert (clinker.benchmark, clinker.baseline, clinker.edition) == (100, 117, "2021")
    bof = table.ndrc_level("bof_converter")
    assert (bof.benchmark, bof.baseline) == (-30, -10)
    assert table.energy_limit("cement_clinker_comprehensive").grades == (100, 107, 117)
    assert table.energy_limit("eaf_lt50t").grades == (61, None, 86)
    for level in table.ndrc:
        assert level.source and level.confidence and level.edition


def test_unconfirmed_figures_are_not_shipped() -> None:
    text = "\n".join(
        resources.files("collector").joinpath("data", name).read_text(encoding="utf-8")
        for name in (
            "coal_equivalent.yaml",
            "grid_factors.yaml",
            "fuel_co2.yaml",
            "benchmarks.yaml",
            "targets.yaml",
        )
    )
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "0.3025" not in body  # an example equal value from one code spec
    assert "hot_water" not in body
    products = {r.product for r in data.benchmarks().ndrc}
    assert not products & {"flat_glass", "caustic_soda", "ammonia", "eaf_steel", "sinter"}


def test_target_defaults() -> None:
    t = data.target_defaults()
    assert (t.base_year, t.target_year) == (2020, 2025)
    assert (t.energy.reduction, t.co2.reduction) == (0.135, 0.18)
