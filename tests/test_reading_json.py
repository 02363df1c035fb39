"""A poller's read goes to the wire as JSON written without the contract's model
(agent.reading): byte for byte what MeterReading writes for the same values, and refused
where MeterReading refuses, for every generated read."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.modbus.codec.decode import DataType
from agent.modbus.codec.plan import plan_reads
from agent.modbus.codec.scale import (
    Float32Run,
    PowerFactorSign,
    canonical_power_factors,
    shortest_float32,
)
from agent.profiles import Profile, builtin_names, load_profile
from agent.publish.batcher import reading_json
from agent.reading import NO_CUSTOM, Gathering, Read, custom_of, numbers
from greengauge.contract import MAX_CUSTOM, Kind, MeterReading, Quantity, QuantityName

custom_names = st.from_regex(r"x_[a-z][a-z0-9_]{0,20}", fullmatch=True)
units = st.from_regex(r"[A-Za-z0-9%/._^*-]{1,16}", fullmatch=True)
float32s = st.integers(0, 2**32 - 1).map(lambda bits: struct.unpack("<f", bits.to_bytes(4))[0])
values = st.one_of(
    st.floats(),  # every double, nan and the infinities included
    float32s,  # what a meter's float32 registers give
    st.sampled_from([0.0, -0.0, 1e-4, 9.99e-5, 1e-5, 1e15, 1e16, 123456789.0, 50.0]),
    st.integers(-(2**53), 2**53),  # not a float: the model decides
)
times = st.one_of(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
    ),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1)),  # naive
)
meters = st.one_of(
    st.from_regex(r"[a-zA-Z0-9_.:-]{1,64}", fullmatch=True),
    st.text(max_size=70),  # mostly refused ids
)


@st.composite
def reads(draw: st.DrawFn) -> tuple[Read, dict[str, tuple[str, Kind]]]:
    named = draw(
        st.dictionaries(
            custom_names, st.tuples(units, st.sampled_from(list(Kind))), max_size=MAX_CUSTOM + 2
        )
    )
    names: list[QuantityName] = [*Quantity, *named]
    if draw(st.booleans()):
        names.append("x_not_in_the_profile")
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=60))
    read_values = {name: draw(values) for name in chosen}
    custom = custom_of(named) if named else NO_CUSTOM
    return Read(draw(meters), draw(times), read_values, custom), named


def _strict(read: Read, named: dict[str, tuple[str, Kind]]) -> bytes | str:
    """The contract's JSON of the read, or the kind of its refusal and what it names."""
    try:
        return reading_json(MeterReading.of(read.meter, read.ts, read.values, named))
    except Exception as exc:
        return _refusal(exc)


def _refusal(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    where = sorted(str(e["loc"]) for e in errors()) if callable(errors) else str(exc)
    return f"{type(exc).__name__}: {where}"


@given(reads())
def test_a_read_is_written_as_the_contract_writes_it_or_refused_alike(
    case: tuple[Read, dict[str, tuple[str, Kind]]],
) -> None:
    read, named = case
    try:
        fast: bytes | str = read.json()
    except Exception as exc:
        fast = _refusal(exc)
    assert fast == _strict(read, named)
    if isinstance(fast, bytes):
        assert MeterReading.model_validate_json(fast) == read.model()


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False) | float32s.filter(math.isfinite),
        max_size=50,
    )
)
def test_finite_floats_are_the_contracts_text(floats: list[float]) -> None:
    texts = numbers({f"x_{index}": value for index, value in enumerate(floats)})
    assert texts is not None
    for value, text in zip(floats, texts, strict=True):
        written = MeterReading.model_construct(values={Quantity.FREQUENCY: value})
        assert f'"frequency":{text}}}' in written.model_dump_json()
        assert float(text) == value and math.copysign(1, float(text)) == math.copysign(1, value)


def test_what_is_not_a_finite_float_is_left_to_the_contract() -> None:
    assert numbers({"x_a": 1.0, "x_b": math.nan}) is None
    assert numbers({"x_a": math.inf}) is None
    assert numbers({"x_a": 1.0, "x_b": 7}) is None
    # the texts made by the decoding are taken as they are when they are every value's
    assert numbers({"x_a": 1.0, "x_b": 2.5}, ["1.0,2.5"]) == ["1.0", "2.5"]
    assert numbers({"x_a": 1.0, "x_b": 2.5}, ["1.0", "2.5"]) == ["1.0", "2.5"]
    assert numbers({"x_a": 1.0, "x_b": 2.5}, ["1.0"]) == ["1.0", "2.5"]  # not every one


PROFILES = [
    load_profile(name)
    for name in builtin_names()
    if not load_profile(name).sunspec  # addresses only once resolved on a device
] + [load_profile(str(Path(__file__).parents[1] / "bench/profiles/sdm630_full45.yaml"))]


