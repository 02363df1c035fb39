"""SqliteStore: a durable WAL file whose rows are read back with plain sqlite3."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.batch import Batch
from collector.fastpath import fast_batch
from collector.stores import StoreError, StoreRejected
from collector.stores.sqlite import SqliteStore
from greengauge.contract import MeterReading, Quantity, ReadingBatch, Topic, topic

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = 1_740_830_400_000

Row = tuple[str, str, str, str, int, float]


def sample_batches(value_offset: float = 0.0) -> list[Batch]:
    models = [
        ReadingBatch(
            site="plant-1",
            agent="edge-1",
            seq=1,
            readings=[
                MeterReading(
                    meter="m1",
                    ts=T0,
                    values={Quantity.VOLTAGE_L1: 230.1 + value_offset, Quantity.FREQUENCY: 50.01},
                ),
                MeterReading(
                    meter="m1",
                    ts=T0 + timedelta(milliseconds=1500),
                    values={Quantity.ENERGY_ACTIVE_IMPORT: 123456.789 + value_offset},
                ),
            ],
        ),
        ReadingBatch(
            site="Zürich,Nord",
            agent="edge=2,b",
            seq=0,
            readings=[MeterReading(meter="m_2", ts=T0, values={Quantity.COUNT: 1 / 3})],
        ),
    ]
    return [Batch.of(model) for model in models]


def expected_rows(value_offset: float = 0.0) -> list[Row]:
    return sorted(
        [
            ("plant-1", "edge-1", "m1", "voltage_l1", T0_MS, 230.1 + value_offset),
            ("plant-1", "edge-1", "m1", "frequency", T0_MS, 50.01),
            (
                "plant-1",
                "edge-1",
                "m1",
                "energy_active_import",
                T0_MS + 1500,
                123456.789 + value_offset,
            ),
            ("Zürich,Nord", "edge=2,b", "m_2", "count", T0_MS, 1 / 3),
        ]
    )


def read_rows(path: Path) -> list[Row]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT site, agent, meter, quantity, ts, value FROM reading ORDER BY 1, 2, 3, 4, 5"
        ).fetchall()
    return [tuple(row) for row in rows]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "nested" / "readings.sqlite"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    sqlite_store = SqliteStore(db_path)
    yield sqlite_store
    sqlite_store.close()


def test_values_are_read_back_exactly(store: SqliteStore, db_path: Path) -> None:
    written = store.write(sample_batches())

    assert written == 4
    assert read_rows(db_path) == expected_rows()


def test_file_is_created_in_wal_mode_with_full_sync(store: SqliteStore, db_path: Path) -> None:
    store.write(sample_batches())

    assert db_path.is_file()
    assert db_path.with_name(db_path.name + "-wal").exists()
    with sqlite3.connect(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # synchronous is a per-connection setting, so only the store's own connection shows it.
    assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # 2 = FULL


def test_table_is_without_rowid_keyed_by_series_and_time(store: SqliteStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'reading'").fetchone()
        primary_key = [row[1] for row in sorted(db.execute("PRAGMA table_info(reading)")) if row[5]]
    assert "WITHOUT ROWID" in sql
    assert primary_key == ["site", "agent", "meter", "quantity", "ts"]


def test_redelivered_batch_is_stored_once(store: SqliteStore, db_path: Path) -> None:
    store.write(sample_batches())
    store.write(sample_batches())

    assert read_rows(db_path) == expected_rows()


def test_redelivered_reading_with_a_new_value_replaces_the_old(
    store: SqliteStore, db_path: Path
) -> None:
    store.write(sample_batches())
    store.write(sample_batches(value_offset=1.0))

    assert read_rows(db_path) == expected_rows(value_offset=1.0)


def test_no_batches_write_nothing(store: SqliteStore, db_path: Path) -> None:
    assert store.write([]) == 0
    assert read_rows(db_path) == []


def test_reopening_keeps_the_data(db_path: Path) -> None:
    first = SqliteStore(db_path)
    first.write(sample_batches())
    first.close()

    second = SqliteStore(db_path)
    second.close()

    assert read_rows(db_path) == expected_rows()


async def test_writes_from_worker_threads(store: SqliteStore, db_path: Path) -> None:
    # The collector's way of calling: asyncio.to_thread, from whatever pool thread.
    for offset in (0.0, 2.0):
        await asyncio.to_thread(store.write, sample_batches(offset))

    assert read_rows(db_path) == expected_rows(2.0)


def test_a_write_is_all_or_nothing(store: SqliteStore, db_path: Path) -> None:
    # A trigger stands in for any failure half-way through the rows.
    with sqlite3.connect(db_path) as db:
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON reading WHEN NEW.meter = 'm_2' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )

    with pytest.raises(StoreRejected, match="poisoned row"):
        store.write(sample_batches())

    assert read_rows(db_path) == []


def test_path_that_cannot_be_created_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")

    with pytest.raises(StoreError, match="cannot open SQLite store"):
        SqliteStore(blocker / "readings.sqlite")


def test_folder_as_database_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SqliteStore(tmp_path)


def test_lock_held_beyond_busy_timeout_raises_store_error(db_path: Path) -> None:
    store = SqliteStore(db_path, busy_timeout=0.2)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            store.write(sample_batches())
        assert 0.15 < time.monotonic() - started < 2
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    # Nothing half-done is left behind: the next write goes through.
    assert store.write(sample_batches()) == 4
    assert read_rows(db_path) == expected_rows()
    store.close()


def test_write_after_close_raises_store_error(store: SqliteStore) -> None:
    store.close()

    with pytest.raises(StoreError):
        store.write(sample_batches())


def test_repr_names_the_file(store: SqliteStore, db_path: Path) -> None:
    assert str(db_path) in repr(store)


def test_a_batch_by_the_fast_path_stores_the_rows_of_its_model(
    store: SqliteStore, db_path: Path
) -> None:
    fast = [
        fast_batch(topic(b.site, b.agent, Topic.READINGS), b.model().model_dump_json().encode())
        for b in sample_batches()
    ]
    assert all(isinstance(b, Batch) and b.fields is not None for b in fast)
    assert store.write([b for b in fast if b is not None]) == len(expected_rows())
    assert read_rows(db_path) == expected_rows()
