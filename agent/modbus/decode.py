"""Registers to values and back: pure, no I/O.

Multi-register values come in four byte orders. With the registers packed big-endian
into bytes ("ABCD..."), each order is one struct endianness over either those bytes or
the bytes swapped within each register:

    ABCD  big-endian over the registers as sent
    DCBA  little-endian over the registers as sent
    BADC  big-endian over the byte-swapped registers
    CDAB  little-endian over the byte-swapped registers (the usual "word swap")

Single-register values are big-endian, as the Modbus specification defines registers.
Text (identification registers: model names, serial numbers) is two characters a
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
def _codec(dtype: DataType, order: ByteOrder) -> tuple[struct.Struct, bool]:
    """The struct for one type and order, and whether it reads byte-swapped registers."""
    if WORDS[dtype] == 1:
        order = ByteOrder.ABCD
    endian = "<" if order in _LITTLE else ">"
    return struct.Struct(endian + _FORMAT[dtype]), order in _SWAPPED_BYTES


class RegisterBuffer:
    """The registers of one response as bytes, in both byte arrangements a decoder needs."""

    __slots__ = ("_count", "_registers", "_swapped", "sent")

    def __init__(self, registers: Sequence[int]) -> None:
        self._count = len(registers)
        self._registers = registers
        try:
            self.sent = struct.pack(f">{self._count}H", *registers)
        except struct.error as exc:
            raise DecodeError(f"registers must be 16-bit unsigned integers: {exc}") from exc
        self._swapped: bytes | None = None

    def __len__(self) -> int:
        return self._count

    def swapped(self) -> bytes:
        if self._swapped is None:
            self._swapped = struct.pack(f"<{self._count}H", *self._registers)
        return self._swapped

    def value(self, offset: int, dtype: DataType, order: ByteOrder) -> int | float:
        """The value of `dtype` that starts `offset` registers into the buffer."""
        if offset < 0 or offset + WORDS[dtype] > self._count:
            raise DecodeError(
                f"{dtype} at register offset {offset} needs {WORDS[dtype]} registers, "
                f"the response has {self._count}"
            )
        codec, swapped = _codec(dtype, order)
        source = self.swapped() if swapped else self.sent
        value: int | float = codec.unpack_from(source, 2 * offset)[0]
        return value


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
    codec, swapped = _codec(dtype, order)
    try:
        packed = codec.pack(value)
    except (struct.error, OverflowError) as exc:
        raise DecodeError(f"{value!r} does not fit {dtype}: {exc}") from exc
    words = len(packed) // 2
    return list(struct.unpack(f"{'<' if swapped else '>'}{words}H", packed))
