"""Live accounting: validated reading batches in, energy per minute, intensities, alerts out.

The collector hands every validated batch to `Accounting.feed` (no I/O: it is queued).
`run` works the queue off the event loop every `interval` seconds: per meter the counter
readings become amounts (ledger.counters, walked a reading at a time by ledger.walk;
power integration, marked estimated, for a meter configured without counter), split
into minutes (ledger.series.allocate), converted to kgce (ledger.conversion) and CO2
(grid factor by series and year, fuel factors, or configured ones). By event time: the
readings are kept, and a pass replaces the minutes its readings touch with figures
computed from every reading kept, in one transaction (`account`), so a late reading
corrects the minutes it belongs to and `recompute` gives what the live path gave.
Minutes that have settled, or were corrected, are written to the store beside the
readings (measurement `energy_interval`, and `output_interval` for production counters).
Every `intensity_interval` seconds the intensity of each line and site over each window
is written (measurement `intensity`) and the lines' alarms are advanced (ledger.alerts);
the points written earlier on minutes late readings changed are written again (`restate`).
Readings older than `keep_readings_days` are pruned (accounting.retention).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

from collector.accounting import retention
from collector.accounting.db import (
    FILE,
    AccountingDB,
    AlertRow,
    FindingRow,
    MinuteRow,
    ReadingRow,
    from_ms,
    ms,
    reading_row,
    state_of,
)
from collector.ledger import alerts, data
from collector.ledger.benchmarks import Standing, classify
from collector.ledger.carbon import fuel
from collector.ledger.conversion import to_kgce
from collector.ledger.counters import CounterSpec, Finding, Issue, Replacement, Sample
from collector.ledger.factors import NdrcLevel
from collector.ledger.intensity import Intensity, Status, Window, intensity, window_start
from collector.ledger.series import Amount, MsAmount, Quality, allocate_ms
from collector.ledger.walk import State, Walker
from collector.plant import (
    CARRIERS,
    AccountingConfig,
    CounterSettings,
    HourlyGridFactor,
    Judged,
    LineConfig,
    MeterConfig,
    OutputFromMeter,
    Role,
    SiteConfig,
    _coal_key,
    co2_route,
    min_output,
    resolve_benchmark,
)
from collector.stores import PointStore, StoreError, StoreRejected
from collector.stores.lineprotocol import Point
from greengauge.common.files import DiskFault, open_state
from greengauge.common.logs import fields
from greengauge.contract import Quantity, ReadingBatch

log = logging.getLogger(__name__)

MINUTE: Final = timedelta(minutes=1)
MINUTE_MS: Final = 60_000
END_OF_TIME: Final = 2**62
"""Epoch ms after every reading."""
MAX_GAP: Final = timedelta(minutes=5)
"""Counter readings further apart are reported as a gap (still measured)."""
MAX_GAP_MS: Final = 300_000
RESTATE_BATCH: Final = 60
"""Evaluation times whose intensity points one evaluation writes again."""
PRUNE_EVERY: Final = 600.0
"""Seconds between prunes of old readings once caught up."""
POWER_MAX_GAP: Final = timedelta(minutes=2)
"""Power readings further apart are not integrated across."""
OUTPUT_PREFIX: Final = "output:"
SITE_LINE: Final = "_site"
VIRTUAL_ROLE: Final = "virtual"
"""the `role` tag of a virtual meter's energy_interval points (else Role's values)"""
"""The `line` tag of site-level figures."""


class AlertSink(Protocol):
    def publish_alert(self, site: str, alert_id: int) -> None: ...


def output_series(line: str) -> str:
    return OUTPUT_PREFIX + line


@dataclass(frozen=True, slots=True)
class Target:
    """Where one quantity of one wire meter goes: a series of the accounting database."""

    series: str
    meter: str
    """The wire meter read (its recorded swaps apply)."""
    quantity: Quantity
    scale: float
    spec: CounterSpec
    integrate: bool
    kgce_per_unit: float
    kgco2_per_unit: float
    hourly: HourlyGridFactor | None = None
    """Overrides kgco2_per_unit for the hours it covers (grid electricity only)."""

    def kgco2_at(self, start_ms: int) -> float:
        if self.hourly is not None:
            factor = self.hourly.factor_at(start_ms // 3_600_000)
            if factor is not None:
                return factor  # grid electricity: kWh, the unit the factor is per
        return self.kgco2_per_unit


def _spec(c: CounterSettings) -> CounterSpec:
    return CounterSpec(c.modulus, c.max_rate, c.tolerance)


def meter_factors(
    config: AccountingConfig, site: SiteConfig, meter: MeterConfig
) -> tuple[float, float]:
    """kgce and kgCO2 per native unit of a meter's carrier (location-based CO2)."""
    table = data.coal_table()
    kgce = to_kgce(_coal_key(meter.carrier), 1.0, meter.unit, table, config.conversion_settings)
    route, value, name = co2_route(site, meter.carrier)
    if route == "grid":
        co2 = site.grid_factor.resolve().value
    elif route == "fuel":
        co2 = fuel(name, 1.0, meter.unit, data.fuel_factors()).kg_co2
    else:
        assert value is not None
        co2 = value
    return kgce.value, co2


