"""Live accounting: validated reading batches in, energy per minute, intensities, alerts out.

The collector hands every validated batch to `Accounting.feed` (no I/O: it is queued).
`run` works the queue off the event loop every `interval` seconds: per meter the counter
readings become amounts (core.counters, walked a reading at a time by core.walk;
power integration, marked estimated, for a meter configured without counter), split
into minutes (core.series.allocate), converted to kgce (core.conversion) and CO2
(grid factor by series and year, fuel factors, or configured ones). By event time: the
readings are kept, and a pass replaces the minutes its readings touch with figures
computed from every reading kept, in one transaction (`account`), so a late reading
corrects the minutes it belongs to and `recompute` gives what the live path gave.
Minutes that have settled, or were corrected, are written to the store beside the
readings (measurement `energy_interval`, and `output_interval` for production counters).
Every `intensity_interval` seconds the intensity of each line and site over each window
is written (measurement `intensity`) and the lines' alarms are advanced (core.alerts);
the points written earlier on minutes late readings changed are written again (`restate`).
Readings older than `keep_readings_days` are pruned (accounting.retention).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

from collector.accounting import retention
from collector.accounting.core import alerts
from collector.accounting.core.counters import Sample
from collector.accounting.core.intensity import Window, window_start
from collector.accounting.db import (
    FILE,
    AccountingDB,
    AlertRow,
    MinuteRow,
    from_ms,
    ms,
)
from collector.accounting.passes import Span, account
from collector.accounting.points import energy_point, intensity_point, output_point
from collector.accounting.queries import (
    Figure,
    line_figures,
    line_series,
    meter_totals,
    site_figures,
)
from collector.accounting.targets import OUTPUT_PREFIX, SITE_LINE, Target, targets_of
from collector.batch import Readings, columns, from_millis, value_of
from collector.plant import (
    AccountingConfig,
    Judged,
    LineConfig,
    MeterConfig,
    SiteConfig,
    resolve_benchmark,
)
from collector.stores import PointStore, StoreError, StoreRejected
from collector.stores.lineprotocol import Point
from greengauge.common.files import DiskFault, open_state
from greengauge.common.logs import fields

log = logging.getLogger(__name__)


MINUTE: Final = timedelta(minutes=1)


RESTATE_BATCH: Final = 60


"""Evaluation times whose intensity points one evaluation writes again."""


PRUNE_EVERY: Final = 600.0


"""Seconds between prunes of old readings once caught up."""


class AlertSink(Protocol):
    def publish_alert(self, site: str, alert_id: int) -> None: ...


class Accounting:
    def __init__(
        self,
        config: AccountingConfig,
        data_dir: Path,
        store: PointStore | None = None,
        sink: AlertSink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.db = open_state(data_dir / FILE, lambda: AccountingDB(data_dir / FILE), "accounting")
        self.disk = DiskFault("accounting", data_dir / FILE)
        self._store = store
        self._sink = sink
        self._clock = clock
        self._queue: list[Readings] = []
        self._targets = {s.id: targets_of(config, s) for s in config.sites}
        self._judged = {
            (s.id, line.id): resolve_benchmark(line) for s in config.sites for line in s.lines
        }
        self._store_down = False
        self._closers: list[Callable[[], None]] = []
        self.readings_used = 0
        self.corrections = 0
        """Passes that accounted minutes again because readings came late."""
        self.late_readings = 0
        self.too_old_readings = 0
        """Late readings refused: older than the readings kept (accounting.retention)."""
        self.readings_pruned = 0
        self._restate: dict[str, int] = {}
        """Per site, the first minute late readings changed whose intensity points written
        since are to be written again."""
        self._record_configured_swaps()

    def _record_configured_swaps(self) -> None:
        """The plant model's swaps into the accounting database (once each)."""
        from collector.accounting.swaps import SwapRejected, record_swap  # noqa: PLC0415

        for site in self.config.sites:
            for meter in site.meters:
                for x in meter.swaps:
                    try:
                        record_swap(
                            self.db, self.config, site.id, meter.id, x.replacement(), self._clock()
                        )
                    except SwapRejected as exc:
                        log.error(
                            "configured meter swap not applied",
                            extra=fields(site=site.id, meter=meter.id, reason=str(exc)),
                        )

    def set_sink(self, sink: AlertSink) -> None:
        self._sink = sink

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    # --- input ---------------------------------------------------------------------------

    def feed(self, batch: Readings) -> None:
        """Queue a validated batch (called on the event loop; no I/O)."""
        if batch.site in self._targets:
            self._queue.append(batch)

    async def run(self) -> None:
        next_intensity = time.monotonic() + self.config.intensity_interval
        next_prune = time.monotonic()
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.step()
                if time.monotonic() >= next_intensity:
                    next_intensity = time.monotonic() + self.config.intensity_interval
                    await asyncio.to_thread(self.evaluate)
            except sqlite3.Error as exc:  # disk full or read-only: tried again next step
                self.disk.failed(exc, self.config.interval)
                continue
            self.disk.ok()
            if time.monotonic() >= next_prune:  # after the pass: housekeeping
                try:
                    # a full batch: more may wait, taken a pass later
                    full = await asyncio.to_thread(self.prune) >= retention.BATCH
                except sqlite3.Error as exc:
                    self.disk.failed(exc, PRUNE_EVERY)
                    full = False
                next_prune = time.monotonic() + (0 if full else PRUNE_EVERY)

    async def step(self) -> None:
        taken, self._queue = self._queue, []
        if taken:
            try:
                await asyncio.to_thread(self.process, taken)
            except sqlite3.Error:
                # Rolled back as a whole: accounted again, in order, once it can be written.
                self._queue = taken + self._queue
                raise
        await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Account what is queued, write what settled, and close (at shutdown)."""
        if self._queue:
            self.process(self._queue)
            self._queue = []
        for closer in reversed(self._closers):
            closer()
        self.db.close()

    # --- counters to minutes ---------------------------------------------------------------

    def prune(self) -> int:
        """Delete a batch of readings older than accounting.keep_readings_days."""
        cutoff = self._clock() - timedelta(days=self.config.keep_readings_days)
        series = [(site, t.series) for site in self._targets for t in self.series(site)]
        deleted = retention.prune(self.db, series, ms(cutoff))
        self.db.query("DELETE FROM intensity_time WHERE ts < ?", (ms(cutoff),))
        self.readings_pruned += deleted
        if deleted:
            log.info(
                "accounting readings pruned",
                extra=fields(readings=deleted, before=cutoff.isoformat()),
            )
        return deleted

    def _refuse_too_old(self, samples: dict[tuple[str, str], list[Sample]]) -> None:
        """Drop the readings at or before their series' horizon (pruned neighbours: they
        cannot be placed), each series logged once with the count and the horizon."""
        for site in {site for site, _ in samples}:
            horizons = self.db.horizons(site)
            for (s, series), got in samples.items():
                horizon = horizons.get(series)
                if s != site or horizon is None:
                    continue
                kept = [x for x in got if ms(x.ts) > horizon]
                if len(kept) == len(got):
                    continue
                refused = len(got) - len(kept)
                self.too_old_readings += refused
                log.warning(
                    "readings older than the accounting keeps: not accounted",
                    extra=fields(
                        site=site,
                        series=series,
                        readings=refused,
                        oldest=min(x.ts for x in got).isoformat(),
                        kept_from=from_ms(horizon).isoformat(),
                        keep_readings_days=self.config.keep_readings_days,
                    ),
                )
                got[:] = kept

    def process(self, batches: Sequence[Readings]) -> None:
        samples: dict[tuple[str, str], list[Sample]] = defaultdict(list)
        targets: dict[tuple[str, str], Target] = {}
        for batch in map(columns, batches):
            plan = self._targets[batch.site]
            for meter, stamp, kept in zip(batch.meters, batch.stamps, batch.kept, strict=True):
                for target in plan.get(meter, ()):
                    value = value_of(kept, target.quantity)
                    if value is not None:
                        key = (batch.site, target.series)
                        samples[key].append(Sample(from_millis(stamp), value * target.scale))
                        targets[key] = target
        self._refuse_too_old(samples)
        used = 0
        spans: list[Span] = []
        with self.db.transaction() as conn:
            for (site, series), new in samples.items():
                if not new:
                    continue
                span = account(conn, site, targets[(site, series)], new)
                if span is not None:
                    spans.append(span)
                used += len(new)
        # once committed: a rolled-back pass is done again
        self.readings_used += used
        self._count(spans)
        self._mark_alerts([s for s in spans if s.late])
        for span in spans:
            if span.late and span.changed:
                self._restate[span.site] = min(span.first, self._restate.get(span.site, span.first))

    def recompute(
        self,
        site: str,
        start: datetime,
        end: datetime,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Span]:
        """Account [start, end) of a site again from the readings used, as if each had
        just arrived: the same walk and the same minutes as the live path. Idempotent.
        `progress(done, total)` after each series."""
        spans: list[Span] = []
        horizons = self.db.horizons(site)
        series = self.series(site)
        for done, target in enumerate(series, 1):
            span = self._recompute(site, target, ms(start), ms(end), horizons.get(target.series))
            if span is not None:
                spans.append(span)
                if span.changed:
                    self._restate[site] = min(span.first, self._restate.get(site, span.first))
            if progress is not None:
                progress(done, len(series))
        return spans

    def _recompute(
        self, site: str, target: Target, since: int, end: int, horizon: int | None
    ) -> Span | None:
        if horizon is not None and since <= horizon:
            # its readings before are gone: those minutes stay as accounted
            log.warning(
                "recompute starts after the readings kept",
                extra=fields(series=target.series, kept_from=from_ms(horizon).isoformat()),
            )
            since = horizon + 1
            if since >= end:
                return None
        with self.db.transaction() as conn:
            return account(conn, site, target, (), since=since, through=end)

    def series(self, site: str) -> list[Target]:
        """The series the readings of a site feed: meters' counters, lines' outputs."""
        plan = self._targets.get(site)
        if plan is None:
            raise ValueError(f"site {site!r} is not in the plant model")
        return list({t.series: t for targets in plan.values() for t in targets}.values())

    def _count(self, spans: Sequence[Span]) -> None:
        for span in spans:
            if span.late:
                self.corrections += 1
                self.late_readings += span.late
                log.info(
                    "late readings: minutes accounted again",
                    extra=fields(
                        site=span.site,
                        series=span.series,
                        readings=span.late,
                        start=from_ms(span.first).isoformat(),
                        end=from_ms(span.end).isoformat(),
                    ),
                )

    def _mark_alerts(self, corrected: Sequence[Span]) -> None:
        """Mark the alerts whose window holds minutes late readings changed."""
        for site_id in {s.site for s in corrected}:
            site = self.config.site(site_id)
            assert site is not None
            marked: list[AlertRow] = []
            for a in self.db.alerts(site=site_id):
                if a.corrected:
                    continue
                series = line_series(site, a.line)
                start = window_start(Window(a.window), from_ms(a.ts), site.tz, site.shift_list)
                if any(
                    s.site == site_id
                    and s.series in series
                    and s.first < a.ts
                    and s.end > ms(start)
                    for s in corrected
                ):
                    marked.append(a)
            if not marked:
                continue
            self.db.mark_corrected([a.id for a in marked])
            for a in marked:
                log.warning(
                    f"alert {a.kind} on figures late readings changed",
                    extra=fields(site=a.site, line=a.line, alert_id=a.id, window=a.window),
                )

    # --- minutes to the store ----------------------------------------------------------------

    def flush(self) -> int:
        """Write settled minutes to the store; the count of points written."""
        if self._store is None:
            return 0
        now = self._clock()
        before = ms(now) - round(self.config.settle * 1000) - 60_000
        dirty = self.db.dirty_minutes(before)
        if not dirty:
            return 0
        points = self._energy_points(dirty)
        try:
            written = self._store.write_points(points)
        except StoreRejected as exc:
            log.error("store refused derived points", extra=fields(reason=exc.reason))
            written = 0
        except StoreError as exc:
            if not self._store_down:
                log.warning("store unavailable: derived points wait", extra=fields(reason=str(exc)))
            self._store_down = True
            return 0
        if self._store_down:
            log.info("store back: derived points written")
        self._store_down = False
        self.db.mark_clean([(site, row.series, row.minute) for site, row in dirty])
        return written

    def _energy_points(self, dirty: Sequence[tuple[str, MinuteRow]]) -> list[Point]:
        points: list[Point] = []
        touched: dict[str, set[int]] = defaultdict(set)
        for site_id, row in dirty:
            site = self.config.site(site_id)
            if site is None:
                continue
            touched[site_id].add(row.minute)
            if row.series.startswith(OUTPUT_PREFIX):
                line = site.line(row.series.removeprefix(OUTPUT_PREFIX))
                points.append(output_point(site_id, line, row))
            else:
                points.append(energy_point(site, site.meter(row.series), row))
        for site_id, minutes in touched.items():
            site = self.config.site(site_id)
            assert site is not None
            for meter in site.meters:
                if meter.virtual:
                    points.extend(self._virtual_points(site, meter, sorted(minutes)))
        return points

    def _virtual_points(
        self, site: SiteConfig, meter: MeterConfig, minutes: list[int]
    ) -> list[Point]:
        parts = [*meter.plus, *meter.minus]
        rows = self.db.minutes_of(site.id, parts, minutes)
        points: list[Point] = []
        for minute in minutes:
            if not all((p, minute) in rows for p in parts):
                continue  # a minute without every part's figure has no difference yet
            signed = [(1.0, rows[(p, minute)]) for p in meter.plus]
            signed += [(-1.0, rows[(p, minute)]) for p in meter.minus]
            row = MinuteRow(
                meter.id,
                minute,
                sum(s * r.amount for s, r in signed),
                sum(s * r.kgce for s, r in signed),
                sum(s * r.kgco2 for s, r in signed),
                max(r.quality for _, r in signed),
            )
            points.append(energy_point(site, meter, row))
        return points

    # --- totals -------------------------------------------------------------------------------

    def meter_totals(
        self, site: str, meter: MeterConfig, start: datetime, end: datetime
    ) -> tuple[float, float, float, int | None]:
        return meter_totals(self.db, self.config, site, meter, ms(start), ms(end))

    # --- intensities and alerts ------------------------------------------------------------------

    def evaluate(self) -> list[Point]:
        """Intensities of every line and site over every window, now; alarms advanced.
        The points written earlier on minutes late readings changed are written again."""
        now = self._clock()
        points: list[Point] = []
        for site in self.config.sites:
            points.extend(self._intensity_points(site, now, advance=True))
            self.db.add_intensity_time(site.id, ms(now))
        if self._store is not None and points:
            try:
                self._store.write_points(points)
            except (StoreError, StoreRejected) as exc:
                log.warning("intensity not stored", extra=fields(reason=str(exc)))
        self.restate()
        return points

    def _intensity_points(self, site: SiteConfig, now: datetime, advance: bool) -> list[Point]:
        points: list[Point] = []
        for line in site.lines:
            figures = line_figures(self.db, self.config, site, line, now)
            judged = self._judged[(site.id, line.id)]
            points.extend(intensity_point(site.id, line.id, f, judged, now) for f in figures)
            if advance and line.alert is not None:
                self._advance_alarm(site, line, judged, figures, now)
        for f in site_figures(self.db, self.config, site, now):
            points.append(intensity_point(site.id, SITE_LINE, f, None, now))
        return points

    def restate(self) -> int:
        """Write again the intensity points written at or after the first minute late
        readings changed (as they are now figured; the alarms are not advanced again: the
        alerts are marked instead), up to RESTATE_BATCH times a call, oldest first: a long
        backlog is caught up over a few evaluations. The number of points written."""
        if self._store is None:
            self._restate.clear()
            return 0
        written = 0
        for site_id, first in list(self._restate.items()):
            site = self.config.site(site_id)
            assert site is not None
            times = self.db.intensity_times(site_id, first, RESTATE_BATCH)
            points = [p for t in times for p in self._intensity_points(site, from_ms(t), False)]
            try:
                if points:
                    written += self._store.write_points(points)
            except (StoreError, StoreRejected) as exc:
                log.warning("intensity not restated yet", extra=fields(reason=str(exc)))
                continue  # tried again at the next evaluation
            if len(times) < RESTATE_BATCH:
                del self._restate[site_id]
            else:
                self._restate[site_id] = times[-1] + 1
            if times:
                log.info(
                    "intensity on late readings written again",
                    extra=fields(
                        site=site_id,
                        points=len(points),
                        start=from_ms(times[0]).isoformat(),
                        end=from_ms(times[-1]).isoformat(),
                    ),
                )
        return written

    def restate_all(self) -> int:
        """`restate` until every point due is written again (or the store refuses)."""
        written = 0
        while self._restate:
            due = dict(self._restate)
            written += self.restate()
            if self._restate == due:
                break
        return written

    def _advance_alarm(
        self,
        site: SiteConfig,
        line: LineConfig,
        judged: Judged,
        figures: Sequence[Figure],
        now: datetime,
    ) -> None:
        settings = line.alert
        assert settings is not None
        figure = next((f for f in figures if f.window is settings.window), None)
        if figure is None:
            return
        threshold = settings.threshold if settings.threshold is not None else judged.baseline
        config = alerts.AlarmConfig.from_baseline(
            line.id, threshold, settings.band, timedelta(seconds=settings.min_duration)
        )
        state = self.db.alarm_state(site.id, line.id)
        state, events = alerts.advance(config, state, now, figure.judged.value)
        ids = self.db.save_alarm(
            site.id, line.id, state, events, settings.window.value, judged.unit, judged.name
        )
        for event, alert_id in zip(events, ids, strict=True):
            log.warning(
                f"intensity alert {event.kind.value}",
                extra=fields(
                    site=site.id,
                    line=line.id,
                    value=f"{event.value:.4g}",
                    threshold=f"{event.threshold:.4g}",
                    unit=judged.unit,
                    window=settings.window.value,
                    benchmark=judged.name,
                    since=event.since.isoformat(),
                    alert_id=alert_id,
                ),
            )
            if self._sink is not None:
                self._sink.publish_alert(site.id, alert_id)
