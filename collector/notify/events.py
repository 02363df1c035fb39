"""A notice: one alert raised, cleared or acknowledged (or a test), as channels see it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    TEST = "test"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class AlertKind(StrEnum):
    """What the alert is about; `intensity` is the line above its baseline."""

    INTENSITY = "intensity"
    OFFLINE = "offline"
    OUTBOX = "outbox"
    THRESHOLD = "threshold"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Notice:
    action: Action
    kind: AlertKind
    severity: Severity
    site: str
    subject: str
    """The line, meter or agent the alert is about."""
    ts: datetime
    """When it was raised, cleared or acknowledged (aware)."""
    alert_id: int | None = None
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    since: datetime | None = None
    detail: str = ""
    """What was measured, e.g. the window and benchmark; plain text."""
    by: str | None = None
    """Who acknowledged it."""

    def as_json(self) -> dict[str, Any]:
        """The webhook body: plain JSON values, times in ISO 8601 with their offset."""
        return {
            "action": self.action.value,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "site": self.site,
            "subject": self.subject,
            "ts": self.ts.isoformat(),
            "alert_id": self.alert_id,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "since": None if self.since is None else self.since.isoformat(),
            "detail": self.detail,
            "by": self.by,
        }


# The `window` column an alert of another kind than intensity is recorded with.
METERS_OFFLINE = "meters_offline"
AGENTS_OFFLINE = "agents_offline"
OUTBOX = "outbox"
THRESHOLD = "threshold:"


def kind_of(source: str) -> AlertKind:
    """The kind of an alert from the `window` column it was recorded with."""
    if source in (METERS_OFFLINE, AGENTS_OFFLINE):
        return AlertKind.OFFLINE
    if source == OUTBOX:
        return AlertKind.OUTBOX
    if source.startswith(THRESHOLD):
        return AlertKind.THRESHOLD
    return AlertKind.INTENSITY