def _targets(config: AccountingConfig, site: SiteConfig) -> dict[str, list[Target]]:
    by_meter: dict[str, list[Target]] = defaultdict(list)
    for m in site.meters:
        if m.virtual:
            continue
        kgce, co2 = meter_factors(config, site, m)
        route, _, _ = co2_route(site, m.carrier)
        hourly = site.hourly_grid_factor if route == "grid" else None
        by_meter[m.id].append(
            Target(
                m.id,
                m.id,
                m.source_quantity,
                m.scale,
                _spec(m.counter),
                m.estimated,
                kgce,
                co2,
                hourly,
            )
        )
    for line in site.lines:
        out = line.output
        if isinstance(out, OutputFromMeter):
            by_meter[out.meter].append(
                Target(
                    output_series(line.id),
                    out.meter,
                    Quantity(out.quantity),
                    out.scale,
                    _spec(out.counter),
                    False,
                    0.0,
                    0.0,
                )
            )
    return dict(by_meter)


@dataclass(frozen=True, slots=True)
class Figure:
    """One line's (or the site's) intensity over one window."""

    window: Window
    kgce: float
    kgco2: float
    kwh: float
    output: float
    judged: Intensity
    """In the benchmark's unit (or kgce per output unit for the site)."""


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
        self._queue: list[ReadingBatch] = []
        self._targets = {s.id: _targets(config, s) for s in config.sites}
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

    def feed(self, batch: ReadingBatch) -> None:
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

    def process(self, batches: Sequence[ReadingBatch]) -> None:
        samples: dict[tuple[str, str], list[Sample]] = defaultdict(list)
        targets: dict[tuple[str, str], Target] = {}
        for batch in batches:
            plan = self._targets[batch.site]
            for reading in batch.readings:
                for target in plan.get(reading.meter, ()):
                    value = reading.values.get(target.quantity)
                    if value is not None:
                        key = (batch.site, target.series)
                        samples[key].append(Sample(reading.ts, value * target.scale))
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

    def recompute(self, site: str, start: datetime, end: datetime) -> list[Span]:
        """Account [start, end) of a site again from the readings used, as if each had
        just arrived: the same walk and the same minutes as the live path. Idempotent."""
        spans: list[Span] = []
        horizons = self.db.horizons(site)
        for target in self.series(site):
            since = ms(start)
            horizon = horizons.get(target.series)
            if horizon is not None and since <= horizon:
                # its readings before are gone: those minutes stay as accounted
                log.warning(
                    "recompute starts after the readings kept",
                    extra=fields(series=target.series, kept_from=from_ms(horizon).isoformat()),
                )
                since = horizon + 1
                if since >= ms(end):
                    continue
            with self.db.transaction() as conn:
                span = account(conn, site, target, (), since=since, through=ms(end))
            if span is not None:
                spans.append(span)
                if span.changed:
                    self._restate[site] = min(span.first, self._restate.get(site, span.first))
        return spans

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
                series = _line_series(site, a.line)
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
                points.append(_output_point(site_id, line, row))
            else:
                points.append(_energy_point(site, site.meter(row.series), row))
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
            points.append(_energy_point(site, meter, row))
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
            points.extend(_intensity_point(site.id, line.id, f, judged, now) for f in figures)
            if advance and line.alert is not None:
                self._advance_alarm(site, line, judged, figures, now)
        for f in site_figures(self.db, self.config, site, now):
            points.append(_intensity_point(site.id, SITE_LINE, f, None, now))
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


