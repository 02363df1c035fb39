"""Register decoding: every type in every byte order, against vectors built without the module."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.modbus.codec.decode import (
    WORDS,
    ByteOrder,
    DataType,
    DecodeError,
    Layout,
    RegisterBuffer,
    decode,
    encode,
)

T = DataType
BO = ByteOrder

STRUCT_FORMAT = {
    T.INT16: "h",
    T.UINT16: "H",
    T.INT32: "i",
    T.UINT32: "I",
    T.INT64: "q",
    T.UINT64: "Q",
    T.FLOAT32: "f",
    T.FLOAT64: "d",
}
INT_RANGES = {
    T.INT16: (-(2**15), 2**15 - 1),
    T.UINT16: (0, 2**16 - 1),
    T.INT32: (-(2**31), 2**31 - 1),
    T.UINT32: (0, 2**32 - 1),
    T.INT64: (-(2**63), 2**63 - 1),
    T.UINT64: (0, 2**64 - 1),
}
INT_TYPES = list(INT_RANGES)
FLOAT_TYPES = [T.FLOAT32, T.FLOAT64]
WIDE_TYPES = [t for t in DataType if t not in (T.INT16, T.UINT16)]
ALL_PAIRS = [(t, o) for t in DataType for o in ByteOrder]


# --- an independent reference: struct big-endian bytes rearranged by hand -----------------


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def reference_registers(value: float, dtype: DataType, order: ByteOrder) -> list[int]:
    """The registers for `value`, from the big-endian bytes A B C D ... and the order's name."""
    data = struct.pack(">" + STRUCT_FORMAT[dtype], value)
    if order is BO.ABCD:
        return _words(data)
    if order is BO.DCBA:  # every byte reversed
        return _words(data[::-1])
    if order is BO.CDAB:  # registers reversed, bytes inside each kept
        return _words(data)[::-1]
    # BADC: registers kept, bytes inside each swapped
    return [int.from_bytes(w.to_bytes(2, "big")[::-1], "big") for w in _words(data)]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- hand-written vectors -----------------------------------------------------------------

