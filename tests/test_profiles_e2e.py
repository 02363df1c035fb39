"""Every built-in profile, served by `energy-agent simulate` and read by the agent's read path.

The simulator runs as a subprocess; a pymodbus client stands in for the bus, and the agent's
own code does the rest: resolve_profile (SunSpec discovery, alternative addresses), then
plan_reads and ReadBlock.decode. What it reads must be what the simulator's --dump says it
serves: sentinels dropped quietly (unit 3 is an import-only meter), scale factor registers
applied, identification registers read and matched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient
from test_simulator_mbpoll import HOST, running_simulator

from agent.modbus.codec.plan import plan_reads
from agent.modbus.codec.resolve import ReadRegisters, identify, matches, resolve_profile
from agent.modbus.errors import ReadError
from agent.profiles import builtin_names, load_profile
from agent.profiles.model import Function, Profile

pytestmark = pytest.mark.e2e
UNIT_IDS = (1, 2, 3)


@dataclass(frozen=True)
class Served:
    profile: Profile
    port: int
    dump: dict[str, Any]


@pytest.fixture(scope="module", params=builtin_names())
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    name: str = request.param
    with running_simulator(name, tmp_path_factory.mktemp(name)) as (port, dump):
        yield Served(load_profile(name), port, json.loads(dump.read_text()))


def device_read(client: AsyncModbusTcpClient, unit_id: int) -> ReadRegisters:
    async def read(function: Function, address: int, count: int) -> list[int]:
        if function is Function.INPUT:
            response = await client.read_input_registers(address, count=count, device_id=unit_id)
        else:
            response = await client.read_holding_registers(address, count=count, device_id=unit_id)
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise ReadError("exception", f"exception {code}", exception_code=code)
        return list(response.registers)

    return read


async def read_all(profile: Profile, read: ReadRegisters) -> tuple[dict[str, float], set[str]]:
    """Values read, and the quantities dropped as not available; any other problem fails."""
    resolved = await resolve_profile(profile, read)
    values: dict[str, float] = {}
    not_available: set[str] = set()
    for block in plan_reads(resolved):
        decoded, problems = block.decode(await read(block.function, block.address, block.count))
        assert all(p.quiet for p in problems), problems
        not_available |= {str(p.quantity) for p in problems}
        values |= {str(q): v for q, v in decoded.items()}
    return values, not_available


def with_client(port: int, body: Any) -> Any:
    async def run() -> Any:
        client = AsyncModbusTcpClient(HOST, port=port, timeout=5, retries=0)
        assert await client.connect()
        try:
            return await body(client)
        finally:
            client.close()

    return asyncio.run(run())


def test_the_agent_reads_what_the_simulator_serves(served: Served) -> None:
    profile = served.profile
    read_quantities = {str(r.quantity) for r in profile.read_registers}

    async def body(client: AsyncModbusTcpClient) -> None:
        for unit_id in UNIT_IDS:
            values, not_available = await read_all(profile, device_read(client, unit_id))
            dumped = served.dump["values"][str(unit_id)]
            expected = {q: v for q, v in dumped.items() if q in read_quantities}
            assert values == pytest.approx(expected, rel=1e-12, abs=1e-12), unit_id
            assert not_available == read_quantities - set(dumped)
            if unit_id == 3 and profile.not_available:
                assert not_available, "an import-only meter's export energy is not available"

    with_client(served.port, body)


def test_identification_registers_read_back(served: Served) -> None:
    profile = served.profile

    async def body(client: AsyncModbusTcpClient) -> None:
        for unit_id in UNIT_IDS:
            read = device_read(client, unit_id)
            identity = await identify(await resolve_profile(profile, read), read)
            assert identity.values == served.dump["identification"][str(unit_id)]
            assert identity.mismatches == []

    with_client(served.port, body)


def test_matches_tells_the_profiles_apart(served: Served) -> None:
    telling = {
        "abb_b23": load_profile("abb_b23"),
        "sunspec_meter_203": load_profile("sunspec_meter_203"),
    }

    async def body(client: AsyncModbusTcpClient) -> None:
        read = device_read(client, 1)
        for name, candidate in telling.items():
            assert await matches(candidate, read) is (name == served.profile.model), name
        if served.profile.model not in telling:
            assert await matches(served.profile, read) in (None, True)

    with_client(served.port, body)


def test_unconfirmed_registers_are_read_when_opted_in(tmp_path: Path) -> None:
    profile = load_profile("janitza_umg96rm")
    opted = profile.model_copy(update={"include_unconfirmed": True})
    with running_simulator(profile.model, tmp_path, unit_ids="2") as (port, dump):
        dumped = json.loads(dump.read_text())["values"]["2"]

        async def body(client: AsyncModbusTcpClient) -> tuple[dict[str, float], dict[str, float]]:
            read = device_read(client, 2)
            return (await read_all(profile, read))[0], (await read_all(opted, read))[0]

        default, all_values = with_client(port, body)
    unconfirmed = {str(r.quantity) for r in profile.registers if r.unconfirmed}
    assert unconfirmed and not unconfirmed & set(default)
    assert all_values == pytest.approx(dumped, rel=1e-12)


def test_dtsu666_energy_found_at_the_alternative_address(tmp_path: Path) -> None:
    """A DTSU666 whose firmware has energy at 0x401E/0x4028 and refuses 0x101E."""
    builtin = load_profile("chint_dtsu666")
    variant: dict[str, Any] = builtin.model_dump(mode="json", exclude_none=True)
    variant["model"] = "dtsu666_variant"
    for register in variant["registers"]:
        if register.get("alternatives"):
            # Served at 0x401E; its ratio registers are served too (at 1:1).
            register["address"], register["alternatives"] = (
                register["alternatives"][0],
                [register["address"]],
            )
            register.pop("group", None)
    path = tmp_path / "dtsu666_variant.yaml"
    path.write_text(yaml.safe_dump(variant))
    with running_simulator(str(path), tmp_path, unit_ids="1") as (port, dump):
        dumped = json.loads(dump.read_text())["values"]["1"]

        async def body(client: AsyncModbusTcpClient) -> tuple[Profile, dict[str, float]]:
            read = device_read(client, 1)
            return await resolve_profile(builtin, read), (await read_all(builtin, read))[0]

        resolved, values = with_client(port, body)
    by = {str(r.quantity): r.address for r in resolved.registers}
    assert (by["energy_active_import"], by["energy_active_export"]) == (0x401E, 0x4028)
    # The simulator serves every register; the unconfirmed ones are not read.
    assert set(values) == {str(r.quantity) for r in builtin.read_registers}
    assert values == pytest.approx({q: dumped[q] for q in values}, rel=1e-12)
