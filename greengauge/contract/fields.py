"""The field types every wire message is built from: ids, instants, values, counts.

Names and rules here are a public contract: extend them, never rename them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

SCHEMA_VERSION: Final = 1

# Backslashes are refused too: InfluxDB 2 does not unescape them in tag values.
_ID_RE = re.compile(r"^[^/+#\\\s\x00-\x1f\x7f]{1,64}$")
_ID_RULE: Final = "1 to 64 characters, no '/', '+', '#', '\\', whitespace or control characters"
_BAD_ID_CHAR = re.compile(r"[/+#\\\s\x00-\x1f\x7f]")


def check_id(value: str) -> str:
    """Reject ids that would break the topic layout (MQTT wildcards, separators, spaces).

    The reason names what is wrong but never the value: a secret pasted into an id field
    would otherwise end up in error messages and logs.
    """
    if not _ID_RE.fullmatch(value):
        bad = _BAD_ID_CHAR.search(value)
        if bad is not None:
            what = f"{bad.group()!r} at character {bad.start() + 1}"
        else:
            what = f"{len(value)} characters" if value else "empty"
        raise ValueError(f"invalid id ({what}): {_ID_RULE}")
    return value


Id = Annotated[str, AfterValidator(check_id)]


def utc_millis(value: datetime) -> str:
    """Serialise a read time as ISO 8601 in UTC with millisecond precision and a 'Z'."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_utc(value: datetime) -> datetime:
    # Milliseconds are the wire's precision; truncating here keeps a model equal to its round trip.
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        # "0001-01-01T00:00:00+01:00" is valid ISO 8601 but before year 1 in UTC: a
        # ValueError makes it a validation error naming the field, not a crash.
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None
    return utc.replace(microsecond=value.microsecond // 1000 * 1000)


Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(utc_millis, return_type=str, when_used="json"),
]
"""A timezone-aware instant; naive times are refused because a plant's clock zone is unknowable."""

Value = Annotated[float, Field(allow_inf_nan=False)]

MAX_SEQ: Final = 2**64 - 1
"""Sequence numbers are 64-bit unsigned: bigger ones would only break gap arithmetic."""
MAX_COUNT: Final = 2**63 - 1
"""Counts in status messages fit a signed 64-bit integer (SQLite, Prometheus, JSON readers)."""
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
MAX_ERROR_KINDS: Final = 64
"""Kinds of error one meter's health may name: the agent has a handful."""


class WireModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