HAND_VECTORS: list[tuple[DataType, ByteOrder, int | float, list[int]]] = [
    # 0x11223344: A=11 B=22 C=33 D=44
    (T.UINT32, BO.ABCD, 0x11223344, [0x1122, 0x3344]),
    (T.UINT32, BO.CDAB, 0x11223344, [0x3344, 0x1122]),
    (T.UINT32, BO.BADC, 0x11223344, [0x2211, 0x4433]),
    (T.UINT32, BO.DCBA, 0x11223344, [0x4433, 0x2211]),
    (T.INT32, BO.ABCD, 0x11223344, [0x1122, 0x3344]),
    (T.INT32, BO.CDAB, 0x11223344, [0x3344, 0x1122]),
    (T.INT32, BO.BADC, 0x11223344, [0x2211, 0x4433]),
    (T.INT32, BO.DCBA, 0x11223344, [0x4433, 0x2211]),
    # -2 = 0xFFFFFFFE
    (T.INT32, BO.ABCD, -2, [0xFFFF, 0xFFFE]),
    (T.INT32, BO.CDAB, -2, [0xFFFE, 0xFFFF]),
    (T.INT32, BO.BADC, -2, [0xFFFF, 0xFEFF]),
    (T.INT32, BO.DCBA, -2, [0xFEFF, 0xFFFF]),
    # 0x1122334455667788: A..H
    (T.UINT64, BO.ABCD, 0x1122334455667788, [0x1122, 0x3344, 0x5566, 0x7788]),
    (T.UINT64, BO.CDAB, 0x1122334455667788, [0x7788, 0x5566, 0x3344, 0x1122]),
    (T.UINT64, BO.BADC, 0x1122334455667788, [0x2211, 0x4433, 0x6655, 0x8877]),
    (T.UINT64, BO.DCBA, 0x1122334455667788, [0x8877, 0x6655, 0x4433, 0x2211]),
    (T.INT64, BO.ABCD, 0x1122334455667788, [0x1122, 0x3344, 0x5566, 0x7788]),
    (T.INT64, BO.CDAB, 0x1122334455667788, [0x7788, 0x5566, 0x3344, 0x1122]),
    (T.INT64, BO.BADC, 0x1122334455667788, [0x2211, 0x4433, 0x6655, 0x8877]),
    (T.INT64, BO.DCBA, 0x1122334455667788, [0x8877, 0x6655, 0x4433, 0x2211]),
    # -2 = 0xFFFFFFFFFFFFFFFE
    (T.INT64, BO.ABCD, -2, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]),
    (T.INT64, BO.CDAB, -2, [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF]),
    (T.INT64, BO.BADC, -2, [0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF]),
    (T.INT64, BO.DCBA, -2, [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    # float32 230.1 = 0x4366199A (rounded to float32 precision)
    (T.FLOAT32, BO.ABCD, 230.10000610351562, [0x4366, 0x199A]),
    (T.FLOAT32, BO.CDAB, 230.10000610351562, [0x199A, 0x4366]),
    (T.FLOAT32, BO.BADC, 230.10000610351562, [0x6643, 0x9A19]),
    (T.FLOAT32, BO.DCBA, 230.10000610351562, [0x9A19, 0x6643]),
    # float32 -1.5 = 0xBFC00000
    (T.FLOAT32, BO.ABCD, -1.5, [0xBFC0, 0x0000]),
    (T.FLOAT32, BO.CDAB, -1.5, [0x0000, 0xBFC0]),
    (T.FLOAT32, BO.BADC, -1.5, [0xC0BF, 0x0000]),
    (T.FLOAT32, BO.DCBA, -1.5, [0x0000, 0xC0BF]),
    # float64 1.0 = 0x3FF0000000000000
    (T.FLOAT64, BO.ABCD, 1.0, [0x3FF0, 0x0000, 0x0000, 0x0000]),
    (T.FLOAT64, BO.CDAB, 1.0, [0x0000, 0x0000, 0x0000, 0x3FF0]),
    (T.FLOAT64, BO.BADC, 1.0, [0xF03F, 0x0000, 0x0000, 0x0000]),
    (T.FLOAT64, BO.DCBA, 1.0, [0x0000, 0x0000, 0x0000, 0xF03F]),
    # float64 -2.5 = 0xC004000000000000
    (T.FLOAT64, BO.ABCD, -2.5, [0xC004, 0x0000, 0x0000, 0x0000]),
    (T.FLOAT64, BO.CDAB, -2.5, [0x0000, 0x0000, 0x0000, 0xC004]),
    (T.FLOAT64, BO.BADC, -2.5, [0x04C0, 0x0000, 0x0000, 0x0000]),
    (T.FLOAT64, BO.DCBA, -2.5, [0x0000, 0x0000, 0x0000, 0x04C0]),
]
# 16-bit values: one register, so only the byte swap (BADC, DCBA) changes them.
for _order, _swapped in [(BO.ABCD, False), (BO.CDAB, False), (BO.BADC, True), (BO.DCBA, True)]:
    HAND_VECTORS += [
        (T.INT16, _order, -2, [0xFEFF if _swapped else 0xFFFE]),
        (T.INT16, _order, 0x1234, [0x3412 if _swapped else 0x1234]),
        (T.INT16, _order, -1234, [0x2EFB if _swapped else 0xFB2E]),
        (T.UINT16, _order, 0x1234, [0x3412 if _swapped else 0x1234]),
        (T.UINT16, _order, 0xFF00, [0x00FF if _swapped else 0xFF00]),
        (T.UINT16, _order, 54321, [0x31D4 if _swapped else 0xD431]),
    ]


def _vector_id(vector: tuple[DataType, ByteOrder, int | float, list[int]]) -> str:
    dtype, order, value, _ = vector
    return f"{dtype}-{order}-{value!r}"


@pytest.mark.parametrize("vector", HAND_VECTORS, ids=_vector_id)
def test_hand_vectors_agree_with_struct(
    vector: tuple[DataType, ByteOrder, int | float, list[int]],
) -> None:
    # Guards the vectors themselves: the test below is only as good as they are.
    dtype, order, value, registers = vector
    assert reference_registers(value, dtype, order) == registers


@pytest.mark.parametrize("vector", HAND_VECTORS, ids=_vector_id)
def test_decode_hand_vectors(vector: tuple[DataType, ByteOrder, int | float, list[int]]) -> None:
    dtype, order, value, registers = vector
    decoded = decode(registers, dtype, order)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("vector", HAND_VECTORS, ids=_vector_id)
def test_encode_hand_vectors(vector: tuple[DataType, ByteOrder, int | float, list[int]]) -> None:
    dtype, order, value, registers = vector
    assert encode(value, dtype, order) == registers


def test_float32_230_1_is_the_documented_abcd_registers() -> None:
    assert encode(230.1, T.FLOAT32, BO.ABCD) == [0x4366, 0x199A]
    assert decode([0x4366, 0x199A], T.FLOAT32, BO.ABCD) == pytest.approx(230.1, abs=1e-4)


def test_the_four_orders_are_four_different_layouts() -> None:
    layouts = {tuple(encode(0x11223344, T.UINT32, order)) for order in ByteOrder}
    assert len(layouts) == 4


def test_int_types_decode_to_int_and_float_types_to_float() -> None:
    for dtype in INT_TYPES:
        assert type(decode([0] * WORDS[dtype], dtype, BO.ABCD)) is int
    for dtype in FLOAT_TYPES:
        assert type(decode([0] * WORDS[dtype], dtype, BO.ABCD)) is float


# --- register counts ----------------------------------------------------------------------


def test_words_per_type() -> None:
    assert WORDS == {
        T.INT16: 1,
        T.UINT16: 1,
        T.INT32: 2,
        T.UINT32: 2,
        T.INT64: 4,
        T.UINT64: 4,
        T.FLOAT32: 2,
        T.FLOAT64: 4,
    }


@pytest.mark.parametrize(("dtype", "order"), ALL_PAIRS)
def test_encode_gives_words_registers(dtype: DataType, order: ByteOrder) -> None:
    assert len(encode(1, dtype, order)) == WORDS[dtype]


@pytest.mark.parametrize(("dtype", "order"), ALL_PAIRS)
@pytest.mark.parametrize("delta", [-1, 1, 2])
def test_decode_wrong_register_count(dtype: DataType, order: ByteOrder, delta: int) -> None:
    count = WORDS[dtype] + delta
    with pytest.raises(DecodeError, match=f"takes {WORDS[dtype]} registers, got {count}"):
        decode([0] * count, dtype, order)


@pytest.mark.parametrize("dtype", list(DataType))
def test_decode_no_registers(dtype: DataType) -> None:
    with pytest.raises(DecodeError):
        decode([], dtype, BO.ABCD)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


# --- register values outside 0..0xFFFF ----------------------------------------------------


@pytest.mark.parametrize("bad", [0x10000, -1, 0x7FFFFFFF, -0x8000])
@pytest.mark.parametrize("dtype", list(DataType))
def test_decode_rejects_registers_out_of_range(bad: int, dtype: DataType) -> None:
    registers = [0] * WORDS[dtype]
    registers[-1] = bad
    with pytest.raises(DecodeError, match="16-bit unsigned"):
        decode(registers, dtype, BO.ABCD)


@pytest.mark.parametrize("bad", [0x10000, -1])
def test_register_buffer_rejects_registers_out_of_range(bad: int) -> None:
    with pytest.raises(DecodeError):
        RegisterBuffer([1, 2, bad, 4])


def test_register_bounds_are_inclusive() -> None:
    assert decode([0xFFFF], T.UINT16, BO.ABCD) == 0xFFFF
    assert decode([0x0000], T.UINT16, BO.ABCD) == 0


# --- signed and unsigned extremes ---------------------------------------------------------

EXTREMES: list[tuple[DataType, int, list[int]]] = [
    (T.INT16, -(2**15), [0x8000]),
    (T.INT16, 2**15 - 1, [0x7FFF]),
    (T.INT16, -1, [0xFFFF]),
    (T.UINT16, 2**16 - 1, [0xFFFF]),
    (T.UINT16, 0, [0x0000]),
    (T.INT32, -(2**31), [0x8000, 0x0000]),
    (T.INT32, 2**31 - 1, [0x7FFF, 0xFFFF]),
    (T.INT32, -1, [0xFFFF, 0xFFFF]),
    (T.UINT32, 2**32 - 1, [0xFFFF, 0xFFFF]),
    (T.UINT32, 2**31, [0x8000, 0x0000]),
    (T.INT64, -(2**63), [0x8000, 0, 0, 0]),
    (T.INT64, 2**63 - 1, [0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    (T.INT64, -1, [0xFFFF] * 4),
    (T.UINT64, 2**64 - 1, [0xFFFF] * 4),
    (T.UINT64, 2**63, [0x8000, 0, 0, 0]),
]


@pytest.mark.parametrize(("dtype", "value", "abcd"), EXTREMES)
@pytest.mark.parametrize("order", list(ByteOrder))
def test_extremes_in_every_order(
    dtype: DataType, value: int, abcd: list[int], order: ByteOrder
) -> None:
    registers = reference_registers(value, dtype, order)
    assert reference_registers(value, dtype, BO.ABCD) == abcd
    assert decode(registers, dtype, order) == value
    assert encode(value, dtype, order) == registers


def test_sign_depends_on_the_type_not_the_registers() -> None:
    assert decode([0xFFFF], T.INT16, BO.ABCD) == -1
    assert decode([0xFFFF], T.UINT16, BO.ABCD) == 0xFFFF
    assert decode([0xFFFF, 0xFFFF], T.INT32, BO.CDAB) == -1
    assert decode([0xFFFF, 0xFFFF], T.UINT32, BO.CDAB) == 0xFFFFFFFF


# --- out-of-range values for encode -------------------------------------------------------


@pytest.mark.parametrize("order", list(ByteOrder))
@pytest.mark.parametrize("dtype", INT_TYPES)
def test_encode_rejects_integers_out_of_range(dtype: DataType, order: ByteOrder) -> None:
    low, high = INT_RANGES[dtype]
    for value in (low - 1, high + 1):
        with pytest.raises(DecodeError, match=f"does not fit {dtype}"):
            encode(value, dtype, order)


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_encode_rejects_fractions_and_nan_for_integer_types(dtype: DataType) -> None:
    for value in (1.5, math.nan, math.inf):
        with pytest.raises(DecodeError):
            encode(value, dtype, BO.ABCD)


@pytest.mark.parametrize("value", [1e39, -1e39, 3.5e38])
def test_encode_rejects_finite_values_too_large_for_float32(value: float) -> None:
    # float32 tops out at ~3.4028e38; struct raises OverflowError, which must become DecodeError.
    with pytest.raises(DecodeError, match="does not fit float32"):
        encode(value, T.FLOAT32, BO.ABCD)


def test_float32_largest_finite_value_encodes() -> None:
    largest = struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]
    assert encode(largest, T.FLOAT32, BO.ABCD) == [0x7F7F, 0xFFFF]


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("order", list(ByteOrder))
def test_infinities_round_trip(dtype: DataType, order: ByteOrder) -> None:
    for value in (math.inf, -math.inf):
        assert decode(encode(value, dtype, order), dtype, order) == value


@pytest.mark.parametrize(("dtype", "order"), [(t, o) for t in FLOAT_TYPES for o in ByteOrder])
def test_nan_round_trips_as_nan(dtype: DataType, order: ByteOrder) -> None:
    registers = encode(math.nan, dtype, order)
    assert registers == reference_registers(math.nan, dtype, order)
    assert math.isnan(decode(registers, dtype, order))


def test_nan_and_inf_bit_patterns_decode() -> None:
    assert math.isnan(decode([0x7FC0, 0x0000], T.FLOAT32, BO.ABCD))
    assert math.isnan(decode([0x0000, 0x7FC0], T.FLOAT32, BO.CDAB))
    assert math.isnan(decode([0xFFFF, 0xFFFF], T.FLOAT32, BO.ABCD))
    assert decode([0x7F80, 0x0000], T.FLOAT32, BO.ABCD) == math.inf
    assert decode([0x80FF, 0x0000], T.FLOAT32, BO.BADC) == -math.inf
    assert decode([0, 0, 0, 0xF07F], T.FLOAT64, BO.DCBA) == math.inf


def test_negative_zero_keeps_its_sign() -> None:
    assert encode(-0.0, T.FLOAT32, BO.ABCD) == [0x8000, 0x0000]
    assert math.copysign(1.0, decode([0x8000, 0x0000], T.FLOAT32, BO.ABCD)) == -1.0


# --- 16-bit types: BADC and DCBA swap the bytes ------------------------------------------


@pytest.mark.parametrize("dtype", [T.INT16, T.UINT16])
@given(register=st.integers(0, 0xFFFF))
def test_16_bit_types_swap_bytes_in_badc_and_dcba(dtype: DataType, register: int) -> None:
    as_sent = struct.unpack(">" + STRUCT_FORMAT[dtype], register.to_bytes(2, "big"))[0]
    swapped = struct.unpack("<" + STRUCT_FORMAT[dtype], register.to_bytes(2, "big"))[0]
    expected = {BO.ABCD: as_sent, BO.CDAB: as_sent, BO.BADC: swapped, BO.DCBA: swapped}
    for order, value in expected.items():
        assert decode([register], dtype, order) == value, order
        assert encode(value, dtype, order) == [register], order


def test_a_device_that_byte_swaps_16_bit_values() -> None:
    # The audit's device: -1234 and 54321 were published as 12027 and 12756.
    for order in (BO.BADC, BO.DCBA):
        assert decode([0x2EFB], T.INT16, order) == -1234
        assert decode([0x31D4], T.UINT16, order) == 54321


# --- properties ---------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "order"), [(t, o) for t in INT_TYPES for o in ByteOrder])
@given(data=st.data())
def test_integer_round_trip(dtype: DataType, order: ByteOrder, data: st.DataObject) -> None:
    low, high = INT_RANGES[dtype]
    value = data.draw(st.integers(low, high))
    registers = encode(value, dtype, order)
    assert registers == reference_registers(value, dtype, order)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, dtype, order) == value


@pytest.mark.parametrize("order", list(ByteOrder))
@given(value=st.floats(width=32, allow_nan=True, allow_infinity=True))
def test_float32_round_trip(order: ByteOrder, value: float) -> None:
    registers = encode(value, T.FLOAT32, order)
    assert registers == reference_registers(value, T.FLOAT32, order)
    assert same(decode(registers, T.FLOAT32, order), value)


@pytest.mark.parametrize("order", list(ByteOrder))
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_float64_round_trip(order: ByteOrder, value: float) -> None:
    registers = encode(value, T.FLOAT64, order)
    assert registers == reference_registers(value, T.FLOAT64, order)
    assert same(decode(registers, T.FLOAT64, order), value)


@pytest.mark.parametrize("order", list(ByteOrder))
@given(value=st.floats(min_value=-3.4e38, max_value=3.4e38))
def test_float32_encode_rounds_to_nearest_float32(order: ByteOrder, value: float) -> None:
    expected = struct.unpack(">f", struct.pack(">f", value))[0]
    assert decode(encode(value, T.FLOAT32, order), T.FLOAT32, order) == expected


@pytest.mark.parametrize(("dtype", "order"), ALL_PAIRS)
@given(data=st.data())
def test_decode_matches_struct_for_any_registers(
    dtype: DataType, order: ByteOrder, data: st.DataObject
) -> None:
    registers = data.draw(
        st.lists(st.integers(0, 0xFFFF), min_size=WORDS[dtype], max_size=WORDS[dtype])
    )
    # Undo the order by hand to get the big-endian bytes A B C D ...
    if order is BO.ABCD:
        abcd = b"".join(r.to_bytes(2, "big") for r in registers)
    elif order is BO.CDAB:
        abcd = b"".join(r.to_bytes(2, "big") for r in reversed(registers))
    elif order is BO.BADC:
        abcd = b"".join(r.to_bytes(2, "little") for r in registers)
    else:
        abcd = b"".join(r.to_bytes(2, "big") for r in registers)[::-1]
    expected = struct.unpack(">" + STRUCT_FORMAT[dtype], abcd)[0]
    assert same(decode(registers, dtype, order), expected)


# --- RegisterBuffer -----------------------------------------------------------------------


def test_register_buffer_values_at_offsets() -> None:
    # 0: int16 -7 | 1-2: float32 230.1 CDAB | 3-4: uint32 BADC | 5-8: int64 DCBA | 9: uint16
    registers = (
        reference_registers(-7, T.INT16, BO.ABCD)
        + reference_registers(230.1, T.FLOAT32, BO.CDAB)
        + reference_registers(0xDEADBEEF, T.UINT32, BO.BADC)
        + reference_registers(-(10**15), T.INT64, BO.DCBA)
        + [0xABCD]
    )
    buffer = RegisterBuffer(registers)
    assert len(buffer) == 10
    assert buffer.value(0, T.INT16, BO.ABCD) == -7
    assert buffer.value(1, T.FLOAT32, BO.CDAB) == pytest.approx(230.1, abs=1e-4)
    assert buffer.value(3, T.UINT32, BO.BADC) == 0xDEADBEEF
    assert buffer.value(5, T.INT64, BO.DCBA) == -(10**15)
    assert buffer.value(9, T.UINT16, BO.CDAB) == 0xABCD
    assert buffer.value(9, T.UINT16, BO.DCBA) == 0xCDAB


@given(
    registers=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=12),
    dtype=st.sampled_from(list(DataType)),
    order=st.sampled_from(list(ByteOrder)),
    data=st.data(),
)
def test_register_buffer_value_equals_decode_of_the_slice(
    registers: list[int], dtype: DataType, order: ByteOrder, data: st.DataObject
) -> None:
    words = WORDS[dtype]
    buffer = RegisterBuffer(registers)
    offset = data.draw(st.integers(-2, len(registers) + 1))
    if 0 <= offset <= len(registers) - words:
        expected = decode(registers[offset : offset + words], dtype, order)
        assert same(buffer.value(offset, dtype, order), expected)
    else:
        with pytest.raises(DecodeError):
            buffer.value(offset, dtype, order)


