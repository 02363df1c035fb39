"""`energy-agent test`: every configured meter read once, as the agent reads it, as a table.

For commissioning: the integrator sees, per meter, whether it answered and, per value,
what the agent would publish, with where it came from (a Modbus register, a DL/T 645
data identifier) and the raw data. The read is the agent's own (the pollers `run` makes,
on the buses it would open: for Modbus profile resolution, planning, refused registers
bisected, decoding), made once; only the bus is watched to keep each request and its
answer. Nothing is published: no broker connection is made and no outbox is opened; the
broker settings are only validated. A meter that failed, or a value that was refused or
could not be decoded, fails the command (exit 1), as `telegraf --test` does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.config import Dlt645Settings, Framer, ModbusSettings, SerialSettings, load_config
from agent.dlt645.codec import READ_DATA, FrameError, describe_error
from agent.dlt645.poller import Dlt645MeterBus, decode_value
from agent.dlt645.profile import ValueSpec
from agent.dlt645.transport import ReadIdentifier
from agent.modbus.codec.decode import WORDS
from agent.modbus.codec.plan import FieldPlan, Problem, ReadBlock, field_format, sub_block
from agent.modbus.codec.resolve import ReadRegisters
from agent.modbus.errors import ReadError
from agent.modbus.transport.bus import Unit
from agent.modbus.transport.tcp import EXCEPTION_NAMES
from agent.poller import MeterBus, MeterPoller, PollerBase
from agent.profiles.model import Function
from agent.reading import Read
from agent.runner import BusWatch, make_pollers
from agent.tables import format_table
from agent.watchedbus import WatchedBus
from greengauge.common.i18n import _
from greengauge.contract import UNITS, QuantityName


@dataclass(frozen=True, slots=True)
class Request:
    """One Modbus read a meter's read made, and what came back."""

    function: Function
    address: int
    count: int
    registers: Sequence[int] | None
    error: ReadError | None

    def covers(self, function: Function, start: int, end: int) -> bool:
        return (
            function is self.function and self.address <= start and end <= self.address + self.count
        )


class RecordingBus(WatchedBus[Unit, [Function, int, int], Sequence[int]]):
    """A meter's view of its bus that keeps every request of its sessions, in order."""

    def __init__(self, bus: MeterBus) -> None:
        super().__init__(bus)
        self.requests: list[Request] = []

    async def _request(
        self, read: ReadRegisters, function: Function, address: int, count: int
    ) -> Sequence[int]:
        try:
            registers = await read(function, address, count)
        except ReadError as exc:
            self.requests.append(Request(function, address, count, None, exc))
            raise
        self.requests.append(Request(function, address, count, registers, None))
        return registers


@dataclass(frozen=True, slots=True)
class Dlt645Request:
    """One data identifier a DL/T 645 meter's read asked for, and what came back."""

    identifier: int
    data: bytes | None
    """The value's bytes as received (0x33 taken off), low byte first."""
    error: ReadError | None


class RecordingDlt645Bus(WatchedBus[Dlt645Settings, [int], bytes]):
    """A DL/T 645 meter's view of its bus that keeps every request of its sessions."""

    def __init__(self, bus: Dlt645MeterBus) -> None:
        super().__init__(bus)
        self.requests: list[Dlt645Request] = []

    async def _request(self, read: ReadIdentifier, identifier: int) -> bytes:
        try:
            data = await read(identifier)
        except ReadError as exc:
            self.requests.append(Dlt645Request(identifier, None, exc))
            raise
        self.requests.append(Dlt645Request(identifier, data, None))
        return data


@dataclass(frozen=True, slots=True)
class ValueResult:
    """One quantity of a meter's read plan after the read, whatever protocol it speaks."""

    quantity: QuantityName
    value: float | None
    where: str
    """What it is read from: a register (0x2012), a data identifier (02 01 01 00)."""
    request: str
    """The request that reads it: a Modbus function, DL/T 645 read data."""
    format: str
    """How it is encoded: float32 ABCD, XXX.X."""
    raw: str
    """The data received for it, hex: registers (7FC0 0000) or bytes (34 12)."""
    note: str
    """Why there is no value ("" when there is one), or that the meter has none."""
    failed: bool
    refused: str | None = None
    """The meter's refusal of this value on its own: "exception 2 (illegal data address)"."""
    exception: str | None = None
    """The exception of a reply that dropped this value without refusing it."""
    undecodable: bool = False
    unit: str = ""
    """The unit of `value`: the canonical one, or a user-named quantity's own."""


def value_results(
    plan: Sequence[ReadBlock],
    requests: Sequence[Request],
    values: Mapping[str, float],
    excluded: frozenset[tuple[Function, int]],
) -> list[ValueResult]:
    """Every quantity of `plan`, with the registers its last (narrowest) request gave. Pure.

    Refused blocks are bisected depth-first, so the last request covering a field is the
    one that decided it: the part that was answered, or the field refused on its own.
    """
    results: list[ValueResult] = []
    for block in plan:
        for field in block.fields:
            start, end = field.span
            request = next(
                (r for r in reversed(requests) if r.covers(block.function, start, end)), None
            )
            results.append(
                _value_result(
                    block, field, request, values, (block.function, field.address) in excluded
                )
            )
    return results


