"""The sourced figures the ledger computes with, as typed, validated models. Pure.

Every figure carries the source it was transcribed from and a confidence:
H = an official text or several independent sources agree; M = one credible secondary
source; L = a weak source. Unconfirmed figures are not in the data files at all.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Finite = Annotated[float, Field(allow_inf_nan=False)]


class Confidence(StrEnum):
    HIGH = "H"
    MEDIUM = "M"
    LOW = "L"
    CONFIGURED = "configured"
    """Given by the user in the site's configuration (a measured value, a contract)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Model):
    """Where a figure comes from."""

    source: str = Field(min_length=1)
    confidence: Confidence
    note: str | None = None


# --- coal equivalent (GB/T 2589) -------------------------------------------------------


class CoalCoefficient(Sourced):
    """kgce per unit of a carrier. `value` is None where no single figure exists."""

    value: Finite | None
    unit: str = Field(pattern=r"^kgce/(kWh|kg|t|m3|MJ)$")
    range: tuple[Finite, Finite] | None = None
    lhv_kj: Finite | None = Field(default=None, description="LHV behind value, kJ per lhv_per")
    lhv_per: str | None = None
    basis: str | None = None

    @property
    def per(self) -> str:
        """The unit the coefficient is per: kWh, kg, t, m3 or MJ."""
        return self.unit.split("/", 1)[1]


class ElectricityCoefficients(_Model):
    equivalent_value: CoalCoefficient
    equal_value: CoalCoefficient


class CoalTable(_Model):
    kgce_kj: Finite = Field(gt=0, description="kJ of LHV in 1 kgce")
    electricity: ElectricityCoefficients
    carriers: dict[str, CoalCoefficient]


# --- grid and fuel CO2 factors -------------------------------------------------------


class FactorPurpose(StrEnum):
    SCOPE2_LOCATION = "scope2_location"
    SCOPE2_RESIDUAL = "scope2_residual"
    FOSSIL = "fossil"
    ETS_REPORTING = "ets_reporting"
    PRODUCT_FOOTPRINT = "product_footprint"


class GridSeries(Sourced):
    title: str
    purpose: FactorPurpose
    published: dict[int, str] = Field(default_factory=dict)


class _GridRow(_Model):
    series: str
    year: int = Field(ge=2000, le=2100)
    region: str | None = None
    value: Finite = Field(ge=0)


class GridFactor(Sourced):
    """One published grid factor, kgCO2/kWh: a series, a year and (optionally) a region."""

    series: str
    year: int
    region: str | None
    value: Finite = Field(ge=0, description="kgCO2/kWh")
    purpose: FactorPurpose

    @property
    def label(self) -> str:
        where = f" {self.region}" if self.region else ""
        return f"{self.series} {self.year}{where}: {self.value} kgCO2/kWh"


class GridFactorTable(_Model):
    series: dict[str, GridSeries]
    factors: list[_GridRow]

    @model_validator(mode="after")
    def _check(self) -> GridFactorTable:
        seen: set[tuple[str, int, str | None]] = set()
        for row in self.factors:
            if row.series not in self.series:
                raise ValueError(f"factor of unknown series {row.series!r}")
            key = (row.series, row.year, row.region)
            if key in seen:
                raise ValueError(f"duplicate grid factor {key}")
            seen.add(key)
        return self

    def get(self, series: str, year: int, region: str | None = None) -> GridFactor:
        """The factor of exactly this series, year and region; KeyError naming what exists.

        No fallback to another year, series or region: that choice is the user's.
        """
        if series not in self.series:
            raise KeyError(f"no grid factor series {series!r}; known: {sorted(self.series)}")
        for row in self.factors:
            if (row.series, row.year, row.region) == (series, year, region):
                meta = self.series[series]
                return GridFactor(
                    series=series,
                    year=year,
                    region=region,
                    value=row.value,
                    purpose=meta.purpose,
                    source=meta.source,
                    confidence=meta.confidence,
                    note=meta.note,
                )
        have = sorted(
            f"{r.year}{'/' + r.region if r.region else ''}"
            for r in self.factors
            if r.series == series
        )
        where = f" region {region!r}" if region else ""
        raise KeyError(f"no {series} grid factor for {year}{where}; published: {have}")

    def years(self, series: str, region: str | None = None) -> list[int]:
        return sorted(r.year for r in self.factors if r.series == series and r.region == region)


class FuelFactor(Sourced):
    """CO2 of burning one fuel: per unit as published, or from its calorific value."""

    unit: str = Field(pattern=r"^(kg|m3)$")
    per_unit: Finite = Field(gt=0, description="kgCO2 per unit (published, rounded)")
    ncv_gj: Finite = Field(gt=0, description="GJ per 1000 units (per t or per 1000 m3)")
    carbon_tc_per_tj: Finite = Field(gt=0)
    oxidation: Finite = Field(gt=0, le=1)

    @property
    def kg_co2_per_gj(self) -> float:
        """carbon content x oxidation x 44/12: tCO2/TJ, which is kgCO2/GJ."""
        return self.carbon_tc_per_tj * self.oxidation * 44.0 / 12.0


class FuelTable(_Model):
    fuels: dict[str, FuelFactor]
    ipcc_1996_carbon_content_tc_per_tj: dict[str, Finite]


# --- benchmarks ------------------------------------------------------------------------


class NdrcLevel(Sourced):
    """An NDRC benchmark (标杆) / baseline (基准) pair; lower is better."""

    product: str
    unit: str
    benchmark: Finite
    baseline: Finite
    edition: str

    @model_validator(mode="after")
    def _check(self) -> NdrcLevel:
        if self.benchmark > self.baseline:
            raise ValueError(f"{self.product}: benchmark above baseline")
        return self


class EnergyLimit(Sourced):
    """Grades 1/2/3 of a product energy-consumption limit standard; grade 3 is the limit."""

    standard: str
    product: str
    unit: str
    grades: tuple[Finite, Finite | None, Finite]

    @model_validator(mode="after")
    def _check(self) -> EnergyLimit:
        values = [g for g in self.grades if g is not None]
        if values != sorted(values):
            raise ValueError(f"{self.product}: grades must not decrease from 1 to 3")
        return self


class BenchmarkTable(_Model):
    ndrc: list[NdrcLevel]
    energy_limits: list[EnergyLimit]

    def ndrc_level(self, product: str, edition: str | None = None) -> NdrcLevel:
        """The NDRC entry for a product: the given edition, else the newest one held."""
        rows = [r for r in self.ndrc if r.product == product]
        if edition is not None:
            rows = [r for r in rows if r.edition == edition]
        if not rows:
            known = sorted({r.product for r in self.ndrc})
            raise KeyError(f"no NDRC level for {product!r} (edition {edition}); known: {known}")
        return max(rows, key=lambda r: r.edition)

    def energy_limit(self, product: str) -> EnergyLimit:
        for row in self.energy_limits:
            if row.product == product:
                return row
        known = sorted(r.product for r in self.energy_limits)
        raise KeyError(f"no energy-limit grades for {product!r}; known: {known}")


# --- targets ---------------------------------------------------------------------------


class ReductionTarget(Sourced):
    reduction: Finite = Field(gt=0, lt=1, description="fraction, 0.135 for -13.5 %")
    per: str


class TargetDefaults(_Model):
    base_year: int
    target_year: int
    energy: ReductionTarget
    co2: ReductionTarget
