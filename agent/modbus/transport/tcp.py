"""Modbus TCP (MBAP framing), reading register and bit tables: the agent's hot path.

pymodbus's client spends about 67 µs of CPU a request on a 2-core gateway-class machine
(bench/README.md): a transaction manager, a framer, PDU objects, a debug text of every
PDU whether logged or not, and an `asyncio.wait_for` per request. Reading registers
needs none of that. A bus holds one request in flight at a time (its lock), so a
connection here keeps just that request: its transaction id, a future and a timer.
Serial lines and RTU framing over TCP keep pymodbus (agent.modbus.transport.rtu), whose
inter-frame timing they need.

Reply checks: the transaction id must be the pending request's (a late reply to a
request that timed out is dropped), the unit id and function echoed, the byte count
consistent with the frame. A stream that is not Modbus TCP cannot be resynchronised,
so it fails the request and closes the connection.

A timeout keeps the connection (one dead unit behind a gateway must not reconnect the
others). A gateway that vanished without a reset (power cut, a firewall that forgot the
connection) is found by the kernel instead: requests it does not acknowledge within
UNACKED_LIMIT close the connection, and the next read reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Final, cast

from agent.modbus.errors import ReadError
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

_REQUEST: Final = struct.Struct(">HHHBBHH")
"""transaction id, protocol 0, length 6, unit id, function, address, count."""
_MBAP: Final = struct.Struct(">HHHB")
"""transaction id, protocol id, length of what follows, unit id."""
_MAX_LENGTH: Final = 254
"""A Modbus PDU is at most 253 bytes; the MBAP length counts the unit id too."""
_BUFFER_SIZE: Final = 1024
"""Room for several whole frames (at most 260 bytes each) and the start of the next."""
UNACKED_LIMIT: Final = 30.0
"""Seconds a request may stay unacknowledged by the peer's TCP before the connection is
given up (TCP_USER_TIMEOUT); the Linux default is about 15 minutes of retransmissions."""
_REGISTERS: Final = [struct.Struct(f">{n}H") for n in range(126)]
"""Decoders of 0..125 registers (125: the most one read may ask for)."""
_BIT_FUNCTIONS: Final = frozenset({1, 2})
"""Read coils, read discrete inputs: the reply packs the bits, the first in bit 0 of byte 0."""
_BYTE_BITS: Final = [tuple((byte >> bit) & 1 for bit in range(8)) for byte in range(256)]

EXCEPTION_NAMES: Final = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class _Request:
    __slots__ = ("count", "deadline", "function", "reply", "tid", "unit_id", "within")

    def __init__(
        self,
        tid: int,
        unit_id: int,
        function: int,
        count: int,
        reply: asyncio.Future[tuple[int, ...]],
        within: float,
        deadline: float,
    ) -> None:
        self.tid = tid
        self.unit_id = unit_id
        self.function = function
        self.count = count
        self.reply = reply
        self.within = within
        self.deadline = deadline


class _Stream(asyncio.BufferedProtocol):
    """The byte stream of one connection, cut into MBAP frames.

    Buffered: replies land in this connection's own small buffer. A plain Protocol gets
    each reply in a fresh bytes object that asyncio allocates at 256 KiB and shrinks, a
    large allocation per reply for 10 to 260 bytes (neither RSS nor CPU changed
    measurably at 500 meters either way).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._buffer = bytearray(_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self.transport: asyncio.Transport | None = None
        self.pending: _Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport: asyncio's is an asyncio.Transport, uvloop's
        # has the same methods without the base class.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        reason = f": {exc}" if exc is not None else ""
        self._fail(ReadError("connect", f"{self._name} closed the connection{reason}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        filled = self._filled + nbytes
        buffer, start = self._buffer, 0
        while filled - start >= 7:
            tid, protocol, length, unit_id = _MBAP.unpack_from(buffer, start)
            if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                self._corrupt(f"protocol id {protocol}, length {length}")
                return
            end = start + 6 + length
            if filled < end:
                break
            self._frame(tid, unit_id, bytes(buffer[start + 7 : end]))
            start = end
        if start:
            # What is left is less than a frame (at most 259 bytes): keep it at the front.
            buffer[: filled - start] = buffer[start:filled]
        self._filled = filled - start

    def _frame(self, tid: int, unit_id: int, pdu: bytes) -> None:
        request = self.pending
        if request is None or tid != request.tid:
            # The answer to a request that already timed out: nobody waits for it.
            log.debug("late reply dropped", extra=fields(bus=self._name, transaction=tid))
            return
        self.pending = None
        if request.reply.done():
            return
        function = pdu[0]
        if unit_id != request.unit_id:
            error = ReadError(
                "reply", f"reply from unit {unit_id} to a request to unit {request.unit_id}"
            )
        elif function == request.function | 0x80 and len(pdu) == 2:
            code = pdu[1]
            name = EXCEPTION_NAMES.get(code, "unknown")
            error = ReadError("exception", f"exception code {code} ({name})", code)
        elif function != request.function:
            error = ReadError(
                "reply", f"reply with function {function} to function {request.function}"
            )
        elif function in _BIT_FUNCTIONS:
            bits = _bits(pdu, request.count)
            if not isinstance(bits, ReadError):
                request.reply.set_result(bits)
                return
            error = bits
        elif len(pdu) < 2 or pdu[1] != len(pdu) - 2 or pdu[1] % 2:
            error = ReadError(
                "reply", f"byte count {pdu[1] if len(pdu) > 1 else None} in a {len(pdu)}-byte reply"
            )
        else:
            request.reply.set_result(_REGISTERS[pdu[1] // 2].unpack_from(pdu, 2))
            return
        request.reply.set_exception(error)

    def _corrupt(self, detail: str) -> None:
        self._filled = 0
        self._fail(
            ReadError("reply", f"{self._name} sent something that is not Modbus TCP ({detail})")
        )
        transport, self.transport = self.transport, None
        if transport is not None:
            # Not connected from now on (connection_lost comes a loop turn later): the
            # next read reconnects instead of writing to the closing transport.
            transport.close()

    def _fail(self, error: ReadError) -> None:
        request, self.pending = self.pending, None
        if request is not None and not request.reply.done():
            request.reply.set_exception(error)


def _bits(pdu: bytes, count: int) -> tuple[int, ...] | ReadError:
    """The `count` bits of a coil or discrete input reply as 0 and 1, or what is wrong."""
    size = (count + 7) // 8
    if len(pdu) < 2 or pdu[1] != size or len(pdu) != size + 2:
        return ReadError(
            "reply",
            f"byte count {pdu[1] if len(pdu) > 1 else None} in a {len(pdu)}-byte reply "
            f"to a read of {count} bits",
        )
    bits = [bit for byte in pdu[2:] for bit in _BYTE_BITS[byte]]
    return tuple(bits[:count])


class ModbusTcp:
    """One Modbus TCP connection that reads register tables, one request at a time."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self._name = name
        self._host = host
        self._port = port
        self._stream: _Stream | None = None
        self._tid = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self._stream is not None and self._stream.transport is not None

    async def connect(self, within: float) -> None:
        """Open the connection; ReadError "connect" when it cannot be opened in time."""
        self.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, stream = await loop.create_connection(
                    lambda: _Stream(self._name), self._host, self._port
                )
        except (OSError, TimeoutError) as exc:
            raise ReadError("connect", str(exc) or f"no answer in {within:g}s") from exc
        sock = stream.transport.get_extra_info("socket") if stream.transport else None
        if sock is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKED_LIMIT * 1000))
        self._stream = stream

    async def read(
        self, function: int, address: int, count: int, unit_id: int, within: float
    ) -> tuple[int, ...]:
        """The registers `address`.. of a table (function 3 or 4), or its bits as 0 and 1
        (function 1 or 2); ReadError when it cannot be read."""
        stream = self._stream
        if stream is None or stream.transport is None:
            raise ReadError("connect", f"not connected to {self._name}")
        if stream.pending is not None:
            raise RuntimeError("one request at a time on a Modbus TCP connection")
        self._tid = tid = (self._tid + 1) & 0xFFFF
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[tuple[int, ...]] = loop.create_future()
        deadline = loop.time() + within
        stream.pending = request = _Request(tid, unit_id, function, count, reply, within, deadline)
        stream.transport.write(_REQUEST.pack(tid, 0, 6, unit_id, function, address, count))
        self._watch(loop, deadline)
        try:
            return await reply
        finally:
            if stream.pending is request:
                stream.pending = None

    def _watch(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        # One timer per connection, not one armed and cancelled per request: it stays
        # armed across requests and, when it fires early for the request now pending,
        # is armed again for that request's deadline.
        timer = self._timer
        if timer is not None and timer.when() <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._timer = loop.call_at(deadline, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        stream = self._stream
        request = stream.pending if stream is not None else None
        if request is None or request.reply.done():
            return
        if loop.time() < request.deadline:
            self._timer = loop.call_at(request.deadline, self._check, loop)
            return
        detail = f"unit {request.unit_id} on {self._name}: no reply in {request.within:g}s"
        request.reply.set_exception(ReadError("timeout", detail))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        stream, self._stream = self._stream, None
        if stream is not None and stream.transport is not None:
            stream.transport.close()
