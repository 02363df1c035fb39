"""The agent's Modbus TCP client against a scripted server on loopback: every reply a
device or gateway may send, well-formed or not, and what each becomes; and its framing
alone (no server) fed generated replies cut anywhere and arbitrary bytes."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.modbus.codec.plan import plan_reads
from agent.modbus.errors import ReadError
from agent.modbus.transport.bus import Bus, Unit
from agent.modbus.transport.tcp import UNACKED_LIMIT, ModbusTcp, _Request, _Stream
from agent.profiles.model import Function, Profile
from greengauge.contract import Quantity

Request = tuple[int, int, int, int, int]
"""transaction id, unit id, function, address, count."""
Script = Callable[[Request], list[bytes | float]]
"""The server's answer to a request: byte chunks to send, and pauses (seconds) between."""


def frame(tid: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def registers_pdu(function: int, values: list[int]) -> bytes:
    return struct.pack(f">BB{len(values)}H", function, 2 * len(values), *values)


def answer(request: Request) -> bytes:
    """A correct reply: register i holds address + i."""
    tid, unit, function, address, count = request
    return frame(tid, unit, registers_pdu(function, [address + i for i in range(count)]))


@dataclass
class Gateway:
    port: int
    connections: int = 0
    """TCP connections accepted so far"""


@asynccontextmanager
async def gateway(script: Script) -> AsyncIterator[Gateway]:
    """A scripted Modbus TCP server on loopback that counts the connections it accepts."""
    served = Gateway(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.connections += 1
        try:
            while True:
                data = await reader.readexactly(12)
                tid, _, _, unit, function, address, count = struct.unpack(">HHHBBHH", data)
                for step in script((tid, unit, function, address, count)):
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    elif step == b"close":
                        writer.close()
                        return
                    else:
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    served.port = listening.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        listening.close()


@asynccontextmanager
async def server(script: Script) -> AsyncIterator[ModbusTcp]:
    async with gateway(script) as served:
        client = ModbusTcp(f"127.0.0.1:{served.port}", "127.0.0.1", served.port)
        await client.connect(1.0)
        try:
            yield client
        finally:
            client.close()


async def failure(client: ModbusTcp, *, unit: int = 1, within: float = 1.0) -> ReadError:
    with pytest.raises(ReadError) as caught:
        await client.read(4, 0, 4, unit, within)
    return caught.value


async def test_a_reply_gives_the_registers_of_either_table() -> None:
    async with server(lambda r: [answer(r)]) as client:
        assert await client.read(4, 100, 3, 7, 1.0) == (100, 101, 102)
        assert await client.read(3, 0, 125, 7, 1.0) == tuple(range(125))
        assert client.connected


async def test_a_reply_in_pieces_is_put_together() -> None:
    def pieces(request: Request) -> list[bytes | float]:
        reply = answer(request)
        return [reply[:3], 0.02, reply[3:9], 0.02, reply[9:]]

    async with server(pieces) as client:
        assert await client.read(4, 10, 40, 1, 1.0) == tuple(range(10, 50))
        assert await client.read(4, 10, 2, 1, 1.0) == (10, 11)


async def test_a_late_reply_is_dropped_and_the_next_request_gets_its_own() -> None:
    def late_first(request: Request) -> list[bytes | float]:
        if request[0] == 1:
            return [0.3, answer(request)]
        return [answer(request)]

    async with server(late_first) as client:
        error = await failure(client, within=0.1)
        assert error.kind == "timeout"
        assert "unit 1 on 127.0.0.1:" in str(error) and "no reply in 0.1s" in str(error)
        # The first reply (address 0) arrives now, before the second (address 50).
        assert await client.read(4, 50, 2, 1, 1.0) == (50, 51)


async def test_a_late_reply_and_the_right_one_in_one_segment() -> None:
    def both(request: Request) -> list[bytes | float]:
        tid, unit, function, _address, count = request
        stale = frame((tid - 1) & 0xFFFF, unit, registers_pdu(function, [9] * count))
        return [stale + answer(request)]

    async with server(both) as client:
        assert await client.read(4, 5, 2, 1, 1.0) == (5, 6)


async def test_an_exception_reply_names_the_code() -> None:
    async with server(lambda r: [frame(r[0], r[1], bytes([r[2] | 0x80, 2]))]) as client:
        error = await failure(client)
        assert (error.kind, error.exception_code) == ("exception", 2)
        assert "illegal data address" in str(error)
        assert client.connected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (lambda r: frame(r[0], r[1] + 1, registers_pdu(r[2], [0] * r[4])), "from unit 2"),
        (lambda r: frame(r[0], r[1], registers_pdu(3, [0] * r[4])), "function 3 to function 4"),
        (lambda r: frame(r[0], r[1], bytes([r[2], 8, 0, 1])), "byte count 8 in a 4-byte reply"),
        (lambda r: frame(r[0], r[1], bytes([r[2], 3, 0, 1, 2])), "byte count 3"),
    ],
    ids=["other unit", "other function", "byte count too big", "odd byte count"],
)
async def test_a_reply_that_does_not_answer_the_request(
    reply: Callable[[Request], bytes], expected: str
) -> None:
    async with server(lambda r: [reply(r)]) as client:
        error = await failure(client)
        assert error.kind == "reply"
        assert expected in str(error)