def _value_result(
    block: ReadBlock,
    field: FieldPlan,
    request: Request | None,
    values: Mapping[str, float],
    refused: bool,
) -> ValueResult:
    raw: Sequence[int] = ()
    if request is not None and request.registers is not None:
        offset = field.address - request.address
        raw = request.registers[offset : offset + WORDS[field.dtype]]
    value = values.get(field.quantity)
    read = ValueResult(
        field.quantity,
        value,
        f"0x{field.address:04X}",
        f"{block.function.value} ({block.function.code})",
        field_format(block.function, field),
        " ".join(f"{word:04X}" for word in raw),
        note="",
        failed=False,
        unit=field.unit,
    )
    if value is not None:
        return read
    if request is not None and request.error is not None:
        return _dropped(read, request.error, refused)
    problems = _problems(block, field, request) if request is not None else []
    if not problems:
        # Not reached, or answered only while the profile was resolved: the read stopped.
        return replace(read, note="not read: the read stopped before it", failed=True)
    problem = problems[0]
    return replace(
        read, note=problem.reason, failed=not problem.quiet, undecodable=not problem.quiet
    )


def _dropped(read: ValueResult, error: ReadError, refused: bool) -> ValueResult:
    code = error.exception_code
    exception = f"exception {code} ({_exception_name(code)})" if code is not None else None
    if refused:
        return replace(read, note=f"refused: {error.detail}", failed=True, refused=exception)
    if error.kind == "exception":
        return replace(read, note=error.detail, failed=True, exception=exception)
    return replace(read, note=str(error), failed=True)


def _problems(block: ReadBlock, field: FieldPlan, request: Request) -> list[Problem]:
    """Why the field's registers in `request` give no value, decoded as the poller does."""
    assert request.registers is not None
    start, end = field.span
    _, problems = sub_block(block, [field]).decode(
        request.registers[start - request.address : end - request.address]
    )
    return problems


def dlt645_value_results(
    specs: Sequence[ValueSpec], requests: Sequence[Dlt645Request], values: Mapping[str, float]
) -> list[ValueResult]:
    """Every value a DL/T 645 meter's read asks for, with the bytes its request gave. Pure."""
    results: list[ValueResult] = []
    for spec in specs:
        request = next((r for r in reversed(requests) if r.identifier == spec.di), None)
        results.append(_dlt645_value_result(spec, request, values))
    return results


def _dlt645_value_result(
    spec: ValueSpec, request: Dlt645Request | None, values: Mapping[str, float]
) -> ValueResult:
    data = request.data if request is not None else None
    read = ValueResult(
        spec.quantity,
        values.get(spec.quantity),
        " ".join(f"{byte:02X}" for byte in spec.di.to_bytes(4, "big")),
        f"read data (0x{READ_DATA:02X})",
        spec.format + (" signed" if spec.signed else ""),
        data.hex(" ").upper() if data is not None else "",
        note="",
        failed=False,
        unit=UNITS[spec.quantity],
    )
    if read.value is not None:
        return read
    error = request.error if request is not None else None
    if error is not None:
        if error.kind == "exception" and error.exception_code is not None:
            refusal = f"error {describe_error(error.exception_code)}"
            return replace(read, note=f"refused: {refusal}", failed=True, refused=refusal)
        return replace(read, note=str(error), failed=True)
    if data is not None:
        try:
            decode_value(spec, data)
        except FrameError as exc:
            return replace(read, note=str(exc), failed=True, undecodable=True)
    return replace(read, note="not read: the read stopped before it", failed=True)


@dataclass(frozen=True, slots=True)
class Link:
    """How a meter is reached, as an integrator wires it."""

    transport: str
    """"tcp 192.0.2.1:502", "rtu /dev/ttyUSB0 9600 8N1", "dlt645 gateway 192.0.2.7:8899"."""
    address: str
    """The meter on its bus: "unit 7", "address 000012345678"."""


def _line(line: SerialSettings) -> str:
    framing = f"{line.data_bits}{line.parity.value[0].upper()}{line.stop_bits}"
    return f"{line.device} {line.baud} {framing}"


def modbus_link(modbus: ModbusSettings) -> Link:
    if modbus.serial is not None:
        return Link(f"rtu {_line(modbus.serial)}", f"unit {modbus.unit_id}")
    framing = "tcp" if modbus.framer is Framer.TCP else "rtu-over-tcp"
    return Link(f"{framing} {modbus.bus_name}", f"unit {modbus.unit_id}")


def dlt645_link(settings: Dlt645Settings) -> Link:
    if settings.serial is not None:
        transport = f"dlt645 {_line(settings.serial)}"
    else:
        transport = f"dlt645 gateway {settings.bus_name}"
    return Link(transport, f"address {settings.address}")


