"""Modbus buses: the unit of concurrency. One bus is one serial line or one TCP host:port.

Requests on a bus go strictly one at a time (an RS-485 line carries one frame at a time,
and most gateways serialise anyway); different buses are independent, so the agent polls
them concurrently. A meter holds its bus for one whole read (`Bus.session`), so its
blocks are read back to back and the read has one time.

A bus reconnects on demand, with exponential backoff and jitter between failed
connection attempts: while it waits, reads fail at once with kind "connect" instead of
each costing a connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from agent.backoff import Backoff
from agent.config import Framer, ModbusSettings, Parity
from agent.logs import fields
from agent.modbus.errors import ReadError
from agent.modbus.resolve import ReadRegisters
from agent.profiles.model import Function

log = logging.getLogger(__name__)

_PARITY = {Parity.NONE: "N", Parity.EVEN: "E", Parity.ODD: "O"}


@dataclass(frozen=True, slots=True)
class Unit:
    """How one meter is asked: its unit id, and its own timeout and retries."""

    unit_id: int
    timeout: float
    retries: int


Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class Bus:
    """One serial line or TCP connection, shared by the meters behind it."""

    def __init__(
        self,
        name: str,
        client: Client,
        silence: float = 0.0,
        serial: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._silence = silence
        self._serial = serial
        self._lock = asyncio.Lock()
        self._backoff = backoff or Backoff(start=0.5, ceiling=30.0)
        self._connect_after = 0.0
        self._quiet_since = 0.0
        self.requests = 0

    @classmethod
    def for_settings(cls, modbus: ModbusSettings) -> Bus:
        """A bus for a meter's settings (the bus key decides which meters share it)."""
        # The clients' own reconnect and retry loops are off: the bus and the poller decide
        # when to try again, so a dead meter never blocks the rest for longer than it must.
        if modbus.serial is not None:
            line = modbus.serial
            client: Client = AsyncModbusSerialClient(
                line.device,
                framer=FramerType.RTU,
                baudrate=line.baud,
                bytesize=line.data_bits,
                parity=_PARITY[line.parity],
                stopbits=line.stop_bits,
                timeout=modbus.timeout,
                retries=0,
                reconnect_delay=0,
            )
            return cls(line.device, client, silence=line.silence, serial=True)
        assert modbus.host is not None
        rtu = modbus.framer is Framer.RTU
        client = AsyncModbusTcpClient(
            modbus.host,
            port=modbus.port,
            framer=FramerType.RTU if rtu else FramerType.SOCKET,
            timeout=modbus.timeout,
            retries=0,
            reconnect_delay=0,
        )
        # RTU over TCP reaches a serial line behind a converter: keep its inter-frame gap.
        return cls(modbus.bus_name, client, silence=0.002 if rtu else 0.0)

    @contextlib.asynccontextmanager
    async def session(self, unit: Unit) -> AsyncIterator[ReadRegisters]:
        """Hold the bus for a series of reads of one unit."""
        async with self._lock:

            async def read(function: Function, address: int, count: int) -> list[int]:
                return await self._read(unit, function, address, count)

            yield read

    async def _connect(self) -> None:
        if self._client.connected:
            return
        now = time.monotonic()
        if now < self._connect_after:
            raise ReadError(
                "connect",
                f"no connection to {self.name}, next attempt in {self._connect_after - now:.1f}s",
            )
        if await self._client.connect():
            self._backoff.reset()
            log.info("bus connected", extra=fields(bus=self.name))
            return
        delay = self._backoff.next_delay()
        self._connect_after = time.monotonic() + delay
        raise ReadError("connect", f"no connection to {self.name}, retry in {delay:.1f}s")

    async def _read(self, unit: Unit, function: Function, address: int, count: int) -> list[int]:
        await self._connect()
        # The timeout is the meter's own; the client reads it for each request.
        self._client.comm_params.timeout_connect = unit.timeout
        reader = (
            self._client.read_input_registers
            if function is Function.INPUT
            else self._client.read_holding_registers
        )
        attempt = 0
        while True:
            await self._keep_silence()
            self.requests += 1
            try:
                response = await reader(address, count=count, device_id=unit.unit_id)
            except ConnectionException as exc:
                self._quiet_since = time.monotonic()
                self._client.close()
                raise ReadError("connect", f"{self.name}: {exc}") from exc
            except ModbusException as exc:
                self._quiet_since = time.monotonic()
                if attempt < unit.retries:
                    attempt += 1
                    continue
                if not self._serial:
                    # A timed-out TCP connection may carry a late reply; start clean next time.
                    self._client.close()
                raise ReadError("timeout", f"unit {unit.unit_id} on {self.name}: {exc}") from exc
            self._quiet_since = time.monotonic()
            if response.isError():
                code = getattr(response, "exception_code", None)
                raise ReadError("exception", f"exception code {code}", code)
            registers = getattr(response, "registers", None)
            if not isinstance(registers, list):
                raise ReadError("reply", f"unexpected reply {response}")
            return registers

    async def _keep_silence(self) -> None:
        if self._silence <= 0:
            return
        wait = self._quiet_since + self._silence - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def close(self) -> None:
        self._client.close()
        log.debug("closed", extra=fields(bus=self.name))
