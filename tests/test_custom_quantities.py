"""User-named quantities: names, units, the wire, profiles, stores. Pure except SQLite files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from agent.profiles.model import Profile
from collector.batch import Batch
from collector.stores.history import Query, SqliteHistory
from collector.stores.lineprotocol import batch_lines, value_count
from collector.stores.sqlite import SqliteStore
from collector.validate import Rejected, reading_batch
from greengauge.contract import (
    CUSTOM_PREFIX,
    MAX_CUSTOM,
    MAX_CUSTOM_NAME,
    MAX_UNIT,
    CustomValue,
    Kind,
    MeterReading,
    Quantity,
    ReadingBatch,
    check_custom_name,
    check_unit,
)

TS = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
NAME = re.compile(r"x_[a-z][a-z0-9_]*")

names = st.from_regex(r"\Ax_[a-z][a-z0-9_]{0,45}\Z")
units = st.from_regex(r"\A[A-Za-z0-9%/._^*-]{1,16}\Z")
finite = st.floats(allow_nan=False, allow_infinity=False)
kinds = st.sampled_from(Kind)


# --- names and units ----------------------------------------------------------------------


@given(st.text(max_size=80))
def test_a_name_is_accepted_exactly_when_it_is_in_the_custom_namespace(text: str) -> None:
    valid = bool(NAME.fullmatch(text)) and len(text) <= MAX_CUSTOM_NAME
    try:
        check_custom_name(text)
    except ValueError as exc:
        assert not valid, exc
        assert "custom quantity" in str(exc) or "canonical" in str(exc)
    else:
        assert valid
        assert text not in {q.value for q in Quantity}


@pytest.mark.parametrize("quantity", list(Quantity))
def test_no_canonical_name_is_a_custom_one(quantity: Quantity) -> None:
    assert not quantity.value.startswith(CUSTOM_PREFIX)
    with pytest.raises(ValueError, match="is a canonical quantity"):
        check_custom_name(quantity.value)


@given(st.text(max_size=40))
def test_a_unit_is_accepted_only_from_its_characters(text: str) -> None:
    try:
        check_unit(text)
    except ValueError as exc:
        assert "unit" in str(exc)
    else:
        assert 1 <= len(text) <= MAX_UNIT
        # Nothing the line protocol, JSON, SQL text or a log line would have to escape.
        assert not set(text) & set(" ,=\\\"'\n\r\t<>&;{}") and text.isprintable()
        assert text.isascii()


@pytest.mark.parametrize(
    "unit", ["", "deg C", "t/h,x=1", "m3\n", "bar\x00", '"', "a" * (MAX_UNIT + 1), "°C"]
)
def test_hostile_units_are_refused_with_the_reason(unit: str) -> None:
    with pytest.raises(ValueError, match="unit"):
        check_unit(unit)


# --- the wire -----------------------------------------------------------------------------


class OldMeterReading(BaseModel):
    """MeterReading as collectors before user-named quantities validated it."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    meter: str
    ts: datetime
    values: dict[Quantity, float]


customs = st.dictionaries(
    names,
    st.builds(CustomValue, value=finite, unit=units, kind=kinds),
    max_size=5,
)
canonicals = st.dictionaries(st.sampled_from(Quantity), finite, max_size=5)


@given(canonicals, customs)
def test_the_wire_round_trip_keeps_every_value(
    values: dict[Quantity, float], custom: dict[str, CustomValue]
) -> None:
    if not values and not custom:
        values = {Quantity.FREQUENCY: 50.0}
    reading = MeterReading(meter="m1", ts=TS, values=values, custom=custom)
    text = reading.model_dump_json()
    assert MeterReading.model_validate_json(text) == reading
    assert dict(reading.items()) == {q.value: v for q, v in values.items()} | {
        n: c.value for n, c in custom.items()
    }
    assert reading.size == len(values) + len(custom)
    if not custom:
        # What a collector that predates user-named quantities accepts.
        assert "custom" not in json.loads(text)
        OldMeterReading.model_validate_json(text)


@given(st.dictionaries(st.sampled_from(Quantity), finite, min_size=1, max_size=5))
def test_old_messages_are_still_valid(values: dict[Quantity, float]) -> None:
    text = json.dumps({"meter": "m1", "ts": "2026-05-01T10:00:00Z", "values": values})
    reading = MeterReading.model_validate_json(text)
    assert reading.custom == {} and reading.values == values


def custom_payload(custom: dict[str, Any]) -> str:
    return json.dumps({"meter": "m1", "ts": "2026-05-01T10:00:00Z", "custom": custom})


