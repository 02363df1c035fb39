"""The meter profile: how one meter model's registers map to canonical quantities.

Profiles are data (YAML files), not code, so integrators add meters without writing
Python. Every register keeps the source it was transcribed from.

Addresses are normalised when a profile is loaded: whatever convention the profile is
written in (`addressing`), every register's `address` is afterwards the 0-based protocol
address sent in the request, and `documented` keeps the number as the manual gives it.
SunSpec profiles are the exception: their addresses are offsets from the model's ID
register until `agent.modbus.resolve.resolve_profile` finds the model on the device.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.modbus.decode import WORDS, ByteOrder, DataType
from agent.modbus.scale import Transform
from agent.wire import (
    UNITS,
    CustomName,
    Kind,
    Quantity,
    QuantityName,
    check_unit,
    default_kind,
)


class Function(StrEnum):
    """The register table a value lives in, named as meter manuals name it."""

    HOLDING = "holding"
    INPUT = "input"

    @property
    def code(self) -> int:
        return FunctionCode[self.name]


class FunctionCode(IntEnum):
    HOLDING = 3
    INPUT = 4


class Addressing(StrEnum):
    """How a profile writes register addresses; all become protocol addresses at load."""

    PROTOCOL = "protocol"
    """0-based, as sent in the request (0x0000 = the first register)."""
    ONE_BASED = "one_based"
    """The manual counts from 1: address = documented number - 1 (Schneider)."""
    MODICON = "modicon"
    """30001-39999 / 300001-365536 input, 40001-49999 / 400001-465536 holding registers:
    the number names the table, address = number - 30001 (or 40001, 300001, 400001)."""
    MODEL_OFFSET = "model_offset"
    """Offset from a SunSpec model's ID register; settled on the device by resolve_profile."""


_MODICON: Final = (
    (300001, 365536, Function.INPUT),
    (400001, 465536, Function.HOLDING),
    (30001, 39999, Function.INPUT),
    (40001, 49999, Function.HOLDING),
)


def to_protocol(number: int, addressing: Addressing) -> tuple[int, Function | None]:
    """The protocol address of a documented register number, and the table it names (modicon)."""
    if addressing is Addressing.ONE_BASED:
        if not 1 <= number <= 0x10000:
            raise ValueError(f"{number} is not a 1-based register number (1..65536)")
        return number - 1, None
    if addressing is Addressing.MODICON:
        for low, high, function in _MODICON:
            if low <= number <= high:
                return number - low, function
        raise ValueError(
            f"{number} is not a modicon register number: 3xxxx or 3xxxxx for input registers, "
            "4xxxx or 4xxxxx for holding registers (coils and discrete inputs, 0xxxx and "
            "1xxxx, are not supported)"
        )
    return number, None


Address = Annotated[int, Field(ge=0, le=0xFFFF)]


