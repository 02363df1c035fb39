"""The other alert kinds as the collector runs them (collector.notify.watch): from the
latest readings and the agents' statuses, recorded in the accounting database (published
flag set: the MQTT alerts topic stays for intensity), notified, acknowledgeable; states
survive a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from collector.accounting.db import AccountingDB
from collector.batch import Batch
from collector.config import CollectorConfig
from collector.notify.alerts import AckRequest, AlertNotices, acknowledge
from collector.notify.events import Action, AlertKind, Notice, Severity
from collector.notify.notifier import Notifier
from collector.notify.rules import AlertRules
from collector.notify.settings import NotifySettings
from collector.notify.watch import Watcher
from collector.state.latest import LatestReadings
from greengauge.contract import (
    AgentState,
    AgentStatus,
    MeterReading,
    OutboxHealth,
    Quantity,
    ReadingBatch,
)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
P, E, PF = Quantity.POWER_ACTIVE, Quantity.ENERGY_ACTIVE_IMPORT, Quantity.POWER_FACTOR


class Rig:
    def __init__(self, tmp_path: Path, rules: dict[str, Any], db: AccountingDB | None = None):
        self.now = T0
        self.latest = LatestReadings()
        self.statuses: list[AgentStatus] = []
        self.db = db if db is not None else AccountingDB(tmp_path / "accounting.sqlite")
        settings = NotifySettings.model_validate(
            {
                "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
                "routes": [{"channels": ["hook"]}],
            }
        )
        self.notifier = Notifier(settings)  # not started: notices stay queued
        self.watcher = Watcher(
            AlertRules.model_validate(rules),
            self.notifier,
            self.latest,
            lambda: self.statuses,
            self.db,
            clock=lambda: self.now,
        )

    def read(self, meter: str, at: datetime, **values: float) -> None:
        values = values or {"power_active": 1.0}
        reading = MeterReading(
            meter=meter, ts=at, values={Quantity(k): v for k, v in values.items()}
        )
        self.latest.update(Batch.of(ReadingBatch(site="s1", agent="gw", seq=1, readings=[reading])))

    def at(self, minutes: float) -> list[Notice]:
        self.now = T0 + timedelta(minutes=minutes)
        return self.watcher.evaluate(self.latest.rows(), list(self.statuses))


def status(state: AgentState, at: datetime, depth: int | None = None) -> AgentStatus:
    outbox = (
        None if depth is None else OutboxHealth(depth=depth, oldest=at - timedelta(minutes=depth))
    )
    return AgentStatus(site="s1", agent="gw", state=state, ts=at, outbox=outbox)


def test_a_meter_offline_longer_than_set_is_raised_recorded_and_cleared(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"meters_offline": {"after": 300}})
    rig.read("m1", T0, power_active=1000.0)
    assert rig.at(4) == []
    [raised] = rig.at(5.5)
    assert (raised.action, raised.kind, raised.severity) == (
        Action.RAISED,
        AlertKind.OFFLINE,
        Severity.CRITICAL,
    )
    assert (raised.site, raised.subject, raised.unit) == ("s1", "m1", "s")
    assert raised.value == 330 and raised.threshold == 300
    [row] = rig.db.alerts("s1")
    assert (row.id, row.line, row.window, row.kind) == (
        raised.alert_id,
        "m1",
        "meters_offline",
        "raised",
    )
    assert row.published  # not for the MQTT intensity alerts topic
    assert rig.at(6) == []  # raised once
    rig.read("m1", T0 + timedelta(minutes=6.9), power_active=1000.0)
    [cleared] = rig.at(7)
    assert raised.alert_id is not None
    assert cleared.action is Action.CLEARED and cleared.alert_id == raised.alert_id + 1
    assert rig.notifier.waiting == 2


def test_a_gateway_offline_for_the_set_time_then_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"agents_offline": {"after": 120, "severity": "warning"}})
    rig.statuses = [status(AgentState.ONLINE, T0)]
    assert rig.at(1) == []
    rig.statuses = [status(AgentState.OFFLINE, T0 + timedelta(minutes=1))]
    assert rig.at(2) == []  # seen offline at minute 2
    assert rig.at(3.9) == []
    [raised] = rig.at(4.1)
    assert raised.subject == "gw" and raised.severity is Severity.WARNING
    rig.statuses = [status(AgentState.ONLINE, T0 + timedelta(minutes=5))]
    [cleared] = rig.at(5)
    assert cleared.action is Action.CLEARED


def test_a_gateway_whose_status_stops_coming_is_offline_too(tmp_path: Path) -> None:
    """Stopped cleanly (no last will) or hung, its retained status says online for ever:
    its age tells."""
    rig = Rig(tmp_path, {"agents_offline": {"after": 90}})
    rig.statuses = [status(AgentState.ONLINE, T0)]
    assert rig.at(1) == []
    [raised] = rig.at(1.6)
    assert raised.value == 96 and raised.threshold == 90
    rig.statuses = [status(AgentState.ONLINE, T0 + timedelta(minutes=2))]
    assert [n.action for n in rig.at(2)] == [Action.CLEARED]


def test_outbox_backing_up_with_hysteresis_and_minimum_duration(tmp_path: Path) -> None:
    rules = {"outbox": {"raise_above": 100, "clear_at_or_below": 10, "min_duration": 120}}
    rig = Rig(tmp_path, rules)
    events: list[Notice] = []
    for minute, depth in enumerate([5, 150, 200, 250, 50, 90, 5, 5, 5, 5]):
        rig.statuses = [status(AgentState.ONLINE, T0 + timedelta(minutes=minute), depth)]
        events += rig.at(minute)
    assert [(e.action, e.ts - T0) for e in events] == [
        (Action.RAISED, timedelta(minutes=3)),  # above since minute 1, for 2 minutes
        (Action.CLEARED, timedelta(minutes=8)),  # 50 and 90 are inside the band
    ]
    assert events[0].unit == "batches" and events[0].kind is AlertKind.OUTBOX


def test_threshold_below_on_a_quantity_ignores_stale_readings(tmp_path: Path) -> None:
    rules = {
        "thresholds": [
            {
                "name": "pf-kiln",
                "site": "s1",
                "meter": "m1",
                "quantity": "power_factor",
                "below": 0.9,
                "clear": 0.92,
                "min_duration": 60,
                "stale_after": 120,
            }
        ]
    }
    rig = Rig(tmp_path, rules)
    rig.read("m1", T0, power_factor=0.85)
    assert rig.at(0) == []
    assert rig.at(3) == []  # stale: unknown, the pending raise starts over
    rig.read("m1", T0 + timedelta(minutes=3.5), power_factor=0.86)
    assert rig.at(3.5) == []
    rig.read("m1", T0 + timedelta(minutes=4.5), power_factor=0.87)
    [raised] = rig.at(4.5)
    assert raised.since == T0 + timedelta(minutes=3.5)
    assert raised.kind is AlertKind.THRESHOLD and raised.unit == "1"
    assert raised.value == 0.87 and raised.threshold == 0.9
    assert raised.detail == "pf-kiln: power_factor of meter m1"


def test_demand_heading_for_the_contracted_maximum(tmp_path: Path) -> None:
    rules = {
        "thresholds": [
            {
                "name": "demand",
                "site": "s1",
                "meter": "incomer",
                "demand": True,
                "above": 950,
                "clear": 900,
            }
        ]
    }
    rig = Rig(tmp_path, rules)
    # 800 kW for 5 minutes from 02:00 (a window start), then 1200 kW
    energy = 5000.0
    events: list[Notice] = []
    for minute in range(0, 11):
        kw = 800.0 if minute <= 5 else 1200.0
        if minute:
            energy += (800.0 if minute <= 5 else 1200.0) / 60
        rig.read(
            "incomer",
            T0 + timedelta(minutes=minute),
            power_active=kw * 1000,
            energy_active_import=energy,
        )
        events += rig.at(minute)
    # at minute 6: (800/60*5 + 1200/60 + 1200*9/60) / 0.25 = (66.7 + 20 + 180) * 4 = 1066.7
    [raised] = events
    assert raised.ts == T0 + timedelta(minutes=6) and raised.unit == "kW"
    assert raised.value == pytest.approx(1066.67, abs=0.01)


def test_an_alert_of_another_kind_is_acknowledged_with_its_severity(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"meters_offline": {"after": 60, "severity": "critical"}})
    rig.read("m1", T0)
    [raised] = rig.at(2)
    assert raised.alert_id is not None
    notices = AlertNotices(rig.notifier, rig.db)
    notices.severity_of = rig.watcher.severity_of
    row, ack = acknowledge(rig.db, raised.alert_id, AckRequest(by="li"), T0 + timedelta(minutes=3))
    notices.acknowledged(row, ack)
    # the notifier is not started: the acknowledgement waits in its queue, as queued
    queued = [d.notice for _, _, d in rig.notifier._heap]
    assert [(n.action, n.kind, n.severity, n.by) for n in queued][-1] == (
        Action.ACKNOWLEDGED,
        AlertKind.OFFLINE,
        Severity.CRITICAL,
        "li",
    )


def test_states_survive_a_restart(tmp_path: Path) -> None:
    rules = {"meters_offline": {"after": 60}}
    rig = Rig(tmp_path, rules)
    rig.read("m1", T0)
    assert len(rig.at(2)) == 1
    again = Rig(tmp_path, rules, db=rig.db)  # a new watcher on the same file
    again.read("m1", T0)
    assert again.at(3) == []  # still active: not raised twice
    again.read("m1", T0 + timedelta(minutes=4))
    assert [n.action for n in again.at(4)] == [Action.CLEARED]


def test_without_a_database_alerts_are_notified_without_ids(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"meters_offline": {"after": 60}})
    rig.watcher._db = None
    rig.read("m1", T0)
    [raised] = rig.at(2)
    assert raised.alert_id is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "site": "s1", "meter": "m", "above": 1, "clear": 0}, "either `quantity`"),
        (
            {
                "name": "x",
                "site": "s1",
                "meter": "m",
                "quantity": "q",
                "demand": True,
                "above": 1,
                "clear": 0,
            },
            "either `quantity`",
        ),
        ({"name": "x", "site": "s1", "meter": "m", "demand": True, "clear": 0}, "exactly one"),
        (
            {
                "name": "x",
                "site": "s1",
                "meter": "m",
                "demand": True,
                "above": 1,
                "below": 0,
                "clear": 0,
            },
            "exactly one",
        ),
        (
            {"name": "x", "site": "s1", "meter": "m", "demand": True, "above": 1, "clear": 2},
            "clear level",
        ),
        (
            {
                "name": "x",
                "site": "s1",
                "meter": "m",
                "demand": True,
                "above": 1,
                "clear": 0,
                "bogus": 1,
            },
            "Extra inputs",
        ),
    ],
)
def test_threshold_rules_are_checked(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertRules.model_validate({"thresholds": [rule]})


def test_rules_need_notify_and_api() -> None:
    base = {"mqtt": {"url": "mqtt://127.0.0.1:1883"}, "alert_rules": {"every": 5}}
    with pytest.raises(ValidationError, match="needs the notify and api section"):
        CollectorConfig.model_validate(base)
    with pytest.raises(ValidationError, match="names used twice: a"):
        AlertRules.model_validate(
            {
                "thresholds": [
                    {"name": "a", "site": "s", "meter": "m", "demand": True, "above": 1, "clear": 0}
                ]
                * 2
            }
        )
