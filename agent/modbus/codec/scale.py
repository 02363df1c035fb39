"""Raw register values to canonical values, with no more digits than the meter gave. Pure.

`raw * scale + offset` in binary floating point invents digits: 2301 * 0.1 is
230.10000000000002, and a float32 of 230.1 reads 230.10000610351562 as a double. The
meter said 230.1. A value is therefore rounded to the decimals of its raw reading (for
a float32, the shortest decimal that gives back the same float32) plus those the scale
and offset add, which is exactly what decimal arithmetic on the meter's figures gives.

Some meters need more than a scale: a named `Transform` of the raw value (Schneider's
four-quadrant power factor), and a power-of-ten exponent read from the device (SunSpec
scale factors: value = raw * 10^sf), passed to each call.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import MutableMapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar, overload

from agent.modbus.codec.decode import DataType
from greengauge.contract import Quantity, QuantityName

_FLOAT32: Final = struct.Struct("<f")
_Number = TypeVar("_Number", float, Decimal)


def decimals(number: float) -> int:
    """Digits after the decimal point in the shortest form of `number` (negative for 1e3).

    Read off repr(), the shortest round-tripping form, without Decimal: this runs for
    every value a meter gives.
    """
    mantissa, _, exponent = repr(number).partition("e")
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    fraction = fraction.rstrip("0")
    if fraction:
        places = len(fraction)
    else:
        digits = whole.lstrip("0")
        places = len(digits.rstrip("0")) - len(digits)
    return places - int(exponent or 0)


def shortest_float32(raw: float) -> float:
    """The shortest decimal that is the same float32 as `raw`."""
    return shortest_float32_text(raw)[0]


_pack32: Final = _FLOAT32.pack


_MIN_NORMAL: Final = 2.0**-126
"""The smallest normal float32; below it, subnormals, a fixed 2**-149 apart."""
_POWERS_OF_TWO: Final = frozenset(
    sign * 2.0**exponent for exponent in range(-126, 128) for sign in (1.0, -1.0)
)


def shortest_float32_text(raw: float) -> tuple[float, str]:
    """shortest_float32(raw), and its text as repr() writes it (made once here: writing
    a float as text costs as much as finding the shortest one). `raw` is finite.

    A normal float32 lies in the middle of the decimals that give it back, and those of
    fewer than 6 digits are also its 6-digit rounding ("%g" drops trailing zeros), so the
    rounding to the fewest digits that gives it back is the shortest: 8 digits for most
    measured values and 7 for most of the rest; trying 7 first finds the answer in two
    formats nearly always. (printf-style formatting: 8 % less CPU than format() or an
    f-string, same text.) Powers of two and subnormals are searched instead.
    """
    bits = _pack32(raw)
    if -_MIN_NORMAL < raw < _MIN_NORMAL or raw in _POWERS_OF_TWO:
        return _searched(raw, bits)
    text = "%.7g" % raw  # noqa: UP031
    value = float(text)
    if _pack32(value) == bits:
        shorter_text = "%.6g" % raw  # noqa: UP031
        shorter = float(shorter_text)
        if _pack32(shorter) == bits:
            value, text = shorter, shorter_text
    else:
        text = "%.8g" % raw  # noqa: UP031
        value = float(text)
        if _pack32(value) != bits:
            # Nine significant digits always give the float32 back.
            text = "%.9g" % raw  # noqa: UP031
            value = float(text)
    # "%g" and repr() differ only in the exponent's range and in repr's ".0".
    if "e" in text:
        return value, repr(value)
    return value, text if "." in text else text + ".0"


def _searched(raw: float, bits: bytes) -> tuple[float, str]:
    """The shortest decimal of a float32 that is not in the middle of the decimals that
    give it back, tried from one digit up: a power of two is twice as far from the
    float32 above as from the one below, so the nearest decimal of a length can miss
    while the next one up gives it back (1.2621775e-29, not 1.26217745e-29); a subnormal
    needs fewer digits than 6 (1e-45). Exact (Decimal), and slow: the 508 powers of two
    and the subnormals come here, hardly ever a meter's values.
    """
    if raw == 0:
        return raw, repr(raw)
    exact = Decimal(raw)
    for digits in range(1, 10):
        step = Decimal(1).scaleb(exact.adjusted() - digits + 1)
        around = (exact.quantize(step, ROUND_FLOOR), exact.quantize(step, ROUND_CEILING))
        found = [candidate for candidate in around if _pack32(float(candidate)) == bits]
        if found:
            # The nearer; halfway between two (2**-12 is 0.000244140625), the even one,
            # as "%g" rounds.
            value = float(min(found, key=lambda c: (abs(c - exact), c.as_tuple().digits[-1] % 2)))
            return value, repr(value)
    raise AssertionError(f"{raw!r}: nine significant digits always give a float32 back")


class Float32Run:
    """A read block's float32 values as they came (all finite, taken as they are), their
    shortest decimals not made yet.

    Making them is most of a read's decoding (`shortest_float32_text`, 45 a read of an
    SDM630), and made between the requests of a tick's reads it cost 2.2 times what it
    costs when a tick's reads are made one after another (in the agent at 100 meters:
    137 µs a read against 63 in a loop: the CPU's caches hold other code in between). A
    Read keeps the run and makes them when its JSON is written, with its batch.
    """

    __slots__ = ("quantities", "raws")

    def __init__(self, quantities: tuple[QuantityName, ...], raws: tuple[float, ...]) -> None:
        self.quantities = quantities
        self.raws = raws

    def made(self) -> tuple[list[float], str]:
        """The shortest decimals, and their repr() texts joined by commas."""
        found = list(map(shortest_float32_text, self.raws))
        return list(map(_value, found)), ",".join(map(_text, found))


_value: Final = operator.itemgetter(0)
_text: Final = operator.itemgetter(1)


class Transform(StrEnum):
    """A named conversion of a raw value that a scale cannot express."""

    SCHNEIDER_4Q_PF = "schneider_4q_pf"
    """Schneider "4Q FP PF": one float for power factor and quadrant. Q1 0<x<1, Q2 -2<x<-1,
    Q3 -1<x<0, Q4 1<x<2; PF = 2-x if x>1, -2-x if x<-1, else x. The result's sign is the
    active power's direction (+ import in Q1 and Q4, - export in Q2 and Q3)."""