@dataclass(frozen=True, slots=True)
class Span:
    """The minutes [first, end) (epoch ms) of one series, computed again and replaced."""

    site: str
    series: str
    first: int
    end: int
    late: int
    """Readings that arrived before the last one used (0: in order)."""
    changed: int
    """Minutes whose figures changed (or went)."""


RECORDED: Final = (
    Issue.GLITCH,
    Issue.CONFLICT,
    Issue.JUMP,
    Issue.RESET,
    Issue.DISCONTINUITY,
    Issue.REPLACEMENT,
)
"""Findings kept in the accounting database for the report: every reading not used,
amount excluded or estimated, and every swap bridged."""


class _Tail:
    """The stored readings a pass needs around where its walk starts, taken from the last
    two a series keeps when they are the ones (an in-order pass asks once, not five times)."""

    def __init__(self, conn: sqlite3.Connection, site: str, series: str) -> None:
        self._conn, self._site, self._series = conn, site, series
        self.rows = AccountingDB.last_readings(conn, site, series, END_OF_TIME, 2)

    @property
    def latest(self) -> ReadingRow | None:
        return self.rows[0] if self.rows else None

    def before(self, t: int) -> ReadingRow | None:
        """The last reading before t."""
        rows = self.rows
        if not rows:
            return None
        if rows[0][0] < t:
            return rows[0]
        if len(rows) == 1:
            return None  # the only reading is at or after t
        if rows[1][0] < t:
            return rows[1]
        return AccountingDB.reading_before(self._conn, self._site, self._series, t)


def _before(tail: _Tail, start: ReadingRow, walker: Walker) -> list[Amount]:
    """The amount that ended at a stored state's good reading (the rate before a hole the
    next reading may open), as a walk through that reading would have it."""
    good_ms = start[2]
    prev = tail.before(good_ms)
    at = tail.before(good_ms + 1)
    if prev is None or at is None or at[0] != good_ms:
        return []
    good = state_of(start).good
    step = walker.resumed(state_of(prev), ()).feed(Sample(good.ts, at[1]))
    return [a for a in step.amounts if a.end == good.ts]


def account(
    conn: sqlite3.Connection,
    site: str,
    target: Target,
    new: Sequence[Sample],
    since: int | None = None,
    through: int | None = None,
) -> Span | None:
    """Add readings to a series' stored ones and replace the minutes they change.

    Of two readings at one time the lower is kept, as `deltas` does; one already stored
    changes nothing (a re-delivery). The readings from the earliest new one (or `since`)
    are walked from the state before it, up to the first stored reading, at or after
    `through`, whose state comes out as stored: from there on every state and amount is
    as stored. The minutes the walked amounts touch are then split again from every
    amount that overlaps them, in time order, and replaced: each minute is a function of
    the stored readings, not of the order they came in.
    """
    series = target.series
    tail = _Tail(conn, site, series)
    if tail.latest is None and _carry_over(conn, site, series):
        tail = _Tail(conn, site, series)
    latest = tail.latest
    last = None if latest is None else latest[0]
    incoming: dict[int, float] = {}
    for s in new:
        t = ms(s.ts)
        incoming[t] = min(incoming.get(t, s.value), s.value)
    changed: dict[int, float] = {}
    if incoming:
        stored: dict[int, float] = {}
        if last is not None and min(incoming) <= last:  # in time order: nothing to compare
            stored = AccountingDB.stored_values(conn, site, series, min(incoming), max(incoming))
        changed = {t: v for t, v in incoming.items() if t not in stored or v < stored[t]}
    if not changed and since is None:
        return None  # nothing the accounting has not used already
    first = min([*changed, *([since] if since is not None else [])])
    before = tail.before(first)
    # The walk's amounts start at the good reading before the first new one; the walk
    # starts at the last reading at or before that minute, so that it also yields the
    # amounts that share the minute.
    first_minute = _floor_minute(first if before is None else before[2])
    start = tail.before(min(first_minute + 1, first))
    stored_after: Iterator[ReadingRow] = (
        iter(())  # it is the last kept: nothing after it
        if start is not None and start == latest
        else AccountingDB.readings_from(
            conn, site, series, first_minute if start is None else start[0] + 1
        )
    )
    swaps = [scaled(x, target.scale) for x in AccountingDB.swaps(conn, site, target.meter)]
    walker = Walker(
        None if start is None else state_of(start),
        target.spec,
        MAX_GAP,
        target.integrate,
        POWER_MAX_GAP,
        swaps,
    )
    # (asked for only when the walker judges a reading before any in line: rarely)
    seed = (lambda: []) if start is None else (lambda: _before(tail, start, walker))
    walked = _walk(_Measure(walker, seed, target), stored_after, changed, first, through)
    AccountingDB.save_readings(conn, site, series, walked.rows)
    _log_findings(series, walked.findings)
    # the findings of the readings walked replace those stored for them
    AccountingDB.drop_findings(conn, site, series, None if start is None else start[0], walked.end)
    recorded = [f for f in walked.findings if f.issue in RECORDED]
    if recorded:
        AccountingDB.put_findings(
            conn, site, [FindingRow(series, f, counted(walked.amounts, f)) for f in recorded]
        )
    end_minute = _end_minute(walked.end, through)
    rows = minute_rows(walked.amounts, target, first_minute, end_minute)
    minutes = AccountingDB.replace_minutes(conn, site, series, first_minute, end_minute, rows)
    late = sum(1 for t in changed if last is not None and t <= last)
    return Span(site, series, first_minute, end_minute, late, minutes)


