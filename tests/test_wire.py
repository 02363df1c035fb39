"""The wire contract: message models, topic layout, quantities and units, broker settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from greengauge.common.broker import BrokerSettings
from greengauge.contract import (
    KINDS,
    SCHEMA_VERSION,
    TOPIC_ROOT,
    UNITS,
    AgentState,
    AgentStatus,
    Kind,
    MeterReading,
    Quantity,
    ReadingBatch,
    Topic,
    TopicError,
    check_id,
    parse_topic,
    subscription,
    topic,
)

Q = Quantity
TS = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)


def batch_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "site": "plant-1",
        "agent": "gw-1",
        "seq": 7,
        "readings": [
            {
                "meter": "main",
                "ts": "2024-05-01T10:00:00.123Z",
                "values": {"voltage_l1": 230.1, "energy_active_import": 12345.5},
            }
        ],
    }
    data.update(changes)
    return data


def reading_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = batch_dict()["readings"][0]
    data.update(changes)
    return data


def errors_of(payload: str | bytes) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as info:
        ReadingBatch.model_validate_json(payload)
    return [(tuple(e["loc"]), e["type"]) for e in info.value.errors()]


def the_error(payload: str | bytes) -> tuple[tuple[int | str, ...], str]:
    errors = errors_of(payload)
    assert len(errors) == 1, errors
    return errors[0]


# --- round trip ---------------------------------------------------------------------------


def test_valid_batch_parses() -> None:
    batch = ReadingBatch.model_validate_json(json.dumps(batch_dict()))
    assert batch.schema_version == SCHEMA_VERSION == 1
    assert (batch.site, batch.agent, batch.seq) == ("plant-1", "gw-1", 7)
    reading = batch.readings[0]
    assert reading.meter == "main"
    assert reading.ts == TS
    assert reading.values == {Q.VOLTAGE_L1: 230.1, Q.ENERGY_ACTIVE_IMPORT: 12345.5}


def test_json_round_trip() -> None:
    batch = ReadingBatch(
        site="s",
        agent="a",
        seq=0,
        readings=[
            MeterReading(meter="m1", ts=TS, values={Q.POWER_ACTIVE: -1500.25}),
            MeterReading(meter="m2", ts=TS + timedelta(seconds=1), values={Q.COUNT: 3.0}),
        ],
    )
    text = batch.model_dump_json()
    assert ReadingBatch.model_validate_json(text) == batch
    assert json.loads(text)["readings"][0]["ts"] == "2024-05-01T10:00:00.123Z"


def test_serialised_timestamp_is_utc_with_milliseconds() -> None:
    reading = MeterReading(
        meter="m", ts=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), values={Q.MASS: 1}
    )
    assert json.loads(reading.model_dump_json())["ts"] == "2024-01-02T03:04:05.000Z"


def test_sub_millisecond_precision_is_dropped_on_construction() -> None:
    ts = datetime(2024, 5, 1, 10, 0, 0, 123999, tzinfo=UTC)
    reading = MeterReading(meter="m", ts=ts, values={Q.VOLTAGE_L1: 1.0})
    assert reading.ts == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert MeterReading.model_validate_json(reading.model_dump_json()) == reading


@given(
    ts=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    ),
    values=st.dictionaries(
        st.sampled_from(list(Quantity)),
        st.floats(allow_nan=False, allow_infinity=False),
        min_size=1,
    ),
    seq=st.integers(0, 2**63),
)
def test_round_trip_property(ts: datetime, values: dict[Quantity, float], seq: int) -> None:
    batch = ReadingBatch(
        site="s", agent="a", seq=seq, readings=[MeterReading(meter="m", ts=ts, values=values)]
    )
    again = ReadingBatch.model_validate_json(batch.model_dump_json())
    assert again == batch
    assert again.readings[0].ts.tzinfo == UTC
    assert again.readings[0].ts.microsecond % 1000 == 0
    assert abs(again.readings[0].ts - ts) < timedelta(milliseconds=1)


def test_timestamps_in_other_zones_become_utc() -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(ts="2024-05-01T12:00:00.123+02:00")]))
    ts = ReadingBatch.model_validate_json(payload).readings[0].ts
    assert ts == TS
    assert ts.utcoffset() == timedelta(0)
    assert ts.hour == 10


def test_python_timestamp_in_another_zone_becomes_utc() -> None:
    tz = timezone(timedelta(hours=-5))
    reading = MeterReading(meter="m", ts=datetime(2024, 5, 1, 5, 0, tzinfo=tz), values={Q.COUNT: 1})
    assert reading.ts.tzinfo == UTC
    assert reading.ts.hour == 10


def test_status_round_trip() -> None:
    status = AgentStatus(site="s", agent="a", state=AgentState.ONLINE, ts=TS)
    assert AgentStatus.model_validate_json(status.model_dump_json()) == status
    assert json.loads(status.model_dump_json())["state"] == "online"


def test_models_are_frozen() -> None:
    batch = ReadingBatch.model_validate_json(json.dumps(batch_dict()))
    with pytest.raises(ValidationError):
        batch.seq = 8


# --- rejections, with the field named -----------------------------------------------------


def test_unknown_quantity() -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(values={"voltage_l4": 1.0})]))
    assert the_error(payload) == (("readings", 0, "values", "voltage_l4", "[key]"), "enum")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_value_literals(literal: str) -> None:
    payload = json.dumps(batch_dict()).replace("230.1", literal)
    assert literal in payload
    assert the_error(payload) == (("readings", 0, "values", "voltage_l1"), "finite_number")


def test_non_finite_value_in_python() -> None:
    with pytest.raises(ValidationError, match="finite"):
        MeterReading(meter="m", ts=TS, values={Q.VOLTAGE_L1: float("nan")})


def test_string_where_a_number_is_expected() -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(values={"voltage_l1": "230.1"})]))
    assert the_error(payload) == (("readings", 0, "values", "voltage_l1"), "float_type")


def test_string_seq_is_refused() -> None:
    assert the_error(json.dumps(batch_dict(seq="7"))) == (("seq",), "int_type")


def test_float_seq_is_refused() -> None:
    assert the_error(json.dumps(batch_dict(seq=7.5)))[0] == ("seq",)


def test_boolean_value_is_refused() -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(values={"voltage_l1": True})]))
    assert the_error(payload)[0] == ("readings", 0, "values", "voltage_l1")


def test_integer_value_is_a_number() -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(values={"count": 3})]))
    assert ReadingBatch.model_validate_json(payload).readings[0].values == {Q.COUNT: 3.0}


def test_negative_seq() -> None:
    assert the_error(json.dumps(batch_dict(seq=-1))) == (("seq",), "greater_than_equal")


def test_zero_seq_is_fine() -> None:
    assert ReadingBatch.model_validate_json(json.dumps(batch_dict(seq=0))).seq == 0


def test_empty_readings() -> None:
    assert the_error(json.dumps(batch_dict(readings=[]))) == (("readings",), "too_short")


def test_empty_values() -> None:
    """A reading needs a value, canonical or user-named (custom may stand alone)."""
    payload = json.dumps(batch_dict(readings=[reading_dict(values={})]))
    assert the_error(payload) == (("readings",), "value_error")


@pytest.mark.parametrize("naive", ["2024-05-01T10:00:00", "2024-05-01T10:00:00.123"])
def test_naive_timestamp(naive: str) -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(ts=naive)]))
    assert the_error(payload) == (("readings", 0, "ts"), "timezone_aware")


def test_naive_python_timestamp() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        MeterReading(meter="m", ts=datetime(2024, 5, 1, 10), values={Q.COUNT: 1})


def test_unparseable_timestamp() -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(ts="yesterday")]))
    assert the_error(payload)[0] == ("readings", 0, "ts")


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (batch_dict(extra=1), ("extra",)),
        (batch_dict(readings=[reading_dict(unit="V")]), ("readings", 0, "unit")),
    ],
)
def test_extra_fields(data: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    assert the_error(json.dumps(data)) == (loc, "extra_forbidden")


@pytest.mark.parametrize("field", ["site", "agent", "seq", "readings"])
def test_missing_fields(field: str) -> None:
    data = batch_dict()
    del data[field]
    assert the_error(json.dumps(data)) == ((field,), "missing")


def test_schema_version_defaults_and_other_versions_are_refused() -> None:
    data = batch_dict()
    del data["schema_version"]
    assert ReadingBatch.model_validate_json(json.dumps(data)).schema_version == 1
    assert the_error(json.dumps(batch_dict(schema_version=2)))[0] == ("schema_version",)


BAD_IDS = [
    *("a/b", "a+b", "a#b", "a\\b", "a b", " ", "tab\there", "nl\n", "\x00", "\x7f"),
    *("", "x" * 65),
]
GOOD_IDS = ["a", "x" * 64, "plant-1", "gw_01", "Halle.3", "café", "m:1"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("field", ["site", "agent"])
def test_bad_ids_in_the_batch(bad: str, field: str) -> None:
    assert the_error(json.dumps(batch_dict(**{field: bad}))) == ((field,), "value_error")


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_meter_ids(bad: str) -> None:
    payload = json.dumps(batch_dict(readings=[reading_dict(meter=bad)]))
    assert the_error(payload) == (("readings", 0, "meter"), "value_error")


@pytest.mark.parametrize("good", GOOD_IDS)
def test_good_ids(good: str) -> None:
    assert check_id(good) == good
    data = batch_dict(site=good, agent=good, readings=[reading_dict(meter=good)])
    batch = ReadingBatch.model_validate_json(json.dumps(data))
    assert (batch.site, batch.agent, batch.readings[0].meter) == (good, good, good)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_check_id_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid id"):
        check_id(bad)


def test_several_errors_are_all_reported() -> None:
    payload = json.dumps(batch_dict(seq=-1, site="a/b"))
    assert {loc for loc, _ in errors_of(payload)} == {("seq",), ("site",)}


# --- topics -------------------------------------------------------------------------------


def test_topic_layout() -> None:
    assert TOPIC_ROOT == "greengauge/v1"
    assert topic("plant-1", "gw-1", Topic.READINGS) == "greengauge/v1/plant-1/gw-1/readings"
    assert topic("plant-1", "gw-1", Topic.STATUS) == "greengauge/v1/plant-1/gw-1/status"


@pytest.mark.parametrize("bad", ["+", "#", "a/b", "", "a b"])
def test_topic_refuses_bad_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid id"):
        topic(bad, "gw", Topic.READINGS)
    with pytest.raises(ValueError, match="invalid id"):
        topic("site", bad, Topic.READINGS)


def test_subscription() -> None:
    assert subscription(Topic.READINGS) == "greengauge/v1/+/+/readings"
    assert subscription(Topic.STATUS) == "greengauge/v1/+/+/status"
    assert subscription(Topic.READINGS, site="plant-1") == "greengauge/v1/plant-1/+/readings"
    assert subscription(Topic.STATUS, "s", "a") == "greengauge/v1/s/a/status"


@pytest.mark.parametrize("kind", list(Topic))
def test_parse_topic_inverts_topic(kind: Topic) -> None:
    assert parse_topic(topic("plant-1", "gw-1", kind)) == ("plant-1", "gw-1", kind)
    assert parse_topic(topic("plant-1", "gw-1", kind))[2] is kind


def _is_id(value: str) -> bool:
    try:
        check_id(value)
    except ValueError:
        return False
    return True


@given(
    site=st.text(min_size=1, max_size=64).filter(_is_id),
    agent=st.text(min_size=1, max_size=64).filter(_is_id),
    kind=st.sampled_from(list(Topic)),
)
def test_parse_topic_round_trip_property(site: str, agent: str, kind: Topic) -> None:
    assert parse_topic(topic(site, agent, kind)) == (site, agent, kind)


@pytest.mark.parametrize(
    "bad",
    [
        "greengauge/v2/s/a/readings",
        "other/v1/s/a/readings",
        "GreenGauge/v1/s/a/readings",
        "/greengauge/v1/s/a/readings",
        "greengauge/v1/s/readings",
        "greengauge/v1/s/a/b/readings",
        "greengauge/v1/s/a/readings/",
        "greengauge/v1/s/a/readingz",
        "greengauge/v1/s/a/Readings",
        "greengauge/v1/s/a/",
        "greengauge/v1//a/readings",
        "greengauge/v1/s//readings",
        "greengauge/v1/+/a/readings",
        "greengauge/v1/s/#/readings",
        "greengauge/v1/s p/a/readings",
        f"greengauge/v1/{'x' * 65}/a/readings",
        "",
    ],
)
def test_parse_topic_refuses(bad: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(bad)


def test_topic_error_is_a_value_error_and_names_the_topic() -> None:
    assert issubclass(TopicError, ValueError)
    with pytest.raises(TopicError, match="greengauge/v1/s/a/b/readings"):
        parse_topic("greengauge/v1/s/a/b/readings")
    with pytest.raises(TopicError, match="readingz"):
        parse_topic("greengauge/v1/s/a/readingz")


# --- quantities, units, kinds -------------------------------------------------------------


def test_every_quantity_has_a_unit() -> None:
    assert set(UNITS) == set(Quantity)
    assert all(UNITS[q] for q in Quantity)


@pytest.mark.parametrize(
    ("quantity", "unit"),
    [
        (Q.VOLTAGE_L1, "V"),
        (Q.VOLTAGE_L1_L2, "V"),
        (Q.CURRENT_N, "A"),
        (Q.POWER_ACTIVE, "W"),
        (Q.POWER_ACTIVE_L3, "W"),
        (Q.POWER_REACTIVE, "var"),
        (Q.POWER_APPARENT_L2, "VA"),
        (Q.POWER_FACTOR, "1"),
        (Q.POWER_FACTOR_L1, "1"),
        (Q.FREQUENCY, "Hz"),
        (Q.ENERGY_ACTIVE_IMPORT, "kWh"),
        (Q.ENERGY_ACTIVE_TOTAL, "kWh"),
        (Q.ENERGY_ACTIVE_EXPORT_L2, "kWh"),
        (Q.ENERGY_REACTIVE_IMPORT, "kvarh"),
        (Q.ENERGY_REACTIVE_TOTAL, "kvarh"),
        (Q.VOLUME, "m3"),
        (Q.MASS, "t"),
        (Q.COUNT, "1"),
    ],
)
def test_units(quantity: Quantity, unit: str) -> None:
    assert UNITS[quantity] == unit


def test_unit_families() -> None:
    for q in Quantity:
        if q.value.startswith("voltage"):
            assert UNITS[q] == "V"
        elif q.value.startswith("current"):
            assert UNITS[q] == "A"
        elif q.value.startswith("power_active"):
            assert UNITS[q] == "W"
        elif q.value.startswith("energy_reactive"):
            assert UNITS[q] == "kvarh"
        elif q.value.startswith("energy_active"):
            assert UNITS[q] == "kWh"


def test_counters() -> None:
    counters = {q for q in Quantity if KINDS[q] is Kind.COUNTER}
    energy = {q for q in Quantity if q.value.startswith("energy_")}
    assert counters == energy | {Q.VOLUME, Q.MASS, Q.COUNT}
    assert len(energy) == 12


def test_every_quantity_has_a_kind() -> None:
    assert set(KINDS) == set(Quantity)
    for q in (Q.VOLTAGE_L1, Q.POWER_ACTIVE, Q.POWER_FACTOR, Q.FREQUENCY, Q.CURRENT_N):
        assert KINDS[q] is Kind.INSTANTANEOUS


def test_quantity_names_are_the_public_contract() -> None:
    # renaming is a breaking change: the names are spelled out here on purpose
    assert {q.value for q in Quantity} >= {
        "voltage_l1",
        "current_l1",
        "power_active",
        "power_reactive",
        "power_factor",
        "frequency",
        "energy_active_import",
        "energy_active_export",
        "energy_reactive_import",
        "volume",
        "mass",
        "count",
    }
    assert len(Quantity) == 42


# --- broker settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker", "broker", 1883, False),
        ("mqtt://broker:1884", "broker", 1884, False),
        ("mqtts://broker", "broker", 8883, True),
        ("mqtts://broker:8884", "broker", 8884, True),
        ("mqtts://broker:1883", "broker", 1883, True),
        ("mqtt://10.0.0.5", "10.0.0.5", 1883, False),
        ("mqtt://[::1]:1885", "::1", 1885, False),
        ("mqtt://broker:65535", "broker", 65535, False),
    ],
)
def test_broker_url(url: str, host: str, port: int, tls: bool) -> None:
    settings = BrokerSettings(url=url)
    assert (settings.host, settings.port, settings.tls) == (host, port, tls)


def test_broker_defaults() -> None:
    settings = BrokerSettings(url="mqtt://broker")
    assert settings.username is None
    assert settings.password is None
    assert settings.client_id is None
    assert settings.keepalive == 30


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://broker", "scheme"),
        ("tcp://broker:1883", "scheme"),
        ("ws://broker", "scheme"),
        ("broker:1883", "scheme"),
        ("broker", "scheme"),
        ("", "scheme"),
        ("mqtt://", "no host"),
        ("mqtt://:1883", "no host"),
        ("mqtt://broker:99999", "1 to 65535"),
        ("mqtt://broker:abc", "1 to 65535"),
        ("mqtt://broker?password=x", "no path, query"),
        ("mqtt://secret/@broker", "no path, query"),
        ("mqtt://user:secret@broker", "credentials"),
        ("mqtt://user@broker", "credentials"),
        ("mqtts://:secret@broker:8883", "credentials"),
    ],
)
def test_broker_url_refused(url: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        BrokerSettings(url=url)
    assert info.value.errors()[0]["loc"] == ("url",)


def test_credentials_in_url_are_not_echoed() -> None:
    with pytest.raises(ValidationError) as info:
        BrokerSettings(url="mqtt://user:hunter2@broker")
    # the message (what config errors show) must not repeat the password
    assert all("hunter2" not in e["msg"] for e in info.value.errors())


def test_broker_port_zero_is_refused() -> None:
    # urlsplit accepts port 0, and `port` then falls back to 1883 because 0 is falsy:
    # a config saying :0 must not silently connect to 1883.
    with pytest.raises(ValidationError):
        BrokerSettings(url="mqtt://broker:0")


@pytest.mark.parametrize("url", ["MQTTS://broker", "Mqtts://broker"])
def test_upper_case_tls_scheme_is_tls_or_refused(url: str) -> None:
    # urlsplit lower-cases the scheme, so validation accepts it; `tls` must agree with it
    # rather than silently connecting without TLS to port 1883.
    try:
        settings = BrokerSettings(url=url)
    except ValidationError:
        return
    assert settings.tls
    assert settings.port == 8883


def test_password_is_secret() -> None:
    settings = BrokerSettings.model_validate(
        {"url": "mqtt://broker", "username": "u", "password": "hunter2"}
    )
    assert settings.password is not None
    assert settings.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize("keepalive", [4, 3601])
def test_keepalive_bounds(keepalive: int) -> None:
    with pytest.raises(ValidationError, match="keepalive"):
        BrokerSettings(url="mqtt://broker", keepalive=keepalive)


def test_client_id_must_be_an_id() -> None:
    with pytest.raises(ValidationError, match="client_id"):
        BrokerSettings(url="mqtt://broker", client_id="a/b")


def test_broker_unknown_field() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        BrokerSettings.model_validate({"url": "mqtt://broker", "tls": True})