@pytest.mark.parametrize(
    ("custom", "reason"),
    [
        ({"voltage_l1": {"value": 1, "unit": "V"}}, "is a canonical quantity"),
        ({"steam_t": {"value": 1, "unit": "degC"}}, "invalid custom quantity name"),
        ({"x_a": {"value": 1, "unit": "deg C"}}, "invalid unit"),
        ({"x_a": {"value": 1, "unit": "degC", "kind": "gauge"}}, "kind"),
        ({"x_a": {"value": 1}}, "unit"),
        ({"x_a": {"value": 1, "unit": "degC", "extra": 1}}, "extra"),
        ({f"x_q{i}": {"value": 1, "unit": "V"} for i in range(MAX_CUSTOM + 1)}, "at most 64"),
    ],
)
def test_hostile_custom_quantities_are_refused_with_the_reason(
    custom: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        MeterReading.model_validate_json(custom_payload(custom))


def test_a_reading_without_any_value_is_refused() -> None:
    reading = {"meter": "m1", "ts": "2026-05-01T10:00:00Z", "custom": {}}
    payload = {"site": "s1", "agent": "a1", "seq": 1, "readings": [reading]}
    with pytest.raises(ValidationError, match=r"readings\[0\] has no value \(values or custom\)"):
        ReadingBatch.model_validate_json(json.dumps(payload))


def batch(**custom: CustomValue) -> ReadingBatch:
    reading = MeterReading(meter="m1", ts=TS, values={Quantity.FREQUENCY: 50.0}, custom=custom)
    return ReadingBatch(site="s1", agent="a1", seq=1, readings=[reading])


def test_the_collector_bounds_custom_values() -> None:
    payload = batch(x_big=CustomValue(value=2e18, unit="W")).model_dump_json().encode()
    with pytest.raises(Rejected, match=r"readings\[0\] \(meter 'm1'\) x_big 2e\+18 is beyond"):
        reading_batch("greengauge/v1/s1/a1/readings", payload)


# --- profiles -----------------------------------------------------------------------------


def profile(**register: Any) -> Profile:
    base = {"quantity": "x_steam_temperature", "address": 0, "type": "float32", "unit": "degC"}
    return Profile.model_validate(
        {
            "model": "bench",
            "manufacturer": "test",
            "description": "test",
            "sources": {"t": "test"},
            "function": "holding",
            "registers": [{**base, "source": "test", **register}],
        }
    )


def test_a_profile_maps_a_register_to_a_custom_quantity() -> None:
    p = profile(kind="counter", rollover=1e6, unit="m3")
    assert p.custom_units == {"x_steam_temperature": ("m3", Kind.COUNTER)}
    assert p.counters == {"x_steam_temperature": 1e6}
    assert profile().custom_units == {"x_steam_temperature": ("degC", Kind.INSTANTANEOUS)}


@pytest.mark.parametrize(
    ("register", "reason"),
    [
        ({"unit": "deg C"}, "x_steam_temperature: invalid unit"),
        ({"quantity": "steam_temperature"}, "invalid custom quantity name"),
        ({"quantity": "voltage_l1"}, "not the canonical unit 'V'"),
        ({"rollover": 100.0}, "rollover is for counters"),
    ],
)
def test_a_bad_custom_register_is_refused_with_the_reason(
    register: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        profile(**register)


# --- stores -------------------------------------------------------------------------------


def test_line_protocol_writes_custom_fields_beside_the_canonical_ones() -> None:
    b = Batch.of(batch(x_steam_temperature=CustomValue(value=181.5, unit="degC")))
    line = batch_lines([b]).decode()
    assert line == (
        "reading,agent=a1,meter=m1,site=s1 frequency=50.0,x_steam_temperature=181.5 "
        f"{int(TS.timestamp() * 1000)}"
    )
    assert value_count([b]) == 2


@given(canonicals, customs)
def test_every_custom_value_is_one_plain_line_protocol_field(
    values: dict[Quantity, float], custom: dict[str, CustomValue]
) -> None:
    if not values and not custom:
        values = {Quantity.FREQUENCY: 50.0}
    reading = MeterReading(meter="m1", ts=TS, values=values, custom=custom)
    b = Batch.of(ReadingBatch(site="s1", agent="a1", seq=1, readings=[reading]))
    line = batch_lines([b]).decode()
    # Three space-separated parts (series, fields, time): no name or value needs escaping.
    _series, fields, _time = line.split(" ")
    pairs = dict(field.split("=") for field in fields.split(","))
    assert pairs == {name: repr(value) for name, value in reading.items()}
    assert value_count([b]) == len(pairs)


def test_line_protocol_with_custom_values_alone() -> None:
    reading = MeterReading(meter="m1", ts=TS, custom={"x_p": CustomValue(value=1.5, unit="bar")})
    b = Batch.of(ReadingBatch(site="s1", agent="a1", seq=1, readings=[reading]))
    assert b" x_p=1.5 " in batch_lines([b])


def test_sqlite_stores_custom_values_and_their_units(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    store = SqliteStore(path)
    kind = Kind.COUNTER
    assert (
        store.write([Batch.of(batch(x_water=CustomValue(value=12.5, unit="m3", kind=kind)))]) == 2
    )
    store.close()
    history = SqliteHistory(path)
    end = datetime(2026, 5, 1, 11, tzinfo=UTC)
    (bucket,) = history.query(Query("s1", "m1", "x_water", TS, end, 3600))
    assert (bucket.mean, bucket.count) == (12.5, 1)
    assert history.custom_unit("s1", "m1", "x_water") == "m3"
    assert history.custom_unit("s1", "m1", "x_other") is None
    history.close()
