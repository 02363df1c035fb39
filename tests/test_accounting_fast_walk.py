"""The walk's in-line shortcut (core.inline: a reading in line with the good one before it
is measured without the walker, one at a time or a run of kept readings at once) gives
exactly what the walker alone gives, for any counter readings (zero reads, jitter,
glitches, jumps, wraps, gaps, swaps) delivered in any passes, and a recompute gives it
again; allocate_ms is allocate in epoch ms, allocate_arrays is allocate_ms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_accounting_event_time import batch, config, minute_rows

from collector.accounting import passes as account_pass
from collector.accounting import targets
from collector.accounting.core.counters import Replacement
from collector.accounting.core.inline import in_line
from collector.accounting.core.series import (
    Amount,
    MsAmounts,
    Quality,
    allocate,
    allocate_arrays,
    allocate_ms,
)
from collector.accounting.engine import Accounting
from collector.accounting.swaps import record_swap
from collector.config import load_config
from collector.plant import CounterSettings
from greengauge.contract import Quantity, ReadingBatch

E = Quantity.ENERGY_ACTIVE_IMPORT
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
METER: dict[str, Any] = {
    "id": "incomer",
    "carrier": "electricity",
    "role": "boundary",
    "counter": {"max_rate": 20_000, "modulus": 100_000, "tolerance": 0.5},
}


@st.composite
def walks(draw: st.DrawFn) -> tuple[list[ReadingBatch], list[list[ReadingBatch]], int | None]:
    """Readings 1 s to 7 min apart, each a plain rise or one of the counter's troubles,
    cut into passes delivered in any order; maybe a swap at one of the readings."""
    n = draw(st.integers(2, 80))
    readings, ts, value = [], T0, 99_000.0
    for i in range(n):
        gap = draw(st.sampled_from([1_000, 60_000, 61_500, 299_999, 300_001, 420_000]))
        kind = draw(st.sampled_from(["rise"] * 6 + ["zero", "jitter", "glitch", "jump", "same"]))
        kw = draw(st.sampled_from([0.0, 800.0, 12_000.0]))
        ts += timedelta(milliseconds=gap)
        if kind == "rise":
            value += kw * gap / 3_600_000
        elif kind == "jitter":
            value -= 0.25
        elif kind == "jump":
            value += 50_000.0
        shown = {"zero": 0.0, "glitch": 7.0}.get(kind, value % 100_000)
        readings.append(batch(ts, i, incomer={E: shown}))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=6)))
    chunks = [readings[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True) if a < b]
    swap = draw(st.none() | st.integers(1, n - 1))
    return readings, draw(st.permutations(chunks)), swap


def _account(
    path: Path, passes: list[list[ReadingBatch]], swap: ReadingBatch | None
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    acc = Accounting(config([METER]), path, clock=lambda: T0 + timedelta(days=1))
    if swap is not None:
        first = swap.readings[0]
        record_swap(
            acc.db,
            acc.config,
            "s1",
            "incomer",
            Replacement(first.ts, first.values[E], None, "t"),
            T0 + timedelta(days=1),
        )
    for chunk in passes:
        acc.process(chunk)
    live = minute_rows(acc)
    acc.db.query("UPDATE minute SET amount = -1")
    acc.recompute("s1", T0, T0 + timedelta(days=1))
    assert minute_rows(acc) == live
    readings = acc.db.query("SELECT * FROM reading ORDER BY ts")
    findings = acc.db.query("SELECT * FROM counter_finding ORDER BY start, end, issue")
    acc.close()
    return live, readings, findings


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(walks())
def test_the_in_line_shortcut_gives_what_the_walker_gives(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[ReadingBatch], list[list[ReadingBatch]], int | None],
) -> None:
    readings, passes, swap_at = case
    swap = None if swap_at is None else readings[swap_at]
    fast = _account(tmp_path_factory.mktemp("fast"), passes, swap)
    in_order = _account(tmp_path_factory.mktemp("in-order"), [readings], swap)
    with (
        mock.patch.object(account_pass, "in_line", lambda *_: None),
        mock.patch.object(account_pass, "BULK_MIN", 10**9),
    ):
        walker_only = _account(tmp_path_factory.mktemp("walker"), passes, swap)
    with mock.patch.object(account_pass, "BULK_MIN", 1):  # every kept reading in runs
        runs = _account(tmp_path_factory.mktemp("runs"), passes, swap)
    assert fast == walker_only
    assert fast == in_order
    assert runs == walker_only


def test_the_shortcut_takes_the_plain_readings() -> None:
    """It measures a plain rise, and leaves gaps, falls, steps and wraps to the walker."""
    spec = targets._spec(CounterSettings(max_rate=60.0, tolerance=0.5))
    assert in_line(spec, 0, 10.0, 60_000, 11.0) == 1.0
    assert in_line(spec, 0, 10.0, 60_000, 9.75) == 0.0  # jitter within tolerance
    assert in_line(spec, 0, 10.0, 300_001, 11.0) is None  # a gap
    assert in_line(spec, 0, 10.0, 60_000, 9.0) is None  # a fall
    assert in_line(spec, 0, 10.0, 60_000, 12.0) is None  # above max_rate


ms_amounts = st.lists(
    st.tuples(
        st.integers(0, 10_000_000),
        st.integers(1, 400_000),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.sampled_from(list(Quality)),
    ),
    max_size=30,
)


@given(ms_amounts)
def test_allocate_ms_is_allocate(amounts: list[tuple[int, int, float, Quality]]) -> None:
    as_ms = [(s, s + d, v, int(q)) for s, d, v, q in amounts]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    objects = [
        Amount(epoch + timedelta(milliseconds=s), epoch + timedelta(milliseconds=e), v, Quality(q))
        for s, e, v, q in as_ms
    ]
    expected = [
        (round((b.start - epoch) / timedelta(milliseconds=1)), b.value, int(b.quality))
        for b in allocate(objects, timedelta(minutes=1))
    ]
    assert allocate_ms(as_ms, 60_000) == expected


@settings(max_examples=500)
@given(
    st.lists(
        st.tuples(
            st.integers(-10_000_000, 10_000_000),
            st.integers(0, 400_000),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from(list(Quality)),
        ),
        max_size=40,
    ),
    st.sampled_from([1_000, 60_000, 900_000]),
)
def test_allocate_arrays_is_allocate_ms(
    amounts: list[tuple[int, int, float, Quality]], step: int
) -> None:
    """The same buckets, the same floats to the last bit, the same qualities: zero-length
    amounts, amounts across many buckets, before 1970, negative values."""
    as_ms = [(s, s + d, v, int(q)) for s, d, v, q in amounts]
    b = allocate_arrays(MsAmounts.of(as_ms), step)
    got = list(zip(b.start.tolist(), b.value.tolist(), b.quality.tolist(), strict=True))
    assert got == allocate_ms(as_ms, step)


def test_a_late_reading_before_a_hole_changes_its_estimate(tmp_path: Path) -> None:
    """Found by the test above (in the code before the shortcut too): the counter falls
    50,000 between 03:00:02 and 03:01:02 (a hole, not a wrap: 20,000 kW allow 333 kWh)
    and stays; the reading at 03:00:01 arrives last. The hole's use is estimated from
    the rates beside it: 0.2222 kWh in 1 s (800 kW) before, 0 after: 400 kW x 60 s =
    6.667 kWh, 2 s of it (0.2222) in the minute 03:01. The late reading leaves every
    state as stored, but changes that estimate: the walk must not settle before it."""
    readings = [batch(T0 + timedelta(seconds=1), 0, incomer={E: 99_000.0})]
    readings.append(batch(T0 + timedelta(seconds=2), 1, incomer={E: 99_000.0 + 0.8 / 3.6}))
    for i in range(2, 6):
        readings.append(batch(T0 + timedelta(seconds=60 + i), i, incomer={E: 49_000.0}))
    late = _account(tmp_path / "late", [readings[1:], readings[:1]], None)
    in_order = _account(tmp_path / "in-order", [readings], None)
    assert late == in_order
    by_minute = {r[2]: r[3] for r in late[0]}
    minute = 1_795_489_200_000  # 03:00
    assert by_minute[minute] == pytest.approx(0.8 / 3.6 + 400 * 58 / 3600)
    assert by_minute[minute + 60_000] == pytest.approx(400 * 2 / 3600)


@pytest.mark.parametrize("hourly", [False, True])
def test_a_recompute_puts_back_exactly_the_minutes_that_differ(
    tmp_path: Path, hourly: bool
) -> None:
    """A day of a reading a minute (walked and compared a run at a time) with a static grid
    factor (SQLite checks kgce and kgCO2 against amount x factor) or an hourly one (every
    column read): a recompute changes nothing; minutes altered in the database (amount,
    kgce, kgCO2, quality, one deleted, one added) are exactly the ones put back."""
    accounting = config().model_dump(mode="json", exclude_defaults=True)
    if hourly:
        hours = [f"{T0 + timedelta(hours=h):%Y-%m-%dT%H:00:00Z},0.{h + 10}" for h in range(24)]
        (tmp_path / "hourly.csv").write_text("hour,kgco2_per_kwh\n" + "\n".join(hours) + "\n")
        accounting["sites"][0]["hourly_grid_factor"] = {"file": "hourly.csv", "source": "t"}
    path = tmp_path / "collector.yaml"
    path.write_text(
        yaml.safe_dump(
            {"mqtt": {"url": "mqtt://127.0.0.1"}, "data_dir": "d", "accounting": accounting}
        )
    )
    loaded = load_config(path).accounting
    assert loaded is not None
    acc = Accounting(loaded, tmp_path / "acc", clock=lambda: T0 + timedelta(days=2))
    acc.process([batch(T0 + timedelta(minutes=i), i, incomer={E: 10.0 * i}) for i in range(1441)])
    day = (T0, T0 + timedelta(days=1))
    live = minute_rows(acc)
    assert len(live) == 1440 and [s.changed for s in acc.recompute("s1", *day)] == [0]
    minute = int(T0.timestamp() * 1000)
    tampered = [minute + k * 60_000 for k in (5, 200, 201, 700, 1439)]
    for sql, at in zip(
        [
            "UPDATE minute SET amount = amount + 1e-9 WHERE minute = ?",
            "UPDATE minute SET kgce = kgce * 2 WHERE minute = ?",
            "UPDATE minute SET kgco2 = 0 WHERE minute = ?",
            "UPDATE minute SET quality = 3 WHERE minute = ?",
            "DELETE FROM minute WHERE minute = ?",
        ],
        tampered,
        strict=True,
    ):
        acc.db.query(sql, (at,))
    acc.db.query(
        "INSERT INTO minute VALUES ('s1', 'incomer', ?, 1, 1, 1, 0, 0)", (minute + 1440 * 60_000,)
    )
    acc.db.query("UPDATE minute SET dirty = 0")
    spans = acc.recompute("s1", day[0], day[1] + timedelta(minutes=1))
    assert [s.changed for s in spans] == [len(tampered) + 1]
    dirty = [r[0] for r in acc.db.query("SELECT minute FROM minute WHERE dirty = 1")]
    assert sorted(dirty) == tampered
    assert minute_rows(acc) == live
