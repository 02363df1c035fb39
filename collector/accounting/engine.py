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
is written (measurement `intensity`) and the lines' alarms are advanced (ledger.alerts).
"""

from __future__ import annotations

import asyncio
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

from collector.accounting.db import (
    FILE,
    AccountingDB,
    AlertRow,
    FindingRow,
    MinuteRow,
    from_ms,
    ms,
)
from collector.ledger import alerts, data
from collector.ledger.benchmarks import Standing, classify
from collector.ledger.carbon import fuel
from collector.ledger.conversion import to_kgce
from collector.ledger.counters import CounterSpec, Finding, Issue, Replacement, Sample
from collector.ledger.factors import NdrcLevel
from collector.ledger.intensity import Intensity, Status, Window, intensity, window_start
from collector.ledger.series import Amount, allocate
from collector.ledger.walk import State, Step, Walker
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

    def kgco2_at(self, start: datetime) -> float:
        if self.hourly is not None:
            factor = self.hourly.factor_at(int(start.timestamp() // 3600))
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
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.step()
                if time.monotonic() >= next_intensity:
                    next_intensity = time.monotonic() + self.config.intensity_interval
                    await asyncio.to_thread(self.evaluate)
            except sqlite3.Error as exc:  # disk full or read-only: tried again next step
                self.disk.failed(exc, self.config.interval)
            else:
                self.disk.ok()

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
        used = 0
        spans: list[Span] = []
        with self.db.transaction() as conn:
            for (site, series), new in samples.items():
                span = account(conn, site, targets[(site, series)], new)
                if span is not None:
                    spans.append(span)
                used += len(new)
        # once committed: a rolled-back pass is done again
        self.readings_used += used
        self._count(spans)
        self._mark_alerts([s for s in spans if s.late])

    def recompute(self, site: str, start: datetime, end: datetime) -> list[Span]:
        """Account [start, end) of a site again from the readings used, as if each had
        just arrived: the same walk and the same minutes as the live path. Idempotent."""
        spans: list[Span] = []
        for target in self.series(site):
            with self.db.transaction() as conn:
                span = account(conn, site, target, (), since=ms(start), through=ms(end))
            if span is not None:
                spans.append(span)
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
        """Intensities of every line and site over every window, now; alarms advanced."""
        now = self._clock()
        points: list[Point] = []
        for site in self.config.sites:
            for line in site.lines:
                figures = line_figures(self.db, self.config, site, line, now)
                judged = self._judged[(site.id, line.id)]
                points.extend(_intensity_point(site.id, line.id, f, judged, now) for f in figures)
                if line.alert is not None:
                    self._advance_alarm(site, line, judged, figures, now)
            for f in site_figures(self.db, self.config, site, now):
                points.append(_intensity_point(site.id, SITE_LINE, f, None, now))
        if self._store is not None and points:
            try:
                self._store.write_points(points)
            except (StoreError, StoreRejected) as exc:
                log.warning("intensity not stored", extra=fields(reason=str(exc)))
        return points

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


def _walker(
    conn: sqlite3.Connection,
    site: str,
    target: Target,
    start: tuple[int, State] | None,
    swaps: Sequence[Replacement],
) -> Walker:
    """A walker from a stored state, knowing the amount that ended at its good reading
    (the rate before a hole), as a walk through that reading would."""
    if start is None:
        return Walker(None, target.spec, MAX_GAP, target.integrate, POWER_MAX_GAP, swaps)
    good = start[1].good
    before: list[Amount] = []
    prev = AccountingDB.state_before(conn, site, target.series, ms(good.ts))
    value = AccountingDB.stored_values(conn, site, target.series, ms(good.ts), ms(good.ts))
    if prev is not None and ms(good.ts) in value:
        seed = Walker(prev[1], target.spec, MAX_GAP, target.integrate, POWER_MAX_GAP, swaps)
        step = seed.feed(Sample(good.ts, value[ms(good.ts)]))
        before = [a for a in step.amounts if a.end == good.ts]
    return Walker(start[1], target.spec, MAX_GAP, target.integrate, POWER_MAX_GAP, swaps, before)


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
    latest = AccountingDB.state_before(conn, site, series, END_OF_TIME)
    if latest is None and _carry_over(conn, site, series):
        latest = AccountingDB.state_before(conn, site, series, END_OF_TIME)
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
    if last is not None and last < first:
        before = latest
    else:
        before = AccountingDB.state_before(conn, site, series, first)
    # The walk's amounts start at the good reading before the first new one; the walk
    # starts at the last reading at or before that minute, so that it also yields the
    # amounts that share the minute.
    first_minute = _floor_minute(first if before is None else ms(before[1].good.ts))
    start = AccountingDB.state_before(conn, site, series, min(first_minute + 1, first))
    stored_after = AccountingDB.readings_from(
        conn, site, series, first_minute if start is None else start[0] + 1
    )
    swaps = [scaled(x, target.scale) for x in AccountingDB.swaps(conn, site, target.meter)]
    walker = _walker(conn, site, target, start, swaps)
    steps, amounts, findings, end = _walk(
        walker, stored_after, sorted(changed.items()), first, through
    )
    AccountingDB.save_readings(conn, site, series, steps)
    _log_findings(series, findings)
    # the findings of the readings walked replace those stored for them
    AccountingDB.drop_findings(conn, site, series, None if start is None else start[0], end)
    AccountingDB.put_findings(
        conn,
        site,
        [FindingRow(series, f, counted(amounts, f)) for f in findings if f.issue in RECORDED],
    )
    end_minute = _end_minute(end, through)
    rows = [r for r in minute_rows(amounts, target) if first_minute <= r.minute < end_minute]
    minutes = AccountingDB.replace_minutes(conn, site, series, first_minute, end_minute, rows)
    late = sum(1 for t in changed if last is not None and t <= last)
    return Span(site, series, first_minute, end_minute, late, minutes)


def _walk(
    walker: Walker,
    stored: Iterator[tuple[Sample, State]],
    changed: list[tuple[int, float]],
    first: int,
    through: int | None,
) -> tuple[list[Step], list[Amount], list[Finding], int]:
    """Walk the stored readings with the changed ones in their place: the steps from
    `first` whose state is new (to be saved), every amount up to past the minutes the
    walk touches, and the time of the reading it settled at (a state as stored, with no
    change after it and `through` reached)."""
    changes = deque(changed)
    following = next(stored, None)
    steps: list[Step] = []
    amounts: list[Amount] = []
    findings: list[Finding] = []
    end = first
    settled: int | None = None
    while changes or following is not None:
        if changes and (following is None or changes[0][0] <= ms(following[0].ts)):
            t, value = changes.popleft()
            if following is not None and ms(following[0].ts) == t:
                following = next(stored, None)
            step = walker.feed(Sample(from_ms(t), value))
            steps.append(step)
        else:
            assert following is not None
            (sample, old), following = following, next(stored, None)
            step = walker.feed(sample)
            t = ms(sample.ts)
            if settled is None and t >= first:
                if step.state != old:
                    steps.append(step)
                elif not changes and (through is None or t >= through):
                    settled = end = t  # every later state is as stored
        amounts.extend(step.amounts)
        findings.extend(step.findings)
        if settled is None:
            end = max(end, t)
            continue
        # A hole after the settled reading is filled from the rates on both sides of it,
        # and a late reading may have changed the rate before: the fill's minutes are
        # replaced too, though the states are as stored.
        end = max([end, *(ms(a.end) for a in step.amounts if ms(a.start) <= settled)])
        if step.state.pending is None and ms(step.state.good.ts) >= _end_minute(end, through):
            break  # later amounts start at or after the good reading: past the minutes
    return steps, amounts, findings, end


def _end_minute(end: int, through: int | None) -> int:
    """The end of the minutes a walk to `end` (and a recompute through `through`) replaces."""
    return _floor_minute(max(end, through or end)) + MINUTE_MS


def _carry_over(conn: sqlite3.Connection, site: str, series: str) -> bool:
    """A database from before readings were kept: its last good reading is the first kept
    (the out-of-line one after it, if any, is judged again by the next reading)."""
    old = AccountingDB.load_state(conn, site, series)
    if old is not None:
        AccountingDB.save_readings(conn, site, series, [Step(old.good, State(old.good), (), ())])
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


def counted(amounts: Sequence[Amount], f: Finding) -> float:
    """What the totals hold for a finding's interval."""
    return math.fsum(a.value for a in amounts if a.start == f.start and a.end == f.end)


def minute_rows(amounts: Sequence[Amount], target: Target) -> list[MinuteRow]:
    return [
        MinuteRow(
            target.series,
            ms(b.start),
            b.value,
            b.value * target.kgce_per_unit,
            b.value * target.kgco2_at(b.start),
            int(b.quality),
        )
        for b in allocate(amounts, MINUTE)
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
