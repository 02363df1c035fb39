"""`energy-agent test`: every configured meter read once, as the agent reads it, as a table.

For commissioning: the integrator sees, per meter, whether it answered and, per value,
what the agent would publish, with the register it came from and the raw registers.
The read is the agent's own (`MeterPoller.read_once` on the buses `run` would open:
profile resolution, planning, refused registers bisected, decoding), made once; only
the bus is watched to keep each request and its answer. Nothing is published: no broker
connection is made and no outbox is opened; the broker settings are only validated.
A meter that failed, or a value that was refused or could not be decoded, fails the
command (exit 1), as `telegraf --test` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.config import BusKey, Framer, ModbusSettings, load_config
from agent.modbus.bus import Bus, Unit
from agent.modbus.decode import WORDS
from agent.modbus.errors import ReadError
from agent.modbus.plan import FieldPlan, Problem, ReadBlock, sub_block
from agent.modbus.resolve import ReadRegisters
from agent.modbus.tcp import EXCEPTION_NAMES
from agent.poller import MeterBus, MeterPoller
from agent.profiles.model import Function
from agent.tables import format_table
from agent.wire import UNITS, MeterReading, Quantity


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


class RecordingBus:
    """A meter's view of its bus that keeps every request of its sessions, in order."""

    def __init__(self, bus: MeterBus) -> None:
        self._bus = bus
        self.requests: list[Request] = []

    @property
    def name(self) -> str:
        return self._bus.name

    @contextlib.asynccontextmanager
    async def session(self, unit: Unit) -> AsyncIterator[ReadRegisters]:
        async with self._bus.session(unit) as read:

            async def recorded(function: Function, address: int, count: int) -> Sequence[int]:
                try:
                    registers = await read(function, address, count)
                except ReadError as exc:
                    self.requests.append(Request(function, address, count, None, exc))
                    raise
                self.requests.append(Request(function, address, count, registers, None))
                return registers

            yield recorded


@dataclass(frozen=True, slots=True)
class ValueResult:
    """One quantity of a meter's plan after the read."""

    quantity: Quantity
    value: float | None
    function: Function
    address: int
    dtype: str
    raw: tuple[int, ...]
    note: str
    """Why there is no value ("" when there is one), or that the meter has none."""
    failed: bool
    refused: int | None = None
    """The exception code the meter refused this register with on its own."""
    exception: int | None = None
    """The exception code of a reply that dropped this value without refusing it."""
    undecodable: bool = False


