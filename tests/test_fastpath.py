"""The fast path (msgspec) and the strict models (pydantic) agree on every readings message:
what the fast path accepts the strict path accepts with the same values and line protocol,
and what it does not decide gets the strict path's verdict and reason."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from collector.batch import Batch, epoch_millis, value_of
from collector.fastpath import fast_batch
from collector.stores.lineprotocol import batch_lines
from collector.validate import MAX_VALUE, Rejected, reading_batch, strict_reading_batch
from greengauge.contract import MeterReading, Quantity, ReadingBatch, Topic, topic

TOPIC = topic("plant-1", "gw-1", Topic.READINGS)
QUANTITIES = [q.value for q in Quantity]

ids = st.one_of(
    # Ids may hold braces and equals signs: the text the line protocol is cut from.
    st.sampled_from(["plant-1", "gw-1", "m1", "a:b", "é", "", "values={", "values={}", "}{="]),
    st.text(alphabet="ab:-_ /+#\\\n\t\x00é{}=", min_size=0, max_size=5),
    st.text(min_size=63, max_size=66, alphabet="x"),
)
stamps = st.one_of(
    st.sampled_from(
        [
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00.123Z",
            "2024-05-01T10:00:00.1234567Z",
            "2024-05-01T10:00:00.999999+02:00",
            "2024-05-01T10:00:00-23:59",
            "2024-05-01T10:00:00+24:00",
            "2024-05-01T10:00:00",
            "2024-05-01 10:00:00Z",
            "2024-05-01t10:00:00z",
            "2024-02-30T10:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T23:59:60Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "0000-01-01T00:00:00Z",
            "2024-05-01T10:00:00.Z",
            "2024-05-01",
            "",
        ]
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.text(alphabet="0123456789-:T.Z+", max_size=26),
)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-MAX_VALUE, max_value=MAX_VALUE),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([MAX_VALUE, -MAX_VALUE, 1e18 + 1e3, 0.0, -0.0, 5e-324, 1.7976931348623157e308]),
)
anything = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3), st.lists(st.integers(), max_size=2)
)
value_maps = st.dictionaries(
    st.one_of(st.sampled_from(QUANTITIES), st.sampled_from(["x_custom", "power", ""])),
    st.one_of(numbers, numbers, numbers, anything),
    max_size=6,
)


@st.composite
def readings(draw: st.DrawFn) -> dict[str, Any]:
    reading: dict[str, Any] = {"meter": draw(ids), "ts": draw(stamps)}
    if draw(st.integers(0, 9)):
        reading["values"] = draw(value_maps)
    if not draw(st.integers(0, 9)):
        reading["custom"] = draw(
            st.sampled_from([{}, {"x_a": {"value": 1.0, "unit": "kWh"}}, {"bad": 1}])
        )
    if not draw(st.integers(0, 19)):
        reading[draw(st.sampled_from(["extra", "Meter"]))] = draw(anything)
    if not draw(st.integers(0, 19)):
        del reading[draw(st.sampled_from(sorted(reading)))]
    return reading


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": draw(st.sampled_from([1, 1, 1, 2, 1.0, "1", True])),
        "site": draw(st.sampled_from(["plant-1", "plant-1", "plant-2", "plant-1 "])),
        "agent": "gw-1",
        "seq": draw(
            st.one_of(
                st.integers(0, 10),
                st.sampled_from([-1, 2**63, 2**64 - 1, 2**64, 1.0, "1", True, None]),
            )
        ),
        "readings": draw(st.lists(readings(), max_size=4)),
    }
    if not draw(st.integers(0, 9)):
        del message[draw(st.sampled_from(sorted(message)))]
    if not draw(st.integers(0, 19)):
        message["extra"] = 1
    return message


def render(message: dict[str, Any], style: int) -> bytes:
    """JSON as agents and others write it: compact, spaced, pretty or \\u-escaped."""
    if style == 0:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if style == 1:
        return json.dumps(message, ensure_ascii=False).encode()
    if style == 2:
        return json.dumps(message, indent=2, ensure_ascii=False).encode()
    return json.dumps(message).encode()


def with_a_repeated_key(value: Any, which: int, seen: list[int]) -> str:
    """Compact JSON with the `which`-th object member (in document order) written twice."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            return "[" + ",".join(with_a_repeated_key(v, which, seen) for v in value) + "]"
        return json.dumps(value)
    members = []
    for key, item in value.items():
        member = json.dumps(key) + ":" + with_a_repeated_key(item, which, seen)
        members.append(member)
        if seen[0] == which:
            members.append(member)
        seen[0] += 1
    return "{" + ",".join(members) + "}"


