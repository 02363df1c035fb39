"""The agent's config file: which site and agent this is, the broker, and the meters to poll."""

from __future__ import annotations

import importlib.util
import posixpath
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.profiles import Profile, ProfileError, load_profile
from greengauge.common.configfile import ConfigError, describe_errors, load_yaml

if TYPE_CHECKING:
    from agent.dlt645.profile import Dlt645Profile
from greengauge.common.broker import BrokerSettings
from greengauge.contract import Id, check_id


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parity(StrEnum):
    NONE = "none"
    EVEN = "even"
    ODD = "odd"


class Framer(StrEnum):
    """How requests are framed on a TCP connection."""

    TCP = "tcp"
    """Modbus TCP (MBAP header): meters and gateways that speak Modbus TCP."""
    RTU = "rtu"
    """RTU frames (with CRC) over TCP: transparent serial-to-Ethernet converters."""


class SerialSettings(_Config):
    """An RS-485/RS-232 line; every meter naming the same device shares it."""

    device: str = Field(min_length=1, description="e.g. /dev/ttyUSB0 or /dev/serial/by-id/...")
    baud: int = Field(default=9600, ge=300, le=921_600)
    parity: Parity = Parity.NONE
    # Ranges, not Literal[7, 8]: a literal refuses the text "8" of `${DATA_BITS}`.
    data_bits: int = Field(default=8, ge=7, le=8)
    stop_bits: int = Field(default=1, ge=1, le=2)
    inter_frame_delay: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="seconds of silence between frames; default 3.5 characters at the baud",
    )

    @property
    def silence(self) -> float:
        """The pause the bus keeps between one reply and the next request, in seconds."""
        if self.inter_frame_delay is not None:
            return self.inter_frame_delay
        bits = 1 + self.data_bits + (self.parity is not Parity.NONE) + self.stop_bits
        # The RTU specification fixes 1.75 ms above 19200 baud.
        return max(3.5 * bits / self.baud, 0.00175)


BusKey = tuple[str, ...]
"""("serial", device) or ("tcp", host, port): meters with one key share one bus."""


class ModbusSettings(_Config):
    """Where a meter is: `host` (+ `port`, `framer`) for TCP, or `serial` for an RTU line."""

    host: str | None = Field(default=None, min_length=1, description="meter or gateway")
    port: int = Field(default=502, ge=1, le=65535)
    framer: Framer = Field(default=Framer.TCP, description="tcp, or rtu over TCP")
    serial: SerialSettings | None = None
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id")
    timeout: float = Field(default=1.0, gt=0, le=60, description="seconds per request")
    retries: int = Field(
        default=0, ge=0, le=10, description="requests repeated after a timeout before giving up"
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.host is None) == (self.serial is None):
            raise ValueError("give either host (Modbus TCP, RTU over TCP) or serial, not both")
        if self.serial is not None:
            tcp_only = sorted({"port", "framer"} & self.model_fields_set)
            if tcp_only:
                raise ValueError(f"{', '.join(tcp_only)}: only for host, not with serial")
            if not 1 <= self.unit_id <= 247:
                raise ValueError(f"unit_id {self.unit_id}: a serial line has units 1..247")
        return self

    @property
    def bus_key(self) -> BusKey:
        return _bus_key(self.serial, self.host, self.port)

    @property
    def bus_name(self) -> str:
        """The bus as logs name it: the serial device, or host:port."""
        if self.serial is not None:
            return self.serial.device
        return f"{self.host}:{self.port}"

    def bus_settings(self) -> SerialSettings | Framer:
        """What every meter on this bus must agree on."""
        return self.serial if self.serial is not None else self.framer


ModbusTcpSettings = ModbusSettings
"""The name of the TCP-only settings before serial lines; kept for imports."""


