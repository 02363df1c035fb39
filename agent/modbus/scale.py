"""Raw register values to canonical values, with no more digits than the meter gave. Pure.

`raw * scale + offset` in binary floating point invents digits: 2301 * 0.1 is
230.10000000000002, and a float32 of 230.1 reads 230.10000610351562 as a double. The
meter said 230.1. A value is therefore rounded to the decimals of its raw reading (for
a float32, the shortest decimal that gives back the same float32) plus those the scale
and offset add, which is exactly what decimal arithmetic on the meter's figures gives.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Final

from agent.modbus.decode import DataType

_FLOAT32: Final = struct.Struct("<f")


def decimals(number: float) -> int:
    """Digits after the decimal point in the shortest form of `number` (negative for 1e3)."""
    exponent = Decimal(repr(number)).normalize().as_tuple().exponent
    assert isinstance(exponent, int), number  # finite numbers only
    return -exponent


def shortest_float32(raw: float) -> tuple[float, int]:
    """The shortest decimal that is the same float32 as `raw`, and its decimals."""
    for digits in range(6, 10):
        text = f"{raw:.{digits}g}"
        candidate = float(text)
        if _FLOAT32.unpack(_FLOAT32.pack(candidate))[0] == raw:
            return candidate, decimals(candidate)
    return raw, decimals(raw)


class Scaler:
    """Turns one register's raw values into canonical values."""

    __slots__ = ("_added", "_float32", "_offset", "_offset_decimals", "_scale")

    def __init__(self, dtype: DataType, scale: float, offset: float) -> None:
        self._scale = scale
        self._offset = offset
        self._float32 = dtype is DataType.FLOAT32
        # Decimals that scale and offset add; integer raw values have none of their own.
        self._added = decimals(scale) if scale != 0 else 0
        self._offset_decimals = decimals(offset) if offset != 0 else -400

    def __call__(self, raw: float) -> float:
        if not math.isfinite(raw):
            return raw
        if isinstance(raw, int):
            raw_decimals = 0
        elif self._float32:
            raw, raw_decimals = shortest_float32(raw)
        else:
            raw_decimals = decimals(raw)
        places = max(raw_decimals + self._added, self._offset_decimals)
        return float(round(raw * self._scale + self._offset, places))
