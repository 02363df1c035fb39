"""A plausible three-phase meter as a pure function of unit id and time. No I/O.

Each unit id is a different meter: its base load (a few kW to about 200 kW), phase
balance, power factor and the shape of its load swings are drawn from a random generator
seeded by the unit id, so a meter is the same in every run and on every machine.

Instantaneous values are sums of slow sines (periods of tens of seconds to minutes) and
stay consistent with each other: current = apparent power / voltage, power factor =
active / apparent power, totals = sums of the phases. Counters are a starting value plus
the exact integral of the modelled rate from REFERENCE_EPOCH, so they depend on the time
alone (a restarted simulator carries on where it was) and only rise.
"""

from __future__ import annotations

import cmath
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Final, TypeVar

from greengauge.contract import Quantity, QuantityName

REFERENCE_EPOCH: Final = 1_767_225_600.0
"""2026-01-01T00:00:00Z: counters hold their starting values here and rise from it.

Recent on purpose: float32 counters lose resolution as they grow, like a real meter's.
Before this instant counters fall below their starting values (far before, below zero).
"""

NOMINAL_VOLTAGE: Final = 230.0
NOMINAL_FREQUENCY: Final = 50.0
_TAU: Final = 2 * math.pi
_JOULES_PER_KWH: Final = 3.6e6
_SECONDS_PER_HOUR: Final = 3600.0
_PHASE_ANGLES: Final = (0.0, -_TAU / 3, _TAU / 3)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Ripple:
    """amplitude * sin(2 pi t / period + phase)."""

    amplitude: float
    period: int
    """Whole seconds: the angle then comes from `t % period`, exact even decades after the
    reference, which keeps counters on their one-second grid accurate enough to rise."""
    phase: float

    def angle(self, tau: float) -> float:
        return _TAU * (tau % self.period) / self.period + self.phase


@dataclass(frozen=True, slots=True)
class Signal:
    """A mean plus ripples: its value and its exact integral at any time."""

    mean: float
    ripples: tuple[Ripple, ...] = ()

    def at(self, tau: float) -> float:
        return self.mean + sum(r.amplitude * math.sin(r.angle(tau)) for r in self.ripples)

    def integral(self, tau: float) -> float:
        """The integral from 0 to tau."""
        total = self.mean * tau
        for r in self.ripples:
            total += r.amplitude * r.period / _TAU * (math.cos(r.phase) - math.cos(r.angle(tau)))
        return total

    def scaled(self, factor: float) -> Signal:
        return Signal(
            self.mean * factor,
            tuple(Ripple(r.amplitude * factor, r.period, r.phase) for r in self.ripples),
        )

    def plus(self, other: Signal) -> Signal:
        return Signal(self.mean + other.mean, self.ripples + other.ripples)


@dataclass(frozen=True, slots=True)
class Counter:
    """A register that only rises: start + integral of a rate that is always positive."""

    start: float
    rate: Signal
    """Counter units per second."""

    def _grid(self, second: int) -> float:
        return self.start + self.rate.integral(float(second))

    def at(self, tau: float) -> float:
        # Rounding can make the analytic integral dip by an ulp between two close times.
        # Evaluated only on a one-second grid, where each step is many ulps, and linear in
        # between (capped at the next grid value), the counter rises in floating point too.
        second = math.floor(tau)
        low, high = self._grid(second), self._grid(second + 1)
        if high <= low:
            return low
        return min(low + (tau - second) * (high - low), high)


@dataclass(frozen=True, slots=True)
class PhaseModel:
    voltage: Signal
    active: Signal
    reactive: Signal
    angle: float
    """Angle of this phase's voltage, radians."""


@dataclass(frozen=True, slots=True)
class PhaseReading:
    voltage: complex
    active: float
    reactive: float

    @property
    def apparent(self) -> float:
        return math.hypot(self.active, self.reactive)

    @property
    def current(self) -> complex:
        # Inductive load: the current lags the voltage by the angle atan(Q/P).
        lag = math.atan2(self.reactive, self.active)
        return cmath.rect(self.apparent / abs(self.voltage), cmath.phase(self.voltage) - lag)


_FREQUENCY: Final = Signal(NOMINAL_FREQUENCY, (Ripple(0.03, 97, 0.0), Ripple(0.015, 23, 1.0)))
"""One grid: every meter sees the same frequency, within 50 +- 0.045 Hz."""


