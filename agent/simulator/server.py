"""Serve simulated meters over Modbus TCP, encoded through a profile's registers.

Each unit id is one meter (see `values`). A register is encoded exactly as the profile
says a device does it, raw = (value - offset) / scale in the profile's type and byte
order, so a client decoding with the profile gets the model's values back (up to the
type's resolution). Registers the profile does not map are illegal addresses, except
gaps of at most `max_gap` registers between two mapped ones, which are answered as 0:
that is the device behaviour the request planner relies on when it bridges gaps.

Everything else a profile describes is served too: scale factor registers (SunSpec
sunssf, an exponent chosen per unit so its values fit their type), named transforms
(Schneider's 4Q power factor, in the quadrant the reactive power gives), identification
registers (the expected value, or a made-up serial number), the SunSpec marker and model
chain, and "not available" sentinels: unit ids divisible by 3 are import-only meters whose
export energies read their sentinel, where the profile has one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import math
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from agent.modbus.codec.decode import WORDS, DataType, decode, encode, encode_string
from agent.modbus.codec.resolve import SUNSPEC_END, SUNSPEC_MARKER, locate_model
from agent.modbus.codec.scale import (
    POWER_FACTORS,
    PowerFactorSign,
    Scaler,
    Transform,
    canonical_power_factors,
    schneider_4q_pf_register,
)
from agent.profiles.model import Function, IdentificationSpec, Profile, RegisterSpec
from agent.simulator.faults import Fault, FaultInjector, FaultMode
from agent.simulator.values import meter_values
from greengauge.common.logs import fields
from greengauge.contract import Quantity, QuantityName

log = logging.getLogger(__name__)

MIN_UNIT_ID: Final = 1
MAX_UNIT_ID: Final = 247
_READ_TABLES: Final[dict[int, Function]] = {function.code: function for function in Function}
_UNIT_IDS_PART: Final = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_FLOAT_TYPES: Final = {DataType.FLOAT32, DataType.FLOAT64}


def parse_unit_ids(text: str) -> list[int]:
    """Unit ids from "1-6" or "1,3,5-7": sorted, each once, within 1..247."""
    ids: set[int] = set()
    for part in text.split(","):
        ids.update(_parse_part(part.strip(), text))
    return sorted(ids)


def _parse_part(part: str, text: str) -> range:
    match = _UNIT_IDS_PART.fullmatch(part)
    if match is None:
        raise ValueError(
            f"unit ids {text!r}: {part!r} is not a unit id or a range like 1-6 "
            "(give ids and ranges separated by commas, e.g. 1,3,5-7)"
        )
    low = int(match[1])
    high = int(match[2] or low)
    for unit_id in (low, high):
        if not MIN_UNIT_ID <= unit_id <= MAX_UNIT_ID:
            raise ValueError(
                f"unit ids {text!r}: {unit_id} in {part!r} is outside {MIN_UNIT_ID}..{MAX_UNIT_ID}"
            )
    if low > high:
        raise ValueError(f"unit ids {text!r}: range {part!r} runs backwards")
    return range(low, high + 1)


def _format_unit_ids(unit_ids: Sequence[int]) -> str:
    """The inverse of parse_unit_ids, for a compact log line: [1, 2, 3, 5] -> "1-3,5"."""
    runs: list[list[int]] = []
    for unit_id in sorted(unit_ids):
        if runs and unit_id == runs[-1][-1] + 1:
            runs[-1].append(unit_id)
        else:
            runs.append([unit_id])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _integer_range(dtype: DataType) -> tuple[int, int]:
    bits = 16 * WORDS[dtype]
    if dtype.value.startswith("u"):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def encode_value(
    profile: Profile,
    register: RegisterSpec,
    value: float,
    exponent: int = 0,
    values: dict[QuantityName, float] | None = None,
) -> list[int]:
    """The registers a device following `profile` sends for a canonical `value`, with its
    scale factor register at `exponent`; `values` (the meter's others) give a 4Q power
    factor its quadrant."""
    raw: int | float = (value - register.offset) / register.scale
    raw = raw * 10**-exponent if exponent <= 0 else raw / 10**exponent
    if register.transform is Transform.SCHNEIDER_4Q_PF:
        reactive = (values or {}).get(_reactive_of(register.quantity), 0.0)
        raw = schneider_4q_pf_register(raw, reactive)
    elif (
        profile.power_factor_sign is PowerFactorSign.REACTIVE_POWER
        and register.quantity in POWER_FACTORS
    ):
        reactive = (values or {}).get(_reactive_of(register.quantity), 0.0)
        raw = math.copysign(abs(raw), -1.0 if reactive < 0 else 1.0)
    if register.type not in _FLOAT_TYPES:
        low, high = _integer_range(register.type)
        raw = min(max(round(raw), low), high)
    return encode(raw, register.type, profile.byte_order_of(register))


def _reactive_of(quantity: QuantityName) -> Quantity:
    """The reactive power whose sign puts a power factor in its quadrant."""
    try:
        return Quantity(str(quantity).replace("power_factor", "power_reactive"))
    except ValueError:
        return Quantity.POWER_REACTIVE


def served_value(
    profile: Profile, register: RegisterSpec, words: Sequence[int], exponent: int = 0
) -> float:
    """What a client decoding `words` with the profile gets (as ReadBlock.decode does)."""
    raw = decode(words, register.type, profile.byte_order_of(register))
    return Scaler(register.type, register.scale, register.offset, register.transform)(raw, exponent)


def _sentinel(profile: Profile, register: RegisterSpec) -> list[int] | None:
    """The registers of the register's "not available" value, if the profile has one."""
    patterns = profile.not_available_of(register)
    if not patterns:
        return None
    bits = 16 * register.words
    pattern = min(patterns)
    signed = register.type.value.startswith("int") and pattern >> (bits - 1)
    return encode(
        pattern - (1 << bits) if signed else pattern, register.type, profile.byte_order_of(register)
    )


_EXPONENTS: Final = range(-3, 7)
_HEADROOM: Final = 2
"""Scale factors leave room for values twice as large as at the start."""


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one simulated meter encodes its values beyond the profile's fixed data."""

    exponents: dict[int, int]
    """scale factor register address -> the power of ten it holds"""
    missing: frozenset[QuantityName]
    """quantities served as their "not available" sentinel"""
    identification: dict[str, int | str]
    codes: dict[QuantityName, int] = dataclasses.field(default_factory=dict)
    """raw codes of coils, discrete inputs, bit fields and enumerations (states, not
    measurements: they stay as the unit id gives them)"""

    @classmethod
    def of(cls, profile: Profile, unit_id: int, values: dict[QuantityName, float]) -> Encoding:
        users: dict[int, list[RegisterSpec]] = {}
        for register in profile.registers:
            if register.scale_factor is not None:
                users.setdefault(register.scale_factor, []).append(register)
        exponents = {sf: _exponent(registers, values) for sf, registers in users.items()}
        import_only = unit_id > 0 and unit_id % 3 == 0  # 0: no particular unit
        missing = frozenset(
            r.quantity
            for r in profile.registers
            if import_only
            and str(r.quantity).startswith("energy_active_export")
            and _sentinel(profile, r) is not None
        )
        identification = {
            spec.name: _identification(spec, unit_id) for spec in profile.identification
        }
        codes = {r.quantity: _code(r, unit_id) for r in profile.registers if _discrete(profile, r)}
        return cls(exponents, missing, identification, codes)


def _discrete(profile: Profile, register: RegisterSpec) -> bool:
    """A state rather than a measurement: a bit, some bits of a register, or a code."""
    return (
        profile.function_of(register).bits
        or register.bits is not None
        or register.states is not None
    )


def _code(register: RegisterSpec, unit_id: int) -> int:
    """The raw code a unit serves: one of the states, or a bit pattern, varying with the
    unit id and the address so that neighbouring units and coils differ."""
    turn = unit_id + register.address
    if register.states:
        return sorted(register.states)[turn % len(register.states)]
    first, last = register.bit_range or (0, 0)  # a coil or discrete input: one bit
    return (turn + first) % (1 << (last - first + 1))


def _exponent(registers: Sequence[RegisterSpec], values: dict[QuantityName, float]) -> int:
    """The smallest power of ten that lets every value fit its register, with headroom."""
    for exponent in _EXPONENTS:
        if all(
            abs((values[r.quantity] - r.offset) / r.scale) * _HEADROOM
            <= _integer_range(r.type)[1] * 10.0**exponent
            for r in registers
        ):
            return exponent
    return _EXPONENTS[-1]


def _identification(spec: IdentificationSpec, unit_id: int) -> int | str:
    if spec.expected:
        return spec.expected[0]
    if spec.type == "string":
        return f"SIM{unit_id:05d}"[: 2 * spec.words]
    return min(
        10_000 + unit_id if spec.words == 1 else 10_000_000 + unit_id,
        _integer_range(DataType(spec.type))[1],
    )


def _identification_words(
    profile: Profile, spec: IdentificationSpec, value: int | str
) -> list[int]:
    order = profile.byte_order_of(spec)
    if isinstance(value, str):
        return encode_string(value, spec.words, order)
    return encode(value, DataType(spec.type), order)


@dataclass(frozen=True, slots=True)
class Extra:
    """A register a device serves besides the values: a scale factor, an identification
    register, or fixed words (the SunSpec marker and model headers)."""

    address: int
    words: int
    label: str
    fixed: tuple[int, ...] = ()
    identification: IdentificationSpec | None = None

    def encode(self, profile: Profile, encoding: Encoding) -> list[int]:
        if self.identification is not None:
            spec = self.identification
            return _identification_words(profile, spec, encoding.identification[spec.name])
        if self.fixed:
            return list(self.fixed)
        return encode(encoding.exponents.get(self.address, 0), DataType.INT16, profile.byte_order)


SUNSPEC_BASE: Final = 40000
_SUNSPEC_COMMON_LENGTH: Final = 65
"""The common model (ID 1) the simulator serves before the meter model: its content is
zeros, its length only has to be walked over."""


def simulated_layout(profile: Profile) -> Profile:
    """The profile with every address concrete, as the simulator lays it out: a SunSpec
    model right after the common model, the marker at 40000."""
    if profile.resolved or profile.sunspec is None:
        return profile
    return locate_model(profile, SUNSPEC_BASE + 2 + 2 + _SUNSPEC_COMMON_LENGTH)


def _extras(profile: Profile, function: Function) -> list[Extra]:
    extras: dict[int, Extra] = {}
    for register in profile.registers:
        sf = register.scale_factor
        if sf is not None and profile.function_of(register) is function:
            extras[sf] = Extra(sf, 1, f"scale factor of {register.quantity!s}")
    for spec in profile.identification:
        if profile.function_of(spec) is function:
            extras[spec.address] = Extra(spec.address, spec.words, spec.name, identification=spec)
    for register in profile.registers:
        for ratio in register.alternative_ratios:
            if profile.function_of(ratio) is function:
                # A ratio of 1 (CT 1:1, PT 1:1): a client's secondary-side reading is primary.
                one = encode(round(1 / ratio.scale), ratio.type, profile.byte_order_of(ratio))
                label = f"ratio for {register.quantity!s}"
                extras[ratio.address] = Extra(ratio.address, ratio.words, label, fixed=tuple(one))
    sunspec = profile.sunspec
    if sunspec is not None and sunspec.model_start is not None and function is profile.function:
        start, length = sunspec.model_start, sunspec.length or 0
        common = SUNSPEC_BASE + 2
        fixed = [
            (SUNSPEC_BASE, SUNSPEC_MARKER, "SunSpec marker"),
            (common, (1, _SUNSPEC_COMMON_LENGTH, *[0] * _SUNSPEC_COMMON_LENGTH), "common model"),
            (start, (sunspec.model, length), f"model {sunspec.model} header"),
            (start + 2 + length, (SUNSPEC_END, 0), "end of the model chain"),
        ]
        for address, words, label in fixed:
            extras[address] = Extra(address, len(words), label, fixed=tuple(words))
    return sorted(extras.values(), key=lambda e: e.address)


@dataclass(frozen=True, slots=True)
class Table:
    """One register table (holding or input) of the profile, as the simulator lays it out."""

    function: Function
    registers: tuple[RegisterSpec, ...]
    extras: tuple[Extra, ...] = ()

    def simdata(
        self,
        profile: Profile,
        values: dict[QuantityName, float],
        encoding: Encoding | None = None,
    ) -> list[SimData]:
        """The registers with `values`, and zero-filled gaps the device answers."""
        encoding = encoding or Encoding.of(profile, 0, values)
        if self.function.bits:
            return [
                SimData(address=address, values=[bool(bit)], datatype=SimType.BITS, readonly=True)
                for address, _, (bit,) in self.cells(profile, values, encoding)
            ] or [_NO_BITS]
        cells = self.cells(profile, values, encoding) + [
            (e.address, e.words, e.encode(profile, encoding)) for e in self.extras
        ]
        blocks: list[SimData] = []
        end = None
        for address, words, data in sorted(cells, key=lambda c: c[0]):
            if end is not None and 0 < address - end <= profile.max_gap:
                blocks.append(_registers(end, [0] * (address - end)))
            blocks.append(_registers(address, data))
            end = address + words
        # An empty table still needs one entry; a lone invalid register refuses every read.
        return blocks or [SimData(address=0, datatype=SimType.INVALID)]

    def write(
        self,
        profile: Profile,
        values: dict[QuantityName, float],
        live: list[int],
        start: int,
        encoding: Encoding | None = None,
    ) -> None:
        """Put `values` into the registers pymodbus serves from (`live[0]` is `start`)."""
        encoding = encoding or Encoding.of(profile, 0, values)
        for address, words, data in self.cells(profile, values, encoding):
            index = address - start
            live[index : index + words] = data

    def cells(
        self, profile: Profile, values: dict[QuantityName, float], encoding: Encoding
    ) -> list[tuple[int, int, list[int]]]:
        """(address, registers, words) of the values, the bit fields of one register
        merged into its word(s)."""
        cells: list[tuple[int, int, list[int]]] = []
        for address, group in itertools.groupby(self.registers, key=lambda r: r.address):
            members = list(group)
            first = members[0]
            if first.bits is None:
                cells += [
                    (r.address, r.words, _register_words(profile, r, values, encoding))
                    for r in members
                ]
                continue
            word = 0
            for register in members:
                low, _ = register.bit_range or (0, 0)
                word |= encoding.codes[register.quantity] << low
            unsigned = _UNSIGNED[first.words]
            cells.append(
                (address, first.words, encode(word, unsigned, profile.byte_order_of(first)))
            )
        return cells


_UNSIGNED: Final = {1: DataType.UINT16, 2: DataType.UINT32, 4: DataType.UINT64}
"""The unsigned type of each width: the bits of a status word, whatever its type."""


def _register_words(
    profile: Profile, register: RegisterSpec, values: dict[QuantityName, float], encoding: Encoding
) -> list[int]:
    if register.quantity in encoding.codes:
        code = encoding.codes[register.quantity]
        return encode(code, register.type, profile.byte_order_of(register))
    if register.quantity in encoding.missing:
        sentinel = _sentinel(profile, register)
        assert sentinel is not None
        return sentinel
    exponent = 0 if register.scale_factor is None else encoding.exponents[register.scale_factor]
    return encode_value(profile, register, values[register.quantity], exponent, values)


def _registers(address: int, words: list[int]) -> SimData:
    return SimData(address=address, values=words, datatype=SimType.REGISTERS, readonly=True)


def tables(profile: Profile) -> dict[Function, Table]:
    """The profile's registers per table, sorted; ValueError for what cannot be served.

    A SunSpec profile is laid out first (`simulated_layout`)."""
    profile = simulated_layout(profile)
    result: dict[Function, Table] = {}
    for function in Function:
        registers = sorted(
            (r for r in profile.registers if profile.function_of(r) is function),
            key=lambda r: r.address,
        )
        extras = _extras(profile, function)
        _check_servable(profile, registers, extras)
        result[function] = Table(function, tuple(registers), tuple(extras))
    return result


def _check_servable(
    profile: Profile, registers: Sequence[RegisterSpec], extras: Sequence[Extra] = ()
) -> None:
    cells = [(r.address, r.words, str(r.quantity)) for r in registers if r.bits is None]
    cells += [(e.address, e.words, e.label) for e in extras]
    for address, group in itertools.groupby(
        (r for r in registers if r.bits is not None), key=lambda r: r.address
    ):
        members = list(group)
        cells.append((address, members[0].words, str(members[0].quantity)))
        _check_bit_fields(profile, members)
    for before, after in itertools.pairwise(sorted(cells, key=lambda c: c[0])):
        if after[0] < before[0] + before[1]:
            raise ValueError(
                f"profile {profile.model}: {after[2]} at {after[0]} "
                f"overlaps {before[2]} at {before[0]}"
            )
    for register in registers:
        if register.scale == 0:
            raise ValueError(
                f"profile {profile.model}: {register.quantity!s} has scale 0, "
                "no register value gives its canonical value"
            )


def _check_bit_fields(profile: Profile, members: Sequence[RegisterSpec]) -> None:
    """Bit fields of one register: of one type, each bit in one field at most."""
    taken = 0
    for register in members:
        name = str(register.quantity)
        if register.type is not members[0].type:
            raise ValueError(
                f"profile {profile.model}: {name} takes bits of register {register.address} "
                f"as {register.type}, {members[0].quantity!s} as {members[0].type}"
            )
        first, last = register.bit_range or (0, 0)
        mask = ((1 << (last - first + 1)) - 1) << first
        if taken & mask:
            raise ValueError(
                f"profile {profile.model}: {name} takes bits of register {register.address} "
                "another value takes"
            )
        taken |= mask


# The coil and discrete-input tables cannot be empty in pymodbus; a meter has neither, so
# the one placeholder it gets answers every request with an exception (see _Unit.on_request).
_NO_BITS: Final = SimData(address=0, values=[0], datatype=SimType.BITS, readonly=True)


@dataclass(slots=True)
class _Unit:
    """One simulated meter: its model, its registers, and how it answers requests."""

    profile: Profile
    tables: dict[Function, Table]
    unit_id: int
    hold: bool
    start_time: float
    faults: FaultInjector | None = None
    stale: bool = False
    """A fault wrote into the served registers: write the model's values again."""
    encoding: Encoding | None = None
    """Scale factors, missing values and identification of this unit (set at start)."""

    def __post_init__(self) -> None:
        self.profile = simulated_layout(self.profile)
        if self.encoding is None:
            self.encoding = Encoding.of(self.profile, self.unit_id, self.values(self.start_time))

    def values(self, t: float) -> dict[QuantityName, float]:
        return meter_values(self.unit_id, t, self.profile.custom_units)

    def device(self) -> SimDevice:
        values = self.values(self.start_time)
        return SimDevice(
            id=self.unit_id,
            simdata=(
                self.tables[Function.COIL].simdata(self.profile, values, self.encoding),
                self.tables[Function.DISCRETE_INPUT].simdata(self.profile, values, self.encoding),
                self.tables[Function.HOLDING].simdata(self.profile, values, self.encoding),
                self.tables[Function.INPUT].simdata(self.profile, values, self.encoding),
            ),
            action=self.on_request,
        )

    async def on_request(
        self,
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Refresh the table being read with the model's values now (pymodbus callback)."""
        function = _READ_TABLES.get(function_code)
        if function is None or set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS
        faults = self.faults
        if faults is not None and faults.refuses(self.unit_id, _address, _count):
            return ExcCodes.ILLEGAL_ADDRESS
        if function.bits:
            # States do not follow the clock; a table without any is only a placeholder.
            return None if self.tables[function].registers else ExcCodes.ILLEGAL_ADDRESS
        if not self.hold or self.stale:
            values = self.values(self.start_time if self.hold else time.time())
            self.tables[function].write(
                self.profile, values, registers, start_address, self.encoding
            )
            self.stale = False
        if faults is not None and faults.has(self.unit_id, FaultMode.NAN):
            self._write_nan(faults, function, registers, start_address)
        return None

    def _write_nan(
        self, faults: FaultInjector, function: Function, live: list[int], start: int
    ) -> None:
        """Float registers read NaN, as some meters show while they boot (fault "nan")."""
        for register in self.tables[function].registers:
            if register.type in _FLOAT_TYPES and faults.nan(
                self.unit_id, register.address, register.words
            ):
                index = register.address - start
                nan = encode(math.nan, register.type, self.profile.byte_order_of(register))
                live[index : index + register.words] = nan
        self.stale = True

    def served(self) -> dict[str, float]:
        """The values a client reads at the start time, after encoding and decoding; not
        the ones served as "not available"."""
        values = self.values(self.start_time)
        encoding = self.encoding or Encoding.of(self.profile, self.unit_id, values)
        served: dict[QuantityName, float] = {}
        for register in self.profile.registers:
            if register.quantity in encoding.missing:
                continue
            if register.quantity in encoding.codes:
                scaler = Scaler(register.type, register.scale, register.offset, register.transform)
                served[register.quantity] = scaler(encoding.codes[register.quantity])
                continue
            sf = register.scale_factor
            exponent = 0 if sf is None else encoding.exponents[sf]
            words = encode_value(
                self.profile, register, values[register.quantity], exponent, values
            )
            served[register.quantity] = served_value(self.profile, register, words, exponent)
        canonical_power_factors(served, self.profile.power_factor_sign)  # as the agent does
        return {str(quantity): value for quantity, value in served.items()}

    def identification(self) -> dict[str, int | str]:
        assert self.encoding is not None  # set in __post_init__
        return dict(self.encoding.identification)


async def _no_such_unit(*_request: object) -> ExcCodes:
    # What a Modbus TCP gateway answers for a unit id nobody on its bus answers to.
    return ExcCodes.GATEWAY_NO_RESPONSE


def _absent_units() -> SimDevice:
    """Unit id 0 stands in for every unit id not simulated: it must accept any address
    for pymodbus to hand the request to the action, which refuses it."""
    every_bit = SimData(address=0, values=[0] * 4096, datatype=SimType.BITS, readonly=True)
    every_register = SimData(address=0, count=65536, datatype=SimType.REGISTERS, readonly=True)
    return SimDevice(
        id=0,
        simdata=([every_bit], [every_bit], [every_register], [every_register]),
        action=_no_such_unit,
    )


def write_dump(path: Path, profile: Profile, units: Sequence[_Unit]) -> None:
    """The values served at the start time, per unit id, as a client decodes them."""
    document = {
        "profile": profile.model,
        "values": {str(unit.unit_id): unit.served() for unit in units},
        "identification": {str(unit.unit_id): unit.identification() for unit in units},
    }
    # Written aside and renamed, so a reader polling for the file never sees half of it.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


@dataclass(frozen=True, slots=True)
class SerialLine:
    """A serial device the simulator answers RTU requests on (one end of a pty pair in tests)."""

    device: str
    baud: int = 9600
    parity: str = "N"
    """N, E or O"""
    stop_bits: int = 1


async def serve(
    profile: Profile,
    host: str,
    port: int,
    unit_ids: list[int],
    hold: bool,
    dump: Path | None,
    *,
    serial: SerialLine | None = None,
    rtu: bool = False,
    faults: Sequence[Fault] = (),
    faults_active: bool = True,
) -> None:
    """Answer Modbus requests for `unit_ids` until cancelled: Modbus TCP on host:port
    (RTU frames over TCP with `rtu`), or RTU on a `serial` line instead.

    Values follow the clock, refreshed on every read; with `hold` they stay at their
    values of the start time. `dump` receives the start time's values once listening.
    `faults` are played per unit id; SIGUSR1 switches them off and on.
    """
    profile = simulated_layout(profile)
    layout = tables(profile)
    start_time = time.time()
    # On a serial line, unit ids nobody simulates stay silent, as absent meters do.
    injector = FaultInjector(
        faults, unit_ids, silence_others=serial is not None, active=faults_active
    )
    units = [_Unit(profile, layout, unit_id, hold, start_time, injector) for unit_id in unit_ids]
    devices = [unit.device() for unit in units] + [_absent_units()]
    server: ModbusTcpServer | ModbusSerialServer
    if serial is not None:
        server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=serial.device,
            baudrate=serial.baud,
            parity=serial.parity,
            stopbits=serial.stop_bits,
            trace_pdu=injector.trace_pdu,
            trace_packet=injector.trace_packet,
        )
        where = {"serial": serial.device, "baud": serial.baud}
    else:
        server = ModbusTcpServer(
            devices,
            framer=FramerType.RTU if rtu else FramerType.SOCKET,
            address=(host, port),
            trace_pdu=injector.trace_pdu,
            trace_packet=injector.trace_packet,
        )
        where = {"host": host, "port": port, "framer": "rtu" if rtu else "tcp"}
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, injector.toggle)
    try:
        await _listen(server, serial.device if serial else f"{host}:{port}")
        log.info(
            "simulator listening",
            extra=fields(
                profile=profile.model,
                **where,
                unit_ids=_format_unit_ids(unit_ids),
                hold=hold,
                faults=" ".join(injector.describe()) or "none",
                faults_active=injector.active,
            ),
        )
        if dump is not None:
            await asyncio.to_thread(write_dump, dump, profile, units)
        await asyncio.Event().wait()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated


async def _listen(server: ModbusTcpServer | ModbusSerialServer, where: str) -> None:
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        # pymodbus logs the OS error as a warning and raises a generic one.
        if isinstance(server, ModbusSerialServer):
            raise ValueError(f"cannot open serial device {where}") from exc
        raise ValueError(
            f"cannot listen on {where}: in use, or not an address of this machine"
        ) from exc
