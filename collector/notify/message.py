"""The texts of a notice: a subject line, plain text and Markdown, times in the site's
local time. Pure; every channel formats through here, so they all say the same."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Final

from collector.notify.events import Action, AlertKind, Notice

_WHAT: Final = {
    AlertKind.INTENSITY: "intensity above baseline",
    AlertKind.OFFLINE: "offline",
    AlertKind.OUTBOX: "outbox backing up",
    AlertKind.THRESHOLD: "threshold crossed",
    AlertKind.TEST: "test message",
}


def _local(ts: datetime, tz: tzinfo) -> str:
    return ts.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _number(value: float) -> str:
    return f"{value:.4g}"


def subject(notice: Notice) -> str:
    """One line: severity, where, what, and what happened."""
    where = f"{notice.site}/{notice.subject}" if notice.subject else notice.site
    return (
        f"[{notice.severity.value.upper()}] GreenGauge {where}: "
        f"{_WHAT[notice.kind]} {notice.action.value}"
    )


def lines(notice: Notice, tz: tzinfo) -> list[str]:
    """The body as lines of plain text (no Markdown)."""
    out: list[str] = []
    if notice.action is Action.TEST:
        out.append("A test of this channel: alerts will arrive here.")
    if notice.value is not None:
        measured = f"value {_number(notice.value)} {notice.unit}".rstrip()
        if notice.threshold is not None:
            measured += f", threshold {_number(notice.threshold)} {notice.unit}".rstrip()
        out.append(measured)
    if notice.detail:
        out.append(notice.detail)
    if notice.since is not None and notice.action is not Action.TEST:
        out.append(f"condition since {_local(notice.since, tz)}")
    out.append(f"{notice.action.value} at {_local(notice.ts, tz)}")
    if notice.by:
        out.append(f"acknowledged by {notice.by}")
    if notice.alert_id is not None:
        out.append(f"alert id {notice.alert_id}")
    return out


def text(notice: Notice, tz: tzinfo) -> str:
    return "\n".join([subject(notice), *lines(notice, tz)])


def markdown(notice: Notice, tz: tzinfo) -> str:
    """For the group robots: a heading, then one line each (both render `#` and `>`)."""
    body = "\n".join(f"> {line}" for line in lines(notice, tz))
    return f"### {subject(notice)}\n{body}"
