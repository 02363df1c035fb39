"""The wire contract between the edge agent and the collector.

This module is the only code the collector imports from the agent package: message
models, the topic layout and the canonical quantity names with their units. It imports
nothing but pydantic, so the collector does not pull in Modbus or anything else of the
agent. Names and units here are a public contract: extend them, never rename them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

SCHEMA_VERSION: Final = 1
TOPIC_ROOT: Final = "greengauge/v1"

# Backslashes are refused too: InfluxDB 2 does not unescape them in tag values.
_ID_RE = re.compile(r"^[^/+#\\\s\x00-\x1f\x7f]{1,64}$")
_ID_RULE: Final = "1 to 64 characters, no '/', '+', '#', '\\', whitespace or control characters"
_BAD_ID_CHAR = re.compile(r"[/+#\\\s\x00-\x1f\x7f]")


def check_id(value: str) -> str:
    """Reject ids that would break the topic layout (MQTT wildcards, separators, spaces).

    The reason names what is wrong but never the value: a secret pasted into an id field
    would otherwise end up in error messages and logs.
    """
    if not _ID_RE.fullmatch(value):
        bad = _BAD_ID_CHAR.search(value)
        if bad is not None:
            what = f"{bad.group()!r} at character {bad.start() + 1}"
        else:
            what = f"{len(value)} characters" if value else "empty"
        raise ValueError(f"invalid id ({what}): {_ID_RULE}")
    return value


Id = Annotated[str, AfterValidator(check_id)]


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


def _utc_millis(value: datetime) -> str:
    """Serialise a read time as ISO 8601 in UTC with millisecond precision and a 'Z'."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_utc(value: datetime) -> datetime:
    # Milliseconds are the wire's precision; truncating here keeps a model equal to its round trip.
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        # "0001-01-01T00:00:00+01:00" is valid ISO 8601 but before year 1 in UTC: a
        # ValueError makes it a validation error naming the field, not a crash.
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None
    return utc.replace(microsecond=value.microsecond // 1000 * 1000)


Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(_utc_millis, return_type=str, when_used="json"),
]
"""A timezone-aware instant; naive times are refused because a plant's clock zone is unknowable."""

Value = Annotated[float, Field(allow_inf_nan=False)]

MAX_SEQ: Final = 2**64 - 1
"""Sequence numbers are 64-bit unsigned: bigger ones would only break gap arithmetic."""
MAX_COUNT: Final = 2**63 - 1
"""Counts in status messages fit a signed 64-bit integer (SQLite, Prometheus, JSON readers)."""
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
MAX_ERROR_KINDS: Final = 64
"""Kinds of error one meter's health may name: the agent has a handful."""
MAX_QUANTITY: Final = 1e12
"""Largest production output one MES report may carry: sums over years stay exact enough."""
MAX_CNY: Final = 1e15
"""Largest monthly value added (CNY): far above any plant, far below float overflow."""


class _WireModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CustomValue(_WireModel):
    """A user-named quantity's value, with the unit and kind the profile gave it."""

    value: Value
    unit: Unit
    kind: Kind = Kind.INSTANTANEOUS