@dataclass(frozen=True, slots=True)
class MeterModel:
    """One simulated meter; `values(t)` gives every canonical quantity at epoch time t."""

    phases: tuple[PhaseModel, PhaseModel, PhaseModel]
    import_kwh: tuple[Counter, Counter, Counter]
    export_kwh: tuple[Counter, Counter, Counter]
    reactive_import_kvarh: Counter
    reactive_export_kvarh: Counter
    volume_m3: Counter
    mass_t: Counter
    pieces: Counter

    def values(self, t: float) -> dict[Quantity, float]:
        tau = t - REFERENCE_EPOCH
        return self._instantaneous(tau) | self._counters(tau)

    def _instantaneous(self, tau: float) -> dict[Quantity, float]:
        readings = [
            PhaseReading(
                cmath.rect(p.voltage.at(tau), p.angle), p.active.at(tau), p.reactive.at(tau)
            )
            for p in self.phases
        ]
        l1, l2, l3 = readings
        active = sum(r.active for r in readings)
        apparent = sum(r.apparent for r in readings)
        values = {
            Quantity.VOLTAGE_L1_L2: abs(l1.voltage - l2.voltage),
            Quantity.VOLTAGE_L2_L3: abs(l2.voltage - l3.voltage),
            Quantity.VOLTAGE_L3_L1: abs(l3.voltage - l1.voltage),
            Quantity.CURRENT_N: abs(sum(r.current for r in readings)),
            Quantity.POWER_ACTIVE: active,
            Quantity.POWER_REACTIVE: sum(r.reactive for r in readings),
            Quantity.POWER_APPARENT: apparent,
            Quantity.POWER_FACTOR: active / apparent,
            Quantity.FREQUENCY: _FREQUENCY.at(tau),
        }
        for n, reading in enumerate(readings, start=1):
            values |= _phase_values(n, reading)
        return values

    def _counters(self, tau: float) -> dict[Quantity, float]:
        imports = [c.at(tau) for c in self.import_kwh]
        exports = [c.at(tau) for c in self.export_kwh]
        reactive_import = self.reactive_import_kvarh.at(tau)
        reactive_export = self.reactive_export_kvarh.at(tau)
        values = {
            Quantity.ENERGY_ACTIVE_IMPORT: sum(imports),
            Quantity.ENERGY_ACTIVE_EXPORT: sum(exports),
            Quantity.ENERGY_ACTIVE_TOTAL: sum(imports) + sum(exports),
            Quantity.ENERGY_REACTIVE_IMPORT: reactive_import,
            Quantity.ENERGY_REACTIVE_EXPORT: reactive_export,
            Quantity.ENERGY_REACTIVE_TOTAL: reactive_import + reactive_export,
            Quantity.VOLUME: self.volume_m3.at(tau),
            Quantity.MASS: self.mass_t.at(tau),
            Quantity.COUNT: float(math.floor(self.pieces.at(tau))),
        }
        for n, (imported, exported) in enumerate(zip(imports, exports, strict=True), start=1):
            values[Quantity(f"energy_active_import_l{n}")] = imported
            values[Quantity(f"energy_active_export_l{n}")] = exported
        return values


def _phase_values(n: int, reading: PhaseReading) -> dict[Quantity, float]:
    return {
        Quantity(f"voltage_l{n}"): abs(reading.voltage),
        Quantity(f"current_l{n}"): abs(reading.current),
        Quantity(f"power_active_l{n}"): reading.active,
        Quantity(f"power_reactive_l{n}"): reading.reactive,
        Quantity(f"power_apparent_l{n}"): reading.apparent,
        Quantity(f"power_factor_l{n}"): reading.active / reading.apparent,
    }