def value_results(
    plan: Sequence[ReadBlock],
    requests: Sequence[Request],
    values: dict[Quantity, float],
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
    values: dict[Quantity, float],
    refused: bool,
) -> ValueResult:
    raw: tuple[int, ...] = ()
    if request is not None and request.registers is not None:
        offset = field.address - request.address
        raw = tuple(request.registers[offset : offset + WORDS[field.dtype]])
    value = values.get(field.quantity)
    read = ValueResult(
        field.quantity,
        value,
        block.function,
        field.address,
        f"{field.dtype} {field.byte_order}",
        raw,
        note="",
        failed=False,
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
    if refused:
        return replace(
            read, note=f"refused: {error.detail}", failed=True, refused=error.exception_code
        )
    if error.kind == "exception":
        return replace(read, note=error.detail, failed=True, exception=error.exception_code)
    return replace(read, note=str(error), failed=True)


def _problems(block: ReadBlock, field: FieldPlan, request: Request) -> list[Problem]:
    """Why the field's registers in `request` give no value, decoded as the poller does."""
    assert request.registers is not None
    start, end = field.span
    _, problems = sub_block(block, [field]).decode(
        request.registers[start - request.address : end - request.address]
    )
    return problems


@dataclass(frozen=True, slots=True)
class MeterResult:
    """One meter's read: what cut it short, if anything, and every value of its plan."""

    meter: str
    profile: str
    modbus: ModbusSettings
    failure: ReadError | None
    values: list[ValueResult]

    @property
    def ok(self) -> bool:
        return self.failure is None and bool(self.values) and not any(v.failed for v in self.values)

    @property
    def result(self) -> str:
        """ok, or every reason it is not: "timeout: ...", "exception 2: ...", "decode errors"."""
        parts = [str(self.failure)] if self.failure is not None else []
        refusals = Counter(v.refused for v in self.values if v.refused is not None)
        for code, count in sorted(refusals.items()):
            parts.append(f"exception {code} ({_exception_name(code)}): {count} refused")
        replies = Counter(v.exception for v in self.values if v.exception is not None)
        for code, count in sorted(replies.items()):
            parts.append(f"exception {code} ({_exception_name(code)}): {count} dropped")
        undecodable = sum(v.undecodable for v in self.values)
        if undecodable:
            parts.append(f"decode errors: {undecodable}")
        if not parts and not self.ok:
            parts.append("no value read")
        return "; ".join(parts) or "ok"


def _exception_name(code: int) -> str:
    return EXCEPTION_NAMES.get(code, "unknown")


def transport(modbus: ModbusSettings) -> str:
    """How the meter is reached, as an integrator wires it."""
    if modbus.serial is not None:
        line = modbus.serial
        framing = f"{line.data_bits}{line.parity.value[0].upper()}{line.stop_bits}"
        return f"rtu {line.device} {line.baud} {framing}"
    framing = "tcp" if modbus.framer is Framer.TCP else "rtu-over-tcp"
    return f"{framing} {modbus.bus_name}"


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
        return (
            f"meters: {good} ok, {len(self.meters) - good} failed; "
            f"values read: {sum(v.value is not None for v in values)}; "
            f"registers refused: {sum(v.refused is not None for v in values)}; "
            f"decode errors: {sum(v.undecodable for v in values)}"
        )

    def report(self) -> str:
        sections = [self.title]
        for meter in self.meters:
            heading = (
                f"meter {meter.meter}: {meter.profile}, {transport(meter.modbus)}, "
                f"unit {meter.modbus.unit_id}: {meter.result}"
            )
            rows = [
                [
                    v.quantity.value,
                    v.value,
                    UNITS[v.quantity],
                    f"0x{v.address:04X}",
                    f"{v.function.value} ({v.function.code})",
                    v.dtype,
                    " ".join(f"{word:04X}" for word in v.raw),
                    v.note,
                ]
                for v in meter.values
            ]
            headers = ["quantity", "value", "unit", "register", "function", "type", "raw", "note"]
            sections.append(heading + ("\n\n" + format_table(headers, rows) if rows else ""))
        overview = [
            [m.meter, m.profile, transport(m.modbus), m.modbus.unit_id, m.result]
            for m in self.meters
        ]
        sections.append(
            format_table(["meter", "profile", "transport", "unit", "result"], overview)
            + "\n\n"
            + self.summary()
        )
        return "\n\n".join(sections)


async def commission(path: Path) -> Commissioning:
    """Read every meter of the config at `path` once, on the buses the agent would open.

    Meters on one bus take turns, buses are read side by side, as `run` polls them.
    Raises ConfigError for a config `run` would refuse.
    """
    setup = load_config(path)
    config = setup.config
    buses: dict[BusKey, Bus] = {}
    watched: list[tuple[MeterPoller, RecordingBus]] = []
    for meter in config.meters:
        key = meter.modbus.bus_key
        if key not in buses:
            buses[key] = Bus.for_settings(meter.modbus)
        bus = RecordingBus(buses[key])
        # read_once hands its reading back; nothing is delivered anywhere.
        poller = MeterPoller(meter, setup.profiles[meter.id], bus, _not_published)
        watched.append((poller, bus))
    try:
        readings = await asyncio.gather(*(poller.read_once() for poller, _ in watched))
    finally:
        for each in buses.values():
            each.close()
    meters = [
        _meter_result(poller, bus, reading)
        for (poller, bus), reading in zip(watched, readings, strict=True)
    ]
    title = (
        f"{path}: site {config.site}, agent {config.agent_id}: "
        f"{len(meters)} meters read once, nothing published"
    )
    return Commissioning(title, meters)


def _not_published(reading: MeterReading) -> None:
    raise AssertionError("a commissioning read is never delivered")


def _meter_result(
    poller: MeterPoller, bus: RecordingBus, reading: MeterReading | None
) -> MeterResult:
    values = value_results(
        poller.plan, bus.requests, reading.values if reading else {}, poller.excluded
    )
    meter = poller.meter
    return MeterResult(meter.id, meter.profile, meter.modbus, poller.last_failure, values)
