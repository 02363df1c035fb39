"""RTU framing through pymodbus: serial lines, and RTU over TCP (a serial converter).

Imported only when a configuration has such a bus: Modbus TCP buses use the lean
client in agent.modbus.transport.tcp, so an agent with Ethernet meters only never loads pymodbus.
"""

from __future__ import annotations

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from agent.config import Parity, SerialSettings
from agent.modbus.errors import ReadError
from agent.modbus.transport.tcp import EXCEPTION_NAMES

_PARITY = {Parity.NONE: "N", Parity.EVEN: "E", Parity.ODD: "O"}


class RtuLink:
    """A pymodbus client with RTU framing, speaking the bus's link interface."""

    def __init__(self, name: str, client: AsyncModbusSerialClient | AsyncModbusTcpClient) -> None:
        self._name = name
        self._client = client

    @classmethod
    def serial(cls, line: SerialSettings, timeout: float) -> RtuLink:
        # The client's own reconnect and retry loops are off: the bus and the poller decide
        # when to try again, so a dead meter never blocks the rest for longer than it must.
        client = AsyncModbusSerialClient(
            line.device,
            framer=FramerType.RTU,
            baudrate=line.baud,
            bytesize=line.data_bits,
            parity=_PARITY[line.parity],
            stopbits=line.stop_bits,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )
        return cls(line.device, client)

    @classmethod
    def over_tcp(cls, host: str, port: int, timeout: float) -> RtuLink:
        client = AsyncModbusTcpClient(
            host, port=port, framer=FramerType.RTU, timeout=timeout, retries=0, reconnect_delay=0
        )
        return cls(f"{host}:{port}", client)

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    def _within(self, seconds: float) -> None:
        # pymodbus waits both for a connection and for each reply for the timeout its
        # transaction manager keeps in a copy of the client's parameters (client.ctx): set
        # there, it is this request's, not the one the client was made with.
        self._client.ctx.comm_params.timeout_connect = seconds

    async def connect(self, within: float) -> None:
        self._within(within)
        if not await self._client.connect():
            raise ReadError("connect", "the connection could not be opened")

    async def read(
        self, function: int, address: int, count: int, unit_id: int, within: float
    ) -> list[int]:
        self._within(within)
        reader = {
            1: self._client.read_coils,
            2: self._client.read_discrete_inputs,
            4: self._client.read_input_registers,
        }.get(function, self._client.read_holding_registers)
        try:
            response = await reader(address, count=count, device_id=unit_id)
        except ConnectionException as exc:
            raise ReadError("connect", f"{self._name}: {exc}") from exc
        except ModbusException as exc:
            raise ReadError("timeout", f"unit {unit_id} on {self._name}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, "unknown") if code is not None else "unknown"
            raise ReadError("exception", f"exception code {code} ({name})", code)
        if function in (1, 2):
            # pymodbus pads the bits to whole bytes.
            bits = getattr(response, "bits", None)
            if not isinstance(bits, list) or len(bits) < count:
                raise ReadError("reply", f"unexpected reply {response} to a read of {count} bits")
            return [int(bit) for bit in bits[:count]]
        registers = getattr(response, "registers", None)
        if not isinstance(registers, list):
            raise ReadError("reply", f"unexpected reply {response}")
        return registers

    def close(self) -> None:
        self._client.close()
