"""The topic layout: where agents, the collector and a MES publish on the broker."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from greengauge.contract.fields import check_id

TOPIC_ROOT: Final = "greengauge/v1"


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


def alerts_topic(site: str) -> str:
    """Where the collector publishes a site's intensity alerts (QoS 1, not retained)."""
    return f"{TOPIC_ROOT}/{check_id(site)}/alerts"


def production_topic(site: str) -> str:
    """Where a MES publishes a site's production output and monthly value added."""
    return f"{TOPIC_ROOT}/{check_id(site)}/production"


PRODUCTION_SUBSCRIPTION: Final = f"{TOPIC_ROOT}/+/production"
"""Every site's production topic, for the collector's MES subscription."""


def parse_production_topic(name: str) -> str:
    """The site of a production topic; TopicError when the topic is not one."""
    parts = name.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or parts[3] != "production":
        raise TopicError(f"topic {name!r} is not {TOPIC_ROOT}/{{site}}/production")
    try:
        return check_id(parts[2])
    except ValueError as exc:
        raise TopicError(f"topic {name!r}: {exc}") from exc