@cache
def meter_for_unit(unit_id: int) -> MeterModel:
    """The meter a unit id stands for; the same in every run."""
    # A str seed is hashed with SHA-512, independent of PYTHONHASHSEED and platform.
    rng = random.Random(f"greengauge simulated meter {unit_id}")
    base_w = 1000 * math.exp(rng.uniform(math.log(3), math.log(200)))
    hours_run = rng.uniform(2000, 8000)
    shares = [rng.uniform(0.28, 0.38) for _ in _PHASE_ANGLES]
    phase_loads = [base_w * s / sum(shares) for s in shares]
    # The phases share the process's rhythm (same periods), a little out of step. The
    # ripples' amplitudes add up to at most 30 % of the mean, so power never nears zero.
    rhythm = (
        Ripple(rng.uniform(0.12, 0.2), rng.randint(180, 900), rng.uniform(0, _TAU)),
        Ripple(rng.uniform(0.05, 0.1), rng.randint(30, 90), rng.uniform(0, _TAU)),
    )
    phases = _three(
        _phase(rng, load, angle, rhythm)
        for load, angle in zip(phase_loads, _PHASE_ANGLES, strict=True)
    )
    export_share = rng.uniform(0.002, 0.01)
    return MeterModel(
        phases=phases,
        import_kwh=_three(
            Counter(load * hours_run / 1000, p.active.scaled(1 / _JOULES_PER_KWH))
            for load, p in zip(phase_loads, phases, strict=True)
        ),
        export_kwh=_three(
            _counter(rng, load * export_share / 1000, hours_run) for load in phase_loads
        ),
        reactive_import_kvarh=Counter(
            sum(p.reactive.mean for p in phases) * hours_run / 1000,
            _sum(p.reactive for p in phases).scaled(1 / _JOULES_PER_KWH),
        ),
        reactive_export_kvarh=_counter(
            rng, sum(p.reactive.mean for p in phases) * 0.01 / 1000, hours_run
        ),
        volume_m3=_counter(rng, rng.uniform(0.5, 20), hours_run),
        mass_t=_counter(rng, rng.uniform(0.2, 5), hours_run),
        pieces=_counter(rng, rng.uniform(600, 7200), hours_run),
    )


def _phase(
    rng: random.Random, load_w: float, angle: float, rhythm: tuple[Ripple, ...]
) -> PhaseModel:
    active = Signal(
        load_w,
        tuple(
            Ripple(load_w * r.amplitude, r.period, r.phase + rng.uniform(-0.6, 0.6)) for r in rhythm
        ),
    )
    # Q/P = ratio +- 0.07 / 0.7 keeps the power factor within 0.88..0.99.
    wobble = Ripple(load_w * 0.07, rng.randint(60, 300), rng.uniform(0, _TAU))
    reactive = active.scaled(rng.uniform(0.26, 0.44)).plus(Signal(0.0, (wobble,)))
    voltage = Signal(
        NOMINAL_VOLTAGE * (1 + rng.uniform(-0.01, 0.01)),
        (Ripple(NOMINAL_VOLTAGE * 0.006, rng.randint(40, 240), rng.uniform(0, _TAU)),),
    )
    return PhaseModel(voltage=voltage, active=active, reactive=reactive, angle=angle)


def _counter(rng: random.Random, per_hour: float, hours_run: float) -> Counter:
    """A counter rising at `per_hour` on average, half of it in slow swings."""
    swing = Ripple(per_hour * 0.5 / _SECONDS_PER_HOUR, rng.randint(120, 1200), rng.uniform(0, _TAU))
    return Counter(per_hour * hours_run, Signal(per_hour / _SECONDS_PER_HOUR, (swing,)))


def _sum(signals: Iterable[Signal]) -> Signal:
    total = Signal(0.0)
    for signal in signals:
        total = total.plus(signal)
    return total


def _three(items: Iterable[_T]) -> tuple[_T, _T, _T]:
    first, second, third = items
    return first, second, third


def custom_value(name: str, unit_id: int) -> float:
    """What a simulated meter shows for a user-named quantity: a steady value drawn from
    the name and unit id, the same in every run (the model has no physics for it)."""
    return round(random.Random(f"{name}/{unit_id}").uniform(10.0, 500.0), 1)


def meter_values(
    unit_id: int, t: float, custom: Iterable[QuantityName] = ()
) -> dict[QuantityName, float]:
    """The meter `unit_id`'s canonical values at `t`, and those of the user-named `custom`."""
    values: dict[QuantityName, float] = {q: v for q, v in meter_for_unit(unit_id).values(t).items()}
    values.update((name, custom_value(name, unit_id)) for name in custom)
    return values


def simulated_values(
    quantities: Iterable[Quantity], unit_id: int, t: float
) -> dict[Quantity, float]:
    """The values of `quantities` that the meter `unit_id` shows at epoch time `t`."""
    every = meter_for_unit(unit_id).values(t)
    return {q: every[q] for q in quantities}
