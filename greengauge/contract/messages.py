"""What an agent publishes: reading batches and its status.

Names here are a public contract: extend them, never rename them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from greengauge.contract.fields import (
    MAX_ERROR_KINDS,
    MAX_SEQ,
    SCHEMA_VERSION,
    Count,
    Id,
    Timestamp,
    Value,
    WireModel,
)
from greengauge.contract.quantities import (
    CUSTOM_PREFIX,
    MAX_CUSTOM,
    CustomName,
    Kind,
    Quantity,
    QuantityName,
    Unit,
)


class CustomValue(WireModel):
    """A user-named quantity's value, with the unit and kind the profile gave it."""

    value: Value
    unit: Unit
    kind: Kind = Kind.INSTANTANEOUS


def _empty(custom: dict[str, CustomValue]) -> bool:
    return not custom


class MeterReading(WireModel):
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
        # A field-level check, not a model serializer wrapped around every reading: the
        # wrapper cost a third of a reading's JSON (the agent writes 500 readings a second).
        exclude_if=_empty,
    )

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


class ReadingBatch(WireModel):
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


class MeterHealth(WireModel):
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


class OutboxHealth(WireModel):
    """The agent's store-and-forward backlog."""

    depth: Count = Field(description="batches waiting to be acknowledged by the broker")
    oldest: Timestamp | None = Field(
        default=None, description="when the oldest waiting batch was made"
    )
    dropped: Count = Field(
        default=0, description="oldest batches dropped because the outbox was full"
    )


class AgentStatus(WireModel):
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
