"""The plant model in the collector config: what it accepts, and what it refuses (naming why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from collector.accounting.core.conversion import CoalBasis
from collector.config import load_config
from collector.plant import AccountingConfig, resolve_benchmark

ROOT = Path(__file__).resolve().parent.parent


def site(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "s1",
        "grid_factor": {"series": "national_average", "year": 2023},
        "meters": [
            {"id": "incomer", "carrier": "electricity", "role": "boundary"},
            {"id": "l1", "carrier": "electricity", "line": "kiln"},
        ],
        "lines": [
            {
                "id": "kiln",
                "product": "clinker",
                "output_unit": "t",
                "benchmark": {"ndrc": "cement_clinker"},
                "output": {"meter": "scale", "quantity": "mass"},
            }
        ],
    }
    base.update(changes)
    return base


def accounting(**changes: Any) -> AccountingConfig:
    return AccountingConfig.model_validate({"sites": [site(**changes)]})


def test_a_minimal_site_resolves_its_factor_and_benchmark() -> None:
    config = accounting()
    s = config.sites[0]
    assert s.grid_factor.resolve().value == 0.5306
    judged = resolve_benchmark(s.lines[0])
    assert (judged.benchmark, judged.baseline, judged.unit) == (100, 117, "kgce/t")
    assert config.conversion.basis is CoalBasis.EQUIVALENT


def test_the_example_and_demo_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "t")
    monkeypatch.setenv("MQTT_PASSWORD", "p")
    example = load_config(ROOT / "configs/collector.example.yaml").accounting
    demo = load_config(ROOT / "configs/demo/collector.yaml").accounting
    assert example is not None and demo is not None
    assert [m.id for m in demo.sites[0].meters] == [
        "incomer",
        "air-compressor",
        "line-1",
        "line-2",
        "line-3",
        "other-loads",
    ]
    assert demo.sites[0].meter("other-loads").virtual


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grid_factor": {"series": "national_average", "year": 2019}}, "no national_average"),
        ({"grid_factor": {"series": "grid", "year": 2023}}, "no grid factor series"),
        (
            {"meters": [{"id": "gas", "carrier": "natural_gas", "role": "boundary"}]},
            "no coal-equivalent coefficient",
        ),
        (
            {"meters": [{"id": "st", "carrier": "steam"}]},
            "no coal-equivalent coefficient",
        ),
        (
            {
                "meters": [
                    {"id": "a", "carrier": "electricity"},
                    {"id": "a", "carrier": "electricity"},
                ]
            },
            "meters named twice",
        ),
        (
            {"meters": [{"id": "v", "carrier": "electricity", "plus": ["nope"]}]},
            "not a real meter",
        ),
        (
            {"meters": [{"id": "m", "carrier": "electricity", "line": "nowhere"}]},
            "no line 'nowhere'",
        ),
        (
            {"meters": [{"id": "st", "carrier": "steam", "quantity": "x_steam_mass"}]},
            "'x_steam_mass' is a user-named quantity: only canonical counters are accounted",
        ),
        (
            {
                "lines": [
                    {
                        "id": "kiln",
                        "product": "clinker",
                        "output_unit": "t",
                        "benchmark": {"ndrc": "cement_clinker"},
                        "output": {"meter": "scale", "quantity": "x_clinker"},
                    }
                ]
            },
            "'x_clinker' is a user-named quantity: only canonical counters are accounted",
        ),
    ],
)
def test_refused_with_the_reason(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        accounting(**changes)


def test_a_benchmark_per_another_unit_than_the_output_is_refused() -> None:
    lines = site()["lines"]
    lines[0]["output_unit"] = "pieces"
    with pytest.raises(ValidationError, match="per t, the line's output per pieces"):
        accounting(lines=lines)


def test_equal_value_needs_its_configured_coefficient() -> None:
    with pytest.raises(ValidationError, match="equal value"):
        AccountingConfig.model_validate({"conversion": {"basis": "equal"}, "sites": [site()]})
    config = AccountingConfig.model_validate(
        {
            "conversion": {
                "basis": "equal",
                "electricity_equal_value": {
                    "value": 0.3,
                    "unit": "kgce/kWh",
                    "source": "NBS supply coal rate",
                },
            },
            "sites": [site()],
        }
    )
    assert config.conversion_settings.electricity_equal_value is not None


def test_steam_with_configured_coefficient_and_co2_factor_is_accepted() -> None:
    meters = [
        {"id": "st", "carrier": "steam", "role": "boundary"},
    ]
    with pytest.raises(ValidationError, match="no CO2 factor for steam"):
        AccountingConfig.model_validate(
            {
                "conversion": {
                    "coefficients": {"steam": {"value": 108.6, "unit": "kgce/t", "source": "x"}}
                },
                "sites": [site(meters=meters)],
            }
        )
    AccountingConfig.model_validate(
        {
            "conversion": {
                "coefficients": {"steam": {"value": 108.6, "unit": "kgce/t", "source": "x"}}
            },
            "sites": [
                site(
                    meters=meters,
                    co2_factors={"steam": {"value": 290, "unit": "kgCO2/t", "source": "y"}},
                )
            ],
        }
    )
