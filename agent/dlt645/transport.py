"""DL/T 645 on the wire: a serial line (RS-485) or a TCP transparent gateway in front of
one, with the bus discipline of every bus (agent.buslink, as agent.modbus.transport.bus):
one request at a time per line, a meter holds the line for its whole read, a pause
between frames on a serial line, reconnection with backoff, and a timeout per request.

A reply is the first frame that answers the request (its address and identifier). Noise
before it is skipped (the parser resynchronises); a frame for another request (a late reply
to one that timed out) is skipped too, and named in the error if nothing else comes. An
error reply fails the request with kind "exception" and the meter's error byte as its code;
a corrupted reply (checksum, end byte) with kind "reply".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Protocol

import serial

from agent.buslink import LinkedBus
from agent.config import Dlt645Settings, Parity, SerialSettings
from agent.dlt645.codec import (
    Frame,
    FrameError,
    FrameParser,
    address_field,
    address_text,
    check_reply,
    read_address_request,
    read_request,
)
from agent.modbus.errors import ReadError
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

_PARITY: Final = {
    Parity.NONE: serial.PARITY_NONE,
    Parity.EVEN: serial.PARITY_EVEN,
    Parity.ODD: serial.PARITY_ODD,
}
_CHUNK: Final = 512
_CORRUPT: Final = {"checksum", "end"}
GATEWAY_SILENCE: Final = 0.002
"""Gap kept between frames through a TCP gateway: a serial line is behind it."""


class Port(Protocol):
    """A byte stream: a serial device or a TCP connection."""

    def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes:
        """Some bytes; ConnectionError when the stream is gone."""
        ...

    def close(self) -> None: ...


class TcpPort:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def read(self) -> bytes:
        data = await self._reader.read(_CHUNK)
        if not data:
            raise ConnectionError("the connection was closed")
        return data

    def close(self) -> None:
        self._writer.close()


class SerialPort:
    """A serial device, set up by pyserial and read through the event loop."""

    def __init__(self, device: serial.Serial) -> None:
        self._device = device
        self._fd = device.fileno()
        os.set_blocking(self._fd, False)

    @classmethod
    def open(cls, line: SerialSettings) -> SerialPort:
        try:
            device = serial.Serial(
                line.device,
                baudrate=line.baud,
                bytesize=line.data_bits,
                parity=_PARITY[line.parity],
                stopbits=line.stop_bits,
                timeout=0,
            )
        except (serial.SerialException, ValueError) as exc:
            raise ReadError("connect", f"cannot open {line.device}: {exc}") from exc
        return cls(device)

    def write(self, data: bytes) -> None:
        # A frame is a few dozen bytes: the driver's buffer takes it whole.
        os.write(self._fd, data)

    async def read(self) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            if ready.done():
                return
            try:
                ready.set_result(os.read(self._fd, _CHUNK))
            except BlockingIOError:
                return
            except OSError as exc:
                ready.set_exception(ConnectionError(f"{self._device.port}: {exc}"))

        loop.add_reader(self._fd, readable)
        try:
            data = await ready
        finally:
            loop.remove_reader(self._fd)
        if not data:
            raise ConnectionError(f"{self._device.port} was closed")
        return data

    def discard(self) -> None:
        """Drop what arrived since the last request (a late reply, noise)."""
        with contextlib.suppress(OSError):
            # Bounded: a line that never stops talking is not waited out here.
            for _ in range(16):
                if not os.read(self._fd, _CHUNK):
                    break

    def close(self) -> None:
        self._device.close()


Opener = Callable[[float], Awaitable[Port]]


def tcp_opener(host: str, port: int) -> Opener:
    async def open_tcp(within: float) -> Port:
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise ReadError("connect", str(exc) or f"no answer in {within:g}s") from exc
        return TcpPort(reader, writer)

    return open_tcp


def serial_opener(line: SerialSettings) -> Opener:
    async def open_serial(_within: float) -> Port:
        return SerialPort.open(line)

    return open_serial


class Dlt645Link:
    """One connection carrying DL/T 645 requests, one at a time."""

    def __init__(self, name: str, opener: Opener, wake_up: bool = True) -> None:
        self.name = name
        self._opener = opener
        self._wake_up = wake_up
        self._port: Port | None = None

    @property
    def connected(self) -> bool:
        return self._port is not None

    async def connect(self, within: float) -> None:
        self.close()
        self._port = await self._opener(within)

    async def exchange(self, request: Frame, within: float) -> bytes:
        """The data of the meter's reply to `request` (see check_reply), or ReadError."""
        port = self._port
        if port is None:
            raise ReadError("connect", f"not connected to {self.name}")
        if isinstance(port, SerialPort):
            port.discard()
        parser = FrameParser()
        skipped: FrameError | None = None
        try:
            port.write(request.encode(self._wake_up))
        except OSError as exc:
            self.close()
            raise ReadError("connect", f"{self.name}: {exc}") from exc
        try:
            async with asyncio.timeout(within):
                while True:
                    try:
                        data = await port.read()
                    except ConnectionError as exc:
                        self.close()
                        raise ReadError("connect", f"{self.name}: {exc}") from exc
                    for item in parser.feed(data):
                        reply = self._take(request, item)
                        if isinstance(reply, bytes):
                            return reply
                        skipped = reply or skipped
        except TimeoutError:
            pass
        truncated = parser.truncated()
        what = f"meter {request.address_text} on {self.name}"
        if truncated is not None:
            raise ReadError("reply", f"{what}: {truncated}")
        if skipped is not None:
            raise ReadError("reply", f"{what}: no reply in {within:g}s, only {skipped}")
        raise ReadError("timeout", f"{what}: no reply in {within:g}s")

    def _take(self, request: Frame, item: Frame | FrameError) -> bytes | FrameError | None:
        """The reply's data if `item` answers `request`; what was skipped otherwise."""
        if isinstance(item, FrameError):
            if item.kind in _CORRUPT:
                raise ReadError("reply", f"{self.name}: {item}")
            log.debug("skipped", extra=fields(bus=self.name, reason=str(item)))
            return item
        try:
            return check_reply(request, item)
        except FrameError as exc:
            if exc.kind == "refused":
                raise ReadError("exception", exc.detail, exc.code) from exc
            return exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()


