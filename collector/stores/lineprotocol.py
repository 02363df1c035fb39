"""Reading batches as InfluxDB line protocol, the body of a v2 write with precision=ms.

One line per meter reading:

    reading,agent=<agent>,meter=<meter>,site=<site> <quantity>=<value>,... <epoch ms>

Tags are in key order (the order InfluxDB would sort them into anyway, which saves it
the work). Field keys are the quantity names, canonical then user-named (`x_...`, see
`greengauge.contract.check_custom_name`: the same snake_case characters, so they need no
escaping either, and their prefix keeps them apart from canonical fields; their units
are not in the line: the API shows them from the readings). Every value is a float
written with `repr`, so it parses back to the identical double and never carries the
`i` suffix that would make it an integer field and conflict with earlier points. A
batch the fast path decoded (collector.fastpath) brings each reading's fields as the
agent wrote them: JSON numbers, which are valid line-protocol floats, never integers.

Built with plain string operations: a collector turns hundreds of thousands of values
a second into lines, and per-point objects would cost more than the HTTP write.

Escaping follows the line-protocol spec for tag values: backslash, comma, equals sign
and space are escaped with a backslash (ids cannot hold whitespace or control characters,
see `greengauge.contract.check_id`, so newlines never need escaping). VictoriaMetrics and the
spec read a doubled backslash back as one; InfluxDB 1.x/2.x (TSM) keep it doubled, and
cannot represent a tag value that ends in a backslash at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from collector.batch import Batch
from greengauge.contract import MeterReading, Quantity

MEASUREMENT: Final = "reading"

_TAG_ESCAPES: Final = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})
_NEEDS_ESCAPE: Final = frozenset("\\,= ")

# Quantity names are snake_case ASCII, so their field keys need no escaping; keeping
# "name=" ready saves a format call per value.
_FIELD_KEYS: Final[dict[Quantity, str]] = {q: f"{q.value}=" for q in Quantity}
_float_repr: Final = float.__repr__


def escape_tag(value: str) -> str:
    """Escape a tag key or value for line protocol."""
    # Most ids need nothing; checking first is cheaper than always translating.
    if _NEEDS_ESCAPE.isdisjoint(value):
        return value
    return value.translate(_TAG_ESCAPES)


def _fields(reading: MeterReading) -> str:
    values = reading.values
    canonical = ",".join(
        map(str.__add__, map(_FIELD_KEYS.__getitem__, values), map(_float_repr, values.values()))
    )
    if not reading.custom:
        return canonical
    custom = ",".join(f"{name}={_float_repr(c.value)}" for name, c in reading.custom.items())
    return f"{canonical},{custom}" if canonical else custom


def batch_lines(batches: Sequence[Batch]) -> bytes:
    """The line-protocol body (UTF-8, newline separated) for every reading of the batches."""
    lines: list[bytes] = []
    append = lines.append
    for batch in batches:
        head = f"{MEASUREMENT},agent={escape_tag(batch.agent)},meter=".encode()
        tail = f",site={escape_tag(batch.site)} ".encode()
        fields = batch.fields
        if fields is None:  # made from the models' floats
            fields = [_fields(r).encode() for r in batch.readings]
        for meter, text, ms in zip(batch.meters, fields, batch.stamps, strict=True):
            append(b"%s%s%s%s %d" % (head, escape_tag(meter).encode(), tail, text, ms))
    return b"\n".join(lines)


def value_count(batches: Sequence[Batch]) -> int:
    """How many values (fields) the batches hold: what a store reports as written."""
    return sum(batch.size for batch in batches)


# --- derived measurements (energy accounting) -------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a derived measurement (energy_interval, intensity): tags and float fields.

    Field names are snake_case ASCII chosen by the collector, so they need no escaping.
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, float], ...]
    ts_ms: int

    @property
    def series(self) -> str:
        """The tags as `k=v,k=v` in key order: the series key within the measurement."""
        return ",".join(f"{k}={escape_tag(v)}" for k, v in sorted(self.tags))


def point_lines(points: Sequence[Point]) -> bytes:
    """Line protocol for derived points; points without a finite field are left out."""
    lines: list[str] = []
    for p in points:
        fields = ",".join(f"{k}={_float_repr(v)}" for k, v in p.fields if math.isfinite(v))
        if not fields:
            continue
        head = escape_tag(p.measurement)
        series = p.series
        lines.append(
            f"{head},{series} {fields} {p.ts_ms}" if series else f"{head} {fields} {p.ts_ms}"
        )
    return "\n".join(lines).encode()
