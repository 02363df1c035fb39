"""CO2 of electricity and fuels. Pure.

Electricity, location-based: kWh x a grid factor named by series, year and region.
Market-based: the kWh covered by contractual instruments (green certificates, PPAs) at
the instrument's factor (0 for renewable), the rest at a residual factor the user names.
A time-varying hourly factor series, when given, overrides the static factor hour by hour.
Fuels: quantity x the published factor per unit, or quantity x calorific value x carbon
content x oxidation x 44/12 (GB/T 32150 style) when the calorific value is measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.accounting.core.factors import Confidence, FuelTable, GridFactor
from collector.accounting.core.series import Amount, floor_time
from collector.accounting.core.units import convert

CO2_PER_C = 44.0 / 12.0


@dataclass(frozen=True)
class Emission:
    kg_co2: float
    basis: str
    """The arithmetic in words: quantity x factor (series, year)."""
    source: str
    confidence: Confidence


def location_based(kwh: float, factor: GridFactor) -> Emission:
    return Emission(
        kwh * factor.value,
        f"{kwh:g} kWh x {factor.label}",
        factor.source,
        factor.confidence,
    )


@dataclass(frozen=True)
class Instrument:
    """A contractual instrument: green certificates or a PPA covering `kwh`."""

    kind: str
    kwh: float
    kg_co2_per_kwh: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kwh < 0 or self.kg_co2_per_kwh < 0:
            raise ValueError("an instrument's kWh and factor must not be negative")


@dataclass(frozen=True)
class MarketBased:
    emission: Emission
    covered_kwh: float
    """kWh attributed to instruments (at most the consumption)."""
    unused_kwh: float
    """Instrument kWh beyond the consumption: not used, never carried into negative CO2."""


def market_based(
    kwh: float,
    residual: GridFactor,
    instruments: Sequence[Instrument] = (),
    green_share: float | None = None,
) -> MarketBased:
    """Market-based Scope 2: instruments first, the rest at the residual factor.

    green_share (0..1) is a shorthand for one zero-emission instrument covering that share.
    """
    items = list(instruments)
    if green_share is not None:
        if not 0 <= green_share <= 1:
            raise ValueError("green_share must be within 0..1")
        items.append(Instrument("green share", kwh * green_share))
    left, kg, covered, parts = kwh, 0.0, 0.0, []
    for inst in items:
        used = min(inst.kwh, left)
        left -= used
        covered += used
        kg += used * inst.kg_co2_per_kwh
        parts.append(f"{used:g} kWh {inst.kind} x {inst.kg_co2_per_kwh:g}")
    kg += left * residual.value
    parts.append(f"{left:g} kWh x {residual.label}")
    unused = math.fsum(i.kwh for i in items) - covered
    return MarketBased(
        Emission(kg, " + ".join(parts), residual.source, residual.confidence), covered, unused
    )


@dataclass(frozen=True)
class Hourly:
    emission: Emission
    kwh_from_series: float
    kwh_from_fallback: float


def hourly(
    energy: Iterable[Amount],
    factors: Mapping[datetime, float],
    fallback: GridFactor,
    series_source: str = "hourly factor series",
) -> Hourly:
    """CO2 of energy amounts with a factor per UTC hour (keyed by the hour's start);
    hours the series lacks use the static fallback (reported by its kWh)."""
    kg = from_series = from_fallback = 0.0
    step = timedelta(hours=1)
    for a in energy:
        hour = floor_time(a.start, step)
        while hour < a.end:
            part = a.share(hour, hour + step)
            f = factors.get(hour)
            if f is None:
                kg += part * fallback.value
                from_fallback += part
            else:
                kg += part * f
                from_series += part
            hour += step
    basis = f"{from_series:g} kWh x {series_source} + {from_fallback:g} kWh x {fallback.label}"
    confidence = Confidence.CONFIGURED if from_series else fallback.confidence
    return Hourly(Emission(kg, basis, series_source, confidence), from_series, from_fallback)


def fuel(name: str, quantity: float, unit: str, table: FuelTable) -> Emission:
    """quantity (kg, t, m3) of a fuel x its published factor per unit."""
    f = table.fuels[name]
    amount = convert(quantity, unit, f.unit)
    return Emission(
        amount * f.per_unit,
        f"{amount:g} {f.unit} {name} x {f.per_unit:g} kgCO2/{f.unit}",
        f.source,
        f.confidence,
    )


def fuel_by_calorific_value(
    name: str,
    quantity: float,
    unit: str,
    table: FuelTable,
    ncv_gj_per_unit: float | None = None,
    carbon_tc_per_tj: float | None = None,
    oxidation: float | None = None,
) -> Emission:
    """quantity x NCV (GJ per kg or m3) x carbon (tC/TJ) x oxidation x 44/12, in kgCO2.

    Measured values replace the table's; the table's NCV is per 1000 units.
    """
    f = table.fuels[name]
    amount = convert(quantity, unit, f.unit)
    measured = ncv_gj_per_unit is not None or carbon_tc_per_tj is not None
    ncv = ncv_gj_per_unit if ncv_gj_per_unit is not None else f.ncv_gj / 1000.0
    carbon = carbon_tc_per_tj if carbon_tc_per_tj is not None else f.carbon_tc_per_tj
    ox = oxidation if oxidation is not None else f.oxidation
    gj = amount * ncv
    return Emission(
        gj * carbon * ox * CO2_PER_C,
        f"{amount:g} {f.unit} x {ncv:g} GJ/{f.unit} x {carbon:g} tC/TJ x {ox:g} x 44/12",
        f.source if not measured else f"measured calorific value; else {f.source}",
        Confidence.CONFIGURED if measured else f.confidence,
    )
