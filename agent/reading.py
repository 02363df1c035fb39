"""A read's values on their way to the wire, written as the contract writes a reading.

A poller's read becomes a `Read`: the meter, the time and the decoded values, nothing
validated again. Its JSON (`Read.json`) is byte for byte what the contract's
MeterReading writes for the same values (tests/test_reading_json.py), without building
that model: validating and writing a model of 45 values cost the agent ~40 µs a read,
about a sixth of its CPU at 100 meters, to check what the agent made itself from a
validated profile (canonical or checked user-named quantities, finite values, a UTC
time). Tools that show a read (`energy-agent test`, commissioning) take `Read.model()`,
the contract's model, checked.

Every fragment of the JSON that is not a value (keys, a user-named value's unit and kind,
the meter id, the time) is written by the contract's own serializer, once. A value is
its repr() text, the same shortest text the contract writes for every number without
an exponent: for a block of float32 registers made with its shortest decimal (finding
the shortest float32 is formatting it), which a Read makes from the block as it was
read (a Float32Run) when its values are first needed, i.e. when its batch is written;
else here. A number with an exponent is written by the contract's serializer; a read
with a value that is not a finite float, or anything else a poller does not make, goes
through the contract's model, which writes or refuses it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Final

from pydantic_core import to_json

from agent.modbus.codec.scale import Float32Run
from greengauge.contract import (
    MAX_CUSTOM,
    CustomValue,
    Kind,
    MeterReading,
    Quantity,
    QuantityName,
    check_custom_name,
)
from greengauge.contract.fields import check_id, utc_millis

_KEYS: Final[dict[QuantityName, str]] = {q: to_json(q.value).decode() + ":" for q in Quantity}
"""`"voltage_l1":`, for every canonical quantity."""

CustomUnits = Mapping[str, tuple[str, Kind]]
"""Unit and kind of each user-named quantity a profile maps (Profile.custom_units)."""


class Custom:
    """A profile's user-named quantities: their units and kinds, and the fragments of
    their values' JSON."""

    __slots__ = ("_parts", "units")

    def __init__(self, units: tuple[tuple[str, tuple[str, Kind]], ...]) -> None:
        self.units: dict[str, tuple[str, Kind]] = dict(units)
        self._parts: dict[str, tuple[str, str]] = {}
        for name, (unit, kind) in units:
            check_custom_name(name)
            # The contract writes the whole object; the value is cut out of it.
            text = CustomValue(value=0.0, unit=unit, kind=kind).model_dump_json()
            start = text.index("0.0")
            head = to_json(name).decode() + ":" + text[:start]
            self._parts[name] = (head, text[start + 3 :])

    def json(self, names: list[str], numbers: list[str]) -> str:
        return ",".join(
            head + number + tail
            for name, number in zip(names, numbers, strict=True)
            for head, tail in (self._parts[name],)
        )


def custom_of(units: CustomUnits) -> Custom:
    """The user-named quantities of a profile (Profile.custom_units)."""
    return _custom(tuple(sorted(units.items())))


@lru_cache(maxsize=64)
def _custom(units: tuple[tuple[str, tuple[str, Kind]], ...]) -> Custom:
    # One per set of user-named quantities (a handful), not one per meter.
    return Custom(units)


NO_CUSTOM: Final = custom_of({})


def numbers(
    values: Mapping[QuantityName, float], texts: list[str] | None = None
) -> list[str] | None:
    """Each value's text as the contract writes it, from the repr() texts the decoding
    made (`texts`: joined by commas a block, ReadBlock.decode) when they are every
    value's, else made here; None when a value is not a finite float (the contract's
    model decides about such a reading)."""
    made = ",".join(texts).split(",") if texts else []
    if len(made) != len(values):
        try:
            made = list(map(float.__repr__, values.values()))
        except TypeError:
            return None
    if "e" in (joined := ",".join(made)) or "n" in joined:
        # Rare: exponents (the contract writes 1e-05 as 0.00001), inf and nan.
        for index, text in enumerate(made):
            if "n" in text:
                return None
            if "e" in text:
                made[index] = to_json(float(text)).decode()
    return made