@dataclass(slots=True)
class _Walked:
    rows: list[ReadingRow]
    """The readings whose state is new (to be saved)."""
    amounts: list[MsAmount]
    findings: list[Finding]
    end: int
    """The time of the reading the walk settled at."""


def _in_line(spec: CounterSpec, good_t: int, good_v: float, t: int, v: float) -> float | None:
    """The amount the walker measures from its good reading (none waiting after it) to
    the next reading when nothing but that amount comes of it: no gap, wrap or step (a
    swap between them is the caller's to rule out). None: the walker must judge it."""
    rise = v - good_v
    if rise < -spec.tolerance or t - good_t > MAX_GAP_MS:
        return None
    rise = max(rise, 0.0)
    return rise if spec.fits_seconds(rise, (t - good_t) / 1000) else None


class _Measure:
    """Readings, in time order, into amounts and the state after each.

    A reading in line with the good one before it (the bulk of any series) is measured
    here as the walker measures it, without the walker's objects; the walker gets the
    state back, with the amount that ended there, at the next reading it must judge (a
    walk may start at any reading's state: every pass does)."""

    def __init__(self, walker: Walker, seed: Callable[[], list[Amount]], target: Target) -> None:
        self.amounts: list[MsAmount] = []
        self.findings: list[Finding] = []
        self._walker = walker
        self._seed: Callable[[], list[Amount]] | None = seed
        """The amount that ended at the walker's good reading, until it is known."""
        self._spec = target.spec
        self._integrate = target.integrate
        self._swap_times = [ms(x.ts) for x in walker.swaps]
        state = walker.state
        # The good reading while none waits after it (a counter), else None.
        self._good: tuple[int, float] | None = None
        if not target.integrate and state is not None and state.pending is None:
            self._good = (ms(state.good.ts), state.good.value)
        self._behind = False
        """The walk ran in line past the walker's own state."""

    def __call__(self, t: int, value: float) -> ReadingRow:
        good = self._good
        if good is not None and not (
            self._swap_times and _swap_between(self._swap_times, good[0], t)
        ):
            amount = _in_line(self._spec, good[0], good[1], t, value)
            if amount is not None:
                self.amounts.append((good[0], t, amount, 0))
                # jitter within tolerance keeps the higher level
                self._good = good = (t, value) if value >= good[1] else (t, good[1])
                self._behind, self._seed = True, None
                return (t, value, t, good[1], None, None)
        walker = self._walker
        if self._behind:
            assert good is not None
            back = State(Sample(from_ms(good[0]), good[1]))
            walker = walker.resumed(back, [amount_of(self.amounts[-1])])
            self._behind = False
        elif self._seed is not None and walker.state is not None:
            walker = walker.resumed(walker.state, self._seed())
        self._walker, self._seed = walker, None
        step = walker.feed(Sample(from_ms(t), value))
        self.amounts.extend(ms_amount(a) for a in step.amounts)
        self.findings.extend(step.findings)
        row = reading_row(step.sample, step.state)
        self._good = (row[2], row[3]) if row[4] is None and not self._integrate else None
        return row


