"""The simulator as a client sees it, checked with an independent client (mbpoll).

`energy-agent simulate` runs as a subprocess, as a user runs it; mbpoll (libmodbus, not
pymodbus) reads every register of both built-in profiles, and of a synthetic profile with
every register type and byte order, and the values must be what the `--dump` file says.
The agent's own read path (plan_reads + ReadBlock.decode) must agree, and addresses the
profile does not map must be refused. Those tests are marked e2e; the pure helpers of the
server (unit id parsing, encoding) are tested here too, unmarked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from agent.modbus.codec.decode import ByteOrder, DataType, decode
from agent.modbus.codec.plan import plan_reads
from agent.modbus.codec.scale import canonical_power_factors
from agent.profiles import builtin_names, load_profile
from agent.profiles.model import Function, Profile, RegisterSpec
from agent.simulator.server import encode_value, parse_unit_ids, served_value, tables
from greengauge.contract import QuantityName

HOST = "127.0.0.1"
ENERGY_AGENT = str(Path(sys.executable).parent / "energy-agent")
UNIT_IDS = (1, 2, 3)
ILLEGAL_ADDRESS = 2
GATEWAY_NO_RESPONSE = 11
# mbpoll prints floats with printf's %g: six significant digits.
MBPOLL_FLOAT_REL = 6e-6
_VALUE_LINE = re.compile(r"^\[(\d+)\]:\s*(\S+)\s*$")
# Coils and discrete inputs are served and read with mbpoll in test_coils_bits_e2e.py.
REGISTER_TABLES = (Function.HOLDING, Function.INPUT)


@dataclass(frozen=True)
class Simulator:
    profile: Profile
    port: int
    dump: dict[str, dict[str, float]]
    """unit id -> quantity -> value, as the simulator says it serves them."""


def _mbpoll() -> str:
    path = shutil.which("mbpoll")
    if path is None:
        pytest.fail(
            "mbpoll is not installed; the simulator is cross-checked with this independent "
            "Modbus client: install it (Debian/Ubuntu: apt-get install mbpoll)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def running_simulator(
    profile: str, folder: Path, *, hold: bool = True, unit_ids: str = "1-3"
) -> Iterator[tuple[int, Path]]:
    """`energy-agent simulate` in a subprocess, until it serves: (port, dump file)."""
    port, dump, log = _free_port(), folder / "dump.json", folder / "simulator.log"
    command = [ENERGY_AGENT, "simulate"]
    command += ["--profile", profile, "--port", str(port), "--unit-ids", unit_ids]
    command += ["--dump", str(dump)] + (["--hold"] if hold else [])
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        # The dump is written once the server listens: both mean it serves.
        while not (dump.exists() and _accepts_connections(port)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"simulator did not start: {log.read_text()}")
            time.sleep(0.05)
        yield port, dump
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Every register type, byte order and both tables, clamping (power_active_l1 in int16),
# an offset and the non-electrical counters: what the built-in float32 meters leave out.
SYNTHETIC_PROFILE = """
model: synthetic_test_meter
manufacturer: GreenGauge tests
description: every register type, byte order and table
sources: {test: tests/test_simulator_mbpoll.py}
function: input
byte_order: CDAB
max_gap: 3
registers:
  - {quantity: voltage_l1, address: 0, type: uint16, unit: V, scale: 0.1, source: t}
  - {quantity: current_l1, address: 1, type: int16, unit: A, scale: 0.01, source: t}
  - {quantity: power_active, address: 4, type: int32, unit: W, source: t}
  - {quantity: power_factor, address: 6, type: int16, unit: "1", scale: 0.001, source: t}
  - {quantity: frequency, address: 20, type: float32, unit: Hz, byte_order: ABCD, source: t}
  - {quantity: power_reactive, address: 22, type: float32, unit: var, source: t}
  - {quantity: energy_active_import, address: 100, type: uint64, unit: kWh, scale: 0.001,
     byte_order: DCBA, source: t}
  - {quantity: energy_active_export, address: 104, type: float64, unit: kWh, byte_order: BADC,
     source: t}
  - {quantity: volume, address: 0, type: uint32, unit: m3, scale: 0.01, function: holding,
     source: t}
  - {quantity: mass, address: 2, type: float32, unit: t, function: holding, byte_order: ABCD,
     source: t}
  - {quantity: count, address: 4, type: uint32, unit: "1", function: holding, source: t}
  - {quantity: power_active_l1, address: 10, type: int16, unit: W, scale: 0.1, function: holding,
     source: t}
  - {quantity: voltage_l1_l2, address: 11, type: uint16, unit: V, offset: 300, scale: 0.01,
     function: holding, source: t}
