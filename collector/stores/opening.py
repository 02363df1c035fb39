"""Opening the configured store, and its history reader, from the collector's config.

One place decides InfluxDB or the embedded SQLite file, for the running collector and
for the offline commands (import, recompute) alike.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Final

from collector.stores import RetentionStore, Store
from collector.stores.history import FluxHistory, History, SqliteHistory
from collector.stores.readback import FluxReadings, ReadingSource, SqliteReadings
from greengauge.common.files import open_state

if TYPE_CHECKING:
    from collector.config import CollectorConfig

EMBEDDED_STORE_FILE: Final = "readings.sqlite"


def open_store(config: CollectorConfig) -> Store:
    if config.influxdb is not None:
        from collector.stores.influx import InfluxStore  # noqa: PLC0415 - only when configured

        influx = config.influxdb
        return InfluxStore(
            influx.url, influx.org, influx.bucket, influx.token.get_secret_value(), influx.timeout
        )
    from collector.stores.sqlite import SqliteStore  # noqa: PLC0415

    path = config.data_dir / EMBEDDED_STORE_FILE
    return open_state(path, lambda: SqliteStore(path), "embedded store")


def open_history(config: CollectorConfig) -> History:
    if config.influxdb is not None:
        influx = config.influxdb
        return FluxHistory(
            influx.url, influx.org, influx.bucket, influx.token.get_secret_value(), influx.timeout
        )
    return SqliteHistory(config.data_dir / EMBEDDED_STORE_FILE)


def open_readback(config: CollectorConfig) -> ReadingSource:
    """The readings store of a collector's config, to read raw readings back from."""
    if config.influxdb is not None:
        influx = config.influxdb
        return FluxReadings(
            influx.url, influx.org, influx.bucket, influx.token.get_secret_value(), influx.timeout
        )
    return SqliteReadings(config.data_dir / EMBEDDED_STORE_FILE)


def store_retention(store: Store) -> timedelta | None:
    """How long the store keeps points, if it can say (a blocking call: once, at start)."""
    return store.retention() if isinstance(store, RetentionStore) else None