class _ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Located(_ProfileModel):
    """Something at a register address, in one table and byte order, from one source."""

    address: Address = Field(
        description="in the profile's addressing; the 0-based protocol address once loaded"
    )
    addressing: Addressing = Field(
        default=Addressing.PROTOCOL, description="overrides the profile's; protocol once loaded"
    )
    documented: int | None = Field(
        default=None, description="the address as the manual writes it (set at load)"
    )
    function: Function | None = Field(default=None, description="overrides the profile's")
    byte_order: ByteOrder | None = Field(default=None, description="overrides the profile's")
    source: str = Field(min_length=1, description="where this register was transcribed from")
    unconfirmed: bool = Field(
        default=False,
        description="a single weak source or an inference: not read unless the profile "
        "sets include_unconfirmed",
    )

    _ADDRESS_LISTS: ClassVar[tuple[str, ...]] = ()
    _ADDRESS_FIELDS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _normalise_addresses(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            addressing = Addressing(data.get("addressing", Addressing.PROTOCOL))
        except ValueError:
            return data  # the field's own validation names the bad value
        if addressing in (Addressing.PROTOCOL, Addressing.MODEL_OFFSET):
            return data
        data = dict(data)
        tables: set[Function] = set()

        def convert(number: Any) -> Any:
            if not isinstance(number, int) or isinstance(number, bool):
                return number  # the field's own validation names the bad value
            address, table = to_protocol(number, addressing)
            if table is not None:
                tables.add(table)
            return address

        if "address" in data:
            data["documented"] = data["address"]
            data["address"] = convert(data["address"])
        for name in cls._ADDRESS_FIELDS:
            if data.get(name) is not None:
                data[name] = convert(data[name])
        for name in cls._ADDRESS_LISTS:
            if isinstance(data.get(name), list):
                data[name] = [convert(n) for n in data[name]]
        if len(tables) > 1:
            raise ValueError("the register numbers name different tables (3xxxx and 4xxxx)")
        if tables:
            (table,) = tables
            given = data.get("function")
            if given is not None and given != table.value:
                raise ValueError(
                    f"modicon number {data['documented']} is in the {table.value} table, "
                    f"but function is {given!r}"
                )
            data["function"] = table.value
        data["addressing"] = Addressing.PROTOCOL.value
        return data


class RegisterSpec(_Located):
    """One quantity: where it is, how it is encoded, how raw becomes the canonical unit."""

    _ADDRESS_LISTS: ClassVar[tuple[str, ...]] = ("alternatives",)
    _ADDRESS_FIELDS: ClassVar[tuple[str, ...]] = ("scale_factor",)

    quantity: Quantity | CustomName = Field(
        union_mode="left_to_right",
        description="a canonical quantity, or a user-named one (x_...) with its own unit",
    )
    type: DataType
    unit: str = Field(
        description="unit after scaling; a canonical quantity's canonical unit, or a "
        "user-named quantity's unit (see agent.wire.check_unit)"
    )
    scale: float = Field(default=1.0, description="canonical value = raw * scale + offset")
    offset: float = 0.0
    transform: Transform | None = Field(
        default=None, description="applied to the raw value before scale and offset"
    )
    scale_factor: Address | None = Field(
        default=None,
        description="address of an int16 register holding a power of ten (SunSpec sunssf): "
        "value = raw * 10^sf * scale + offset; read in the same request as the value",
    )
    not_available: list[int] | None = Field(
        default=None,
        description="raw bit patterns that mean 'no value' (e.g. 0xFFFFFFFF); overrides the "
        "profile's for this type; a value reading one of them is dropped quietly",
    )
    range: tuple[float, float] | None = Field(
        default=None, description="[min, max] plausible canonical values; others are dropped"
    )
    kind: Kind | None = Field(
        default=None, description="counter or instantaneous; defaults to the quantity's"
    )
    rollover: float | None = Field(
        default=None, gt=0, description="a counter's value at which it wraps to 0"
    )
    alternatives: list[Address] = Field(
        default_factory=list,
        description="other addresses the value has on other firmware; probed by resolve_profile",
    )
    group: str | None = Field(
        default=None,
        description="registers that move together: the first of the group is probed, and "
        "every member takes the alternative at the same position",
    )

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @property
    def counter(self) -> bool:
        return (self.kind or default_kind(self.quantity)) is Kind.COUNTER

    @model_validator(mode="after")
    def _check(self) -> Self:
        name = str(self.quantity)
        if not isinstance(self.quantity, Quantity):
            try:
                check_unit(self.unit)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        elif self.unit != (canonical := UNITS[self.quantity]):
            raise ValueError(
                f"{name}: unit {self.unit!r} is not the canonical unit "
                f"{canonical!r}; set scale so the value comes out in {canonical}"
            )
        for address in (self.address, *self.alternatives):
            if address + self.words > 0x10000:
                raise ValueError(f"{name}: {self.type} at {address} passes 65535")
        if self.not_available and self.type in (DataType.FLOAT32, DataType.FLOAT64):
            raise ValueError(f"{name}: not_available is for integer types (floats have NaN)")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"{name}: range must be [min, max] with min < max")
        if self.rollover is not None and not self.counter:
            raise ValueError(f"{name}: rollover is for counters (set kind: counter)")
        if self.group is not None and not self.alternatives:
            raise ValueError(f"{name}: a register in a group needs its alternatives")
        return self


IdentificationType = DataType | Literal["string"]


