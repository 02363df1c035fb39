"""Coils and discrete inputs (FC1/FC2), bit fields and enumerations: profile validation,
planning, decoding, the TCP client's bit replies and the simulator's layout. Pure, except
the TCP client tests, which use a scripted server on loopback."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_modbus_tcp import Request, frame, server

from agent.check import check_report
from agent.modbus.codec.decode import WORDS, ByteOrder, DataType, encode
from agent.modbus.codec.plan import bit_field, plan_reads
from agent.modbus.errors import ReadError
from agent.profiles import load_profile
from agent.profiles.model import MAX_BITS_PER_READ, Function, Profile
from agent.simulator.server import Encoding, tables
from greengauge.contract import UNITS, Quantity, QuantityName

# Dimensionless quantities stand in for states until quantities can be named by users.
STATE_QUANTITIES = [q for q in Quantity if UNITS[q] == "1"]
PROFILE = Path(__file__).parent / "profiles" / "breaker_status.yaml"
INTEGERS = [t for t in DataType if t not in (DataType.FLOAT32, DataType.FLOAT64)]


def spec(quantity: Quantity, address: int, **extra: Any) -> dict[str, Any]:
    return {
        "quantity": quantity.value,
        "address": address,
        "unit": UNITS[quantity],
        "source": "t",
        **extra,
    }


def profile_of(registers: list[dict[str, Any]], **extra: Any) -> Profile:
    return Profile.model_validate(
        {
            "model": "states",
            "manufacturer": "t",
            "description": "t",
            "sources": {"t": "t"},
            "function": "holding",
            "registers": registers,
            **extra,
        }
    )


# --- profiles ---------------------------------------------------------------------------


def test_a_coil_is_one_bit_read_as_0_or_1() -> None:
    profile = profile_of([spec(Quantity.COUNT, 5, function="coil", kind="instantaneous")])
    [register] = profile.registers
    assert register.function is Function.COIL and register.type is DataType.UINT16
    assert Function.COIL.code == 1 and Function.DISCRETE_INPUT.code == 2


def test_a_profile_of_a_bit_table_gives_its_registers_the_table() -> None:
    profile = profile_of([spec(Quantity.POWER_FACTOR, 5)], function="discrete_input")
    assert profile.registers[0].function is Function.DISCRETE_INPUT


@pytest.mark.parametrize(
    ("number", "function", "address"),
    [
        (1, Function.COIL, 0),
        (9999, Function.COIL, 9998),
        (10001, Function.DISCRETE_INPUT, 0),
        (100001, Function.DISCRETE_INPUT, 0),
        (165536, Function.DISCRETE_INPUT, 65535),
    ],
)
def test_modicon_numbers_name_the_bit_tables(number: int, function: Function, address: int) -> None:
    profile = profile_of([spec(Quantity.POWER_FACTOR, number)], addressing="modicon")
    [register] = profile.registers
    assert (register.function, register.address, register.documented) == (
        function,
        address,
        number,
    )


@pytest.mark.parametrize(
    ("register", "expected"),
    [
        (
            spec(Quantity.POWER_FACTOR, 1, function="coil", type="float32"),
            "a coil is one bit; leave type out",
        ),
        (spec(Quantity.POWER_FACTOR, 1, function="coil", bits=0), "a coil is one bit: no bits"),
        (spec(Quantity.POWER_FACTOR, 1, type="uint16", bits=16), "bits 16..16 are not within"),
        (spec(Quantity.POWER_FACTOR, 1, type="uint16", bits=[5, 3]), "bits 5..3 are not within"),
        (spec(Quantity.POWER_FACTOR, 1, type="float32", bits=0), "integer registers, not float"),
        (
            spec(Quantity.POWER_FACTOR, 1, type="float32", states={0: "a"}),
            "states are codes of integer registers",
        ),
        (
            spec(Quantity.POWER_FACTOR, 1, type="uint16", scale=0.1, states={0: "a"}),
            "no scale, offset, transform or scale_factor",
        ),
        (spec(Quantity.POWER_FACTOR, 1, type="uint16", states={}), "at least 1 item"),
        (
            spec(Quantity.POWER_FACTOR, 1, type="uint16", bits=[4, 5], states={4: "x"}),
            "states [4] cannot be read from bits 4..5 (0..3)",
        ),
        (
            spec(Quantity.POWER_FACTOR, 1, type="int16", states={-1: "x", 40000: "y"}),
            "states [40000] cannot be read from int16 (-32768..32767)",
        ),
        (
            spec(Quantity.POWER_FACTOR, 1, type="uint16", states={-1: "x"}),
            "states [-1] cannot be read from uint16 (0..65535)",
        ),
        (
            spec(Quantity.POWER_FACTOR, 1, function="coil", states={0: "off", 2: "x"}),
            "states [2] cannot be read from a coil (0..1)",
        ),
        (spec(Quantity.POWER_FACTOR, 1, type="uint16", states={0: "no\nway"}), "pattern"),
    ],
)
def test_bad_bits_and_states_are_refused_naming_the_quantity(
    register: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        profile_of([register])
    assert expected in str(caught.value)


def test_identification_is_not_read_from_bits() -> None:
    with pytest.raises(ValidationError, match="identification is read from registers"):
        profile_of(
            [spec(Quantity.POWER_FACTOR, 1)],
            function="coil",
            identification=[{"name": "serial", "address": 0, "type": "uint16", "source": "t"}],
        )


def test_states_are_listed_for_check() -> None:
    profile = profile_of(
        [spec(Quantity.POWER_FACTOR, 1, type="uint16", states={2: "tripped", 0: "open"})]
    )
    assert profile.state_notes() == ["power_factor states: 0 open, 2 tripped"]
    assert profile.state_name(Quantity.POWER_FACTOR, 2.0) == "tripped"
    assert profile.state_name(Quantity.POWER_FACTOR, 1.0) is None
    assert profile.state_name(Quantity.POWER_FACTOR, 0.5) is None


# --- planning and decoding --------------------------------------------------------------


def fewest_windows(addresses: list[int], width: int) -> int:
    """How many reads of at most `width` items cover the addresses: a new read starts at
    the first address the last one cannot reach (optimal for points on a line)."""
    count, end = 0, -1
    for address in sorted(addresses):
        if address >= end:
            count, end = count + 1, address + width
    return count


@settings(max_examples=300, deadline=None)
@given(
    addresses=st.lists(
        st.integers(0, 0xFFFF), min_size=1, max_size=len(STATE_QUANTITIES), unique=True
    ),
    table=st.sampled_from([Function.COIL, Function.DISCRETE_INPUT]),
    limit=st.one_of(st.integers(1, 40), st.just(MAX_BITS_PER_READ)),
    seed=st.randoms(use_true_random=False),
)
def test_any_coils_are_read_in_the_fewest_requests_each_from_its_own_bit(
    addresses: list[int], table: Function, limit: int, seed: Any
) -> None:
    registers = [
        spec(q, a, function=table.value) for q, a in zip(STATE_QUANTITIES, addresses, strict=False)
    ]
    profile = profile_of(registers, max_bits_per_read=limit)
    plan = plan_reads(profile)
    assert len(plan) == fewest_windows(addresses, limit)
    read: dict[QuantityName, float] = {}
    state: dict[int, int] = {}
    for block in plan:
        assert block.function is table and 1 <= block.count <= limit
        bits = [seed.randint(0, 1) for _ in range(block.count)]
        state |= {block.address + i: bit for i, bit in enumerate(bits)}
        values, problems = block.decode(bits)
        assert not problems
        assert not read.keys() & values.keys()
        read |= values
    assert read == {r.quantity: float(state[r.address]) for r in profile.registers}


@given(
    dtype=st.sampled_from(INTEGERS),
    data=st.data(),
)
def test_bit_field_is_the_bits_of_the_twos_complement_pattern(
    dtype: DataType, data: st.DataObject
) -> None:
    width = 16 * WORDS[dtype]
    raw = data.draw(
        st.integers(-(2 ** (width - 1)), 2 ** (width - 1) - 1)
        if dtype.value.startswith("int")
        else st.integers(0, 2**width - 1)
    )
    first = data.draw(st.integers(0, width - 1))
    last = data.draw(st.integers(first, width - 1))
    text = format(raw % (1 << width), f"0{width}b")[::-1]  # bit 0 first
    assert bit_field(raw, WORDS[dtype], first, last) == int(text[first : last + 1][::-1], 2)


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from(INTEGERS),
    order=st.sampled_from(list(ByteOrder)),
    cuts=st.lists(st.integers(1, 63), max_size=4, unique=True),
    data=st.data(),
)
def test_fields_of_one_register_each_decode_their_own_bits(
    dtype: DataType, order: ByteOrder, cuts: list[int], data: st.DataObject
) -> None:
    width = 16 * WORDS[dtype]
    edges = [0, *sorted(c for c in cuts if c < width), width]
    fields = list(zip(edges, [e - 1 for e in edges[1:]], strict=False))
    registers = [
        spec(q, 10, type=dtype.value, byte_order=order.value, bits=[first, last])
        for q, (first, last) in zip(STATE_QUANTITIES, fields, strict=False)
    ]
    [block] = plan_reads(profile_of(registers))
    word = data.draw(st.integers(0, 2**width - 1))
    unsigned = {1: DataType.UINT16, 2: DataType.UINT32, 4: DataType.UINT64}[WORDS[dtype]]
    values, problems = block.decode(encode(word, unsigned, order))
    assert not problems
    assert values == {
        Quantity(r["quantity"]): float(
            (word >> r["bits"][0]) % (1 << (r["bits"][1] - r["bits"][0] + 1))
        )
        for r in registers
    }


@given(code=st.integers(0, 0xFFFF), states=st.sets(st.integers(0, 0xFFFF), min_size=1))
def test_an_enumeration_publishes_its_code_and_drops_a_code_not_listed(
    code: int, states: set[int]
) -> None:
    names = {s: f"s{s}" for s in states}
    [block] = plan_reads(profile_of([spec(Quantity.POWER_FACTOR, 4, type="uint16", states=names)]))
    values, problems = block.decode([code])
    if code in states:
        assert values == {Quantity.POWER_FACTOR: float(code)} and not problems
    else:
        [problem] = problems
        assert not values and f"{code} is not one of the states" in problem.reason


def test_bit_tables_and_register_tables_are_planned_apart() -> None:
    profile = profile_of(
        [
            spec(Quantity.POWER_FACTOR, 0, function="coil"),
            spec(Quantity.POWER_FACTOR_L1, 1, function="discrete_input"),
            spec(Quantity.POWER_FACTOR_L2, 0, type="uint16", bits=3),
            spec(Quantity.POWER_FACTOR_L3, 0, type="uint16", bits=[0, 2]),
        ]
    )
    assert [(b.function, b.address, b.count, len(b.fields)) for b in plan_reads(profile)] == [
        (Function.COIL, 0, 1, 1),
        (Function.DISCRETE_INPUT, 1, 1, 1),
        (Function.HOLDING, 0, 1, 2),
    ]


# --- the simulator's layout ---------------------------------------------------------------


def test_bit_fields_may_share_a_register_but_not_a_bit() -> None:
    shared = [
        spec(Quantity.POWER_FACTOR, 0, type="uint16", bits=[0, 3]),
        spec(Quantity.POWER_FACTOR_L1, 0, type="uint16", bits=4),
    ]
    assert tables(profile_of(shared))[Function.HOLDING].registers
    overlapping = [*shared[:1], spec(Quantity.POWER_FACTOR_L1, 0, type="uint16", bits=3)]
    with pytest.raises(ValueError, match="power_factor_l1 takes bits of register 0 another"):
        tables(profile_of(overlapping))
    mixed = [*shared[:1], spec(Quantity.POWER_FACTOR_L1, 0, type="int16", bits=4)]
    with pytest.raises(ValueError, match="as int16, power_factor as uint16"):
        tables(profile_of(mixed))


# --- the Modbus TCP client ------------------------------------------------------------------


def bits_pdu(function: int, bits: list[int]) -> bytes:
    packed = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        packed[i // 8] |= bit << (i % 8)
    return bytes([function, len(packed)]) + bytes(packed)


@settings(max_examples=30, deadline=None)
@given(bits=st.lists(st.integers(0, 1), min_size=1, max_size=MAX_BITS_PER_READ))
async def test_the_tcp_client_unpacks_coil_and_discrete_input_replies(bits: list[int]) -> None:
    def reply(request: Request) -> list[bytes | float]:
        return [frame(request[0], request[1], bits_pdu(request[2], bits[: request[4]]))]

    async with server(reply) as client:
        for function in (1, 2):
            assert await client.read(function, 0, len(bits), 1, 1.0) == tuple(bits)


async def test_a_bit_reply_of_the_wrong_size_is_refused() -> None:
    def reply(request: Request) -> list[bytes | float]:
        return [frame(request[0], request[1], bits_pdu(request[2], [1] * 24))]

    async with server(reply) as client:
        with pytest.raises(ReadError, match="byte count 3 in a 5-byte reply to a read of 9 bits"):
            await client.read(1, 0, 9, 1, 1.0)


def test_bits_pdu_packs_the_first_bit_lowest() -> None:
    assert bits_pdu(1, [1, 0, 0, 0, 0, 0, 0, 0, 1]) == struct.pack(">BBBB", 1, 2, 1, 1)


def test_check_lists_the_states_a_reading_carries_as_codes(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: plant\nmqtt: {url: mqtt://b}\nmeters:\n"
        f"  - id: breaker\n    modbus: {{host: h}}\n    profile: {PROFILE}\n"
    )
    report = check_report(config)
    assert (
        "note: profile breaker_status: power_factor states: 0 open, 1 closed, 2 tripped" in report
    )
    assert "note: profile breaker_status: power_factor_l3 states: 0 normal, 1 alarm" in report


def test_the_simulator_refreshes_a_status_word_with_every_field_in_its_bits() -> None:
    # The path a simulator without --hold takes on every read of the table.
    profile = load_profile(str(PROFILE))
    encoding = Encoding.of(profile, 1, {})
    # unit 1, register 100: state code sorted(states)[(1 + 100) % 3] = 2 in bits 4..5,
    # the flag (1 + 100) % 2 = 1 in bit 0
    assert encoding.codes[Quantity.POWER_FACTOR] == 2 and encoding.codes[Quantity.COUNT] == 1
    live = [0xFFFF]
    tables(profile)[Function.HOLDING].write(profile, {}, live, 100, encoding)
    assert live == [0x0021]