"""


# The float32 meters, which mbpoll decodes itself. Every built-in profile, with sentinels,
# scale factor registers, SunSpec discovery and identification registers, is served and
# read through the agent's read path in test_profiles_e2e.py.
MBPOLL_PROFILES = ["chint_dtsu666", "eastron_sdm120", "eastron_sdm630"]


def test_mbpoll_profiles_are_builtin() -> None:
    assert set(MBPOLL_PROFILES) <= set(builtin_names())


@pytest.fixture(scope="module", params=[*MBPOLL_PROFILES, "synthetic"])
def simulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Simulator]:
    name: str = request.param
    folder = tmp_path_factory.mktemp(name)
    if name == "synthetic":
        name = str(folder / "synthetic_test_meter.yaml")
        Path(name).write_text(SYNTHETIC_PROFILE)
    profile = load_profile(name)
    with running_simulator(name, folder) as (port, dump):
        document = json.loads(dump.read_text())
        assert document["profile"] == profile.model
        yield Simulator(profile, port, document["values"])


def _table_code(function: Function) -> str:
    return "3" if function is Function.INPUT else "4"


def mbpoll_read(
    port: int, unit_id: int, function: Function, address: int, count: int, kind: str
) -> subprocess.CompletedProcess[str]:
    """One read with mbpoll: `kind` "hex" gives registers, "float" float32s with the high
    word first (ABCD), "float-swapped" with the low word first (CDAB)."""
    command = [_mbpoll(), "-m", "tcp", "-p", str(port), "-a", str(unit_id), "-0", "-1"]
    data_type = "hex" if kind == "hex" else "float"
    command += ["-r", str(address), "-c", str(count), "-t", f"{_table_code(function)}:{data_type}"]
    command += ["-B"] if kind == "float" else []
    return subprocess.run([*command, HOST], check=False, capture_output=True, text=True, timeout=20)


def mbpoll_values(
    port: int, unit_id: int, function: Function, address: int, count: int, kind: str
) -> list[str]:
    """The printed values, one per item read, checked against the addresses asked for."""
    result = mbpoll_read(port, unit_id, function, address, count, kind)
    assert result.returncode == 0, f"mbpoll failed: {result.stderr or result.stdout}"
    printed = {}
    for line in result.stdout.splitlines():
        if match := _VALUE_LINE.match(line.strip()):
            printed[int(match[1])] = match[2]
    step = 1 if kind == "hex" else 2
    expected = [address + step * i for i in range(count)]
    assert sorted(printed) == expected, f"unexpected mbpoll output:\n{result.stdout}"
    return [printed[a] for a in expected]


def _function(simulator: Simulator, register: RegisterSpec) -> Function:
    return simulator.profile.function_of(register)


@pytest.mark.e2e
def test_dump_has_every_mapped_quantity(simulator: Simulator) -> None:
    mapped = {str(r.quantity) for r in simulator.profile.registers}
    assert sorted(simulator.dump) == [str(u) for u in UNIT_IDS]
    for values in simulator.dump.values():
        assert set(values) == mapped


@pytest.mark.e2e
def test_mbpoll_registers_decode_to_the_dumped_values(simulator: Simulator) -> None:
    profile = simulator.profile
    for unit_id in UNIT_IDS:
        for register in profile.registers:
            words = [
                int(text, 16)
                for text in mbpoll_values(
                    simulator.port,
                    unit_id,
                    _function(simulator, register),
                    register.address,
                    register.words,
                    "hex",
                )
            ]
            raw = decode(words, register.type, profile.byte_order_of(register))
            value = raw * register.scale + register.offset
            expected = simulator.dump[str(unit_id)][str(register.quantity)]
            assert math.isclose(value, expected, rel_tol=1e-6), (unit_id, register.quantity)


_MBPOLL_FLOAT_KINDS = {ByteOrder.ABCD: "float", ByteOrder.CDAB: "float-swapped"}


@pytest.mark.e2e
def test_mbpoll_floats_are_the_dumped_values(simulator: Simulator) -> None:
    # mbpoll decodes float32 itself: an independent check of the simulator's encoding
    # and word order, to the six digits mbpoll prints.
    profile = simulator.profile
    floats = [
        (r, _MBPOLL_FLOAT_KINDS[profile.byte_order_of(r)])
        for r in profile.registers
        if r.type is DataType.FLOAT32 and profile.byte_order_of(r) in _MBPOLL_FLOAT_KINDS
    ]
    assert floats, "every profile tested has float32 registers"
    for unit_id in UNIT_IDS:
        for register, kind in floats:
            (text,) = mbpoll_values(
                simulator.port, unit_id, _function(simulator, register), register.address, 1, kind
            )
            value = float(text) * register.scale + register.offset
            expected = simulator.dump[str(unit_id)][str(register.quantity)]
            assert math.isclose(value, expected, rel_tol=MBPOLL_FLOAT_REL), (
                unit_id,
                register.quantity,
                text,
            )


def _unmapped_address(profile: Profile, function: Function) -> int:
    """An address of `function`'s table that no register covers and no gap bridges."""
    ends = [r.address + r.words for r in profile.registers if profile.function_of(r) is function]
    # With no register in the table, any address is unmapped: take one mapped in the other.
    return max(ends) if ends else profile.registers[0].address


