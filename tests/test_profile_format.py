"""The profile format: addressing, transforms, scale factors, sentinels, ranges, counters,
alternative addresses, SunSpec discovery, identification. Pure: no server (fake reads)."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.modbus.codec.decode import (
    ByteOrder,
    DataType,
    decode,
    decode_string,
    encode,
    encode_string,
)
from agent.modbus.codec.plan import ProblemKind, plan_reads
from agent.modbus.codec.resolve import (
    ResolveError,
    identify,
    matches,
    resolve_profile,
)
from agent.modbus.codec.scale import (
    PowerFactorSign,
    Scaler,
    Transform,
    canonical_power_factors,
    schneider_4q_pf,
    schneider_4q_pf_register,
)
from agent.modbus.errors import ReadError
from agent.profiles import ProfileError, builtin_names, load_profile
from agent.profiles.model import Addressing, Function, Profile, to_protocol
from greengauge.contract import Quantity, QuantityName

Q = Quantity
H = Function.HOLDING
I = Function.INPUT  # noqa: E741


def make(registers: list[dict[str, Any]], **top: Any) -> Profile:
    document: dict[str, Any] = {
        "model": "t",
        "manufacturer": "T",
        "description": "test",
        "sources": {"t": "test"},
        "function": "holding",
        "registers": [{"source": "t", **r} for r in registers],
    }
    return Profile.model_validate(document | top)


# --- addressing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "addressing", "expected"),
    [
        (3028, Addressing.ONE_BASED, (3027, None)),
        (1, Addressing.ONE_BASED, (0, None)),
        (30001, Addressing.MODICON, (0, I)),
        (30343, Addressing.MODICON, (342, I)),
        (40001, Addressing.MODICON, (0, H)),
        (49999, Addressing.MODICON, (9998, H)),
        (300001, Addressing.MODICON, (0, I)),
        (365536, Addressing.MODICON, (65535, I)),
        (419001, Addressing.MODICON, (19000, H)),
        (0x2006, Addressing.PROTOCOL, (0x2006, None)),
    ],
)
def test_addresses_normalise_to_protocol(
    number: int, addressing: Addressing, expected: tuple[int, Function | None]
) -> None:
    assert to_protocol(number, addressing) == expected


@pytest.mark.parametrize(
    ("number", "addressing"),
    [
        (0, Addressing.ONE_BASED),
        (30000, Addressing.MODICON),
        (0, Addressing.MODICON),
        (20000, Addressing.MODICON),
    ],
)
def test_bad_documented_numbers_are_refused(number: int, addressing: Addressing) -> None:
    with pytest.raises(ValueError, match=str(number)):
        to_protocol(number, addressing)


def test_a_one_based_profile_loads_protocol_addresses_and_keeps_the_documented_number() -> None:
    profile = make(
        [{"quantity": "voltage_l1", "address": 3028, "type": "float32", "unit": "V"}],
        addressing="one_based",
    )
    [register] = profile.registers
    assert (register.address, register.documented, register.addressing) == (3027, 3028, "protocol")
    # validating the loaded profile again does not shift it twice
    again = Profile.model_validate(profile.model_dump())
    assert again.registers[0].address == 3027


def test_modicon_numbers_name_the_table() -> None:
    profile = make(
        [
            {"quantity": "voltage_l1", "address": 30001, "type": "float32", "unit": "V"},
            {"quantity": "count", "address": 40011, "type": "uint16", "unit": "1"},
        ],
        addressing="modicon",
    )
    by = {r.quantity: r for r in profile.registers}
    assert (by[Q.VOLTAGE_L1].address, profile.function_of(by[Q.VOLTAGE_L1])) == (0, I)
    assert (by[Q.COUNT].address, profile.function_of(by[Q.COUNT])) == (10, H)


def test_modicon_number_contradicting_the_function_is_refused() -> None:
    with pytest.raises(ValidationError, match="input table, but function is 'holding'"):
        make(
            [
                {
                    "quantity": "voltage_l1",
                    "address": 30001,
                    "type": "float32",
                    "unit": "V",
                    "function": "holding",
                }
            ],
            addressing="modicon",
        )


def test_a_user_profile_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "model: mine\nmanufacturer: me\ndescription: d\nsources: {a: b}\nfunction: input\n"
        "addressing: modicon\nregisters:\n"
        "  - {quantity: voltage_l1, address: 30001, type: float32, unit: V, source: a}\n"
        "  - {quantity: current_l1, address: 25000, type: float32, unit: A, source: a}\n"
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path))
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:9: registers.1: ")
    assert "25000 is not a modicon register number" in problem


# --- transforms, scale factors, sentinels, ranges ---------------------------------------------


@pytest.mark.parametrize(
    ("register", "pf"),
    [
        (0.8, 0.8),  # Q1: import, inductive
        (1.2, 0.8),  # Q4: import, capacitive
        (-1.2, -0.8),  # Q2: export, inductive
        (-0.8, -0.8),  # Q3: export, capacitive
        (1.0, 1.0),
        (-1.0, -1.0),
        (2.0, 0.0),
    ],
)
def test_schneider_4q_power_factor(register: float, pf: float) -> None:
    assert schneider_4q_pf(register) == pytest.approx(pf)


@pytest.mark.parametrize(
    ("pf", "reactive", "register"),
    [(0.8, 1, 0.8), (0.8, -1, 1.2), (-0.8, 1, -1.2), (-0.8, -1, -0.8)],
)
def test_schneider_4q_power_factor_register(pf: float, reactive: float, register: float) -> None:
    assert schneider_4q_pf_register(pf, reactive) == pytest.approx(register)
    assert schneider_4q_pf(schneider_4q_pf_register(pf, reactive)) == pytest.approx(pf)


def test_4q_transform_keeps_the_meters_digits() -> None:
    scaler = Scaler(DataType.FLOAT32, 1.0, 0.0, Transform.SCHNEIDER_4Q_PF)
    (raw,) = struct.unpack(">f", struct.pack(">f", 1.123))
    assert scaler(raw) == 0.877


@pytest.mark.parametrize(
    ("raw", "sf", "scale", "expected"),
    [
        (2301, -1, 1.0, 230.1),
        (5, 3, 1.0, 5000.0),
        (9350, -2, 0.01, 0.935),
        (123456, 0, 0.001, 123.456),
    ],
)
def test_sunssf_scaling(raw: int, sf: int, scale: float, expected: float) -> None:
    assert Scaler(DataType.INT32, scale, 0.0)(raw, sf) == expected


def sunspec_block(sf_value: int, value: int, **register: Any) -> tuple[Profile, list[int]]:
    profile = make(
        [{"quantity": "voltage_l1", "address": 8, "type": "int16", "unit": "V", "scale_factor": 10}]
        + ([register] if register else []),
        max_gap=10,
        not_available={"int16": [0x8000], "uint32": [0]},
    )
    registers = [0] * 3
    registers[0] = value & 0xFFFF
    registers[2] = sf_value & 0xFFFF
    return profile, registers


def test_a_value_and_its_scale_factor_are_read_together() -> None:
    profile, registers = sunspec_block(-1, 2301)
    [block] = plan_reads(profile)
    assert (block.address, block.count) == (8, 3)
    assert block.decode(registers) == ({Q.VOLTAGE_L1: 230.1}, [])


def test_sentinels_are_dropped_quietly() -> None:
    profile, registers = sunspec_block(-1, 0x8000)
    [block] = plan_reads(profile)
    values, [problem] = block.decode(registers)
    assert values == {}
    assert (problem.kind, problem.quiet) == (ProblemKind.NOT_AVAILABLE, True)
    # a scale factor "not implemented" makes its values not available too
    _, registers = sunspec_block(-0x8000, 2301)
    _, [problem] = block.decode(registers)
    assert problem.kind is ProblemKind.NOT_AVAILABLE
    # a scale factor no device would send is an error
    _, registers = sunspec_block(99, 2301)
    _, [problem] = block.decode(registers)
    assert (problem.kind, problem.quiet) == (ProblemKind.INVALID, False)


@pytest.mark.parametrize(
    ("dtype", "pattern"),
    [
        ("uint16", 0xFFFF),
        ("uint32", 0xFFFFFFFF),
        ("uint64", 0xFFFFFFFFFFFFFFFF),
        ("int16", 0x7FFF),
        ("int32", 0x7FFFFFFF),
        ("int64", 0x7FFFFFFFFFFFFFFF),
    ],
)
def test_abb_style_sentinels(dtype: str, pattern: int) -> None:
    abb = load_profile("abb_b23")
    profile = make(
        [{"quantity": "energy_active_export", "address": 0, "type": dtype, "unit": "kWh"}],
        not_available=abb.not_available,
    )
    [block] = plan_reads(profile)
    raw = (
        pattern - (1 << (16 * block.count))
        if dtype.startswith("int") and pattern >> (16 * block.count - 1)
        else pattern
    )
    registers = encode(raw, DataType(dtype), ByteOrder.ABCD)
    values, [problem] = block.decode(registers)
    assert values == {} and problem.kind is ProblemKind.NOT_AVAILABLE
    assert block.decode(encode(12, DataType(dtype), ByteOrder.ABCD)) == (
        {Q.ENERGY_ACTIVE_EXPORT: 12.0},
        [],
    )


def test_register_sentinels_override_the_profiles() -> None:
    profile = make(
        [
            {
                "quantity": "count",
                "address": 0,
                "type": "uint16",
                "unit": "1",
                "not_available": [7],
            },
            {"quantity": "mass", "address": 1, "type": "uint16", "unit": "t"},
        ],
        not_available={"uint16": [0xFFFF]},
    )
    [block] = plan_reads(profile)
    values, problems = block.decode([7, 0xFFFF])
    assert values == {}
    assert [(p.quantity, p.kind) for p in problems] == [
        (Q.COUNT, ProblemKind.NOT_AVAILABLE),
        (Q.MASS, ProblemKind.NOT_AVAILABLE),
    ]
    assert block.decode([0xFFFF, 7]) == ({Q.COUNT: 65535.0, Q.MASS: 7.0}, [])


def test_values_outside_the_range_are_dropped_with_a_reason() -> None:
    profile = make(
        [
            {
                "quantity": "power_factor",
                "address": 0,
                "type": "int16",
                "unit": "1",
                "scale": 0.001,
                "range": [-1, 1],
            }
        ]
    )
    [block] = plan_reads(profile)
    assert block.decode([1000]) == ({Q.POWER_FACTOR: 1.0}, [])
    values, [problem] = block.decode([1001])
    assert values == {}
    assert problem.kind is ProblemKind.OUT_OF_RANGE
    assert "1.001 is outside [-1.0, 1.0]" in problem.reason


def test_sentinels_are_for_integers_and_ranges_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="not_available is for integer types"):
        make(
            [
                {
                    "quantity": "count",
                    "address": 0,
                    "type": "float32",
                    "unit": "1",
                    "not_available": [0],
                }
            ]
        )
    with pytest.raises(ValidationError, match="min < max"):
        make([{"quantity": "count", "address": 0, "type": "uint16", "unit": "1", "range": [5, 1]}])


def test_counters_and_their_rollover() -> None:
    gas = load_profile("generic_gas_meter")
    assert gas.counters == {Q.VOLUME: 42949672.95}
    sdm = load_profile("eastron_sdm630")
    assert set(sdm.counters) == {
        r.quantity for r in sdm.registers if r.quantity.startswith("energy")
    }
    assert all(v is None for v in sdm.counters.values())
    kinded = make(
        [
            {
                "quantity": "count",
                "address": 0,
                "type": "uint16",
                "unit": "1",
                "kind": "instantaneous",
            }
        ]
    )
    assert kinded.counters == {}
    with pytest.raises(ValidationError, match="rollover is for counters"):
        make(
            [
                {
                    "quantity": "voltage_l1",
                    "address": 0,
                    "type": "uint16",
                    "unit": "V",
                    "rollover": 10,
                }
            ]
        )


def test_strings() -> None:
    words = encode_string("B23 ", 2, ByteOrder.ABCD)
    assert words == [0x4232, 0x3320]
    assert decode_string(words, ByteOrder.ABCD) == "B23"
    assert decode_string([0x3242, 0x2033], ByteOrder.BADC) == "B23"
    assert decode_string(encode_string("SN-42", 8, ByteOrder.ABCD), ByteOrder.ABCD) == "SN-42"


# --- built-in profiles ------------------------------------------------------------------------


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_profile_loads_and_sources_every_register(name: str) -> None:
    profile = load_profile(name)
    assert profile.model == name
    for register in [*profile.registers, *profile.identification]:
        assert register.source.strip(), register
    assert plan_reads(profile)


def test_the_builtin_profiles_asked_for_are_there() -> None:
    assert set(builtin_names()) >= {
        "eastron_sdm630", "eastron_sdm120", "chint_dtsu666", "acrel_adw300",
        "schneider_iem3255", "schneider_pm5xxx", "janitza_umg96rm", "carlo_gavazzi_em340",
        "abb_b23", "sunspec_meter_203", "generic_gas_meter", "generic_steam_meter",
        "generic_water_meter", "generic_production_counter",
    }  # fmt: skip


@pytest.mark.parametrize("name", [n for n in builtin_names() if n.startswith("generic_")])
def test_generic_templates_say_what_they_are(name: str) -> None:
    profile = load_profile(name)
    assert "generic" in profile.description.lower()
    assert all("GreenGauge generic layout" in s for s in profile.sources.values())


@pytest.mark.parametrize("name", builtin_names())
def test_no_unconfirmed_register_is_read_unless_opted_in(name: str) -> None:
    profile = load_profile(name)
    read = {f.address for b in plan_reads(profile) for f in b.fields}
    for register in profile.registers:
        assert (register.address in read) != register.unconfirmed, register.quantity
    opted = profile.model_copy(update={"include_unconfirmed": True})
    assert {f.quantity for b in plan_reads(opted) for f in b.fields} == {
        r.quantity for r in profile.registers
    }


def test_janitza_has_unconfirmed_registers_for_the_opt_in_to_matter() -> None:
    assert any(r.unconfirmed for r in load_profile("janitza_umg96rm").registers)


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_power_factor_says_its_sign_convention(name: str) -> None:
    """Meters disagree (power direction, inductive/capacitive): none is left to the default."""
    profile = load_profile(name)
    if any(r.quantity.startswith("power_factor") for r in profile.registers):
        assert "power_factor_sign" in profile.model_fields_set, name


def test_dtsu666_per_phase_energies_have_one_source_so_are_unconfirmed() -> None:
    """0x1020..0x1024 and 0x102A..0x102E: in mbmd @ fb8f9c22 only, not the CHINT manuals."""
    profile = load_profile("chint_dtsu666")
    per_phase = {
        r.quantity: r for r in profile.registers if r.quantity.endswith(("_l1", "_l2", "_l3"))
    }
    energies = {q: r for q, r in per_phase.items() if q.startswith("energy_active")}
    assert sorted(r.address for r in energies.values()) == [
        0x1020, 0x1022, 0x1024, 0x102A, 0x102C, 0x102E
    ]  # fmt: skip
    assert all(r.unconfirmed and "manual" not in r.source.split(";")[0] for r in energies.values())
    assert not set(energies) & {r.quantity for r in profile.read_registers}


# --- resolve_profile with a fake device -------------------------------------------------------


class FakeDevice:
    """Registers by (function, address); anything else is refused with exception 2."""

    def __init__(self, registers: dict[int, int], function: Function = H) -> None:
        self.registers = registers
        self.function = function
        self.reads: list[tuple[Function, int, int]] = []

    async def read(self, function: Function, address: int, count: int) -> list[int]:
        self.reads.append((function, address, count))
        span = range(address, address + count)
        if function is not self.function or any(a not in self.registers for a in span):
            raise ReadError("exception", "illegal data address", exception_code=2)
        return [self.registers[a] for a in span]


def place(registers: dict[int, int], address: int, words: Sequence[int]) -> None:
    for i, word in enumerate(words):
        registers[address + i] = word


def resolve(profile: Profile, device: FakeDevice) -> Profile:
    return asyncio.run(resolve_profile(profile, device.read))


def dtsu_device(
    import_at: int, export_at: int, kwh: float = 1234.5, ct: int = 1, pt_tenths: int = 10
) -> FakeDevice:
    registers: dict[int, int] = {0x0006: ct, 0x0007: pt_tenths}  # IrAt, UrAt (x0.1)
    place(registers, import_at, encode(kwh, DataType.FLOAT32, ByteOrder.ABCD))
    place(registers, export_at, encode(2.5, DataType.FLOAT32, ByteOrder.ABCD))
    return FakeDevice(registers)


def energy_addresses(profile: Profile) -> tuple[int, int]:
    by = {r.quantity: r for r in profile.registers}
    return by[Q.ENERGY_ACTIVE_IMPORT].address, by[Q.ENERGY_ACTIVE_EXPORT].address


def test_dtsu666_energy_at_the_documented_address() -> None:
    resolved = resolve(load_profile("chint_dtsu666"), dtsu_device(0x101E, 0x1028))
    assert energy_addresses(resolved) == (0x101E, 0x1028)


def test_dtsu666_energy_at_the_alternative_address_the_documented_one_refused() -> None:
    resolved = resolve(load_profile("chint_dtsu666"), dtsu_device(0x401E, 0x4028))
    # the group moves together: export follows import
    assert energy_addresses(resolved) == (0x401E, 0x4028)
    assert all(not r.alternatives for r in resolved.registers)
    assert all(r.address < 0x4000 for r in resolved.registers if r.quantity.endswith("_l1"))


@given(st.integers(1, 5000), st.integers(1, 3500))
def test_dtsu666_energy_at_the_alternative_is_secondary_side_times_ct_and_pt(
    ct: int, pt_tenths: int
) -> None:
    """0x401E/0x4028 hold secondary-side kWh; the meter's CT and PT ratios make them primary."""
    device = dtsu_device(0x401E, 0x4028, kwh=12.5, ct=ct, pt_tenths=pt_tenths)
    resolved = resolve(load_profile("chint_dtsu666"), device)
    totals = (Q.ENERGY_ACTIVE_IMPORT, Q.ENERGY_ACTIVE_EXPORT)
    values: dict[QuantityName, float] = {}
    for block in plan_reads(
        resolved.with_registers(r for r in resolved.registers if r.quantity in totals)
    ):
        values |= block.decode(
            asyncio.run(device.read(block.function, block.address, block.count))
        )[0]
    ratio = ct * pt_tenths / 10
    assert values[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(12.5 * ratio, rel=1e-9)
    assert values[Q.ENERGY_ACTIVE_EXPORT] == pytest.approx(2.5 * ratio, rel=1e-9)
    # At the documented address the values are primary-side: no ratio.
    primary = resolve(load_profile("chint_dtsu666"), dtsu_device(0x101E, 0x1028, ct=ct))
    assert {r.scale for r in primary.registers if r.quantity.startswith("energy")} == {1.0}


def test_dtsu666_secondary_energy_without_its_ratios_is_not_read() -> None:
    device = dtsu_device(0x401E, 0x4028)
    del device.registers[0x0006]  # the CT ratio refused: a value off by it is worse than none
    resolved = resolve(load_profile("chint_dtsu666"), device)
    quantities = {r.quantity for r in resolved.registers}
    assert not {Q.ENERGY_ACTIVE_IMPORT, Q.ENERGY_ACTIVE_EXPORT} & quantities
    assert Q.VOLTAGE_L1 in quantities


def test_dtsu666_energy_reading_zero_at_the_documented_address_moves_to_the_alternative() -> None:
    device = dtsu_device(0x401E, 0x4028)
    place(device.registers, 0x101E, [0, 0])  # ha_chint_pm issue #16: 0x101E reads 0
    assert energy_addresses(resolve(load_profile("chint_dtsu666"), device)) == (0x401E, 0x4028)


def test_no_plausible_alternative_keeps_the_documented_address() -> None:
    device = FakeDevice({})
    assert energy_addresses(resolve(load_profile("chint_dtsu666"), device)) == (0x101E, 0x1028)


def test_a_connection_failure_while_probing_is_raised() -> None:
    async def down(function: Function, address: int, count: int) -> list[int]:
        raise ReadError("timeout", "no answer")

    with pytest.raises(ReadError, match="timeout"):
        asyncio.run(resolve_profile(load_profile("chint_dtsu666"), down))


def test_profiles_without_anything_to_settle_come_back_unchanged() -> None:
    sdm = load_profile("eastron_sdm630")
    device = FakeDevice({})
    assert resolve(sdm, device) is sdm
    assert device.reads == []


SUNS = [0x5375, 0x6E53]


def sunspec_device(base: int, models: list[tuple[int, int]]) -> FakeDevice:
    registers: dict[int, int] = {}
    place(registers, base, SUNS)
    address = base + 2
    for model_id, length in models:
        place(registers, address, [model_id, length] + [0] * length)
        address += 2 + length
    place(registers, address, [0xFFFF, 0])
    return FakeDevice(registers)


def test_sunspec_chain_walk_finds_model_203() -> None:
    profile = load_profile("sunspec_meter_203")
    assert not profile.resolved
    device = sunspec_device(40000, [(1, 66), (120, 26), (203, 105)])
    resolved = resolve(profile, device)
    start = 40000 + 2 + 68 + 28
    assert resolved.resolved and resolved.sunspec is not None
    assert resolved.sunspec.model_start == start
    by = {r.quantity: r for r in resolved.registers}
    assert by[Q.VOLTAGE_L1].address == start + 8
    assert by[Q.VOLTAGE_L1].scale_factor == start + 15
    assert by[Q.ENERGY_ACTIVE_IMPORT].address == start + 46
    [block] = plan_reads(resolved)
    assert block.address == start + 3 and block.count <= 125


def test_sunspec_marker_at_another_base() -> None:
    device = sunspec_device(0, [(1, 65), (203, 105)])
    resolved = resolve(load_profile("sunspec_meter_203"), device)
    assert resolved.sunspec is not None and resolved.sunspec.model_start == 2 + 67


def test_sunspec_without_model_203() -> None:
    device = sunspec_device(40000, [(1, 66), (201, 105)])
    with pytest.raises(ResolveError, match=r"model 203 not on the device \(models: 1, 201\)"):
        resolve(load_profile("sunspec_meter_203"), device)
    assert asyncio.run(matches(load_profile("sunspec_meter_203"), device.read)) is False


def test_sunspec_without_marker() -> None:
    with pytest.raises(ResolveError, match="no SunSpec marker"):
        resolve(load_profile("sunspec_meter_203"), FakeDevice({}))


def test_sunspec_model_of_another_length_is_refused() -> None:
    device = sunspec_device(40000, [(1, 66), (203, 50)])
    with pytest.raises(ResolveError, match="length 50"):
        resolve(load_profile("sunspec_meter_203"), device)


# --- identification ---------------------------------------------------------------------------


def test_abb_identification_matches() -> None:
    abb = load_profile("abb_b23")
    registers: dict[int, int] = {}
    place(registers, 0x8960, encode_string("B23 ", 2, ByteOrder.ABCD))
    place(registers, 0x8900, [0, 4242])
    device = FakeDevice(registers)
    identity = asyncio.run(identify(abb, device.read))
    assert identity.values == {"model": 0x42323320, "serial": 4242}
    assert identity.mismatches == []
    assert asyncio.run(matches(abb, device.read)) is True
    place(registers, 0x8960, encode_string("B24 ", 2, ByteOrder.ABCD))  # victron: B23/B24
    assert asyncio.run(matches(abb, device.read)) is True
    place(registers, 0x8960, encode_string("A43 ", 2, ByteOrder.ABCD))
    assert asyncio.run(matches(abb, device.read)) is False
    # a device that refuses the registers is not an ABB
    assert asyncio.run(matches(abb, FakeDevice({}).read)) is False


def test_profiles_without_expected_identification_cannot_tell() -> None:
    assert asyncio.run(matches(load_profile("eastron_sdm630"), FakeDevice({}).read)) is None


def test_string_identification() -> None:
    profile = make(
        [{"quantity": "count", "address": 0, "type": "uint16", "unit": "1"}],
        identification=[
            {
                "name": "serial",
                "address": 100,
                "type": "string",
                "length": 4,
                "source": "t",
                "expect": "AB12",
            }
        ],
    )
    registers: dict[int, int] = {}
    place(registers, 100, encode_string("AB12", 4, ByteOrder.ABCD))
    device = FakeDevice(registers)
    assert asyncio.run(identify(profile, device.read)).values == {"serial": "AB12"}
    assert asyncio.run(matches(profile, device.read)) is True


def test_identification_string_needs_its_length() -> None:
    with pytest.raises(ValidationError, match="length is required for string"):
        make(
            [{"quantity": "count", "address": 0, "type": "uint16", "unit": "1"}],
            identification=[{"name": "serial", "address": 1, "type": "string", "source": "t"}],
        )


@given(
    st.floats(0.01, 1.0),
    st.floats(-1e5, 1e5).filter(lambda p: abs(p) > 1),
    st.floats(-1e5, 1e5).filter(lambda q: abs(q) > 1),
)
def test_a_dtsu666_power_factor_is_signed_by_reactive_power_on_the_wire(
    magnitude: float, active: float, reactive: float
) -> None:
    """The simulator serves what the manual says (+ inductive, - capacitive); the agent
    publishes the canonical sign (the active power's), whatever the quadrant."""
    from agent.simulator.server import encode_value  # noqa: PLC0415

    profile = load_profile("chint_dtsu666")
    assert profile.power_factor_sign is PowerFactorSign.REACTIVE_POWER
    canonical = math.copysign(magnitude, active)
    by = {r.quantity: r for r in profile.registers}
    values: dict[QuantityName, float] = {
        Q.POWER_ACTIVE: active,
        Q.POWER_REACTIVE: reactive,
        Q.POWER_FACTOR: canonical,
    }
    words = encode_value(profile, by[Q.POWER_FACTOR], canonical, values=values)
    on_the_wire = decode(words, DataType.FLOAT32, ByteOrder.ABCD) * 0.001
    assert math.copysign(1, on_the_wire) == math.copysign(1, reactive)
    read = {Q.POWER_FACTOR: on_the_wire, Q.POWER_ACTIVE: active}
    canonical_power_factors(read, profile.power_factor_sign)
    assert read[Q.POWER_FACTOR] == pytest.approx(canonical, abs=1e-3)