def test_register_buffer_same_offset_in_different_orders() -> None:
    buffer = RegisterBuffer([0x1122, 0x3344])
    assert buffer.value(0, T.UINT32, BO.ABCD) == 0x11223344
    assert buffer.value(0, T.UINT32, BO.CDAB) == 0x33441122
    assert buffer.value(0, T.UINT32, BO.BADC) == 0x22114433
    assert buffer.value(0, T.UINT32, BO.DCBA) == 0x44332211
    # reading in one order does not disturb the next
    assert buffer.value(0, T.UINT32, BO.ABCD) == 0x11223344


@pytest.mark.parametrize(
    ("offset", "dtype"),
    [(-1, T.UINT16), (3, T.UINT16), (2, T.UINT32), (3, T.FLOAT32), (0, T.FLOAT64), (-1, T.INT64)],
)
def test_register_buffer_offset_outside_raises(offset: int, dtype: DataType) -> None:
    buffer = RegisterBuffer([1, 2, 3])
    with pytest.raises(DecodeError, match=f"offset {offset} needs {WORDS[dtype]} registers"):
        buffer.value(offset, dtype, BO.ABCD)


def test_register_buffer_last_fitting_offset() -> None:
    buffer = RegisterBuffer([1, 2, 3, 4])
    assert buffer.value(3, T.UINT16, BO.ABCD) == 4
    assert buffer.value(2, T.UINT32, BO.ABCD) == 0x00030004
    assert buffer.value(0, T.UINT64, BO.ABCD) == 0x0001000200030004


