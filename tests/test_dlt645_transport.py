"""DL/T 645 on the wire: the simulator (`energy-agent simulate --protocol dlt645`) read by
the agent's bus over TCP and over a serial line (a socat pty pair), and every kind of bad
reply from a scripted gateway, each failing the request with an error that names it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import serial_line, simulator
from processes import BIN

from agent.config import Dlt645Settings
from agent.dlt645.codec import (
    NO_SUCH_DATA,
    READ_DATA,
    REPLY,
    Frame,
    FrameParser,
    address_field,
    decode_bcd,
)
from agent.dlt645.profile import builtin_names, load_dlt645_profile
from agent.dlt645.transport import Dlt645Bus
from agent.modbus.errors import ReadError

PROFILE = "chint_dtsu666_dlt645"
ENERGY = 0x00010000
METER = "000000000007"


def settings(**where: Any) -> Dlt645Settings:
    return Dlt645Settings.model_validate({"address": METER, "timeout": 0.5, **where})


async def read_all(bus: Dlt645Bus, meter: Dlt645Settings) -> dict[str, float]:
    profile = load_dlt645_profile(PROFILE)
    values: dict[str, float] = {}
    async with bus.session(meter) as read:
        for spec in profile.values:
            raw = await read(spec.di)
            values[spec.quantity.value] = decode_bcd(raw, spec.decimals, spec.signed, spec.scale)
    return values


@pytest.mark.e2e
async def test_simulator_over_tcp(tmp_path: Path) -> None:
    with simulator(tmp_path, "tcp", PROFILE, "1-3", ["--protocol", "dlt645"]) as sim:
        for unit in (1, 3):
            meter = settings(host="127.0.0.1", port=sim.port, address=f"{unit:012d}")
            bus = Dlt645Bus.for_settings(meter)
            try:
                values = await read_all(bus, meter)
                assert values == sim.dump[str(unit)]
                assert values["voltage_l1"] > 100 and values["energy_active_import"] > 0
                # An identifier the profile does not have: the meter's error 02.
                async with bus.session(meter) as read:
                    with pytest.raises(ReadError) as caught:
                        await read(0x03010000)
                assert caught.value.kind == "exception"
                assert caught.value.exception_code == NO_SUCH_DATA
                assert "no such data" in str(caught.value)
            finally:
                bus.close()
        # Several meters on one line: nobody answers the broadcast read address.
        bus = Dlt645Bus.for_settings(settings(host="127.0.0.1", port=sim.port))
        try:
            with pytest.raises(ReadError, match=r"no reply in 0\.5s") as timed_out:
                await bus.read_address(0.5)
            assert timed_out.value.kind == "timeout"
        finally:
            bus.close()


@pytest.mark.e2e
async def test_simulator_on_a_serial_line_and_address_discovery(tmp_path: Path) -> None:
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(
            tmp_path,
            "serial",
            PROFILE,
            "7",
            ["--protocol", "dlt645", "--serial", str(sim_end), "--baud", "2400"],
        ) as sim,
    ):
        meter = settings(serial={"device": str(agent_end), "baud": 2400})
        bus = Dlt645Bus.for_settings(meter)
        try:
            assert await bus.read_address(1.0) == METER
            assert await read_all(bus, meter) == sim.dump["7"]
        finally:
            bus.close()


# --- bad replies from a scripted gateway ---------------------------------------------------


Script = Callable[[Frame], bytes]


@asynccontextmanager
async def gateway(script: Script) -> AsyncIterator[int]:
    """A TCP gateway answering each request frame with script(request)."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = FrameParser()
        while data := await reader.read(512):
            for item in parser.feed(data):
                if isinstance(item, Frame):
                    writer.write(script(item))
        writer.close()

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def value_reply(request: Frame, address: str = METER, value: bytes = b"\x34\x12\x00\x00") -> bytes:
    return Frame(address_field(address), READ_DATA | REPLY, request.data + value).encode()


