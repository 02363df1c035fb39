"""Raw register values become canonical values with exactly the digits the meter gave."""

from __future__ import annotations

import math
import struct
from decimal import Decimal, localcontext

import numpy
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.modbus.codec.decode import DataType
from agent.modbus.codec.scale import (
    Scaler,
    Transform,
    decimals,
    schneider_4q_pf,
    shortest_float32,
    shortest_float32_text,
)


def float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0.1, 1), (230.1, 1), (1.0, 0), (1000.0, -3), (0.001, 3), (1.5e-7, 8), (123.45, 2)],
)
def test_decimals_of_the_shortest_form(number: float, expected: int) -> None:
    assert decimals(number) == expected


@pytest.mark.parametrize(
    ("dtype", "scale", "offset", "raw", "expected"),
    [
        # SDM630 float32 in SI units: the meter's 230.1, not 230.10000610351562
        (DataType.FLOAT32, 1.0, 0.0, float32(230.1), 230.1),
        # DTSU666 voltage in 0.1 V: 2301.0 * 0.1 is 230.10000000000002 in binary
        (DataType.FLOAT32, 0.1, 0.0, float32(2301.0), 230.1),
        # ADW300 energy as uint32 hundredths of a kWh
        (DataType.UINT32, 0.01, 0.0, 12345, 123.45),
        # Schneider int64 Wh to kWh
        (DataType.INT64, 0.001, 0.0, 123456789, 123456.789),
        # Schneider kW float to W
        (DataType.FLOAT32, 1000.0, 0.0, float32(1.2345678), 1234.5678),
        (DataType.INT16, 0.5, 100.0, 1, 100.5),
        (DataType.INT16, 0.1, -40.0, 653, 25.3),
        (DataType.FLOAT64, 1.0, 0.0, 0.1 + 0.2, 0.30000000000000004),
        (DataType.UINT16, 1000.0, 0.0, 7, 7000.0),
    ],
)
def test_known_values(
    dtype: DataType, scale: float, offset: float, raw: float, expected: float
) -> None:
    assert Scaler(dtype, scale, offset)(raw) == expected


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_shortest_float32_is_the_same_float32(raw: float) -> None:
    short = shortest_float32(raw)
    assert float32(short) == raw
    digits = Decimal(repr(short)).normalize().as_tuple()
    assert len(digits.digits) <= 9  # a float32 never needs more


def numpy_shortest(raw: float) -> float:
    """numpy's shortest float32 decimal (Dragon4, its own code): the reference."""
    return float(str(numpy.float32(raw)))


def from_bits(bits: int) -> float:
    raw: float = struct.unpack("<f", struct.pack("<I", bits))[0]
    return raw


_SIGN = 0x80000000


@pytest.mark.parametrize("sign", [0, _SIGN])
def test_powers_of_two_have_the_shortest_decimal(sign: int) -> None:
    """A power of two has a narrower gap to the float32 below it than above: its nearest
    decimal of a length can miss while the next one up is the same float32
    (1.2621775e-29, not 1.26217745e-29). Every normal power of two, both signs."""
    wrong = [
        (hex(bits), shortest_float32(raw), numpy_shortest(raw))
        for bits in ((exponent << 23) | sign for exponent in range(1, 255))
        if shortest_float32(raw := from_bits(bits)) != numpy_shortest(raw)
    ]
    assert wrong == []


@given(st.integers(0, 2**23 - 1), st.sampled_from([0, _SIGN]))
def test_subnormals_have_the_shortest_decimal(mantissa: int, sign: int) -> None:
    """Below the smallest normal float32 every value is a whole number of the smallest
    one apart, so few digits tell them apart: 1e-45, not 1.4013e-45."""
    raw = from_bits(sign | mantissa)
    assert shortest_float32(raw) == numpy_shortest(raw)