class MeterReading(_WireModel):
    """What one read of one meter gave: values keyed by canonical quantity, and values of
    user-named quantities (`custom`) with their units.

    `custom` is left out of the JSON when empty, so collectors that predate it accept
    every message without user-named quantities; they refuse the others (extra field).
    A reading needs at least one value of either kind: ReadingBatch checks it (one call
    per batch: a validator per reading would double the collector's parsing time)."""

    meter: Id
    ts: Timestamp = Field(description="when the meter was read (UTC)")
    values: dict[Quantity, Value] = Field(default_factory=dict)
    custom: dict[CustomName, CustomValue] = Field(
        default_factory=dict,
        max_length=MAX_CUSTOM,
        description=f"user-named quantities ({CUSTOM_PREFIX}...), each with its unit and kind",
    )

    @model_serializer(mode="wrap")
    def _omit_empty_custom(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        if not self.custom:
            data.pop("custom", None)
        return data

    @classmethod
    def of(
        cls,
        meter: str,
        ts: datetime,
        values: Mapping[QuantityName, float],
        custom: Mapping[str, tuple[str, Kind]],
    ) -> MeterReading:
        """A reading from one read's values, canonical and user-named together; `custom`
        gives each user-named quantity's unit and kind (from the profile)."""
        canonical: dict[Quantity, float] = {}
        named: dict[str, CustomValue] = {}
        for name, value in values.items():
            if isinstance(name, Quantity):
                canonical[name] = value
            else:
                unit, kind = custom[name]
                named[name] = CustomValue(value=value, unit=unit, kind=kind)
        return cls(meter=meter, ts=ts, values=canonical, custom=named)

    def items(self) -> Iterator[tuple[str, float]]:
        """Every value, canonical and user-named, by its name (as stores key them)."""
        for quantity, value in self.values.items():
            yield quantity.value, value
        for name, custom in self.custom.items():
            yield name, custom.value

    @property
    def size(self) -> int:
        """How many values the reading holds, canonical and user-named."""
        return len(self.values) + len(self.custom)


class ReadingBatch(_WireModel):
    """One message on the readings topic: the readings an agent took since its last message."""

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Id
    agent: Id
    seq: int = Field(
        ge=0,
        le=MAX_SEQ,
        description="per-agent sequence number, one more than the previous message",
    )
    readings: list[MeterReading] = Field(min_length=1)

    @field_validator("readings")
    @classmethod
    def _some_value(cls, readings: list[MeterReading]) -> list[MeterReading]:
        for index, reading in enumerate(readings):
            if not reading.values and not reading.custom:
                raise ValueError(f"readings[{index}] has no value (values or custom)")
        return readings


class AgentState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class MeterState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class MeterHealth(_WireModel):
    """How one meter answers its agent."""

    state: MeterState
    last_read: Timestamp | None = Field(default=None, description="last read that gave values")
    reads: Count = Field(default=0, description="reads that gave values since start")
    errors: dict[Annotated[str, Field(max_length=64)], Count] = Field(
        default_factory=dict,
        max_length=MAX_ERROR_KINDS,
        description="failed reads and dropped values since start, by kind",
    )
    excluded: int = Field(
        default=0,
        ge=0,
        description="registers left out of reads now because the meter refuses them "
        "(asked for again on a backoff)",
    )


class OutboxHealth(_WireModel):
    """The agent's store-and-forward backlog."""

    depth: Count = Field(description="batches waiting to be acknowledged by the broker")
    oldest: Timestamp | None = Field(
        default=None, description="when the oldest waiting batch was made"
    )
    dropped: Count = Field(
        default=0, description="oldest batches dropped because the outbox was full"
    )


class AgentStatus(_WireModel):
    """Retained on the status topic: the birth message on connect, the last will when lost,
    and updates while online with each meter's health and the outbox backlog.

    The last will is made when the connection opens, so its `ts` is older than the updates
    sent after it; `connected` says which connection a status belongs to (see `newer`)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Id
    agent: Id
    state: AgentState
    ts: Timestamp
    meters: dict[Id, MeterHealth] = Field(default_factory=dict)
    outbox: OutboxHealth | None = None
    connected: Timestamp | None = Field(
        default=None,
        description="when the agent's broker connection began: the same in every status of "
        "one connection, its last will included (absent from agents before it was added)",
    )

    def newer(self, other: AgentStatus) -> bool:
        """Whether this status is later than `other` from the same agent: a later connection
        is; within one connection, the end (offline: the last will) is later than any
        update, whatever its ts; otherwise the later ts is."""
        return self._order() > other._order()

    def _order(self) -> tuple[datetime, bool, datetime]:
        # Without `connected` (an older agent) each status counts as its own connection,
        # so the order is by ts alone, as before.
        return (self.connected or self.ts, self.state is AgentState.OFFLINE, self.ts)


class Topic(StrEnum):
    READINGS = "readings"
    STATUS = "status"


def topic(site: str, agent: str, kind: Topic) -> str:
    """The topic an agent publishes one kind of message on."""
    return f"{TOPIC_ROOT}/{check_id(site)}/{check_id(agent)}/{kind.value}"


def subscription(kind: Topic, site: str = "+", agent: str = "+") -> str:
    """A subscription filter for one kind of message, by default from every site and agent."""
    return f"{TOPIC_ROOT}/{site}/{agent}/{kind.value}"


class TopicError(ValueError):
    """A topic that is not part of the layout."""


def parse_topic(name: str) -> tuple[str, str, Topic]:
    """Split an agent topic into (site, agent, kind); raise TopicError when it does not fit."""
    parts = name.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise TopicError(f"topic {name!r} is not {TOPIC_ROOT}/{{site}}/{{agent}}/{{kind}}")
    try:
        kind = Topic(parts[4])
        return check_id(parts[2]), check_id(parts[3]), kind
    except ValueError as exc:
        raise TopicError(f"topic {name!r}: {exc}") from exc


class BrokerSettings(BaseModel):
    """How both sides reach the MQTT broker: `mqtt://host:port` or `mqtts://host:port` (TLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="mqtt://host[:1883] or mqtts://host[:8883]")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="use ${ENV_VAR}, never a literal")
    client_id: Id | None = Field(default=None, description="defaults to a name built from the ids")
    keepalive: int = Field(default=30, ge=5, le=3600, description="seconds")
    # TLS files, for mqtts:// only; without ca_file the system's trusted CAs are used.
    ca_file: str | None = Field(default=None, description="CA certificate(s) to trust (PEM)")
    cert_file: str | None = Field(default=None, description="client certificate (PEM)")
    key_file: str | None = Field(default=None, description="the client certificate's key (PEM)")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # The reasons never quote the URL: it may hold a password pasted into it.
        try:
            parsed = urlsplit(value)
            port = parsed.port
        except ValueError:
            raise ValueError(
                "not a URL of the form mqtt://host[:port] (the port must be 1 to 65535)"
            ) from None
        if parsed.scheme not in ("mqtt", "mqtts"):
            raise ValueError("the scheme must be mqtt:// or mqtts://")
        if "@" in parsed.netloc:
            raise ValueError("put credentials in username / password, not in the URL")
        if not parsed.hostname:
            raise ValueError("no host name")
        if parsed.query or parsed.fragment or parsed.path not in ("", "/"):
            raise ValueError("a broker URL has no path, query or fragment ('/', '?', '#')")
        if port == 0:
            raise ValueError("port 0 is not a broker port")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