class Dlt645Settings(_Config):
    """A DL/T 645-2007 meter: its address, on a `serial` line or behind a TCP transparent
    gateway (`host` + `port`). Meters on one line take turns, as Modbus meters do."""

    address: str = Field(
        pattern=r"^[0-9]{12}$",
        description="the 12-digit meter address on its nameplate (energy-agent dlt645-address "
        "reads it from the only meter on a line)",
    )
    host: str | None = Field(default=None, min_length=1, description="TCP transparent gateway")
    port: int | None = Field(default=None, ge=1, le=65535, description="the gateway's port")
    serial: SerialSettings | None = Field(
        default=None, description="most DL/T 645 meters ship at baud 2400, parity even"
    )
    timeout: float = Field(default=1.0, gt=0, le=60, description="seconds per request")
    retries: int = Field(
        default=0, ge=0, le=10, description="requests repeated after a timeout before giving up"
    )
    wake_up: bool = Field(default=True, description="send FE FE FE FE before each request")

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.host is None) == (self.serial is None):
            raise ValueError("give either host and port (a TCP gateway) or serial, not both")
        if self.host is not None and self.port is None:
            raise ValueError("port: a TCP gateway needs its port")
        if self.serial is not None and self.port is not None:
            raise ValueError("port: only for host, not with serial")
        return self

    @property
    def bus_key(self) -> BusKey:
        return _bus_key(self.serial, self.host, self.port)

    @property
    def bus_name(self) -> str:
        return self.serial.device if self.serial is not None else f"{self.host}:{self.port}"


def _bus_key(serial: SerialSettings | None, host: str | None, port: int | None) -> BusKey:
    if serial is not None:
        return ("serial", posixpath.normpath(serial.device))
    assert host is not None
    return ("tcp", host.lower(), str(port))


class MeterSettings(_Config):
    id: Id
    profile: str = Field(min_length=1, description="built-in profile name or a profile file")
    modbus: ModbusSettings | None = Field(default=None, description="a Modbus meter")
    dlt645: Dlt645Settings | None = Field(default=None, description="a DL/T 645-2007 meter")
    interval: float = Field(default=1.0, ge=0.1, le=86400, description="seconds between reads")

    @model_validator(mode="after")
    def _one_protocol(self) -> Self:
        if (self.modbus is None) == (self.dlt645 is None):
            raise ValueError("give either modbus or dlt645: how the meter is reached")
        return self

    @property
    def link(self) -> ModbusSettings | Dlt645Settings:
        """The meter's protocol settings, whichever it speaks."""
        link = self.modbus or self.dlt645
        assert link is not None  # one of them, by _one_protocol
        return link


class OutboxSettings(_Config):
    """The disk outbox: every batch waits here until the broker acknowledged it."""

    max_batches: int = Field(
        default=500_000, ge=1, description="oldest batches are dropped beyond this many"
    )
    max_megabytes: float = Field(
        default=512.0, gt=0, description="oldest batches are dropped beyond this much payload"
    )
    max_age: float = Field(
        default=30 * 86400.0, gt=0, description="seconds; older batches are dropped"
    )
    drain_rate: float = Field(
        default=50.0,
        gt=0,
        description="backlog batches per second sent beside the live ones after an outage",
    )


class MetricsSettings(_Config):
    """Prometheus metrics over HTTP: off unless `listen` is given."""

    listen: str | None = Field(
        default=None,
        pattern=r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):[0-9]{1,5}$",
        description="host:port for /metrics, e.g. 127.0.0.1:9108; leave out for none",
    )


def _default_agent_id() -> str:
    name = socket.gethostname().split(".")[0] or "agent"
    try:
        return check_id(name)
    except ValueError:
        return "agent"


class EventLoop(StrEnum):
    """Which event loop runs the agent."""

    ASYNCIO = "asyncio"
    """Python's own: nothing more to install."""
    UVLOOP = "uvloop"
    """uvloop (libuv), installed with the `uvloop` extra: less CPU a request (10-30 % more
    values per CPU second at 10-100 meters on the bench), 2.0-2.6 MiB more memory."""


