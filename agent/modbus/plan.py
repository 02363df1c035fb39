"""Request planning: a profile's registers in the fewest reads the device allows. Pure.

Reads are grouped per register table (function code), sorted by address, and grown
greedily while the block stays within the device's request size and bridges no wider a
gap of unmapped registers than the device answers. For intervals sorted by start, that
greedy growth gives the fewest blocks.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from itertools import groupby

from agent.modbus.decode import WORDS, ByteOrder, DataType, DecodeError, RegisterBuffer
from agent.modbus.scale import Scaler
from agent.profiles.model import Function, Profile, RegisterSpec
from agent.wire import Quantity


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """Where one quantity sits inside a read block and how it becomes a canonical value."""

    quantity: Quantity
    offset: int
    dtype: DataType
    byte_order: ByteOrder
    scaler: Scaler
    address: int


@dataclass(frozen=True, slots=True)
class Problem:
    """A quantity dropped from one read, and why."""

    quantity: Quantity
    address: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus read request and the quantities its response carries."""

    function: Function
    address: int
    count: int
    fields: tuple[FieldPlan, ...]

    def decode(self, registers: Sequence[int]) -> tuple[dict[Quantity, float], list[Problem]]:
        """Canonical values from this block's response; bad ones are reported, not raised."""
        if len(registers) != self.count:
            reason = f"response has {len(registers)} registers, {self.count} were requested"
            return {}, [Problem(f.quantity, f.address, reason) for f in self.fields]
        buffer = RegisterBuffer(registers)
        values: dict[Quantity, float] = {}
        problems: list[Problem] = []
        for field in self.fields:
            try:
                raw = buffer.value(field.offset, field.dtype, field.byte_order)
            except DecodeError as exc:
                problems.append(Problem(field.quantity, field.address, str(exc)))
                continue
            value = field.scaler(raw)
            if not math.isfinite(value):
                problems.append(Problem(field.quantity, field.address, f"not a number: {raw}"))
                continue
            values[field.quantity] = value
        return values, problems


def _field(profile: Profile, register: RegisterSpec, block_start: int) -> FieldPlan:
    return FieldPlan(
        quantity=register.quantity,
        offset=register.address - block_start,
        dtype=register.type,
        byte_order=profile.byte_order_of(register),
        scaler=Scaler(register.type, register.scale, register.offset),
        address=register.address,
    )


def plan_reads(profile: Profile) -> tuple[ReadBlock, ...]:
    """The fewest read requests that cover every register of the profile."""
    limit, max_gap = profile.max_registers_per_read, profile.max_gap
    blocks: list[ReadBlock] = []
    ordered = sorted(profile.registers, key=lambda r: (profile.function_of(r), r.address))
    for function, group in groupby(ordered, key=profile.function_of):
        members: list[RegisterSpec] = []
        start = end = 0
        for register in group:
            reg_end = register.address + register.words
            if members and register.address - end <= max_gap and max(end, reg_end) - start <= limit:
                members.append(register)
                end = max(end, reg_end)
                continue
            if members:
                blocks.append(_block(profile, function, start, end, members))
            members, start, end = [register], register.address, reg_end
        blocks.append(_block(profile, function, start, end, members))
    return tuple(blocks)


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
# it does not answer. The poller bisects such a block by its fields until every part is
# either read or a single field the device refuses on its own; those are bad registers.


def sub_block(block: ReadBlock, fields: Sequence[FieldPlan]) -> ReadBlock:
    """The smallest read of `block`'s table that covers `fields` (non-empty)."""
    if not fields:
        raise ValueError("a read block needs at least one field")
    ordered = sorted(fields, key=lambda f: f.address)
    start = ordered[0].address
    end = max(f.address + WORDS[f.dtype] for f in ordered)
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
