"""`energy-agent probe`: read a meter once and show what every register gives.

For commissioning: the integrator sees quantity, value, unit and the raw registers, and
with `--all-orders` a multi-register value decoded in all four byte orders, which is how
the right order of an unknown meter is found.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import ModbusSettings
from agent.modbus.bus import Bus, Unit
from agent.modbus.decode import WORDS, ByteOrder, DecodeError, RegisterBuffer
from agent.modbus.errors import ReadError
from agent.modbus.plan import FieldPlan, ReadBlock, plan_reads
from agent.modbus.resolve import resolve_profile
from agent.profiles import Profile
from agent.tables import format_table


def _hex_words(words: Sequence[int]) -> str:
    return " ".join(f"{w:04X}" for w in words)


def _in_all_orders(block: ReadBlock, field: FieldPlan, registers: Sequence[int]) -> list[str]:
    if WORDS[field.dtype] == 1:
        return ["" for _ in ByteOrder]
    buffer = RegisterBuffer(registers)
    cells = []
    for order in ByteOrder:
        try:
            cells.append(f"{field.scaler(buffer.value(field.offset, field.dtype, order)):.6g}")
        except DecodeError:
            cells.append("?")
    return cells


def _block_rows(
    block: ReadBlock, registers: Sequence[int] | None, error: str | None, all_orders: bool
) -> list[list[object]]:
    values, problems = block.decode(registers) if registers is not None else ({}, [])
    reasons = {p.quantity: p.reason for p in problems}
    rows: list[list[object]] = []
    for field in block.fields:
        words = (
            registers[field.offset : field.offset + WORDS[field.dtype]]
            if registers is not None
            else []
        )
        row: list[object] = [
            str(field.quantity),
            values.get(field.quantity),
            field.unit,
            f"{block.function.value[:4]} 0x{field.address:04X}",
            f"{field.dtype} {field.byte_order}",
            _hex_words(words),
            error or reasons.get(field.quantity, ""),
        ]
        if all_orders:
            row += _in_all_orders(block, field, registers) if registers is not None else [""] * 4
        rows.append(row)
    return rows


async def probe(settings: ModbusSettings, profile: Profile, all_orders: bool) -> str:
    """A table of everything the profile maps, as this device answers it."""
    bus = Bus.for_settings(settings)
    rows: list[list[object]] = []
    try:
        async with bus.session(Unit(settings.unit_id, settings.timeout, settings.retries)) as read:
            resolved = await resolve_profile(profile, read)
            for block in plan_reads(resolved):
                try:
                    registers: Sequence[int] | None = await read(
                        block.function, block.address, block.count
                    )
                    error = None
                except ReadError as exc:
                    if exc.kind == "connect":
                        raise
                    registers, error = None, str(exc)
                rows += _block_rows(block, registers, error, all_orders)
    finally:
        bus.close()
    headers = ["quantity", "value", "unit", "register", "type", "raw", "note"]
    if all_orders:
        headers += [order.value for order in ByteOrder]
    title = f"{profile.model} at unit {settings.unit_id} on {settings.bus_name}"
    return f"{title}\n\n{format_table(headers, rows)}"
