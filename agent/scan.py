"""`energy-agent scan`: which unit ids answer on a bus, and which profiles fit them.

Each answering unit is matched against every built-in vendor profile (generic templates
fit any device that serves their few registers, so they are not suggested), and the
candidates are ranked by evidence:

- identified: the profile's model register (or SunSpec model) says this is the model;
  a model register that says otherwise rules the profile out.
- likely: every value the profile maps reads, and is plausible for its quantity, and
  no other candidate explains more registers.
- possible: as likely, but another candidate explains more registers or is identified
  (an SDM630 also serves the SDM120's subset).
- partial: at least half of the values are plausible and the others refused: a model
  of the series lacking some registers.

A value that is not plausible rules a profile out (unless its model register names it).

Plausibility is `agent.probe.plausible`: a register read in a wrong table, type or byte
order gives values no meter shows (10^9 V, a power factor of 7), so a map that reads
every register of another model does not pass for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from agent.config import ModbusSettings
from agent.modbus.codec.plan import ReadBlock, plan_reads, split_block
from agent.modbus.codec.resolve import (
    ReadRegisters,
    ResolveError,
    identify,
    matches,
    resolve_profile,
)
from agent.modbus.errors import GATEWAY_NO_DEVICE, ReadError
from agent.modbus.transport.bus import Bus, Unit
from agent.probe import plausible
from agent.profiles import Profile, builtin_names, load_profile
from agent.profiles.model import Function
from agent.tables import format_table
from greengauge.common.i18n import _

_PARTIAL_SHARE: Final = 0.5
"""A profile whose plausible values are fewer than this share of its map is not shown."""


class Confidence(IntEnum):
    """How sure a match is; a higher value ranks first."""

    PARTIAL = 1
    POSSIBLE = 2
    LIKELY = 3
    IDENTIFIED = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Candidate:
    profile: str
    confidence: Confidence
    plausible: int
    """Values that read and are plausible for their quantity."""
    total: int
    """Values the profile maps (those it reads)."""
    evidence: str


@dataclass(frozen=True, slots=True)
class Found:
    unit_id: int
    answer: str
    candidates: list[Candidate]
    """Best first."""

    @property
    def profiles(self) -> list[str]:
        return [c.profile for c in self.candidates]


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


def is_template(profile: Profile) -> bool:
    """A GreenGauge generic layout, not a vendor's map: no evidence of a model."""
    return all("GreenGauge generic layout" in source for source in profile.sources.values())


async def _read_fields(block: ReadBlock, read: ReadRegisters) -> tuple[int, int]:
    """(plausible, refused) values of one block; a refused block is halved until the
    refused registers are found, so a model lacking one register still shows the others."""
    try:
        registers = await read(block.function, block.address, block.count)
    except ReadError as exc:
        if exc.exception_code is None:
            raise  # no answer: not a fact about this profile
        halves = split_block(block)
        if halves is None:
            return 0, 1
        first, second = [await _read_fields(half, read) for half in halves]
        return first[0] + second[0], first[1] + second[1]
    values, problems = block.decode(registers)
    quiet = {p.quantity for p in problems if p.quiet}  # "not available": the meter's own word
    good = sum(plausible(q, v) for q, v in values.items()) + len(quiet)
    return good, 0


async def _evidence(profile: Profile, read: ReadRegisters) -> Candidate | None:
    """How well the device fits the profile, or None when it does not."""
    verdict = await matches(profile, read)
    if verdict is False:
        return None
    try:
        resolved = await resolve_profile(profile, read)
    except ResolveError:
        return None
    total = len(resolved.read_registers)
    plausible_count = refused = 0
    for block in plan_reads(resolved):
        good, bad = await _read_fields(block, read)
        plausible_count, refused = plausible_count + good, refused + bad
    if verdict:
        return Candidate(
            profile.model,
            Confidence.IDENTIFIED,
            plausible_count,
            total,
            await _identified_by(profile, read),
        )
    implausible = total - plausible_count - refused
    # A value no meter shows is evidence against the map (another table, type or order);
    # a refused register is not: a model of the series may lack it.
    if implausible or plausible_count < _PARTIAL_SHARE * total or plausible_count == 0:
        return None
    if plausible_count == total:
        evidence = f"all {total} values plausible"
        return Candidate(profile.model, Confidence.LIKELY, plausible_count, total, evidence)
    evidence = f"{plausible_count} of {total} values plausible ({refused} refused)"
    return Candidate(profile.model, Confidence.PARTIAL, plausible_count, total, evidence)


async def _identified_by(profile: Profile, read: ReadRegisters) -> str:
    if profile.sunspec is not None:
        return f"SunSpec model {profile.sunspec.model} found"
    identity = await identify(profile, read)
    named = [
        f"{spec.name} {_shown(identity.values[spec.name])}"
        for spec in profile.identification
        if spec.expected and not spec.unconfirmed
    ]
    return f"{', '.join(named)} as documented"


def _shown(value: int | str | None) -> str:
    return f"0x{value:X}" if isinstance(value, int) and value > 0xFFFF else repr(value)


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first. A full fit that another candidate outdoes (identified, or explaining
    more registers) is only possible."""
    identified = any(c.confidence is Confidence.IDENTIFIED for c in candidates)
    most = max((c.plausible for c in candidates if c.confidence is Confidence.LIKELY), default=0)

    def demoted(c: Candidate) -> Candidate:
        if c.confidence is not Confidence.LIKELY or not (identified or c.plausible < most):
            return c
        why = "another profile is identified" if identified else "another explains more"
        evidence = f"{c.evidence}; {why}"
        return Candidate(c.profile, Confidence.POSSIBLE, c.plausible, c.total, evidence)

    ranked = [demoted(c) for c in candidates]
    return sorted(ranked, key=lambda c: (-c.confidence, -c.plausible, c.profile))


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
    candidates = [p for p in candidates if not is_template(p)]
    bus = Bus.for_settings(settings)
    found: list[Found] = []
    try:
        for done, unit_id in enumerate(unit_ids, start=1):
            unit = Unit(unit_id, settings.timeout, settings.retries)
            async with bus.session(unit) as read:
                answer = await _answers(read)
                if answer is not None:
                    fitting = [c for p in candidates if (c := await _evidence(p, read))]
                    found.append(Found(unit_id, answer, rank(fitting)))
            report(progress_bar(done, len(unit_ids), len(found)))
    finally:
        report("\n")
        bus.close()
    return found


def scan_table(found: Sequence[Found], settings: ModbusSettings) -> str:
    """One row per candidate, best first; the unit id and its answer on the first."""
    if not found:
        return _("no unit id answered on {bus}").format(bus=settings.bus_name)
    rows: list[list[object]] = []
    for f in found:
        if not f.candidates:
            rows.append([f.unit_id, f.answer, _("(no built-in profile fits)"), "", ""])
        for index, c in enumerate(f.candidates):
            head: list[object] = [f.unit_id, f.answer] if index == 0 else ["", ""]
            rows.append([*head, c.profile, c.confidence.label, c.evidence])
    headers = [_("unit id"), _("answer"), _("profile"), _("match"), _("evidence")]
    note = _("generic templates are not matched: configure the device to serve one")
    return f"{format_table(headers, rows)}\n\n{note}"
