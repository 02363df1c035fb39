"""Request planning: a profile's registers in the fewest reads the device allows. Pure.

Reads are grouped per register table (function code), sorted by address, and grown
greedily while the block stays within the device's request size and bridges no wider a
gap of unmapped registers than the device answers. For intervals sorted by start, that
greedy growth gives the fewest blocks. A value with a scale factor register (SunSpec) is
one interval with it, so both come in the same response.

Coils and discrete inputs (FC1/FC2) are planned the same way, an address being one bit
and a response one 0/1 integer per bit, so a coil decodes as a uint16 register would.
Several values may share one register, each taking some of its bits (`bits`).

Decoding drops, with a reason, what is not a value: registers that are not a number, a
sentinel the meter uses for "not available" (kind NOT_AVAILABLE: counted, not logged),
and a value outside the register's plausible range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import groupby
from typing import Final, cast

from agent.modbus.codec.decode import WORDS, ByteOrder, DataType, Layout, RegisterBuffer
from agent.modbus.codec.scale import Float32Run, Scaler
from agent.profiles.model import Function, Profile, RegisterSpec
from greengauge.contract import QuantityName


class ProblemKind(StrEnum):
    INVALID = "invalid"
    """The registers are not a usable value (not a number, short response, bad scale factor)."""
    NOT_AVAILABLE = "not_available"
    """The meter says it has no value (a sentinel such as 0xFFFF...): counted, not logged."""
    OUT_OF_RANGE = "out_of_range"
    """A value outside the register's plausible range."""


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """Where one quantity sits inside a read block and how it becomes a canonical value."""

    quantity: QuantityName
    offset: int
    dtype: DataType
    byte_order: ByteOrder
    scaler: Scaler
    address: int
    scale_factor: int | None = None
    """Address of the int16 power-of-ten register (SunSpec sunssf), read in the same block."""
    scale_factor_order: ByteOrder = ByteOrder.ABCD
    """The scale factor register's byte order: the profile's, as it may serve several values."""
    not_available: frozenset[int] = frozenset()
    """Bit patterns of the raw value that mean the meter has no value."""
    valid_range: tuple[float, float] | None = None
    bits: tuple[int, int] | None = None
    """The first and last bit of the raw integer that are the value (a status flag)."""
    states: frozenset[int] | None = None
    """The codes of an enumeration; another code is dropped."""
    unit: str = ""
    """The unit the value comes out in (the register's)."""

    @property
    def plain(self) -> bool:
        """Nothing to check but that the value is a number (most registers of most meters)."""
        return (
            not self.not_available
            and self.scale_factor is None
            and self.valid_range is None
            and self.bits is None
            and self.states is None
        )

    @property
    def span(self) -> tuple[int, int]:
        """First register and one past the last that a read must cover for this field,
        its scale factor register included."""
        start, end = self.address, self.address + WORDS[self.dtype]
        if self.scale_factor is not None:
            start, end = min(start, self.scale_factor), max(end, self.scale_factor + 1)
        return start, end


@dataclass(frozen=True, slots=True)
class Problem:
    """A quantity dropped from one read, and why."""

    quantity: QuantityName
    address: int
    reason: str
    kind: ProblemKind = ProblemKind.INVALID

    @property
    def quiet(self) -> bool:
        """Count it, but do not log it: the meter itself says the value is not available."""
        return self.kind is ProblemKind.NOT_AVAILABLE