def _walk(
    measure: _Measure,
    stored: Iterator[ReadingRow],
    changed: dict[int, float],
    first: int,
    through: int | None,
) -> _Walked:
    """Walk the stored readings with the changed ones in their place: the readings from
    `first` whose state is new, every amount up to past the minutes the walk touches, and
    the time of the reading it settled at (a state as stored, with no change after it and
    `through` reached)."""
    out = _Walked([], measure.amounts, measure.findings, first)
    changes = deque(sorted(changed.items()))
    following = next(stored, None)
    settled: int | None = None
    settle_at = 0
    # The state before the reading is as stored: then so is the amount that ends at it,
    # which a hole after it is estimated from (a reading late before one that opened a
    # hole changes the estimate, not the states).
    as_before = True
    while changes or following is not None:
        old: ReadingRow | None = None
        if changes and (following is None or changes[0][0] <= following[0]):
            t, value = changes.popleft()
            if following is not None and following[0] == t:
                following = next(stored, None)
        else:
            assert following is not None
            old, following = following, next(stored, None)
            t, value = old[0], old[1]
        row = measure(t, value)
        same = old is not None and (row == old or t < first)
        if old is None:
            out.rows.append(row)
        elif settled is None and t >= first:
            if not same:
                out.rows.append(row)
            elif as_before and row[4] is None and not changes and (through is None or t >= through):
                settled = t  # every later state, and so every later amount, is as stored
                settle_at = _end_minute(settled, through)
        as_before = same
        if settled is None:
            out.end = max(out.end, t)
        elif row[4] is None and row[2] >= settle_at:
            break  # later amounts start at or after the good reading: past the minutes
    if settled is not None:
        out.end = settled
    return out


def _swap_between(swap_times: list[int], after: int, through: int) -> bool:
    """Whether a swap falls in (after, through]: the walker then starts a new counter."""
    i = bisect.bisect_right(swap_times, after)
    return i < len(swap_times) and swap_times[i] <= through


def _end_minute(end: int, through: int | None) -> int:
    """The end of the minutes a walk to `end` (and a recompute through `through`) replaces."""
    return _floor_minute(max(end, through or end)) + MINUTE_MS


def _carry_over(conn: sqlite3.Connection, site: str, series: str) -> bool:
    """A database from before readings were kept: its last good reading is the first kept
    (the out-of-line one after it, if any, is judged again by the next reading)."""
    old = AccountingDB.load_state(conn, site, series)
    if old is not None:
        AccountingDB.save_readings(conn, site, series, [reading_row(old.good, State(old.good))])
    return old is not None


def _floor_minute(t: int) -> int:
    return t - t % MINUTE_MS


def _log_findings(series: str, findings: Sequence[Finding]) -> None:
    for f in findings:
        if f.issue in (Issue.UNRESOLVED, Issue.GAP, Issue.CONFLICT):
            continue
        log.warning(
            f"counter {f.issue.value}",
            extra=fields(series=series, start=f.start.isoformat(), detail=f.detail),
        )


def scaled(swap: Replacement, scale: float) -> Replacement:
    """A swap's readings in the series' unit (readings x the meter's scale)."""
    old = None if swap.old_final is None else swap.old_final * scale
    return Replacement(swap.ts, swap.new_initial * scale, old, swap.by)


def counted(amounts: Sequence[MsAmount], f: Finding) -> float:
    """What the totals hold for a finding's interval."""
    start, end = ms(f.start), ms(f.end)
    return math.fsum(a[2] for a in amounts if a[0] == start and a[1] == end)


def ms_amount(a: Amount) -> MsAmount:
    return (ms(a.start), ms(a.end), a.value, int(a.quality))


def amount_of(a: MsAmount) -> Amount:
    return Amount(from_ms(a[0]), from_ms(a[1]), a[2], Quality(a[3]))


