"""The collector's read-to-stored histogram: the age of every reading the store took."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from collector.batch import Batch
from collector.metrics import STORED_AGE_BUCKETS, BulkHistogram, CollectorMetrics
from collector.stores import StoreError
from greengauge.contract import MeterReading, Quantity, ReadingBatch

AGE = "greengauge_collector_reading_stored_age_seconds"


class Store:
    def __init__(self) -> None:
        self.up = True

    def write(self, batches: Sequence[Batch]) -> int:
        if not self.up:
            raise StoreError("connection refused")
        return sum(len(r.values) for b in batches for r in b.readings)

    def close(self) -> None:
        pass


def readings(*ages: float) -> Batch:
    now = datetime.now(UTC)
    return Batch.of(
        ReadingBatch(
            site="s",
            agent="a",
            seq=0,
            readings=[
                MeterReading(
                    meter=f"m{i}",
                    ts=now - timedelta(seconds=age),
                    values={Quantity.POWER_ACTIVE: 1.0, Quantity.FREQUENCY: 50.0},
                )
                for i, age in enumerate(ages)
            ],
        )
    )


def buckets(metrics: CollectorMetrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {
        s.labels.get("le", s.name): s.value
        for family in text_string_to_metric_families(text)
        if family.name == AGE
        for s in family.samples
        if s.name in (f"{AGE}_bucket", f"{AGE}_count")
    }


def test_every_stored_reading_is_observed_with_its_age_at_the_acknowledgement() -> None:
    metrics = CollectorMetrics()
    store = metrics.timed(Store())
    assert store.write([readings(0.0, 0.3), readings(120.0)]) == 6
    seen = buckets(metrics)
    assert seen[f"{AGE}_count"] == 3  # per reading, not per value or per write
    assert seen["0.25"] == 1
    assert seen["0.5"] == 2
    assert seen["60.0"] == 2
    assert seen["300.0"] == 3


def test_a_failed_write_observes_no_age() -> None:
    metrics = CollectorMetrics()
    backend = Store()
    backend.up = False
    with pytest.raises(StoreError):
        metrics.timed(backend).write([readings(0.0)])
    assert buckets(metrics)[f"{AGE}_count"] == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(-10, 1e6, allow_nan=False), max_size=20), max_size=5))
def test_ages_counted_a_write_at_a_time_are_what_one_observe_each_would_count(
    writes: list[list[float]],
) -> None:
    """Bucket for bucket (a value on a bound counts in it) and the sum, as prometheus_client's
    own histogram counts them."""
    bulk = BulkHistogram("age", "ages", STORED_AGE_BUCKETS)
    reference = Histogram("age", "ages", buckets=STORED_AGE_BUCKETS, registry=None)
    for ages in writes:
        bulk.observe_many(np.array(ages, dtype=np.float64))
        for age in ages:
            reference.observe(age)
    [got] = bulk.collect()
    [want] = reference.collect()
    samples = {(s.name, s.labels.get("le")): s.value for s in got.samples}
    expected = {
        (s.name, s.labels.get("le")): s.value
        for s in want.samples
        if not s.name.endswith("_created")
    }
    assert samples.keys() == expected.keys()
    for key, value in expected.items():
        assert samples[key] == pytest.approx(value, rel=1e-12, abs=1e-9), key


@pytest.mark.parametrize("bound", STORED_AGE_BUCKETS)
def test_an_age_on_a_bound_counts_in_its_bucket(bound: float) -> None:
    bulk = BulkHistogram("age", "ages", STORED_AGE_BUCKETS)
    bulk.observe_many(np.array([bound]))
    [family] = bulk.collect()
    counts = {s.labels["le"]: s.value for s in family.samples if s.name == "age_bucket"}
    assert counts[repr(float(bound))] == 1
    below = [b for b in STORED_AGE_BUCKETS if b < bound]
    if below:
        assert counts[repr(float(below[-1]))] == 0
