"""Checks the other alert kinds every few seconds: meters and agents offline, outboxes
backing up, thresholds on any quantity or on the demand as it is heading.

Each check is a `core.conditions` condition on one number taken from what the
collector already keeps: the latest reading of each meter (its age, its values) and the
agents' statuses (online or offline, outbox). The alarms' states, and the alerts they
raise or clear, are kept in the accounting database when there is one (the alerts API
lists them and an operator can acknowledge them; the MQTT alerts topic stays for
intensity alerts only), else in memory. Every event is a notice to the notifier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from collector.accounting.core.alerts import AlarmState, AlertEvent
from collector.accounting.core.conditions import (
    Condition,
    age,
    energy_at,
    outbox_backlog,
    projected_demand,
    step,
    window_start,
)
from collector.accounting.db import AccountingDB, AlertRow
from collector.notify.events import (
    AGENTS_OFFLINE,
    METERS_OFFLINE,
    OUTBOX,
    THRESHOLD,
    Action,
    Notice,
    Severity,
    kind_of,
)
from collector.notify.notifier import Notifier
from collector.notify.rules import AlertRules, ThresholdRule
from greengauge.common.logs import fields
from greengauge.contract import (
    UNITS,
    AgentState,
    AgentStatus,
    CustomValue,
    MeterReading,
    Quantity,
)

if TYPE_CHECKING:
    from collector.config import CollectorConfig
    from collector.notify.alerts import AlertNotices
    from collector.state.latest import LatestReadings
    from collector.state.statuses import AgentStatuses

log = logging.getLogger(__name__)

DEMAND_WINDOW = timedelta(minutes=15)


class Row(Protocol):
    """A meter's latest reading, as the collector's latest-readings table gives it."""

    @property
    def site(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def reading(self) -> MeterReading: ...


class LatestRows(Protocol):
    def rows(self) -> Sequence[Row]: ...


@dataclass(frozen=True, slots=True)
class Check:
    """One number to judge now against one condition."""

    key: str
    """The alarm's key, unique among all checks (its state is kept under it)."""
    source: str
    site: str
    subject: str
    condition: Condition
    value: float | None
    unit: str
    detail: str
    severity: Severity


class Demand:
    """The demand window a threshold rule watches: the meter's energy counter where the
    window began (interpolated between the reads around its start)."""

    def __init__(self) -> None:
        self._start: datetime | None = None
        self._energy_at_start = 0.0
        self._last: tuple[datetime, float] | None = None

    def heading(self, ts: datetime, energy: float, kw: float) -> float:
        start = window_start(ts, DEMAND_WINDOW)
        if self._start != start:
            before = self._last
            self._start = start
            if before is not None and before[0] <= start <= ts:
                self._energy_at_start = energy_at(start, before, (ts, energy))
            else:  # the first read in a window, with none just before it
                self._energy_at_start = energy
        self._last = (ts, energy)
        return projected_demand(start, ts, energy - self._energy_at_start, kw, DEMAND_WINDOW)


