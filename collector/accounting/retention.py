"""How long the accounting keeps the counter readings it walked, and what a reading older
than that meets.

Every reading used is kept (with the walker's state after it) so a late one can be walked
in its place. `accounting.keep_readings_days` bounds that: `prune` deletes, per series,
the readings before an anchor, the newest reading older than the period whose state is
plain (it is its own good reading, none waits after it), keeping the last reading at or
before the anchor's minute so a walk can start there. The anchor becomes the series'
horizon: a later reading at or before it can no longer be placed (its neighbours are
gone), so it is refused, logged and counted, and its minutes stay as accounted. Deletes
go in bounded batches, each its own short transaction, off the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Final

from collector.accounting.db import AccountingDB

BATCH: Final = 5000
"""Readings deleted per transaction (a few milliseconds: live passes wait no longer)."""


def _anchor(conn: sqlite3.Connection, site: str, series: str, cutoff_ms: int) -> int | None:
    row = conn.execute(
        "SELECT ts FROM reading WHERE site = ? AND series = ? AND ts < ? AND good_ts = ts "
        "AND pending_ts IS NULL ORDER BY ts DESC LIMIT 1",
        (site, series, cutoff_ms),
    ).fetchone()
    return None if row is None else int(row[0])


def prune(
    db: AccountingDB, series: Iterable[tuple[str, str]], cutoff_ms: int, limit: int | None = None
) -> int:
    """Delete up to `limit` (BATCH) readings older than the cutoff (see the module); the
    number deleted (`limit`: there may be more)."""
    limit = BATCH if limit is None else limit
    deleted = 0
    for site, name in series:
        while deleted < limit:
            with db.transaction() as conn:
                anchor = _anchor(conn, site, name, cutoff_ms)
                if anchor is None:
                    break
                keep = AccountingDB.reading_before(conn, site, name, anchor - anchor % 60_000 + 1)
                keep_from = anchor if keep is None else keep[0]
                gone = conn.execute(
                    "DELETE FROM reading WHERE site = ? AND series = ? AND ts IN (SELECT ts "
                    "FROM reading WHERE site = ? AND series = ? AND ts < ? ORDER BY ts LIMIT ?)",
                    (site, name, site, name, keep_from, limit - deleted),
                ).rowcount
                if gone:
                    AccountingDB.set_horizon(conn, site, name, anchor)
            deleted += gone
            if gone == 0:
                break
    return deleted
