"""`energy-collector import`: history from CSV files, as if the agents had sent it.

Two layouts, told apart by the header (README, "Importing history"):

- long: `time,meter,quantity,value,unit` (columns in any order), one value a row;
- wide: `time,<meter>/<quantity>[<unit>],...`, one column per meter and quantity, an
  empty cell for no value.

Every row either becomes readings or is refused with `file:line: column: reason`; a
refused row is never partly used. Accepted values go through the wire model's own types
(meter id, time with zone, finite value), the live collector's value bound and time
window, then to the same store and the same accounting as live readings. The parsing
and grouping here are pure; `run` is the small I/O part.
"""

from __future__ import annotations

import asyncio
import csv
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from collector.accounting.engine import Accounting
from collector.batch import Batch
from collector.stores import PointStore, Store, StoreError, StoreRejected
from collector.stores.opening import open_store, store_retention
from collector.validate import Window, accepted_window, check_value
from greengauge.common.i18n import _, ljust, width
from greengauge.contract import UNITS, Id, MeterReading, Quantity, ReadingBatch, Timestamp

if TYPE_CHECKING:
    from collector.config import CollectorConfig

LONG_COLUMNS: Final = ("time", "meter", "quantity", "value", "unit")
WIDE_COLUMN: Final = re.compile(
    r"^(?P<meter>[^/\[\]]+)/(?P<quantity>[^/\[\]]+)\[(?P<unit>[^\]]*)\]$"
)
"""A wide layout's value column: `meter/quantity[unit]`."""
_NOT_UTF8: Final = re.compile("[\udc80-\udcff]")
"""What errors="surrogateescape" makes of bytes that are not UTF-8."""
NUMBER: Final = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

CONVERTIBLE: Final[dict[str, dict[str, int]]] = {
    "kWh": {"Wh": -3, "MWh": 3, "GWh": 6},
    "kvarh": {"varh": -3, "Mvarh": 3},
    "W": {"kW": 3, "MW": 6},
    "var": {"kvar": 3, "Mvar": 6},
    "VA": {"kVA": 3, "MVA": 6},
    "V": {"kV": 3},
    "A": {"kA": 3},
    "m3": {"m³": 0, "L": -3},
    "t": {"kg": -3},
    "1": {"": 0},
}
"""Units a file may give instead of the canonical one (greengauge.contract.UNITS), with the power
of ten that converts to it. Case matters (mW is not MW)."""

_ID: Final = TypeAdapter(Id)
_TIME: Final = TypeAdapter(Timestamp)


class HeaderError(ValueError):
    """A file whose header fits neither layout: nothing of it can be read."""


class RowError(ValueError):
    """What is wrong with one cell: `kind` counts it in the summary, the text says it all."""

    def __init__(self, kind: str, column: str | None, reason: str) -> None:
        super().__init__(f"{'row' if column is None else f'column {column!r}'}: {reason}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Refusal:
    file: str
    line: int
    kind: str
    """a short category, counted in the summary"""
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Row:
    """The values of one accepted row: (meter, time in UTC to the ms, quantity, value)."""

    line: int
    values: tuple[tuple[str, datetime, Quantity, float], ...]


def unit_exponent(quantity: Quantity, unit: str) -> int:
    """The power of ten that converts a value in `unit` to the quantity's canonical unit."""
    canonical = UNITS[quantity]
    if unit == canonical:
        return 0
    exponent = CONVERTIBLE.get(canonical, {}).get(unit)
    if exponent is None:
        others = ", ".join(repr(u) for u in CONVERTIBLE.get(canonical, {}))
        also = f" or one convertible to it ({others})" if others else ""
        raise ValueError(f"unit {unit!r}: {quantity.value} is in {canonical!r}{also}")
    return exponent


def quantity_of(name: str) -> Quantity:
    try:
        return Quantity(name.strip())
    except ValueError:
        raise ValueError(
            f"unknown quantity {name!r} (see greengauge/contract/quantities.py)"
        ) from None


def parse_time(text: str, zone: ZoneInfo | None) -> datetime:
    """An ISO 8601 time; without an offset, in `zone` (refused if None, or if the zone's
    clock change makes it ambiguous or skipped). In UTC, to the millisecond (the wire's)."""
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if ts.tzinfo is None:
        if zone is None:
            raise ValueError(
                f"{text!r} has no zone: give it an offset (+08:00, Z) or use --timezone"
            )
        early, late = ts.replace(tzinfo=zone, fold=0), ts.replace(tzinfo=zone, fold=1)
        if early.utcoffset() != late.utcoffset():
            raise ValueError(
                f"{text!r} is ambiguous or skipped in {zone.key} (clock change): give the offset"
            )
        ts = early
    try:
        utc: datetime = _TIME.validate_python(ts)
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False)[0]["msg"]) from None
    return utc


