"""`energy-agent probe`: read a meter once and show what every register gives.

For commissioning: the integrator sees quantity, value, unit and the raw registers, and
with `--all-orders` every multi-register value decoded in all four byte orders, with
the orders whose value is plausible for its quantity marked: that is how the right
order of an unknown meter is found.

A probe fails (`ProbeResult.problem`) when no register could be read: nothing answered,
or the device refused every request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from agent.config import ModbusSettings
from agent.modbus.codec.decode import WORDS, ByteOrder, DecodeError, RegisterBuffer
from agent.modbus.codec.plan import FieldPlan, ReadBlock, field_format, plan_reads
from agent.modbus.codec.resolve import Identity, identify, resolve_profile
from agent.modbus.codec.scale import canonical_power_factors
from agent.modbus.errors import GATEWAY_NO_DEVICE, ReadError
from agent.modbus.transport.bus import Bus, Unit
from agent.profiles import Profile
from agent.tables import format_table
from greengauge.common.i18n import _
from greengauge.contract import Quantity, QuantityName

# The largest magnitude a quantity plausibly has in its canonical unit (a 1 MV line, a
# 100 kA bus bar, 10 GW, a counter of 10^12): a wrong byte order gives 10^9 times the
# value or more, or a denormal next to zero.
_LARGEST: Final = {
    "voltage": 1e6,
    "current": 1e5,
    "power_factor": 1.0,
    "power": 1e10,
    "frequency": 1e3,
    "energy": 1e12,
    "volume": 1e12,
    "mass": 1e12,
    "count": 1e15,
}
_SMALLEST: Final = 1e-6


def plausible(quantity: QuantityName, value: float) -> bool:
    """Whether a value is one this quantity can have (zero always is; a user-named
    quantity any finite value: its range is the plant's)."""
    if not math.isfinite(value):
        return False
    if not isinstance(quantity, Quantity):
        return True
    prefix = max((p for p in _LARGEST if quantity.value.startswith(p)), key=len)
    return value == 0 or _SMALLEST <= abs(value) <= _LARGEST[prefix]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    text: str
    """The table(s); empty when there is nothing to show."""
    problem: str | None
    """Why the probe failed (nothing read), or None."""


def _hex_words(words: Sequence[int]) -> str:
    return " ".join(f"{w:04X}" for w in words)


def _in_all_orders(field: FieldPlan, registers: Sequence[int]) -> dict[ByteOrder, float | None]:
    buffer = RegisterBuffer(registers)
    values: dict[ByteOrder, float | None] = {}
    for order in ByteOrder:
        try:
            values[order] = field.scaler(buffer.value(field.offset, field.dtype, order))
        except DecodeError:
            values[order] = None
    return values


@dataclass(frozen=True, slots=True)
class _Read:
    block: ReadBlock
    registers: Sequence[int] | None
    error: ReadError | None


def _value_rows(reads: Sequence[_Read], profile: Profile) -> list[list[object]]:
    decoded = [r.block.decode(r.registers) if r.registers is not None else ({}, []) for r in reads]
    # The values as the agent publishes them: power factors in the canonical sign.
    values = {q: v for block_values, _ in decoded for q, v in block_values.items()}
    canonical_power_factors(values, profile.power_factor_sign)
    rows: list[list[object]] = []
    for read, (_values, problems) in zip(reads, decoded, strict=True):
        block, registers = read.block, read.registers
        reasons = {p.quantity: p.reason for p in problems}
        for field in block.fields:
            words = registers[field.offset : field.offset + WORDS[field.dtype]] if registers else []
            rows.append(
                [
                    str(field.quantity),
                    values.get(field.quantity),
                    field.unit,
                    f"{block.function.value} 0x{field.address:04X}",
                    field_format(block.function, field),
                    _hex_words(words),
                    str(read.error) if read.error else reasons.get(field.quantity, ""),
                ]
            )
    return rows


def _orders_table(reads: Sequence[_Read], profile_order: str) -> str:
    """Every multi-register value in the four orders, `*` on the plausible ones, and
    which order the values agree on."""
    rows: list[list[object]] = []
    votes: Counter[ByteOrder] = Counter()
    values_seen = 0
    for read in reads:
        if read.registers is None:
            continue
        for field in read.block.fields:
            if WORDS[field.dtype] == 1:
                continue
            decoded = _in_all_orders(field, read.registers)
            good = [o for o, v in decoded.items() if v is not None and plausible(field.quantity, v)]
            values_seen += 1
            votes.update(good)
            cells: list[object] = [
                "?" if v is None else f"{v:.6g}{'*' if o in good else ''}"
                for o, v in decoded.items()
            ]
            rows.append([str(field.quantity), *cells])
    if not rows:
        return ""
    table = format_table([_("quantity"), *(o.value for o in ByteOrder)], rows)
    best = [o.value for o, n in votes.most_common() if n == max(votes.values())] if votes else []
    if not best:
        verdict = "no order gives plausible values: is this the right profile?"
    else:
        count = votes[ByteOrder(best[0])]
        verdict = (
            f"plausible order: {' or '.join(best)} ({count} of {values_seen} values); "
            f"the profile reads {profile_order}"
        )
    return f"{table}\n\n* plausible for its quantity; {verdict}"


def _failure(reads: Sequence[_Read], unit: str) -> str | None:
    """Why nothing was read, or None when something was."""
    if not reads or any(r.registers is not None for r in reads):
        return None
    errors = [r.error for r in reads if r.error is not None]
    kinds = Counter(e.kind for e in errors)
    if {e.exception_code for e in errors} <= GATEWAY_NO_DEVICE:
        return f"{unit}: the gateway says no device answers at this unit id ({errors[0]})"
    if set(kinds) == {"exception"}:
        return (
            f"{unit} refused all {len(reads)} requests (exception replies): "
            "another register table or model than this profile's?"
        )
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    return f"{unit} gave no register ({len(reads)} requests: {summary})"


async def probe(settings: ModbusSettings, profile: Profile, all_orders: bool) -> ProbeResult:
    """Everything the profile maps, as this device answers it."""
    bus = Bus.for_settings(settings)
    reads: list[_Read] = []
    try:
        async with bus.session(Unit(settings.unit_id, settings.timeout, settings.retries)) as read:
            resolved = await resolve_profile(profile, read)
            identity = await identify(resolved, read)
            for block in plan_reads(resolved):
                try:
                    registers = await read(block.function, block.address, block.count)
                    reads.append(_Read(block, registers, None))
                except ReadError as exc:
                    if exc.kind == "connect":
                        raise
                    reads.append(_Read(block, None, exc))
    finally:
        bus.close()
    unit = f"unit {settings.unit_id} on {settings.bus_name}"
    problem = _failure(reads, unit)
    if problem is not None and all(r.error and r.error.kind == "timeout" for r in reads):
        return ProbeResult("", problem)  # one line says it: no table of identical rows
    headers = [_("quantity"), _("value"), _("unit"), _("register"), _("type"), _("raw"), _("note")]
    rows = with_state_names(profile, _value_rows(reads, profile))
    text = f"{profile.model} at {unit}\n\n{format_table(headers, rows)}"
    if all_orders:
        orders = _orders_table(reads, profile.byte_order.value)
        text += f"\n\n{orders}" if orders else "\n\nno multi-register value read"
    return ProbeResult(text + identification_text(identity), problem)


def with_state_names(profile: Profile, rows: list[list[object]]) -> list[list[object]]:
    """The rows with an enumerated value's state name in its note (the value is the code)."""
    for row in rows:
        value = row[1]
        name = profile.state_name(
            Quantity(str(row[0])), value if isinstance(value, float) else None
        )
        if name is not None and not row[6]:
            row[6] = f"state {name}"
    return rows


def identification_text(identity: Identity) -> str:
    """What the device says about itself (serial number, model, firmware): text, so shown
    here and never published, as readings carry numbers only."""
    if not identity.values:
        return ""
    lines = [
        f"  {name}: {'(not read)' if value is None else value}"
        for name, value in identity.values.items()
    ]
    return "\n\nidentification\n" + "\n".join(lines)
