"""The accounting's alerts as notices, and their acknowledgement by an operator.

`AlertNotices` is an alert sink (collector.accounting.engine.AlertSink): the accounting
calls it with each alert it recorded, and it hands the notice to the notifier (which
queues it: nothing here waits for a network). `acknowledge` records who acknowledged a
raised alert, and when, in the accounting database (table alert_ack), once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from collector.accounting.db import AccountingDB, AlertRow, from_ms, ms
from collector.accounting.engine import Accounting, AlertSink
from collector.notify.events import Action, AlertKind, Notice, Severity, kind_of
from collector.notify.notifier import Notifier
from collector.notify.settings import NotifySettings, _Model


class AckRequest(_Model):
    """The body of POST /api/v1/alerts/{id}/ack; `by` (the person on shift) defaults to
    the authenticated user."""

    by: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    note: str = Field(default="", max_length=1000)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    alert_id: int
    by: str
    at: datetime
    note: str = ""


class AckRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def notice(row: AlertRow, severity: Severity, ack: Acknowledgement | None = None) -> Notice:
    """A recorded alert as a notice (acknowledged: when `ack` is given)."""
    kind = kind_of(row.window)
    if kind is AlertKind.INTENSITY:
        detail = f"window {row.window}, benchmark {row.benchmark}"
    else:  # the other kinds keep their description there
        detail = row.benchmark
    if ack is not None and ack.note:
        detail += f"; note: {ack.note}"
    return Notice(
        action=Action.ACKNOWLEDGED if ack is not None else Action(row.kind),
        kind=kind,
        severity=severity,
        site=row.site,
        subject=row.line,
        ts=ack.at if ack is not None else from_ms(row.ts),
        alert_id=row.id,
        value=row.value,
        threshold=row.threshold,
        unit=row.unit,
        since=from_ms(row.since),
        detail=detail,
        by=ack.by if ack is not None else None,
    )


def acknowledgements(
    db: AccountingDB, alert_ids: Sequence[int] | None = None
) -> dict[int, Acknowledgement]:
    """Every acknowledgement, or those of `alert_ids` (a site's active alerts: a few)."""
    sql = "SELECT alert_id, by, at, note FROM alert_ack"
    if alert_ids is not None:
        if not alert_ids:
            return {}
        sql += f" WHERE alert_id IN ({', '.join('?' * len(alert_ids))})"
    rows = db.query(sql + " ORDER BY alert_id", list(alert_ids or ()))
    return {
        int(r[0]): Acknowledgement(int(r[0]), str(r[1]), from_ms(int(r[2])), str(r[3]))
        for r in rows
    }


def acknowledge(
    db: AccountingDB, alert_id: int, request: AckRequest, at: datetime, user: str = ""
) -> tuple[AlertRow, Acknowledgement]:
    """Record it, by `request.by` or else `user` (who is signed in); AckRefused (404 no
    such alert, 422 not a raised one, 409 done before)."""
    rows = db.alerts(alert_id=alert_id)
    if not rows:
        raise AckRefused(404, f"no alert {alert_id}")
    row = rows[0]
    if row.kind != Action.RAISED.value:
        raise AckRefused(
            422, f"alert {alert_id} records the alert {row.kind}: acknowledge the raised one"
        )
    ack = Acknowledgement(alert_id, request.by or user, at, request.note)
    try:
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO alert_ack (alert_id, by, at, note) VALUES (?, ?, ?, ?)",
                (alert_id, ack.by, ms(at), ack.note),
            )
    except sqlite3.IntegrityError:
        before = acknowledgements(db)[alert_id]
        raise AckRefused(
            409, f"alert {alert_id} was acknowledged by {before.by} at {before.at.isoformat()}"
        ) from None
    return row, ack


class AlertNotices:
    """An alert sink that notifies: each recorded alert becomes a notice."""

    def __init__(self, notifier: Notifier, db: AccountingDB) -> None:
        self.notifier = notifier
        self._db = db
        self.severity_of: Callable[[AlertRow], Severity | None] = lambda _row: None
        """The severity of the other kinds' alerts (alert_rules), None for intensity."""

    def _severity(self, row: AlertRow) -> Severity:
        return self.severity_of(row) or self.notifier.settings.intensity_severity

    def publish_alert(self, site: str, alert_id: int) -> None:
        for row in self._db.alerts(site=site, alert_id=alert_id):
            self.notifier.notify(notice(row, self._severity(row)))

    def acknowledged(self, row: AlertRow, ack: Acknowledgement) -> None:
        self.notifier.notify(notice(row, self._severity(row), ack))


class Sinks:
    """Several alert sinks as one (the MQTT publisher, the notices)."""

    def __init__(self, sinks: Sequence[AlertSink]) -> None:
        self._sinks = list(sinks)

    def publish_alert(self, site: str, alert_id: int) -> None:
        for sink in self._sinks:
            sink.publish_alert(site, alert_id)


def notices_for(settings: NotifySettings, accounting: Accounting) -> AlertNotices:
    """A started notifier for a live accounting (stopped when it closes); sites' local
    time from the plant model."""
    notifier = Notifier(settings, {s.id: s.tz for s in accounting.config.sites})
    notifier.start()
    accounting.on_close(notifier.stop)
    return AlertNotices(notifier, accounting.db)