def parse_value(text: str, exponent: int) -> float:
    """A number, times 10**exponent, in decimal and made a float once: 1234567 Wh is
    1234.567 kWh and 12.3456 kW is 12345.6 W to the last bit, as written (the float
    12.3456 times 1000 is 12345.599999999999)."""
    cell = text.strip()
    if not NUMBER.fullmatch(cell):
        hint = " (the decimal point is '.')" if "," in cell else ""
        raise ValueError(f"{text!r} is not a number{hint}")
    try:
        # In the canonical unit already (most files): float() is the nearest float.
        value = float(cell) if exponent == 0 else float(Decimal(cell).scaleb(exponent))
    except ArithmeticError:
        # An exponent past Decimal's own (1e9999999, 0e10**18): zero or no float at all.
        value = float(cell) * 10.0**exponent
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is beyond a float")
    return value


def _meter(text: str) -> str:
    try:
        meter: str = _ID.validate_python(text.strip())
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise ValueError(message.removeprefix("Value error, ")) from None
    return meter


@dataclass(frozen=True, slots=True)
class Column:
    """A wide layout's value column."""

    name: str
    meter: str
    quantity: Quantity
    exponent: int


@dataclass(frozen=True, slots=True)
class Layout:
    """What a file's header says: where the time is and what every other column holds."""

    width: int
    time: int
    long: dict[str, int] | None = None
    """long layout: column of each of LONG_COLUMNS"""
    wide: tuple[tuple[int, Column], ...] = ()

    def values(
        self, cells: list[str], zone: ZoneInfo | None, window: Window, now: datetime
    ) -> list[tuple[str, datetime, Quantity, float]]:
        """The values of one row; RowError for its first wrong cell."""
        if len(cells) != self.width:
            raise RowError("columns", None, f"{len(cells)} columns, the header has {self.width}")
        if _NOT_UTF8.search("".join(cells)):
            raise RowError("encoding", None, "bytes that are not UTF-8 (see --encoding)")
        try:
            ts = parse_time(cells[self.time], zone)
            window.check(ts, now, "time")
        except ValueError as exc:  # Rejected is one
            raise RowError("time", "time", str(exc)) from None
        if self.long is not None:
            return [self._long(cells, ts)]
        out = []
        for index, column in self.wide:
            if cells[index].strip():
                out.append((column.meter, ts, column.quantity, self._value(cells[index], column)))
        return out

    def _long(self, cells: list[str], ts: datetime) -> tuple[str, datetime, Quantity, float]:
        assert self.long is not None
        at = self.long
        try:
            meter = _meter(cells[at["meter"]])
        except ValueError as exc:
            raise RowError("meter", "meter", str(exc)) from None
        try:
            quantity = quantity_of(cells[at["quantity"]])
        except ValueError as exc:
            raise RowError("quantity", "quantity", str(exc)) from None
        try:
            exponent = unit_exponent(quantity, cells[at["unit"]].strip())
        except ValueError as exc:
            raise RowError("unit", "unit", str(exc)) from None
        column = Column("value", meter, quantity, exponent)
        return meter, ts, quantity, self._value(cells[at["value"]], column)

    @staticmethod
    def _value(text: str, column: Column) -> float:
        try:
            value = parse_value(text, column.exponent)
            check_value(value, f"{column.meter} {column.quantity.value}")
        except ValueError as exc:
            raise RowError("value", column.name, str(exc)) from None
        return value


