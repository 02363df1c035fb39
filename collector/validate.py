"""Turns an MQTT message into a reading batch, or says precisely why it cannot. Pure."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from agent.wire import AgentStatus, ReadingBatch, Topic, TopicError, parse_topic

MAX_REASON_ERRORS = 5
M = TypeVar("M", ReadingBatch, AgentStatus)
_NAMES = {Topic.READINGS: "reading batch", Topic.STATUS: "agent status"}


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
        raise Rejected(f"invalid {_NAMES[kind]}: {_describe(exc)}") from exc
    if (message.site, message.agent) != (site, agent):
        raise Rejected(
            f"message says site {message.site!r} agent {message.agent!r} "
            f"but was published on the topic of site {site!r} agent {agent!r}"
        )
    return message


def reading_batch(topic_name: str, payload: bytes) -> ReadingBatch:
    """The batch a readings message carries; raise Rejected with the reason otherwise."""
    return agent_message(topic_name, payload, Topic.READINGS, ReadingBatch)
