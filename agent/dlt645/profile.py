"""The DL/T 645 profile: which data identifiers a meter model answers, in which BCD
format, and how each becomes a canonical quantity. Data, like the Modbus profiles
(agent.profiles.model): every value keeps its source, and a value known from a single weak
source is `unconfirmed` and left out unless the profile sets include_unconfirmed.

Built-in profiles are the YAML files in agent/profiles/dlt645/ (a folder of their own: the
Modbus profile list does not see them). A format is written as the standard writes it,
XXXXXX.XX for 4 bytes with 2 decimals; `signed` when the top bit of the value is its sign.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.profiles import ProfileError
from agent.tables import format_table
from greengauge.common.configfile import ConfigError, load_model
from greengauge.common.i18n import _
from greengauge.contract import UNITS, Quantity

_FORMAT: Final = re.compile(r"(X+)(?:\.(X+))?")
_BUILTIN: Final = Path(__file__).resolve().parent.parent / "profiles" / "dlt645"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Model):
    """One quantity: the data identifier it is read by and how its value is encoded."""

    quantity: Quantity
    identifier: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}$", description="DI3 DI2 DI1 DI0 as the standard writes it"
    )
    format: str = Field(description="digits as the standard writes them, e.g. XXX.X")
    signed: bool = Field(default=False, description="the value's top bit is its sign")
    unit: str = Field(description="unit after scaling; must be the quantity's canonical unit")
    scale: float = Field(default=1.0, description="canonical value = value * scale")
    source: str = Field(min_length=1, description="where this identifier was transcribed from")
    unconfirmed: bool = Field(
        default=False, description="a single weak source: not read unless include_unconfirmed"
    )

    @property
    def di(self) -> int:
        return int(self.identifier, 16)

    @property
    def size(self) -> int:
        """Bytes of the value."""
        return len(self.format.replace(".", "")) // 2

    @property
    def decimals(self) -> int:
        _, _, fraction = self.format.partition(".")
        return len(fraction)

    @model_validator(mode="after")
    def _check(self) -> Self:
        name = self.quantity.value
        if _FORMAT.fullmatch(self.format) is None or len(self.format.replace(".", "")) % 2:
            raise ValueError(
                f"{name}: format {self.format!r} is not whole bytes of BCD digits like "
                "XXXXXX.XX (an even number of X, at most one '.')"
            )
        canonical = UNITS[self.quantity]
        if self.unit != canonical:
            raise ValueError(
                f"{name}: unit {self.unit!r} is not the canonical unit {canonical!r}; "
                f"set scale so the value comes out in {canonical}"
            )
        return self


class Dlt645Profile(_Model):
    """A meter model's data identifiers."""

    model: str = Field(pattern=r"^[a-z0-9_]+$")
    protocol: Literal["dlt645"]
    manufacturer: str
    description: str
    sources: dict[str, str] = Field(min_length=1, description="key -> document or repository")
    include_unconfirmed: bool = False
    values: list[ValueSpec] = Field(min_length=1)

    @property
    def read_values(self) -> list[ValueSpec]:
        return [v for v in self.values if self.include_unconfirmed or not v.unconfirmed]

    @model_validator(mode="after")
    def _check(self) -> Self:
        seen: dict[Quantity, str] = {}
        for value in self.values:
            if value.quantity in seen:
                raise ValueError(
                    f"{value.quantity.value}: given twice (identifiers {seen[value.quantity]} "
                    f"and {value.identifier})"
                )
            seen[value.quantity] = value.identifier
        return self


def builtin_names() -> list[str]:
    return sorted(p.stem for p in _BUILTIN.glob("*.yaml"))


def load_dlt645_profile(name_or_path: str, config_dir: Path | None = None) -> Dlt645Profile:
    """A built-in DL/T 645 profile by name, or a profile file (relative to the config's folder)."""
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
    elif name_or_path in builtin_names():
        path = _BUILTIN / f"{name_or_path}.yaml"
    else:
        raise ProfileError(
            [
                f"unknown DL/T 645 profile {name_or_path!r}: built-in ones are "
                f"{', '.join(builtin_names())}, or give a path to a .yaml file"
            ]
        )
    try:
        profile, _ = load_model(path, Dlt645Profile)
    except ConfigError as exc:
        raise ProfileError(exc.problems) from exc
    return profile


def profiles_report() -> str:
    """The built-in DL/T 645 profiles, for `energy-agent profiles --protocol dlt645`."""
    rows: list[list[object]] = []
    for name in builtin_names():
        profile = load_dlt645_profile(name)
        rows.append([name, profile.manufacturer, len(profile.read_values), profile.description])
    return format_table([_("profile"), _("manufacturer"), _("quantities"), _("description")], rows)