def minute_rows(
    amounts: Sequence[MsAmount], target: Target, first_ms: int, end_ms: int
) -> list[MinuteRow]:
    """The minutes in [first, end) the amounts make."""
    series, kgce = target.series, target.kgce_per_unit
    if target.hourly is None:
        kgco2 = target.kgco2_per_unit
        return [
            MinuteRow(series, minute, value, value * kgce, value * kgco2, quality)
            for minute, value, quality in allocate_ms(amounts, MINUTE_MS)
            if first_ms <= minute < end_ms
        ]
    return [
        MinuteRow(series, minute, value, value * kgce, value * target.kgco2_at(minute), quality)
        for minute, value, quality in allocate_ms(amounts, MINUTE_MS)
        if first_ms <= minute < end_ms
    ]


def meter_totals(
    db: AccountingDB,
    config: AccountingConfig,
    site: str,
    meter: MeterConfig,
    start_ms: int,
    end_ms: int,
) -> tuple[float, float, float, int | None]:
    """amount, kgce, kgCO2, worst quality of a meter (virtual: its parts) over [start, end)."""
    if not meter.virtual:
        return db.totals(site, [meter.id], start_ms, end_ms)
    plus = db.totals(site, list(meter.plus), start_ms, end_ms)
    minus = db.totals(site, list(meter.minus), start_ms, end_ms)
    qualities = [q for q in (plus[3], minus[3]) if q is not None]
    return (
        plus[0] - minus[0],
        plus[1] - minus[1],
        plus[2] - minus[2],
        max(qualities) if qualities else None,
    )


def _numerator(judged_unit: str, kgce: float, kgco2: float, kwh: float) -> float:
    head = judged_unit.split("/", 1)[0]
    return {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}[head]


def line_totals(
    db: AccountingDB,
    config: AccountingConfig,
    site: SiteConfig,
    line_id: str,
    start_ms: int,
    end_ms: int,
) -> tuple[float, float, float, float, int | None]:
    """kgce, kgCO2, electricity kWh, output and worst quality of a line over [start, end)."""
    kgce = kgco2 = kwh = 0.0
    qualities: list[int] = []
    for m in site.line_meters(line_id):
        amount, ce, co2, q = meter_totals(db, config, site.id, m, start_ms, end_ms)
        kgce += ce
        kgco2 += co2
        if m.carrier.value == "electricity":
            kwh += amount
        if q is not None:
            qualities.append(q)
    output = db.totals(site.id, [output_series(line_id)], start_ms, end_ms)[0]
    return kgce, kgco2, kwh, output, max(qualities) if qualities else None


def site_totals(
    db: AccountingDB, config: AccountingConfig, site: SiteConfig, start_ms: int, end_ms: int
) -> tuple[float, float, float, float, int | None]:
    """kgce, kgCO2, electricity kWh of the boundary meters, the lines' output summed, and
    the worst quality of the meters (None: no data) over [start, end)."""
    kgce = kgco2 = kwh = 0.0
    qualities: list[int] = []
    for m in site.boundary_meters():
        amount, ce, co2, q = meter_totals(db, config, site.id, m, start_ms, end_ms)
        kgce, kgco2 = kgce + ce, kgco2 + co2
        kwh += amount if m.carrier.value == "electricity" else 0.0
        if q is not None:
            qualities.append(q)
    output = db.totals(site.id, [output_series(x.id) for x in site.lines], start_ms, end_ms)[0]
    return kgce, kgco2, kwh, output, max(qualities) if qualities else None


def _line_series(site: SiteConfig, line_id: str) -> set[str]:
    """The series a line's figures are computed from (a virtual meter: its parts)."""
    series = {output_series(line_id)}
    for m in site.line_meters(line_id):
        series |= {*m.plus, *m.minus} if m.virtual else {m.id}
    return series


def _windows(site: SiteConfig) -> list[Window]:
    return [w for w in Window if w is not Window.SHIFT or site.shifts]


def line_figures(
    db: AccountingDB, config: AccountingConfig, site: SiteConfig, line: LineConfig, now: datetime
) -> list[Figure]:
    judged = resolve_benchmark(line)
    minimum = min_output(line)
    figures: list[Figure] = []
    for w in _windows(site):
        start = window_start(w, now, site.tz, site.shift_list)
        if start >= now:
            continue
        kgce, kgco2, kwh, output, _ = line_totals(db, config, site, line.id, ms(start), ms(now))
        num = _numerator(judged.unit, kgce, kgco2, kwh)
        value = intensity(
            [Amount(start, now, num)], [Amount(start, now, output)], start, now, minimum[w], w.value
        )
        figures.append(Figure(w, kgce, kgco2, kwh, output, value))
    return figures


