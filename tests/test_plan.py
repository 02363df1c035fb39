"""Read planning: the fewest reads within the device's limits, and decoding their responses."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.modbus.codec.decode import WORDS, ByteOrder, DataType
from agent.modbus.codec.plan import FieldPlan, Problem, ReadBlock, plan_reads
from agent.profiles import load_profile
from agent.profiles.model import Function, Profile, RegisterSpec
from greengauge.contract import UNITS, Quantity

Q = Quantity
T = DataType
H = Function.HOLDING
I = Function.INPUT  # noqa: E741
ALL_QUANTITIES = list(Quantity)


def reg(
    quantity: Quantity,
    address: int,
    dtype: DataType = T.FLOAT32,
    *,
    function: Function | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    byte_order: ByteOrder | None = None,
) -> RegisterSpec:
    return RegisterSpec(
        quantity=quantity,
        address=address,
        type=dtype,
        unit=UNITS[quantity],
        scale=scale,
        offset=offset,
        function=function,
        byte_order=byte_order,
        source="test",
    )


def profile(
    registers: Sequence[RegisterSpec],
    *,
    limit: int = 125,
    max_gap: int = 0,
    function: Function = Function.HOLDING,
    byte_order: ByteOrder = ByteOrder.ABCD,
) -> Profile:
    return Profile(
        model="synthetic",
        manufacturer="Test",
        description="synthetic profile for planner tests",
        sources={"test": "tests/test_plan.py"},
        function=function,
        byte_order=byte_order,
        max_registers_per_read=limit,
        max_gap=max_gap,
        registers=list(registers),
    )


def shape(blocks: Sequence[ReadBlock]) -> list[tuple[Function, int, int]]:
    return [(b.function, b.address, b.count) for b in blocks]


def summary(blocks: Sequence[ReadBlock]) -> list[tuple[object, ...]]:
    """Everything about a plan except the scalers (which compare by identity)."""
    return [
        (b.function, b.address, b.count, [(f.quantity, f.offset, f.byte_order) for f in b.fields])
        for b in blocks
    ]


def registers_for(values: dict[int, tuple[float, DataType]], start: int, count: int) -> list[int]:
    """A response of `count` registers from `start`, with big-endian values at their addresses."""
    fmt = {T.INT16: "h", T.UINT16: "H", T.INT32: "i", T.UINT32: "I", T.FLOAT32: "f"}
    fmt |= {T.INT64: "q", T.UINT64: "Q", T.FLOAT64: "d"}
    response = [0] * count
    for address, (value, dtype) in values.items():
        data = struct.pack(">" + fmt[dtype], value)
        for i in range(0, len(data), 2):
            response[address - start + i // 2] = int.from_bytes(data[i : i + 2], "big")
    return response


# --- the built-in profiles ----------------------------------------------------------------


def test_sdm630_plan() -> None:
    sdm = load_profile("eastron_sdm630")
    blocks = plan_reads(sdm)
    assert shape(blocks) == [(I, 0x0000, 80), (I, 0x0156, 16)]
    assert len(blocks[0].fields) == 20
    assert len(blocks[1].fields) == 8


def test_dtsu666_plan() -> None:
    dtsu = load_profile("chint_dtsu666")
    # The per-phase energies beside the totals are unconfirmed: not read.
    assert shape(plan_reads(dtsu)) == [
        (H, 0x101E, 2),
        (H, 0x1028, 2),
        (H, 0x2000, 34),
        (H, 0x202A, 8),
        (H, 0x2044, 2),
    ]


@pytest.mark.parametrize("name", ["eastron_sdm630", "chint_dtsu666"])
def test_builtin_plan_fields(name: str) -> None:
    prof = load_profile(name)
    blocks = plan_reads(prof)
    fields = [f for b in blocks for f in b.fields]
    assert sorted(f.quantity for f in fields) == sorted(r.quantity for r in prof.read_registers)
    by_quantity = {r.quantity: r for r in prof.registers}
    for block in blocks:
        assert block.count <= prof.max_registers_per_read
        for field in block.fields:
            spec = by_quantity[field.quantity]
            assert field.address == spec.address
            assert field.offset == spec.address - block.address
            assert field.dtype is spec.type
            assert field.byte_order is ByteOrder.ABCD
            # the field turns a raw value into raw * scale + offset
            assert field.scaler(1000) == pytest.approx(1000 * spec.scale + spec.offset)


def test_dtsu666_fields_carry_the_scale() -> None:
    blocks = plan_reads(load_profile("chint_dtsu666"))
    fields = {f.quantity: f for b in blocks for f in b.fields}
    assert fields[Q.VOLTAGE_L1].scaler(2301) == 230.1
    assert fields[Q.CURRENT_L1].scaler(6517) == 6.517
    assert fields[Q.FREQUENCY].scaler(4998) == 49.98
    assert fields[Q.ENERGY_ACTIVE_IMPORT].scaler(12345) == 12345.0


# --- synthetic profiles: limits -----------------------------------------------------------


def test_a_register_alone() -> None:
    blocks = plan_reads(profile([reg(Q.VOLTAGE_L1, 100)]))
    assert shape(blocks) == [(H, 100, 2)]
    [field] = blocks[0].fields
    assert isinstance(field, FieldPlan)
    assert (field.quantity, field.offset, field.dtype, field.byte_order, field.address) == (
        Q.VOLTAGE_L1,
        0,
        T.FLOAT32,
        ByteOrder.ABCD,
        100,
    )
    assert field.scaler(230.5) == 230.5


@pytest.mark.parametrize("dtype", list(DataType))
def test_a_register_alone_reads_its_words(dtype: DataType) -> None:
    assert shape(plan_reads(profile([reg(Q.COUNT, 7, dtype)]))) == [(H, 7, WORDS[dtype])]


def test_contiguous_registers_split_at_the_limit() -> None:
    regs = [reg(q, 2 * i) for i, q in enumerate(ALL_QUANTITIES[:10])]  # 0..19
    assert shape(plan_reads(profile(regs, limit=8))) == [(H, 0, 8), (H, 8, 8), (H, 16, 4)]


def test_a_value_never_straddles_two_reads() -> None:
    # limit 5 holds two float32 (4 registers), never two and a half
    regs = [reg(q, 2 * i) for i, q in enumerate(ALL_QUANTITIES[:5])]  # 0..9
    assert shape(plan_reads(profile(regs, limit=5))) == [(H, 0, 4), (H, 4, 4), (H, 8, 2)]


def test_limit_one_reads_each_16_bit_register_alone() -> None:
    regs = [reg(q, i, T.UINT16) for i, q in enumerate(ALL_QUANTITIES[:4])]
    assert shape(plan_reads(profile(regs, limit=1))) == [(H, i, 1) for i in range(4)]


def test_limit_exactly_filled() -> None:
    regs = [reg(q, 2 * i) for i, q in enumerate(ALL_QUANTITIES[:4])]  # 0..7
    assert shape(plan_reads(profile(regs, limit=8))) == [(H, 0, 8)]
    assert shape(plan_reads(profile(regs, limit=7))) == [(H, 0, 6), (H, 6, 2)]


def test_full_125_register_read() -> None:
    # 41 float32 at 0..81, then a uint16 at 124: a gap of 42 unmapped registers
    regs = [reg(q, 2 * i) for i, q in enumerate(ALL_QUANTITIES[:41])]
    regs.append(reg(Q.COUNT, 124, T.UINT16))
    assert shape(plan_reads(profile(regs, max_gap=41))) == [(H, 0, 82), (H, 124, 1)]
    assert shape(plan_reads(profile(regs, max_gap=42))) == [(H, 0, 125)]
    assert shape(plan_reads(profile(regs, limit=124, max_gap=42))) == [(H, 0, 82), (H, 124, 1)]


# --- gaps ---------------------------------------------------------------------------------


def test_max_gap_zero_never_bridges() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 3)]  # [0,2) gap 1 [3,5)
    assert shape(plan_reads(profile(regs, max_gap=0))) == [(H, 0, 2), (H, 3, 2)]


def test_gap_equal_to_max_gap_is_bridged() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 3)]
    blocks = plan_reads(profile(regs, max_gap=1))
    assert shape(blocks) == [(H, 0, 5)]
    assert [f.offset for f in blocks[0].fields] == [0, 3]


def test_gap_wider_than_max_gap_is_not_bridged() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 12)]  # gap 10
    assert shape(plan_reads(profile(regs, max_gap=9))) == [(H, 0, 2), (H, 12, 2)]
    assert shape(plan_reads(profile(regs, max_gap=10))) == [(H, 0, 14)]


def test_adjacent_registers_share_a_read_with_max_gap_zero() -> None:
    regs = [reg(Q.VOLTAGE_L1, 10), reg(Q.CURRENT_L1, 12, T.UINT16), reg(Q.FREQUENCY, 13, T.INT64)]
    blocks = plan_reads(profile(regs))
    assert shape(blocks) == [(H, 10, 7)]
    assert [(f.quantity, f.offset) for f in blocks[0].fields] == [
        (Q.VOLTAGE_L1, 0),
        (Q.CURRENT_L1, 2),
        (Q.FREQUENCY, 3),
    ]


def test_bridging_stops_at_the_limit() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 4), reg(Q.VOLTAGE_L3, 8)]
    assert shape(plan_reads(profile(regs, limit=6, max_gap=2))) == [(H, 0, 6), (H, 8, 2)]


# --- overlaps and 64-bit values -----------------------------------------------------------


def test_overlapping_registers_share_a_read() -> None:
    # a float32 and the uint16 of its low word: one read of two registers
    regs = [reg(Q.ENERGY_ACTIVE_IMPORT, 0, T.UINT32), reg(Q.COUNT, 1, T.UINT16)]
    blocks = plan_reads(profile(regs))
    assert shape(blocks) == [(H, 0, 2)]
    assert [f.offset for f in blocks[0].fields] == [0, 1]


def test_registers_at_the_same_address() -> None:
    regs = [reg(Q.ENERGY_ACTIVE_IMPORT, 5, T.UINT64), reg(Q.COUNT, 5, T.UINT16)]
    blocks = plan_reads(profile(regs))
    assert shape(blocks) == [(H, 5, 4)]
    assert {f.offset for f in blocks[0].fields} == {0}


def test_overlap_extends_the_block() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 1)]  # [0,2) and [1,3)
    assert shape(plan_reads(profile(regs))) == [(H, 0, 3)]
    assert shape(plan_reads(profile(regs, limit=2))) == [(H, 0, 2), (H, 1, 2)]


def test_a_short_register_inside_a_long_one_does_not_extend_it() -> None:
    regs = [reg(Q.ENERGY_ACTIVE_IMPORT, 0, T.FLOAT64), reg(Q.COUNT, 2, T.INT16)]
    assert shape(plan_reads(profile(regs, limit=4))) == [(H, 0, 4)]


def test_64_bit_value_that_would_pass_the_limit_starts_a_new_read() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 2), reg(Q.VOLTAGE_L3, 4)]
    regs.append(reg(Q.ENERGY_ACTIVE_IMPORT, 6, T.FLOAT64))  # [6,10)
    blocks = plan_reads(profile(regs, limit=8))
    assert shape(blocks) == [(H, 0, 6), (H, 6, 4)]
    assert blocks[1].fields[0].offset == 0


def test_64_bit_value_that_exactly_fills_the_limit() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 2), reg(Q.ENERGY_ACTIVE_IMPORT, 4, T.UINT64)]
    blocks = plan_reads(profile(regs, limit=8))
    assert shape(blocks) == [(H, 0, 8)]
    assert blocks[0].fields[-1].offset == 4


def test_64_bit_value_at_the_top_of_the_address_space() -> None:
    regs = [reg(Q.ENERGY_ACTIVE_IMPORT, 0xFFFC, T.UINT64), reg(Q.COUNT, 0xFFFA, T.UINT16)]
    assert shape(plan_reads(profile(regs, max_gap=1))) == [(H, 0xFFFA, 6)]
    assert shape(plan_reads(profile(regs))) == [(H, 0xFFFA, 1), (H, 0xFFFC, 4)]


def test_64_bit_values_with_limit_four() -> None:
    regs = [reg(q, 4 * i, T.INT64) for i, q in enumerate(ALL_QUANTITIES[:3])]
    assert shape(plan_reads(profile(regs, limit=4))) == [(H, 0, 4), (H, 4, 4), (H, 8, 4)]


# --- functions ----------------------------------------------------------------------------


def test_input_and_holding_never_share_a_read() -> None:
    regs = [
        reg(Q.VOLTAGE_L1, 0),
        reg(Q.VOLTAGE_L2, 2, function=I),
        reg(Q.VOLTAGE_L3, 4),
        reg(Q.CURRENT_L1, 6, function=I),
    ]
    blocks = plan_reads(profile(regs, max_gap=10))
    assert shape(blocks) == [(H, 0, 6), (I, 2, 6)]
    assert [f.quantity for f in blocks[0].fields] == [Q.VOLTAGE_L1, Q.VOLTAGE_L3]
    assert [f.quantity for f in blocks[1].fields] == [Q.VOLTAGE_L2, Q.CURRENT_L1]


def test_function_override_against_the_profile_default() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0, function=H), reg(Q.VOLTAGE_L2, 2)]
    blocks = plan_reads(profile(regs, function=Function.INPUT))
    assert shape(blocks) == [(H, 0, 2), (I, 2, 2)]


def test_same_address_in_both_tables() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0, function=H), reg(Q.VOLTAGE_L2, 0, function=I)]
    assert shape(plan_reads(profile(regs))) == [(H, 0, 2), (I, 0, 2)]


def test_byte_order_override_reaches_the_field() -> None:
    regs = [reg(Q.VOLTAGE_L1, 0, byte_order=ByteOrder.DCBA), reg(Q.VOLTAGE_L2, 2)]
    blocks = plan_reads(profile(regs, byte_order=ByteOrder.CDAB))
    assert [f.byte_order for f in blocks[0].fields] == [ByteOrder.DCBA, ByteOrder.CDAB]


def test_profile_order_does_not_matter() -> None:
    regs = [reg(q, 3 * i) for i, q in enumerate(ALL_QUANTITIES[:12])]
    shuffled = regs[:]
    random.Random(7).shuffle(shuffled)
    planned = plan_reads(profile(regs, limit=10, max_gap=1))
    assert summary(plan_reads(profile(shuffled, limit=10, max_gap=1))) == summary(planned)
    assert shape(planned) == [(H, 0, 8), (H, 9, 8), (H, 18, 8), (H, 27, 8)]


# --- property: covering, limits, gaps and minimality --------------------------------------


def _feasible(members: Sequence[tuple[int, int]], limit: int, max_gap: int) -> bool:
    """Whether one read can carry these (start, end) ranges."""
    ordered = sorted(members)
    if max(e for _, e in ordered) - ordered[0][0] > limit:
        return False
    covered = ordered[0][1]
    for start, end in ordered[1:]:
        if start - covered > max_gap:
            return False
        covered = max(covered, end)
    return True


def brute_force_min_reads(ranges: Sequence[tuple[int, int]], limit: int, max_gap: int) -> int:
    """The fewest groups the ranges can be split in, trying every split (small inputs only)."""
    n = len(ranges)

    @cache
    def fewest(remaining: int) -> int:
        if not remaining:
            return 0
        first = remaining & -remaining
        rest = remaining ^ first
        best = n + 1
        subset = rest
        while True:
            group = subset | first
            members = [ranges[i] for i in range(n) if group >> i & 1]
            if _feasible(members, limit, max_gap):
                best = min(best, 1 + fewest(remaining ^ group))
            if not subset:
                break
            subset = (subset - 1) & rest
        return best

    return fewest((1 << n) - 1)


@st.composite
def synthetic_profiles(draw: st.DrawFn) -> Profile:
    limit = draw(st.integers(1, 12))
    types = [t for t in DataType if WORDS[t] <= limit]
    count = draw(st.integers(1, 7))
    regs = [
        reg(
            ALL_QUANTITIES[i],
            draw(st.integers(0, 30)),
            draw(st.sampled_from(types)),
            function=draw(st.sampled_from([None, H, I])),
        )
        for i in range(count)
    ]
    return profile(
        regs,
        limit=limit,
        max_gap=draw(st.integers(0, 4)),
        # Bit tables hold one-bit values, not these types: tests/test_coils_bits.py.
        function=draw(st.sampled_from([H, I])),
    )


@settings(max_examples=400, deadline=None)
@given(prof=synthetic_profiles())
def test_plan_properties(prof: Profile) -> None:
    blocks = plan_reads(prof)
    specs = {r.quantity: r for r in prof.registers}

    # every register in exactly one read, of its own function
    planned = [(f.quantity, b.function) for b in blocks for f in b.fields]
    assert sorted(q for q, _ in planned) == sorted(specs)
    for quantity, function in planned:
        assert prof.function_of(specs[quantity]) is function

    for block in blocks:
        assert 1 <= block.count <= prof.max_registers_per_read
        ranges = []
        for field in block.fields:
            spec = specs[field.quantity]
            assert field.address == spec.address
            assert field.offset == spec.address - block.address
            assert field.offset >= 0
            assert field.offset + spec.words <= block.count
            ranges.append((spec.address, spec.address + spec.words))
        # tight: the read starts at its first register and ends with its last
        assert block.address == min(s for s, _ in ranges)
        assert block.address + block.count == max(e for _, e in ranges)
        assert _feasible(ranges, prof.max_registers_per_read, prof.max_gap)

    # the fewest reads, per function
    for function in Function:
        ranges = [
            (r.address, r.address + r.words)
            for r in prof.registers
            if prof.function_of(r) is function
        ]
        expected = (
            brute_force_min_reads(ranges, prof.max_registers_per_read, prof.max_gap)
            if ranges
            else 0
        )
        assert sum(b.function is function for b in blocks) == expected


def test_brute_force_reference_itself() -> None:
    # the reference must be able to tell a good plan from a bad one
    assert brute_force_min_reads([(0, 2), (2, 4), (4, 6)], limit=4, max_gap=0) == 2
    assert brute_force_min_reads([(0, 2), (3, 5)], limit=10, max_gap=0) == 2
    assert brute_force_min_reads([(0, 2), (3, 5)], limit=10, max_gap=1) == 1
    assert brute_force_min_reads([(0, 4), (1, 2), (3, 7)], limit=4, max_gap=0) == 2


# --- ReadBlock.decode ---------------------------------------------------------------------


def _one_block(prof: Profile) -> ReadBlock:
    blocks = plan_reads(prof)
    assert len(blocks) == 1
    return blocks[0]


def test_decode_scales_raw_values() -> None:
    prof = profile(
        [
            reg(Q.VOLTAGE_L1, 0, scale=0.1),
            reg(Q.CURRENT_L1, 2, T.INT16, scale=0.001),
            reg(Q.ENERGY_ACTIVE_IMPORT, 3, T.UINT32, scale=0.01, offset=5.0),
            reg(Q.POWER_ACTIVE, 5, T.INT64, scale=-1.0),
            reg(Q.FREQUENCY, 9, T.UINT16, offset=-10.0),
        ]
    )
    block = _one_block(prof)
    response = registers_for(
        {
            0: (2301.0, T.FLOAT32),
            2: (-1234, T.INT16),
            3: (123_456_789, T.UINT32),
            5: (-4200, T.INT64),
            9: (60, T.UINT16),
        },
        0,
        10,
    )
    values, problems = block.decode(response)
    assert problems == []
    # raw * scale + offset, with the meter's digits (no 230.10000000000002)
    assert values == {
        Q.VOLTAGE_L1: 230.1,
        Q.CURRENT_L1: -1.234,
        Q.ENERGY_ACTIVE_IMPORT: 1_234_572.89,
        Q.POWER_ACTIVE: 4200.0,
        Q.FREQUENCY: 50.0,
    }


def test_decode_uses_each_fields_byte_order() -> None:
    prof = profile(
        [
            reg(Q.ENERGY_ACTIVE_IMPORT, 0, T.UINT32),
            reg(Q.COUNT, 2, T.UINT32, byte_order=ByteOrder.ABCD),
        ],
        byte_order=ByteOrder.CDAB,
    )
    values, problems = _one_block(prof).decode([0x0002, 0x0001, 0x0001, 0x0002])
    assert problems == []
    assert values == {Q.ENERGY_ACTIVE_IMPORT: 0x00010002, Q.COUNT: 0x00010002}


def test_decode_the_dtsu666_voltage_block() -> None:
    block = plan_reads(load_profile("chint_dtsu666"))[2]
    assert block.address == 0x2000
    raw = {0x2000 + 2 * i: (2301.0 + i, T.FLOAT32) for i in range(17)}
    values, problems = block.decode(registers_for(raw, 0x2000, 34))
    assert problems == []
    assert values[Q.VOLTAGE_L1_L2] == 230.1
    assert values[Q.VOLTAGE_L1] == 230.4
    assert values[Q.CURRENT_L1] == 2.307
    assert values[Q.POWER_REACTIVE_L3] == 231.7
    assert len(values) == 17


def test_decode_the_sdm630_block_with_bridged_gaps() -> None:
    block = plan_reads(load_profile("eastron_sdm630"))[0]
    raw = {f.address: (float(f.address), T.FLOAT32) for f in block.fields}
    response = registers_for(raw, 0, 80)
    response[0x12] = 0xFFFF  # garbage in an unmapped register is ignored
    values, problems = block.decode(response)
    assert problems == []
    assert values == {f.quantity: float(f.address) for f in block.fields}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_is_a_problem_and_the_others_are_kept(bad: float) -> None:
    prof = profile([reg(Q.VOLTAGE_L1, 10), reg(Q.VOLTAGE_L2, 12), reg(Q.VOLTAGE_L3, 14)])
    response = registers_for(
        {10: (230.0, T.FLOAT32), 12: (bad, T.FLOAT32), 14: (231.0, T.FLOAT32)}, 10, 6
    )
    values, problems = _one_block(prof).decode(response)
    assert values == {Q.VOLTAGE_L1: 230.0, Q.VOLTAGE_L3: 231.0}
    assert len(problems) == 1
    assert problems[0].quantity is Q.VOLTAGE_L2
    assert problems[0].address == 12
    assert "not a number" in problems[0].reason


def test_float64_nan_is_a_problem() -> None:
    prof = profile([reg(Q.ENERGY_ACTIVE_IMPORT, 0, T.FLOAT64)])
    values, problems = _one_block(prof).decode([0x7FF8, 0, 0, 0])
    assert values == {}
    assert [(p.quantity, p.address) for p in problems] == [(Q.ENERGY_ACTIVE_IMPORT, 0)]


def test_finite_raw_that_scales_to_infinity_is_a_problem() -> None:
    prof = profile([reg(Q.POWER_ACTIVE, 0, T.FLOAT64, scale=10.0)])
    response = registers_for({0: (1.0e308, T.FLOAT64)}, 0, 4)
    values, problems = _one_block(prof).decode(response)
    assert values == {}
    assert [p.quantity for p in problems] == [Q.POWER_ACTIVE]


@pytest.mark.parametrize("received", [0, 3, 5, 7])
def test_wrong_register_count_makes_every_field_a_problem(received: int) -> None:
    prof = profile(
        [reg(Q.VOLTAGE_L1, 0), reg(Q.VOLTAGE_L2, 2), reg(Q.COUNT, 5, T.UINT16)], max_gap=1
    )
    block = _one_block(prof)
    assert block.count == 6
    values, problems = block.decode([0] * received)
    assert values == {}
    assert problems == [
        Problem(Q.VOLTAGE_L1, 0, f"response has {received} registers, 6 were requested"),
        Problem(Q.VOLTAGE_L2, 2, f"response has {received} registers, 6 were requested"),
        Problem(Q.COUNT, 5, f"response has {received} registers, 6 were requested"),
    ]


def test_decode_of_zero_registers_gives_zero_values() -> None:
    prof = profile([reg(Q.VOLTAGE_L1, 0, offset=1.5), reg(Q.COUNT, 2, T.INT16)])
    values, problems = _one_block(prof).decode([0, 0, 0])
    assert problems == []
    assert values == {Q.VOLTAGE_L1: 1.5, Q.COUNT: 0.0}
    assert all(type(v) is float for v in values.values())