# --- site-level topics: alerts from the collector, production data from the MES ---------


def alerts_topic(site: str) -> str:
    """Where the collector publishes a site's intensity alerts (QoS 1, not retained)."""
    return f"{TOPIC_ROOT}/{check_id(site)}/alerts"


def production_topic(site: str) -> str:
    """Where a MES publishes a site's production output and monthly value added."""
    return f"{TOPIC_ROOT}/{check_id(site)}/production"


class AlertKind(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class Alert(_WireModel):
    """A line's intensity went above its threshold (the benchmark's baseline), or back."""

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Id
    line: Id
    id: int = Field(ge=0, description="the collector's alert id (its accounting database)")
    kind: AlertKind
    ts: Timestamp = Field(description="when the condition had lasted the minimum duration")
    since: Timestamp = Field(description="when the condition began")
    value: Value = Field(description="the intensity at ts")
    threshold: Value
    unit: str = Field(description="the intensity's unit, e.g. kgce/t")
    window: str = Field(description="the window the intensity is taken over, e.g. rolling_1h")
    benchmark: str = Field(description="the benchmark entry the line is judged against")


class ProductionOutput(_WireModel):
    """Output of a line over [start, end), as the MES reports it; the same report sent
    again (same line, start, end) replaces the earlier one."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["output"] = "output"
    site: Id
    line: Id
    start: Timestamp
    end: Timestamp
    quantity: Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False)]
    unit: str = Field(min_length=1, description="must be the line's configured output unit")


class ValueAdded(_WireModel):
    """A site's value added (CNY) for one calendar month, as the MES or ERP reports it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["value_added"] = "value_added"
    site: Id
    month: str = Field(pattern=r"^[1-9]\d{3}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    cny: Annotated[float, Field(gt=0, le=MAX_CNY, allow_inf_nan=False)]
