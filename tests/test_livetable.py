"""The collector's live table: newest reading per meter, rendered as aligned plain text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.batch import Batch
from collector.fastpath import fast_batch
from collector.state.latest import COLUMNS, STALE_FLOOR, LatestReadings, Row, render, stale_after
from collector.validate import Rejected
from greengauge.contract import MeterReading, Quantity, ReadingBatch, Topic, topic

Q = Quantity
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
HEADERS = [
    "site",
    "agent",
    "meter",
    "P kW",
    "E import kWh",
    "U1 V",
    "I1 A",
    "PF",
    "Hz",
    "count",
    "age s",
    "state",
]


def reading(meter: str, seconds: float, **values: float) -> MeterReading:
    return MeterReading(
        meter=meter,
        ts=T0 + timedelta(seconds=seconds),
        values={Q(k): v for k, v in values.items()} or {Q.COUNT: 0.0},
    )


def batch(site: str, agent: str, *readings: MeterReading, seq: int = 0) -> Batch:
    return Batch.of(ReadingBatch(site=site, agent=agent, seq=seq, readings=list(readings)))


def cells(line: str) -> list[str]:
    return line.split()


# --- LatestReadings -----------------------------------------------------------------------


def test_empty() -> None:
    assert LatestReadings().rows() == []


def test_newer_reading_replaces_the_older() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("m", 0, voltage_l1=230.0)))
    latest.update(batch("s", "a", reading("m", 1, voltage_l1=231.0)))
    rows = latest.rows()
    assert len(rows) == 1
    assert rows[0].reading.values == {Q.VOLTAGE_L1: 231.0}


def test_older_reading_arriving_later_does_not_replace_the_newer() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("m", 5, voltage_l1=235.0), seq=1))
    latest.update(batch("s", "a", reading("m", 2, voltage_l1=232.0), seq=0))
    [row] = latest.rows()
    assert row.reading.ts == T0 + timedelta(seconds=5)
    assert row.reading.values == {Q.VOLTAGE_L1: 235.0}


def test_newest_in_one_batch_wins_whatever_its_position() -> None:
    latest = LatestReadings()
    latest.update(
        batch(
            "s", "a", reading("m", 3, count=3), reading("m", 1, count=1), reading("m", 2, count=2)
        )
    )
    [row] = latest.rows()
    assert row.reading.values == {Q.COUNT: 3.0}


def test_a_meter_per_site_and_agent() -> None:
    latest = LatestReadings()
    latest.update(batch("s1", "a1", reading("m", 0)))
    latest.update(batch("s1", "a2", reading("m", 0)))
    latest.update(batch("s2", "a1", reading("m", 0)))
    rows = latest.rows()
    assert [(r.site, r.agent, r.reading.meter) for r in rows] == [
        ("s1", "a1", "m"),
        ("s1", "a2", "m"),
        ("s2", "a1", "m"),
    ]


def test_rows_are_sorted() -> None:
    latest = LatestReadings()
    latest.update(batch("z-site", "a", reading("m2", 0), reading("m1", 0)))
    latest.update(batch("a-site", "b", reading("x", 0)))
    latest.update(batch("a-site", "a", reading("y", 0)))
    assert [(r.site, r.agent, r.reading.meter) for r in latest.rows()] == [
        ("a-site", "a", "y"),
        ("a-site", "b", "x"),
        ("z-site", "a", "m1"),
        ("z-site", "a", "m2"),
    ]


def test_row_keeps_the_whole_reading() -> None:
    latest = LatestReadings()
    r = reading("m", 0, voltage_l1=230.0, frequency=50.0)
    latest.update(batch("s", "a", r))
    assert latest.rows() == [Row("s", "a", r)]


# --- render -------------------------------------------------------------------------------


def test_columns() -> None:
    assert [c[0] for c in COLUMNS] == HEADERS[3:-2]
    assert [c[1] for c in COLUMNS] == [
        Q.POWER_ACTIVE,
        Q.ENERGY_ACTIVE_IMPORT,
        Q.VOLTAGE_L1,
        Q.CURRENT_L1,
        Q.POWER_FACTOR,
        Q.FREQUENCY,
        Q.COUNT,
    ]


def test_render_header_rule_rows_and_footer() -> None:
    latest = LatestReadings()
    latest.update(
        batch(
            "plant-1",
            "gw-1",
            reading(
                "main",
                0,
                power_active=1500.0,
                energy_active_import=12345.678,
                voltage_l1=230.14,
                current_l1=6.517,
                power_factor=0.987,
                frequency=49.987,
            ),
        )
    )
    text = render(latest.rows(), T0 + timedelta(seconds=2.5), "q to quit")
    lines = text.split("\n")
    assert " ".join(cells(lines[0])) == " ".join(HEADERS)
    for header in HEADERS:
        assert header in lines[0]
    assert lines[1] == "-" * len(lines[0])
    assert cells(lines[2]) == [
        "plant-1",
        "gw-1",
        "main",
        "1.50",
        "12345.68",
        "230.1",
        "6.52",
        "0.99",
        "49.99",
        "-",
        "2.5",
    ]
    assert lines[3:] == ["", "q to quit"]


def test_render_one_row_per_meter_in_order() -> None:
    latest = LatestReadings()
    latest.update(batch("s2", "a", reading("m", 0, power_active=1.0)))
    latest.update(batch("s1", "b", reading("m", 0, power_active=2.0)))
    latest.update(batch("s1", "a", reading("n", 0, power_active=3.0), reading("m", 0)))
    lines = render(latest.rows(), T0, "footer").split("\n")
    body = lines[2:-2]
    assert [cells(line)[:3] for line in body] == [
        ["s1", "a", "m"],
        ["s1", "a", "n"],
        ["s1", "b", "m"],
        ["s2", "a", "m"],
    ]


def test_render_dash_for_a_missing_quantity() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("m", 0, voltage_l1=230.0)))
    row = cells(render(latest.rows(), T0, "").split("\n")[2])
    assert row == ["s", "a", "m", "-", "-", "230.0", "-", "-", "-", "-", "0.0"]


def test_render_a_zero_is_not_missing() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("m", 0, power_active=0.0, frequency=50.0)))
    row = cells(render(latest.rows(), T0, "").split("\n")[2])
    assert row[3] == "0.00"
    assert row[4] == "-"


def test_render_negative_power_in_kw() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("m", 0, power_active=-2500.0)))
    assert cells(render(latest.rows(), T0, "").split("\n")[2])[3] == "-2.50"


def test_render_columns_line_up() -> None:
    latest = LatestReadings()
    latest.update(batch("a-long-site-name", "gw", reading("m", 0, power_active=1.0)))
    latest.update(batch("s", "agent-with-long-name", reading("meter-with-long-name", 0)))
    lines = render(latest.rows(), T0 + timedelta(seconds=30), "f").split("\n")
    header, rule, *rows = lines[:-2]
    assert len(rows) == 2
    assert {len(line) for line in [header, rule, *rows]} == {len(header)}
    # every value ends where its heading ends
    for title in HEADERS[3:-1]:  # the state column is blank while a meter is fresh
        end = header.index(title) + len(title)
        for line in rows:
            assert line[end - 1] != " ", (title, line)
            assert end == len(line) or line[end] == " "


def test_render_age_of_each_row() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("old", 0), reading("new", 9.5)))
    lines = render(latest.rows(), T0 + timedelta(seconds=10), "").split("\n")
    ages = {cells(line)[2]: cells(line)[-1] for line in lines[2:4]}
    assert ages == {"new": "0.5", "old": "10.0"}


def test_render_nothing_yet() -> None:
    text = render([], T0, "waiting for agents")
    lines = text.split("\n")
    assert cells(lines[0])[:3] == ["site", "agent", "meter"]
    assert set(lines[1]) == {"-"}
    assert lines[2:] == ["(no readings yet)", "", "waiting for agents"]


def test_render_footer_is_last() -> None:
    latest = LatestReadings()
    latest.update(batch("s", "a", reading("m", 0)))
    assert render(latest.rows(), T0, "3 messages, 0 rejected").endswith(
        "\n\n3 messages, 0 rejected"
    )


# --- stale: a frozen meter is marked, by its own interval -------------------------------------


def _fed(latest: LatestReadings, meter: str, seconds: list[float]) -> None:
    for s in seconds:
        latest.update(batch("s", "a", reading(meter, s, power_active=1.0)))


def test_render_marks_a_meter_silent_for_a_few_of_its_intervals() -> None:
    latest = LatestReadings()
    _fed(latest, "fast", [0, 1, 2, 3])  # every second: stale after the floor, 10 s
    _fed(latest, "slow", [-60, -30, 0])  # every 30 s: stale after 90 s
    _fed(latest, "once", [0])  # interval unknown: stale after 60 s

    def marks(at: float) -> dict[str, str]:
        lines = render(latest.rows(), T0 + timedelta(seconds=at), "").split("\n")[2:5]
        return {cells(x)[2]: cells(x)[-1] for x in lines}

    assert marks(12) == {"fast": "9.0", "once": "12.0", "slow": "12.0"}
    assert marks(13.5) == {"fast": "stale", "once": "13.5", "slow": "13.5"}
    assert marks(61) == {"fast": "stale", "once": "stale", "slow": "61.0"}
    assert marks(90.5) == {"fast": "stale", "once": "stale", "slow": "stale"}
    header = render(latest.rows(), T0, "").split("\n")[0]
    assert header.endswith("state")


def test_a_gap_does_not_hide_the_next_outage_for_long() -> None:
    latest = LatestReadings()
    _fed(latest, "m", [0, 1, 2, 3, 53])  # back after 50 s offline
    [row] = latest.rows()
    assert row.interval == timedelta(seconds=2)  # at most doubled by the gap
    _fed(latest, "m", [54])
    [row] = latest.rows()
    assert row.interval == timedelta(seconds=1)
    assert stale_after(row.interval) == STALE_FLOOR
    assert stale_after(None) == timedelta(seconds=60)
    assert stale_after(timedelta(minutes=1)) == timedelta(minutes=3)


# --- the table against a plain model of it ------------------------------------------------

TOPICS = {(s, a): topic(s, a, Topic.READINGS) for s in ("s1", "s2") for a in ("a", "b")}
fed = st.lists(
    st.tuples(
        st.sampled_from(sorted(TOPICS)),
        st.lists(
            st.tuples(
                st.sampled_from(["m1", "m2", "m3"]),
                st.integers(0, 40),
                st.sampled_from([Q.POWER_ACTIVE, Q.COUNT, Q.FREQUENCY]),
                st.floats(-1e6, 1e6, allow_nan=False),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    max_size=12,
)


def models(feed: list[Any]) -> list[ReadingBatch]:
    return [
        ReadingBatch(
            site=site,
            agent=agent,
            seq=seq,
            readings=[reading(m, s, **{q.value: v}) for m, s, q, v in taken],
        )
        for seq, ((site, agent), taken) in enumerate(feed)
    ]


def expected_rows(batches: list[ReadingBatch]) -> list[Row]:
    """Newest reading per meter (a later one of the same time replaces it); the interval
    the shortest step, but at most doubled by a longer one."""
    newest: dict[tuple[str, str, str], MeterReading] = {}
    interval: dict[tuple[str, str, str], timedelta] = {}
    for b in batches:
        for r in b.readings:
            key = (b.site, b.agent, r.meter)
            known = newest.get(key)
            if known is not None and known.ts > r.ts:
                continue
            if known is not None and r.ts > known.ts:
                step = r.ts - known.ts
                estimate = interval.get(key)
                interval[key] = step if estimate is None else min(step, 2 * estimate)
            newest[key] = r
    return [Row(key[0], key[1], newest[key], interval.get(key)) for key in sorted(newest)]


@settings(max_examples=200, deadline=None)
@given(fed)
def test_the_table_is_the_newest_reading_of_each_meter_from_either_path(feed: list[Any]) -> None:
    batches = models(feed)
    strict, fast = LatestReadings(), LatestReadings()
    for b in batches:
        strict.update(Batch.of(b))
        decoded = fast_batch(TOPICS[(b.site, b.agent)], b.model_dump_json().encode())
        assert decoded is not None
        fast.update(decoded)
    assert strict.rows() == expected_rows(batches)
    assert fast.rows() == strict.rows()
    assert fast.rows() == strict.rows()  # the rows' models kept between calls


@settings(max_examples=200, deadline=None)
@given(fed, st.integers(1, 3), st.integers(1, 6))
def test_the_table_stays_within_its_bounds_and_counts_what_it_evicts(
    feed: list[Any], per_agent: int, total: int
) -> None:
    latest = LatestReadings(per_agent=per_agent, total=total)
    admitted: set[tuple[str, str, str]] = set()
    for b in models(feed):
        try:
            latest.admit(Batch.of(b))
        except Rejected:
            continue
        latest.update(Batch.of(b))
        admitted |= {(b.site, b.agent, r.meter) for r in b.readings}
        rows = latest.rows()
        assert len(rows) == len(latest) <= total
        for key in {(r.site, r.agent) for r in rows}:
            assert sum(1 for r in rows if (r.site, r.agent) == key) <= per_agent
        # Every meter taken in is shown or counted as evicted.
        shown = {(r.site, r.agent, r.reading.meter) for r in rows}
        assert shown <= admitted
        assert len(latest) + latest.evicted >= len(admitted)


def test_the_least_recently_updated_agent_gives_up_its_oldest_readings_first() -> None:
    latest = LatestReadings(per_agent=10, total=3)
    latest.update(batch("s", "old", reading("m1", 5), reading("m2", 1)))
    latest.update(batch("s", "new", reading("x", 0)))
    latest.update(batch("s", "new", reading("y", 9)))
    assert [(r.agent, r.reading.meter) for r in latest.rows()] == [
        ("new", "x"),
        ("new", "y"),
        ("old", "m1"),
    ]
    assert latest.evicted == 1


def test_an_agent_at_its_limit_makes_room_with_the_meters_idle_for_a_day() -> None:
    latest = LatestReadings(per_agent=2)
    day = 86_400
    latest.update(batch("s", "a", reading("idle", -2 * day), reading("busy", 0)))
    with pytest.raises(Rejected, match="new meter id 'c' refused"):
        latest.admit(batch("s", "a", reading("b", 1), reading("c", 1)))
    new = batch("s", "a", reading("b", 1))
    latest.admit(new)
    latest.update(new)
    assert [r.reading.meter for r in latest.rows()] == ["b", "busy"]
    assert latest.evicted == 1
