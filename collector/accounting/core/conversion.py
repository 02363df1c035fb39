"""Energy carriers to standard coal equivalent (kgce), GB/T 2589. Pure.

The coefficient for each carrier is chosen, in order: a coefficient configured for the
site; a measured lower heating value (LHV / 29307 kJ per kgce); for electricity the
selected basis (equivalent value 0.1229 kgce/kWh by default, or the equal value, which
has no official fixed number and must be configured); the packaged GB/T 2589 figure.
The result names the coefficient used, its source and confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from collector.accounting.core.factors import CoalTable, Confidence
from collector.accounting.core.units import factor

ELECTRICITY = "electricity"


class CoalBasis(StrEnum):
    EQUIVALENT = "equivalent"
    """当量值: the energy content of the carrier itself (electricity 3600 kJ/kWh)."""
    EQUAL = "equal"
    """等价值: the primary energy used to make it (electricity: the year's coal rate)."""


@dataclass(frozen=True)
class Configured:
    """A figure the site configures, with where it comes from (a lab report, a notice)."""

    value: float
    unit: str
    """For a coefficient 'kgce/<unit>'; for a measured LHV 'kJ/<unit>'."""
    source: str

    def __post_init__(self) -> None:
        if not self.value > 0:
            raise ValueError(f"{self.unit}: must be positive")
        if not self.source:
            raise ValueError("a configured figure needs its source")


@dataclass(frozen=True)
class ConversionSettings:
    basis: CoalBasis = CoalBasis.EQUIVALENT
    electricity_equal_value: Configured | None = None
    """kgce/kWh, the year's thermal-power supply coal rate; required for the EQUAL basis."""
    measured_lhv: Mapping[str, Configured] = field(default_factory=dict)
    """Per carrier, a measured lower heating value in 'kJ/kg', 'kJ/m3' or 'kJ/t'."""
    coefficients: Mapping[str, Configured] = field(default_factory=dict)
    """Per carrier, a coefficient in 'kgce/<unit>' that replaces every other."""


@dataclass(frozen=True)
class Coefficient:
    carrier: str
    value: float
    per: str
    """The unit the coefficient is per: kWh, kg, t, m3 or MJ."""
    how: str
    source: str
    confidence: Confidence


@dataclass(frozen=True)
class Kgce:
    value: float
    quantity: float
    unit: str
    coefficient: Coefficient


class MissingCoefficient(LookupError):
    """No coefficient can be chosen for a carrier without configuring one."""


def _per(unit: str, prefix: str) -> str:
    head, _, per = unit.partition("/")
    if head != prefix or not per:
        raise ValueError(f"{unit!r}: expected '{prefix}/<unit>'")
    return per


def coefficient(
    carrier: str, table: CoalTable, settings: ConversionSettings | None = None
) -> Coefficient:
    """The kgce coefficient for a carrier under the settings; MissingCoefficient if none."""
    s = settings or ConversionSettings()
    if carrier in s.coefficients:
        c = s.coefficients[carrier]
        return Coefficient(
            carrier, c.value, _per(c.unit, "kgce"), "configured", c.source, Confidence.CONFIGURED
        )
    if carrier in s.measured_lhv:
        m = s.measured_lhv[carrier]
        return Coefficient(
            carrier,
            m.value / table.kgce_kj,
            _per(m.unit, "kJ"),
            f"measured LHV {m.value:g} {m.unit} / {table.kgce_kj:g} kJ/kgce",
            m.source,
            Confidence.CONFIGURED,
        )
    if carrier == ELECTRICITY:
        if s.basis is CoalBasis.EQUAL:
            if s.electricity_equal_value is None:
                raise MissingCoefficient(
                    "electricity at equal value (等价值) needs the year's thermal-power supply "
                    "coal rate configured (kgce/kWh): GB/T 2589 gives no fixed number"
                )
            c = s.electricity_equal_value
            return Coefficient(
                carrier,
                c.value,
                _per(c.unit, "kgce"),
                "equal value (等价值), configured",
                c.source,
                Confidence.CONFIGURED,
            )
        eq = table.electricity.equivalent_value
        assert eq.value is not None
        return Coefficient(
            carrier, eq.value, eq.per, "equivalent value (当量值)", eq.source, eq.confidence
        )
    entry = table.carriers.get(carrier)
    if entry is None:
        raise MissingCoefficient(
            f"no coal-equivalent coefficient for {carrier!r}: configure one; "
            f"known: {sorted([ELECTRICITY, *table.carriers])}"
        )
    if entry.value is None:
        span = ""
        if entry.range:
            span = f" (GB/T 2589 gives a range {entry.range[0]}-{entry.range[1]})"
        raise MissingCoefficient(
            f"{carrier}: no single coefficient{span}; configure the measured LHV or a coefficient"
        )
    return Coefficient(
        carrier, entry.value, entry.per, "GB/T 2589 Annex A", entry.source, entry.confidence
    )


def to_kgce(
    carrier: str,
    quantity: float,
    unit: str,
    table: CoalTable,
    settings: ConversionSettings | None = None,
) -> Kgce:
    """quantity (in unit: kWh, MWh, m3, t, kg, MJ, GJ) of a carrier, in kgce."""
    c = coefficient(carrier, table, settings)
    return Kgce(quantity * factor(unit, c.per) * c.value, quantity, unit, c)
