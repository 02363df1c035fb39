"""The meter profile: how one meter model's registers map to canonical quantities.

Profiles are data (YAML files), not code, so integrators add meters without writing
Python. Every register keeps the source it was transcribed from.

Addresses are normalised when a profile is loaded: whatever convention the profile is
written in (`addressing`), every register's `address` is afterwards the 0-based protocol
address sent in the request, and `documented` keeps the number as the manual gives it.
SunSpec profiles are the exception: their addresses are offsets from the model's ID
register until `agent.modbus.codec.resolve.resolve_profile` finds the model on the device.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.modbus.codec.decode import WORDS, ByteOrder, DataType
from agent.modbus.codec.scale import POWER_FACTORS, PowerFactorSign, Transform, power_factor_of
from greengauge.contract import (
    UNITS,
    CustomName,
    Kind,
    Quantity,
    QuantityName,
    check_unit,
    default_kind,
)


class Function(StrEnum):
    """The table a value lives in, named as meter manuals name it."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"

    @property
    def code(self) -> int:
        return FunctionCode[self.name]

    @property
    def bits(self) -> bool:
        """A table of single bits (FC1/FC2): an address is one bit, a read returns bits."""
        return self in _BIT_TABLES


class FunctionCode(IntEnum):
    COIL = 1
    DISCRETE_INPUT = 2
    HOLDING = 3
    INPUT = 4


_BIT_TABLES: Final = frozenset({Function.COIL, Function.DISCRETE_INPUT})
MAX_BITS_PER_READ: Final = 2000
"""The most coils or discrete inputs one FC1/FC2 request may ask for (Modbus specification)."""


class Addressing(StrEnum):
    """How a profile writes register addresses; all become protocol addresses at load."""

    PROTOCOL = "protocol"
    """0-based, as sent in the request (0x0000 = the first register)."""
    ONE_BASED = "one_based"
    """The manual counts from 1: address = documented number - 1 (Schneider)."""
    MODICON = "modicon"
    """30001-39999 / 300001-365536 input, 40001-49999 / 400001-465536 holding registers,
    1-9999 / 000001-065536 coils, 10001-19999 / 100001-165536 discrete inputs: the number
    names the table, address = number - 30001 (or 40001, 300001, 400001, 1, 10001, 100001)."""
    MODEL_OFFSET = "model_offset"
    """Offset from a SunSpec model's ID register; settled on the device by resolve_profile."""


_MODICON: Final = (
    (300001, 365536, Function.INPUT),
    (400001, 465536, Function.HOLDING),
    (30001, 39999, Function.INPUT),
    (40001, 49999, Function.HOLDING),
    (100001, 165536, Function.DISCRETE_INPUT),
    (10001, 19999, Function.DISCRETE_INPUT),
    (1, 9999, Function.COIL),
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
            "4xxxx or 4xxxxx for holding registers, 0xxxx for coils (1-9999), 1xxxx or "
            "1xxxxx for discrete inputs"
        )
    return number, None


Address = Annotated[int, Field(ge=0, le=0xFFFF)]
Bits = (
    Annotated[int, Field(ge=0, le=63)]
    | tuple[Annotated[int, Field(ge=0, le=63)], Annotated[int, Field(ge=0, le=63)]]
)
StateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$", max_length=64)]
_BIT_TABLE_NAMES: Final = frozenset({Function.COIL.value, Function.DISCRETE_INPUT.value})


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
        return cls._table_defaults(cls._to_protocol(data))

    @classmethod
    def _table_defaults(cls, data: Any) -> Any:
        """What the table (known once modicon numbers are read) implies; nothing here."""
        return data

    @classmethod
    def _to_protocol(cls, data: Any) -> Any:
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
            raise ValueError(
                "the register numbers name different tables: "
                + ", ".join(sorted(t.value for t in tables))
            )
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


