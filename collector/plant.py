"""The plant model in the collector's config: sites, production lines, meters, factors.

What the accounting needs to turn meter counters into energy, kgce, CO2 and intensity
per unit of output, and to judge it: which meter measures which energy carrier for
which line, where each line's output comes from, the benchmark it is judged against,
the coal-equivalent basis, a grid factor named by series AND year (never unnamed), the
targets. Validated when the config is loaded: a carrier without a coefficient, a grid
factor that was never published, a benchmark that does not exist or a meter that is
named twice is a config error naming the field, not a surprise in a report.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.accounting.core import data
from collector.accounting.core.conversion import (
    ELECTRICITY,
    CoalBasis,
    Configured,
    ConversionSettings,
    MissingCoefficient,
    coefficient,
)
from collector.accounting.core.counters import MODULUS_NEEDS_RATE, Replacement
from collector.accounting.core.factors import Confidence, EnergyLimit, GridFactor, NdrcLevel
from collector.accounting.core.intensity import Shift, Window
from collector.accounting.core.tou import Period, Season, TouCalendar
from collector.baselines import DegreeDays, EnergyBaseline, check_baselines
from greengauge.common.configfile import read_beside
from greengauge.contract import CUSTOM_PREFIX, Id, Quantity

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Model):
    """A figure the site configures, with where it comes from (a lab report, a notice)."""

    value: float = Field(gt=0)
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the figure comes from: required")

    def configured(self) -> Configured:
        return Configured(self.value, self.unit, self.source)


class Carrier(StrEnum):
    """Energy carriers a meter can measure; each has a native unit and a meter quantity."""

    ELECTRICITY = "electricity"
    NATURAL_GAS = "natural_gas"
    STEAM = "steam"
    HOT_WATER = "hot_water"
    DIESEL = "diesel"
    COAL = "coal"
    COKE = "coke"
    FUEL_OIL = "fuel_oil"
    GASOLINE = "gasoline"
    LPG = "lpg"
    COMPRESSED_AIR = "compressed_air"


# native unit, default meter quantity, the key of the packaged GB/T 2589 table (None:
# no single figure there, the site must configure one) and of the fuel CO2 table.
CARRIERS: dict[Carrier, tuple[str, Quantity, str | None, str | None]] = {
    Carrier.ELECTRICITY: ("kWh", Quantity.ENERGY_ACTIVE_IMPORT, ELECTRICITY, None),
    Carrier.NATURAL_GAS: ("m3", Quantity.VOLUME, None, "natural_gas"),
    Carrier.STEAM: ("t", Quantity.MASS, None, None),
    Carrier.HOT_WATER: ("t", Quantity.MASS, None, None),
    Carrier.DIESEL: ("t", Quantity.MASS, "diesel", "diesel"),
    Carrier.COAL: ("t", Quantity.MASS, "raw_coal", "raw_coal"),
    Carrier.COKE: ("t", Quantity.MASS, "coke", "coke"),
    Carrier.FUEL_OIL: ("t", Quantity.MASS, "fuel_oil", "fuel_oil"),
    Carrier.GASOLINE: ("t", Quantity.MASS, "gasoline", "gasoline"),
    Carrier.LPG: ("t", Quantity.MASS, "lpg", None),
    Carrier.COMPRESSED_AIR: ("m3", Quantity.VOLUME, "compressed_air", None),
}
_POWER = Quantity.POWER_ACTIVE

DIRECT: Final = 1
"""Scope 1: fuels burned on site (and process emissions)."""
PURCHASED: Final = 2
"""Scope 2: purchased electricity, heat and steam."""
Scope = Literal[1, 2]
CARRIER_SCOPE: Final[dict[Carrier, Scope]] = {
    Carrier.ELECTRICITY: PURCHASED,
    Carrier.STEAM: PURCHASED,
    Carrier.HOT_WATER: PURCHASED,
    # Bought in from a utility on the site (a third party's compressors): energy
    # purchased like steam; a site compressing its own air meters the electricity.
    Carrier.COMPRESSED_AIR: PURCHASED,
    Carrier.NATURAL_GAS: DIRECT,
    Carrier.DIESEL: DIRECT,
    Carrier.COAL: DIRECT,
    Carrier.COKE: DIRECT,
    Carrier.FUEL_OIL: DIRECT,
    Carrier.GASOLINE: DIRECT,
    Carrier.LPG: DIRECT,
}
"""The GHG Protocol / GB/T 32150 scope of each carrier's CO2 by default; a site that
makes its own steam or hot water sets `scopes` (its fuel meters carry the CO2 then)."""
ADJUSTABLE_SCOPE: Final = frozenset({Carrier.STEAM, Carrier.HOT_WATER, Carrier.COMPRESSED_AIR})
"""Carriers a site may make itself (scope 1 then) or buy (scope 2); the rest are fixed:
grid electricity is bought, a fuel is burned on site."""


class Role(StrEnum):
    BOUNDARY = "boundary"
    """Energy entering the site (an incomer, the gas main): counted in the site total."""
    SUBMETER = "submeter"
    """Inside the boundary (a line, a compressor): counted for its line, not again for
    the site."""


class CounterSettings(_Model):
    modulus: float | None = Field(
        default=None, gt=0, description="the counter wraps here; needs max_rate"
    )
    max_rate: float | None = Field(
        default=None, gt=0, description="most the meter can count per hour (kW for kWh)"
    )
    tolerance: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _rate_for_modulus(self) -> CounterSettings:
        # Refused rather than guessed from recent use: a rate learnt from the data is one
        # the data can fool (a first week of light load, a meter swapped on day one), and
        # an auditor can check a configured figure against the meter's nameplate.
        if self.modulus is not None and self.max_rate is None:
            raise ValueError(
                f"{MODULUS_NEEDS_RATE}; give max_rate from the meter's nameplate "
                "(kW for a kWh counter, m3/h for a gas meter)"
            )
        return self


class SwapConfig(_Model):
    """A meter swap or counter reset from the maintenance record (also recorded with
    `energy-collector swap` or POST /api/v1/sites/{site}/swaps)."""

    at: AwareDatetime = Field(description="when the new counter was fitted (with a zone)")
    old_final: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="the old counter's last reading"
    )
    new_initial: float = Field(
        ge=0, allow_inf_nan=False, description="the new counter's reading when fitted"
    )
    by: str = Field(min_length=1, max_length=200, description="who recorded it")

    def replacement(self) -> Replacement:
        return Replacement(self.at, self.new_initial, self.old_final, self.by)


class SwapRecord(SwapConfig):
    """A swap recorded through the API: the meter it is for, and the swap."""

    meter: Id


def _not_custom(cls: type, value: Any) -> Any:
    # A user-named quantity's unit is free text and its kind the agent's say: nothing
    # ties it to a carrier's unit, so it cannot be accounted. Counters that are energy,
    # volume or mass have canonical names (scaled to their units by the profile).
    if isinstance(value, str) and value.startswith(CUSTOM_PREFIX):
        raise ValueError(
            f"{value!r} is a user-named quantity: only canonical counters are accounted "
            "(energy_active_*, volume in m3, mass in t, count); map the meter's counter to "
            "one of them in its profile"
        )
    return value


class MeterConfig(_Model):
    """A meter of the wire (by its id), or a virtual meter (sum / difference of others)."""

    id: Id
    carrier: Carrier
    role: Role = Role.SUBMETER
    line: Id | None = Field(default=None, description="the line it serves; none: the site")
    quantity: Quantity | None = Field(
        default=None,
        description="the counter to account (default per carrier); power_active: integrate "
        "power (marked estimated), for a meter without counter",
    )
    scale: float = Field(
        default=1.0, gt=0, description="meter quantity x scale = amount in the carrier's unit"
    )
    counter: CounterSettings = CounterSettings()
    swaps: tuple[SwapConfig, ...] = Field(
        default=(), description="meter swaps and resets, as read off the meters"
    )
    plus: tuple[Id, ...] = Field(default=(), description="virtual meter: sum of these")
    minus: tuple[Id, ...] = Field(default=(), description="virtual meter: minus these")

    _not_custom = field_validator("quantity", mode="before")(_not_custom)

    @property
    def virtual(self) -> bool:
        return bool(self.plus)

    @property
    def unit(self) -> str:
        return CARRIERS[self.carrier][0]

    @property
    def source_quantity(self) -> Quantity:
        return self.quantity or CARRIERS[self.carrier][1]

    @property
    def estimated(self) -> bool:
        return self.source_quantity is _POWER

    @model_validator(mode="after")
    def _check(self) -> MeterConfig:
        if self.minus and not self.plus:
            raise ValueError("a virtual meter needs `plus` meters (minus alone is negative)")
        if self.virtual and self.quantity is not None:
            raise ValueError("a virtual meter has no quantity of its own")
        if self.virtual and self.swaps:
            raise ValueError("a virtual meter has no counter to swap")
        times = [x.at for x in self.swaps]
        if len(set(times)) != len(times):
            raise ValueError("two swaps at the same time")
        q = self.source_quantity
        if q is _POWER and self.carrier is not Carrier.ELECTRICITY:
            raise ValueError("power integration is for electricity only")
        if not (
            q is _POWER
            or q.value.startswith("energy_active")
            or q in (Quantity.VOLUME, Quantity.MASS)
        ):
            raise ValueError(f"{q.value} is not an energy, volume or mass counter")
        return self


class BenchmarkRef(_Model):
    """What a line is judged against: one of an NDRC entry, energy-limit grades or your own."""

    ndrc: str | None = Field(default=None, description="NDRC product, e.g. cement_clinker")
    edition: str | None = Field(default=None, description="NDRC edition (default: newest)")
    energy_limit: str | None = Field(
        default=None, description="product of an energy-limit standard, grades 1/2/3"
    )
    custom: CustomBenchmark | None = None

    @model_validator(mode="after")
    def _one(self) -> BenchmarkRef:
        given = [x for x in (self.ndrc, self.energy_limit, self.custom) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of ndrc, energy_limit, custom")
        return self


class CustomBenchmark(_Model):
    """A user-defined entry, NDRC-style: lower is better."""

    name: str = Field(min_length=1)
    unit: str = Field(pattern=r"^(kgce|kWh|kgCO2)/.+$", description="e.g. kgce/pieces")
    benchmark: float
    baseline: float
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> CustomBenchmark:
        if self.benchmark > self.baseline:
            raise ValueError("benchmark (the leading level) must not be above the baseline")
        return self


BenchmarkRef.model_rebuild()


class Judged(_Model):
    """A benchmark resolved from the data files (or the config): levels, unit, source."""

    name: str
    unit: str
    benchmark: float
    baseline: float
    source: str
    confidence: Confidence
    """H / M / L from the data file; `configured` for a custom benchmark."""
    kind: Literal["ndrc", "energy_limit", "custom"]
    grades: tuple[float | None, ...] = ()

    @property
    def numerator(self) -> str:
        """kgce, kWh (electricity) or kgCO2."""
        return self.unit.split("/", 1)[0]


class OutputFromMeter(_Model):
    """Output counted by a production counter on the wire (count or mass)."""

    meter: Id
    quantity: Literal["count", "mass", "volume"] = "count"
    scale: float = Field(default=1.0, gt=0, description="counter x scale = output units")
    counter: CounterSettings = CounterSettings()

    _not_custom = field_validator("quantity", mode="before")(_not_custom)


class OutputFromMes(_Model):
    """Output reported by the MES on greengauge/v1/{site}/production."""

    mes: Literal[True] = True


class AlertSettings(_Model):
    window: Window = Window.ROLLING_1H
    band: float = Field(
        default=0.0, ge=0, description="clear at or below baseline - band (intensity unit)"
    )
    min_duration: float = Field(
        default=900.0, ge=0, description="seconds the condition must last (either way)"
    )
    threshold: float | None = Field(
        default=None, description="raise above this instead of the benchmark's baseline"
    )


class GreenFactoryIndicator(_Model):
    """A GB/T 36132-2025 quantitative indicator: scored between a baseline and a leading value."""

    baseline: float
    leading: float
    source: str = Field(min_length=1, description="the sector rule the two values come from")

    @model_validator(mode="after")
    def _differ(self) -> GreenFactoryIndicator:
        if self.baseline == self.leading:
            raise ValueError("baseline and leading value must differ")
        return self


class ProcessEmission(_Model):
    """CO2 released by the process itself per unit of the line's output (clinker
    calcination: CO2 from the carbonates of the raw meal), not from burning fuel."""

    name: str = Field(min_length=1, description="e.g. clinker calcination")
    value: float = Field(gt=0, allow_inf_nan=False, description="kgCO2 per output unit")
    unit: str = Field(pattern=r"^kgCO2/.+$", description="kgCO2/<the line's output unit>")
    source: str = Field(min_length=1, description="the standard, table and edition: required")
    confidence: Confidence = Field(description="H, M, L, or configured (a plant measurement)")


class LineConfig(_Model):
    id: Id
    product: str = Field(min_length=1)
    output_unit: str = Field(min_length=1, description="t, pieces, m2, ...")
    benchmark: BenchmarkRef
    output: OutputFromMeter | OutputFromMes
    min_output: dict[Window, float] = Field(
        default_factory=dict,
        description="least output for an intensity, per window (default 1 output unit)",
    )
    alert: AlertSettings | None = None
    green_factory: GreenFactoryIndicator | None = Field(
        default=None,
        description="GB/T 36132-2025 baseline and leading value of the line's intensity",
    )
    indicators: tuple[BenchmarkRef, ...] = Field(
        default=(),
        description="more indicators judged beside `benchmark`, each against its own kind "
        "(clinker electricity kWh/t beside comprehensive energy kgce/t)",
    )
    process_emissions: tuple[ProcessEmission, ...] = Field(
        default=(), description="process CO2 per unit of output (scope 1, beside energy CO2)"
    )

    @property
    def process_factor(self) -> float:
        """kgCO2 of process emissions per unit of output, all processes together."""
        return math.fsum(p.value for p in self.process_emissions)

    @model_validator(mode="after")
    def _indicators_and_process_units(self) -> LineConfig:
        refs = [self.benchmark, *self.indicators]
        if len(set(refs)) != len(refs):
            raise ValueError("indicators: an indicator given twice (or the benchmark again)")
        for p in self.process_emissions:
            if p.unit != f"kgCO2/{self.output_unit}":
                raise ValueError(
                    f"process_emissions {p.name!r}: unit {p.unit!r}, expected "
                    f"'kgCO2/{self.output_unit}' (the line's output unit)"
                )
        return self


class HourlyGridFactor(_Model):
    """An hourly grid factor series (kgCO2/kWh) that overrides the static one for the hours
    it covers: a CSV file of `hour start (ISO 8601 with zone),factor` lines."""

    file: Path = Field(description="CSV file; relative to the config file's folder")
    source: str = Field(min_length=1, description="who publishes the series")
    _by_hour: dict[int, float] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> HourlyGridFactor:
        text, name = read_beside(self.file, info.context)
        self._by_hour = parse_hourly_factors(text, name)
        return self

    def factor_at(self, hour: int) -> float | None:
        """The factor of the hour starting at `hour` x 3600 s after the epoch, if given."""
        return self._by_hour.get(hour)


def parse_hourly_factors(text: str, name: str) -> dict[int, float]:
    """`hour start,factor` lines (a header line is allowed) into epoch hour -> kgCO2/kWh."""
    by_hour: dict[int, float] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        stamp, _, factor = line.partition(",")
        try:
            start = datetime.fromisoformat(stamp.strip())
            value = float(factor)
        except ValueError:
            if number == 1:
                continue  # a header
            raise ValueError(
                f"{name}:{number}: expected 'hour start,kgCO2/kWh', got {line!r}"
            ) from None
        if start.tzinfo is None or start.timestamp() % 3600 or not 0 <= value < 10:
            raise ValueError(
                f"{name}:{number}: the hour start needs a zone and a whole hour, "
                f"the factor 0..10 kgCO2/kWh: {line!r}"
            )
        by_hour[int(start.timestamp() // 3600)] = value
    if not by_hour:
        raise ValueError(f"{name}: no hourly factors in the file")
    return by_hour


class GridFactorRef(_Model):
    series: str
    year: int
    region: str | None = None

    def resolve(self) -> GridFactor:
        """The published factor; ValueError naming what is published when there is none."""
        try:
            return data.grid_factors().get(self.series, self.year, self.region)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None


class MarketBased(_Model):
    residual: GridFactorRef
    green_share: float = Field(default=0.0, ge=0, le=1, description="share under certificates")


class TargetSettings(_Model):
    """Intensity reduction targets; defaults from collector/data/targets.yaml."""

    base_year: int = 2020
    target_year: int = 2025
    energy_reduction: float = Field(default=0.135, gt=0, lt=1)
    co2_reduction: float = Field(default=0.18, gt=0, lt=1)
    base_energy_intensity: dict[Id, float] = Field(
        default_factory=dict, description="per line (and the site id): kgce per output unit"
    )
    base_co2_intensity: dict[Id, float] = Field(default_factory=dict)


class ShiftConfig(_Model):
    name: str
    start: time
    end: time


class TouSeason(_Model):
    months: tuple[int, ...]
    hours: dict[Period, tuple[int, ...]]
    prices: dict[Period, float]


class TouConfig(_Model):
    seasons: dict[str, TouSeason]
    source: str = Field(min_length=1)

    def calendar(self) -> TouCalendar:
        seasons = tuple(Season.from_hours(n, s.months, s.hours) for n, s in self.seasons.items())
        prices = {(n, p): v for n, s in self.seasons.items() for p, v in s.prices.items()}
        return TouCalendar(seasons, prices)

    @model_validator(mode="after")
    def _valid(self) -> TouConfig:
        self.calendar()
        return self


class SiteConfig(_Model):
    id: Id
    timezone: str = "Asia/Shanghai"
    grid_factor: GridFactorRef = Field(description="series AND year (and region)")
    hourly_grid_factor: HourlyGridFactor | None = Field(
        default=None, description="overrides grid_factor for the hours the series covers"
    )
    market_based: MarketBased | None = None
    co2_factors: dict[Carrier, Sourced] = Field(
        default_factory=dict,
        description="kgCO2 per native unit for carriers the fuel table lacks (steam, hot water)",
    )
    scopes: dict[Carrier, Scope] = Field(
        default_factory=dict,
        description="scope per carrier where it differs from CARRIER_SCOPE (own steam: 1)",
    )
    lines: tuple[LineConfig, ...] = ()
    meters: tuple[MeterConfig, ...]
    shifts: tuple[ShiftConfig, ...] = ()
    targets: TargetSettings = TargetSettings()
    tou: TouConfig | None = None
    value_added: dict[str, float] = Field(
        default_factory=dict, description="CNY per month 'YYYY-MM' (the MES may send it too)"
    )
    energy_baselines: tuple[EnergyBaseline, ...] = Field(
        default=(), description="ISO 50006 baselines: energy regressed on output, degree days"
    )
    degree_days: DegreeDays | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            # OSError: a key naming a folder of the zone database ('America'), or too long.
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("value_added")
    @classmethod
    def _months(cls, value: dict[str, float]) -> dict[str, float]:
        for month, cny in value.items():
            if not _MONTH_RE.match(month) or not cny > 0:
                raise ValueError(f"{month}: give 'YYYY-MM': positive CNY")
        return value

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @property
    def shift_list(self) -> tuple[Shift, ...]:
        return tuple(Shift(s.name, s.start, s.end) for s in self.shifts)

    def meter(self, meter_id: str) -> MeterConfig:
        return next(m for m in self.meters if m.id == meter_id)

    def scope(self, carrier: Carrier) -> Scope:
        """The emission scope of a carrier's CO2 at this site."""
        return self.scopes.get(carrier, CARRIER_SCOPE[carrier])

    def line(self, line_id: str) -> LineConfig:
        return next(x for x in self.lines if x.id == line_id)

    def line_meters(self, line_id: str) -> list[MeterConfig]:
        return [m for m in self.meters if m.line == line_id]

    def boundary_meters(self) -> list[MeterConfig]:
        return [m for m in self.meters if m.role is Role.BOUNDARY]

    @model_validator(mode="after")
    def _check(self) -> SiteConfig:
        ids = [m.id for m in self.meters]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"meters named twice: {dupes}")
        lines = {x.id for x in self.lines}
        for m in self.meters:
            if m.line is not None and m.line not in lines:
                raise ValueError(f"meter {m.id}: no line {m.line!r}; lines: {sorted(lines)}")
            for part in (*m.plus, *m.minus):
                if part not in ids or self.meter(part).virtual:
                    raise ValueError(f"virtual meter {m.id}: {part!r} is not a real meter here")
                if self.meter(part).carrier is not m.carrier:
                    raise ValueError(f"virtual meter {m.id}: {part!r} measures another carrier")
        for x in self.lines:
            if isinstance(x.output, OutputFromMeter) and x.output.meter in ids:
                raise ValueError(f"line {x.id}: output meter {x.output.meter!r} is an energy meter")
        for carrier, scope in self.scopes.items():
            if carrier not in ADJUSTABLE_SCOPE and scope != CARRIER_SCOPE[carrier]:
                raise ValueError(
                    f"scopes.{carrier.value}: always scope {CARRIER_SCOPE[carrier]} "
                    f"(only {sorted(c.value for c in ADJUSTABLE_SCOPE)} depend on the site)"
                )
        if self.shifts:
            self.shift_list  # noqa: B018 - build them once here to fail early
        check_baselines(
            self.energy_baselines, {x.id: x.output_unit for x in self.lines}, self.degree_days
        )
        return self


