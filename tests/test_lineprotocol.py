"""Line protocol of reading batches: exact format, escaping, float and timestamp fidelity."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.batch import Batch, epoch_millis
from collector.stores.lineprotocol import batch_lines, escape_tag, value_count
from greengauge.contract import MeterReading, Quantity, ReadingBatch

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = 1_704_067_200_000


def batch(
    site: str = "plant-1",
    agent: str = "edge-1",
    readings: list[MeterReading] | None = None,
) -> Batch:
    if readings is None:
        readings = [MeterReading(meter="m1", ts=T0, values={Quantity.VOLTAGE_L1: 230.5})]
    return Batch.of(ReadingBatch(site=site, agent=agent, seq=0, readings=readings))


# A reference reader written from the spec, independent of the code under test.


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current += [char, next(chars, "")]
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(following if following in "\\,= " else char + following)
        else:
            out.append(char)
    return "".join(out)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    series, field_set, timestamp = _split_unescaped(line, " ")
    measurement, *tag_pairs = _split_unescaped(series, ",")
    tags = dict(
        (_unescape(key), _unescape(value))
        for key, value in (_split_unescaped(pair, "=") for pair in tag_pairs)
    )
    fields = {
        _unescape(key): float(value)
        for key, value in (_split_unescaped(pair, "=") for pair in field_set.split(","))
    }
    return _unescape(measurement), tags, fields, int(timestamp)


def test_one_reading_is_one_line() -> None:
    reading = MeterReading(
        meter="m1",
        ts=T0 + timedelta(milliseconds=123),
        values={Quantity.VOLTAGE_L1: 230.5, Quantity.ENERGY_ACTIVE_IMPORT: 12345.678},
    )

    body = batch_lines([batch(readings=[reading])])

    assert body == (
        b"reading,agent=edge-1,meter=m1,site=plant-1 "
        b"voltage_l1=230.5,energy_active_import=12345.678 1704067200123"
    )


def test_lines_follow_batches_and_readings_in_order() -> None:
    first = batch(
        agent="a",
        readings=[
            MeterReading(meter="m1", ts=T0, values={Quantity.FREQUENCY: 50.0}),
            MeterReading(meter="m2", ts=T0, values={Quantity.FREQUENCY: 49.9}),
        ],
    )
    second = batch(agent="b")

    lines = batch_lines([first, second]).split(b"\n")

    assert [parse_line(line.decode())[1] for line in lines] == [
        {"agent": "a", "meter": "m1", "site": "plant-1"},
        {"agent": "a", "meter": "m2", "site": "plant-1"},
        {"agent": "b", "meter": "m1", "site": "plant-1"},
    ]


def test_tags_are_sorted_by_key() -> None:
    line = batch_lines([batch(site="a-site", agent="z-agent")]).decode()

    series = _split_unescaped(line, " ")[0]
    keys = [pair.split("=")[0] for pair in _split_unescaped(series, ",")[1:]]
    assert keys == sorted(keys) == ["agent", "meter", "site"]


def test_no_batches_give_an_empty_body() -> None:
    assert batch_lines([]) == b""


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain-id_1.x", "plain-id_1.x"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ("a\\b", "a\\\\b"),
        ("trailing\\", "trailing\\\\"),
        ("\\,", "\\\\\\,"),
        ("=,=", "\\=\\,\\="),
        ("Zürich-Ø", "Zürich-Ø"),
        ("a b", "a\\ b"),
    ],
)
def test_escape_tag(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped
    assert _unescape(escaped) == raw


@pytest.mark.parametrize("odd", ["a,b", "a=b", "=,", "Zürich☃", "'\""])
def test_odd_ids_survive_in_every_tag(odd: str) -> None:
    reading = MeterReading(meter=odd, ts=T0, values={Quantity.CURRENT_L1: 1.5})

    line = batch_lines([batch(site=odd, agent=odd, readings=[reading])]).decode()

    assert parse_line(line) == (
        "reading",
        {"agent": odd, "meter": odd, "site": odd},
        {"current_l1": 1.5},
        T0_MS,
    )


def test_body_is_utf8() -> None:
    body = batch_lines([batch(site="Zürich")])

    assert "site=Zürich".encode() in body


def test_every_quantity_is_a_field_key_that_needs_no_escaping() -> None:
    for quantity in Quantity:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", quantity.value)

    values = {q: float(i) for i, q in enumerate(Quantity)}
    reading = MeterReading(meter="m", ts=T0, values=values)
    _, _, fields, _ = parse_line(batch_lines([batch(readings=[reading])]).decode())
    assert fields == {q.value: v for q, v in values.items()}


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        -0.0,
        5.0,
        1e16,
        123456789.12345679,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        -1e300,
        1 / 3,
    ],
)
def test_floats_round_trip_and_stay_floats(value: float) -> None:
    reading = MeterReading(meter="m", ts=T0, values={Quantity.POWER_ACTIVE: value})

    line = batch_lines([batch(readings=[reading])]).decode()

    text = line.split(" ")[1].removeprefix("power_active=")
    # An "i" or "u" suffix would make an integer field and conflict with float points.
    assert not text.endswith(("i", "u"))
    parsed = float(text)
    assert parsed == value
    assert math.copysign(1, parsed) == math.copysign(1, value)


@pytest.mark.parametrize(
    ("ts", "millis"),
    [
        (T0, T0_MS),
        (T0 + timedelta(milliseconds=999), T0_MS + 999),
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), -1),
        (datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), 4_102_444_799_999),
        # The same instant in another zone is the same timestamp.
        (
            datetime(2024, 1, 1, 1, tzinfo=UTC).astimezone(timezone(timedelta(hours=1))),
            T0_MS + 3_600_000,
        ),
    ],
)
def test_timestamps_are_epoch_milliseconds(ts: datetime, millis: int) -> None:
    reading = MeterReading(meter="m", ts=ts, values={Quantity.COUNT: 1.0})

    line = batch_lines([batch(readings=[reading])]).decode()

    assert epoch_millis(reading.ts) == millis
    assert line.endswith(f" {millis}")


def test_value_count_counts_fields() -> None:
    many = MeterReading(meter="m", ts=T0, values={q: 1.0 for q in list(Quantity)[:7]})
    one = MeterReading(meter="n", ts=T0, values={Quantity.MASS: 2.0})

    assert value_count([batch(readings=[many, one]), batch()]) == 9
    assert value_count([]) == 0


_ID_ALPHABET = st.characters(
    blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
    blacklist_characters="/+#\\\x85\u180e\u200b",
) | st.sampled_from(",=")
ids = st.text(_ID_ALPHABET, min_size=1, max_size=64).filter(
    lambda s: not any(c.isspace() for c in s)
)
finite = st.floats(allow_nan=False, allow_infinity=False)
readings = st.builds(
    MeterReading,
    meter=ids,
    ts=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    values=st.dictionaries(st.sampled_from(list(Quantity)), finite, min_size=1, max_size=5),
)
batches = st.builds(
    ReadingBatch,
    site=ids,
    agent=ids,
    seq=st.integers(0, 10),
    readings=st.lists(readings, min_size=1, max_size=3),
)


@given(st.lists(batches, min_size=1, max_size=3))
def test_any_valid_batch_reads_back_as_it_went_in(generated: list[ReadingBatch]) -> None:
    lines = batch_lines([Batch.of(b) for b in generated]).decode().split("\n")

    expected = [
        (
            "reading",
            {"agent": b.agent, "meter": r.meter, "site": b.site},
            {q.value: v for q, v in r.values.items()},
            epoch_millis(r.ts),
        )
        for b in generated
        for r in b.readings
    ]
    assert [parse_line(line) for line in lines] == expected
