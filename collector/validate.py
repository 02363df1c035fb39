"""Turns an MQTT message into a reading batch, or says precisely why it cannot. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from collector.batch import MAX_VALUE as _MAX_VALUE
from collector.batch import Batch, from_millis
from collector.fastpath import fast_batch
from greengauge.contract import AgentStatus, ReadingBatch, Topic, TopicError, parse_topic

MAX_REASON_ERRORS = 5
DEFAULT_MAX_AGE: Final = timedelta(days=3650)
MAX_VALUE: Final = _MAX_VALUE
"""Largest magnitude of a reading's value: far beyond any meter (1e18 W, kWh, m3...),
and far enough below float overflow that sums, differences and kgce of any number of
them stay finite. Checked here, not in the wire model, so that an agent never fails
to build a reading; the collector refuses the batch with the reason."""
M = TypeVar("M", ReadingBatch, AgentStatus)
_NAMES = {Topic.READINGS: "reading batch", Topic.STATUS: "agent status"}


class Rejected(ValueError):
    """A message that is not a valid reading batch for its topic."""


def describe(error: ValidationError) -> str:
    """A validation error in one line, without the input's values (they may be huge, or a
    secret) or pydantic's documentation links."""
    items = error.errors(include_url=False)
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or 'message'}: {item['msg']}"
        for item in items[:MAX_REASON_ERRORS]
    ]
    more = len(items) - MAX_REASON_ERRORS
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) == len(pairs):  # the usual case, at C speed
        return found
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise Rejected(f"key {key!r} appears more than once in one object")
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a repeat")


def unique_keys(payload: bytes | str, what: str) -> None:
    """Raise Rejected when a JSON object repeats a key.

    Parsers keep one of the values silently (pydantic the last), so a message could say
    two things and be read as one: it is refused. Run on payloads already validated,
    so that the pydantic's reasons come first for everything else."""
    try:
        json.loads(payload, object_pairs_hook=_unique)
    except (ValueError, RecursionError) as exc:  # Rejected is a ValueError
        raise Rejected(f"invalid {what}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Window:
    """The times a message may carry: what the store keeps, and not ahead of the clock.

    A store answers a write of points it will not keep (before 1970, past its retention,
    far ahead) as a success and drops them: such readings are refused here, with the
    reason, instead of being counted as stored."""

    max_age: timedelta = DEFAULT_MAX_AGE
    max_future: timedelta = timedelta(minutes=5)

    def check(self, ts: datetime, now: datetime, what: str) -> None:
        if ts < now - self.max_age:
            raise Rejected(
                f"{what} {ts.isoformat()} is more than {self.max_age.days} days old "
                "(the store keeps no older data)"
            )
        if ts > now + self.max_future:
            raise Rejected(
                f"{what} {ts.isoformat()} is more than {self.max_future.total_seconds():g} s "
                f"ahead of the collector's clock ({now.isoformat()})"
            )

    def check_batch(self, batch: Batch, now: datetime) -> None:
        # Its oldest and newest readings decide; the models only for the reason.
        earliest, latest = min(batch.stamps), max(batch.stamps)
        if (
            now - self.max_age <= from_millis(earliest)
            and from_millis(latest) <= now + self.max_future
        ):
            return
        for index, reading in enumerate(batch.readings):
            self.check(reading.ts, now, f"readings[{index}] (meter {reading.meter!r}) ts")


DEFAULT_WINDOW: Final = Window()


def accepted_window(
    max_age_days: float | None, max_future_seconds: float, retention: timedelta | None
) -> Window:
    """Not older than configured, else than the store keeps, else 10 years."""
    if max_age_days is not None:
        max_age = timedelta(days=max_age_days)
    else:
        max_age = retention or DEFAULT_MAX_AGE
    return Window(max_age, timedelta(seconds=max_future_seconds))


def agent_message(topic_name: str, payload: bytes, kind: Topic, model: type[M]) -> M:
    """The message of `kind` an agent's topic carries; raise Rejected with the reason."""
    try:
        site, agent, found = parse_topic(topic_name)
    except TopicError as exc:
        raise Rejected(str(exc)) from exc
    if found is not kind:
        raise Rejected(f"topic {topic_name!r} is not a {kind.value} topic")
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        raise Rejected(f"invalid {_NAMES[kind]}: {describe(exc)}") from exc
    unique_keys(payload, _NAMES[kind])
    if (message.site, message.agent) != (site, agent):
        raise Rejected(
            f"message says site {message.site!r} agent {message.agent!r} "
            f"but was published on the topic of site {site!r} agent {agent!r}"
        )
    return message


def reading_batch(topic_name: str, payload: bytes) -> Batch:
    """The batch a readings message carries; raise Rejected with the reason otherwise.

    The fast path (msgspec) accepts what the strict models accept; whatever it does not
    decide is validated by them, for the verdict and the reason."""
    return fast_batch(topic_name, payload) or Batch.of(strict_reading_batch(topic_name, payload))


def strict_reading_batch(topic_name: str, payload: bytes) -> ReadingBatch:
    """reading_batch by the pydantic models alone: the contract the fast path keeps."""
    batch = agent_message(topic_name, payload, Topic.READINGS, ReadingBatch)
    for index, reading in enumerate(batch.readings):
        for name, value in reading.items():
            check_value(value, f"readings[{index}] (meter {reading.meter!r}) {name}")
    return batch


def check_value(value: float, what: str) -> None:
    """Raise Rejected when a reading's value is beyond MAX_VALUE (live and imported)."""
    if abs(value) > MAX_VALUE:
        raise Rejected(f"{what} {value:g} is beyond ±{MAX_VALUE:g}")
