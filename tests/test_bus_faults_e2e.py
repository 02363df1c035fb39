"""The agent's bus against the simulator's other faults, over TCP and a serial line:
what each bad reply becomes (a timeout, a short reply the decoder refuses, an exception),
and that a bus in trouble never hangs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from modbus_plant import serial_line, simulator

from agent.config import ModbusSettings
from agent.modbus.codec.plan import plan_reads
from agent.modbus.errors import ReadError
from agent.modbus.transport.bus import Bus, Unit
from agent.profiles import load_profile
from agent.profiles.model import Function

pytestmark = pytest.mark.e2e

FAULTS = ["--fault", "2:garbage", "--fault", "3:short", "--fault", "4:drop"]
FAULTS += ["--fault", "5:exception"]


async def exercise(bus: Bus, garbage: str) -> None:
    profile = load_profile("eastron_sdm630")
    first = plan_reads(profile)[0]

    async def read(unit_id: int) -> Sequence[int]:
        async with bus.session(Unit(unit_id, timeout=0.3, retries=0)) as registers:
            return await registers(Function.INPUT, first.address, first.count)

    healthy = await read(1)
    values, problems = first.decode(healthy)
    assert problems == [] and len(values) == len(first.fields)
    # garbage: the reply is noise. Modbus TCP sees at once that it is not a frame (and
    # reconnects); on a serial line the noise is skipped until the request times out.
    with pytest.raises(ReadError) as caught:
        await read(2)
    assert caught.value.kind == garbage
    assert first.decode(await read(1))[1] == []
    # short: one register missing; every quantity of the block is dropped by the decoder
    short = await read(3)
    assert len(short) == first.count - 1
    values, problems = first.decode(short)
    assert values == {} and len(problems) == len(first.fields)
    assert "registers" in problems[0].reason
    # drop: every other request goes unanswered
    outcomes = []
    for _ in range(4):
        try:
            await read(4)
            outcomes.append("ok")
        except ReadError as exc:
            outcomes.append(exc.kind)
    assert sorted(outcomes) == ["ok", "ok", "timeout", "timeout"]
    # exception without a range: every register refused, illegal data address
    with pytest.raises(ReadError) as caught:
        await read(5)
    assert (caught.value.kind, caught.value.exception_code) == ("exception", 2)
    assert first.decode(await read(1))[1] == []


async def test_faults_over_tcp(tmp_path: Path) -> None:
    with simulator(tmp_path, "tcp", "eastron_sdm630", "1-5", FAULTS) as sim:
        bus = Bus.for_settings(ModbusSettings(host="127.0.0.1", port=sim.port))
        try:
            await exercise(bus, garbage="reply")
        finally:
            bus.close()


async def test_faults_on_a_serial_line(tmp_path: Path) -> None:
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(tmp_path, "serial", "eastron_sdm630", "1-5", ["--serial", str(sim_end), *FAULTS]),
    ):
        settings = ModbusSettings.model_validate({"serial": {"device": str(agent_end)}})
        bus = Bus.for_settings(settings)
        try:
            await exercise(bus, garbage="timeout")
        finally:
            bus.close()


async def test_no_server_is_a_connect_error_then_backoff(tmp_path: Path) -> None:
    bus = Bus.for_settings(ModbusSettings(host="127.0.0.1", port=1, timeout=0.2))
    unit = Unit(1, timeout=0.2, retries=0)
    try:
        for _ in range(2):
            with pytest.raises(ReadError) as caught:
                async with bus.session(unit) as read:
                    await read(Function.INPUT, 0, 2)
            assert caught.value.kind == "connect"
        # the second failed at once: it waits for the backoff instead of connecting again
        assert "next attempt in" in str(caught.value)
    finally:
        bus.close()
