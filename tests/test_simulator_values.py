"""The simulated meter model: plausible, consistent, deterministic, counters only rise."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.simulator.values import (
    NOMINAL_VOLTAGE,
    REFERENCE_EPOCH,
    meter_for_unit,
    simulated_values,
)
from greengauge.contract import KINDS, Kind, Quantity

Q = Quantity
COUNTERS = [q for q in Quantity if KINDS[q] is Kind.COUNTER]
YEAR = 365.25 * 86400
NOW = REFERENCE_EPOCH + 0.9 * YEAR

unit_ids = st.integers(min_value=1, max_value=247)
times = st.floats(min_value=REFERENCE_EPOCH, max_value=REFERENCE_EPOCH + 30 * YEAR)


def phase(quantity_prefix: str, n: int) -> Quantity:
    return Quantity(f"{quantity_prefix}_l{n}")


def test_every_quantity_is_modelled() -> None:
    assert set(meter_for_unit(1).values(NOW)) == set(Quantity)


def test_only_the_quantities_asked_for_are_produced() -> None:
    asked = [Q.VOLTAGE_L2, Q.ENERGY_ACTIVE_IMPORT, Q.COUNT]
    values = simulated_values(asked, 5, NOW)
    assert list(values) == asked
    assert values == {q: meter_for_unit(5).values(NOW)[q] for q in asked}


@given(unit_ids, times)
def test_instantaneous_values_are_plausible(unit_id: int, t: float) -> None:
    v = meter_for_unit(unit_id).values(t)
    for n in (1, 2, 3):
        assert v[phase("voltage", n)] == pytest.approx(NOMINAL_VOLTAGE, rel=0.02)
        assert 0.85 <= v[phase("power_factor", n)] <= 0.99
        assert v[phase("power_active", n)] > 0
        assert v[phase("power_reactive", n)] > 0
    assert 0.85 <= v[Q.POWER_FACTOR] <= 0.99
    assert v[Q.FREQUENCY] == pytest.approx(50, abs=0.05)
    assert 2_000 <= v[Q.POWER_ACTIVE] <= 260_000


@given(unit_ids, times)
def test_instantaneous_values_are_consistent(unit_id: int, t: float) -> None:
    v = meter_for_unit(unit_id).values(t)
    for kind in ("power_active", "power_reactive", "power_apparent"):
        total = sum(v[phase(kind, n)] for n in (1, 2, 3))
        assert v[Quantity(kind)] == pytest.approx(total, rel=1e-12)
    for n in (1, 2, 3):
        active, reactive = v[phase("power_active", n)], v[phase("power_reactive", n)]
        apparent = v[phase("power_apparent", n)]
        assert apparent == pytest.approx(math.hypot(active, reactive), rel=1e-12)
        assert v[phase("power_factor", n)] == pytest.approx(active / apparent, rel=1e-12)
        current = apparent / v[phase("voltage", n)]
        assert v[phase("current", n)] == pytest.approx(current, rel=1e-9)
    assert v[Q.POWER_FACTOR] == pytest.approx(v[Q.POWER_ACTIVE] / v[Q.POWER_APPARENT])
    currents = [v[phase("current", n)] for n in (1, 2, 3)]
    assert 0 <= v[Q.CURRENT_N] < max(currents)


@given(unit_ids, times)
def test_line_to_line_voltages_are_root_three_times_line_to_neutral(unit_id: int, t: float) -> None:
    v = meter_for_unit(unit_id).values(t)
    for a, b in ((1, 2), (2, 3), (3, 1)):
        between = v[Quantity(f"voltage_l{a}_l{b}")]
        mean = (v[phase("voltage", a)] + v[phase("voltage", b)]) / 2
        assert between == pytest.approx(math.sqrt(3) * mean, rel=1e-3)


@given(unit_ids, times)
def test_counter_totals_are_sums(unit_id: int, t: float) -> None:
    v = meter_for_unit(unit_id).values(t)
    for direction in ("import", "export"):
        total = v[Quantity(f"energy_active_{direction}")]
        assert total == sum(v[phase(f"energy_active_{direction}", n)] for n in (1, 2, 3))
    assert v[Q.ENERGY_ACTIVE_TOTAL] == pytest.approx(
        v[Q.ENERGY_ACTIVE_IMPORT] + v[Q.ENERGY_ACTIVE_EXPORT], rel=1e-15
    )
    assert v[Q.ENERGY_REACTIVE_TOTAL] == v[Q.ENERGY_REACTIVE_IMPORT] + v[Q.ENERGY_REACTIVE_EXPORT]
    assert 0 < v[Q.ENERGY_ACTIVE_EXPORT] < 0.02 * v[Q.ENERGY_ACTIVE_IMPORT]
    assert v[Q.COUNT] == int(v[Q.COUNT])


def _assert_counters_rise(unit_id: int, earlier: float, later: float) -> None:
    before, after = meter_for_unit(unit_id).values(earlier), meter_for_unit(unit_id).values(later)
    for q in COUNTERS:
        assert before[q] <= after[q], f"{q} fell from {before[q]!r} to {after[q]!r}"


@given(unit_ids, times, times)
def test_counters_never_fall(unit_id: int, t1: float, t2: float) -> None:
    _assert_counters_rise(unit_id, min(t1, t2), max(t1, t2))


@settings(max_examples=300)
@given(unit_ids, times, st.floats(min_value=0, max_value=3))
def test_counters_never_fall_over_short_steps(unit_id: int, t: float, step: float) -> None:
    _assert_counters_rise(unit_id, t, t + step)
    _assert_counters_rise(unit_id, t, math.nextafter(t, math.inf))


@pytest.mark.parametrize("unit_id", [1, 2, 7, 100, 247])
def test_counters_rise_at_every_read_for_hours(unit_id: int) -> None:
    # Steps of 0.37 s cross the counters' one-second grid at every offset within it.
    meter = meter_for_unit(unit_id)
    previous = meter.values(NOW)
    for step in range(1, 20_000):
        current = meter.values(NOW + step * 0.37)
        for q in COUNTERS:
            assert previous[q] <= current[q], f"{q} fell at step {step}"
        assert current[Q.ENERGY_ACTIVE_IMPORT] > previous[Q.ENERGY_ACTIVE_IMPORT]
        previous = current


@given(unit_ids, times)
def test_energy_is_the_integral_of_power(unit_id: int, t: float) -> None:
    meter = meter_for_unit(unit_id)
    samples = [meter.values(t + s) for s in range(61)]
    # Trapezoids over one-second samples of powers whose periods are 30 s and longer.
    for energy, power in (
        (Q.ENERGY_ACTIVE_IMPORT_L2, Q.POWER_ACTIVE_L2),
        (Q.ENERGY_ACTIVE_IMPORT, Q.POWER_ACTIVE),
        (Q.ENERGY_REACTIVE_IMPORT, Q.POWER_REACTIVE),
    ):
        joules = sum((a[power] + b[power]) / 2 for a, b in itertools.pairwise(samples))
        kwh = samples[-1][energy] - samples[0][energy]
        assert kwh == pytest.approx(joules / 3.6e6, rel=2e-3)


def test_values_vary_slowly() -> None:
    meter = meter_for_unit(3)
    powers = [meter.values(NOW + s)[Q.POWER_ACTIVE] for s in range(0, 900)]
    steps = [abs(b - a) / a for a, b in itertools.pairwise(powers)]
    assert max(steps) < 0.02
    assert max(powers) / min(powers) > 1.1


def test_same_unit_id_same_meter_in_another_process() -> None:
    script = (
        "import json; from agent.simulator.values import meter_for_unit; "
        f"print(json.dumps(meter_for_unit(4).values({NOW!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    assert json.loads(out) == {q.value: x for q, x in meter_for_unit(4).values(NOW).items()}


def test_unit_ids_are_different_meters() -> None:
    loads = [meter_for_unit(u).values(NOW)[Q.POWER_ACTIVE] for u in range(1, 248)]
    assert len(set(loads)) == len(loads)
    assert min(loads) < 10_000
    assert max(loads) > 100_000


def test_frequency_is_the_same_for_every_meter_on_the_grid() -> None:
    assert len({meter_for_unit(u).values(NOW)[Q.FREQUENCY] for u in (1, 2, 3)}) == 1