_SF_NOT_IMPLEMENTED: Final = -0x8000
_SF_LIMIT: Final = 10


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus read request and the quantities its response carries."""

    function: Function
    address: int
    count: int
    fields: tuple[FieldPlan, ...]
    _layout: Layout | None = dataclasses.field(init=False, repr=False, compare=False)
    """All fields in one struct call, when their offsets and byte orders allow (nearly
    always); otherwise each field is read on its own."""

    _plain: tuple[bool, ...] = dataclasses.field(init=False, repr=False, compare=False)

    _float32: tuple[QuantityName, ...] | None = dataclasses.field(
        init=False, repr=False, compare=False
    )
    """The quantities, when every field is a plain float32 taken as it comes (nearly every
    block of many meters): such a block can be a Float32Run (`float32_run`)."""

    def __post_init__(self) -> None:
        layout = Layout.of([(f.offset, f.dtype, f.byte_order) for f in self.fields])
        object.__setattr__(self, "_layout", layout)
        object.__setattr__(self, "_plain", tuple(f.plain for f in self.fields))
        float32 = layout is not None and all(f.plain and f.scaler.as_float32 for f in self.fields)
        quantities = tuple(f.quantity for f in self.fields)
        object.__setattr__(self, "_float32", quantities if float32 else None)

    def decode(self, registers: Sequence[int]) -> tuple[dict[QuantityName, float], list[Problem]]:
        """Canonical values from this block's response; bad ones are reported, not raised.

        A value the meter marks as not available is a Problem of kind NOT_AVAILABLE
        (`quiet`): count it, do not log it.
        """
        if len(registers) != self.count:
            reason = f"response has {len(registers)} registers, {self.count} were requested"
            return {}, [Problem(f.quantity, f.address, reason) for f in self.fields]
        buffer = RegisterBuffer(registers)
        raws = self._raws(buffer)
        values: dict[QuantityName, float] = {}
        problems: list[Problem] = []
        for plan, raw, plain in zip(self.fields, raws, self._plain, strict=True):
            if plain:
                value = plan.scaler(raw)
                if math.isfinite(value):
                    values[plan.quantity] = value
                    continue
            try:
                values[plan.quantity] = self._value(buffer, plan, raw)
            except _Dropped as dropped:
                problems.append(Problem(plan.quantity, plan.address, dropped.reason, dropped.kind))
        return values, problems

    def float32_run(self, registers: Sequence[int]) -> Float32Run | None:
        """The block's values as they came, their decimals left to be made (a Read makes
        them when it is written), when every one is a finite float32 taken as it comes
        (nearly every block of many meters); None otherwise: `decode` then."""
        if self._float32 is None or len(registers) != self.count:
            return None
        raws = self._raws(RegisterBuffer(registers))
        if not all(map(math.isfinite, raws)):
            return None
        return Float32Run(self._float32, cast(tuple[float, ...], raws))

    def _raws(self, buffer: RegisterBuffer) -> tuple[int | float, ...]:
        if self._layout is not None:
            return self._layout.unpack(buffer)
        return tuple(buffer.value(f.offset, f.dtype, f.byte_order) for f in self.fields)

    def _value(self, buffer: RegisterBuffer, plan: FieldPlan, raw: int | float) -> float:
        if plan.not_available and isinstance(raw, int):
            pattern = raw & ((1 << (16 * WORDS[plan.dtype])) - 1)
            if pattern in plan.not_available:
                raise _Dropped(f"not available (0x{pattern:X})", ProblemKind.NOT_AVAILABLE)
        if plan.bits is not None and isinstance(raw, int):
            raw = bit_field(raw, WORDS[plan.dtype], *plan.bits)
        if plan.states is not None and raw not in plan.states:
            raise _Dropped(f"{raw} is not one of the states {sorted(plan.states)}")
        exponent = 0
        if plan.scale_factor is not None:
            exponent = self._scale_factor(buffer, plan.scale_factor, plan.scale_factor_order)
        value = plan.scaler(raw, exponent)
        if not math.isfinite(value):
            raise _Dropped(f"not a number: {raw}")
        if plan.valid_range is not None and not (
            plan.valid_range[0] <= value <= plan.valid_range[1]
        ):
            low, high = plan.valid_range
            raise _Dropped(f"{value} is outside [{low}, {high}]", ProblemKind.OUT_OF_RANGE)
        return value

    def _scale_factor(self, buffer: RegisterBuffer, address: int, order: ByteOrder) -> int:
        offset = address - self.address
        if not 0 <= offset < self.count:
            raise _Dropped(f"scale factor register {address} is not in this read")
        exponent = int(buffer.value(offset, DataType.INT16, order))
        if exponent == _SF_NOT_IMPLEMENTED:
            raise _Dropped(
                f"scale factor register {address} is not implemented", ProblemKind.NOT_AVAILABLE
            )
        if not -_SF_LIMIT <= exponent <= _SF_LIMIT:
            raise _Dropped(f"scale factor register {address} reads {exponent}")
        return exponent


class _Dropped(Exception):
    def __init__(self, reason: str, kind: ProblemKind = ProblemKind.INVALID) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def field_format(function: Function, field: FieldPlan) -> str:
    """How a value is encoded, as the commissioning tools show it: `float32 CDAB`, `bit`
    (a coil or discrete input), `uint16 ABCD bits 4..5`."""
    if function.bits:
        return "bit"
    text = f"{field.dtype} {field.byte_order}"
    if field.bits is not None:
        first, last = field.bits
        text += f" bit {first}" if first == last else f" bits {first}..{last}"
    return text


def bit_field(raw: int, words: int, first: int, last: int) -> int:
    """Bits `first`..`last` (0 = least significant) of the `words`-register integer `raw`
    (negative: two's complement), as an unsigned number."""
    return ((raw & ((1 << (16 * words)) - 1)) >> first) & ((1 << (last - first + 1)) - 1)


def _field(profile: Profile, register: RegisterSpec, block_start: int) -> FieldPlan:
    return FieldPlan(
        quantity=register.quantity,
        offset=register.address - block_start,
        dtype=register.type,
        byte_order=profile.byte_order_of(register),
        scaler=Scaler(register.type, register.scale, register.offset, register.transform),
        address=register.address,
        scale_factor=register.scale_factor,
        scale_factor_order=profile.byte_order,
        not_available=profile.not_available_of(register),
        valid_range=register.range,
        bits=register.bit_range,
        states=None if register.states is None else frozenset(register.states),
        unit=register.unit,
    )


def _span(register: RegisterSpec) -> tuple[int, int]:
    start, end = register.address, register.address + register.words
    if register.scale_factor is not None:
        start, end = min(start, register.scale_factor), max(end, register.scale_factor + 1)
    return start, end


def plan_reads(profile: Profile) -> tuple[ReadBlock, ...]:
    """The fewest read requests that cover every register the profile reads.

    A register with a scale factor register is read in the same request as it. Unconfirmed
    registers are left out unless the profile opts in (`Profile.read_registers`). A SunSpec
    profile must be resolved on the device first (`resolve_profile`): before, its
    addresses are offsets in the model.
    """
    blocks: list[ReadBlock] = []
    ordered = sorted(
        profile.read_registers, key=lambda r: (profile.function_of(r), _span(r), r.address)
    )
    for function, group in groupby(ordered, key=profile.function_of):
        limit, max_gap = _limits(profile, function)
        members: list[RegisterSpec] = []
        start = end = 0
        for register in group:
            reg_start, reg_end = _span(register)
            if (
                members
                and reg_start - end <= max_gap
                and max(end, reg_end) - min(start, reg_start) <= limit
            ):
                members.append(register)
                start, end = min(start, reg_start), max(end, reg_end)
                continue
            if members:
                blocks.append(_block(profile, function, start, end, members))
            members, start, end = [register], reg_start, reg_end
        blocks.append(_block(profile, function, start, end, members))
    return tuple(blocks)


def _limits(profile: Profile, function: Function) -> tuple[int, int]:
    """The most a read of the table may ask for, and the widest gap it may bridge. A bit
    table's read bridges any gap: unmapped coils cost a bit each in the reply, a request
    costs a round trip (a device that refuses them has the read split, see below)."""
    if function.bits:
        return profile.max_bits_per_read, profile.max_bits_per_read
    return profile.max_registers_per_read, profile.max_gap


_SHARED: list[tuple[Profile, tuple[ReadBlock, ...]]] = []


def shared_plan(profile: Profile) -> tuple[ReadBlock, ...]:
    """`plan_reads(profile)`, one plan for every meter whose (resolved) profile is equal:
    a gateway's hundreds of meters of one model hold one plan, not a copy each. Plans are
    immutable; there are as many as distinct profiles, a handful."""
    for known, plan in _SHARED:
        if known is profile or known == profile:
            return plan
    plan = plan_reads(profile)
    _SHARED.append((profile, plan))
    return plan


def _block(
    profile: Profile, function: Function, start: int, end: int, members: list[RegisterSpec]
) -> ReadBlock:
    return ReadBlock(
        function=function,
        address=start,
        count=end - start,
        fields=tuple(_field(profile, r, start) for r in members),
    )


# Splitting refused reads. A device answers a block it cannot serve whole with exception
# 2 (illegal data address): a register of the profile this unit lacks, or an unmapped gap
# it does not answer. Such a block is bisected by its fields until every part is either
# read or a single field the device refuses on its own (agent.modbus.codec.refusals, which
# also asks for the whole block again later).


def sub_block(block: ReadBlock, fields: Sequence[FieldPlan]) -> ReadBlock:
    """The smallest read of `block`'s table that covers `fields` (non-empty)."""
    if not fields:
        raise ValueError("a read block needs at least one field")
    ordered = sorted(fields, key=lambda f: f.address)
    # A field's span includes its scale factor register, which must come in the same read.
    start = min(f.span[0] for f in ordered)
    end = max(f.span[1] for f in ordered)
    return ReadBlock(
        function=block.function,
        address=start,
        count=end - start,
        fields=tuple(replace(f, offset=f.address - start) for f in ordered),
    )


def split_block(block: ReadBlock) -> tuple[ReadBlock, ReadBlock] | None:
    """A refused block as two reads with half of its fields each; None for a single field."""
    fields = sorted(block.fields, key=lambda f: f.address)
    if len(fields) < 2:
        return None
    middle = len(fields) // 2
    return sub_block(block, fields[:middle]), sub_block(block, fields[middle:])


def without_registers(
    plan: Sequence[ReadBlock], bad: Collection[tuple[Function, int]]
) -> tuple[ReadBlock, ...]:
    """The plan with the fields at `bad` (table, address) left out and no read covering them.

    A block that held a bad field becomes the runs of good fields on either side of it.
    """
    result: list[ReadBlock] = []
    for block in plan:
        if not any((block.function, f.address) in bad for f in block.fields):
            result.append(block)
            continue
        run: list[FieldPlan] = []
        for field in sorted(block.fields, key=lambda f: f.address):
            if (block.function, field.address) in bad:
                if run:
                    result.append(sub_block(block, run))
                run = []
            else:
                run.append(field)
        if run:
            result.append(sub_block(block, run))
    return tuple(result)