class Gathering:
    """A read's values as its blocks come, in block order: decoded blocks into a dict,
    blocks of float32 values taken as they come kept as read (Float32Run).

    The dict holds a run's raw values (placeholders the Read replaces with the decimals)
    only when a decoded block comes after it: what keeps the blocks' order. A read of runs
    alone (every SDM630-like read) makes no dict here: at 500 meters the tick's reads held
    ~1.1 MiB of dicts that only repeated their runs (tracemalloc); the peak RSS went down
    0.2-0.4 MiB (bench/README.md).
    """

    __slots__ = ("_placed", "runs", "values")

    def __init__(self, runs: bool) -> None:
        """`runs`: whether float32 blocks may be kept as runs (not where power factors'
        signs are changed from the decoded values)."""
        self.values: dict[QuantityName, float] = {}
        self.runs: list[Float32Run] | None = [] if runs else None
        self._placed = 0

    def __bool__(self) -> bool:
        return bool(self.values or self.runs)

    def run(self, run: Float32Run) -> None:
        assert self.runs is not None
        self.runs.append(run)

    def decoded(self, decoded: Mapping[QuantityName, float]) -> None:
        if decoded:
            self._place()
            self.values.update(decoded)

    def read(self, meter: str, ts: datetime, custom: Custom) -> Read:
        # Runs after the last decoded block need no placeholders: the Read adds their
        # values after the dict's.
        return Read(meter, ts, self.values, custom, self.runs)

    def _place(self) -> None:
        runs = self.runs
        if runs is not None and self._placed < len(runs):
            for run in runs[self._placed :]:
                self.values.update(zip(run.quantities, run.raws, strict=True))
            self._placed = len(runs)


class Read:
    """One read of one meter: what a poller hands on."""

    __slots__ = ("_runs", "_values", "custom", "meter", "texts", "ts")

    def __init__(
        self,
        meter: str,
        ts: datetime,
        values: dict[QuantityName, float],
        custom: Custom = NO_CUSTOM,
        runs: list[Float32Run] | None = None,
    ) -> None:
        self.meter = meter
        self.ts = ts
        self._values = values
        self.custom = custom
        """The user-named quantities `values` may hold (custom_of(Profile.custom_units))."""
        self._runs = runs or None
        self.texts: list[str] | None = [] if runs else None
        """repr() of the values in order, joined by commas a block, as the runs made them;
        used when they are every value's."""

    @property
    def values(self) -> dict[QuantityName, float]:
        """Canonical and user-named values together, in the order read."""
        runs = self._runs
        if runs is not None:
            # Made here, once: a run's values are not in the dict yet, or are its raw
            # float32s where a decoded block followed it (Gathering); either way in order.
            self._runs = None
            texts = self.texts
            assert texts is not None
            for run in runs:
                made, text = run.made()
                self._values.update(zip(run.quantities, made, strict=True))
                texts.append(text)
        return self._values

    def model(self) -> MeterReading:
        """The contract's reading of these values, validated."""
        return MeterReading.of(self.meter, self.ts, self.values, self.custom.units)

    def json(self) -> bytes:
        """The reading as the contract writes it (MeterReading's JSON); refused as the
        contract refuses it (ValueError, or pydantic's ValidationError)."""
        values = self.values
        texts = numbers(values, self.texts)
        keys = list(map(_KEYS.get, values))
        named = (
            [] if None not in keys else [n for n, k in zip(values, keys, strict=True) if k is None]
        )
        if (
            texts is None
            or self.ts.tzinfo is None
            or not _is_id(self.meter)
            or len(named) > MAX_CUSTOM
            or not self.custom.units.keys() >= set(named)
        ):
            # Not what a poller makes: the contract's model says what is wrong, or writes it.
            model = self.model()
            if not model.size:
                raise self._empty()
            return model.model_dump_json().encode()
        if not values:
            raise self._empty()
        parts = [
            '{"meter":',
            to_json(self.meter).decode(),
            ',"ts":"',
            utc_millis(self.ts),
            '","values":{',
        ]
        if not named:
            parts.append(",".join(map(operator.add, keys, texts)))
        else:
            parts += [
                ",".join([k + t for k, t in zip(keys, texts, strict=True) if k is not None]),
                '},"custom":{',
                self.custom.json(named, [t for k, t in zip(keys, texts, strict=True) if k is None]),
            ]
        parts.append("}}")
        return "".join(parts).encode()

    def _empty(self) -> ValueError:
        return ValueError(f"a reading of meter {self.meter} has no value (values or custom)")


def _is_id(text: str) -> bool:
    """Whether the contract takes `text` as an id (a meter's)."""
    try:
        check_id(text)
    except ValueError:
        return False
    return True
