"""Judging an intensity against benchmarks. Pure.

Two kinds of benchmark, both lower-is-better:
- an NDRC level (标杆 benchmark, 基准 baseline): leading at or below the benchmark,
  compliant at or below the baseline, else above baseline. Values may be negative (BOF
  steelmaking recovers more energy than it uses): the comparisons hold as they are;
- a product energy-limit standard's grades 1/2/3 (grade 3 = the mandatory limit).
And GB/T 36132-2025 style scoring: the position of a value between a baseline (基准值)
and a leading value (引领值), linear, clamped to 0..1.

Correction formulas of the standards (altitude, ore grade, clinker ratio, ...) are not
applied here: pass the corrected value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from collector.accounting.core.factors import EnergyLimit, NdrcLevel

_REL = 1e-9  # "at or below" survives float arithmetic on values exactly at a level


def _at_or_below(value: float, level: float) -> bool:
    return value <= level or math.isclose(value, level, rel_tol=_REL, abs_tol=1e-12)


class UnitMismatch(ValueError):
    """A value compared with a level in another unit."""


def _check_unit(unit: str, expected: str, what: str) -> None:
    if unit != expected:
        raise UnitMismatch(f"{what} is in {expected}, the value in {unit}")


class Standing(StrEnum):
    LEADING = "leading"
    """At or below the benchmark (标杆)."""
    COMPLIANT = "compliant"
    """Above the benchmark, at or below the baseline (基准)."""
    ABOVE_BASELINE = "above_baseline"


@dataclass(frozen=True)
class Classification:
    value: float
    standing: Standing
    level: NdrcLevel
    to_benchmark: float
    """How much the value must fall to reach the benchmark (<= 0 when reached)."""
    to_baseline: float
    """How much the value must fall to reach the baseline (<= 0 when reached)."""


def classify(value: float, unit: str, level: NdrcLevel) -> Classification:
    _check_unit(unit, level.unit, f"NDRC level {level.product}")
    if _at_or_below(value, level.benchmark):
        standing = Standing.LEADING
    elif _at_or_below(value, level.baseline):
        standing = Standing.COMPLIANT
    else:
        standing = Standing.ABOVE_BASELINE
    return Classification(value, standing, level, value - level.benchmark, value - level.baseline)


@dataclass(frozen=True)
class Grading:
    value: float
    grade: int | None
    """1, 2 or 3; None above grade 3: the value fails the mandatory limit."""
    limit: EnergyLimit

    @property
    def within_limit(self) -> bool:
        return self.grade is not None


def grade(value: float, unit: str, limit: EnergyLimit) -> Grading:
    """The best grade whose level the value is at or below."""
    _check_unit(unit, limit.unit, f"{limit.standard} {limit.product}")
    for n, level in enumerate(limit.grades, start=1):
        if level is not None and _at_or_below(value, level):
            return Grading(value, n, limit)
    return Grading(value, None, limit)


def position(value: float, baseline: float, leading: float) -> float:
    """Where value lies from baseline (0.0) to leading (1.0), linear, clamped.

    Works either way round: a leading value below the baseline (energy per unit) or above
    it (a ratio where more is better).
    """
    if baseline == leading:
        raise ValueError("baseline and leading value must differ")
    return min(1.0, max(0.0, (baseline - value) / (baseline - leading)))
