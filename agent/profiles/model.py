"""The meter profile: how one meter model's registers map to canonical quantities.

Profiles are data (YAML files), not code, so integrators add meters without writing
Python. Every register keeps the source it was transcribed from.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.modbus.decode import WORDS, ByteOrder, DataType
from agent.wire import UNITS, Quantity


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


Address = Annotated[int, Field(ge=0, le=0xFFFF)]


class _ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterSpec(_ProfileModel):
    """One quantity: where it is, how it is encoded, how raw becomes the canonical unit."""

    quantity: Quantity
    address: Address = Field(description="0-based protocol address, as sent in the request")
    type: DataType
    unit: str = Field(description="unit after scaling; must be the quantity's canonical unit")
    scale: float = Field(default=1.0, description="canonical value = raw * scale + offset")
    offset: float = 0.0
    function: Function | None = Field(default=None, description="overrides the profile's")
    byte_order: ByteOrder | None = Field(default=None, description="overrides the profile's")
    source: str = Field(min_length=1, description="where this register was transcribed from")

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @model_validator(mode="after")
    def _check(self) -> Self:
        canonical = UNITS[self.quantity]
        if self.unit != canonical:
            raise ValueError(
                f"{self.quantity.value}: unit {self.unit!r} is not the canonical unit "
                f"{canonical!r}; set scale so the value comes out in {canonical}"
            )
        if self.address + self.words > 0x10000:
            raise ValueError(f"{self.quantity.value}: {self.type} at {self.address} passes 65535")
        return self


class Profile(_ProfileModel):
    """A meter model's register map."""

    model: str = Field(pattern=r"^[a-z0-9_]+$", description="profile name used in configs")
    manufacturer: str
    description: str
    sources: dict[str, str] = Field(min_length=1, description="key -> document or repository")
    function: Function
    byte_order: ByteOrder = ByteOrder.ABCD
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(
        default=0,
        ge=0,
        le=124,
        description="unmapped registers the device answers inside one read; 0 = no bridging",
    )
    registers: list[RegisterSpec] = Field(min_length=1)

    def function_of(self, register: RegisterSpec) -> Function:
        return register.function or self.function

    def byte_order_of(self, register: RegisterSpec) -> ByteOrder:
        return register.byte_order or self.byte_order

    @model_validator(mode="after")
    def _check(self) -> Self:
        seen: set[Quantity] = set()
        for register in self.registers:
            if register.quantity in seen:
                raise ValueError(f"quantity {register.quantity.value} is mapped twice")
            seen.add(register.quantity)
            if register.words > self.max_registers_per_read:
                raise ValueError(
                    f"{register.quantity.value}: {register.words} registers do not fit "
                    f"max_registers_per_read {self.max_registers_per_read}"
                )
        return self
