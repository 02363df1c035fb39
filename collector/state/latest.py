"""The terminal view: the latest reading of every meter as a table that refreshes in place."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from collector.batch import Batch, Kept, reading
from collector.validate import Rejected
from greengauge.contract import MeterReading, Quantity

# A meter of an agent at its limit that has not been read for this long (by the agent's
# own clock) makes room for a new id: a renamed or replaced meter needs no restart.
FORGET_AFTER_MS: Final = 86_400_000

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


_Entry = tuple[int, Kept, int]
"""A meter's newest reading: epoch ms, its values as the batch kept them, and the
meter's interval in ms as observed (0: one reading so far)."""


class LatestReadings:
    """The newest reading of each meter, bounded: at most `per_agent` meters of one agent
    (`admit` refuses a batch with more) and `total` in all (the least recently updated
    agent's oldest readings are evicted, and counted), so a gateway inventing meter ids
    cannot exhaust memory.

    Per reading received (hundreds of thousands a second) this is a dict lookup and a
    store: the rows' models are built when read, and the order that eviction needs is
    kept per agent (a batch comes from one agent), not per reading."""

    def __init__(self, per_agent: int = 1000, total: int = 50_000) -> None:
        # Least recently updated agent first.
        self._agents: OrderedDict[tuple[str, str], dict[str, _Entry]] = OrderedDict()
        self._count = 0
        # The rows' models of the last `rows()`, reused while a meter's reading is the same.
        self._shown: dict[tuple[str, str, str], tuple[Kept, MeterReading]] = {}
        self.per_agent = per_agent
        self.total = total
        self.evicted = 0

    def __len__(self) -> int:
        return self._count

    def admit(self, batch: Batch) -> None:
        """Raise Rejected when the batch brings more new meter ids than its agent may add."""
        meters = self._agents.get((batch.site, batch.agent), {})
        if len(meters) + len(batch) <= self.per_agent:
            return
        new = list(dict.fromkeys(m for m in batch.meters if m not in meters))
        room = self.per_agent - len(meters)
        if len(new) <= room:
            return
        # Meters not read for a day (by the agent's own clock) make room, oldest first.
        cutoff = max(batch.stamps) - FORGET_AFTER_MS
        room += min(sum(1 for ms, _, _ in meters.values() if ms < cutoff), len(new) - room)
        if len(new) > room:
            raise Rejected(
                f"agent {batch.agent!r} of site {batch.site!r} reports {len(meters)} meters "
                f"already, the most one agent may (ingest.meters_per_agent {self.per_agent}): "
                f"new meter id {new[max(room, 0)]!r} refused"
            )

    def update(self, batch: Batch) -> None:
        agents = self._agents
        key = (batch.site, batch.agent)
        meters = agents.get(key)
        if meters is None:
            meters = agents[key] = {}
        else:
            agents.move_to_end(key)
        before = len(meters)
        get = meters.get
        for meter, ms, kept in zip(batch.meters, batch.stamps, batch.kept, strict=True):
            known = get(meter)
            if known is None:
                meters[meter] = (ms, kept, 0)
                continue
            known_ms, _, interval = known
            if known_ms > ms:
                continue  # older than what is shown: out of order
            if ms > known_ms:
                # A shorter step is the interval at once; a gap (an outage, a missed read)
                # at most doubles the estimate per reading, so one outage does not hide the
                # next for long, and a meter set to a longer interval is followed within a
                # few readings.
                step = ms - known_ms
                interval = min(step, 2 * interval) if interval else step
            meters[meter] = (ms, kept, interval)
        added = len(meters) - before
        if added:
            self._count += added
            if len(meters) > self.per_agent:
                self._evict_oldest(key, len(meters) - self.per_agent)
            while self._count > self.total:
                oldest = next(iter(agents))
                self._evict_oldest(oldest, min(self._count - self.total, len(agents[oldest])))

    def _evict_oldest(self, key: tuple[str, str], count: int) -> None:
        meters = self._agents[key]
        for meter in sorted(meters, key=lambda m: meters[m][0])[:count]:
            del meters[meter]
        if not meters:
            del self._agents[key]
        self._count -= count
        self.evicted += count

    def rows(self) -> list[Row]:
        shown: dict[tuple[str, str, str], tuple[Kept, MeterReading]] = {}
        rows: list[Row] = []
        for (site, agent), meters in self._agents.items():
            for meter, (ms, kept, interval) in meters.items():
                key = (site, agent, meter)
                seen = self._shown.get(key)
                model = (
                    seen[1] if seen is not None and seen[0] is kept else reading(meter, ms, kept)
                )
                shown[key] = (kept, model)
                step = timedelta(milliseconds=interval) if interval else None
                rows.append(Row(site, agent, model, step))
        self._shown = shown
        rows.sort(key=lambda row: (row.site, row.agent, row.reading.meter))
        return rows


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
