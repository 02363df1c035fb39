"""Which channels a notice goes to: routes by site, severity and action, quiet hours in
the site's local time. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, tzinfo

from collector.notify.events import Action, Notice
from collector.notify.settings import QuietHours, Route


def in_quiet_hours(quiet: QuietHours, local: time) -> bool:
    """Whether a local time of day is inside [start, end); the span may pass midnight
    (22:00-07:00), and start == end means no quiet hours."""
    if quiet.start <= quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_now(quiet: QuietHours | None, notice: Notice, now: datetime, tz: tzinfo) -> bool:
    """Whether a notice is held back by quiet hours: tests and bypassing severities never."""
    if quiet is None or notice.action is Action.TEST or notice.severity in quiet.bypass:
        return False
    return in_quiet_hours(quiet, now.astimezone(tz).time().replace(tzinfo=None))


def matches(route: Route, notice: Notice) -> bool:
    return (
        (not route.sites or notice.site in route.sites)
        and notice.severity.rank >= route.min_severity.rank
        and notice.action in route.actions
    )


def channels_for(
    routes: Sequence[Route], notice: Notice, now: datetime, tz: tzinfo
) -> tuple[list[str], list[str]]:
    """(channels to deliver to, channels held back by quiet hours), each named once, in
    route order; a channel both due and quiet in different routes is delivered."""
    due: list[str] = []
    quiet: list[str] = []
    for route in routes:
        if not matches(route, notice):
            continue
        target = quiet if quiet_now(route.quiet_hours, notice, now, tz) else due
        target.extend(c for c in route.channels if c not in target)
    return due, [c for c in quiet if c not in due]
