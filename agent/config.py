"""The agent's config file: which site and agent this is, the broker, and the meters to poll."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.configfile import ConfigError, load_model
from agent.profiles import Profile, ProfileError, load_profile
from agent.wire import BrokerSettings, Id, check_id


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusTcpSettings(_Config):
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id")
    timeout: float = Field(default=1.0, gt=0, le=60, description="seconds per request")


class MeterSettings(_Config):
    id: Id
    profile: str = Field(min_length=1, description="built-in profile name or a profile file")
    modbus: ModbusTcpSettings
    interval: float = Field(default=1.0, ge=0.1, le=86400, description="seconds between reads")


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


def _default_agent_id() -> str:
    name = socket.gethostname().split(".")[0] or "agent"
    try:
        return check_id(name)
    except ValueError:
        return "agent"


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

    @field_validator("meters")
    @classmethod
    def _unique_meters(cls, meters: list[MeterSettings]) -> list[MeterSettings]:
        ids = [m.id for m in meters]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"meter ids must be unique: {', '.join(duplicates)} repeated")
        return meters


@dataclass(frozen=True)
class AgentSetup:
    """A validated config with the profile of every meter loaded."""

    config: AgentConfig
    profiles: dict[str, Profile]
    """meter id -> its profile"""


def load_config(path: Path) -> AgentSetup:
    """Read and check an agent config and every profile it references."""
    config, lines = load_model(path, AgentConfig)
    if not config.state_dir.is_absolute():
        config = config.model_copy(update={"state_dir": (path.parent / config.state_dir).resolve()})
    profiles: dict[str, Profile] = {}
    problems: list[str] = []
    for index, meter in enumerate(config.meters):
        try:
            profiles[meter.id] = load_profile(meter.profile, path.parent)
        except ProfileError as exc:
            line = lines.get(("meters", index, "profile"), 1)
            problems += [f"{path}:{line}: meters.{index}.profile: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return AgentSetup(config, profiles)
