"""`alert_rules:` in the collector config: meters and agents offline, agents' outboxes
backing up, thresholds on any quantity (or on the 15-minute demand as it is heading)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from collector.accounting.core.conditions import Condition, Direction, offline
from collector.notify.events import Severity
from collector.notify.settings import _Model

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class OfflineRule(_Model):
    after: float = Field(gt=0, le=30 * 86400, description="seconds without news, then raised")
    back_within: float | None = Field(
        default=None, gt=0, description="cleared once news is this fresh (default: after / 2)"
    )
    sites: list[str] = Field(default_factory=list, description="empty: every site")
    severity: Severity = Severity.CRITICAL

    @model_validator(mode="after")
    def _back(self) -> OfflineRule:
        if self.back_within is not None and self.back_within > self.after:
            raise ValueError("back_within must not be longer than after")
        return self

    def condition(self, name: str) -> Condition:
        back = None if self.back_within is None else timedelta(seconds=self.back_within)
        return offline(name, timedelta(seconds=self.after), back)


class _Levels(_Model):
    min_duration: float = Field(
        default=0, ge=0, le=86400, description="seconds the condition must last (either way)"
    )
    severity: Severity = Severity.WARNING


class OutboxRule(_Levels):
    measure: Literal["depth", "age"] = Field(
        default="depth", description="batches waiting, or seconds the oldest has waited"
    )
    raise_above: float = Field(ge=0)
    clear_at_or_below: float = Field(ge=0)
    sites: list[str] = Field(default_factory=list, description="empty: every site")

    @model_validator(mode="after")
    def _levels(self) -> OutboxRule:
        if self.clear_at_or_below > self.raise_above:
            raise ValueError("clear_at_or_below must not be above raise_above")
        return self

    def condition(self, name: str) -> Condition:
        return Condition(
            name,
            Direction.ABOVE,
            self.raise_above,
            self.clear_at_or_below,
            timedelta(seconds=self.min_duration),
        )


class ThresholdRule(_Levels):
    name: str = Field(pattern=_NAME, description="names the alert (unique)")
    site: str
    meter: str
    quantity: str | None = Field(
        default=None, description="a canonical quantity or a user-named one (custom_...)"
    )
    demand: bool = Field(
        default=False,
        description="instead of a quantity: the 15-minute demand (kW) the current window "
        "ends at if the present power holds, from the meter's energy_active_import and "
        "power_active; compare with the contracted maximum",
    )
    above: float | None = Field(default=None, description="raised above this")
    below: float | None = Field(default=None, description="raised below this")
    clear: float = Field(description="cleared at or beyond this, back on the normal side")
    stale_after: float = Field(
        default=300, gt=0, description="seconds: an older reading is not judged (unknown)"
    )

    @model_validator(mode="after")
    def _shape(self) -> ThresholdRule:
        if (self.quantity is None) == (not self.demand):
            raise ValueError("give either `quantity` or `demand: true`")
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` and `below`")
        self.condition()  # the levels' order, with the condition's own message
        return self

    def condition(self) -> Condition:
        if self.above is not None:
            direction, level = Direction.ABOVE, self.above
        else:
            assert self.below is not None
            direction, level = Direction.BELOW, self.below
        return Condition(
            self.name, direction, level, self.clear, timedelta(seconds=self.min_duration)
        )


class AlertRules(_Model):
    every: float = Field(default=10, gt=0, le=3600, description="seconds between checks")
    meters_offline: OfflineRule | None = Field(
        default=None, description="a meter whose latest reading is older than `after`"
    )
    agents_offline: OfflineRule | None = Field(
        default=None,
        description="a gateway (agent) whose status says offline, or whose latest status "
        "is older than `after` (keep it above the agents' status_interval, default 30 s)",
    )
    outbox: OutboxRule | None = Field(
        default=None, description="an agent's outbox (store-and-forward backlog) backing up"
    )
    thresholds: list[ThresholdRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AlertRules:
        names = [t.name for t in self.thresholds]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"thresholds: names used twice: {', '.join(twice)}")
        return self