def layout(header: list[str]) -> Layout:
    """The layout a header names; HeaderError naming the first column that fits none."""
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]
    if _NOT_UTF8.search("".join(names)):
        raise HeaderError("bytes that are not UTF-8 (another encoding: see --encoding)")
    if "time" not in lowered:
        raise HeaderError(
            "no 'time' column: the header must be time,meter,quantity,value,unit "
            "or time,<meter>/<quantity>[<unit>],..."
        )
    if set(lowered) & set(LONG_COLUMNS) - {"time"}:
        missing = [c for c in LONG_COLUMNS if c not in lowered]
        extra = [n for n in names if n.lower() not in LONG_COLUMNS]
        if missing or extra or len(set(lowered)) != len(lowered):
            raise HeaderError(
                f"long layout: columns {', '.join(LONG_COLUMNS)} each once "
                f"(missing: {', '.join(missing) or '-'}; other: {', '.join(extra) or '-'})"
            )
        return Layout(
            len(names), lowered.index("time"), {c: lowered.index(c) for c in LONG_COLUMNS}
        )
    if lowered.count("time") != 1:
        raise HeaderError("more than one 'time' column")
    time = lowered.index("time")
    columns: list[tuple[int, Column]] = []
    seen: dict[tuple[str, Quantity], int] = {}
    for index, name in enumerate(names):
        if index == time:
            continue
        where = f"column {index + 1} {name!r}"
        match = WIDE_COLUMN.fullmatch(name)
        if match is None:
            raise HeaderError(f"{where}: not <meter>/<quantity>[<unit>], e.g. m1/power_active[kW]")
        try:
            meter = _meter(match["meter"])
            quantity = quantity_of(match["quantity"])
            exponent = unit_exponent(quantity, match["unit"].strip())
        except ValueError as exc:
            raise HeaderError(f"{where}: {exc}") from None
        if (meter, quantity) in seen:
            raise HeaderError(
                f"{where}: the same meter and quantity as column {seen[meter, quantity]}"
            )
        seen[meter, quantity] = index + 1
        columns.append((index, Column(name, meter, quantity, exponent)))
    if not columns:
        raise HeaderError("no value columns after 'time'")
    return Layout(len(names), time, wide=tuple(columns))


def read(
    text: Iterable[str], name: str, zone: ZoneInfo | None, window: Window, now: datetime
) -> Iterator[Row | Refusal]:
    """Every record of a CSV text as a Row or a Refusal, streamed (blank lines are not
    records). HeaderError if the first record is not a header of either layout.

    `text`: lines as from a file opened with newline="" (and errors="surrogateescape":
    bytes not of the encoding refuse their row)."""
    reader = csv.reader(text, strict=False)
    found: Layout | None = None
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num
            if found is None:
                raise HeaderError(f"{name}:{start}: {exc}") from None
            yield Refusal(name, start, "csv", f"row: {exc}")
            continue
        end = reader.line_num
        if not cells:
            continue
        if found is None:
            try:
                found = layout(cells)
            except HeaderError as exc:
                raise HeaderError(f"{name}:{start}: {exc}") from None
            continue
        try:
            yield Row(start, tuple(found.values(cells, zone, window, now)))
        except RowError as exc:
            yield Refusal(name, start, exc.kind, str(exc))