def verdict(body: bytes) -> ReadingBatch | str:
    try:
        return strict_reading_batch(TOPIC, body)
    except Rejected as exc:
        return str(exc)


def fields(lines: bytes) -> list[tuple[str, dict[str, float], str]]:
    """Each line's series, its fields as floats (none an integer field) and its time."""
    parsed = []
    for line in lines.decode().split("\n"):
        series, values, ms = line.split(" ")
        pairs = [field.split("=") for field in values.split(",")]
        assert all(not text.endswith("i") for _, text in pairs)
        parsed.append((series, {name: float(text) for name, text in pairs}, ms))
    return parsed


def agree(body: bytes) -> None:
    strict = verdict(body)
    fast = fast_batch(TOPIC, body)
    if fast is not None:
        assert isinstance(strict, ReadingBatch), strict
        assert fast.model() == strict
        assert strict == fast.model()
        assert fast.model().model_dump() == strict.model_dump()
        assert fast.meters == [r.meter for r in strict.readings]
        assert fast.stamps == [epoch_millis(r.ts) for r in strict.readings]
        assert fast.size == sum(r.size for r in strict.readings)
        # What the accounting takes of each reading, without its model.
        for kept, model in zip(fast.kept, strict.readings, strict=True):
            assert [value_of(kept, q) for q in Quantity] == [model.values.get(q) for q in Quantity]
        for got, want in zip(
            fields(batch_lines([fast])), fields(batch_lines([Batch.of(strict)])), strict=True
        ):
            assert got[0] == want[0] and got[2] == want[2]
            assert got[1].keys() == want[1].keys()
            for name, value in got[1].items():
                # identical doubles, sign of zero included
                assert math.copysign(1, value) == math.copysign(1, want[1][name])
                assert value == want[1][name]
    try:
        combined: ReadingBatch | str = reading_batch(TOPIC, body).model()
    except Rejected as exc:
        combined = str(exc)
    assert combined == strict


@settings(max_examples=500, deadline=None)
@given(message=messages(), style=st.integers(0, 3), repeat=st.none() | st.integers(0, 40))
@example(
    message={"site": "plant-1", "agent": "gw-1", "seq": 1, "readings": []}, style=0, repeat=None
)
def test_fast_and_strict_agree(message: dict[str, Any], style: int, repeat: int | None) -> None:
    agree(render(message, style))
    if repeat is not None:
        agree(with_a_repeated_key(message, repeat, [0]).encode())


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40), cut=st.integers(0, 400))
def test_fast_and_strict_agree_on_broken_bytes(data: bytes, cut: int) -> None:
    valid = render(
        {
            "site": "plant-1",
            "agent": "gw-1",
            "seq": 1,
            "readings": [{"meter": "m", "ts": "2024-05-01T10:00:00Z", "values": {"frequency": 50}}],
        },
        0,
    )
    agree(data)
    agree(valid[:cut] + data + valid[cut:])


agent_values = st.dictionaries(
    st.sampled_from(list(Quantity)),
    st.floats(min_value=-MAX_VALUE, max_value=MAX_VALUE, allow_nan=False),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    meters=st.lists(
        st.tuples(
            st.text(alphabet="abz09-_.:é{}=", min_size=1, max_size=8),
            st.datetimes(
                min_value=datetime(1971, 1, 1),
                max_value=datetime(2200, 1, 1),
                timezones=st.just(UTC),
            ),
            agent_values,
        ),
        min_size=1,
        max_size=5,
    ),
    seq=st.integers(0, 2**64 - 1),
)
def test_what_agents_publish_takes_the_fast_path(
    meters: list[tuple[str, datetime, dict[Quantity, float]]], seq: int
) -> None:
    batch = ReadingBatch(
        site="plant-1",
        agent="gw-1",
        seq=seq,
        readings=[MeterReading(meter=m, ts=ts, values=v) for m, ts, v in meters],
    )
    body = batch.model_dump_json().encode()
    fast = fast_batch(TOPIC, body)
    assert isinstance(fast, Batch)
    assert fast.model() == batch
    agree(body)
