"""Reads the packaged, sourced data files (collector/data/*.yaml) into validated models.

The only ledger module that reads anything, and only package resources: no network, no
database. Keys starting with '_' in a file are YAML anchors for shared fields, not data.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from collector.accounting.core.factors import (
    BenchmarkTable,
    CoalTable,
    FuelTable,
    GridFactorTable,
    TargetDefaults,
)

_M = TypeVar("_M", bound=BaseModel)


def _load(name: str, model: type[_M]) -> _M:
    text = resources.files("collector").joinpath("data", name).read_text(encoding="utf-8")
    raw: Any = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{name}: not a mapping")
    return model.model_validate({k: v for k, v in raw.items() if not str(k).startswith("_")})


@cache
def coal_table() -> CoalTable:
    """GB/T 2589 coal-equivalent coefficients (coal_equivalent.yaml)."""
    return _load("coal_equivalent.yaml", CoalTable)


@cache
def grid_factors() -> GridFactorTable:
    """Grid CO2 factors by series, year and region (grid_factors.yaml)."""
    return _load("grid_factors.yaml", GridFactorTable)


@cache
def fuel_factors() -> FuelTable:
    """Fuel combustion CO2 factors (fuel_co2.yaml)."""
    return _load("fuel_co2.yaml", FuelTable)


@cache
def benchmarks() -> BenchmarkTable:
    """NDRC benchmark/baseline levels and energy-limit grades (benchmarks.yaml)."""
    return _load("benchmarks.yaml", BenchmarkTable)


@cache
def target_defaults() -> TargetDefaults:
    """Default reduction targets, 2025 vs 2020 (targets.yaml)."""
    return _load("targets.yaml", TargetDefaults)