class AgentConfig(_Config):
    site: Id
    agent_id: Id = Field(default_factory=_default_agent_id, description="defaults to the host name")
    mqtt: BrokerSettings
    meters: list[MeterSettings] = Field(min_length=1)
    state_dir: Path = Field(
        default=Path("var/agent"),
        description="the outbox and the stats file; relative to the config file's folder",
    )
    outbox: OutboxSettings = OutboxSettings()
    status_interval: float = Field(
        default=30.0, ge=1, le=3600, description="seconds between status messages and stats"
    )
    metrics: MetricsSettings = MetricsSettings()
    event_loop: EventLoop = Field(
        default=EventLoop.ASYNCIO,
        description="asyncio, or uvloop: less CPU, more memory (pip install greengauge[uvloop])",
    )


@dataclass(frozen=True)
class AgentSetup:
    """A validated config with the profile of every meter loaded."""

    config: AgentConfig
    profiles: dict[str, Profile]
    """meter id -> its profile (Modbus meters)"""
    dlt645_profiles: dict[str, Dlt645Profile] = field(default_factory=dict)
    """meter id -> its profile (DL/T 645 meters)"""


def load_config(path: Path) -> AgentSetup:
    """Read and check an agent config and every profile it references.

    One ConfigError names every problem: the file's own (types, ranges, unknown fields)
    and those across meters (`meter_problems`, profiles), the latter for every meter
    that is valid by itself even when others, or other settings, are not.
    """
    data, lines = load_yaml(path)
    problems: list[str] = []
    config: AgentConfig | None = None
    try:
        config = AgentConfig.model_validate(data, context={"config_dir": path.parent})
    except ValidationError as exc:
        problems += describe_errors(exc, str(path), lines)
    meters = list(enumerate(config.meters)) if config is not None else _valid_meters(data)
    profiles: dict[str, Profile] = {}
    dlt645_profiles: dict[str, Dlt645Profile] = {}
    # Loaded once per name: a gateway's hundreds of meters of one model share one profile.
    loaded: dict[str, Profile] = {}
    loaded_645: dict[str, Dlt645Profile] = {}
    for index, meter in meters:
        try:
            if meter.dlt645 is not None:
                from agent.dlt645.profile import load_dlt645_profile  # noqa: PLC0415

                if meter.profile not in loaded_645:
                    loaded_645[meter.profile] = load_dlt645_profile(meter.profile, path.parent)
                dlt645_profiles[meter.id] = loaded_645[meter.profile]
                continue
            if meter.profile not in loaded:
                loaded[meter.profile] = load_profile(meter.profile, path.parent)
            profiles[meter.id] = loaded[meter.profile]
        except ProfileError as exc:
            line = lines.get(("meters", index, "profile"), 1)
            problems += [f"{path}:{line}: meters.{index}.profile: {p}" for p in exc.problems]
    for index, where, problem in meter_problems(meters):
        loc: tuple[str | int, ...] = ("meters", index, *where)
        # A serial line's settings differ in its `serial` mapping: point there.
        line = lines.get((*loc, "serial"), lines.get(loc, lines.get(("meters", index), 1)))
        problems.append(f"{path}:{line}: {'.'.join(str(p) for p in loc)}: {problem}")
    if (
        config is not None
        and config.event_loop is EventLoop.UVLOOP
        and importlib.util.find_spec("uvloop") is None
    ):
        problems.append(
            f"{path}:{lines.get(('event_loop',), 1)}: event_loop: uvloop is not installed "
            "(pip install 'greengauge[uvloop]', or Debian's python3-uvloop)"
        )
    if problems:
        raise ConfigError(problems)
    assert config is not None
    if not config.state_dir.is_absolute():
        config = config.model_copy(update={"state_dir": (path.parent / config.state_dir).resolve()})
    return AgentSetup(config, profiles, dlt645_profiles)


def _valid_meters(data: object) -> list[tuple[int, MeterSettings]]:
    """The meters of a config that is not valid as a whole that are valid by themselves."""
    items = data.get("meters") if isinstance(data, dict) else None
    valid: list[tuple[int, MeterSettings]] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        try:
            valid.append((index, MeterSettings.model_validate(item)))
        except ValidationError:
            continue  # AgentConfig's own errors name what is wrong with it
    return valid


