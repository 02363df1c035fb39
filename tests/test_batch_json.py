"""The batcher writes a batch as its envelope around each reading's JSON made at submit
(agent.publish.batcher): byte for byte what the contract's ReadingBatch writes, and
refused where ReadingBatch refuses, for every generated batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.publish.batcher import batch_json, reading_json
from greengauge.contract import MAX_SEQ, CustomValue, Kind, MeterReading, Quantity, ReadingBatch

ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
custom_names = st.from_regex(r"x_[a-z][a-z0-9_]{0,20}", fullmatch=True)
units = st.from_regex(r"[A-Za-z0-9%/._^*-]{1,16}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
)
readings = st.builds(
    MeterReading,
    meter=st.from_regex(r"[a-zA-Z0-9_.:-]{1,64}", fullmatch=True),
    ts=times,
    values=st.dictionaries(st.sampled_from(list(Quantity)), finite, max_size=45),
    custom=st.dictionaries(
        custom_names,
        st.builds(CustomValue, value=finite, unit=units, kind=st.sampled_from(list(Kind))),
        max_size=8,
    ),
).filter(lambda r: r.size > 0)


def _strict(site: str, agent: str, seq: int, batch: list[MeterReading]) -> bytes | str:
    """The contract's own JSON of the batch, or the fields its refusal names."""
    try:
        model = ReadingBatch(site=site, agent=agent, seq=seq, readings=batch)
    except ValidationError as exc:
        return repr(sorted(str(e["loc"][0]) for e in exc.errors()))
    return model.model_dump_json().encode()


def _fast(site: str, agent: str, seq: int, batch: list[MeterReading]) -> bytes | str:
    try:
        return batch_json(site, agent, seq, [reading_json(r) for r in batch])
    except ValidationError as exc:
        return repr(sorted(str(e["loc"][0]) for e in exc.errors()))


@given(ids, ids, st.integers(-5, MAX_SEQ + 5), st.lists(readings, min_size=1, max_size=4))
def test_a_batch_is_what_the_contract_writes_or_refuses(
    site: str, agent: str, seq: int, batch: list[MeterReading]
) -> None:
    fast = _fast(site, agent, seq, batch)
    assert fast == _strict(site, agent, seq, batch)
    if isinstance(fast, bytes):
        assert ReadingBatch.model_validate_json(fast).readings == batch


def test_an_empty_batch_or_reading_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one reading"):
        batch_json("s", "a", 1, [])
    empty = MeterReading(meter="m1", ts=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="m1 has no value"):
        reading_json(empty)