def test_empty_register_buffer() -> None:
    buffer = RegisterBuffer([])
    assert len(buffer) == 0
    with pytest.raises(DecodeError):
        buffer.value(0, T.UINT16, BO.ABCD)


# --- Layout: a block's values in one struct call --------------------------------------------


@given(
    registers=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40),
    fields=st.lists(
        st.tuples(
            st.integers(0, 39), st.sampled_from(list(DataType)), st.sampled_from(list(ByteOrder))
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_a_layout_reads_what_each_value_alone_reads(
    registers: list[int], fields: list[tuple[int, DataType, ByteOrder]]
) -> None:
    # In offset order without overlaps, as read blocks are; only byte orders may disagree.
    kept: list[tuple[int, DataType, ByteOrder]] = []
    for offset, dtype, order in sorted(fields):
        if offset + WORDS[dtype] <= len(registers) and (
            not kept or offset >= kept[-1][0] + WORDS[kept[-1][1]]
        ):
            kept.append((offset, dtype, order))
    fields = kept
    layout = Layout.of(fields)
    orders = {order for _, dtype, order in fields if WORDS[dtype] > 1}
    swaps = {order in (BO.BADC, BO.DCBA) for _, dtype, order in fields if WORDS[dtype] == 1}
    if len(orders) <= 1 and len(swaps) <= 1 and (not orders or not swaps):
        assert layout is not None
    if layout is None:
        return
    buffer = RegisterBuffer(registers)
    expected = [buffer.value(offset, dtype, order) for offset, dtype, order in fields]
    assert all(map(same, layout.unpack(buffer), expected))


def test_a_layout_skips_the_registers_between_values() -> None:
    registers = (
        [0xFFFF]
        + reference_registers(230.1, T.FLOAT32, BO.CDAB)
        + [0xFFFF] * 3
        + reference_registers(-5, T.INT16, BO.ABCD)
        + reference_registers(2**40, T.UINT64, BO.CDAB)
    )
    fields = [(1, T.FLOAT32, BO.CDAB), (6, T.INT16, BO.ABCD), (7, T.UINT64, BO.CDAB)]
    layout = Layout.of(fields)
    assert layout is not None
    assert layout.unpack(RegisterBuffer(registers)) == pytest.approx((230.1, -5, 2**40))


@pytest.mark.parametrize("order", list(ByteOrder))
def test_a_layout_reads_16_bit_registers_in_the_blocks_order(order: ByteOrder) -> None:
    fields = [(0, T.INT16, order), (1, T.FLOAT32, order), (3, T.UINT16, order)]
    registers = (
        reference_registers(-1234, T.INT16, order)
        + reference_registers(-1.5, T.FLOAT32, order)
        + reference_registers(54321, T.UINT16, order)
    )
    layout = Layout.of(fields)
    assert layout is not None
    assert layout.unpack(RegisterBuffer(registers)) == (-1234, -1.5, 54321)
    only_16_bit = Layout.of([fields[0], fields[2]])
    assert only_16_bit is not None
    assert only_16_bit.unpack(RegisterBuffer(registers)) == (-1234, 54321)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ([(2, T.FLOAT32, BO.ABCD), (0, T.FLOAT32, BO.ABCD)], "out of offset order"),
        ([(0, T.FLOAT32, BO.ABCD), (1, T.UINT16, BO.ABCD)], "overlapping"),
        ([(0, T.FLOAT32, BO.ABCD), (2, T.FLOAT32, BO.CDAB)], "two byte orders"),
        ([(0, T.FLOAT32, BO.DCBA), (2, T.UINT16, BO.ABCD)], "a register in another order"),
        ([(0, T.FLOAT32, BO.ABCD), (2, T.UINT16, BO.BADC)], "a byte-swapped register"),
        ([(0, T.INT16, BO.CDAB), (1, T.UINT16, BO.DCBA)], "registers swapped and not"),
    ],
)
def test_no_layout_where_one_struct_cannot_read_the_values(
    fields: list[tuple[int, DataType, ByteOrder]], why: str
) -> None:
    assert Layout.of(fields) is None, why