def meter_problems(
    meters: Sequence[tuple[int, MeterSettings]],
) -> list[tuple[int, tuple[str, ...], str]]:
    """(meter index, field, problem) for everything wrong across meters: an id used twice,
    two meters at one unit id of one bus, a bus set up two ways (`bus_conflicts`)."""
    problems: list[tuple[int, tuple[str, ...], str]] = []
    ids: dict[str, int] = {}
    units: dict[tuple[BusKey, int | str], tuple[int, MeterSettings]] = {}
    for index, meter in meters:
        if meter.id in ids:
            problems.append(
                (
                    index,
                    ("id",),
                    f"meter id {meter.id!r} is already meters.{ids[meter.id]}'s; "
                    "meter ids must be unique",
                )
            )
        else:
            ids[meter.id] = index
        device: int | str
        if meter.modbus is not None:
            where, name, device = ("modbus", "unit_id"), "unit id", meter.modbus.unit_id
            shown = f"unit {device}"
        else:
            assert meter.dlt645 is not None
            where, name, device = ("dlt645", "address"), "address", meter.dlt645.address
            shown = f"address {device}"
        unit = (meter.link.bus_key, device)
        if unit in units:
            first, other = units[unit]
            problems.append(
                (
                    index,
                    where,
                    f"meter {meter.id!r} and meter {other.id!r} (meters.{first}) are both "
                    f"{shown} on {meter.link.bus_name}: one device answers for both; give "
                    f"each meter its own {name}",
                )
            )
        else:
            units[unit] = (index, meter)
    problems += [(i, (_section(meters, i),), problem) for i, problem in bus_conflicts(meters)]
    return sorted(problems, key=lambda p: p[0])


def bus_conflicts(meters: Sequence[tuple[int, MeterSettings]]) -> list[tuple[int, str]]:
    """(meter index, problem) for each meter that shares a bus with an earlier meter but
    sets it up differently (baud, parity, ... of one serial device; the framer of one host;
    the protocol: a line speaks one)."""
    first: dict[BusKey, tuple[int, MeterSettings]] = {}
    problems: list[tuple[int, str]] = []
    for index, meter in meters:
        key = meter.link.bus_key
        if key not in first:
            first[key] = (index, meter)
            continue
        at, other = first[key]
        difference = _setup_difference(other, meter)
        if difference is not None:
            problems.append(
                (
                    index,
                    f"meter {meter.id!r} and meter {other.id!r} (meters.{at}) share "
                    f"{meter.link.bus_name} but set it up differently: {difference}",
                )
            )
    return problems


def _section(meters: Sequence[tuple[int, MeterSettings]], index: int) -> str:
    meter = dict(meters)[index]
    return "modbus" if meter.modbus is not None else "dlt645"


def _setup_difference(one: MeterSettings, two: MeterSettings) -> str | None:
    if one.modbus is not None and two.modbus is not None:
        if one.modbus.bus_settings() == two.modbus.bus_settings():
            return None
        return f"{_difference(one.modbus, two.modbus)}; meters on one bus must agree"
    if one.dlt645 is not None and two.dlt645 is not None:
        a, b = one.dlt645.serial, two.dlt645.serial
        if a is None or b is None or a == b:
            return None
        left, right = a.model_dump(), b.model_dump()
        differences = ", ".join(f"{k} {left[k]} vs {right[k]}" for k in left if left[k] != right[k])
        return f"{differences}; meters on one bus must agree"
    return f"protocol {_protocol(one)} vs {_protocol(two)}; a line speaks one protocol"


def _protocol(meter: MeterSettings) -> str:
    return "Modbus" if meter.modbus is not None else "DL/T 645"


def _difference(one: ModbusSettings, two: ModbusSettings) -> str:
    a, b = one.bus_settings(), two.bus_settings()
    if isinstance(a, SerialSettings) and isinstance(b, SerialSettings):
        left, right = a.model_dump(), b.model_dump()
        return ", ".join(f"{k} {left[k]} vs {right[k]}" for k in left if left[k] != right[k])
    return (
        f"framer {one.framer.value if one.host else 'serial'} vs "
        f"{two.framer.value if two.host else 'serial'}"
    )
