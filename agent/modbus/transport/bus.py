"""Modbus buses: the unit of concurrency. One bus is one serial line or one TCP host:port.

Requests on a bus go strictly one at a time (an RS-485 line carries one frame at a time,
and most gateways serialise anyway); different buses are independent, so the agent polls
them concurrently. A meter holds its bus for one whole read (`Bus.session`), so its
blocks are read back to back and the read has one time.

A late reply (to a request that timed out) must never be taken for the next request's:
Modbus TCP drops it by its transaction id; RTU has none, so RTU over TCP reconnects
after a timeout and a serial line stays quiet for the timed-out request's timeout
before the next request (pymodbus drops a reply that comes while no request waits).

A bus reconnects on demand, with exponential backoff and jitter between failed
connection attempts: while it waits, reads fail at once with kind "connect" instead of
each costing a connect timeout.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from agent.buslink import LinkedBus
from agent.config import Framer, ModbusSettings
from agent.modbus.codec.resolve import ReadRegisters
from agent.modbus.errors import ReadError
from agent.modbus.transport.tcp import ModbusTcp
from agent.profiles.model import Function
from greengauge.common.backoff import Backoff

log = logging.getLogger(__name__)

_CODES: Final = {function: function.code for function in Function}


@dataclass(frozen=True, slots=True)
class Unit:
    """How one meter is asked: its unit id, and its own timeout and retries."""

    unit_id: int
    timeout: float
    retries: int


class _Session:
    """The bus held for one read of a meter: a plain class, not an asynccontextmanager,
    whose generator and closure cost about as much as a Modbus request's own Python."""

    __slots__ = ("_lock", "_read")

    def __init__(self, lock: asyncio.Lock, read: ReadRegisters) -> None:
        self._lock = lock
        self._read = read

    async def __aenter__(self) -> ReadRegisters:
        await self._lock.acquire()
        return self._read

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class Resync(Enum):
    """How a bus keeps a late reply from being taken for the next request's answer."""

    TRANSACTION_ID = "transaction id"
    """Modbus TCP: a reply names its request; the link drops late ones."""
    RECONNECT = "reconnect"
    """RTU over TCP: a new connection after a missing or bad reply."""
    SETTLE = "settle"
    """A serial line: quiet for the timed-out request's timeout before the next one."""


class Link(Protocol):
    """One connection carrying a bus's requests: Modbus TCP, or RTU framing (pymodbus).

    `read` raises ReadError: "connect" (no connection), "timeout" (no reply), "exception"
    (the device's exception reply) or "reply" (a reply that is not a valid answer).
    """

    @property
    def connected(self) -> bool: ...

    async def connect(self, within: float) -> None: ...

    async def read(
        self, function: int, address: int, count: int, unit_id: int, within: float
    ) -> Sequence[int]: ...

    def close(self) -> None: ...


class Bus(LinkedBus[Link]):
    """One serial line or TCP connection, shared by the meters behind it."""

    def __init__(
        self,
        name: str,
        link: Link,
        silence: float = 0.0,
        resync: Resync = Resync.TRANSACTION_ID,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, link, silence, log, backoff)
        self._resync = resync
        # Whether requests wait for the line to be quiet: for the gap between frames, or
        # after a timeout on a serial line (even one configured with no gap).
        self._paced = silence > 0 or resync is Resync.SETTLE

    @classmethod
    def for_settings(cls, modbus: ModbusSettings) -> Bus:
        """A bus for a meter's settings (the bus key decides which meters share it)."""
        if modbus.serial is not None:
            from agent.modbus.transport.rtu import RtuLink  # noqa: PLC0415 - pymodbus only for RTU framing

            link = RtuLink.serial(modbus.serial, modbus.timeout)
            return cls(
                modbus.serial.device, link, silence=modbus.serial.silence, resync=Resync.SETTLE
            )
        assert modbus.host is not None
        if modbus.framer is Framer.RTU:
            from agent.modbus.transport.rtu import RtuLink  # noqa: PLC0415

            link = RtuLink.over_tcp(modbus.host, modbus.port, modbus.timeout)
            # RTU over TCP reaches a serial line behind a converter: keep its inter-frame gap.
            return cls(modbus.bus_name, link, silence=0.002, resync=Resync.RECONNECT)
        return cls(modbus.bus_name, ModbusTcp(modbus.bus_name, modbus.host, modbus.port))

    def session(self, unit: Unit) -> _Session:
        """Hold the bus for a series of reads of one unit."""
        return _Session(self._lock, functools.partial(self._read, unit))

    async def _read(
        self, unit: Unit, function: Function, address: int, count: int
    ) -> Sequence[int]:
        if not self._link.connected:
            # Tested here, not only in _connect: a coroutine less per request.
            await self._connect(unit.timeout)
        code = _CODES[function]
        attempt = 0
        while True:
            if self._paced:
                await self._keep_silence()
            self.requests += 1
            try:
                registers = await self._link.read(code, address, count, unit.unit_id, unit.timeout)
            except ReadError as exc:
                self._quiet_since = time.monotonic()
                if exc.kind == "timeout" and self._resync is Resync.SETTLE:
                    # A reply later than twice its timeout can still be mistaken; no device
                    # configured with that timeout should answer so late.
                    self._quiet_since += unit.timeout
                if exc.kind == "timeout" and attempt < unit.retries:
                    attempt += 1
                    continue
                if exc.kind == "connect" or (
                    exc.kind != "exception" and self._resync is Resync.RECONNECT
                ):
                    # Modbus TCP keeps its connection through timeouts: one dead unit behind
                    # a shared gateway must not reconnect everyone, and transaction ids drop
                    # its late replies. A gateway that restarted answers the next request
                    # with a reset, which fails it as "connect".
                    self._link.close()
                raise
            if self._paced:
                self._quiet_since = time.monotonic()
            return registers