@given(st.sampled_from(PROFILES), st.data())
def test_a_decoded_read_is_written_as_the_contract_writes_it(
    profile: Profile, data: st.DataObject
) -> None:
    """Registers of every built-in profile and the bench's 45-value one, read as a poller
    reads them (blocks of finite float32s as runs whose decimals the Read makes, power
    factors signed): the read's values are the decoding's, and its JSON the contract's."""
    decoded_values: dict[QuantityName, float] = {}
    signs = profile.power_factor_sign is not PowerFactorSign.ACTIVE_POWER
    gathering = Gathering(runs=not signs)  # as the poller does
    for block in plan_reads(profile):
        registers = data.draw(
            st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count)
        )
        decoded, problems = block.decode(registers)
        decoded_values.update(decoded)
        run = block.float32_run(registers) if gathering.runs is not None else None
        if run is not None:
            assert not problems  # every value there, none bad
            gathering.run(run)
        else:
            gathering.decoded(decoded)
    canonical_power_factors(gathering.values, profile.power_factor_sign)
    canonical_power_factors(decoded_values, profile.power_factor_sign)
    custom = custom_of(profile.custom_units)
    read = gathering.read("m1", datetime(2026, 11, 27, tzinfo=UTC), custom)
    # the same values, in the same order, as the decoding gives
    values = read.values
    assert list(values.items()) == list(decoded_values.items())
    if not values:
        return
    assert read.json() == reading_json(read.model())
    if read.texts:
        made = ",".join(read.texts).split(",")
        assert len(made) != len(values) or made == [repr(v) for v in values.values()]


_FLOAT32S = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(st.booleans(), st.lists(_FLOAT32S, min_size=1, max_size=4)), max_size=6))
def test_a_gathered_read_keeps_the_blocks_order_whatever_mix_of_runs_and_decoded(
    blocks: list[tuple[bool, list[float]]],
) -> None:
    """Runs and decoded blocks in any order: the Read's values are in block order, a run's
    as its shortest decimals; a read of runs alone makes no dict before the Read's."""
    quantities = iter(Quantity)
    gathering = Gathering(runs=True)
    expected: dict[QuantityName, float] = {}
    for is_run, raws in blocks:
        names = tuple(next(quantities) for _ in raws)
        if is_run:
            gathering.run(Float32Run(names, tuple(raws)))
            expected.update(zip(names, map(shortest_float32, raws), strict=True))
        else:
            gathering.decoded(dict(zip(names, raws, strict=True)))
            expected.update(zip(names, raws, strict=True))
    if all(is_run for is_run, _ in blocks):
        assert gathering.values == {}
    assert bool(gathering) == bool(expected)
    read = gathering.read("m1", datetime(2026, 11, 27, tzinfo=UTC), custom_of({}))
    assert list(read.values.items()) == list(expected.items())


def test_a_read_of_user_named_values_carries_their_units() -> None:
    custom = custom_of({"x_angle_l1": ("deg", Kind.INSTANTANEOUS), "x_ah": ("Ah", Kind.COUNTER)})
    ts = datetime(2026, 11, 27, 19, 0, 0, 123456, tzinfo=UTC)
    values: dict[QuantityName, float] = {
        Quantity.VOLTAGE_L1: 230.1,
        "x_angle_l1": -12.5,
        Quantity.FREQUENCY: 50.0,
        "x_ah": 1e-5,
    }
    assert Read("m1", ts, values, custom).json() == (
        b'{"meter":"m1","ts":"2026-11-27T19:00:00.123Z",'
        b'"values":{"voltage_l1":230.1,"frequency":50.0},'
        b'"custom":{"x_angle_l1":{"value":-12.5,"unit":"deg","kind":"instantaneous"},'
        b'"x_ah":{"value":0.00001,"unit":"Ah","kind":"counter"}}}'
    )


def test_an_empty_read_or_a_bad_user_named_quantity_is_refused() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="m1 has no value"):
        Read("m1", ts, {}).json()
    with pytest.raises(ValueError, match="voltage_l1"):
        custom_of({"voltage_l1": ("V", Kind.INSTANTANEOUS)})


def test_a_read_of_float32_values_carries_every_values_text_from_its_runs() -> None:
    """The bench's 45-value map: every block is a run, whose decimals and texts the Read
    makes once (a string a block), so the JSON needs no float written again."""
    profile = PROFILES[-1]
    gathering = Gathering(runs=True)
    for block in plan_reads(profile):
        registers = [0x4366, 0x199A] * (block.count // 2) + [0] * (block.count % 2)  # 230.1
        run = block.float32_run(registers)
        assert run is not None
        gathering.run(run)
    assert gathering.values == {}  # no dict before the Read makes the decimals
    custom = custom_of(profile.custom_units)
    read = gathering.read("m1", datetime(2026, 11, 27, tzinfo=UTC), custom)
    assert read.texts == []  # nothing made before it is needed
    assert list(read.values.values()) == [230.1] * 45
    assert read.texts is not None and len(read.texts) == len(plan_reads(profile))
    assert numbers(read.values, read.texts) == ["230.1"] * 45
    assert read.json().count(b"230.1") == 45


def test_a_block_with_a_value_that_is_not_a_float32_taken_as_it_comes_is_no_run() -> None:
    """NaN (a meter booting), a register of another type in the block, or a reply of the
    wrong length: the block is decoded at once, and reports what is wrong."""
    profile = PROFILES[-1]
    block = plan_reads(profile)[0]
    nan = [0x7FC0, 0x0000] * (block.count // 2) + [0] * (block.count % 2)
    assert block.float32_run(nan) is None
    assert block.decode(nan)[1]  # problems: not a number
    assert block.float32_run(nan[:-1]) is None
    integer_profile = next(
        p for p in PROFILES if any(r.type is not DataType.FLOAT32 for r in p.registers)
    )
    integer_block = next(
        b
        for b in plan_reads(integer_profile)
        if any(f.dtype is not DataType.FLOAT32 for f in b.fields)
    )
    assert integer_block.float32_run([0] * integer_block.count) is None
