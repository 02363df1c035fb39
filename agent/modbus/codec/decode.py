"""Registers to values and back: pure, no I/O.

Multi-register values come in four byte orders. With the registers packed big-endian
into bytes ("ABCD..."), each order is one struct endianness over either those bytes or
the bytes swapped within each register:

    ABCD  big-endian over the registers as sent
    DCBA  little-endian over the registers as sent
    BADC  big-endian over the byte-swapped registers
    CDAB  little-endian over the byte-swapped registers (the usual "word swap")

A single-register value has one word, so only the swap of bytes within it applies:
BADC and DCBA read its two bytes swapped (a device that sends every register
little-endian), ABCD and CDAB as sent (big-endian, as the Modbus specification defines
registers). Text (identification registers: model names, serial numbers) is two characters a
register, the first in the high byte (ABCD) or, byte-swapped, in the low byte (BADC).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from typing import Final


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


class ByteOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


_FORMAT: Final = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}

WORDS: Final = {t: struct.calcsize(f) // 2 for t, f in _FORMAT.items()}
"""How many 16-bit registers each type occupies."""

_SWAPPED_BYTES: Final = {ByteOrder.BADC, ByteOrder.CDAB}
_LITTLE: Final = {ByteOrder.DCBA, ByteOrder.CDAB}


class DecodeError(ValueError):
    """Registers that cannot be a value of the requested type."""


@cache
def _codec(dtype: DataType, order: ByteOrder) -> tuple[struct.Struct, str, bool]:
    """The struct for one type and order, its endianness, and whether it reads
    byte-swapped registers."""
    endian = "<" if order in _LITTLE else ">"
    return struct.Struct(endian + _FORMAT[dtype]), endian, order in _SWAPPED_BYTES


def _bytes_swapped(endian: str, swapped: bool) -> bool:
    """Whether a one-register value read in this arrangement comes out byte-swapped."""
    return (endian == "<") != swapped


@cache
def _words(count: int, endian: str) -> struct.Struct:
    return struct.Struct(f"{endian}{count}H")


class RegisterBuffer:
    """The registers of one response as bytes, in both byte arrangements a decoder needs."""

    __slots__ = ("_count", "_registers", "_swapped", "sent")

    def __init__(self, registers: Sequence[int]) -> None:
        self._count = len(registers)
        self._registers = registers
        try:
            self.sent = _words(self._count, ">").pack(*registers)
        except struct.error as exc:
            raise DecodeError(f"registers must be 16-bit unsigned integers: {exc}") from exc
        self._swapped: bytes | None = None

    def __len__(self) -> int:
        return self._count

    def swapped(self) -> bytes:
        if self._swapped is None:
            self._swapped = _words(self._count, "<").pack(*self._registers)
        return self._swapped

    def value(self, offset: int, dtype: DataType, order: ByteOrder) -> int | float:
        """The value of `dtype` that starts `offset` registers into the buffer."""
        if offset < 0 or offset + WORDS[dtype] > self._count:
            raise DecodeError(
                f"{dtype} at register offset {offset} needs {WORDS[dtype]} registers, "
                f"the response has {self._count}"
            )
        codec, _, swapped = _codec(dtype, order)
        source = self.swapped() if swapped else self.sent
        value: int | float = codec.unpack_from(source, 2 * offset)[0]
        return value


class Layout:
    """Values at fixed offsets of one response, all decoded by a single struct call.

    A meter's read block holds tens of values; one `unpack_from` for all of them costs
    about what one call per value costs for two.
    """

    __slots__ = ("_codec", "_swapped")

    def __init__(self, codec: struct.Struct, swapped: bool) -> None:
        self._codec = codec
        self._swapped = swapped

    @classmethod
    def of(cls, values: Sequence[tuple[int, DataType, ByteOrder]]) -> Layout | None:
        """The layout of (register offset, type, order) values; None when one struct cannot
        read them: out of offset order, overlapping, or in byte orders that disagree."""
        arrangements = {_codec(dtype, order)[1:] for _, dtype, order in values if WORDS[dtype] > 1}
        # A one-register value fits two arrangements: read as sent through ">" over the
        # registers as sent or "<" over the byte-swapped ones, and byte-swapped through the
        # other two.
        singles = {
            _bytes_swapped(*_codec(dtype, order)[1:])
            for _, dtype, order in values
            if WORDS[dtype] == 1
        }
        if len(arrangements) > 1 or len(singles) > 1:
            return None
        if not arrangements:
            endian, swapped = ">", bool(singles) and singles.pop()
        else:
            endian, swapped = arrangements.pop()
            if singles and singles.pop() != _bytes_swapped(endian, swapped):
                return None
        layout, position = endian, 0
        for offset, dtype, _ in values:
            if offset < position:
                return None
            if offset > position:
                layout += f"{2 * (offset - position)}x"
            layout += _FORMAT[dtype]
            position = offset + WORDS[dtype]
        return cls(struct.Struct(layout), swapped)

    def unpack(self, buffer: RegisterBuffer) -> tuple[int | float, ...]:
        """The values, in the order given (the buffer must reach the last of them)."""
        return self._codec.unpack_from(buffer.swapped() if self._swapped else buffer.sent)


def decode(registers: Sequence[int], dtype: DataType, order: ByteOrder) -> int | float:
    """The value that exactly `WORDS[dtype]` registers hold."""
    if len(registers) != WORDS[dtype]:
        raise DecodeError(f"{dtype} takes {WORDS[dtype]} registers, got {len(registers)}")
    return RegisterBuffer(registers).value(0, dtype, order)


def decode_string(registers: Sequence[int], order: ByteOrder) -> str:
    """Text held two characters a register, first character in the high byte (ABCD) or the
    low byte (BADC); trailing NULs and spaces are padding. Identification registers only."""
    buffer = RegisterBuffer(registers)
    data = buffer.swapped() if order in _SWAPPED_BYTES else buffer.sent
    return data.decode("latin-1").rstrip("\x00 ")


def encode_string(text: str, words: int, order: ByteOrder) -> list[int]:
    """The registers a device sends for `text` in `words` registers, NUL-padded."""
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise DecodeError(f"{text!r} is not single-byte text: {exc}") from exc
    if len(data) > 2 * words:
        raise DecodeError(f"{text!r} does not fit {words} registers")
    data = data.ljust(2 * words, b"\x00")
    return list(struct.unpack(f"{'<' if order in _SWAPPED_BYTES else '>'}{words}H", data))


def encode(value: int | float, dtype: DataType, order: ByteOrder) -> list[int]:
    """The registers a device sends for `value`: the inverse of decode."""
    codec, _, swapped = _codec(dtype, order)
    try:
        packed = codec.pack(value)
    except (struct.error, OverflowError) as exc:
        raise DecodeError(f"{value!r} does not fit {dtype}: {exc}") from exc
    words = len(packed) // 2
    return list(struct.unpack(f"{'<' if swapped else '>'}{words}H", packed))