class ConversionConfig(_Model):
    basis: CoalBasis = Field(
        default=CoalBasis.EQUIVALENT, description="equivalent (0.1229 kgce/kWh) or equal"
    )
    electricity_equal_value: Sourced | None = Field(
        default=None, description="kgce/kWh, the year's thermal-power supply coal rate"
    )
    coefficients: dict[Carrier, Sourced] = Field(default_factory=dict)
    measured_lhv: dict[Carrier, Sourced] = Field(default_factory=dict)

    def settings(self) -> ConversionSettings:
        return ConversionSettings(
            basis=self.basis,
            electricity_equal_value=self.electricity_equal_value.configured()
            if self.electricity_equal_value
            else None,
            measured_lhv={_coal_key(c): s.configured() for c, s in self.measured_lhv.items()},
            coefficients={_coal_key(c): s.configured() for c, s in self.coefficients.items()},
        )


def _coal_key(carrier: Carrier) -> str:
    return CARRIERS[carrier][2] or carrier.value


class AccountingConfig(_Model):
    conversion: ConversionConfig = ConversionConfig()
    sites: tuple[SiteConfig, ...] = Field(min_length=1)
    interval: float = Field(
        default=1.0, gt=0, le=60, description="seconds between accounting passes"
    )
    intensity_interval: float = Field(
        default=60.0, gt=0, le=3600, description="seconds between intensity evaluations"
    )
    settle: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="seconds after a minute ends before its energy_interval is written",
    )
    keep_readings_days: float = Field(
        default=400.0,
        ge=1,
        description="days the accounting keeps the counter readings it used, so late ones "
        "can be placed among them; a reading older than that is refused",
    )

    def site(self, site_id: str) -> SiteConfig | None:
        return next((s for s in self.sites if s.id == site_id), None)

    @cached_property
    def conversion_settings(self) -> ConversionSettings:
        return self.conversion.settings()

    @model_validator(mode="after")
    def _resolve(self) -> AccountingConfig:
        """Every coefficient, factor and benchmark must exist now, not in a report."""
        ids = [s.id for s in self.sites]
        if len(set(ids)) != len(ids):
            raise ValueError("sites named twice")
        settings = self.conversion.settings()
        for site in self.sites:
            site.grid_factor.resolve()
            if site.market_based is not None:
                site.market_based.residual.resolve()
            for m in site.meters:
                try:
                    coefficient(_coal_key(m.carrier), data.coal_table(), settings)
                except MissingCoefficient as exc:
                    raise ValueError(f"site {site.id} meter {m.id}: {exc}") from None
                co2_route(site, m.carrier)
            for x in site.lines:
                for judged in line_indicators(x):
                    if judged.unit.split("/", 1)[1] != x.output_unit:
                        raise ValueError(
                            f"line {x.id}: benchmark {judged.name} is per "
                            f"{judged.unit.split('/', 1)[1]}, the line's output per "
                            f"{x.output_unit}"
                        )
        return self


