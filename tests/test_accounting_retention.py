"""accounting.keep_readings_days: the readings the accounting keeps for late ones are
pruned in bounded batches; a late reading older than what is kept is refused, logged and
counted (its minutes stay as accounted), one inside is still placed; a recompute of a
period partly pruned leaves the pruned minutes as they were."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_accounting_event_time import T11, config, incomer, minute_rows, peak_kw

from collector.accounting import retention
from collector.accounting.engine import Accounting
from collector.plant import AccountingConfig


def _accounting(path: Path, days: float) -> Accounting:
    cfg = config().model_copy(update={"keep_readings_days": days})
    # "now" is 1 day + 60 minutes after T11: a day kept leaves the first hour's readings out
    return Accounting(cfg, path, clock=lambda: T11 + timedelta(days=1, minutes=60))


def test_old_readings_are_pruned_in_batches_and_minutes_stay(tmp_path: Path) -> None:
    acc = _accounting(tmp_path, 1)
    readings = incomer(range(121), peak_kw)
    for b in readings:
        acc.process([b])
    before = minute_rows(acc)
    # the cutoff is T11 + 60 min: readings before its anchor (the reading at +59 min) go,
    # 59 of them (minutes 0..58), in batches of 25
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention, "BATCH", 25)
        assert [acc.prune() for _ in range(4)] == [25, 25, 9, 0]
    ((oldest,),) = acc.db.query("SELECT min(ts) FROM reading")
    assert oldest == int((T11 + timedelta(minutes=59)).timestamp() * 1000)
    assert acc.readings_pruned == 59
    assert minute_rows(acc) == before


def test_a_late_reading_older_than_kept_is_refused_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    readings = incomer(range(121), peak_kw)
    held = [b for b in readings if b.seq in (30, 90)]
    acc = _accounting(tmp_path, 1)
    for b in readings:
        if b not in held:
            acc.process([b])
    acc.prune()
    before = minute_rows(acc)
    with caplog.at_level(logging.WARNING, "collector.accounting.engine"):
        acc.process(held[:1])  # minute 30: its neighbours are pruned
    assert minute_rows(acc) == before
    assert acc.too_old_readings == 1 and acc.corrections == 0
    assert "readings older than the accounting keeps: not accounted" in caplog.text
    acc.process(held[1:])  # minute 90: inside what is kept, placed as ever
    assert acc.too_old_readings == 1 and acc.corrections == 1
    in_order = Accounting(config(), tmp_path / "in-order")
    in_order.process([b for b in readings if b.seq != 30])
    after = {r[2]: r for r in minute_rows(acc)}
    expected = {r[2]: r for r in minute_rows(in_order)}
    late_minute = int((T11 + timedelta(minutes=89)).timestamp() * 1000)
    assert after[late_minute] == expected[late_minute]
    assert {m: r for m, r in after.items() if m >= late_minute} == {
        m: r for m, r in expected.items() if m >= late_minute
    }


def test_a_recompute_across_the_pruned_leaves_those_minutes(tmp_path: Path) -> None:
    acc = _accounting(tmp_path, 1)
    acc.process(incomer(range(121), peak_kw))
    acc.prune()
    live = minute_rows(acc)
    acc.recompute("s1", T11, T11 + timedelta(hours=2))
    assert minute_rows(acc) == live  # nothing deleted for want of the pruned readings
    acc.db.query("UPDATE minute SET amount = 0")
    acc.recompute("s1", T11, T11 + timedelta(hours=2))
    after = minute_rows(acc)
    kept_from = int((T11 + timedelta(minutes=59)).timestamp() * 1000)
    assert [r for r in after if r[2] >= kept_from] == [r for r in live if r[2] >= kept_from]
    assert all(r[3] == 0 for r in after if r[2] < kept_from)


def test_keep_readings_days_defaults_to_400_and_must_be_a_day() -> None:
    assert config().keep_readings_days == 400
    data = config().model_dump(mode="json")
    with pytest.raises(ValidationError, match="keep_readings_days"):
        AccountingConfig.model_validate({**data, "keep_readings_days": 0.5})
