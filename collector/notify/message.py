"""The texts of a notice: a subject line, plain text and Markdown, times in the site's
local time, in the collector's language (`language`, GREENGAUGE_LANG, the locale). Pure;
every channel formats through here, so they all say the same."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Final

from collector.notify.events import Action, AlertKind, Notice
from greengauge.common.i18n import N_, _

_WHAT: Final = {
    AlertKind.INTENSITY: N_("intensity above baseline"),
    AlertKind.OFFLINE: N_("offline"),
    AlertKind.OUTBOX: N_("outbox backing up"),
    AlertKind.THRESHOLD: N_("threshold crossed"),
    AlertKind.TEST: N_("test message"),
}
_DONE: Final = {
    Action.RAISED: N_("raised"),
    Action.CLEARED: N_("cleared"),
    Action.ACKNOWLEDGED: N_("acknowledged"),
    Action.TEST: N_("test"),
}


def _local(ts: datetime, tz: tzinfo) -> str:
    return ts.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _number(value: float) -> str:
    return f"{value:.4g}"


def subject(notice: Notice) -> str:
    """One line: severity, where, what, and what happened."""
    where = f"{notice.site}/{notice.subject}" if notice.subject else notice.site
    return _("[{severity}] GreenGauge {where}: {what} {action}").format(
        severity=notice.severity.value.upper(),
        where=where,
        what=_(_WHAT[notice.kind]),
        action=_(_DONE[notice.action]),
    )


def lines(notice: Notice, tz: tzinfo) -> list[str]:
    """The body as lines of plain text (no Markdown)."""
    out: list[str] = []
    if notice.action is Action.TEST:
        out.append(_("A test of this channel: alerts will arrive here."))
    if notice.value is not None:
        unit = notice.unit
        measured = _("value {value} {unit}").format(value=_number(notice.value), unit=unit)
        if notice.threshold is not None:
            threshold = _number(notice.threshold)
            measured = measured.rstrip() + _(", threshold {threshold} {unit}").format(
                threshold=threshold, unit=unit
            )
        out.append(measured.rstrip())
    if notice.detail:
        out.append(notice.detail)
    if notice.since is not None and notice.action is not Action.TEST:
        out.append(_("condition since {time}").format(time=_local(notice.since, tz)))
    out.append(
        _("{action} at {time}").format(action=_(_DONE[notice.action]), time=_local(notice.ts, tz))
    )
    if notice.by:
        out.append(_("acknowledged by {name}").format(name=notice.by))
    if notice.alert_id is not None:
        out.append(_("alert id {id}").format(id=notice.alert_id))
    return out


def text(notice: Notice, tz: tzinfo) -> str:
    return "\n".join([subject(notice), *lines(notice, tz)])


def markdown(notice: Notice, tz: tzinfo) -> str:
    """For the group robots: a heading, then one line each (both render `#` and `>`)."""
    body = "\n".join(f"> {line}" for line in lines(notice, tz))
    return f"### {subject(notice)}\n{body}"
