"""The hot path of a readings message: decoded and checked by msgspec in C, not pydantic.

pydantic's models (`greengauge.contract`) stay the contract: this path only ever
*accepts* what they accept, with the same decoded values, and gives up (returns None) on
anything else, which `collector.validate.reading_batch` then validates strictly, for the
verdict and the reason. So a message refused before is refused now with the same words;
tests/test_fastpath.py proves the agreement on generated messages, valid and not.

Given up on, besides every invalid message: payloads with a backslash (JSON escapes:
agents write UTF-8, and a `\\u003a` would defeat the repeated-key count below), readings
with user-named quantities (`custom`: rare, checked by pydantic), timestamps in any form
but `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)`.

Repeated keys, which the strict path refuses (`unique_keys`), are found without a second
parse: outside strings a colon appears in JSON only between a key and its value, so the
payload holds as many colons as members plus the colons inside its strings; a repeated
key is a member msgspec kept once, and the count falls short.

Each reading's line protocol fields are its `values` object as it arrived (msgspec's Raw):
`{"voltage_l1":230.0,...}` -> `voltage_l1=230.0,...`. The digits are the agent's, which
parse to the same double as the value checked here, so no float goes back to text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from pydantic import BaseModel, PrivateAttr

from greengauge.contract import (
    MAX_SEQ,
    MeterReading,
    Quantity,
    ReadingBatch,
    Topic,
    TopicError,
    parse_topic,
)
from greengauge.contract.fields import check_id

MAX_VALUE: Final = 1e18
"""As collector.validate.MAX_VALUE (which imports this module)."""

_Value = Annotated[float, msgspec.Meta(ge=-MAX_VALUE, le=MAX_VALUE)]
_Values = dict[Quantity, _Value]
_Unset = msgspec.UnsetType


class _Reading(msgspec.Struct, forbid_unknown_fields=True):
    meter: str
    ts: str
    values: msgspec.Raw | _Unset = msgspec.UNSET
    custom: msgspec.Raw | _Unset = msgspec.UNSET


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    site: str
    agent: str
    seq: int
    readings: list[_Reading]
    schema_version: Literal[1] | _Unset = msgspec.UNSET


_batch_decoder: Final = msgspec.json.Decoder(_Batch)
_values_decoder: Final = msgspec.json.Decoder(_Values)
# What pydantic's AwareDatetime reads that datetime.fromisoformat reads the same way.
_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_NOT_FIELDS: Final = b' \t\r\n"'
_READING_SET: Final = frozenset({"meter", "ts", "values"})
_BATCH_SET: Final = frozenset({"site", "agent", "seq", "readings"})
_BATCH_SET_V: Final = _BATCH_SET | {"schema_version"}


class FastBatch(ReadingBatch):
    """A ReadingBatch as the strict model reads it, with its readings' line protocol ready.

    Equal to the ReadingBatch of the same fields (the subclass is an implementation detail)."""

    _lines: list[str] = PrivateAttr(default_factory=list)
    """per reading: `<fields> <epoch ms>`, the part of its line after the tags"""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReadingBatch):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = ReadingBatch.__hash__

    @property
    def line_tails(self) -> list[str]:
        return self._lines


class _Undecided(Exception):
    """Not for this path to decide: the strict path does."""


def _require(condition: bool) -> None:
    if not condition:
        raise _Undecided


# A pydantic model keeps these three in slots: their descriptors set them directly,
# without object.__setattr__'s lookup by name (a model is built per reading).
_new_object: Final = object.__new__
_set_attribute: Final = object.__setattr__
_set_fields_set: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__


def _built(cls: Any, values: dict[str, Any], fields_set: frozenset[str]) -> Any:
    """A model of already checked values: what `model_construct` does, without its
    per-field default handling (a third of a batch's decoding time)."""
    model = _new_object(cls)
    _set_attribute(model, "__dict__", values)
    _set_fields_set(model, set(fields_set))
    _set_extra(model, None)
    _set_private(model, None)
    return model


def _instant(text: str) -> tuple[datetime, int]:
    """The reading time as the strict model reads it (UTC, truncated to ms) and epoch ms."""
    _require(_TS.fullmatch(text) is not None)
    ts = datetime.fromisoformat(text).astimezone(UTC)
    ts = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
    return ts, (ts - _EPOCH) // _MILLISECOND


def fast_batch(topic_name: str, payload: bytes) -> FastBatch | None:
    """The batch exactly as `reading_batch` would accept it, or None when this path does
    not decide (invalid, or outside what it handles): then the strict path does."""
    try:
        return _decoded(topic_name, payload)
    # ValueError: a bad id or time, bytes that are not UTF-8; OverflowError: a time
    # before year 1 in UTC.
    except (_Undecided, TopicError, msgspec.MsgspecError, ValueError, OverflowError):
        return None


# Ids and topics seen valid: a fleet sends the same ones again and again. Bounded (emptied
# when full), so that invented ids cannot grow them without end.
_MEMO_SIZE: Final = 65536
_valid_ids: set[str] = set()
_reading_topics: dict[str, tuple[str, str]] = {}


def _valid_id(value: str) -> None:
    if value not in _valid_ids:
        check_id(value)
        if len(_valid_ids) >= _MEMO_SIZE:
            _valid_ids.clear()
        _valid_ids.add(value)


def _readings_topic(name: str) -> tuple[str, str]:
    """Site and agent of a readings topic (its ids valid); raise otherwise."""
    found = _reading_topics.get(name)
    if found is None:
        site, agent, kind = parse_topic(name)
        _require(kind is Topic.READINGS)
        _valid_id(site)
        _valid_id(agent)
        if len(_reading_topics) >= _MEMO_SIZE:
            _reading_topics.clear()
        found = _reading_topics[name] = (site, agent)
    return found


def _decoded(topic_name: str, payload: bytes) -> FastBatch:
    _require(b"\\" not in payload)
    site, agent = _readings_topic(topic_name)
    raw = _batch_decoder.decode(payload)
    _require((raw.site, raw.agent) == (site, agent))
    _require(bool(raw.readings) and 0 <= raw.seq <= MAX_SEQ)
    members = len(_BATCH_SET) + (raw.schema_version is not msgspec.UNSET)
    colons = site.count(":") + agent.count(":")
    # Times repeat within a batch: each is read once.
    instants: dict[str, tuple[datetime, int]] = {}
    readings: list[MeterReading] = []
    lines: list[str] = []
    decode_values = _values_decoder.decode
    for item in raw.readings:
        if item.custom is not msgspec.UNSET or isinstance(item.values, msgspec.UnsetType):
            raise _Undecided
        meter = item.meter
        _valid_id(meter)
        text = item.ts
        instant = instants.get(text)
        if instant is None:
            instant = instants[text] = _instant(text)
        body = bytes(item.values)
        values = decode_values(body)
        _require(bool(values))
        members += 3 + len(values)
        colons += meter.count(":") + text.count(":")
        readings.append(
            _built(
                MeterReading,
                {"meter": meter, "ts": instant[0], "values": values, "custom": {}},
                _READING_SET,
            )
        )
        fields = body.translate(None, _NOT_FIELDS)[1:-1].replace(b":", b"=").decode()
        lines.append(f"{fields} {instant[1]}")
    # A repeated key (or anything else this count does not foresee) is the strict path's.
    _require(payload.count(b":") == members + colons)
    batch: FastBatch = _built(
        FastBatch,
        {"schema_version": 1, "site": site, "agent": agent, "seq": raw.seq, "readings": readings},
        _BATCH_SET if raw.schema_version is msgspec.UNSET else _BATCH_SET_V,
    )
    object.__setattr__(batch, "__pydantic_private__", {"_lines": lines})
    return batch
