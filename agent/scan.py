"""`energy-agent scan`: which unit ids answer on a bus, and which profiles fit them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.config import ModbusSettings
from agent.modbus.bus import Bus, Unit
from agent.modbus.errors import GATEWAY_NO_DEVICE, ReadError
from agent.modbus.plan import plan_reads
from agent.modbus.resolve import ReadRegisters, matches, resolve_profile
from agent.profiles import Profile, builtin_names, load_profile
from agent.profiles.model import Function
from agent.tables import format_table


@dataclass(frozen=True, slots=True)
class Found:
    unit_id: int
    answer: str
    profiles: list[str]


async def _answers(read: ReadRegisters) -> str | None:
    """How the unit answers a plain read, or None when nothing is there."""
    refused: int | None = None
    for function in (Function.HOLDING, Function.INPUT):
        try:
            await read(function, 0, 1)
            return f"reads {function.value} registers"
        except ReadError as exc:
            if exc.kind == "connect":
                raise  # the bus itself is down: no unit id can tell us anything
            if exc.kind != "exception" or exc.exception_code in GATEWAY_NO_DEVICE:
                return None
            # An exception reply comes from a device: something is there.
            refused = exc.exception_code
    return f"answers (exception {refused} at register 0)"


async def _fits(profile: Profile, read: ReadRegisters) -> bool:
    """The profile's own identification says so, or every one of its reads succeeds."""
    try:
        verdict = await matches(profile, read)
        if verdict is not None:
            return verdict
        resolved = await resolve_profile(profile, read)
        for block in plan_reads(resolved):
            values, _ = block.decode(await read(block.function, block.address, block.count))
            if not values:
                return False
    except ReadError:
        return False
    return True


def progress_bar(done: int, total: int, found: int, width: int = 30) -> str:
    filled = width * done // total
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} unit ids, {found} found"


async def scan(
    settings: ModbusSettings,
    unit_ids: Sequence[int],
    profiles: Sequence[Profile] | None = None,
    report: Callable[[str], None] = lambda text: print(text, end="", file=sys.stderr),
) -> list[Found]:
    """Try every unit id in turn (one bus: strictly one request at a time)."""
    candidates = (
        list(profiles) if profiles is not None else [load_profile(name) for name in builtin_names()]
    )
    bus = Bus.for_settings(settings)
    found: list[Found] = []
    try:
        for done, unit_id in enumerate(unit_ids, start=1):
            unit = Unit(unit_id, settings.timeout, settings.retries)
            async with bus.session(unit) as read:
                answer = await _answers(read)
                if answer is not None:
                    fitting = [p.model for p in candidates if await _fits(p, read)]
                    found.append(Found(unit_id, answer, fitting))
            report(progress_bar(done, len(unit_ids), len(found)))
    finally:
        report("\n")
        bus.close()
    return found


def scan_table(found: Sequence[Found], settings: ModbusSettings) -> str:
    if not found:
        return f"no unit id answered on {settings.bus_name}"
    rows = [
        [f.unit_id, f.answer, ", ".join(f.profiles) or "(no built-in profile fits)"] for f in found
    ]
    return format_table(["unit id", "answer", "matching profiles"], rows)
