"""RTU buses give each meter its own reply timeout: the first meter configured on a serial
line or an RTU-over-TCP bus must not set it for the others. Against the simulator on a
socat pty pair, and a scripted RTU-over-TCP server whose units answer late."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from modbus_plant import serial_line, simulator
from pymodbus.framer import FramerRTU

from agent.config import Framer, ModbusSettings
from agent.modbus.errors import ReadError
from agent.modbus.transport.bus import Bus, Unit
from agent.profiles.model import Function

pytestmark = pytest.mark.e2e


async def timed_read(bus: Bus, unit: Unit, address: int = 0) -> tuple[Sequence[int] | str, float]:
    """The registers (or the error kind) of a 2-register read, and the seconds it took."""
    started = time.monotonic()
    try:
        async with bus.session(unit) as read:
            result: Sequence[int] | str = await read(Function.INPUT, address, 2)
    except ReadError as exc:
        result = exc.kind
    return result, time.monotonic() - started


def registers_of(unit_id: int, address: int, count: int) -> list[int]:
    """What the scripted server holds: unique to the unit, so a reply shows whose it is."""
    return [100 * unit_id + address + i for i in range(count)]


@asynccontextmanager
async def rtu_over_tcp(delays: dict[int, float | None]) -> AsyncIterator[int]:
    """An RTU-over-TCP server answering each unit after its delay (None: never)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readexactly(8)
                unit_id, function, address, count = struct.unpack(">BBHH", request[:6])
                delay = delays.get(unit_id)
                if delay is None:
                    continue
                await asyncio.sleep(delay)
                values = registers_of(unit_id, address, count)
                frame = struct.pack(f">BBB{count}H", unit_id, function, 2 * count, *values)
                writer.write(frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


async def test_rtu_over_tcp_waits_each_units_own_timeout() -> None:
    async with rtu_over_tcp({1: 0.0, 2: 0.5, 9: None}) as port:
        # The bus is made for the first meter configured, whose timeout is 0.2 s.
        settings = ModbusSettings(host="127.0.0.1", port=port, framer=Framer.RTU, timeout=0.2)
        bus = Bus.for_settings(settings)
        try:
            # A slow unit with 1.5 s gets its answer after 0.5 s.
            result, seconds = await timed_read(bus, Unit(2, timeout=1.5, retries=0))
            assert result == registers_of(2, 0, 2), seconds
            # A silent unit with 0.1 s gives up after 0.1 s, not the first meter's 0.2 s
            # (nor a longer one used before).
            await timed_read(bus, Unit(1, timeout=3.0, retries=0))
            result, seconds = await timed_read(bus, Unit(9, timeout=0.1, retries=0))
            assert result == "timeout" and seconds < 0.19, seconds
            # The slow unit with a short timeout times out; its late reply is not taken
            # for the next request's answer.
            result, _ = await timed_read(bus, Unit(2, timeout=0.1, retries=0))
            assert result == "timeout"
            result, _ = await timed_read(bus, Unit(1, timeout=1.0, retries=0), address=40)
            assert result == registers_of(1, 40, 2)
        finally:
            bus.close()


async def test_serial_line_waits_each_units_own_timeout(tmp_path: Path) -> None:
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(
            tmp_path,
            "serial",
            "eastron_sdm630",
            "1-2",
            ["--serial", str(sim_end), "--fault", "2:timeout"],
        ),
    ):
        # The bus is made for the first meter configured, whose timeout is 2 s.
        settings = ModbusSettings.model_validate(
            {"serial": {"device": str(agent_end)}, "timeout": 2.0}
        )
        bus = Bus.for_settings(settings)
        try:
            result, _ = await timed_read(bus, Unit(1, timeout=2.0, retries=0))
            assert isinstance(result, list)
            # The dead unit, set to 0.2 s, blocks the line 0.2 s, not 2 s.
            result, seconds = await timed_read(bus, Unit(2, timeout=0.2, retries=0))
            assert result == "timeout" and seconds < 0.6, seconds
            result, _ = await timed_read(bus, Unit(1, timeout=2.0, retries=0))
            assert isinstance(result, list)
        finally:
            bus.close()


@asynccontextmanager
async def rtu_on_a_line(end: Path, delays: dict[int, float | None]) -> AsyncIterator[None]:
    """The device end of a pty pair: units answering after their delay (None: never)."""
    fd = os.open(end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    pending = bytearray()
    replies: set[asyncio.Task[None]] = set()

    async def answer(unit_id: int, function: int, address: int, count: int) -> None:
        delay = delays.get(unit_id)
        if delay is None:
            return
        await asyncio.sleep(delay)
        values = registers_of(unit_id, address, count)
        frame = struct.pack(f">BBB{count}H", unit_id, function, 2 * count, *values)
        os.write(fd, frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))

    def readable() -> None:
        pending.extend(os.read(fd, 256))
        while len(pending) >= 8:
            unit_id, function, address, count = struct.unpack(">BBHH", pending[:6])
            del pending[:8]
            task = asyncio.create_task(answer(unit_id, function, address, count))
            replies.add(task)
            task.add_done_callback(replies.discard)

    loop.add_reader(fd, readable)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        for task in replies:
            task.cancel()
        os.close(fd)


async def test_a_late_reply_on_a_serial_line_is_not_the_next_answer(tmp_path: Path) -> None:
    # RTU replies carry no transaction id: after a timeout the line stays quiet for that
    # timeout, so a reply up to twice the timeout late comes while no request waits.
    with serial_line(tmp_path) as (device_end, agent_end):
        async with rtu_on_a_line(device_end, {1: 0.0, 2: 0.3}):
            settings = ModbusSettings.model_validate({"serial": {"device": str(agent_end)}})
            bus = Bus.for_settings(settings)
            try:
                result, seconds = await timed_read(bus, Unit(2, timeout=0.2, retries=0))
                assert result == "timeout" and seconds < 0.35, seconds
                # Unit 2's reply to address 0 comes 0.1 s later: not this read's answer.
                result, _ = await timed_read(bus, Unit(2, timeout=1.0, retries=0), address=40)
                assert result == registers_of(2, 40, 2)
                result, _ = await timed_read(bus, Unit(1, timeout=1.0, retries=0), address=60)
                assert result == registers_of(1, 60, 2)
            finally:
                bus.close()