async def test_fewer_registers_than_asked_are_given_to_the_decoder() -> None:
    async with server(lambda r: [frame(r[0], r[1], registers_pdu(r[2], [1, 2, 3]))]) as client:
        assert await client.read(4, 0, 4, 1, 1.0) == (1, 2, 3)


async def test_a_stream_that_is_not_modbus_tcp_fails_and_closes() -> None:
    async with server(lambda r: [bytes(b ^ 0x5A for b in answer(r))]) as client:
        error = await failure(client)
        assert error.kind == "reply"
        assert "not Modbus TCP (protocol id 23130" in str(error)
        await asyncio.sleep(0.05)
        assert not client.connected
        assert (await failure(client)).kind == "connect"


async def test_a_connection_closed_by_the_device_fails_the_request() -> None:
    async with server(lambda r: [b"close"]) as client:
        error = await failure(client)
        assert error.kind == "connect"
        assert "closed the connection" in str(error)
        assert not client.connected
        await client.connect(1.0)
        assert client.connected


async def test_no_server_is_a_connect_error() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    client = ModbusTcp(f"127.0.0.1:{port}", "127.0.0.1", port)
    with pytest.raises(ReadError) as caught:
        await client.connect(1.0)
    assert caught.value.kind == "connect"
    assert "Connect call failed" in str(caught.value)
    assert not client.connected


