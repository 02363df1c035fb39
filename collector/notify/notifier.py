"""Delivers notices on a thread of its own, from a bounded queue, with retries.

`notify` only routes the notice and queues one delivery per channel: it never waits for
a network, so the accounting pass that raised the alert goes on at once. A full queue
drops the new delivery (logged, counted); a failed attempt is tried again after a
doubling backoff, up to `attempts` in all, unless the channel refused it for good (bad
credentials, malformed request). Every outcome is counted per channel for /metrics.
Logs name the channel and the reason, never a URL, token or password.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from collector.notify import dingtalk, smtp, webhook, wecom
from collector.notify.events import Notice
from collector.notify.http import DeliveryError
from collector.notify.routing import channels_for
from collector.notify.settings import (
    Channel,
    DingTalkChannel,
    EmailChannel,
    NotifySettings,
    WebhookChannel,
    WeComChannel,
)
from greengauge.common.backoff import doubled
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

OUTCOMES: Final = ("sent", "failed_attempt", "given_up", "dropped", "quiet")


def send(channel: Channel, notice: Notice, tz: tzinfo, now: datetime) -> None:
    """One attempt; DeliveryError with a reason safe to show."""
    if isinstance(channel, WebhookChannel):
        webhook.send(channel, notice, now)
    elif isinstance(channel, EmailChannel):
        smtp.send(channel, notice, tz, now)
    elif isinstance(channel, DingTalkChannel):
        dingtalk.send(channel, notice, tz, now)
    elif isinstance(channel, WeComChannel):
        wecom.send(channel, notice, tz)


@dataclass(slots=True)
class _Delivery:
    channel: str
    notice: Notice
    attempt: int = 0


class Notifier:
    def __init__(
        self,
        settings: NotifySettings,
        timezones: Mapping[str, tzinfo] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._timezones = dict(timezones or {})
        self._default_tz = ZoneInfo(settings.timezone)
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counts: Counter[tuple[str, str]] = Counter()
        for name in settings.channels:
            for outcome in OUTCOMES:
                self.counts[(name, outcome)] = 0

    def tz(self, site: str) -> tzinfo:
        return self._timezones.get(site, self._default_tz)

    # --- the caller's side: never blocks ------------------------------------------------------

    def notify(self, notice: Notice) -> None:
        due, quiet = channels_for(self.settings.routes, notice, self._clock(), self.tz(notice.site))
        for name in quiet:
            self._count(name, "quiet")
            log.info("alert notice held back: quiet hours", extra=self._fields(name, notice))
        for name in due:
            self._put(_Delivery(name, notice), time.monotonic())

    def _put(self, delivery: _Delivery, at: float) -> None:
        with self._cond:
            if len(self._heap) + self._busy >= self.settings.queue_size:
                dropped = True
            else:
                dropped = False
                heapq.heappush(self._heap, (at, next(self._seq), delivery))
                self._cond.notify()
        if dropped:
            self._count(delivery.channel, "dropped")
            log.error(
                "alert notice dropped: delivery queue full",
                extra=self._fields(delivery.channel, delivery.notice),
            )

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    # --- the worker ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the deliveries due within `timeout` (what waits longer is logged)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        left = self.waiting
        if left:
            log.warning("alert notices not delivered at stop", extra=fields(waiting=left))

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent (tests, the CLI); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _next(self) -> _Delivery | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, delivery = heapq.heappop(self._heap)
                    self._busy += 1
                    return delivery
                if self._stopping:
                    return None
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)

    def _work(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _attempt(self, delivery: _Delivery) -> None:
        error = self.deliver(delivery.channel, delivery.notice)
        if error is None:
            return
        delivery.attempt += 1
        if not error.retry or delivery.attempt >= self.settings.attempts:
            self._count(delivery.channel, "given_up")
            log.error(
                "alert notice not delivered: gave up",
                extra=self._fields(
                    delivery.channel, delivery.notice, attempts=delivery.attempt, reason=str(error)
                ),
            )
            return
        s = self.settings
        delay = doubled(s.retry_start, s.retry_ceiling, delivery.attempt - 1)
        log.warning(
            "alert notice not delivered: retrying",
            extra=self._fields(
                delivery.channel,
                delivery.notice,
                attempt=delivery.attempt,
                retry_in=f"{delay:.1f}",
                reason=str(error),
            ),
        )
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))

    def deliver(self, name: str, notice: Notice) -> DeliveryError | None:
        """One attempt now, on the caller's thread: None when delivered, else the error."""
        try:
            send(self.settings.channels[name], notice, self.tz(notice.site), self._clock())
        except DeliveryError as exc:
            self._count(name, "failed_attempt")
            return exc
        except Exception as exc:  # a channel's bug must not stop the worker
            log.exception("alert channel failed", extra=fields(channel=name))
            self._count(name, "failed_attempt")
            return DeliveryError(f"internal error: {type(exc).__name__}", retry=False)
        self._count(name, "sent")
        log.info("alert notice delivered", extra=self._fields(name, notice))
        return None

    def _count(self, channel: str, outcome: str) -> None:
        with self._cond:
            self.counts[(channel, outcome)] += 1

    @staticmethod
    def _fields(channel: str, notice: Notice, **more: object) -> dict[str, object]:
        return fields(
            channel=channel,
            action=notice.action.value,
            kind=notice.kind.value,
            site=notice.site,
            subject=notice.subject,
            alert_id=notice.alert_id,
            **more,
        )


class NotifierMetrics(PromCollector):
    """Register with the collector's registry: deliveries by channel and outcome, queue."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def collect(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "greengauge_alert_notices",
            "Alert notices per channel by outcome: sent, failed_attempt (each failed try), "
            "given_up (after every attempt or a refusal for good), dropped (queue full), "
            "quiet (held back by quiet hours)",
            labels=["channel", "outcome"],
        )
        with self._notifier._cond:  # a consistent copy of the counts
            counts = sorted(self._notifier.counts.items())
        for (channel, outcome), n in counts:
            deliveries.add_metric([channel, outcome], n)
        yield deliveries
        yield GaugeMetricFamily(
            "greengauge_alert_notices_waiting",
            "Alert notice deliveries queued or being sent (retries included)",
            value=self._notifier.waiting,
        )