class IdentificationSpec(_Located):
    """A register that names the device (model, serial number, firmware): not a quantity."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="model, serial, firmware, ...")
    type: IdentificationType
    length: int | None = Field(default=None, ge=1, le=125, description="registers, for string")
    expect: int | str | list[int | str] | None = Field(
        default=None, description="the value(s) this meter model has, from its documentation"
    )

    @property
    def words(self) -> int:
        if self.type == "string":
            return self.length or 0
        return WORDS[DataType(self.type)]

    @property
    def expected(self) -> list[int | str]:
        if self.expect is None:
            return []
        return list(self.expect) if isinstance(self.expect, list) else [self.expect]

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.type == "string") != (self.length is not None):
            raise ValueError(f"{self.name}: length is required for string, and only for string")
        if self.type in (DataType.FLOAT32, DataType.FLOAT64):
            raise ValueError(f"{self.name}: identification registers are integers or strings")
        if self.type == "string" and self.byte_order not in (None, ByteOrder.ABCD, ByteOrder.BADC):
            raise ValueError(f"{self.name}: text is ABCD (high byte first) or BADC")
        if self.address + self.words > 0x10000:
            raise ValueError(f"{self.name}: {self.words} registers at {self.address} pass 65535")
        return self


class SunSpecModel(_ProfileModel):
    """A SunSpec device: 'SunS' at one of `bases`, then a chain of (ID, L) model headers."""

    model: int = Field(ge=1, le=0xFFFE, description="the model ID to find, e.g. 203")
    length: int | None = Field(default=None, ge=0, description="the model's expected L")
    bases: list[Address] = Field(
        default_factory=lambda: [40000, 0, 50000],
        min_length=1,
        description="where the 'SunS' marker may be, in the order probed",
    )
    model_start: Address | None = Field(
        default=None, description="the model's ID register, once found on the device"
    )


class Profile(_ProfileModel):
    """A meter model's register map."""

    model: str = Field(pattern=r"^[a-z0-9_]+$", description="profile name used in configs")
    manufacturer: str
    description: str
    sources: dict[str, str] = Field(min_length=1, description="key -> document or repository")
    function: Function
    byte_order: ByteOrder = ByteOrder.ABCD
    addressing: Addressing = Field(
        default=Addressing.PROTOCOL, description="how the addresses in this file are written"
    )
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(
        default=0,
        ge=0,
        le=124,
        description="unmapped registers the device answers inside one read; 0 = no bridging",
    )
    not_available: dict[DataType, list[int]] = Field(
        default_factory=dict,
        description="per type, raw bit patterns that mean 'no value' (e.g. int16: [0x8000])",
    )
    include_unconfirmed: bool = Field(
        default=False, description="read the registers marked unconfirmed too"
    )
    sunspec: SunSpecModel | None = None
    identification: list[IdentificationSpec] = Field(default_factory=list)
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _addressing_to_registers(cls, data: Any) -> Any:
        """Every register follows the profile's addressing unless it names its own."""
        if not isinstance(data, dict) or "addressing" not in data:
            return data
        data = dict(data)
        for key in ("registers", "identification"):
            items = data.get(key)
            if isinstance(items, list):
                data[key] = [
                    {"addressing": data["addressing"], **item} if isinstance(item, dict) else item
                    for item in items
                ]
        return data

    def function_of(self, register: RegisterSpec | IdentificationSpec) -> Function:
        return register.function or self.function

    def byte_order_of(self, register: RegisterSpec | IdentificationSpec) -> ByteOrder:
        return register.byte_order or self.byte_order

    def byte_order_notes(self) -> list[str]:
        """Where a byte_order given says nothing: CDAB swaps registers, and a 16-bit value
        has one (it reads as ABCD; BADC or DCBA swap its bytes)."""
        located: list[tuple[str, RegisterSpec | IdentificationSpec]] = [
            (f"registers.{i} ({r.quantity})", r) for i, r in enumerate(self.registers)
        ]
        located += [
            (f"identification.{i} ({r.name})", r) for i, r in enumerate(self.identification)
        ]
        notes = [
            f"{where}: byte_order CDAB swaps registers, and its {spec.type} has one: it is read "
            "as ABCD (BADC or DCBA swap its two bytes)"
            for where, spec in located
            if spec.byte_order is ByteOrder.CDAB and spec.words == 1
        ]
        if self.byte_order is ByteOrder.CDAB and all(
            spec.byte_order is not None or spec.words == 1 for _, spec in located
        ):
            notes.append(
                "byte_order CDAB swaps registers, and no value it applies to has more than "
                "one: they are read as ABCD (BADC or DCBA swap their two bytes)"
            )
        return notes

    def not_available_of(self, register: RegisterSpec) -> frozenset[int]:
        """The bit patterns (the value's bits, two's complement) that mean 'no value'."""
        patterns = register.not_available
        if patterns is None:
            patterns = self.not_available.get(register.type, [])
        mask = (1 << (16 * register.words)) - 1
        return frozenset(p & mask for p in patterns)

    @property
    def read_registers(self) -> list[RegisterSpec]:
        """The registers read: unconfirmed ones only when the profile opts in."""
        return [r for r in self.registers if self.include_unconfirmed or not r.unconfirmed]

    @property
    def resolved(self) -> bool:
        """Whether every address is a protocol address (a SunSpec model must be found first)."""
        return self.sunspec is None or self.sunspec.model_start is not None

    @property
    def counters(self) -> dict[QuantityName, float | None]:
        """The quantities read that are cumulative counters, with their rollover values."""
        return {r.quantity: r.rollover for r in self.read_registers if r.counter}

    @property
    def custom_units(self) -> dict[str, tuple[str, Kind]]:
        """Unit and kind of every user-named quantity the profile maps (for the wire)."""
        return {
            r.quantity: (r.unit, r.kind or Kind.INSTANTANEOUS)
            for r in self.registers
            if not isinstance(r.quantity, Quantity)
        }

    def with_registers(self, registers: Iterable[RegisterSpec], **changes: Any) -> Profile:
        """A copy with other registers (addresses settled on a device), not re-validated."""
        return self.model_copy(update={"registers": list(registers), **changes})

    @model_validator(mode="after")
    def _check(self) -> Self:
        seen: set[QuantityName] = set()
        for register in self.registers:
            name = str(register.quantity)
            if register.quantity in seen:
                raise ValueError(f"quantity {name} is mapped twice")
            seen.add(register.quantity)
            if register.words > self.max_registers_per_read:
                raise ValueError(
                    f"{name}: {register.words} registers do not fit "
                    f"max_registers_per_read {self.max_registers_per_read}"
                )
            if register.scale_factor is not None:
                low = min(register.address, register.scale_factor)
                high = max(register.address + register.words, register.scale_factor + 1)
                if high - low > self.max_registers_per_read:
                    raise ValueError(
                        f"{name}: its scale factor register {register.scale_factor} is too "
                        f"far to read in the same request (max_registers_per_read "
                        f"{self.max_registers_per_read})"
                    )
        self._check_groups()
        self._check_sunspec()
        names = [i.name for i in self.identification]
        if len(names) != len(set(names)):
            raise ValueError("identification names must be unique")
        for dtype in self.not_available:
            if dtype in (DataType.FLOAT32, DataType.FLOAT64):
                raise ValueError(f"not_available: {dtype} has NaN; patterns are for integers")
        return self

    def _check_groups(self) -> None:
        groups: dict[str, list[RegisterSpec]] = {}
        for register in self.registers:
            if register.group is not None:
                groups.setdefault(register.group, []).append(register)
        for group, members in groups.items():
            if len({len(r.alternatives) for r in members}) > 1:
                raise ValueError(f"group {group}: every member needs as many alternatives")

    def _check_sunspec(self) -> None:
        offsets = [r.addressing is Addressing.MODEL_OFFSET for r in self.registers]
        if self.sunspec is None:
            if any(offsets):
                raise ValueError("addressing model_offset needs a sunspec section")
            return
        if self.sunspec.model_start is None and not all(offsets):
            raise ValueError("a sunspec profile's registers are addressed by model_offset")
        if any(r.alternatives for r in self.registers):
            raise ValueError("a sunspec profile has no alternative addresses")
        length = self.sunspec.length
        if self.sunspec.model_start is None and length is not None:
            for register in self.registers:
                for address in (register.address, register.scale_factor):
                    if address is not None and not 2 <= address < length + 2:
                        raise ValueError(
                            f"{register.quantity}: offset {address} is outside model "
                            f"{self.sunspec.model} (offsets 2..{length + 1})"
                        )
