"""The few unit conversions the ledger needs between meter units and factor units. Pure."""

from __future__ import annotations

_TO_BASE: dict[str, tuple[str, float]] = {
    "kWh": ("kWh", 1.0),
    "MWh": ("kWh", 1000.0),
    "kg": ("kg", 1.0),
    "t": ("kg", 1000.0),
    "m3": ("m3", 1.0),
    "Nm3": ("m3", 1.0),  # gas volumes are taken as already at standard conditions
    "MJ": ("MJ", 1.0),
    "GJ": ("MJ", 1000.0),
}


class UnitError(ValueError):
    """Two units that measure different things."""


def factor(from_unit: str, to_unit: str) -> float:
    """What a value in from_unit is multiplied by to be in to_unit."""
    try:
        base_from, f = _TO_BASE[from_unit]
        base_to, t = _TO_BASE[to_unit]
    except KeyError as exc:
        raise UnitError(f"unknown unit {exc.args[0]!r}; known: {sorted(_TO_BASE)}") from None
    if base_from != base_to:
        raise UnitError(f"cannot convert {from_unit} to {to_unit}")
    return f / t


def convert(value: float, from_unit: str, to_unit: str) -> float:
    return value * factor(from_unit, to_unit)
