"""`energy-collector alerts test`: one test notice to every configured channel, now, and
a table of what each answered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo

from collector.notify.events import Action, AlertKind, Notice, Severity
from collector.notify.notifier import Notifier
from collector.notify.settings import NotifySettings


def trial_notice(now: datetime) -> Notice:
    return Notice(
        action=Action.TEST,
        kind=AlertKind.TEST,
        severity=Severity.INFO,
        site="greengauge",
        subject="",
        ts=now,
        detail="sent by `energy-collector alerts test`",
    )


def try_channels(
    settings: NotifySettings, timezones: Mapping[str, tzinfo], only: str | None = None
) -> list[tuple[str, str, str]]:
    """(channel, type, "ok" or "error: reason") per channel, in config order, one attempt
    each (no retries: the answer is wanted now)."""
    notifier = Notifier(settings, timezones)
    notice = trial_notice(datetime.now(UTC))
    rows: list[tuple[str, str, str]] = []
    for name, channel in settings.channels.items():
        if only is not None and name != only:
            continue
        error = notifier.deliver(name, notice)
        rows.append((name, channel.type, "ok" if error is None else f"error: {error}"))
    return rows


def table(rows: list[tuple[str, str, str]]) -> str:
    header = ("channel", "type", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in [header, *rows]
    )
