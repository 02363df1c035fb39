"""Splitting a read the device refused: halves by fields, and plans without bad registers
(the bisection over time: test_refusals)."""

from __future__ import annotations

from collections.abc import Sequence

from agent.modbus.codec.decode import WORDS, ByteOrder, DataType
from agent.modbus.codec.plan import (
    FieldPlan,
    ReadBlock,
    plan_reads,
    split_block,
    sub_block,
    without_registers,
)
from agent.modbus.codec.scale import Scaler
from agent.profiles.model import Function, Profile, RegisterSpec
from greengauge.contract import UNITS, Quantity

QUANTITIES = list(Quantity)


def profile(addresses: Sequence[int], max_gap: int = 10) -> Profile:
    return Profile(
        model="split",
        manufacturer="tests",
        description="split",
        sources={"t": "t"},
        function=Function.INPUT,
        byte_order=ByteOrder.ABCD,
        max_gap=max_gap,
        registers=[
            RegisterSpec(
                quantity=QUANTITIES[i],
                address=a,
                type=DataType.FLOAT32,
                unit=UNITS[QUANTITIES[i]],
                source="t",
            )
            for i, a in enumerate(addresses)
        ],
    )


def covers(block: ReadBlock) -> set[int]:
    return set(range(block.address, block.address + block.count))


def check_block(block: ReadBlock) -> None:
    """Every field lies inside the block at its offset, and the block is no wider than them."""
    assert block.fields
    for field in block.fields:
        assert field.offset == field.address - block.address
        assert field.offset + WORDS[field.dtype] <= block.count
    assert block.address == min(f.address for f in block.fields)
    assert block.address + block.count == max(f.address + WORDS[f.dtype] for f in block.fields)


def test_split_halves_the_fields() -> None:
    (block,) = plan_reads(profile([0, 2, 4, 10, 12]))
    assert (block.address, block.count) == (0, 14)
    parts = split_block(block)
    assert parts is not None
    first, second = parts
    assert [f.address for f in first.fields] == [0, 2]
    assert [f.address for f in second.fields] == [4, 10, 12]
    assert (first.address, first.count) == (0, 4)
    assert (second.address, second.count) == (4, 10)
    for part in parts:
        check_block(part)


def test_a_single_field_cannot_split() -> None:
    (block,) = plan_reads(profile([7]))
    assert split_block(block) is None


def test_without_registers_cuts_blocks_around_bad_ones() -> None:
    plan = plan_reads(profile([0, 2, 4, 6, 20, 22]))
    assert len(plan) == 2
    result = without_registers(plan, {(Function.INPUT, 4)})
    assert [[f.address for f in b.fields] for b in result] == [[0, 2], [6], [20, 22]]
    for block in result:
        check_block(block)
        assert 4 not in covers(block) and 5 not in covers(block)


def test_without_registers_leaves_other_tables_and_empties_alone() -> None:
    plan = plan_reads(profile([0, 2]))
    assert without_registers(plan, set()) == plan
    assert without_registers(plan, {(Function.HOLDING, 0)}) == plan
    assert without_registers(plan, {(Function.INPUT, 0), (Function.INPUT, 2)}) == ()


def test_sub_block_decodes_like_the_whole() -> None:
    (block,) = plan_reads(profile([0, 2, 6]))
    registers = [0x4348, 0, 0x4349, 0, 0, 0, 0x434A, 0]  # 200.0, 201.0, 202.0
    whole, _ = block.decode(registers)
    part = sub_block(block, block.fields[1:])
    values, problems = part.decode(registers[2:])
    assert problems == []
    assert values == {q: v for q, v in whole.items() if q in values}
    assert len(values) == 2


def test_a_split_keeps_a_fields_scale_factor_register_in_its_read() -> None:
    def field(quantity: Quantity, address: int, scale_factor: int) -> FieldPlan:
        return FieldPlan(
            quantity=quantity,
            offset=address - 100,
            dtype=DataType.INT16,
            byte_order=ByteOrder.ABCD,
            scaler=Scaler(DataType.INT16, 1.0, 0.0),
            address=address,
            scale_factor=scale_factor,
        )

    current = field(Quantity.CURRENT_L1, 103, 106)
    voltage = field(Quantity.VOLTAGE_L1, 108, 115)
    block = ReadBlock(Function.HOLDING, 100, 16, (current, voltage))
    part = sub_block(block, [current])
    assert (part.address, part.count) == (103, 4)  # 103..106: the value and its sunssf
    decoded, problems = part.decode([200, 0, 0, 0xFFFF])  # raw 200, sf -1
    assert problems == []
    assert decoded == {Quantity.CURRENT_L1: 20.0}