ReadIdentifier = Callable[[int], Awaitable[bytes]]
"""Reads one data identifier of the meter a session is for: the value's bytes."""


class Dlt645Bus(LinkedBus[Dlt645Link]):
    """One serial line or gateway connection shared by the DL/T 645 meters behind it."""

    def __init__(
        self, name: str, link: Dlt645Link, silence: float = 0.0, serial_line: bool = False
    ) -> None:
        super().__init__(name, link, silence, log, log_fields={"protocol": "dlt645"})
        self._serial = serial_line

    @classmethod
    def for_settings(cls, settings: Dlt645Settings) -> Dlt645Bus:
        return cls.for_line(settings.serial, settings.host, settings.port, settings.wake_up)

    @classmethod
    def for_line(
        cls,
        line: SerialSettings | None,
        host: str | None = None,
        port: int | None = None,
        wake_up: bool = True,
    ) -> Dlt645Bus:
        """A bus on a serial `line`, or through the gateway at host:port."""
        if line is not None:
            link = Dlt645Link(line.device, serial_opener(line), wake_up)
            return cls(line.device, link, line.silence, serial_line=True)
        assert host is not None and port is not None
        name = f"{host}:{port}"
        return cls(name, Dlt645Link(name, tcp_opener(host, port), wake_up), GATEWAY_SILENCE)

    @contextlib.asynccontextmanager
    async def session(self, meter: Dlt645Settings) -> AsyncIterator[ReadIdentifier]:
        """Hold the bus for a series of reads of one meter."""
        field = address_field(meter.address)
        async with self._lock:

            async def read(identifier: int) -> bytes:
                request = read_request(field, identifier)
                return await self._exchange(request, meter.timeout, meter.retries)

            yield read

    async def read_address(self, within: float) -> str:
        """The address of the only meter on the line (broadcast read address)."""
        async with self._lock:
            field = await self._exchange(read_address_request(), within, 0)
        return address_text(field)

    async def _exchange(self, request: Frame, within: float, retries: int) -> bytes:
        await self._connect(within)
        attempt = 0
        while True:
            await self._keep_silence()
            self.requests += 1
            try:
                reply = await self._link.exchange(request, within)
            except ReadError as exc:
                self._quiet_since = time.monotonic()
                if exc.kind == "timeout" and attempt < retries:
                    attempt += 1
                    continue
                if exc.kind != "exception" and not self._serial:
                    # A gateway connection that timed out may be half-open, and a late
                    # reply would arrive in the next request's place: start clean.
                    self._link.close()
                raise
            self._quiet_since = time.monotonic()
            return reply