def schneider_4q_pf(x: _Number) -> _Number:
    """The signed power factor of a Schneider 4Q FP PF register value (a float, or a
    Decimal where the scaling is done in Decimal)."""
    if x > 1:
        return 2 - x
    if x < -1:
        return -2 - x
    return x


def schneider_4q_pf_register(power_factor: float, reactive: float) -> float:
    """The inverse: the register value for a signed power factor (sign = active power
    direction) in the quadrant the reactive power's sign gives."""
    if power_factor >= 0 and reactive < 0:  # Q4: import, capacitive
        return 2 - power_factor
    if power_factor < 0 and reactive > 0:  # Q2: export, inductive
        return -2 - power_factor
    return power_factor  # Q1 and Q3 (and the axes)


class PowerFactorSign(StrEnum):
    """What the sign of a meter's power factor says. Canonical is ACTIVE_POWER."""

    ACTIVE_POWER = "active_power"
    """PF = P / S: + import, - export (Eastron's "direction of the current", Schneider's
    4Q PF once decoded, and the canonical power_factor)."""
    REACTIVE_POWER = "reactive_power"
    """+ inductive, - capacitive: the reactive power's sign (CHINT DTSU666). The agent keeps
    the magnitude and takes the sign of the active power read with it."""


def power_factor_of(power_factor: Quantity) -> Quantity:
    """The active power whose sign a power factor takes: power_factor_l2 -> power_active_l2."""
    return Quantity(power_factor.value.replace("power_factor", "power_active"))


POWER_FACTORS: Final = frozenset(q for q in Quantity if q.value.startswith("power_factor"))


