"""Canonical quantity names with their units and kinds, and the rules for user-named ones.

Names and units here are a public contract: extend them, never rename them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AfterValidator


class Kind(StrEnum):
    """How a quantity behaves over time; the collector derives energy from counters."""

    INSTANTANEOUS = "instantaneous"
    COUNTER = "counter"


class Quantity(StrEnum):
    """Canonical quantity names; the unit of each is in UNITS."""

    VOLTAGE_L1 = "voltage_l1"
    VOLTAGE_L2 = "voltage_l2"
    VOLTAGE_L3 = "voltage_l3"
    VOLTAGE_L1_L2 = "voltage_l1_l2"
    VOLTAGE_L2_L3 = "voltage_l2_l3"
    VOLTAGE_L3_L1 = "voltage_l3_l1"
    CURRENT_L1 = "current_l1"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    CURRENT_N = "current_n"
    POWER_ACTIVE = "power_active"
    POWER_ACTIVE_L1 = "power_active_l1"
    POWER_ACTIVE_L2 = "power_active_l2"
    POWER_ACTIVE_L3 = "power_active_l3"
    POWER_REACTIVE = "power_reactive"
    POWER_REACTIVE_L1 = "power_reactive_l1"
    POWER_REACTIVE_L2 = "power_reactive_l2"
    POWER_REACTIVE_L3 = "power_reactive_l3"
    POWER_APPARENT = "power_apparent"
    POWER_APPARENT_L1 = "power_apparent_l1"
    POWER_APPARENT_L2 = "power_apparent_l2"
    POWER_APPARENT_L3 = "power_apparent_l3"
    POWER_FACTOR = "power_factor"
    """P / S: -1..1, its sign the active power's (+ import, - export), whatever the
    meter's own convention (a profile's `power_factor_sign`; the agent converts)."""
    POWER_FACTOR_L1 = "power_factor_l1"
    POWER_FACTOR_L2 = "power_factor_l2"
    POWER_FACTOR_L3 = "power_factor_l3"
    FREQUENCY = "frequency"
    ENERGY_ACTIVE_IMPORT = "energy_active_import"
    ENERGY_ACTIVE_EXPORT = "energy_active_export"
    ENERGY_ACTIVE_TOTAL = "energy_active_total"
    ENERGY_ACTIVE_IMPORT_L1 = "energy_active_import_l1"
    ENERGY_ACTIVE_IMPORT_L2 = "energy_active_import_l2"
    ENERGY_ACTIVE_IMPORT_L3 = "energy_active_import_l3"
    ENERGY_ACTIVE_EXPORT_L1 = "energy_active_export_l1"
    ENERGY_ACTIVE_EXPORT_L2 = "energy_active_export_l2"
    ENERGY_ACTIVE_EXPORT_L3 = "energy_active_export_l3"
    ENERGY_REACTIVE_IMPORT = "energy_reactive_import"
    ENERGY_REACTIVE_EXPORT = "energy_reactive_export"
    ENERGY_REACTIVE_TOTAL = "energy_reactive_total"
    VOLUME = "volume"
    MASS = "mass"
    COUNT = "count"


def _units() -> dict[Quantity, str]:
    by_prefix = {
        "voltage": "V",
        "current": "A",
        "power_active": "W",
        "power_reactive": "var",
        "power_apparent": "VA",
        "power_factor": "1",
        "frequency": "Hz",
        "energy_active": "kWh",
        "energy_reactive": "kvarh",
        "volume": "m3",
        "mass": "t",
        "count": "1",
    }
    units: dict[Quantity, str] = {}
    for quantity in Quantity:
        prefix = max((p for p in by_prefix if quantity.value.startswith(p)), key=len)
        units[quantity] = by_prefix[prefix]
    return units


UNITS: Final[dict[Quantity, str]] = _units()
"""Unit of every canonical quantity, as the values on the wire are expressed."""

KINDS: Final[dict[Quantity, Kind]] = {
    q: Kind.COUNTER
    if q.value.startswith("energy_") or q in (Quantity.VOLUME, Quantity.MASS, Quantity.COUNT)
    else Kind.INSTANTANEOUS
    for q in Quantity
}
"""Counters only rise (until rollover or replacement); the rest are instantaneous."""


# --- user-named quantities -------------------------------------------------------------
#
# A plant meters more than the canonical list names (steam temperature and pressure,
# flow, THD, demand). Such a quantity is named by the integrator with the prefix
# CUSTOM_PREFIX, which no canonical name has, so the two namespaces never meet; on the
# wire it travels in MeterReading.custom with its own unit and kind.

CUSTOM_PREFIX: Final = "x_"
MAX_CUSTOM_NAME: Final = 48
MAX_CUSTOM: Final = 64
"""User-named quantities one reading may carry: a meter has a few dozen registers."""
MAX_UNIT: Final = 16
_CUSTOM_NAME_RE = re.compile(rf"^{CUSTOM_PREFIX}[a-z][a-z0-9_]*$")
_CUSTOM_RULE: Final = (
    f"'{CUSTOM_PREFIX}' then a lowercase letter, then lowercase letters, digits or '_', "
    f"at most {MAX_CUSTOM_NAME} characters"
)
# Units are a bounded set of characters rather than a closed list (plants use degC, bar,
# kPa, t/h, Nm3/h, %, ...): none of them needs escaping in line protocol tags or fields,
# JSON, SQL parameters or HTML, and no control character or space can reach a log line.
_UNIT_RE = re.compile(r"^[A-Za-z0-9%/._^*-]+$")
_UNIT_RULE: Final = f"1 to {MAX_UNIT} characters: letters, digits and % / . _ ^ * -"
_CANONICAL_NAMES: Final = frozenset(q.value for q in Quantity)


def check_custom_name(value: str) -> str:
    """Refuse a user-named quantity that is not in the custom namespace; the reason says
    why without quoting more than the name's length (names come from config and the wire)."""
    if value in _CANONICAL_NAMES:
        raise ValueError(f"{value!r} is a canonical quantity: map it as one, not as custom")
    if len(value) > MAX_CUSTOM_NAME:
        raise ValueError(f"custom quantity name of {len(value)} characters: {_CUSTOM_RULE}")
    if not _CUSTOM_NAME_RE.fullmatch(value):
        raise ValueError(f"invalid custom quantity name {value!r}: {_CUSTOM_RULE}")
    return value


def check_unit(value: str) -> str:
    """Refuse a custom quantity's unit that is empty, long or holds other characters."""
    if len(value) > MAX_UNIT:
        raise ValueError(f"unit of {len(value)} characters: {_UNIT_RULE}")
    if not _UNIT_RE.fullmatch(value):
        raise ValueError(f"invalid unit {value!r}: {_UNIT_RULE}")
    return value


CustomName = Annotated[str, AfterValidator(check_custom_name)]
Unit = Annotated[str, AfterValidator(check_unit)]
QuantityName = Quantity | str
"""A canonical quantity or a user-named one (checked by check_custom_name)."""


def is_custom(name: QuantityName) -> bool:
    return not isinstance(name, Quantity)


def default_kind(name: QuantityName) -> Kind:
    """A canonical quantity's kind; user-named quantities are instantaneous unless a
    profile says they count."""
    return KINDS[name] if isinstance(name, Quantity) else Kind.INSTANTANEOUS
