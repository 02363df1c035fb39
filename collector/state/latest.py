"""The terminal view: the latest reading of every meter as a table that refreshes in place."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from collector.validate import Rejected
from greengauge.contract import MeterReading, Quantity, ReadingBatch

# A meter of an agent at its limit that has not been read for this long (by the agent's
# own clock) makes room for a new id: a renamed or replaced meter needs no restart.
FORGET_AFTER: Final = timedelta(days=1)

STALE_INTERVALS: Final = 3
"""A meter whose newest reading is older than this many of its intervals is stale."""
STALE_FLOOR: Final = timedelta(seconds=10)
"""Never stale sooner: readings come in batches, so a fast meter's age jitters by seconds."""
STALE_UNKNOWN: Final = timedelta(seconds=60)
"""Stale after this while the meter's interval is not known yet (one reading so far)."""


def stale_after(interval: timedelta | None) -> timedelta:
    """How old a meter's newest reading may be before what rests on it is stale."""
    if interval is None:
        return STALE_UNKNOWN
    return max(STALE_INTERVALS * interval, STALE_FLOOR)


COLUMNS: tuple[tuple[str, Quantity, float, str], ...] = (
    ("P kW", Quantity.POWER_ACTIVE, 1e-3, "{:>9.2f}"),
    ("E import kWh", Quantity.ENERGY_ACTIVE_IMPORT, 1.0, "{:>13.2f}"),
    ("U1 V", Quantity.VOLTAGE_L1, 1.0, "{:>6.1f}"),
    ("I1 A", Quantity.CURRENT_L1, 1.0, "{:>7.2f}"),
    ("PF", Quantity.POWER_FACTOR, 1.0, "{:>5.2f}"),
    ("Hz", Quantity.FREQUENCY, 1.0, "{:>6.2f}"),
    ("count", Quantity.COUNT, 1.0, "{:>9.0f}"),
)


@dataclass(frozen=True, slots=True)
class Row:
    site: str
    agent: str
    reading: MeterReading
    interval: timedelta | None = None
    """The meter's reading interval as observed (None: one reading so far)."""

    def stale(self, now: datetime) -> bool:
        return now - self.reading.ts > stale_after(self.interval)


class LatestReadings:
    """The newest reading of each meter, bounded: at most `per_agent` meters of one agent
    (`admit` refuses a batch with more) and `total` in all (the least recently updated is
    evicted, and counted), so a gateway inventing meter ids cannot exhaust memory."""

    def __init__(self, per_agent: int = 1000, total: int = 50_000) -> None:
        # Rows are built when read, not per reading received (thousands a second).
        # Both orders are least recently updated first.
        self._latest: OrderedDict[tuple[str, str, str], MeterReading] = OrderedDict()
        self._interval: dict[tuple[str, str, str], timedelta] = {}
        self._agents: dict[tuple[str, str], OrderedDict[str, None]] = {}
        self.per_agent = per_agent
        self.total = total
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._latest)

    def admit(self, batch: ReadingBatch) -> None:
        """Raise Rejected when the batch brings more new meter ids than its agent may add."""
        meters = self._agents.get((batch.site, batch.agent), OrderedDict())
        new = list(dict.fromkeys(r.meter for r in batch.readings if r.meter not in meters))
        room = self.per_agent - len(meters)
        if len(new) <= room:
            return
        cutoff = max(r.ts for r in batch.readings) - FORGET_AFTER
        for meter in meters:  # least recently updated first: idle ones make room
            if room >= len(new) or self._latest[(batch.site, batch.agent, meter)].ts >= cutoff:
                break
            room += 1
        if len(new) > room:
            raise Rejected(
                f"agent {batch.agent!r} of site {batch.site!r} reports {len(meters)} meters "
                f"already, the most one agent may (ingest.meters_per_agent {self.per_agent}): "
                f"new meter id {new[max(room, 0)]!r} refused"
            )

    def update(self, batch: ReadingBatch) -> None:
        # Per reading received (hundreds of thousands a second): methods bound once, the
        # interval's estimate inline.
        latest = self._latest
        intervals = self._interval
        site, agent = batch.site, batch.agent
        meters = self._agents.setdefault((site, agent), OrderedDict())
        latest_to_end, meters_to_end = latest.move_to_end, meters.move_to_end
        for reading in batch.readings:
            meter = reading.meter
            key = (site, agent, meter)
            known = latest.get(key)
            if known is None:
                latest[key] = reading
                meters[meter] = None
                if len(meters) > self.per_agent:
                    self._evict((site, agent, next(iter(meters))))
                if len(latest) > self.total:
                    self._evict(next(iter(latest)))
                continue
            ts, known_ts = reading.ts, known.ts
            if known_ts > ts:
                continue  # older than what is shown: out of order
            if ts > known_ts:
                # A shorter step is the interval at once; a gap (an outage, a missed read)
                # at most doubles the estimate per reading, so one outage does not hide the
                # next for long, and a meter set to a longer interval is followed within a
                # few readings.
                step = ts - known_ts
                estimate = intervals.get(key)
                intervals[key] = step if estimate is None else min(step, 2 * estimate)
            latest[key] = reading
            latest_to_end(key)
            meters_to_end(meter)

    def _evict(self, key: tuple[str, str, str]) -> None:
        del self._latest[key]
        self._interval.pop(key, None)
        meters = self._agents[key[:2]]
        del meters[key[2]]
        if not meters:
            del self._agents[key[:2]]
        self.evicted += 1

    def rows(self) -> list[Row]:
        latest = self._latest
        interval = self._interval
        return [Row(key[0], key[1], latest[key], interval.get(key)) for key in sorted(latest)]


def _cell(reading: MeterReading, quantity: Quantity, factor: float, fmt: str) -> str:
    value = reading.values.get(quantity)
    width = len(fmt.format(0.0))
    return fmt.format(value * factor) if value is not None else "-".rjust(width)


def render(rows: list[Row], now: datetime, footer: str) -> str:
    """A plain-text table, one line per meter, with the age of its latest reading and
    `stale` beside a meter not heard from for a few of its intervals (its values frozen)."""
    names = [(r.site, r.agent, r.reading.meter) for r in rows]
    widths = [
        max([len(header)] + [len(n[i]) for n in names])
        for i, header in enumerate(("site", "agent", "meter"))
    ]
    value_widths = [len(fmt.format(0.0)) for _, _, _, fmt in COLUMNS]
    header = "  ".join(
        [h.ljust(w) for h, w in zip(("site", "agent", "meter"), widths, strict=True)]
        + [c[0].rjust(w) for c, w in zip(COLUMNS, value_widths, strict=True)]
        + ["age s".rjust(6), "state"]
    )
    lines = [header, "-" * len(header)]
    for row, name in zip(rows, names, strict=True):
        age = (now - row.reading.ts).total_seconds()
        cells = [n.ljust(w) for n, w in zip(name, widths, strict=True)]
        cells += [_cell(row.reading, q, f, fmt) for _, q, f, fmt in COLUMNS]
        cells.append(f"{age:>6.1f}")
        cells.append(("stale" if row.stale(now) else "").ljust(len("state")))
        lines.append("  ".join(cells))
    if not rows:
        lines.append("(no readings yet)")
    lines.append("")
    lines.append(footer)
    return "\n".join(lines)