def site_figures(
    db: AccountingDB, config: AccountingConfig, site: SiteConfig, now: datetime
) -> list[Figure]:
    """Site intensity (kgce per output unit) over each window: boundary meters over the
    lines' output, when every line counts output in the same unit."""
    units = {line.output_unit for line in site.lines}
    if len(units) != 1:
        return []
    minimum = min(min(min_output(line).values()) for line in site.lines)
    figures: list[Figure] = []
    for w in _windows(site):
        start = window_start(w, now, site.tz, site.shift_list)
        if start >= now:
            continue
        kgce, kgco2, kwh, output, _ = site_totals(db, config, site, ms(start), ms(now))
        value = intensity(
            [Amount(start, now, kgce)], [Amount(start, now, output)], start, now, minimum, w.value
        )
        figures.append(Figure(w, kgce, kgco2, kwh, output, value))
    return figures


STATUS_CODES: Final = {
    "insufficient_output": 0,
    Standing.LEADING.value: 1,
    Standing.COMPLIANT.value: 2,
    Standing.ABOVE_BASELINE.value: 3,
}


def standing(value: float | None, judged: Judged | None) -> str:
    if value is None:
        return Status.INSUFFICIENT_OUTPUT.value
    if judged is None:
        return Status.OK.value
    level = NdrcLevel(
        product=judged.name,
        unit=judged.unit,
        benchmark=judged.benchmark,
        baseline=judged.baseline,
        edition="-",
        source=judged.source,
        confidence="configured",  # type: ignore[arg-type]
    )
    return classify(value, judged.unit, level).standing.value


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _intensity_point(
    site: str, line: str, f: Figure, judged: Judged | None, now: datetime
) -> Point:
    out = f.output if f.judged.value is not None else None
    status = standing(f.judged.value, judged)
    fields_: list[tuple[str, float]] = [
        ("value", _nan(f.judged.value)),
        ("kgce_per_unit", _nan(f.kgce / out if out else None)),
        ("kgco2_per_unit", _nan(f.kgco2 / out if out else None)),
        ("kgce", f.kgce),
        ("kgco2", f.kgco2),
        ("output", f.output),
        ("status", float(STATUS_CODES.get(status, 1))),
    ]
    if judged is not None:
        fields_ += [("benchmark", judged.benchmark), ("baseline", judged.baseline)]
    return Point(
        "intensity",
        (("site", site), ("line", line), ("window", f.window.value)),
        tuple(fields_),
        ms(now),
    )


def meter_role(meter: MeterConfig) -> str:
    """The `role` tag: `boundary` (counted in the site total, as the accounting counts
    it, virtual or not), else `virtual` (a sum or difference of real meters), else
    `submeter`; so that a dashboard adds each kWh once."""
    if meter.role is Role.BOUNDARY:
        return Role.BOUNDARY.value
    return VIRTUAL_ROLE if meter.virtual else meter.role.value


def _energy_point(site: SiteConfig, meter: MeterConfig, row: MinuteRow) -> Point:
    tags = [("site", site.id), ("meter", meter.id), ("carrier", meter.carrier.value)]
    tags += [("unit", CARRIERS[meter.carrier][0]), ("line", meter.line or SITE_LINE)]
    tags += [("role", meter_role(meter)), ("scope", str(site.scope(meter.carrier)))]
    return Point(
        "energy_interval",
        tuple(tags),
        (
            ("amount", row.amount),
            ("kgce", row.kgce),
            ("kgco2", row.kgco2),
            ("quality", float(row.quality)),
            ("estimated", 1.0 if meter.estimated else 0.0),
        ),
        row.minute,
    )


def _output_point(site: str, line: LineConfig, row: MinuteRow) -> Point:
    fields_ = [("amount", row.amount), ("quality", float(row.quality))]
    if line.process_emissions:
        # Scope 1 process CO2 of the minute's output, beside the output it comes from.
        fields_.append(("process_kgco2", row.amount * line.process_factor))
    return Point(
        "output_interval",
        (("site", site), ("line", line.id), ("unit", line.output_unit)),
        tuple(fields_),
        row.minute,
    )


def minute_time(value: int) -> datetime:
    return from_ms(value)
