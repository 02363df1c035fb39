"""The points the accounting writes beside the readings: energy and output per minute,
intensity per window, tagged with site, line, role and scope.
"""

from __future__ import annotations

from datetime import datetime

from collector.accounting.db import (
    MinuteRow,
    from_ms,
    ms,
)
from collector.accounting.queries import STATUS_CODES, Figure, standing
from collector.accounting.targets import SITE_LINE, VIRTUAL_ROLE
from collector.plant import (
    CARRIERS,
    Judged,
    LineConfig,
    MeterConfig,
    Role,
    SiteConfig,
)
from collector.stores.lineprotocol import Point


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def intensity_point(site: str, line: str, f: Figure, judged: Judged | None, now: datetime) -> Point:
    out = f.output if f.judged.value is not None else None
    status = standing(f.judged.value, judged)
    fields_: list[tuple[str, float]] = [
        ("value", _nan(f.judged.value)),
        ("kgce_per_unit", _nan(f.kgce / out if out else None)),
        ("kgco2_per_unit", _nan(f.kgco2 / out if out else None)),
        ("kgce", f.kgce),
        ("kgco2", f.kgco2),
        ("output", f.output),
        ("status", float(STATUS_CODES.get(status, 1))),
    ]
    if judged is not None:
        fields_ += [("benchmark", judged.benchmark), ("baseline", judged.baseline)]
    return Point(
        "intensity",
        (("site", site), ("line", line), ("window", f.window.value)),
        tuple(fields_),
        ms(now),
    )


def meter_role(meter: MeterConfig) -> str:
    """The `role` tag: `boundary` (counted in the site total, as the accounting counts
    it, virtual or not), else `virtual` (a sum or difference of real meters), else
    `submeter`; so that a dashboard adds each kWh once."""
    if meter.role is Role.BOUNDARY:
        return Role.BOUNDARY.value
    return VIRTUAL_ROLE if meter.virtual else meter.role.value


def energy_point(site: SiteConfig, meter: MeterConfig, row: MinuteRow) -> Point:
    tags = [("site", site.id), ("meter", meter.id), ("carrier", meter.carrier.value)]
    tags += [("unit", CARRIERS[meter.carrier][0]), ("line", meter.line or SITE_LINE)]
    tags += [("role", meter_role(meter)), ("scope", str(site.scope(meter.carrier)))]
    return Point(
        "energy_interval",
        tuple(tags),
        (
            ("amount", row.amount),
            ("kgce", row.kgce),
            ("kgco2", row.kgco2),
            ("quality", float(row.quality)),
            ("estimated", 1.0 if meter.estimated else 0.0),
        ),
        row.minute,
    )


def output_point(site: str, line: LineConfig, row: MinuteRow) -> Point:
    fields_ = [("amount", row.amount), ("quality", float(row.quality))]
    if line.process_emissions:
        # Scope 1 process CO2 of the minute's output, beside the output it comes from.
        fields_.append(("process_kgco2", row.amount * line.process_factor))
    return Point(
        "output_interval",
        (("site", site), ("line", line.id), ("unit", line.output_unit)),
        tuple(fields_),
        row.minute,
    )


def minute_time(value: int) -> datetime:
    return from_ms(value)
