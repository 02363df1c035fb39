"""Settles what a profile leaves to the device, by reading it once per connection.

Some register maps depend on the unit in front of us (firmware variants with other
addresses, SunSpec models found by walking the model chain). `resolve_profile` asks the
device and returns a profile with every address concrete; the poller plans its reads
from that. The I/O is injected as `read`, so this logic is tested without a server.

`identify` and `matches` read a profile's identification registers (model id, serial
number, the SunSpec marker), so that a scan can suggest which profile fits a device.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from agent.modbus.codec.decode import DataType, DecodeError, decode, decode_string
from agent.modbus.codec.plan import plan_reads
from agent.modbus.errors import ReadError
from agent.profiles.model import (
    Addressing,
    Function,
    IdentificationSpec,
    Profile,
    Ratio,
    RegisterSpec,
    SunSpecModel,
)
from greengauge.contract import QuantityName

ReadRegisters = Callable[[Function, int, int], Awaitable[Sequence[int]]]
"""read(function, address, count) -> registers; raises agent.modbus.errors.ReadError."""

SUNSPEC_MARKER: Final = (0x5375, 0x6E53)
"""'SunS' as two registers, high byte first."""
SUNSPEC_END: Final = 0xFFFF
"""The model ID that ends the chain."""
_MAX_MODELS: Final = 256


class ResolveError(ReadError):
    """The device does not have what the profile needs (no SunSpec marker, no such model).

    A ReadError of kind "resolve", so a poller treats it like a failed read of the meter.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("resolve", detail)


async def resolve_profile(profile: Profile, read: ReadRegisters) -> Profile:
    """The profile with every address concrete for this device.

    - SunSpec: the model is found by its marker and model chain, and every offset becomes
      an address (ResolveError when the device has no such model).
    - Alternative addresses (firmware variants): the first register of each group is read
      at each candidate address; the first that gives a plausible non-zero value wins (a
      plausible zero if none is non-zero, the documented address if none is plausible), and
      every member of the group moves with it. A candidate the device refuses (an
      exception reply) is skipped; a connection failure or timeout is raised.
    """
    if profile.sunspec is not None and profile.sunspec.model_start is None:
        start = await find_sunspec_model(profile.sunspec, profile.function, read)
        profile = locate_model(profile, start)
    if any(r.alternatives for r in profile.registers):
        profile = await _choose_alternatives(profile, read)
    return profile


async def find_sunspec_model(sunspec: SunSpecModel, function: Function, read: ReadRegisters) -> int:
    """The address of the ID register of `sunspec.model` on the device."""
    for base in sunspec.bases:
        marker = await _read_or_none(read, function, base, 2)
        if marker is None or tuple(marker) != SUNSPEC_MARKER:
            continue
        return await _walk_models(sunspec, function, read, base + 2)
    bases = ", ".join(str(b) for b in sunspec.bases)
    raise ResolveError(f"no SunSpec marker 'SunS' at {bases}")


async def _walk_models(
    sunspec: SunSpecModel, function: Function, read: ReadRegisters, address: int
) -> int:
    seen: list[int] = []
    for _ in range(_MAX_MODELS):
        if address + 2 > 0x10000:
            break
        header = await _read_or_none(read, function, address, 2)
        if header is None or len(header) != 2:
            raise ResolveError(f"SunSpec model header at {address} cannot be read")
        model_id, length = header
        if model_id == SUNSPEC_END:
            break
        if model_id == sunspec.model:
            if sunspec.length is not None and length != sunspec.length:
                raise ResolveError(
                    f"SunSpec model {model_id} at {address} has length {length}, "
                    f"the profile expects {sunspec.length}"
                )
            return address
        seen.append(model_id)
        address += 2 + length
    found = ", ".join(str(m) for m in seen) or "none"
    raise ResolveError(f"SunSpec model {sunspec.model} not on the device (models: {found})")


def locate_model(profile: Profile, start: int) -> Profile:
    """A SunSpec profile with its model found at `start`: offsets become addresses."""
    assert profile.sunspec is not None

    def located(register: RegisterSpec) -> RegisterSpec:
        sf = register.scale_factor
        address = start + register.address
        if address + register.words > 0x10000:
            raise ResolveError(f"{register.quantity!s}: offset passes 65535 from {start}")
        return register.model_copy(
            update={
                "address": address,
                "documented": register.address,
                "addressing": Addressing.PROTOCOL,
                "scale_factor": None if sf is None else start + sf,
            }
        )

    return profile.with_registers(
        (located(r) for r in profile.registers),
        sunspec=profile.sunspec.model_copy(update={"model_start": start}),
    )


