"""Emissions by scope and process emissions. Pure.

Scope 1: fuels burned on site (combustion) and CO2 the process itself releases (clinker
calcination: the carbonates of the raw meal); scope 2: purchased electricity, heat and
steam (GHG Protocol; GB/T 32150-2015 counts the same sources: fuel combustion, process,
purchased electricity and heat). Process CO2 is output x a configured, sourced factor
per unit of output. Energy CO2 and process CO2 are kept apart and added for the total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from collector.accounting.core.carbon import Emission
from collector.accounting.core.factors import Confidence


def process(
    output: float,
    output_unit: str,
    name: str,
    kg_co2_per_unit: float,
    source: str,
    confidence: Confidence,
) -> Emission:
    """CO2 of a process: output x its factor per unit of output."""
    return Emission(
        output * kg_co2_per_unit,
        f"{output:g} {output_unit} x {kg_co2_per_unit:g} kgCO2/{output_unit} ({name})",
        source,
        confidence,
    )


@dataclass(frozen=True)
class ScopeSplit:
    """A site's (or line's) CO2, kg, by scope; every total the exact sum of its parts."""

    scope1_combustion: float
    scope1_process: float
    scope2_location: float
    scope2_market: float | None
    """None: no market-based figure (no contractual instruments configured)."""

    @property
    def scope1(self) -> float:
        return math.fsum((self.scope1_combustion, self.scope1_process))

    @property
    def energy_location(self) -> float:
        """Energy CO2 (combustion and purchased energy), location-based."""
        return math.fsum((self.scope1_combustion, self.scope2_location))

    @property
    def total_location(self) -> float:
        """Energy CO2 + process CO2, location-based."""
        return math.fsum((self.scope1_combustion, self.scope1_process, self.scope2_location))

    @property
    def total_market(self) -> float | None:
        if self.scope2_market is None:
            return None
        return math.fsum((self.scope1_combustion, self.scope1_process, self.scope2_market))


def by_scope(
    energy: Iterable[tuple[int, float]],
    process_kg: Iterable[float] = (),
    scope2_market: float | None = None,
) -> ScopeSplit:
    """Energy CO2 given as (scope, kg) parts, process CO2 as kg parts."""
    parts = list(energy)
    unknown = sorted({s for s, _ in parts} - {1, 2})
    if unknown:
        raise ValueError(f"scope {unknown}: energy CO2 is scope 1 or 2")
    return ScopeSplit(
        math.fsum(kg for s, kg in parts if s == 1),
        math.fsum(process_kg),
        math.fsum(kg for s, kg in parts if s == 2),
        scope2_market,
    )