class Watcher:
    def __init__(
        self,
        rules: AlertRules,
        notifier: Notifier,
        latest: LatestRows | None,
        statuses: Callable[[], Iterable[AgentStatus]],
        db: AccountingDB | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rules = rules
        self._notifier = notifier
        self._latest = latest
        self._statuses = statuses
        self._db = db
        self._clock = clock
        self._states: dict[tuple[str, str], AlarmState] = {}
        self._offline_since: dict[tuple[str, str], datetime] = {}
        self._demand: dict[str, Demand] = {}
        self.owns_notifier = False
        """start the notifier with `run` and stop it when `run` ends"""

    # --- what to judge ---------------------------------------------------------------------

    def checks(
        self, rows: Sequence[Row], statuses: list[AgentStatus], now: datetime
    ) -> list[Check]:
        rules = self.rules
        out: list[Check] = []
        if rules.meters_offline is not None:
            r = rules.meters_offline
            for row in rows:
                if r.sites and row.site not in r.sites:
                    continue
                meter = row.reading.meter
                out.append(
                    Check(
                        f"{METERS_OFFLINE}/{row.agent}/{meter}",
                        METERS_OFFLINE,
                        row.site,
                        meter,
                        r.condition(meter),
                        age(row.reading.ts, now),
                        "s",
                        f"meter {meter} (agent {row.agent}): no reading for longer than "
                        f"{r.after:g} s",
                        r.severity,
                    )
                )
        seen = set()
        for status in statuses:
            key = (status.site, status.agent)
            seen.add(key)
            if status.state is AgentState.OFFLINE:
                # the last will's ts is when the connection opened: from when it was seen
                last_heard = self._offline_since.setdefault(key, now)
            else:
                # an agent republishes its status every status_interval: one stopped
                # cleanly (no will) or hung leaves an "online" that grows old
                self._offline_since.pop(key, None)
                last_heard = status.ts
            a = rules.agents_offline
            if a is not None and (not a.sites or status.site in a.sites):
                out.append(
                    Check(
                        f"{AGENTS_OFFLINE}/{status.agent}",
                        AGENTS_OFFLINE,
                        status.site,
                        status.agent,
                        a.condition(status.agent),
                        age(last_heard, now),
                        "s",
                        f"gateway (agent) {status.agent}: offline, or no status, for longer "
                        f"than {a.after:g} s",
                        a.severity,
                    )
                )
            o = rules.outbox
            if o is not None and (not o.sites or status.site in o.sites):
                outbox = status.outbox if status.state is AgentState.ONLINE else None
                by_age = o.measure == "age"
                out.append(
                    Check(
                        f"{OUTBOX}/{status.agent}",
                        OUTBOX,
                        status.site,
                        status.agent,
                        o.condition(status.agent),
                        outbox_backlog(
                            None if outbox is None else outbox.depth,
                            None if outbox is None else outbox.oldest,
                            now,
                            by_age,
                        ),
                        "s" if by_age else "batches",
                        f"gateway (agent) {status.agent}: outbox "
                        + ("oldest batch waiting" if by_age else "batches waiting"),
                        o.severity,
                    )
                )
        for key in set(self._offline_since) - seen:  # an agent forgotten by the statuses
            del self._offline_since[key]
        by_meter = {(row.site, row.reading.meter): row for row in rows}
        out.extend(
            self._threshold(t, by_meter.get((t.site, t.meter)), now) for t in rules.thresholds
        )
        return out

    def _threshold(self, rule: ThresholdRule, row: Row | None, now: datetime) -> Check:
        value: float | None = None
        quantity = rule.quantity or ""
        if rule.demand:
            unit, what = "kW", f"15-minute demand heading of meter {rule.meter}"
        else:
            unit, what = _value({}, {}, quantity)[1], f"{quantity} of meter {rule.meter}"
        if row is not None and (now - row.reading.ts).total_seconds() <= rule.stale_after:
            reading = row.reading
            if rule.demand:
                energy = reading.values.get(Quantity.ENERGY_ACTIVE_IMPORT)
                watts = reading.values.get(Quantity.POWER_ACTIVE)
                if energy is not None and watts is not None:
                    demand = self._demand.setdefault(rule.name, Demand())
                    value = demand.heading(reading.ts, energy, watts / 1000)
            else:
                value, read_unit = _value(reading.values, reading.custom, quantity)
                unit = read_unit or unit
        return Check(
            f"{THRESHOLD}{rule.name}",
            f"{THRESHOLD}{rule.name}",
            rule.site,
            rule.meter,
            rule.condition(),
            value,
            unit,
            f"{rule.name}: {what}",
            rule.severity,
        )

    # --- judging -----------------------------------------------------------------------------

    def evaluate(self, rows: Sequence[Row], statuses: list[AgentStatus]) -> list[Notice]:
        """One pass over a snapshot; the notices it gave (already handed to the notifier)."""
        now = self._clock()
        notices: list[Notice] = []
        for check in self.checks(rows, statuses, now):
            before = self._state(check)
            state, events = step(check.condition, before, now, check.value)
            self._states[(check.site, check.key)] = state
            ids = self._save(check, before, state, events)
            for event, alert_id in zip(events, ids, strict=True):
                notice = _notice(check, event, alert_id)
                log.warning(
                    f"{notice.kind.value} alert {event.kind.value}",
                    extra=fields(
                        site=check.site,
                        subject=check.subject,
                        value=f"{event.value:.4g}",
                        threshold=f"{event.threshold:.4g}",
                        alert_id=alert_id,
                    ),
                )
                self._notifier.notify(notice)
                notices.append(notice)
        return notices

    def _state(self, check: Check) -> AlarmState:
        key = (check.site, check.key)
        state = self._states.get(key)
        if state is None:
            state = self._db.alarm_state(*key) if self._db is not None else AlarmState()
        return state

    def _save(
        self, check: Check, before: AlarmState, state: AlarmState, events: tuple[AlertEvent, ...]
    ) -> list[int | None]:
        """Kept in the database only when the phase or its start changed (not every pass
        of every meter); the alerts' ids, None without a database."""
        if self._db is None:
            return [None] * len(events)
        if not events and (before.phase, before.since) == (state.phase, state.since):
            return []
        ids = self._db.save_alarm(
            check.site,
            check.key,
            state,
            events,
            check.source,
            check.unit,
            check.detail,
            subject=check.subject,
            published=True,
        )
        return list(ids)

    def severity_of(self, row: AlertRow) -> Severity | None:
        """The severity of a recorded alert of one of these kinds (None: not one)."""
        rules = self.rules
        by_source = {
            METERS_OFFLINE: rules.meters_offline,
            AGENTS_OFFLINE: rules.agents_offline,
            OUTBOX: rules.outbox,
            **{f"{THRESHOLD}{t.name}": t for t in rules.thresholds},
        }
        rule = by_source.get(row.window)
        return None if rule is None else rule.severity

    async def run(self) -> None:
        if self.owns_notifier:
            self._notifier.start()
        try:
            while True:
                await asyncio.sleep(self.rules.every)
                # The snapshot on the event loop (these change there), the rest off it.
                rows = self._latest.rows() if self._latest is not None else []
                statuses = list(self._statuses())
                try:
                    await asyncio.to_thread(self.evaluate, rows, statuses)
                except Exception:  # a full disk or a bug must not end the checks
                    log.exception("alert rules not checked this time")
        finally:
            if self.owns_notifier:
                await asyncio.to_thread(self._notifier.stop)


def _value(
    values: Mapping[Quantity, float], custom: Mapping[str, CustomValue], name: str
) -> tuple[float | None, str]:
    """A canonical quantity's value and unit, or a user-named one's (None: not read)."""
    try:
        quantity = Quantity(name)
    except ValueError:
        given = custom.get(name)
        return (None, "") if given is None else (given.value, given.unit)
    return values.get(quantity), UNITS[quantity]


def _notice(check: Check, event: AlertEvent, alert_id: int | None) -> Notice:
    return Notice(
        action=Action(event.kind.value),
        kind=kind_of(check.source),
        severity=check.severity,
        site=check.site,
        subject=check.subject,
        ts=event.ts,
        alert_id=alert_id,
        value=event.value,
        threshold=event.threshold,
        unit=check.unit,
        since=event.since,
        detail=check.detail,
    )


def watcher_for(
    config: CollectorConfig,
    notices: AlertNotices | None,
    db: AccountingDB | None,
    latest: LatestReadings | None,
    statuses: AgentStatuses,
) -> Watcher:
    """The alert rules' watcher of a collector. Its notifier is the accounting's (the
    alerts are recorded there and can be acknowledged), else one of its own, started
    here and stopped when the watcher's run ends."""
    assert config.alert_rules is not None and config.notify is not None
    if notices is not None:
        notifier = notices.notifier
    else:
        notifier, db = Notifier(config.notify), None
    watcher = Watcher(
        config.alert_rules,
        notifier,
        latest,
        lambda: list(statuses.agents.values()),
        db,
    )
    if notices is not None:
        notices.severity_of = watcher.severity_of
    else:
        watcher.owns_notifier = True
    return watcher