@given(st.integers(0, 2**32 - 1))
def test_every_float32_has_the_shortest_decimal(bits: int) -> None:
    raw = from_bits(bits)
    if math.isfinite(raw):
        assert shortest_float32(raw) == numpy_shortest(raw)


@given(st.integers(0, 2**32 - 1))
def test_the_shortest_float32_text_is_its_repr(bits: int) -> None:
    raw: float = struct.unpack("<f", struct.pack("<I", bits))[0]
    if not math.isfinite(raw):
        return
    value, text = shortest_float32_text(raw)
    assert value == shortest_float32(raw)
    assert text == repr(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimals_agree_with_decimal_arithmetic(number: float) -> None:
    exponent = Decimal(repr(number)).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    assert decimals(number) == -exponent


@given(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([1.0, 0.1, 0.01, 0.001, 0.5, 10.0, 1000.0]),
    st.sampled_from([0.0, -40.0, 273.15]),
)
def test_integer_registers_scale_exactly_as_decimal_arithmetic(
    raw: int, scale: float, offset: float
) -> None:
    exact = Decimal(raw) * Decimal(repr(scale)) + Decimal(repr(offset))
    assert Scaler(DataType.INT32, scale, offset)(raw) == float(exact)


SCALES = [1.0, 0.1, 0.01, 0.001, 0.0001, 0.5, 10.0, 1000.0]
OFFSETS = [0.0, -40.0, 273.15]


def exactly(raw: Decimal, scale: float, offset: float, exponent: int) -> float:
    """Decimal arithmetic on the meter's figures, rounded once to a float at the end."""
    with localcontext() as context:
        context.prec = 1000
        return float(raw * Decimal(repr(scale)) * Decimal(10) ** exponent + Decimal(repr(offset)))


@given(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(SCALES),
    st.sampled_from(OFFSETS),
    st.integers(-10, 10),
)
@example(6964799970522977, 0.1, 0.0, 1)
@example(2**54 - 1, 1.0, 0.0, -1)
def test_integer_registers_are_decimal_arithmetic_at_any_size(
    raw: int, scale: float, offset: float, exponent: int
) -> None:
    """Past 15 significant digits a double's arithmetic cannot be rounded back to the
    decimal result (6964799970522977 * 0.1 * 10 gave ...978): those are done in Decimal."""
    expected = exactly(Decimal(raw), scale, offset, exponent)
    assert Scaler(DataType.INT64, scale, offset)(raw, exponent) == expected


@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.sampled_from(SCALES),
    st.sampled_from(OFFSETS),
    st.integers(-10, 10),
)
@example(-0.00870654545724392, 1.0, 273.15, -5)
@example(8335515224899584.0, 1.0, -40.0, 4)
def test_float32_registers_are_decimal_arithmetic_on_their_shortest_decimal(
    raw: float, scale: float, offset: float, exponent: int
) -> None:
    """-0.0087065455 * 10**-5 + 273.15 is 273.149999912934545 (18 digits): its float is
    ...3456, not the ...345 the double's arithmetic gave."""
    expected = exactly(Decimal(repr(shortest_float32(raw))), scale, offset, exponent)
    assert Scaler(DataType.FLOAT32, scale, offset)(raw, exponent) == expected


@given(
    st.floats(width=32, min_value=-2, max_value=2, exclude_min=True, exclude_max=True),
    st.sampled_from(SCALES),
    st.integers(-3, 3),
)
def test_a_transformed_value_is_decimal_arithmetic_too(
    raw: float, scale: float, exponent: int
) -> None:
    pf = schneider_4q_pf(Decimal(repr(shortest_float32(raw))))
    expected = exactly(pf, scale, 0.0, exponent)
    scaler = Scaler(DataType.FLOAT32, scale, 0.0, Transform.SCHNEIDER_4Q_PF)
    assert scaler(raw, exponent) == expected


def test_non_finite_raw_values_pass_through_for_the_caller_to_report() -> None:
    assert Scaler(DataType.FLOAT32, 0.1, 0.0)(float("inf")) == float("inf")
