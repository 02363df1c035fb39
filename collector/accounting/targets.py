"""What is accounted in a plant model: each meter's counter series (targets) with its coal-
equivalent and CO2 factors, and the production output series.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from collector.accounting.core import data
from collector.accounting.core.carbon import fuel
from collector.accounting.core.conversion import to_kgce
from collector.accounting.core.counters import CounterSpec, Replacement
from collector.plant import (
    AccountingConfig,
    CounterSettings,
    HourlyGridFactor,
    MeterConfig,
    OutputFromMeter,
    SiteConfig,
    _coal_key,
    co2_route,
)
from greengauge.contract import Quantity

OUTPUT_PREFIX: Final = "output:"


SITE_LINE: Final = "_site"


VIRTUAL_ROLE: Final = "virtual"


"""the `role` tag of a virtual meter's energy_interval points (else Role's values)"""


"""The `line` tag of site-level figures."""


def output_series(line: str) -> str:
    return OUTPUT_PREFIX + line


@dataclass(frozen=True, slots=True)
class Target:
    """Where one quantity of one wire meter goes: a series of the accounting database."""

    series: str
    meter: str
    """The wire meter read (its recorded swaps apply)."""
    quantity: Quantity
    scale: float
    spec: CounterSpec
    integrate: bool
    kgce_per_unit: float
    kgco2_per_unit: float
    hourly: HourlyGridFactor | None = None
    """Overrides kgco2_per_unit for the hours it covers (grid electricity only)."""

    def kgco2_at(self, start_ms: int) -> float:
        if self.hourly is not None:
            factor = self.hourly.factor_at(start_ms // 3_600_000)
            if factor is not None:
                return factor  # grid electricity: kWh, the unit the factor is per
        return self.kgco2_per_unit


def _spec(c: CounterSettings) -> CounterSpec:
    return CounterSpec(c.modulus, c.max_rate, c.tolerance)


def meter_factors(
    config: AccountingConfig, site: SiteConfig, meter: MeterConfig
) -> tuple[float, float]:
    """kgce and kgCO2 per native unit of a meter's carrier (location-based CO2)."""
    table = data.coal_table()
    kgce = to_kgce(_coal_key(meter.carrier), 1.0, meter.unit, table, config.conversion_settings)
    route, value, name = co2_route(site, meter.carrier)
    if route == "grid":
        co2 = site.grid_factor.resolve().value
    elif route == "fuel":
        co2 = fuel(name, 1.0, meter.unit, data.fuel_factors()).kg_co2
    else:
        assert value is not None
        co2 = value
    return kgce.value, co2


def targets_of(config: AccountingConfig, site: SiteConfig) -> dict[str, list[Target]]:
    by_meter: dict[str, list[Target]] = defaultdict(list)
    for m in site.meters:
        if m.virtual:
            continue
        kgce, co2 = meter_factors(config, site, m)
        route, _, _ = co2_route(site, m.carrier)
        hourly = site.hourly_grid_factor if route == "grid" else None
        by_meter[m.id].append(
            Target(
                m.id,
                m.id,
                m.source_quantity,
                m.scale,
                _spec(m.counter),
                m.estimated,
                kgce,
                co2,
                hourly,
            )
        )
    for line in site.lines:
        out = line.output
        if isinstance(out, OutputFromMeter):
            by_meter[out.meter].append(
                Target(
                    output_series(line.id),
                    out.meter,
                    Quantity(out.quantity),
                    out.scale,
                    _spec(out.counter),
                    False,
                    0.0,
                    0.0,
                )
            )
    return dict(by_meter)


def scaled(swap: Replacement, scale: float) -> Replacement:
    """A swap's readings in the series' unit (readings x the meter's scale)."""
    old = None if swap.old_final is None else swap.old_final * scale
    return Replacement(swap.ts, swap.new_initial * scale, old, swap.by)
