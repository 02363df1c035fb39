"""No message, however hostile, stops ingest, and each one is either used or dead-lettered.

Every subscription of the collector (readings, agent status, MES production) gets valid
and hostile messages: each must be acknowledged exactly once, and either accepted (its
readings read back from the store) or dead-lettered with a reason, never both, never an
exception out of the handler. A fault of the collector's own at any stage dead-letters
that one message with the stage, and the next message is used as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from test_api import SITE as PLANT_SITE
from test_api import plant

from collector.accounting.engine import Accounting
from collector.accounting.live import LiveAccounting
from collector.app import CollectorApp as Collector
from collector.config import CollectorConfig
from collector.deadletters import DeadLetters
from collector.guard import Guard
from collector.ingest import Message
from collector.metrics import CollectorMetrics
from collector.state.statuses import AgentStatuses
from collector.stores.opening import EMBEDDED_STORE_FILE
from collector.stores.sqlite import SqliteStore
from greengauge.contract import MAX_SEQ

SITE, AGENT = "plant-1", "gw-1"
READINGS = f"greengauge/v1/{SITE}/{AGENT}/readings"
STATUS = f"greengauge/v1/{SITE}/{AGENT}/status"
PRODUCTION = f"greengauge/v1/{PLANT_SITE}/production"
OVERFLOWS = "0001-01-01T00:00:00+01:00"  # valid ISO 8601, before year 1 in UTC


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso(seconds_ago: float = 0.0) -> str:
    return iso(datetime.now(UTC) - timedelta(seconds=seconds_ago))


def readings(seq: int = 1, meter: str = "m1", ts: str | None = None, **more: Any) -> bytes:
    body: dict[str, Any] = {
        "schema_version": 1,
        "site": SITE,
        "agent": AGENT,
        "seq": seq,
        "readings": [{"meter": meter, "ts": ts or now_iso(), "values": {"power_active": 1.5}}],
    }
    return json.dumps({**body, **more}).encode()


def status(ts: str | None = None, **more: Any) -> bytes:
    body = {"schema_version": 1, "site": SITE, "agent": AGENT, "state": "online"}
    return json.dumps({**body, "ts": ts or now_iso(), **more}).encode()


def production(quantity: float = 5.0, start: str | None = None, **more: Any) -> bytes:
    body = {
        "kind": "output",
        "site": PLANT_SITE,
        "line": "l1",
        "start": start or now_iso(600),
        "end": now_iso(),
        "quantity": quantity,
        "unit": "pieces",
    }
    return json.dumps({**body, **more}).encode()


def twice(payload: bytes, key: str, value: Any) -> bytes:
    """The payload with `key` repeated at the front of its outermost object."""
    return (
        b"{" + json.dumps(key).encode() + b": " + json.dumps(value).encode() + b", " + payload[1:]
    )


@dataclass
class Acks:
    calls: Counter[int] = field(default_factory=Counter)

    def message(self, topic: str, payload: bytes) -> Message:
        n = len(self.calls)
        self.calls[n] += 0

        def ack() -> None:
            self.calls[n] += 1

        return Message(topic, payload, ack)


def dead_digests(dead_letters: DeadLetters) -> list[str]:
    """The sha256 of every dead-lettered payload (an entry keeps only a prefix of it)."""
    if not dead_letters.path.exists():
        return []
    lines = dead_letters.path.read_text("utf-8").splitlines()
    return [json.loads(line)["sha256"] for line in lines]


def dead_reasons(dead_letters: DeadLetters) -> list[str]:
    lines = dead_letters.path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["reason"] for line in lines]


@contextmanager
def collector(
    directory: Path, retention: timedelta | None = None, **ingest: Any
) -> Iterator[Collector]:
    config = CollectorConfig.model_validate(
        {"mqtt": {"url": "mqtt://127.0.0.1:1"}, "data_dir": str(directory), "ingest": ingest}
    )
    store = SqliteStore(directory / EMBEDDED_STORE_FILE)
    c = Collector(config, store, table=True, retention=retention)
    try:
        yield c
    finally:
        c.close()
        store.close()


def stored(c: Collector) -> set[tuple[str, str, str, int]]:
    """(site, agent, meter, ts ms) of every reading in the embedded store."""
    with sqlite3.connect(c.config.data_dir / EMBEDDED_STORE_FILE) as db:
        rows = db.execute("SELECT site, agent, meter, ts FROM reading").fetchall()
    return {(s, a, m, int(t)) for s, a, m, t in rows}


def feed(c: Collector, payloads: list[tuple[str, bytes]]) -> Acks:
    acks = Acks()
    for topic, payload in payloads:
        c.pipeline.receive(acks.message(topic, payload))
    asyncio.run(c.writer.flush())
    return acks


# --- hostile messages, generated --------------------------------------------------------

ids = st.sampled_from(["m1", "m2", "pump-7"])
instants = st.sampled_from(
    [
        OVERFLOWS,
        "9999-12-31T23:59:59.999-01:00",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2000-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2024-05-01T10:00:00",
        "not a time",
    ]
) | st.floats(min_value=0, max_value=20 * 365 * 86400).map(now_iso)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**30, MAX_SEQ, MAX_SEQ + 1, 2**63, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def reading_messages(draw: st.DrawFn) -> bytes:
    good = draw(st.floats(min_value=0, max_value=86400).map(now_iso))
    ts = draw(st.just(good) | instants)
    body = {
        "schema_version": 1,
        "site": SITE,
        "agent": AGENT,
        "seq": draw(st.integers(min_value=0, max_value=1000) | numbers),
        "readings": [
            {"meter": draw(ids), "ts": ts, "values": {"power_active": draw(numbers)}},
            {"meter": "m1", "ts": good, "values": {"energy_active_import": 5.0}},
        ],
    }
    payload = json.dumps(body).encode()
    hostile: dict[str, st.SearchStrategy[bytes]] = {
        "none": st.just(payload),
        "dup": st.sampled_from(["site", "seq", "readings"]).map(lambda k: twice(payload, k, "x")),
        "bytes": st.binary(max_size=64),
        "nested": st.just(b'{"site": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "huge": st.just(payload.replace(b'"seq": ', b'"seq": ' + b"9" * 5000 + b', "x": ', 1)),
        "nan": st.just(payload.replace(b"5.0", b"NaN")),
        "cut": st.integers(0, len(payload)).map(lambda n: payload[:n]),
    }
    return draw(st.sampled_from(sorted(hostile)).flatmap(hostile.__getitem__))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(reading_messages(), min_size=1, max_size=6))
def test_every_reading_message_is_stored_or_dead_lettered_once(messages: list[bytes]) -> None:
    payloads = [(READINGS, p) for p in messages]
    with tempfile.TemporaryDirectory() as directory, collector(Path(directory)) as c:
        acks = feed(c, payloads)
        dead = dead_digests(c.dead_letters)
        rows = stored(c)
        assert not c.guard.failed  # every hostile input is a clear refusal, not a fault
        assert all(n == 1 for n in acks.calls.values()) and len(acks.calls) == len(payloads)
        for payload in messages:
            if hashlib.sha256(payload).hexdigest() in dead:
                continue
            for r in json.loads(payload)["readings"]:
                ts = int(datetime.fromisoformat(r["ts"]).timestamp() * 1000)
                assert (SITE, AGENT, r["meter"], ts) in rows, payload
        assert len(dead) == c.dead_letters.count


@st.composite
def status_messages(draw: st.DrawFn) -> bytes:
    meters = {
        draw(ids): {
            "state": "online",
            "reads": draw(st.integers(0, 10) | numbers),
            "errors": {draw(st.sampled_from(["timeout", "x" * 65])): draw(numbers)},
            "last_read": draw(instants),
        }
    }
    payload = status(
        ts=draw(st.floats(min_value=0, max_value=86400).map(now_iso) | instants),
        meters=meters,
        outbox={"depth": draw(numbers), "dropped": draw(numbers)},
    )
    if draw(st.booleans()):
        payload = twice(payload, draw(st.sampled_from(["state", "agent", "ts"])), "offline")
    return payload


@settings(max_examples=150, deadline=None)
@given(st.lists(status_messages(), min_size=1, max_size=6))
def test_every_status_message_is_kept_or_dead_lettered_once(messages: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        dead_letters = DeadLetters(Path(directory) / "dead.jsonl")
        guard = Guard(dead_letters)
        statuses = AgentStatuses()
        acks = Acks()
        for payload in messages:
            statuses.receive(acks.message(STATUS, payload), guard)
        assert not guard.failed
        assert all(n == 1 for n in acks.calls.values()) and len(acks.calls) == len(messages)
        # The same bad payload twice is one message delivered again: one entry.
        refused = dead_letters.count + dead_letters.repeats
        assert len(messages) == refused or (SITE, AGENT) in statuses.agents
        assert refused == statuses.rejected == guard.rejected["status"]


@st.composite
def production_messages(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        month = draw(st.sampled_from(["0000-01", "0001-01", "1999-12", "2026-11", "9999-12"]))
        cny = draw(numbers)
        return json.dumps(
            {"kind": "value_added", "site": PLANT_SITE, "month": month, "cny": cny}
        ).encode()
    payload = production(
        quantity=draw(st.floats(min_value=0, max_value=1e6) | numbers),
        start=draw(st.floats(min_value=60, max_value=86400).map(now_iso) | instants),
    )
    if draw(st.booleans()):
        payload = twice(payload, draw(st.sampled_from(["quantity", "line", "kind"])), 1)
    return payload


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(production_messages(), min_size=1, max_size=5))
def test_every_production_message_is_recorded_or_dead_lettered_once(
    messages: list[bytes],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        dead_letters = DeadLetters(Path(directory) / "dead.jsonl")
        guard = Guard(dead_letters)
        accounting = Accounting(plant(), Path(directory))
        live = LiveAccounting(accounting, guard)
        acks = Acks()
        try:
            for payload in messages:
                live.receive(acks.message(PRODUCTION, payload))
        finally:
            accounting.close()
        assert not guard.failed
        assert all(n == 1 for n in acks.calls.values()) and len(acks.calls) == len(messages)
        assert dead_letters.count + dead_letters.repeats == guard.rejected["production"]


# --- the cases of the issue, one by one ---------------------------------------------------


def test_a_time_that_overflows_in_utc_is_dead_lettered_and_ingest_goes_on(tmp_path: Path) -> None:
    with collector(tmp_path) as c:
        payloads = [
            (READINGS, readings(1, "before")),
            (READINGS, readings(2, "poison", ts=OVERFLOWS)),
            (READINGS, readings(3, "after")),
        ]
        acks = feed(c, payloads)
        assert list(acks.calls.values()) == [1, 1, 1]
        [reason] = dead_reasons(c.dead_letters)
        assert "readings.0.ts" in reason and "out of range" in reason
        assert {m for _, _, m, _ in stored(c)} == {"before", "after"}


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (
            "1969-12-31T23:59:59Z",
            "readings[0] (meter 'm1') ts 1969-12-31T23:59:59+00:00 is more than 3650 days old",
        ),
        (now_iso(11 * 365 * 86400), "days old"),
        (now_iso(-3600), "ahead of the collector's clock"),
    ],
)
def test_readings_outside_the_window_are_dead_lettered_not_counted_stored(
    tmp_path: Path, ts: str, reason: str
) -> None:
    with collector(tmp_path) as c:
        acks = feed(c, [(READINGS, readings(ts=ts))])
        assert list(acks.calls.values()) == [1]
        assert reason in dead_reasons(c.dead_letters)[0]
        assert stored(c) == set() and c.writer.values_written == 0


def test_the_whole_batch_goes_to_the_dead_letters_naming_the_reading(tmp_path: Path) -> None:
    body = json.loads(readings())
    body["readings"].append({"meter": "late", "ts": now_iso(2 * 86400), "values": {"count": 1}})
    with collector(tmp_path, max_age_days=1) as c:
        feed(c, [(READINGS, json.dumps(body).encode())])
        [reason] = dead_reasons(c.dead_letters)
        assert "readings[1] (meter 'late') ts" in reason and "more than 1 days old" in reason
        assert stored(c) == set()


def test_the_window_is_configurable(tmp_path: Path) -> None:
    with collector(tmp_path, max_age_days=30, max_future_seconds=0) as c:
        feed(c, [(READINGS, readings(1, ts=now_iso(29 * 86400)))])
        feed(c, [(READINGS, readings(2, ts=now_iso(31 * 86400)))])
        feed(c, [(READINGS, readings(3, ts=now_iso(-5)))])
        assert c.dead_letters.count == 2
        assert len(stored(c)) == 1


def test_the_stores_retention_is_the_default_window_and_the_config_overrides_it(
    tmp_path: Path,
) -> None:
    month = timedelta(days=30)
    with collector(tmp_path / "a", retention=month) as c:
        feed(c, [(READINGS, readings(1, ts=now_iso(31 * 86400)))])
        assert "more than 30 days old" in dead_reasons(c.dead_letters)[0]
    with collector(tmp_path / "b", retention=month, max_age_days=60) as c:
        feed(c, [(READINGS, readings(1, ts=now_iso(31 * 86400)))])
        assert c.dead_letters.count == 0 and len(stored(c)) == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (twice(readings(), "seq", 2), "key 'seq' appears more than once"),
        (readings(seq=MAX_SEQ + 1), "seq: Input should be less than or equal to"),
        (readings(seq=-1), "seq: Input should be greater than or equal to 0"),
    ],
)
def test_duplicate_keys_and_seq_beyond_64_bits_are_refused(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    with collector(tmp_path) as c:
        feed(c, [(READINGS, payload)])
        assert reason in dead_reasons(c.dead_letters)[0]


def test_a_duplicate_key_inside_a_reading_is_refused(tmp_path: Path) -> None:
    payload = readings().replace(b'"power_active": 1.5', b'"power_active": 1.5, "power_active": 9')
    with collector(tmp_path) as c:
        feed(c, [(READINGS, payload)])
        assert "key 'power_active' appears more than once" in dead_reasons(c.dead_letters)[0]


def test_a_seq_of_max_64_bits_starts_a_new_epoch_not_10_to_the_19_missing(tmp_path: Path) -> None:
    with collector(tmp_path, max_seq_jump=1000) as c:
        feed(c, [(READINGS, readings(1, ts=now_iso(3)))])
        feed(c, [(READINGS, readings(MAX_SEQ, ts=now_iso(2)))])
        feed(c, [(READINGS, readings(MAX_SEQ - 2, ts=now_iso(1)))])
        assert c.sequences.missing == 1
        assert c.sequences.agents[(SITE, AGENT)].epochs == 1
        assert len(stored(c)) == 3


# --- faults of the collector's own, at each stage -----------------------------------------


def broken(*_: Any) -> None:
    raise RuntimeError("injected fault")


@pytest.mark.parametrize(
    ("part", "stage"),
    [("latest", "latest table"), ("hub", "live stream"), ("window", "validate")],
)
def test_a_fault_at_any_stage_dead_letters_that_message_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: str, stage: str
) -> None:
    with collector(tmp_path) as c:
        method = {"latest": "update", "hub": "readings", "window": "check_batch"}[part]
        target = getattr(c, part)
        original = getattr(target, method)
        calls = Counter[int]()

        def once(*args: Any) -> None:
            calls[0] += 1
            if calls[0] == 2:
                broken()
            original(*args)

        if part == "window":  # frozen dataclass: swap the whole window
            window = type("W", (), {"check_batch": staticmethod(once)})()
            monkeypatch.setattr(c.pipeline, "_window", window)
        else:
            monkeypatch.setattr(target, method, once)
        acks = feed(c, [(READINGS, readings(n, f"m{n}")) for n in range(3)])
        assert list(acks.calls.values()) == [1, 1, 1]
        [reason] = dead_reasons(c.dead_letters)
        assert reason == f"failed at stage {stage}: RuntimeError: injected fault"
        assert c.guard.failed == Counter({("readings", stage): 1})
        assert {m for _, _, m, _ in stored(c)} == {"m0", "m2"}


def test_a_fault_keeping_a_status_dead_letters_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_letters = DeadLetters(tmp_path / "dead.jsonl")
    guard, statuses, acks = Guard(dead_letters), AgentStatuses(), Acks()
    monkeypatch.setattr(statuses, "update", broken)
    statuses.receive(acks.message(STATUS, status()), guard)
    assert list(acks.calls.values()) == [1]
    assert guard.failed == Counter({("status", "keep"): 1})
    assert dead_reasons(dead_letters) == ["failed at stage keep: RuntimeError: injected fault"]


def test_a_fault_recording_production_dead_letters_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_letters = DeadLetters(tmp_path / "dead.jsonl")
    guard, acks = Guard(dead_letters), Acks()
    accounting = Accounting(plant(), tmp_path)
    live = LiveAccounting(accounting, guard)
    try:
        monkeypatch.setattr(accounting.db, "replace_mes_output", broken)
        live.receive(acks.message(PRODUCTION, production()))
        monkeypatch.undo()
        live.receive(acks.message(PRODUCTION, production(7.0)))
    finally:
        accounting.close()
    assert list(acks.calls.values()) == [1, 1]
    assert guard.failed == Counter({("production", "accounting"): 1})
    assert dead_letters.count == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (status(ts=OVERFLOWS), "ts: Value error, 0001-01-01T00:00:00+01:00 is out of range"),
        (status(ts=now_iso(-3600)), "status ts"),
        (
            status(meters={"m1": {"state": "online", "last_read": "1969-12-31T23:59:59Z"}}),
            "meters.m1.last_read 1969-12-31T23:59:59+00:00 is more than 3650 days old",
        ),
        (status(outbox={"depth": 1, "oldest": "2999-01-01T00:00:00Z"}), "outbox.oldest 2999"),
        (twice(status(), "state", "offline"), "key 'state' appears more than once"),
        (status(outbox={"depth": 2**63}), "outbox.depth: Input should be less than or equal"),
        (
            status(meters={f"m{i}": {"state": "online"} for i in range(4)}),
            "status names 4 meters, more than one agent may (ingest.meters_per_agent 3)",
        ),
    ],
)
def test_hostile_statuses_are_dead_lettered(tmp_path: Path, payload: bytes, reason: str) -> None:
    dead_letters = DeadLetters(tmp_path / "dead.jsonl")
    guard, acks = Guard(dead_letters), Acks()
    statuses = AgentStatuses(meters_per_agent=3)
    statuses.receive(acks.message(STATUS, payload), guard)
    assert list(acks.calls.values()) == [1]
    assert reason in dead_reasons(dead_letters)[0]
    assert statuses.agents == {}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (production(start=OVERFLOWS), "out of range"),
        (production(start=now_iso(11 * 365 * 86400)), "start "),
        (production(quantity=1e13), "less than or equal to 1000000000000"),
        (twice(production(), "quantity", 1e6), "key 'quantity' appears more than once"),
        (
            json.dumps(
                {"kind": "value_added", "site": PLANT_SITE, "month": "0000-01", "cny": 1}
            ).encode(),
            "month",
        ),
        (
            json.dumps(
                {"kind": "value_added", "site": PLANT_SITE, "month": "2999-01", "cny": 1}
            ).encode(),
            "ahead of the collector's clock",
        ),
    ],
)
def test_hostile_production_messages_are_dead_lettered(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    dead_letters = DeadLetters(tmp_path / "dead.jsonl")
    guard, acks = Guard(dead_letters), Acks()
    accounting = Accounting(plant(), tmp_path)
    try:
        LiveAccounting(accounting, guard).receive(acks.message(PRODUCTION, payload))
    finally:
        accounting.close()
    assert list(acks.calls.values()) == [1]
    assert reason in dead_reasons(dead_letters)[0]


# --- bounded memory -----------------------------------------------------------------------


def test_meter_ids_beyond_the_agents_limit_are_dead_lettered(tmp_path: Path) -> None:
    with collector(tmp_path, meters_per_agent=3, latest_meters=100) as c:
        feed(c, [(READINGS, readings(n, f"m{n}")) for n in range(5)])
        assert c.latest is not None and len(c.latest) == 3
        reasons = dead_reasons(c.dead_letters)
        assert len(reasons) == 2
        assert "reports 3 meters already" in reasons[0] and "'m3' refused" in reasons[0]
        assert {m for _, _, m, _ in stored(c)} == {"m0", "m1", "m2"}
        # Known meters keep coming in.
        feed(c, [(READINGS, readings(9, "m1"))])
        assert c.dead_letters.count == 2


def test_a_meter_idle_for_a_day_makes_room_for_a_new_id(tmp_path: Path) -> None:
    with collector(tmp_path, meters_per_agent=2) as c:
        feed(c, [(READINGS, readings(1, "old", ts=now_iso(2 * 86400)))])
        feed(c, [(READINGS, readings(2, "kept"))])
        feed(c, [(READINGS, readings(3, "renamed"))])
        assert c.dead_letters.count == 0
        assert c.latest is not None
        assert sorted(r.reading.meter for r in c.latest.rows()) == ["kept", "renamed"]
        assert c.latest.evicted == 1


def test_the_table_keeps_at_most_latest_meters_evicting_the_least_recently_updated(
    tmp_path: Path,
) -> None:
    with collector(tmp_path, meters_per_agent=10, latest_meters=4) as c:
        assert c.latest is not None
        for agent in ("a", "b", "c"):
            topic = f"greengauge/v1/{SITE}/{agent}/readings"
            for n in range(2):
                feed(c, [(topic, readings(n, f"m{n}", agent=agent))])
        assert len(c.latest) == 4 and c.latest.evicted == 2
        assert {(r.agent, r.reading.meter) for r in c.latest.rows()} == {
            ("b", "m0"),
            ("b", "m1"),
            ("c", "m0"),
            ("c", "m1"),
        }
        assert c.dead_letters.count == 0  # evicted from the view, still stored
        assert len(stored(c)) == 6


def test_agent_statuses_are_bounded(tmp_path: Path) -> None:
    guard = Guard(DeadLetters(tmp_path / "dead.jsonl"))
    statuses, acks = AgentStatuses(max_agents=2), Acks()
    for agent in ("a", "b", "c"):
        payload = status(agent=agent)
        statuses.receive(acks.message(f"greengauge/v1/{SITE}/{agent}/status", payload), guard)
    assert list(statuses.agents) == [(SITE, "b"), (SITE, "c")]
    assert statuses.evicted == 1
    # Bounded by the meters they name too: a few agents with many meters each.
    statuses = AgentStatuses(max_agents=100, meters_per_agent=3, max_meters=5)
    for agent in ("a", "b", "c"):
        payload = status(agent=agent, meters={f"m{i}": {"state": "online"} for i in range(3)})
        statuses.receive(acks.message(f"greengauge/v1/{SITE}/{agent}/status", payload), guard)
    assert list(statuses.agents) == [(SITE, "c")]
    assert statuses.evicted == 2


def test_values_that_would_overflow_sums_are_refused(tmp_path: Path) -> None:
    payload = readings().replace(b'"power_active": 1.5', b'"power_active": 1.7e308')
    with collector(tmp_path) as c:
        feed(c, [(READINGS, payload), (READINGS, readings(2, "fine"))])
        [reason] = dead_reasons(c.dead_letters)
        assert reason == "readings[0] (meter 'm1') power_active 1.7e+308 is beyond ±1e+18"
        assert {m for _, _, m, _ in stored(c)} == {"fine"}


def test_failures_rejections_and_evictions_are_in_the_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with collector(tmp_path, meters_per_agent=5, latest_meters=2) as c:
        metrics = CollectorMetrics()
        metrics.watch(c.stats)
        feed(c, [(READINGS, readings(n, f"m{n}")) for n in range(3)])
        feed(c, [(READINGS, readings(3, ts=OVERFLOWS))])
        monkeypatch.setattr(c.hub, "readings", broken)
        feed(c, [(READINGS, readings(4))])
        text = metrics.render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    failed = ("greengauge_collector_messages_failed_total", (("stage", "live stream"),))
    assert samples[(failed[0], (*failed[1], ("topic", "readings")))] == 1
    assert samples[("greengauge_collector_messages_rejected_total", (("topic", "readings"),))] == 1
    assert samples[("greengauge_collector_latest_evicted_total", ())] == 1
    assert samples[("greengauge_collector_latest_meters", ())] == 2
    assert samples[("greengauge_collector_ack_overdue_total", ())] == 0
