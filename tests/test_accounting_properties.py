"""Properties of the accounting engine fed any counter readings a broken, swapped, reset,
zero-reading, jumping or wrapping meter might send, delivered in any order, some batches
twice (the ledger's own properties, on `deltas` alone, are in test_core_counters.py):

- the minutes, findings and the month's report are those of in-order delivery;
- no minute holds more than the meter can count in it (max_rate), none is negative, and
  no energy lies outside the readings' span: nothing the readings and rates cannot explain;
- `recompute` of any window, after its minutes were lost or damaged, gives what the live
  path gave.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.accounting.engine import Accounting
from collector.plant import AccountingConfig
from collector.reports.build import build
from greengauge.contract import MeterReading, Quantity, ReadingBatch

E = Quantity.ENERGY_ACTIVE_IMPORT
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
RATE = 100.0
"""kW: the incomer's max_rate"""
MODULUS = 100_000.0
NOW = datetime(2026, 12, 1, tzinfo=UTC)
"""after the month: the report expects every minute of November"""
MINUTE_MS = 60_000


def plant(swaps: list[dict[str, Any]]) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "s1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [
                        {
                            "id": "incomer",
                            "carrier": "electricity",
                            "role": "boundary",
                            "counter": {"modulus": MODULUS, "max_rate": RATE},
                            "swaps": swaps,
                        }
                    ],
                }
            ],
        }
    )


Case = tuple[list[dict[str, Any]], list[ReadingBatch], list[list[ReadingBatch]]]


@st.composite
def hostile(draw: st.DrawFn) -> Case:
    """Readings of any value (zero reads, values near the modulus, jumps) at any of 600
    minutes, swap records right or wrong, batches delivered in any order, some twice."""
    values = st.one_of(
        st.just(0.0),
        st.floats(0.0, MODULUS - 0.1, allow_nan=False),
        st.integers(0, 999_999).map(lambda v: v / 10),
    )
    minutes = st.integers(0, 600)
    samples = draw(st.lists(st.tuples(minutes, values), max_size=40))
    # a steady stretch too, so that rollovers and swaps have plausible neighbours
    start, value = draw(st.integers(0, 600)), draw(st.floats(MODULUS - 50, MODULUS - 0.1))
    for i in range(draw(st.integers(0, 30))):
        samples.append((start + i, (value + i * RATE / 60 * 0.9) % MODULUS))
    swaps = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "at": st.integers(0, 600).map(
                        lambda m: (T0 + timedelta(minutes=m, seconds=30)).isoformat()
                    ),
                    "old_final": st.none() | st.floats(0.0, MODULUS - 0.1),
                    "new_initial": st.floats(0.0, MODULUS - 0.1),
                    "by": st.just("prop"),
                }
            ),
            max_size=3,
            unique_by=lambda x: x["at"],
        )
    )
    batches = [
        ReadingBatch(
            site="s1",
            agent="gw",
            seq=i,
            readings=[MeterReading(meter="incomer", ts=T0 + timedelta(minutes=m), values={E: v})],
        )
        for i, (m, v) in enumerate(samples)
    ]
    n = len(batches)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=8)))
    chunks = [batches[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True) if a < b]
    twice = draw(st.lists(st.sampled_from(chunks), max_size=3)) if chunks else []
    return swaps, batches, [*draw(st.permutations(chunks)), *twice]


MINUTES = "SELECT series, minute, amount, kgce, kgco2, quality FROM minute ORDER BY 1, 2"
FINDINGS = "SELECT * FROM counter_finding ORDER BY series, start, end, issue"


def accounted(acc: Accounting) -> tuple[list[Any], list[Any]]:
    return acc.db.query(MINUTES), acc.db.query(FINDINGS)


SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(hostile())
def test_any_readings_in_any_order_give_the_in_order_month_and_create_no_energy(
    tmp_path_factory: pytest.TempPathFactory, case: Case
) -> None:
    swaps, batches, delivered = case
    config = plant(swaps)
    in_order = Accounting(config, tmp_path_factory.mktemp("in-order"))
    in_order.process(sorted(batches, key=lambda b: b.readings[0].ts))
    shuffled = Accounting(config, tmp_path_factory.mktemp("shuffled"))
    for chunk in delivered:
        shuffled.process(chunk)
    try:
        assert accounted(shuffled) == accounted(in_order)
        month = build(config, in_order.db, "s1", "2026-11", NOW)
        assert build(config, shuffled.db, "s1", "2026-11", NOW) == month
        rows = in_order.db.series_minutes("s1", "incomer", 0, 2**62)
        # every minute within what 100 kW counts in a minute, never negative
        assert all(0.0 <= r.amount <= RATE / 60 * (1 + 1e-9) + 1e-9 for r in rows), rows
        if batches:
            times = [b.readings[0].ts for b in batches]
            first, last = min(times), max(times)
            hours = (last - first).total_seconds() / 3600
            total = math.fsum(r.amount for r in rows)
            assert total <= RATE * hours * (1 + 1e-9) + 1e-9
            # energy only where readings are: between the first and the last
            first_ms = int(first.timestamp() * 1000)
            last_ms = int(last.timestamp() * 1000)
            assert all(first_ms <= r.minute < last_ms for r in rows if r.amount > 0)
        else:
            assert rows == []
        for finding in in_order.db.query("SELECT * FROM counter_finding"):
            assert all(x is None or not isinstance(x, float) or x >= 0.0 for x in finding)
    finally:
        in_order.close()
        shuffled.close()


@SETTINGS
@given(hostile(), st.integers(-5, 605), st.integers(1, 700), st.integers(1, 5))
def test_recompute_of_any_window_gives_the_live_figures(
    tmp_path_factory: pytest.TempPathFactory, case: Case, start: int, length: int, every: int
) -> None:
    swaps, _, delivered = case
    acc = Accounting(plant(swaps), tmp_path_factory.mktemp("live"))
    try:
        for chunk in delivered:
            acc.process(chunk)
        live = accounted(acc)
        a = T0 + timedelta(minutes=start)
        b = a + timedelta(minutes=length)
        lo, hi = int(a.timestamp() * 1000), int(b.timestamp() * 1000)
        # the window's minutes lost or damaged (every `every`-th doubled, the rest gone)
        acc.db.query(
            "UPDATE minute SET amount = amount * 2 + 1 WHERE minute >= ? AND minute < ? "
            "AND (minute / ?) % ? = 0",
            (lo, hi, MINUTE_MS, every),
        )
        acc.db.query(
            "DELETE FROM minute WHERE minute >= ? AND minute < ? AND (minute / ?) % ? != 0",
            (lo, hi, MINUTE_MS, every),
        )
        acc.recompute("s1", a, b)
        assert accounted(acc) == live
        acc.recompute("s1", a, b)  # idempotent
        assert accounted(acc) == live
    finally:
        acc.close()
