"""Message validation in the collector: a reading batch, or a precise reason why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.batch import Batch
from collector.validate import MAX_REASON_ERRORS, Rejected, Window, reading_batch
from greengauge.contract import MeterReading, Quantity, ReadingBatch, Topic, topic

TOPIC = "greengauge/v1/plant-1/gw-1/readings"


def message(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "site": "plant-1",
        "agent": "gw-1",
        "seq": 3,
        "readings": [
            {"meter": "main", "ts": "2024-05-01T10:00:00.000Z", "values": {"voltage_l1": 230.0}}
        ],
    }
    data.update(changes)
    return data


def payload(**changes: Any) -> bytes:
    return json.dumps(message(**changes)).encode()


def reason(topic_name: str, body: bytes) -> str:
    with pytest.raises(Rejected) as info:
        reading_batch(topic_name, body)
    return str(info.value)


def test_valid_message_is_accepted() -> None:
    batch = reading_batch(TOPIC, payload())
    assert (batch.site, batch.agent, batch.seq) == ("plant-1", "gw-1", 3)
    assert batch.readings[0].values == {Quantity.VOLTAGE_L1: 230.0}
    assert batch.readings[0].ts == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_what_the_agent_publishes_is_accepted() -> None:
    batch = ReadingBatch(
        site="plant-1",
        agent="gw-1",
        seq=0,
        readings=[
            MeterReading(
                meter="m", ts=datetime.now(UTC), values={Quantity.ENERGY_ACTIVE_IMPORT: 1.5}
            )
        ],
    )
    name = topic("plant-1", "gw-1", Topic.READINGS)
    assert reading_batch(name, batch.model_dump_json().encode()).model() == batch


def test_rejected_is_a_value_error() -> None:
    assert issubclass(Rejected, ValueError)


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b'{"site": "plant-1",}', b"\x00"])
def test_not_json(body: bytes) -> None:
    text = reason(TOPIC, body)
    assert text.startswith("invalid reading batch: ")
    assert "Invalid JSON" in text


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00",
        b"\xc3\x28",
        payload().replace(b'"plant-1"', b'"plant-\xff"'),
    ],
)
def test_bytes_that_are_not_utf8(body: bytes) -> None:
    assert "invalid reading batch" in reason(TOPIC, body)


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object(body: bytes) -> None:
    text = reason(TOPIC, body)
    assert text.startswith("invalid reading batch: message: ")


def test_an_empty_object_names_every_missing_field() -> None:
    text = reason(TOPIC, b"{}")
    for field in ("site", "agent", "seq", "readings"):
        assert f"{field}: Field required" in text


def with_reading(meter: str = "m", ts: str = "2024-05-01T10:00:00Z", **values: Any) -> bytes:
    return payload(readings=[{"meter": meter, "ts": ts, "values": values}])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (payload(seq=-1), "seq"),
        (payload(seq="3"), "seq"),
        (payload(readings=[]), "readings"),
        (payload(schema_version=2), "schema_version"),
        (payload(site="plant 1"), "site"),
        (payload(extra=True), "extra"),
        (with_reading(), "readings"),
        (with_reading(ts="2024-05-01T10:00:00", count=1), "readings.0.ts"),
        (with_reading(watts=1), "readings.0.values.watts.[key]"),
        (with_reading(meter="m/1", count=1), "readings.0.meter"),
        (payload().replace(b"230.0", b"NaN"), "readings.0.values.voltage_l1"),
    ],
)
def test_reason_names_the_offending_field(body: bytes, field: str) -> None:
    text = reason(TOPIC, body)
    assert text.startswith(f"invalid reading batch: {field}: "), text


def test_reason_is_capped() -> None:
    readings = [
        {"meter": f"m/{i}", "ts": "x", "values": {"watts": 1}} for i in range(4)
    ]  # 12 errors
    text = reason(TOPIC, payload(readings=readings))
    assert text.count(";") == MAX_REASON_ERRORS - 1
    assert text.endswith(" (+7 more)")


def test_reason_not_capped_at_exactly_the_maximum() -> None:
    body = json.dumps({"x1": 1, "x2": 2, **message(seq=-1)}).encode()  # 3 errors
    text = reason(TOPIC, body)
    assert "more)" not in text
    assert text.count(";") == 2


def test_status_topic_does_not_carry_readings() -> None:
    name = "greengauge/v1/plant-1/gw-1/status"
    assert reason(name, payload()) == f"topic {name!r} is not a readings topic"


@pytest.mark.parametrize(
    "name",
    [
        "greengauge/v2/plant-1/gw-1/readings",
        "other/v1/plant-1/gw-1/readings",
        "greengauge/v1/plant-1/readings",
        "greengauge/v1/plant-1/gw-1/x/readings",
        "greengauge/v1/plant-1/gw-1/reading",
        "greengauge/v1/+/gw-1/readings",
        "",
    ],
)
def test_topic_outside_the_layout(name: str) -> None:
    text = reason(name, payload())
    assert text.startswith(f"topic {name!r}")


def test_topic_is_checked_before_the_payload() -> None:
    assert reason("other/topic", b"not json").startswith("topic 'other/topic'")


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("greengauge/v1/plant-2/gw-1/readings", {}),
        ("greengauge/v1/plant-1/gw-2/readings", {}),
        (TOPIC, {"site": "plant-2"}),
        (TOPIC, {"agent": "gw-2"}),
        (TOPIC, {"site": "gw-1", "agent": "plant-1"}),
        ("greengauge/v1/Plant-1/gw-1/readings", {}),
    ],
)
def test_site_or_agent_not_matching_the_topic(name: str, changes: dict[str, Any]) -> None:
    text = reason(name, payload(**changes))
    data = message(**changes)
    assert f"site {data['site']!r} agent {data['agent']!r}" in text
    assert "topic" in text


F = Quantity.FREQUENCY


@settings(max_examples=300, deadline=None)
@given(
    offsets=st.lists(st.integers(-10_000_000, 400_000), min_size=1, max_size=5),
    now_us=st.integers(0, 999_999),
    max_age_s=st.integers(1, 10_000),
    max_future_s=st.integers(0, 300),
)
def test_a_batch_is_in_the_window_exactly_when_each_of_its_readings_is(
    offsets: list[int], now_us: int, max_age_s: int, max_future_s: int
) -> None:
    """The oldest and newest readings decide, with the reason of the first one outside."""
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)
    window = Window(timedelta(seconds=max_age_s), timedelta(seconds=max_future_s))
    model = ReadingBatch(
        site="s",
        agent="a",
        seq=0,
        readings=[
            MeterReading(meter=f"m{i}", ts=now + timedelta(milliseconds=ms), values={F: 50.0})
            for i, ms in enumerate(offsets)
        ],
    )
    expected: str | None = None
    for index, r in enumerate(model.readings):
        try:
            window.check(r.ts, now, f"readings[{index}] (meter {r.meter!r}) ts")
        except Rejected as exc:
            expected = str(exc)
            break
    try:
        window.check_batch(Batch.of(model), now)
        got = None
    except Rejected as exc:
        got = str(exc)
    assert got == expected