def canonical_power_factors(values: MutableMapping[Any, float], sign: PowerFactorSign) -> None:
    """Turn a reading's power factors into the canonical sign, in place. A power factor
    whose active power is not in the reading cannot be signed, so it is dropped.

    The keys are canonical quantities or user-named ones (plain str): a Quantity is a
    StrEnum, so either kind of key finds the same value."""
    if sign is PowerFactorSign.ACTIVE_POWER:
        return
    for quantity in POWER_FACTORS & values.keys():
        active = values.get(power_factor_of(quantity))
        if active is None or not math.isfinite(active):
            del values[quantity]
        else:
            values[quantity] = math.copysign(abs(values[quantity]), -1.0 if active < 0 else 1.0)


class _Transformer(Protocol):
    @overload
    def __call__(self, x: float) -> float: ...
    @overload
    def __call__(self, x: Decimal) -> Decimal: ...


_TRANSFORMS: Final[dict[Transform, _Transformer]] = {
    Transform.SCHNEIDER_4Q_PF: schneider_4q_pf,
}
_EXACT_DIGITS: Final = 15
"""Significant digits a double's arithmetic, rounded to the decimals the figures have,
always gives exactly; a value with more is worked out in Decimal."""
_EXACT_BELOW: Final = {places: 10.0 ** (_EXACT_DIGITS - places) for places in range(-30, 100)}
"""By a value's decimal places, the magnitude from which it has more than 15 significant
digits (looked up: working out the power for each value cost 12 % of scaling it). Other
places (a scale of 1e40, a float64 of 1e-200) go to Decimal."""
_EXACT: Final = Context(prec=1000)


class Scaler:
    """Turns one register's raw values into canonical values.

    value = transform(raw) * scale * 10^exponent + offset, where `exponent` is the scale
    factor a device reports beside the value (SunSpec sunssf), 0 for most meters.
    """

    __slots__ = (
        "_added",
        "_float32",
        "_identity",
        "_offset",
        "_offset_decimals",
        "_scale",
        "_transform",
    )

    def __init__(
        self, dtype: DataType, scale: float, offset: float, transform: Transform | None = None
    ) -> None:
        self._scale = scale
        self._offset = offset
        self._float32 = dtype is DataType.FLOAT32
        self._transform = None if transform is None else _TRANSFORMS[transform]
        # Decimals that scale and offset add; integer raw values have none of their own.
        self._added = decimals(scale) if scale != 0 else 0
        self._offset_decimals = decimals(offset) if offset != 0 else -400
        # Most registers (every SDM630 one) are taken as they come: no arithmetic to round.
        self._identity = scale == 1 and offset == 0 and transform is None

    @property
    def as_float32(self) -> bool:
        """Whether values are float32 registers taken as they come (every SDM630 one)."""
        return self._float32 and self._identity

    def __call__(self, raw: float, exponent: int = 0) -> float:
        if not math.isfinite(raw):
            return raw
        if self._float32:
            raw = shortest_float32(raw)
        if self._identity and exponent == 0:
            return float(raw)
        raw_decimals = 0 if isinstance(raw, int) else decimals(raw)
        # The transforms add or subtract whole numbers: no decimals of their own.
        value = raw if self._transform is None else self._transform(raw)
        value *= self._scale
        value = value * 10**exponent if exponent >= 0 else value / 10**-exponent
        value += self._offset
        places = max(raw_decimals + self._added - exponent, self._offset_decimals)
        exact_below = _EXACT_BELOW.get(places, 0.0)
        if -exact_below < value < exact_below:
            return float(round(value, places))
        return self._in_decimal(raw, exponent)

    def _in_decimal(self, raw: float, exponent: int) -> float:
        """The value worked out in Decimal and rounded to a float once: a value of more
        than 15 significant digits (an int64 counter, an offset beside a tiny reading)."""
        number = Decimal(raw) if isinstance(raw, int) else Decimal(repr(raw))
        if self._transform is not None:
            number = self._transform(number)
        number = _EXACT.multiply(number, Decimal(repr(self._scale)))
        number = _EXACT.multiply(number, _EXACT.power(Decimal(10), exponent))
        return float(_EXACT.add(number, Decimal(repr(self._offset))))