@dataclass(slots=True)
class Chunk:
    """Accepted rows waiting to be stored: values by (meter, time), with their lines."""

    values: dict[tuple[str, datetime], dict[Quantity, tuple[float, int]]] = field(
        default_factory=dict
    )
    lines: list[int] = field(default_factory=list)
    count: int = 0

    def add(self, row: Row, name: str) -> Refusal | None:
        """Take a row; a Refusal (and nothing of the row) if it gives another value for a
        meter, quantity and time an earlier row of the chunk gave. The same value again is
        taken: it is stored once."""
        for meter, ts, quantity, value in row.values:
            earlier = self.values.get((meter, ts), {}).get(quantity)
            if earlier is not None and earlier[0] != value:
                return Refusal(
                    name,
                    row.line,
                    "conflict",
                    f"row: {meter} {quantity.value} at {ts.isoformat()} is {value:g}, "
                    f"line {earlier[1]} said {earlier[0]:g}",
                )
        for meter, ts, quantity, value in row.values:
            self.values.setdefault((meter, ts), {})[quantity] = (value, row.line)
        self.lines.append(row.line)
        self.count += len(row.values)
        return None

    def batches(self, site: str, agent: str, seq: int, size: int) -> list[ReadingBatch]:
        """The chunk as reading batches of at most `size` readings, in time order;
        sequence numbers from `seq` on."""
        readings = [
            MeterReading(meter=meter, ts=ts, values={q: v for q, (v, _) in values.items()})
            for (meter, ts), values in sorted(self.values.items(), key=lambda x: (x[0][1], x[0][0]))
        ]
        return [
            ReadingBatch(site=site, agent=agent, seq=seq + n, readings=readings[i : i + size])
            for n, i in enumerate(range(0, len(readings), size))
        ]


@dataclass(slots=True)
class Summary:
    rows: int = 0
    accepted: int = 0
    readings: int = 0
    values: int = 0
    stored: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    first: list[Refusal] = field(default_factory=list)
    shown: int = 20
    notes: list[str] = field(default_factory=list)

    def refuse(self, refusal: Refusal) -> None:
        self.refused[refusal.kind] += 1
        if len(self.first) < self.shown:
            self.first.append(refusal)

    def render(self) -> str:
        refused = sum(self.refused.values())
        counts = [
            (_("rows read"), f"{self.rows}"),
            (_("rows accepted"), f"{self.accepted}"),
            (_("readings"), f"{self.readings}"),
            (
                _("values"),
                _(
                    "{values}  (stored: {stored}; the same meter, quantity and time stored "
                    "again is kept once)"
                ).format(values=self.values, stored=self.stored),
            ),
            (_("rows refused"), f"{refused}"),
        ]
        pad = max(17, *(width(label) + 2 for label, _count in counts))
        lines = [ljust(label, pad) + count for label, count in counts]
        lines += [f"  {kind:<14} {n}" for kind, n in sorted(self.refused.items())]
        if self.first:
            more = refused - len(self.first)
            lines.append(_("first refusals:") if more else _("refusals:"))
            lines += [f"  {r}" for r in self.first]
            if more:
                lines.append(_("  ... and {more} more").format(more=more))
        lines += self.notes
        return "\n".join(lines)


# --- the I/O part: files in, store and accounting out ----------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    files: list[Path]
    site: str
    agent: str
    zone: ZoneInfo | None
    encoding: str = "utf-8-sig"
    """of the files (utf-8-sig: UTF-8, with or without a byte order mark)"""
    refusals: Path | None = None
    """every refusal, one a line (the summary shows the first `shown`)"""
    shown: int = 20
    chunk_values: int = 20_000
    """values stored (and accounted) per write: bounds the memory an import takes"""
    batch_readings: int = 1000


class Aborted(Exception):
    """The store or the accounting database failed: stop, say how far the import got."""


