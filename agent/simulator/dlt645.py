"""Serve simulated DL/T 645-2007 meters on a serial line or TCP (a transparent gateway).

Each unit id is one meter (the model of agent.simulator.values), at address 000000000001
for unit 1 and so on, answering read data (0x11) for the identifiers of its profile in the
profile's formats, error 02 (no such data) for any other identifier, and read address (0x13,
broadcast) when it is the only meter served: on a real line several meters would answer at
once. Requests to addresses nobody serves stay unanswered, as on a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.config import SerialSettings
from agent.dlt645.codec import (
    ERROR,
    NO_SUCH_DATA,
    READ_ADDRESS,
    READ_DATA,
    REPLY,
    Frame,
    FrameError,
    FrameParser,
    address_field,
    bcd_limit,
    decode_bcd,
    encode_bcd,
)
from agent.dlt645.profile import Dlt645Profile, ValueSpec
from agent.dlt645.transport import Port, SerialPort, TcpPort
from agent.modbus.errors import ReadError
from agent.simulator.values import meter_for_unit
from greengauge.common.logs import fields
from greengauge.contract import Quantity

log = logging.getLogger(__name__)

OTHER_ERROR: Final = 0x01
_BROADCAST: Final = address_field("AAAAAAAAAAAA")


def unit_address(unit_id: int) -> str:
    """The address of a simulated unit: its id in 12 digits."""
    return f"{unit_id:012d}"


def _fits(spec: ValueSpec, value: float) -> float:
    """The value the format can carry: clipped to its digits (a real meter's display)."""
    largest = float(bcd_limit(spec.size, spec.signed) - 1) / float(10**spec.decimals)
    low = -largest if spec.signed else 0.0
    return min(max(value, low), largest)


@dataclass(slots=True)
class SimulatedMeter:
    profile: Dlt645Profile
    unit_id: int
    hold: bool
    start_time: float

    @property
    def address(self) -> bytes:
        return address_field(unit_address(self.unit_id))

    def values(self, t: float) -> dict[Quantity, float]:
        return meter_for_unit(self.unit_id).values(t)

    def encoded(self, spec: ValueSpec, values: dict[Quantity, float]) -> bytes:
        value = _fits(spec, values.get(spec.quantity, 0.0) / spec.scale)
        return encode_bcd(value, spec.size, spec.decimals, spec.signed)

    def answer(self, request: Frame, alone: bool) -> Frame | None:
        if request.control == READ_ADDRESS:
            if request.address != _BROADCAST or not alone:
                return None
            return Frame(self.address, READ_ADDRESS | REPLY, self.address)
        if not all(a in (0xAA, b) for a, b in zip(request.address, self.address, strict=True)):
            return None
        if request.control != READ_DATA or len(request.data) != 4:
            return Frame(self.address, request.control | REPLY | ERROR, bytes([OTHER_ERROR]))
        identifier = int.from_bytes(request.data, "little")
        spec = next((v for v in self.profile.values if v.di == identifier), None)
        if spec is None:
            return Frame(self.address, READ_DATA | REPLY | ERROR, bytes([NO_SUCH_DATA]))
        values = self.values(self.start_time if self.hold else time.time())
        return Frame(self.address, READ_DATA | REPLY, request.data + self.encoded(spec, values))

    def served(self) -> dict[str, float]:
        """The values a client reads at the start time, in canonical units."""
        values = self.values(self.start_time)
        return {
            spec.quantity.value: decode_bcd(
                self.encoded(spec, values), spec.decimals, spec.signed, spec.scale
            )
            for spec in self.profile.values
        }


async def _answer_stream(port: Port, meters: Sequence[SimulatedMeter], where: str) -> None:
    parser = FrameParser()
    alone = len(meters) == 1
    with contextlib.suppress(ConnectionError):
        while True:
            for item in parser.feed(await port.read()):
                if isinstance(item, FrameError):
                    log.debug("skipped", extra=fields(where=where, reason=str(item)))
                    continue
                for meter in meters:
                    reply = meter.answer(item, alone)
                    if reply is not None:
                        port.write(reply.encode())
                        break


def write_dump(path: Path, profile: Dlt645Profile, meters: Sequence[SimulatedMeter]) -> None:
    document = {
        "profile": profile.model,
        "values": {str(m.unit_id): m.served() for m in meters},
        "addresses": {str(m.unit_id): unit_address(m.unit_id) for m in meters},
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


async def serve_dlt645(
    profile: Dlt645Profile,
    host: str,
    port: int,
    unit_ids: list[int],
    hold: bool,
    dump: Path | None,
    *,
    serial: SerialSettings | None = None,
) -> None:
    """Answer DL/T 645 requests for `unit_ids` until cancelled: on TCP host:port (a
    transparent gateway), or on a `serial` line instead."""
    start_time = time.time()
    meters = [SimulatedMeter(profile, unit_id, hold, start_time) for unit_id in unit_ids]
    server: asyncio.Server | None = None
    line: SerialPort | None = None
    task: asyncio.Task[None] | None = None
    if serial is not None:
        try:
            line = SerialPort.open(serial)
        except ReadError as exc:
            raise ValueError(exc.detail) from exc
        task = asyncio.create_task(_answer_stream(line, meters, serial.device))
        where = {"serial": serial.device, "baud": serial.baud}
    else:

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tcp = TcpPort(reader, writer)
            try:
                await _answer_stream(tcp, meters, f"{host}:{port}")
            finally:
                tcp.close()

        try:
            server = await asyncio.start_server(connected, host, port)
        except OSError as exc:
            raise ValueError(
                f"cannot listen on {host}:{port}: in use, or not an address of this machine"
            ) from exc
        where = {"host": host, "port": port}
    try:
        log.info(
            "simulator listening",
            extra=fields(
                protocol="dlt645",
                profile=profile.model,
                **where,
                addresses=",".join(unit_address(u) for u in unit_ids),
                hold=hold,
            ),
        )
        if dump is not None:
            await asyncio.to_thread(write_dump, dump, profile, meters)
        await asyncio.Event().wait()
    finally:
        if task is not None:
            task.cancel()
        if line is not None:
            line.close()
        if server is not None:
            server.close()