async def test_a_cancelled_read_leaves_the_connection_usable() -> None:
    def slow_first(request: Request) -> list[bytes | float]:
        return [0.3, answer(request)] if request[0] == 1 else [answer(request)]

    async with server(slow_first) as client:
        task = asyncio.create_task(client.read(4, 0, 2, 1, 5.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await client.read(4, 20, 2, 1, 1.0) == (20, 21)


async def test_each_request_times_out_at_its_own_deadline() -> None:
    # Meters on one connection may have different timeouts: a short one after a long one
    # must not wait out the long one's timer.
    async with server(lambda r: [answer(r)] if r[1] == 1 else []) as client:
        assert await client.read(4, 0, 2, 1, 30.0) == (0, 1)
        started = asyncio.get_running_loop().time()
        error = await failure(client, unit=2, within=0.2)
        assert error.kind == "timeout" and "unit 2" in str(error)
        assert asyncio.get_running_loop().time() - started < 5.0
        assert await client.read(4, 7, 1, 1, 30.0) == (7,)


async def test_a_dead_unit_behind_a_gateway_keeps_the_connection_for_the_others() -> None:
    # Transaction ids tell a late reply from the next one, so a unit that never answers
    # costs its own timeouts only: no reconnect, and the healthy units read every tick.
    dead, healthy = 9, [1, 2, 3, 4]
    async with gateway(lambda r: [] if r[1] == dead else [0.01, answer(r)]) as served:
        name = f"127.0.0.1:{served.port}"
        bus = Bus(name, ModbusTcp(name, "127.0.0.1", served.port))
        missed = 0
        try:
            for _ in range(8):
                for unit_id in [dead, *healthy]:
                    timeout = 0.05 if unit_id == dead else 1.0
                    async with bus.session(Unit(unit_id, timeout, retries=0)) as read:
                        try:
                            assert await read(Function.INPUT, 10, 2) == (10, 11)
                        except ReadError as exc:
                            assert (unit_id, exc.kind) == (dead, "timeout")
                        else:
                            continue
                    missed += unit_id != dead
        finally:
            bus.close()
        assert missed == 0
        assert served.connections == 1


@pytest.mark.parametrize("order", ["BADC", "DCBA"])
async def test_a_device_that_byte_swaps_16_bit_registers_is_read_right(order: str) -> None:
    # Every single-register type honours the swap: int16, uint16, and the scale factor.
    profile = Profile.model_validate(
        {
            "model": "swapped",
            "manufacturer": "tests",
            "description": "16-bit registers sent little-endian",
            "sources": {"t": "t"},
            "function": "holding",
            "byte_order": order,
            "registers": [
                {"quantity": "power_active", "address": 0, "type": "int16", "unit": "W",
                 "scale_factor": 2, "source": "t"},
                {"quantity": "voltage_l1", "address": 1, "type": "uint16", "unit": "V",
                 "scale": 0.01, "source": "t"},
            ],
        }
    )  # fmt: skip
    # -1234, 54321 and the scale factor 1, each register's two bytes swapped.
    served = [0x2EFB, 0x31D4, 0x0100]
    (block,) = plan_reads(profile)

    def reply(request: Request) -> list[bytes | float]:
        tid, unit, function, address, count = request
        return [frame(tid, unit, registers_pdu(function, served[address : address + count]))]

    async with gateway(reply) as served_by:
        name = f"127.0.0.1:{served_by.port}"
        bus = Bus(name, ModbusTcp(name, "127.0.0.1", served_by.port))
        try:
            async with bus.session(Unit(1, 1.0, retries=0)) as read:
                registers = await read(block.function, block.address, block.count)
        finally:
            bus.close()
    values, problems = block.decode(registers)
    assert problems == []
    assert values == {Quantity.POWER_ACTIVE: -12340.0, Quantity.VOLTAGE_L1: pytest.approx(543.21)}


async def test_a_gateway_that_vanishes_silently_is_given_up_by_the_kernel() -> None:
    # Timeouts keep the connection, so the kernel must end one whose peer stopped
    # acknowledging (no reset ever comes): after UNACKED_LIMIT, not ~15 minutes.
    async with server(lambda r: [answer(r)]) as client:
        stream = client._stream
        assert stream is not None and stream.transport is not None
        sock = stream.transport.get_extra_info("socket")
        limit = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
        assert limit == int(UNACKED_LIMIT * 1000)


class _Transport:
    """What the stream asks of asyncio's transport when it gives up on a connection."""

    closed = False

    def close(self) -> None:
        self.closed = True


def _fed(stream: _Stream, data: bytes, cuts: list[int]) -> None:
    """`data` into the stream as asyncio's buffered reads would put it: in pieces cut at
    `cuts`, each written into the buffer the stream offers, never more than it offers."""
    pieces = [data[a:b] for a, b in itertools.pairwise([0, *sorted(set(cuts)), len(data)])]
    for piece in pieces:
        start = 0
        while start < len(piece):
            if stream.transport is None:
                return  # closed: asyncio delivers nothing more
            room = stream.get_buffer(-1)
            assert len(room) >= 1
            taken = piece[start : start + len(room)]
            room[: len(taken)] = taken
            stream.buffer_updated(len(taken))
            start += len(taken)


def _stream_waiting(
    loop: asyncio.AbstractEventLoop, tid: int, unit: int, function: int, count: int
) -> tuple[_Stream, asyncio.Future[tuple[int, ...]]]:
    stream = _Stream("gateway")
    stream.connection_made(cast(asyncio.BaseTransport, _Transport()))
    reply: asyncio.Future[tuple[int, ...]] = loop.create_future()
    stream.pending = _Request(tid, unit, function, count, reply, 1.0, 0.0)
    return stream, reply


@given(
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    st.sampled_from([3, 4]),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.lists(st.integers(1, 600), max_size=12),
    st.integers(0, 3),
)
def test_replies_cut_anywhere_give_the_request_its_registers(
    values: list[int], function: int, tid: int, unit: int, cuts: list[int], late: int
) -> None:
    """Late replies to earlier requests first, then the answer, arriving in any pieces."""
    loop = asyncio.new_event_loop()
    try:
        stream, reply = _stream_waiting(loop, tid, unit, function, len(values))
        other = [(value + 1) & 0xFFFF for value in values]  # what a stale reply held
        stale = [
            frame((tid - 1 - i) & 0xFFFF, unit, registers_pdu(function, other)) for i in range(late)
        ]
        data = b"".join(stale) + frame(tid, unit, registers_pdu(function, values))
        _fed(stream, data, cuts)
        assert reply.done() and reply.result() == tuple(values)
        assert stream.pending is None and stream.transport is not None
    finally:
        loop.close()


@given(st.binary(max_size=1500), st.lists(st.integers(1, 1500), max_size=12))
def test_any_bytes_end_the_request_with_a_read_error_or_leave_it_waiting(
    data: bytes, cuts: list[int]
) -> None:
    """Whatever a device sends: no exception but a ReadError for the request; a stream
    that is not Modbus TCP closes the connection."""
    loop = asyncio.new_event_loop()
    try:
        stream, reply = _stream_waiting(loop, 7, 1, 3, 2)
        transport = cast(_Transport, stream.transport)
        _fed(stream, data, cuts)
        if reply.done() and reply.exception() is not None:
            assert isinstance(reply.exception(), ReadError)
        if transport.closed:
            assert stream.transport is None
            assert reply.done() and isinstance(reply.exception(), ReadError)
    finally:
        loop.close()