async def _choose_alternatives(profile: Profile, read: ReadRegisters) -> Profile:
    groups: dict[str, list[RegisterSpec]] = {}
    for register in profile.registers:
        if register.alternatives:
            groups.setdefault(register.group or f"\0{register.quantity!s}", []).append(register)
    read_ones = {r.quantity for r in profile.read_registers}
    choice: dict[QuantityName, int] = {}
    for members in groups.values():
        probe = members[0]
        if probe.quantity not in read_ones:
            continue
        index = await _probe(profile, probe, read)
        for member in members:
            choice[member.quantity] = index
    ratios: dict[tuple[Function, int], float | None] = {}
    moved: list[RegisterSpec] = []
    for register in profile.registers:
        chosen = choice.get(register.quantity)
        factor: float | None = 1.0
        if chosen and register.alternative_ratios:  # at an alternative: secondary-side values
            for ratio in register.alternative_ratios:
                key = (profile.function_of(ratio), ratio.address)
                if key not in ratios:
                    ratios[key] = await _ratio_value(profile, ratio, read)
                value = ratios[key]
                factor = None if value is None or factor is None else factor * value
        if factor is None:
            continue  # its ratio cannot be read: no value beats a value off by the ratio
        moved.append(_moved(register, chosen, factor))
    return profile.with_registers(moved)


def _moved(register: RegisterSpec, index: int | None, factor: float) -> RegisterSpec:
    if index is None:
        return register
    address = [register.address, *register.alternatives][index]
    update = {"address": address, "alternatives": [], "alternative_ratios": []}
    return register.model_copy(update=update | {"scale": register.scale * factor})


async def _ratio_value(profile: Profile, ratio: Ratio, read: ReadRegisters) -> float | None:
    """A ratio register's value; None when refused or not a positive number."""
    registers = await _read_or_none(read, profile.function_of(ratio), ratio.address, ratio.words)
    if registers is None or len(registers) != ratio.words:
        return None
    try:
        value = decode(registers, ratio.type, profile.byte_order_of(ratio)) * ratio.scale
    except DecodeError:
        return None
    return value if value > 0 else None


async def _probe(profile: Profile, register: RegisterSpec, read: ReadRegisters) -> int:
    """Which candidate address of `register` (0 = documented) has its value."""
    plausible: list[tuple[int, float]] = []
    for index, address in enumerate([register.address, *register.alternatives]):
        candidate = register.model_copy(update={"address": address, "alternatives": []})
        value = await _read_value(profile, candidate, read)
        if value is not None:
            plausible.append((index, value))
    nonzero = [index for index, value in plausible if value != 0]
    if nonzero:
        return nonzero[0]
    return plausible[0][0] if plausible else 0


async def _read_value(
    profile: Profile, register: RegisterSpec, read: ReadRegisters
) -> float | None:
    """The register's value on the device, or None when refused, not available or implausible."""
    alone = profile.with_registers([register], include_unconfirmed=True)
    values: dict[QuantityName, float] = {}
    for block in plan_reads(alone):
        registers = await _read_or_none(read, block.function, block.address, block.count)
        if registers is None:
            return None
        decoded, problems = block.decode(registers)
        if problems:  # not available, out of range or not a number: not this address
            return None
        values.update(decoded)
    return values.get(register.quantity)


async def _read_or_none(
    read: ReadRegisters, function: Function, address: int, count: int
) -> Sequence[int] | None:
    """The registers, or None when the device refuses them with an exception reply."""
    try:
        return await read(function, address, count)
    except ResolveError:
        raise
    except ReadError as exc:
        if exc.exception_code is None:
            raise  # no answer at all: the device is not there, not a missing register
        return None


# --- identification ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """What a device says about itself through a profile's identification registers."""

    values: dict[str, int | str | None]
    """name -> value read (None: refused or undecodable)."""
    mismatches: list[str]
    """names whose value is not one the profile expects."""


async def identify(profile: Profile, read: ReadRegisters) -> Identity:
    """Read every identification register of the profile (unconfirmed ones too)."""
    values: dict[str, int | str | None] = {}
    mismatches: list[str] = []
    for spec in profile.identification:
        value = await _identification_value(profile, spec, read)
        values[spec.name] = value
        if spec.expected and not spec.unconfirmed and not _expected(spec, value):
            mismatches.append(spec.name)
    return Identity(values, mismatches)


def _expected(spec: IdentificationSpec, value: int | str | None) -> bool:
    if isinstance(value, str):
        return value in {str(e).rstrip("\x00 ") for e in spec.expected}
    return value is not None and value in spec.expected


async def _identification_value(
    profile: Profile, spec: IdentificationSpec, read: ReadRegisters
) -> int | str | None:
    registers = await _read_or_none(read, profile.function_of(spec), spec.address, spec.words)
    if registers is None or len(registers) != spec.words:
        return None
    order = profile.byte_order_of(spec)
    try:
        if spec.type == "string":
            return decode_string(registers, order)
        value = decode(registers, DataType(spec.type), order)
    except DecodeError:
        return None
    return int(value)


async def matches(profile: Profile, read: ReadRegisters) -> bool | None:
    """Whether the device is a meter of this profile's model, as far as the profile can tell.

    True: the SunSpec model is there, or every confirmed identification register with an
    expected value has it. False: it is not. None: the profile has nothing to tell by
    (no expected identification values), so only reading its values can.
    A connection failure or timeout is raised (ReadError), not answered.
    """
    if profile.sunspec is not None:
        try:
            await find_sunspec_model(profile.sunspec, profile.function, read)
        except ResolveError:
            return False
        return True
    checked = [s for s in profile.identification if s.expected and not s.unconfirmed]
    if not checked:
        return None
    identity = await identify(profile, read)
    return not identity.mismatches
