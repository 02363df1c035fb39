"""Raw register values become canonical values with exactly the digits the meter gave."""

from __future__ import annotations

import math
import struct
from decimal import Decimal

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.modbus.codec.decode import DataType
from agent.modbus.codec.scale import (
    Scaler,
    decimals,
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


@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    st.sampled_from([1.0, 0.1, 0.001, 1000.0]),
)
def test_float32_registers_stay_within_the_float32_resolution(raw: float, scale: float) -> None:
    value = Scaler(DataType.FLOAT32, scale, 0.0)(raw)
    assert value == pytest.approx(raw * scale, rel=6e-8, abs=1e-45 * scale)


def test_non_finite_raw_values_pass_through_for_the_caller_to_report() -> None:
    assert Scaler(DataType.FLOAT32, 0.1, 0.0)(float("inf")) == float("inf")