async def read_energy(script: Script, within: float = 0.5) -> float:
    async with gateway(script) as port:
        meter = settings(host="127.0.0.1", port=port, timeout=within)
        bus = Dlt645Bus.for_settings(meter)
        try:
            async with bus.session(meter) as read:
                return decode_bcd(await read(ENERGY), 2, signed=False)
        finally:
            bus.close()


async def test_a_good_reply_is_read() -> None:
    assert await read_energy(value_reply) == 12.34


async def test_garbage_before_the_preamble_is_skipped() -> None:
    assert await read_energy(lambda r: b"\x00\x13\x68\x99" + value_reply(r)) == 12.34


async def test_late_reply_to_another_request_is_skipped() -> None:
    def late_then_right(request: Frame) -> bytes:
        other = Frame(request.address, READ_DATA, (0x02010100).to_bytes(4, "little"))
        return value_reply(other) + value_reply(request)

    assert await read_energy(late_then_right) == 12.34


async def test_error_reply_names_the_error() -> None:
    def refused(request: Frame) -> bytes:
        return Frame(request.address, 0xD1, bytes([0x04])).encode()

    with pytest.raises(ReadError, match=r"error reply: 04 \(password wrong") as caught:
        await read_energy(refused)
    assert caught.value.kind == "exception" and caught.value.exception_code == 0x04


async def test_wrong_checksum_names_it() -> None:
    def corrupt(request: Frame) -> bytes:
        raw = bytearray(value_reply(request))
        raw[-2] ^= 0xFF
        return bytes(raw)

    with pytest.raises(ReadError, match=r"checksum [0-9A-F]{2} where the frame sums to") as caught:
        await read_energy(corrupt)
    assert caught.value.kind == "reply"


async def test_wrong_address_names_both_meters() -> None:
    with pytest.raises(
        ReadError, match=f"reply from meter 000000000008 to a request to meter {METER}"
    ) as caught:
        await read_energy(lambda r: value_reply(r, address="000000000008"), within=0.3)
    assert caught.value.kind == "reply"


async def test_truncated_frame_names_it() -> None:
    with pytest.raises(ReadError, match="frame cut short: 16 of 20 bytes") as caught:
        await read_energy(lambda r: value_reply(r)[4:20], within=0.3)
    assert caught.value.kind == "reply"


async def test_silence_is_a_timeout() -> None:
    with pytest.raises(ReadError, match=f"meter {METER} on 127.0.0.1:[0-9]+: no reply in 0.3s"):
        await read_energy(lambda r: b"", within=0.3)


# --- the command-line tools -----------------------------------------------------------------


def energy_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "energy-agent"), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.e2e
def test_address_discovery_tool_on_a_gateway(tmp_path: Path) -> None:
    with simulator(tmp_path, "one", PROFILE, "42", ["--protocol", "dlt645"]) as sim:
        found = energy_agent("dlt645-address", "--host", "127.0.0.1", "--port", str(sim.port))
        assert (found.returncode, found.stdout.strip()) == (0, "000000000042"), found.stderr
    with simulator(tmp_path, "two", PROFILE, "1-2", ["--protocol", "dlt645"]) as sim:
        silent = energy_agent(
            "dlt645-address", "--host", "127.0.0.1", "--port", str(sim.port), "--timeout", "0.3"
        )
        assert silent.returncode == 1
        assert "timeout: meter AAAAAAAAAAAA on 127.0.0.1" in silent.stderr


def test_check_and_profiles_show_dlt645_meters(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: s\nagent_id: a\nmqtt: {url: mqtt://localhost}\nmeters:\n"
        "  - {id: m, profile: chint_dtsu666_dlt645,"
        " dlt645: {address: '000012345678', host: gw.local, port: 8899}}\n"
    )
    checked = energy_agent("check", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "chint_dtsu666_dlt645" in checked.stdout and "000012345678" in checked.stdout
    listed = energy_agent("profiles", "--protocol", "dlt645")
    assert [line.split()[0] for line in listed.stdout.splitlines()[2:]] == builtin_names()
