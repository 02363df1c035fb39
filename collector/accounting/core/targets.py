"""Reduction targets against a base year: progress and projection. Pure.

A target is an intensity reduction (e.g. -13.5 % kgce per 10,000 CNY of value added by
2025 vs 2020). Progress compares a year's intensity with the base; the projection
extends the compound annual rate observed since the base year forward to the target
year. The steady path runs from the base year to the target year and no further: a
year after the target year is judged against the target intensity only (reached or
not), never "on path" nor projected (that would run backwards).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from collector.accounting.core.factors import ReductionTarget, TargetDefaults


@dataclass(frozen=True)
class Target:
    base_year: int
    base_intensity: float
    target_year: int
    reduction: float
    """Fraction: 0.135 for -13.5 %."""
    source: str = "configured"

    def __post_init__(self) -> None:
        if self.target_year <= self.base_year:
            raise ValueError("the target year must come after the base year")
        if not 0 < self.reduction < 1 or not self.base_intensity > 0:
            raise ValueError("reduction within 0..1 and a positive base intensity")

    @classmethod
    def default(cls, defaults: TargetDefaults, kind: str, base_intensity: float) -> Target:
        """The packaged default for 'energy' or 'co2', with the site's base-year intensity."""
        if kind not in ("energy", "co2"):
            raise ValueError("kind is 'energy' or 'co2'")
        goal: ReductionTarget = defaults.energy if kind == "energy" else defaults.co2
        return cls(
            defaults.base_year, base_intensity, defaults.target_year, goal.reduction, goal.source
        )

    @property
    def target_intensity(self) -> float:
        return self.base_intensity * (1 - self.reduction)

    def path(self, year: int) -> float:
        """The intensity a steady compound reduction would reach in `year` (up to the
        target year: past it there is no path, only the target)."""
        if year > self.target_year:
            raise ValueError(f"{year} is after the target year {self.target_year}: no path")
        span = self.target_year - self.base_year
        factor: float = (1 - self.reduction) ** ((year - self.base_year) / span)
        return self.base_intensity * factor


@dataclass(frozen=True)
class Progress:
    year: int
    intensity: float
    achieved: float
    """Reduction reached vs the base year (0.10 = -10 %; negative = a rise)."""
    required: float
    on_path: bool | None
    """At or below the steady path for this year; None after the target year."""
    target_intensity: float
    reached: bool
    """At or below the target intensity."""


def progress(target: Target, year: int, intensity: float) -> Progress:
    judged = year <= target.target_year
    return Progress(
        year,
        intensity,
        1 - intensity / target.base_intensity,
        target.reduction,
        intensity <= target.path(year) * (1 + 1e-9) if judged else None,
        target.target_intensity,
        intensity <= target.target_intensity * (1 + 1e-9),
    )


@dataclass(frozen=True)
class Projection:
    annual_rate: float
    """Compound change per year since the base year (-0.03 = -3 % a year)."""
    projected: float
    """The intensity at the target year at that rate."""
    target_intensity: float
    on_track: bool


def projectable(target: Target, year: int) -> bool:
    """Whether a year's intensity can be projected forward: after the base year, and not
    after the target year."""
    return target.base_year < year <= target.target_year


def project(target: Target, observed: Mapping[int, float]) -> Projection:
    """Extend the compound rate from the base year to the latest observed year up to the
    target year, forward to the target year (years after it are not used)."""
    years = [y for y in observed if projectable(target, y)]
    if not years:
        raise ValueError(
            f"need an observed year after the base year {target.base_year} "
            f"and not after the target year {target.target_year}"
        )
    latest = max(years)
    value = observed[latest]
    if not value > 0:
        raise ValueError("intensities must be positive to project")
    rate = (value / target.base_intensity) ** (1 / (latest - target.base_year)) - 1
    projected = value * (1 + rate) ** (target.target_year - latest)
    return Projection(
        rate, projected, target.target_intensity, projected <= target.target_intensity * (1 + 1e-9)
    )


@dataclass(frozen=True)
class YearEnd:
    numerator: float
    denominator: float
    intensity: float | None


def year_end(ytd_numerator: float, ytd_denominator: float, elapsed: float) -> YearEnd:
    """Year totals at the year-to-date rate; elapsed is the fraction of the year gone
    (0 < elapsed <= 1). The intensity at the current rate is the year-to-date ratio."""
    if not 0 < elapsed <= 1:
        raise ValueError("elapsed must be within (0, 1]")
    num, den = ytd_numerator / elapsed, ytd_denominator / elapsed
    return YearEnd(num, den, num / den if den > 0 else None)
