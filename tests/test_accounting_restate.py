"""Late readings change minutes the intensity points already written were figured on:
those points are written again, so the store (what Grafana and the API read) agrees with
the accounting database. Read back from the embedded SQLite store."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_accounting_engine import T0, config, readings

from collector.accounting import engine
from collector.accounting.engine import Accounting
from collector.stores.sqlite import SqliteStore

STORE = "store.sqlite"


def _intensity(path: Path) -> dict[tuple[str, str, int], float]:
    """kgce of every intensity point in a store, by series (tags), field and time."""
    with sqlite3.connect(path / STORE) as conn:
        rows = conn.execute(
            "SELECT series, field, ts, value FROM point WHERE measurement = 'intensity' "
            "AND field IN ('kgce', 'output')"
        ).fetchall()
    return {(s, f, t): v for s, f, t, v in rows}


def _evaluated(path: Path, passes: list[list[int]], times: list[datetime]) -> Accounting:
    """Readings of 10 minutes (one batch every 10 s), in passes of batch indexes, with an
    evaluation at each time after the pass at the same index."""
    every = readings(10)
    clock = [T0]
    acc = Accounting(config(), path, SqliteStore(path / STORE), clock=lambda: clock[0])
    for chunk, now in zip(passes, times, strict=True):
        acc.process([every[k] for k in chunk])
        clock[0] = now
        acc.evaluate()
    return acc


def test_intensity_points_on_late_readings_are_written_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Minutes 2..5 of the readings arrive after evaluations at minutes 3..9 were written
    (the minutes between were apportioned over the gap): every point written at or after
    minute 2 (each window up to its time holds minutes the late readings changed) is
    written again with the figures the in-order readings give."""
    late = list(range(13, 31))  # 02:10 .. 05:00
    early = [k for k in range(61) if k not in late]
    times = [T0 + timedelta(minutes=m) for m in range(3, 10)]
    passes: list[list[int]] = [[k for k in early if k <= 6 * m] for m in range(3, 10)]
    passes = [sorted(set(p) - set().union(*passes[:i])) for i, p in enumerate(passes)]
    with caplog.at_level(logging.INFO, "collector.accounting.engine"):
        acc = _evaluated(tmp_path / "late", [*passes, late], [*times, times[-1]])
    in_order = _evaluated(
        tmp_path / "in-order",
        [[k for k in range(61) if k <= 6 * m] for m in range(3, 10)],
        times,
    )
    got, want = _intensity(tmp_path / "late"), _intensity(tmp_path / "in-order")
    assert got.keys() == want.keys()
    assert len({t for _, _, t in got}) == len(times)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    # the last evaluation is at minute 9 again: the late pass restated minutes 3..9
    assert "intensity on late readings written again" in caplog.text
    acc.close()
    in_order.close()


def test_restating_a_long_backlog_goes_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "RESTATE_BATCH", 2)
    late = list(range(13, 31))
    early = [k for k in range(61) if k not in late]
    times = [T0 + timedelta(minutes=m) for m in range(3, 10)]
    passes = [early if m == 3 else [] for m in range(3, 10)]
    acc = _evaluated(tmp_path, passes, times)
    acc.process([readings(10)[k] for k in late])
    # 7 evaluation times after minute 2: 2 a call, the last call finds 1
    assert [acc.restate() > 0 for _ in range(5)] == [True, True, True, True, False]
    acc.close()


def test_a_recompute_writes_the_intensity_points_again(tmp_path: Path) -> None:
    times = [T0 + timedelta(minutes=m) for m in range(3, 10)]
    acc = _evaluated(tmp_path, [[k for k in range(61) if k <= 6 * m] for m in range(3, 10)], times)
    written = _intensity(tmp_path)
    acc.db.query("UPDATE minute SET amount = amount * 2, kgce = kgce * 2")
    acc.evaluate()  # at minute 9 again: figured on the doubled minutes
    assert _intensity(tmp_path) != written
    acc.recompute("s1", T0, T0 + timedelta(minutes=10))
    assert acc.restate_all() > 0
    assert _intensity(tmp_path) == pytest.approx(written, rel=1e-12)
    acc.close()