@pytest.mark.e2e
def test_mbpoll_gets_illegal_address_for_unmapped_registers(simulator: Simulator) -> None:
    for function in REGISTER_TABLES:
        address = _unmapped_address(simulator.profile, function)
        result = mbpoll_read(simulator.port, 1, function, address, 1, "hex")
        assert result.returncode != 0, result.stdout
        assert "illegal data address" in result.stderr.lower(), result.stderr


async def _read(
    client: AsyncModbusTcpClient, function: Function, address: int, count: int, unit_id: int
) -> ModbusPDU:
    if function is Function.INPUT:
        return await client.read_input_registers(address, count=count, device_id=unit_id)
    return await client.read_holding_registers(address, count=count, device_id=unit_id)


@contextmanager
def _closing(client: AsyncModbusTcpClient) -> Iterator[AsyncModbusTcpClient]:
    try:
        yield client
    finally:
        client.close()


async def _connect(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient(HOST, port=port, timeout=5, retries=0)
    assert await client.connect(), f"cannot connect to the simulator on port {port}"
    return client


@pytest.mark.e2e
async def test_agent_read_plan_gets_the_dumped_values(simulator: Simulator) -> None:
    with _closing(await _connect(simulator.port)) as client:
        for unit_id in UNIT_IDS:
            read: dict[QuantityName, float] = {}
            for block in plan_reads(simulator.profile):
                response = await _read(client, block.function, block.address, block.count, unit_id)
                assert not response.isError(), (block, response)
                decoded, problems = block.decode(response.registers)
                assert problems == []
                read |= decoded
            canonical_power_factors(read, simulator.profile.power_factor_sign)  # as the agent
            values = {str(q): v for q, v in read.items()}
            # The simulator serves (and dumps) the unconfirmed registers the agent does not read.
            dumped = simulator.dump[str(unit_id)]
            assert set(values) == {str(r.quantity) for r in simulator.profile.read_registers}
            assert values == pytest.approx({q: dumped[q] for q in values}, rel=1e-6)


def _gaps(profile: Profile) -> list[tuple[Function, int, int]]:
    """(table, first unmapped address, width) between neighbouring registers."""
    gaps = []
    for function in REGISTER_TABLES:
        registers = sorted(
            (r for r in profile.registers if profile.function_of(r) is function),
            key=lambda r: r.address,
        )
        for before, after in itertools.pairwise(registers):
            end = before.address + before.words
            if after.address > end:
                gaps.append((function, end, after.address - end))
    return gaps


@pytest.mark.e2e
async def test_gaps_up_to_max_gap_read_as_zero_wider_ones_are_illegal(
    simulator: Simulator,
) -> None:
    gaps = _gaps(simulator.profile)
    assert gaps, "both built-in profiles have gaps between registers"
    with _closing(await _connect(simulator.port)) as client:
        for function, address, width in gaps:
            if width <= simulator.profile.max_gap:
                response = await _read(client, function, address, width, 2)
                assert not response.isError(), (address, width, response)
                assert list(response.registers) == [0] * width
                continue
            for unmapped in (address, address + width - 1):
                response = await _read(client, function, unmapped, 1, 2)
                assert response.isError(), (unmapped, width)
                assert response.exception_code == ILLEGAL_ADDRESS


@pytest.mark.e2e
async def test_agent_read_of_unmapped_address_is_illegal(simulator: Simulator) -> None:
    profile = simulator.profile
    address = _unmapped_address(profile, profile.function)
    with _closing(await _connect(simulator.port)) as client:
        response = await _read(client, profile.function, address, 2, 1)
        assert response.isError()
        assert response.exception_code == ILLEGAL_ADDRESS
        # The last register read together with one past it: the whole request is refused.
        response = await _read(client, profile.function, address - 1, 2, 1)
        assert response.exception_code == ILLEGAL_ADDRESS


@pytest.mark.e2e
async def test_unit_ids_not_simulated_get_no_response_from_the_gateway(
    simulator: Simulator,
) -> None:
    register = simulator.profile.registers[0]
    with _closing(await _connect(simulator.port)) as client:
        response = await _read(
            client, _function(simulator, register), register.address, register.words, 4
        )
        assert response.isError()
        assert response.exception_code == GATEWAY_NO_RESPONSE


async def _read_profile(port: int, profile: Profile, unit_id: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with _closing(await _connect(port)) as client:
        for block in plan_reads(profile):
            response = await _read(client, block.function, block.address, block.count, unit_id)
            decoded, _ = block.decode(response.registers)
            values |= {str(q): v for q, v in decoded.items()}
    return values


@pytest.mark.e2e
async def test_without_hold_values_follow_the_clock(tmp_path: Path) -> None:
    profile = load_profile("eastron_sdm630")
    with running_simulator(profile.model, tmp_path, hold=False, unit_ids="5") as (port, _):
        first = await _read_profile(port, profile, 5)
        await asyncio.sleep(1.5)
        second = await _read_profile(port, profile, 5)
    assert first["power_active"] != second["power_active"]
    assert first["voltage_l1"] != second["voltage_l1"]
    for quantity in ("energy_active_import", "energy_active_export", "energy_reactive_import"):
        assert first[quantity] <= second[quantity]


@pytest.mark.e2e
def test_cli_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [ENERGY_AGENT, "simulate", "--profile", "chint_dtsu666", "--port", str(port)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on {HOST}:{port}" in result.stderr


def test_integer_registers_are_rounded_and_clamped_to_their_type() -> None:
    profile = Profile.model_validate(yaml.safe_load(SYNTHETIC_PROFILE))
    by_quantity = {str(r.quantity): r for r in profile.registers}
    power, voltage = by_quantity["power_active_l1"], by_quantity["voltage_l1"]
    assert encode_value(profile, power, 1e6) == [0x7FFF]
    assert served_value(profile, power, [0x7FFF]) == pytest.approx(3276.7)
    assert encode_value(profile, power, -1e6) == [0x8000]
    assert encode_value(profile, voltage, -5) == [0]
    assert encode_value(profile, voltage, 230.04) == [2300]
    assert served_value(profile, voltage, [2300]) == pytest.approx(230.0)


def test_overlapping_registers_cannot_be_served() -> None:
    document = yaml.safe_load(SYNTHETIC_PROFILE)
    document["registers"][1]["address"] = 0
    with pytest.raises(ValueError, match="current_l1 at 0 overlaps voltage_l1 at 0"):
        tables(Profile.model_validate(document))


@pytest.mark.e2e
def test_synthetic_meter_clamps_what_its_int16_cannot_hold(tmp_path: Path) -> None:
    # Unit 3 draws about 12 kW per phase; 0.1 W steps in an int16 end at 3276.7 W.
    path = tmp_path / "synthetic_test_meter.yaml"
    path.write_text(SYNTHETIC_PROFILE)
    with running_simulator(str(path), tmp_path, unit_ids="3") as (_, dump):
        values = json.loads(dump.read_text())["values"]["3"]
    assert values["power_active_l1"] == pytest.approx(3276.7)
    assert values["count"] == int(values["count"])


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("1", [1]),
        ("1-6", [1, 2, 3, 4, 5, 6]),
        ("1,3,5-7", [1, 3, 5, 6, 7]),
        (" 7 , 2-3 ", [2, 3, 7]),
        ("2,1-3", [1, 2, 3]),
        ("247", [247]),
    ],
)
def test_parse_unit_ids(text: str, ids: Sequence[int]) -> None:
    assert parse_unit_ids(text) == ids


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("0", "'0'"),
        ("248", "'248'"),
        ("1-300", "'1-300'"),
        ("x", "'x'"),
        ("", "''"),
        ("1,,2", "''"),
        ("6-1", "'6-1'"),
        ("1-2-3", "'1-2-3'"),
        ("-3", "'-3'"),
        ("1.5", "'1.5'"),
    ],
)
def test_parse_unit_ids_names_the_bad_part(text: str, bad_part: str) -> None:
    with pytest.raises(ValueError, match=re.escape(bad_part)):
        parse_unit_ids(text)
