"""Upload a period's indicators: computed from the accounting database, sent through the
configured transport with retries (doubling backoff with jitter), and recorded with the
platform's answer whether it was taken or not. A resend computes the period again (a
late reading since the first upload is in it) and sends it as a new upload."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.accounting.db import AccountingDB, ms
from collector.plant import AccountingConfig, SiteConfig
from collector.platform.indicators import (
    PeriodError,
    Span,
    compute,
    day_span,
    month_span,
    parse_day,
    slot_span,
)
from collector.platform.record import Record
from collector.platform.settings import PlatformSettings
from collector.platform.transport import DeliveryError, Transport
from greengauge.common.backoff import Backoff
from greengauge.common.i18n import _
from greengauge.common.logs import fields

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    site: str
    period: str
    label: str
    ok: bool
    attempts: int
    answer: str
    """The platform's answer, or why it was not taken."""


class Uploader:
    def __init__(
        self,
        accounting: AccountingConfig,
        settings: PlatformSettings,
        db: AccountingDB,
        record: Record,
        transport: Transport,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.accounting, self.settings = accounting, settings
        self.db, self.record, self.transport = db, record, transport
        self.sleep, self.clock = sleep, clock

    def site(self, site_id: str) -> SiteConfig:
        site = self.accounting.site(site_id)
        if site is None or site_id not in self.settings.sites:
            raise PeriodError(
                _("site {site!r} is not configured for the platform: {sites}").format(
                    site=site_id, sites=sorted(self.settings.sites)
                )
            )
        return site

    def span(self, site_id: str, period: str, label: str) -> Span:
        """A period named as the record names it."""
        site = self.site(site_id)
        if period == "month":
            return month_span(site, label)
        if period == "day":
            return day_span(site, parse_day(label))
        try:
            start = datetime.fromisoformat(label)
        except ValueError:
            raise PeriodError(
                _("slot {start!r}: not an ISO 8601 time").format(start=label)
            ) from None
        return slot_span(site, start, self.settings.slot_minutes)

    def build(self, site_id: str, span: Span) -> dict[str, Any]:
        """The period's indicators, with the record's uploads for its data quality."""
        given = self.settings.sites[site_id]
        a, b = ms(span.start), ms(span.end)
        return compute(
            self.accounting,
            self.db,
            site_id,
            span,
            codes=given.codes(),
            now=self.clock(),
            slot_minutes=self.settings.slot_minutes,
            output_value=given.output_value,
            days_uploaded=self.record.days_uploaded(site_id, a, b)
            if span.period == "month"
            else None,
            slots_uploaded=None
            if span.period == "slot"
            else self.record.slots_uploaded(site_id, a, b),
        )

    def upload(self, site_id: str, span: Span) -> Outcome:
        self.site(site_id)
        upload = self.build(site_id, span)
        backoff = Backoff(self.settings.backoff, self.settings.backoff_ceiling)
        attempts, ok, answer = 0, False, ""
        while attempts < self.settings.attempts:
            attempts += 1
            try:
                answer, ok = self.transport.send(upload), True
                break
            except DeliveryError as exc:
                answer = str(exc)
                log.warning(
                    "platform upload failed",
                    extra=fields(
                        site=site_id,
                        period=span.period,
                        label=span.label,
                        attempt=attempts,
                        retry=exc.retry,
                        reason=answer,
                    ),
                )
                if not exc.retry or attempts == self.settings.attempts:
                    break
                self.sleep(backoff.next_delay())
        self.record.add(
            upload,
            (ms(span.start), ms(span.end)),
            ms(self.clock()),
            self.transport.name,
            attempts,
            ok,
            answer,
        )
        log.info(
            "platform upload",
            extra=fields(
                site=site_id, period=span.period, label=span.label, ok=ok, attempts=attempts
            ),
        )
        return Outcome(site_id, span.period, span.label, ok, attempts, answer)

    def resend(
        self, site_id: str, start: datetime, end: datetime, only_failed: bool = False
    ) -> list[Outcome]:
        """Every period recorded as starting in [start, end) computed and sent again (only
        those the platform did not take, with `only_failed`)."""
        self.site(site_id)
        return [
            self.upload(site_id, self.span(site_id, u.period, u.label))
            for u in self.record.latest(site_id, ms(start), ms(end))
            if not (only_failed and u.ok)
        ]
