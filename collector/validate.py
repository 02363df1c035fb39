"""Turns an MQTT message into a reading batch, or says precisely why it cannot. Pure."""

from __future__ import annotations

from pydantic import ValidationError

from agent.wire import ReadingBatch, Topic, TopicError, parse_topic

MAX_REASON_ERRORS = 5


class Rejected(ValueError):
    """A message that is not a valid reading batch for its topic."""


def _describe(error: ValidationError) -> str:
    items = error.errors(include_url=False)
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or 'message'}: {item['msg']}"
        for item in items[:MAX_REASON_ERRORS]
    ]
    more = len(items) - MAX_REASON_ERRORS
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def reading_batch(topic_name: str, payload: bytes) -> ReadingBatch:
    """The batch a readings message carries; raise Rejected with the reason otherwise."""
    try:
        site, agent, kind = parse_topic(topic_name)
    except TopicError as exc:
        raise Rejected(str(exc)) from exc
    if kind is not Topic.READINGS:
        raise Rejected(f"topic {topic_name!r} does not carry readings")
    try:
        batch = ReadingBatch.model_validate_json(payload)
    except ValidationError as exc:
        raise Rejected(f"invalid reading batch: {_describe(exc)}") from exc
    if (batch.site, batch.agent) != (site, agent):
        raise Rejected(
            f"message says site {batch.site!r} agent {batch.agent!r} "
            f"but was published on the topic of site {site!r} agent {agent!r}"
        )
    return batch