def co2_route(site: SiteConfig, carrier: Carrier) -> tuple[str, float | None, str]:
    """How CO2 of a carrier is computed: ('grid', None, label) for electricity,
    ('fuel', None, fuel key), ('configured', kgCO2 per unit, source); ValueError if none."""
    if carrier in site.co2_factors:
        f = site.co2_factors[carrier]
        return "configured", f.value, f.source
    if carrier is Carrier.ELECTRICITY:
        return "grid", None, site.grid_factor.resolve().label
    fuel = CARRIERS[carrier][3]
    if fuel is not None and fuel in data.fuel_factors().fuels:
        return "fuel", None, fuel
    raise ValueError(
        f"site {site.id}: no CO2 factor for {carrier.value}: configure co2_factors."
        f"{carrier.value} (kgCO2/{CARRIERS[carrier][0]}) with its source"
    )


def resolve_benchmark(line: LineConfig) -> Judged:
    """What the line's intensity (and its alerts) is judged against."""
    return resolve_ref(line.id, line.benchmark)


def line_indicators(line: LineConfig) -> list[Judged]:
    """Every indicator of a line: its benchmark first, then its further indicators."""
    return [resolve_ref(line.id, ref) for ref in (line.benchmark, *line.indicators)]


def resolve_ref(line_id: str, ref: BenchmarkRef) -> Judged:
    try:
        if ref.ndrc is not None:
            level: NdrcLevel = data.benchmarks().ndrc_level(ref.ndrc, ref.edition)
            return Judged(
                name=f"NDRC {level.product} ({level.edition})",
                unit=level.unit,
                benchmark=level.benchmark,
                baseline=level.baseline,
                source=level.source,
                confidence=level.confidence,
                kind="ndrc",
            )
        if ref.energy_limit is not None:
            limit: EnergyLimit = data.benchmarks().energy_limit(ref.energy_limit)
            return Judged(
                name=f"{limit.standard} {limit.product}",
                unit=limit.unit,
                benchmark=limit.grades[0],
                baseline=limit.grades[2],
                source=limit.source,
                confidence=limit.confidence,
                kind="energy_limit",
                grades=limit.grades,
            )
    except KeyError as exc:
        raise ValueError(f"line {line_id}: {exc.args[0]}") from None
    custom = ref.custom
    assert custom is not None
    return Judged(
        name=custom.name,
        unit=custom.unit,
        benchmark=custom.benchmark,
        baseline=custom.baseline,
        source=custom.source,
        confidence=Confidence.CONFIGURED,
        kind="custom",
    )


def energy_limit(judged: Judged) -> EnergyLimit:
    """The grades of an energy-limit indicator, to grade a value with."""
    if judged.kind != "energy_limit":
        raise ValueError(f"{judged.name} is not an energy-limit standard's grades")
    return EnergyLimit.model_validate(
        {
            "standard": judged.name,
            "product": judged.name,
            "unit": judged.unit,
            "grades": judged.grades,
            "source": judged.source,
            "confidence": judged.confidence,
        }
    )


MIN_OUTPUT_DEFAULT = 1.0


def min_output(line: LineConfig) -> dict[Window, float]:
    return {w: line.min_output.get(w, MIN_OUTPUT_DEFAULT) for w in Window}


def alert_duration(settings: AlertSettings) -> timedelta:
    return timedelta(seconds=settings.min_duration)
