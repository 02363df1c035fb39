"""More alert kinds than a line above its baseline: a meter or agent offline, an agent's
outbox backing up, any quantity past a threshold (either way). Pure.

Each is a `Condition` on one number, fed to the same state machine as the intensity
alerts (core.alerts): raised once the number has been past `raise_at` for
`min_duration`, cleared once it has been back on the other side of `clear_at` (the
hysteresis band) for `min_duration`. A condition on "below" (a power factor under 0.9)
runs the machine on the negated number, so both directions share one proven machine.
The numbers: `age` (seconds since a meter or agent was last heard of), `outbox_backlog`
(batches waiting, or the age of the oldest), `projected_demand` (the 15-minute demand
the current window ends at if the present power holds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from collector.accounting.core.alerts import AlarmConfig, AlarmState, AlertEvent, advance


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True)
class Condition:
    name: str
    direction: Direction
    raise_at: float
    """Raised past this (strictly above, or strictly below)."""
    clear_at: float
    """Cleared at or on the near side of this: at or below for ABOVE, at or above for BELOW."""
    min_duration: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.direction is Direction.ABOVE and self.clear_at > self.raise_at:
            raise ValueError(f"{self.name}: the clear level must not be above the raise level")
        if self.direction is Direction.BELOW and self.clear_at < self.raise_at:
            raise ValueError(f"{self.name}: the clear level must not be below the raise level")
        if self.min_duration < timedelta(0):
            raise ValueError(f"{self.name}: min_duration must not be negative")

    @property
    def sign(self) -> float:
        """+1 or -1: the machine runs on the number times this."""
        return 1.0 if self.direction is Direction.ABOVE else -1.0

    def alarm(self) -> AlarmConfig:
        """The machine's config, on the number times the sign."""
        s = self.sign
        return AlarmConfig(self.name, s * self.raise_at, s * self.clear_at, self.min_duration)


def step(
    condition: Condition, state: AlarmState, ts: datetime, value: float | None
) -> tuple[AlarmState, tuple[AlertEvent, ...]]:
    """One observation (None: not known now, which breaks a pending change); events carry
    the number and the threshold as given, not negated."""
    s = condition.sign
    state, events = advance(condition.alarm(), state, ts, None if value is None else s * value)
    return state, tuple(replace(e, value=s * e.value, threshold=s * e.threshold) for e in events)


def run(
    condition: Condition,
    observations: Iterable[tuple[datetime, float | None]],
    state: AlarmState | None = None,
) -> tuple[AlarmState, list[AlertEvent]]:
    s = state or AlarmState()
    events: list[AlertEvent] = []
    for ts, value in observations:
        s, new = step(condition, s, ts, value)
        events.extend(new)
    return s, events


def offline(name: str, after: timedelta, back_within: timedelta | None = None) -> Condition:
    """Raised once nothing was heard for longer than `after`; cleared once heard of within
    `back_within` (default: half of `after`) of the observation. The age is the duration:
    no separate minimum."""
    back = back_within if back_within is not None else after / 2
    if back > after:
        raise ValueError(f"{name}: back_within must not be longer than after")
    return Condition(name, Direction.ABOVE, after.total_seconds(), back.total_seconds())


def age(last_heard: datetime | None, now: datetime) -> float | None:
    """Seconds since last heard of (never negative); None when never heard of."""
    if last_heard is None:
        return None
    return max(0.0, (now - last_heard).total_seconds())


def outbox_backlog(
    depth: int | None, oldest: datetime | None, now: datetime, by_age: bool
) -> float | None:
    """Batches waiting, or (by_age) seconds the oldest has waited (0 when none waits);
    None when the agent did not say."""
    if by_age:
        if oldest is None:
            return None if depth is None else 0.0
        return max(0.0, (now - oldest).total_seconds())
    return None if depth is None else float(depth)


def projected_demand(
    window_start: datetime,
    now: datetime,
    kwh_so_far: float,
    kw_now: float,
    window: timedelta = timedelta(minutes=15),
) -> float:
    """kW the demand window [window_start, +window) ends at if the present power holds:
    (energy so far + present power x time left) / window. What a demand controller
    compares with the contracted maximum, before the window is over."""
    if not window_start <= now <= window_start + window:
        raise ValueError("now must lie inside the window")
    left_h = (window_start + window - now).total_seconds() / 3600
    return (kwh_so_far + max(kw_now, 0.0) * left_h) / (window.total_seconds() / 3600)


def window_start(now: datetime, window: timedelta = timedelta(minutes=15)) -> datetime:
    """Start of the fixed demand window holding `now` (aligned to the epoch: to the quarter
    hour in every zone with a whole-quarter offset)."""
    seconds = window.total_seconds()
    return now - timedelta(seconds=now.timestamp() % seconds)


def energy_at(at: datetime, before: tuple[datetime, float], after: tuple[datetime, float]) -> float:
    """A counter's reading at `at`, interpolated linearly between two readings around it
    (the demand window's start falls between two reads)."""
    (t0, e0), (t1, e1) = before, after
    if not t0 <= at <= t1:
        raise ValueError("`at` must lie between the two readings")
    if t1 == t0:
        return e1
    return e0 + (e1 - e0) * ((at - t0) / (t1 - t0))