@dataclass(frozen=True, slots=True)
class MeterResult:
    """One meter's read: what cut it short, if anything, and every value of its plan."""

    meter: str
    profile: str
    link: Link
    failure: ReadError | None
    values: list[ValueResult]

    @property
    def ok(self) -> bool:
        return self.failure is None and bool(self.values) and not any(v.failed for v in self.values)

    @property
    def result(self) -> str:
        """ok, or every reason it is not: "timeout: ...", "exception 2 (...): 1 refused",
        "error 02 (...): 1 refused", "decode errors: 1"."""
        parts = [str(self.failure)] if self.failure is not None else []
        # In the order of the read plan.
        refusals = Counter(v.refused for v in self.values if v.refused is not None)
        parts += [f"{refusal}: {count} refused" for refusal, count in refusals.items()]
        replies = Counter(v.exception for v in self.values if v.exception is not None)
        parts += [f"{exception}: {count} dropped" for exception, count in replies.items()]
        undecodable = sum(v.undecodable for v in self.values)
        if undecodable:
            parts.append(f"decode errors: {undecodable}")
        if not parts and not self.ok:
            parts.append("no value read")
        return "; ".join(parts) or "ok"


def _exception_name(code: int) -> str:
    return EXCEPTION_NAMES.get(code, "unknown")


@dataclass(frozen=True, slots=True)
class Commissioning:
    """Every meter of a config, read once."""

    title: str
    meters: list[MeterResult]

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.meters)

    def summary(self) -> str:
        good = sum(m.ok for m in self.meters)
        values = [v for m in self.meters for v in m.values]
        return _(
            "meters: {good} ok, {failed} failed; values read: {read}; values refused: "
            "{refused}; decode errors: {undecodable}"
        ).format(
            good=good,
            failed=len(self.meters) - good,
            read=sum(v.value is not None for v in values),
            refused=sum(v.refused is not None for v in values),
            undecodable=sum(v.undecodable for v in values),
        )

    def report(self) -> str:
        sections = [self.title]
        for meter in self.meters:
            link = meter.link
            heading = _("meter {meter}: {profile}, {transport}, {address}: {result}").format(
                meter=meter.meter,
                profile=meter.profile,
                transport=link.transport,
                address=link.address,
                result=meter.result,
            )
            rows = [
                [
                    str(v.quantity),
                    v.value,
                    v.unit,
                    v.where,
                    v.request,
                    v.format,
                    v.raw,
                    v.note,
                ]
                for v in meter.values
            ]
            headers = [
                _("quantity"),
                _("value"),
                _("unit"),
                _("where"),
                _("request"),
                _("format"),
                _("raw"),
                _("note"),
            ]
            sections.append(heading + ("\n\n" + format_table(headers, rows) if rows else ""))
        overview = [
            [m.meter, m.profile, m.link.transport, m.link.address, m.result] for m in self.meters
        ]
        sections.append(
            format_table(
                [_("meter"), _("profile"), _("transport"), _("address"), _("result")], overview
            )
            + "\n\n"
            + self.summary()
        )
        return "\n\n".join(sections)


async def commission(path: Path) -> Commissioning:
    """Read every meter of the config at `path` once, with the pollers and buses `run` makes.

    Meters on one bus take turns, buses are read side by side, as `run` polls them.
    Raises ConfigError for a config `run` would refuse.
    """
    setup = load_config(path)
    config = setup.config
    modbus: dict[str, RecordingBus] = {}
    dlt645: dict[str, RecordingDlt645Bus] = {}

    def record(bus: MeterBus, meter: str) -> MeterBus:
        modbus[meter] = RecordingBus(bus)
        return modbus[meter]

    def record_dlt645(bus: Dlt645MeterBus, meter: str) -> Dlt645MeterBus:
        dlt645[meter] = RecordingDlt645Bus(bus)
        return dlt645[meter]

    pollers: dict[str, PollerBase] = {}
    # read_once hands its reading back; nothing is delivered anywhere.
    buses = make_pollers(setup, _not_published, None, BusWatch(record, record_dlt645), pollers)
    try:
        readings = await asyncio.gather(*(poller.read_once() for poller in pollers.values()))
    finally:
        for bus in buses:
            bus.close()
    meters: list[MeterResult] = []
    for meter, reading in zip(config.meters, readings, strict=True):
        poller = pollers[meter.id]
        values = dict(reading.items()) if reading is not None else {}
        if meter.dlt645 is not None:
            link = dlt645_link(meter.dlt645)
            specs = setup.dlt645_profiles[meter.id].read_values
            shown = dlt645_value_results(specs, dlt645[meter.id].requests, values)
        else:
            assert meter.modbus is not None and isinstance(poller, MeterPoller)
            link = modbus_link(meter.modbus)
            shown = value_results(poller.plan, modbus[meter.id].requests, values, poller.excluded)
        meters.append(MeterResult(meter.id, meter.profile, link, poller.last_failure, shown))
    title = (
        f"{path}: site {config.site}, agent {config.agent_id}: "
        f"{len(meters)} meters read once, nothing published"
    )
    return Commissioning(title, meters)


def _not_published(read: Read) -> None:
    raise AssertionError("a commissioning read is never delivered")
