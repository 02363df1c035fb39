"""One Modbus TCP connection: requests strictly one at a time, reconnecting on demand."""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from agent.logs import fields
from agent.modbus.errors import ReadError
from agent.profiles.model import Function

log = logging.getLogger(__name__)


class TcpConnection:
    """A TCP host (a meter or a gateway in front of several), shared by the meters behind it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.name = f"{host}:{port}"
        # The client's own reconnect and retry loops are off: the poller decides when to
        # try again, so a dead meter costs one timeout per tick and never blocks the rest.
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout, retries=0, reconnect_delay=0
        )
        self._lock = asyncio.Lock()

    async def read(self, function: Function, address: int, count: int, unit_id: int) -> list[int]:
        async with self._lock:
            if not self._client.connected and not await self._client.connect():
                raise ReadError("connect", f"no connection to {self.name}")
            reader = (
                self._client.read_input_registers
                if function is Function.INPUT
                else self._client.read_holding_registers
            )
            try:
                response = await reader(address, count=count, device_id=unit_id)
            except ModbusException as exc:
                # A timed-out connection may carry a late reply; start clean next time.
                self._client.close()
                raise ReadError("timeout", str(exc)) from exc
            if response.isError():
                code = getattr(response, "exception_code", None)
                raise ReadError("exception", f"exception code {code}", code)
            return list(response.registers)

    def close(self) -> None:
        self._client.close()
        log.debug("closed", extra=fields(connection=self.name))
