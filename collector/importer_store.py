"""`energy-collector import --from-store`: account readings that are in the store already.

Readings written before the accounting was configured, or by another collector, are read
back for one site and period (collector.stores.readback), checked as live values are, and
fed to the same accounting as live ones. Nothing is written to the readings store but the
accounting's own derived points. Importing again changes nothing: a reading the accounting
has used already is a re-delivery to it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final, TextIO

from collector.accounting.db import from_ms
from collector.accounting.engine import Accounting
from collector.batch import epoch_millis
from collector.stores import PointStore
from collector.stores.opening import open_readback, open_store
from collector.stores.readback import CHUNK, ReadingSource, Series, Stored
from collector.validate import Rejected, check_value
from greengauge.contract import MeterReading, ReadingBatch, check_id

if TYPE_CHECKING:
    from collector.config import CollectorConfig

SHOWN: Final = 20
"""refused values listed in the summary"""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    site: str
    start: datetime
    end: datetime
    agent: str | None = None
    """only the readings this agent stored (else every agent's)"""
    shown: int = SHOWN
    chunk: int = CHUNK


@dataclass(slots=True)
class StoreSummary:
    series: int = 0
    read: int = 0
    fed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)
    shown: int = SHOWN
    notes: list[str] = field(default_factory=list)

    def refuse(self, series: Series, stored: Stored, reason: str) -> None:
        self.refused[series.meter] += 1
        if len(self.first) < self.shown:
            self.first.append(
                f"{series.meter} {series.quantity.value} at {from_ms(stored.ts).isoformat()} "
                f"(agent {stored.agent}): {reason}"
            )

    def render(self) -> str:
        refused = sum(self.refused.values())
        lines = [
            f"series read      {self.series}",
            f"values read      {self.read}",
            f"values accounted {self.fed}",
            f"values refused   {refused}",
        ]
        lines += [f"  {meter:<14} {n}" for meter, n in sorted(self.refused.items())]
        if self.first:
            more = refused - len(self.first)
            lines.append("first refusals:" if more else "refusals:")
            lines += [f"  {r}" for r in self.first]
            if more:
                lines.append(f"  ... and {more} more")
        lines += self.notes
        return "\n".join(lines)


def wanted(accounting: Accounting, options: StoreOptions) -> list[Series]:
    """The series the site's accounting reads (ValueError for a site not in the plant
    model), over the period."""
    start, end = epoch_millis(options.start), epoch_millis(options.end)
    pairs = sorted({(t.meter, t.quantity) for t in accounting.series(options.site)})
    return [Series(options.site, meter, q, start, end) for meter, q in pairs]


def batches(
    series: Series, chunk: list[Stored], agent: str | None, summary: StoreSummary
) -> list[ReadingBatch]:
    """A chunk of stored values as the batches an agent would have sent, one per agent;
    values refused as a live one would be are counted, not fed."""
    by_agent: dict[str, list[MeterReading]] = {}
    for stored in chunk:
        if agent is not None and stored.agent != agent:
            continue
        summary.read += 1
        try:
            check_id(stored.agent)  # another collector's store may hold any tag
            check_value(stored.value, f"{series.meter} {series.quantity.value}")
        except (Rejected, ValueError) as exc:
            summary.refuse(series, stored, str(exc))
            continue
        reading = MeterReading(
            meter=series.meter, ts=from_ms(stored.ts), values={series.quantity: stored.value}
        )
        by_agent.setdefault(stored.agent, []).append(reading)
    summary.fed += sum(len(r) for r in by_agent.values())
    return [
        ReadingBatch(site=series.site, agent=name, seq=0, readings=readings)
        for name, readings in by_agent.items()
    ]


async def account(
    source: ReadingSource,
    accounting: Accounting,
    options: StoreOptions,
    progress: TextIO,
    summary: StoreSummary,
) -> None:
    """Feed every stored value of the site's accounted series over the period to the
    accounting, counted in `summary`; StoreError or sqlite3.Error stop it (what was
    accounted before stays)."""
    todo = wanted(accounting, options)
    started = shown = time.monotonic()
    for series in todo:
        summary.series += 1
        before = summary.read
        chunks = source.read(series, options.chunk)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            for batch in batches(series, chunk, options.agent, summary):
                accounting.feed(batch)
            await accounting.step()
            now = time.monotonic()
            if now - shown >= 1.0:
                shown = now
                rate = summary.read / max(now - started, 1e-9)
                _say(
                    progress,
                    f"{series.meter} {series.quantity.value} up to "
                    f"{from_ms(chunk[-1].ts).isoformat()}: {summary.read} values ({rate:.0f}/s)",
                )
        _say(
            progress,
            f"{series.meter} {series.quantity.value}: {summary.read - before} values "
            f"(series {summary.series} of {len(todo)})",
        )


def _say(progress: TextIO, text: str) -> None:
    progress.write(f"import: store: {text}\n")
    progress.flush()


async def run(config: CollectorConfig, options: StoreOptions, out: TextIO, progress: TextIO) -> int:
    """Account the stored readings; 0 if every value was accounted, 1 if some were
    refused, 2 if the store or the accounting database failed (what was accounted before
    stays: importing again completes it)."""
    from collector.stores import StoreError  # noqa: PLC0415

    plant = config.accounting
    if plant is None or plant.site(options.site) is None:
        print(
            f"energy-collector: site {options.site!r} is not in the plant model "
            "(the config's `accounting`): nothing to account the readings for",
            file=progress,
        )
        return 2
    store = open_store(config)  # the accounting's derived points go beside the readings
    accounting = Accounting(
        plant, config.data_dir, store if isinstance(store, PointStore) else None
    )
    accounting.on_close(store.close)
    source = open_readback(config)
    code = 0
    summary = StoreSummary(shown=options.shown)
    try:
        await account(source, accounting, options, progress, summary)
    except (StoreError, sqlite3.Error) as exc:
        print(
            f"energy-collector: stopped: {exc}; importing again accounts nothing twice",
            file=progress,
        )
        code = 2
    finally:
        source.close()
        accounting.close()
    summary.notes.append(
        f"accounting: fed {accounting.readings_used} readings of its meters "
        "(one it had used already changes nothing); "
        f"{accounting.late_readings} came before ones it had and re-opened "
        f"{accounting.corrections} accounted stretches"
    )
    print(summary.render(), file=out)
    return code or (1 if summary.refused else 0)
