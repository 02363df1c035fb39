"""Uploads on schedule from the running collector (`platform.schedule: true`).

Every cycle, for each configured site: the real-time slots of the last day, the last two
days and the previous month that ended at least `settle` seconds ago and that the
platform has not taken (by the record) are uploaded, oldest first, a few per cycle so a
collector that was down catches up without a burst. A period the platform refuses stays
due and is tried again next cycle; `energy-collector platform resend` sends any range
again by hand.

An upload under way when the collector stops is not waited for (its retries could hold
the stop for minutes): it may reach the platform without being recorded, and is then
sent again after the restart; the platform sees that period twice, the second time with
the same or corrected figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from collector.accounting.db import ms
from collector.accounting.live import LiveAccounting
from collector.config import CollectorConfig
from collector.plant import SiteConfig
from collector.platform.indicators import Span, day_span, month_span, slot_span
from collector.platform.record import FILE, Record
from collector.platform.settings import PlatformSettings
from collector.platform.transport import open_transport
from collector.platform.uploader import Uploader
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

CYCLE_SECONDS: Final = 60.0
PER_CYCLE: Final = 8


def due(site: SiteConfig, settings: PlatformSettings, record: Record, now: datetime) -> list[Span]:
    """The periods to upload now, oldest first."""
    ready = now - timedelta(seconds=settings.settle)
    local = now.astimezone(site.tz)
    today = day_span(site, local.date())
    first_slot = today.start - timedelta(days=1)
    candidates: list[Span] = []
    step = timedelta(minutes=settings.slot_minutes)
    t = first_slot.astimezone(UTC)  # steps in UTC: a local day may have 23 or 25 hours
    while t + step <= ready:
        candidates.append(slot_span(site, t, settings.slot_minutes))
        t += step
    for back in (2, 1):
        candidates.append(day_span(site, local.date() - timedelta(days=back)))
    previous = (today.start.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    candidates.append(month_span(site, previous))
    start = min(ms(c.start) for c in candidates)
    taken = {(u.period, u.label) for u in record.latest(site.id, start, ms(now)) if u.ok}
    return [
        c
        for c in sorted(candidates, key=lambda c: c.end)
        if c.end <= ready and (c.period, c.label) not in taken
    ]


async def platform_task(config: CollectorConfig, live: LiveAccounting | None) -> None:
    """Runs while the collector runs; returns at once unless the schedule is configured."""
    settings = config.platform
    if settings is None or not settings.schedule or live is None or config.accounting is None:
        return
    try:
        transport = open_transport(settings.transport)
    except ValueError as exc:
        log.error("platform uploads not scheduled", extra=fields(reason=str(exc)))
        return
    record = Record(config.data_dir / FILE)
    uploader = Uploader(config.accounting, settings, live.accounting.db, record, transport)
    try:
        await scheduled(uploader)
    finally:
        record.close()


async def scheduled(
    uploader: Uploader,
    cycle: float = CYCLE_SECONDS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Upload what is due, a few periods per site and cycle, for ever."""
    while True:
        for site_id in uploader.settings.sites:
            site = uploader.site(site_id)
            for span in due(site, uploader.settings, uploader.record, clock())[:PER_CYCLE]:
                await asyncio.to_thread(uploader.upload, site_id, span)
        await asyncio.sleep(cycle)