class _Import:
    def __init__(
        self,
        options: Options,
        store: Store,
        accounting: Accounting | None,
        refusals: TextIO | None,
        progress: TextIO,
    ) -> None:
        self.options = options
        self.store = store
        self.accounting = accounting
        self.summary = Summary(shown=options.shown)
        self.chunk = Chunk()
        self.seq = 0
        self._refusals = refusals
        self._progress = progress
        self._started = self._shown = time.monotonic()

    def refuse(self, refusal: Refusal) -> None:
        self.summary.refuse(refusal)
        if self._refusals is not None:
            self._refusals.write(f"{refusal}\n")

    async def file(self, path: Path, window: Window, now: datetime) -> None:
        name = str(path)
        encoding = self.options.encoding
        with path.open(newline="", encoding=encoding, errors="surrogateescape") as text:
            for item in read(text, name, self.options.zone, window, now):
                self.summary.rows += 1
                refused = item if isinstance(item, Refusal) else self.chunk.add(item, name)
                if refused is not None:
                    self.refuse(refused)
                elif max(self.chunk.count, len(self.chunk.lines)) >= self.options.chunk_values:
                    await self.store_chunk(name)
                self._show_progress(name)
        await self.store_chunk(name)

    async def store_chunk(self, name: str) -> None:
        chunk, self.chunk = self.chunk, Chunk()
        if not chunk.lines:
            return
        batches = chunk.batches(
            self.options.site, self.options.agent, self.seq, self.options.batch_readings
        )
        self.seq += len(batches)
        try:
            written = await asyncio.to_thread(self.store.write, [Batch.of(b) for b in batches])
        except StoreRejected as exc:
            for line in chunk.lines:
                self.refuse(Refusal(name, line, "store", f"row: {exc.reason}"))
            return
        except StoreError as exc:
            raise Aborted(
                f"the store failed ({exc}): {name} from line {chunk.lines[0]} on is not imported"
            ) from exc
        summary = self.summary
        summary.stored += written
        summary.accepted += len(chunk.lines)
        summary.readings += sum(len(b.readings) for b in batches)
        summary.values += chunk.count
        if self.accounting is not None:
            for batch in batches:
                self.accounting.feed(batch)
            try:
                await self.accounting.step()
            except sqlite3.Error as exc:
                raise Aborted(
                    f"the accounting database failed ({exc}): {name} up to line "
                    f"{chunk.lines[-1]} is stored, from line {chunk.lines[0]} on not accounted"
                ) from exc

    def _show_progress(self, name: str) -> None:
        now = time.monotonic()
        if now - self._shown < 1.0:
            return
        self._shown = now
        s = self.summary
        rate = s.rows / max(now - self._started, 1e-9)
        self._progress.write(
            f"import: {name}: {s.rows} rows ({rate:.0f}/s), {s.accepted} stored, "
            f"{sum(s.refused.values())} refused\n"
        )
        self._progress.flush()


async def run(config: CollectorConfig, options: Options, out: TextIO, progress: TextIO) -> int:
    """Import the files; 0 if every row was accepted, 1 if some were refused, 2 if the
    store or the accounting database failed (what was imported before stays)."""
    store = open_store(config)
    ingest = config.ingest
    retention = await asyncio.to_thread(store_retention, store)
    window = accepted_window(ingest.max_age_days, ingest.max_future_seconds, retention)
    accounting = None
    plant = config.accounting
    notes = []
    if plant is not None and plant.site(options.site) is not None and isinstance(store, PointStore):
        accounting = Accounting(plant, config.data_dir, store)
    else:
        notes.append(f"accounting: site {options.site!r} is not in the plant model: not accounted")
    refusals = options.refusals.open("w", encoding="utf-8") if options.refusals else None
    job = _Import(options, store, accounting, refusals, progress)
    code = 0
    try:
        for path in options.files:
            await job.file(path, window, datetime.now(UTC))
    except Aborted as exc:
        notes.append(f"stopped: {exc}; importing again stores nothing twice")
        print(f"energy-collector: {notes[-1]}", file=progress)
        code = 2
    finally:
        if accounting is not None:
            accounting.close()
        store.close()
        if refusals is not None:
            refusals.close()
    job.summary.notes += notes
    if accounting is not None:
        job.summary.notes.append(
            f"accounting: fed {accounting.readings_used} readings of its meters"
        )
    print(job.summary.render(), file=out)
    return code or (1 if job.summary.refused else 0)
