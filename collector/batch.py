"""A valid reading batch as the collector's live path uses it: columns, not models.

A collector receives hundreds of thousands of values a second, and what its hot path
needs of each reading is its meter, its time and its line protocol: building a pydantic
model per reading (a dict of values, a datetime) was 17 % of the collector's Python CPU,
and the per-reading work of the consumers after it as much again.
So a `Batch` keeps the readings as columns (meters, epoch milliseconds, line-protocol
fields) and each reading's values as decoded and checked (`Values`, a msgspec struct),
and builds the contract's models (`readings`, `model()`) only when something needs them:
the live stream, the table's rows when shown. The accounting and the stores read the
columns (`value_of`, `named_values`).

The strict path (pydantic, `collector.validate`) makes a Batch of its model (`Batch.of`):
the same columns, the models already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Annotated, Final, TypeVar

import msgspec

from greengauge.contract import MeterReading, Quantity, ReadingBatch

MAX_VALUE: Final = 1e18
"""As collector.validate.MAX_VALUE (which takes it from here)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_Value = Annotated[float, msgspec.Meta(ge=-MAX_VALUE, le=MAX_VALUE)]

# One optional field per canonical quantity: what a reading's `values` object may hold,
# checked in C (names, numbers, range) without building a dict per reading.
Values: Final = msgspec.defstruct(
    "Values",
    [(q.value, _Value | msgspec.UnsetType, msgspec.UNSET) for q in Quantity],
    forbid_unknown_fields=True,
    gc=False,
)
_NAMES: Final = tuple(Quantity)
_FIELD_NAMES: Final = tuple(q.value for q in Quantity)
FIELD_COUNT: Final = len(_NAMES)
_UNSET: Final = msgspec.UNSET
_as_tuple: Final = msgspec.structs.astuple

_K = TypeVar("_K")
Kept = MeterReading | msgspec.Struct
"""One reading's values as a batch keeps them: its model (strict path) or its `Values`."""


def unset_counts(kept: list[msgspec.Struct]) -> list[int]:
    """How many of the FIELD_COUNT quantities each `Values` does not hold."""
    return list(map(tuple.count, map(_as_tuple, kept), repeat(_UNSET)))


def epoch_millis(ts: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float rounding)."""
    return (ts - _EPOCH) // _MILLISECOND


def from_millis(ms: int) -> datetime:
    """The reading time of epoch milliseconds, as the contract's model holds it (UTC)."""
    return _EPOCH + timedelta(milliseconds=ms)


def _present(keys: tuple[_K, ...], values: msgspec.Struct) -> list[tuple[_K, float]]:
    return [(k, v) for k, v in zip(keys, _as_tuple(values), strict=True) if v is not _UNSET]


def named_values(kept: Kept) -> list[tuple[str, float]]:
    """A reading's values by name, canonical and user-named (as stores key them)."""
    if isinstance(kept, MeterReading):
        return list(kept.items())
    return _present(_FIELD_NAMES, kept)


def value_of(kept: Kept, quantity: Quantity) -> float | None:
    """A reading's value of a canonical quantity, None when it holds none."""
    if isinstance(kept, MeterReading):
        return kept.values.get(quantity)
    value: float | msgspec.UnsetType = getattr(kept, quantity.value)
    return None if value is _UNSET else value


def reading(meter: str, ms: int, kept: Kept) -> MeterReading:
    """The contract's model of one reading a batch kept."""
    if isinstance(kept, MeterReading):
        return kept
    return MeterReading.model_construct(
        _fields_set={"meter", "ts", "values"},
        meter=meter,
        ts=from_millis(ms),
        values=dict(_present(_NAMES, kept)),
        custom={},
    )


class Batch:
    """A valid reading batch: its ids and sequence, and its readings as columns."""

    __slots__ = ("_model", "agent", "fields", "kept", "meters", "seq", "site", "size", "stamps")

    def __init__(
        self,
        site: str,
        agent: str,
        seq: int,
        meters: list[str],
        stamps: list[int],
        kept: Sequence[Kept],
        size: int,
        fields: list[bytes] | None,
        model: ReadingBatch | None = None,
    ) -> None:
        self.site = site
        self.agent = agent
        self.seq = seq
        self.meters = meters
        """per reading: its meter"""
        self.stamps = stamps
        """per reading: its time in epoch milliseconds"""
        self.kept = kept
        """per reading: its values (see `reading`)"""
        self.size = size
        """values in all readings"""
        self.fields = fields
        """per reading: its line-protocol fields as the agent wrote them (`name=digits,...`);
        None: made from the models' floats (collector.stores.lineprotocol)"""
        self._model = model

    @classmethod
    def of(cls, model: ReadingBatch) -> Batch:
        readings = model.readings
        return cls(
            model.site,
            model.agent,
            model.seq,
            [r.meter for r in readings],
            [epoch_millis(r.ts) for r in readings],
            readings,
            sum(r.size for r in readings),
            None,
            model,
        )

    def model(self) -> ReadingBatch:
        """The contract's model of the batch (built once, when first asked for)."""
        if self._model is None:
            readings = [
                reading(meter, ms, kept)
                for meter, ms, kept in zip(self.meters, self.stamps, self.kept, strict=True)
            ]
            self._model = ReadingBatch.model_construct(
                site=self.site, agent=self.agent, seq=self.seq, readings=readings
            )
        return self._model

    @property
    def readings(self) -> list[MeterReading]:
        return self.model().readings

    def __len__(self) -> int:
        return len(self.meters)

    def __repr__(self) -> str:
        return (
            f"Batch(site={self.site!r}, agent={self.agent!r}, seq={self.seq}, "
            f"readings={len(self)}, values={self.size})"
        )


Readings = Batch | ReadingBatch
"""What the accounting takes: the live path's batches, and the importer's models."""


def columns(batch: Readings) -> Batch:
    """The batch as columns (a model's made from it)."""
    return batch if isinstance(batch, Batch) else Batch.of(batch)
