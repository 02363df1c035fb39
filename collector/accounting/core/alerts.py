"""A line's intensity going above its baseline, or back: a pure state machine. Pure.

Fed with (time, intensity) it raises an alert once the intensity has stayed above
`raise_above` for at least `min_duration`, and clears it once the intensity has stayed
at or below `clear_at_or_below` (lower: the hysteresis band) for `min_duration`. A
window with insufficient output (None) breaks a pending change: the condition must be
seen continuously. Readings older than the last are ignored. The state is a frozen
value: store it, and feed it back with the next reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


@dataclass(frozen=True)
class AlarmConfig:
    line: str
    raise_above: float
    clear_at_or_below: float
    min_duration: timedelta

    def __post_init__(self) -> None:
        if self.clear_at_or_below > self.raise_above:
            raise ValueError("the clear level must not be above the raise level")
        if self.min_duration < timedelta(0):
            raise ValueError("min_duration must not be negative")

    @classmethod
    def from_baseline(
        cls, line: str, baseline: float, band: float, min_duration: timedelta
    ) -> AlarmConfig:
        """Raise above the baseline, clear at or below baseline - band (band in the
        intensity's unit, so negative baselines work too)."""
        if band < 0:
            raise ValueError("band must not be negative")
        return cls(line, baseline, baseline - band, min_duration)


class Phase(StrEnum):
    NORMAL = "normal"
    RISING = "rising"
    """Above the raise level, not yet for min_duration."""
    ACTIVE = "active"
    CLEARING = "clearing"
    """Alert active, at or below the clear level, not yet for min_duration."""


@dataclass(frozen=True)
class AlarmState:
    phase: Phase = Phase.NORMAL
    since: datetime | None = None
    """When the pending change began (RISING, CLEARING)."""
    last: datetime | None = None


class EventKind(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(frozen=True)
class AlertEvent:
    line: str
    kind: EventKind
    ts: datetime
    """When the condition had lasted min_duration."""
    since: datetime
    """When the condition began."""
    value: float
    threshold: float


def _pending(config: AlarmConfig, phase: Phase, value: float | None) -> Phase:
    """The phase a reading moves to, before min_duration is considered."""
    if value is None:
        # insufficient output: a pending change must be seen continuously
        return {Phase.RISING: Phase.NORMAL, Phase.CLEARING: Phase.ACTIVE}.get(phase, phase)
    above = value > config.raise_above
    clear = value <= config.clear_at_or_below
    if phase in (Phase.NORMAL, Phase.RISING):
        return Phase.RISING if above else Phase.NORMAL
    return Phase.CLEARING if clear else Phase.ACTIVE


def advance(
    config: AlarmConfig, state: AlarmState, ts: datetime, value: float | None
) -> tuple[AlarmState, tuple[AlertEvent, ...]]:
    """The next state after one reading, and the events it gives."""
    if state.last is not None and ts <= state.last:
        return state, ()
    phase = _pending(config, state.phase, value)
    if phase not in (Phase.RISING, Phase.CLEARING):
        return AlarmState(phase, None, ts), ()
    since = state.since if state.phase is phase and state.since is not None else ts
    if value is None or ts - since < config.min_duration:
        return AlarmState(phase, since, ts), ()
    if phase is Phase.RISING:
        kind, threshold, after = EventKind.RAISED, config.raise_above, Phase.ACTIVE
    else:
        kind, threshold, after = EventKind.CLEARED, config.clear_at_or_below, Phase.NORMAL
    event = AlertEvent(config.line, kind, ts, since, value, threshold)
    return AlarmState(after, None, ts), (event,)


def run(
    config: AlarmConfig,
    readings: Iterable[tuple[datetime, float | None]],
    state: AlarmState | None = None,
) -> tuple[AlarmState, list[AlertEvent]]:
    """Feed readings in order; the final state and every event."""
    s = state or AlarmState()
    events: list[AlertEvent] = []
    for ts, value in readings:
        s, new = advance(config, s, ts, value)
        events.extend(new)
    return s, events