class Ratio(_Located):
    """A register whose value multiplies another's: a CT or PT ratio the meter holds."""

    type: DataType
    scale: float = Field(default=1.0, description="ratio = raw * scale")

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @model_validator(mode="after")
    def _integer(self) -> Self:
        if self.type in (DataType.FLOAT32, DataType.FLOAT64):
            raise ValueError("a ratio register is an integer")
        return self


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
        "user-named quantity's unit (see greengauge.contract.check_unit)"
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
    bits: Bits | None = Field(
        default=None,
        description="bit N (0 = least significant) or [first, last] of the integer "
        "register: the value is those bits as an unsigned number (a status word's flags)",
    )
    states: dict[int, StateName] | None = Field(
        default=None,
        min_length=1,
        description="an enumeration, raw code -> name (0: open, 1: closed, 2: tripped): the "
        "code is published as is, a code not listed is dropped",
    )

    @classmethod
    def _table_defaults(cls, data: Any) -> Any:
        """A coil or discrete input is one bit: its type, if not given, is uint16 (0 or 1)."""
        if isinstance(data, dict) and data.get("function") in _BIT_TABLE_NAMES:
            return {"type": DataType.UINT16.value, **data}
        return data

    alternative_ratios: list[Ratio] = Field(
        default_factory=list,
        description="registers (CT ratio, PT ratio) whose values multiply the value when it "
        "is read at an alternative address: firmware that keeps secondary-side values there; "
        "read by resolve_profile with the alternative",
    )

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @property
    def bit_range(self) -> tuple[int, int] | None:
        """The first and last bit taken from the raw integer, if only some are."""
        if self.bits is None:
            return None
        return (self.bits, self.bits) if isinstance(self.bits, int) else self.bits

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
        self._check_discrete(name)
        if self.alternative_ratios and not self.alternatives:
            raise ValueError(f"{name}: alternative_ratios are for a register with alternatives")
        return self

    def check_bit_table(self, table: Function) -> None:
        """ValueError unless this can be a value of `table` when that is a bit table."""
        if not table.bits:
            return
        name = str(self.quantity)
        if self.type is not DataType.UINT16:
            raise ValueError(
                f"{name}: a {table.value} is one bit; leave type out (it reads 0 or 1)"
            )
        if self.bits is not None or self.scale_factor is not None:
            raise ValueError(f"{name}: a {table.value} is one bit: no bits or scale_factor")
        self._codes_fit(0, 1, f"a {table.value}")

    def _check_discrete(self, name: str) -> None:
        if self.function is not None:
            self.check_bit_table(self.function)
        integer = self.type not in (DataType.FLOAT32, DataType.FLOAT64)
        bit_range = self.bit_range
        if bit_range is not None:
            first, last = bit_range
            if not integer:
                raise ValueError(f"{name}: bits are taken from integer registers, not {self.type}")
            if not 0 <= first <= last < 16 * self.words:
                raise ValueError(
                    f"{name}: bits {first}..{last} are not within the {16 * self.words} bits "
                    f"of {self.type} (give N or [first, last], first <= last)"
                )
        if self.states is not None:
            if not integer:
                raise ValueError(f"{name}: states are codes of integer registers, not {self.type}")
            if (self.scale, self.offset, self.transform, self.scale_factor) != (1, 0, None, None):
                raise ValueError(
                    f"{name}: states name raw codes, published as they are: no scale, "
                    "offset, transform or scale_factor"
                )
            width = 16 * self.words
            if bit_range is not None:
                first, last = bit_range
                self._codes_fit(0, (1 << (last - first + 1)) - 1, f"bits {first}..{last}")
            elif self.type.value.startswith("int"):
                self._codes_fit(-(1 << (width - 1)), (1 << (width - 1)) - 1, self.type.value)
            else:
                self._codes_fit(0, (1 << width) - 1, self.type.value)

    def _codes_fit(self, low: int, high: int, where: str) -> None:
        outside = sorted(code for code in self.states or {} if not low <= code <= high)
        if outside:
            raise ValueError(
                f"{self.quantity!s}: states {outside} cannot be read from {where} ({low}..{high})"
            )


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
    max_bits_per_read: int = Field(
        default=MAX_BITS_PER_READ,
        ge=1,
        le=MAX_BITS_PER_READ,
        description="coils or discrete inputs one read may ask for; unmapped ones between "
        "are read along (a device that refuses them has the read split)",
    )
    not_available: dict[DataType, list[int]] = Field(
        default_factory=dict,
        description="per type, raw bit patterns that mean 'no value' (e.g. int16: [0x8000])",
    )
    include_unconfirmed: bool = Field(
        default=False, description="read the registers marked unconfirmed too"
    )
    power_factor_sign: PowerFactorSign = Field(
        default=PowerFactorSign.ACTIVE_POWER,
        description="what the sign of the meter's power factors says: active_power "
        "(+ import, - export: canonical) or reactive_power (+ inductive, - capacitive: "
        "converted to canonical with the active power read beside it)",
    )
    sunspec: SunSpecModel | None = None
    identification: list[IdentificationSpec] = Field(default_factory=list)
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _addressing_to_registers(cls, data: Any) -> Any:
        """Every register follows the profile's addressing unless it names its own."""
        if not isinstance(data, dict):
            return data
        inherited = {key: data[key] for key in ("addressing",) if key in data}
        if data.get("function") in _BIT_TABLE_NAMES:
            # A register in a bit table takes its type from the table (RegisterSpec).
            inherited["function"] = data["function"]
        if not inherited:
            return data
        data = dict(data)

        def addressed(item: Any) -> Any:
            if not isinstance(item, dict):
                return item
            item = {**inherited, **item}
            ratios = item.get("alternative_ratios")
            if isinstance(ratios, list):
                item["alternative_ratios"] = [addressed(r) for r in ratios]
            return item

        for key in ("registers", "identification"):
            items = data.get(key)
            if isinstance(items, list):
                data[key] = [addressed(item) for item in items]
        return data

    def function_of(self, register: _Located) -> Function:
        return register.function or self.function

    def byte_order_of(self, register: _Located) -> ByteOrder:
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

    def state_notes(self) -> list[str]:
        """Each enumeration, code -> name: a reading carries the code, the profile its name."""
        return [
            f"{r.quantity!s} states: "
            + ", ".join(f"{code} {name}" for code, name in sorted(r.states.items()))
            for r in self.registers
            if r.states
        ]

    def state_name(self, quantity: Quantity, code: float | None) -> str | None:
        """The name of the state `code` of an enumerated quantity (None: not one)."""
        for register in self.registers:
            if register.quantity is quantity and register.states and code is not None:
                return register.states.get(int(code)) if code == int(code) else None
        return None

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
        self._check_bit_tables()
        self._check_power_factor_sign(seen)
        names = [i.name for i in self.identification]
        if len(names) != len(set(names)):
            raise ValueError("identification names must be unique")
        for dtype in self.not_available:
            if dtype in (DataType.FLOAT32, DataType.FLOAT64):
                raise ValueError(f"not_available: {dtype} has NaN; patterns are for integers")
        return self

    def _check_bit_tables(self) -> None:
        for register in self.registers:
            register.check_bit_table(self.function_of(register))
        for spec in self.identification:
            if self.function_of(spec).bits:
                raise ValueError(f"{spec.name}: identification is read from registers, not bits")

    def _check_power_factor_sign(self, mapped: set[QuantityName]) -> None:
        if self.power_factor_sign is PowerFactorSign.ACTIVE_POWER:
            return
        for register in self.registers:
            if register.quantity not in POWER_FACTORS:
                continue
            active = power_factor_of(Quantity(register.quantity))
            if active not in mapped:
                raise ValueError(
                    f"{register.quantity}: power_factor_sign "
                    f"{self.power_factor_sign.value} needs {active.value} for its sign"
                )

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
