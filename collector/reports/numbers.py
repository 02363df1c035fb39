"""The report's figures and words as text: the only place figures are rounded."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

from greengauge.common.i18n import N_, _, decimal_text

DECIMALS: Final = 3
"""Decimals of every additive figure printed (kWh, m3, t, kgce, kgCO2, output, CNY, kW)."""
SIGNIFICANT: Final = 6
"""Significant digits of every printed ratio (intensity, share, per-unit cost)."""
ROUNDING_TEXT: Final = N_(
    "JSON carries unrounded figures, and every total in it is the exact sum of the parts "
    "listed with it. The table and the CSV round each figure once, for display: amounts "
    "to {decimals} decimals, ratios to {significant} significant digits; a total is "
    "rounded from the unrounded sum, so it differs from the sum of its printed parts by at "
    "most half a unit of the last decimal per figure."
)
ROUNDING_RULE: Final = ROUNDING_TEXT.format(decimals=DECIMALS, significant=SIGNIFICANT)

TERMS: Final = frozenset(
    {
        # carriers
        N_("electricity"),
        N_("natural_gas"),
        N_("steam"),
        N_("hot_water"),
        N_("diesel"),
        N_("coal"),
        N_("coke"),
        N_("fuel_oil"),
        N_("gasoline"),
        N_("lpg"),
        N_("compressed_air"),
        # meter roles
        N_("boundary"),
        N_("submeter"),
        # a line's standing against its benchmark, or why it has none
        N_("leading"),
        N_("compliant"),
        N_("above_baseline"),
        N_("insufficient_output"),
        # coal-equivalent bases
        N_("equivalent"),
        N_("equal"),
        # time-of-use periods
        N_("critical_peak"),
        N_("peak"),
        N_("flat"),
        N_("valley"),
        N_("deep_valley"),
        # how a figure is known (QUALITY_KEY)
        N_("measured"),
        N_("spread_over_gap"),
        N_("lower_bound"),
        N_("estimated"),
    }
)
"""Values in the report that are words (not names): printed in the reader's language."""


def term(value: str) -> str:
    """A value of the report in the reader's language if it is one of TERMS; a name
    (meter, line, season) as it is."""
    return _(value) if value in TERMS else value


def _plain(value: Decimal, grouped: bool) -> str:
    """A decimal without exponent and without zeros after its last significant digit."""
    text = decimal_text(value, grouped)
    return "0" if text in ("-0", "") else text


def amount_text(value: float | None, grouped: bool = True) -> str:
    """An additive figure to DECIMALS decimals (a total and its parts alike)."""
    if value is None or not math.isfinite(value):
        return "-"
    # Python rounds the float (exactly, half to even); the locale only spells the digits.
    rounded = Decimal(f"{value:.{DECIMALS}f}")
    return decimal_text(abs(rounded) if rounded.is_zero() else rounded, grouped, DECIMALS)


def ratio_text(value: float | None, grouped: bool = True) -> str:
    """A ratio to SIGNIFICANT significant digits, without a false trailing `.0`."""
    if value is None or not math.isfinite(value):
        return "-"
    return _plain(Decimal(f"{value:.{SIGNIFICANT}g}"), grouped)


def share_text(value: float | None) -> str:
    return (
        "-"
        if value is None or not math.isfinite(value)
        else _("{share} %").format(share=ratio_text(100 * value))
    )


def given_text(value: float | None, grouped: bool = True) -> str:
    """A figure as given in a data file or the configuration: exactly, not rounded."""
    if value is None:
        return "-"
    return _plain(Decimal(repr(float(value))), grouped)
