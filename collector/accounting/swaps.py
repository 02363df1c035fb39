"""Meter swaps and counter resets, as recorded by people: kept in the accounting database.

A swap comes from the plant model (`swaps:` of a meter), `energy-collector swap` or
POST /api/v1/sites/{site}/swaps. It is stored in the accounting database, so that it
survives restarts and applies to the readings of its meter from then on: the engine
bridges the old counter's last reading and the new one's first with the recorded
readings (core.counters). When the readings across the swap were accounted before the
swap was recorded, the interval they left unmeasured (a reset, a fall or a jump, with
its estimate) is corrected now: the readings around it are accounted again with the
swap (engine.account, as a recompute does), in the same transaction as the record. A
record that does not fit the readings is refused, saying why, and nothing is stored.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta
from typing import Final

from collector.accounting.core.counters import Issue, Replacement, Sample, deltas
from collector.accounting.db import AccountingDB, FindingRow, ms
from collector.accounting.passes import END_OF_TIME, account
from collector.accounting.targets import Target, scaled, targets_of
from collector.plant import AccountingConfig
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

BRIDGED: Final = (Issue.RESET, Issue.DISCONTINUITY, Issue.JUMP)
"""What an unrecorded swap looks like in readings already accounted."""
AHEAD: Final = timedelta(minutes=5)
"""How far ahead of the clock a swap may be dated (clocks differ a little)."""


class SwapRejected(ValueError):
    """A swap record that cannot be used; the message says why."""


def record_swap(
    db: AccountingDB,
    config: AccountingConfig,
    site_id: str,
    meter_id: str,
    swap: Replacement,
    now: datetime,
) -> list[str]:
    """Store a swap of a meter and apply it; what it changed, one line each (nothing:
    it applies to readings still to come). SwapRejected: unknown meter, a time in the
    future, another record at the same time, or readings it does not fit."""
    site = config.site(site_id)
    if site is None:
        raise SwapRejected(f"site {site_id!r} is not in the plant model")
    targets = targets_of(config, site).get(meter_id)
    if not targets:
        raise SwapRejected(f"site {site_id!r} has no counter meter {meter_id!r}")
    if any(t.integrate for t in targets):
        raise SwapRejected(f"meter {meter_id!r} has no counter (its power is integrated)")
    if swap.ts > now + AHEAD:
        raise SwapRejected(f"the swap is dated {swap.ts.isoformat()}, in the future")
    notes: list[str] = []
    with db.transaction() as conn:
        same = next((x for x in db.swaps(conn, site_id, meter_id) if x.ts == swap.ts), None)
        if same is not None:
            if (same.old_final, same.new_initial) == (swap.old_final, swap.new_initial):
                return [f"meter {meter_id}: the swap at {swap.ts.isoformat()} is already recorded"]
            raise SwapRejected(
                f"meter {meter_id}: another swap is recorded at {swap.ts.isoformat()} "
                f"(old final {same.old_final}, new initial {same.new_initial}, by {same.by})"
            )
        across: list[tuple[Target, FindingRow | None]] = []
        for target in targets:
            latest = db.state_before(conn, site_id, target.series, END_OF_TIME)
            if latest is None or latest[0] < ms(swap.ts):
                continue  # bridged when the readings across it are accounted
            holes = db.findings_across(conn, site_id, target.series, BRIDGED, swap.ts)
            if not holes and latest[1].good.ts >= swap.ts:
                raise SwapRejected(
                    f"meter {meter_id}: the readings around {swap.ts.isoformat()} are already "
                    "accounted and show no break in the counter there; check the time"
                )
            across.append((target, holes[0] if holes else None))
        db.add_swap(conn, site_id, meter_id, swap, now)
        for target, hole in across:
            notes.append(_correct(conn, site_id, target, hole, swap))
    log.info(
        "meter swap recorded",
        extra=fields(site=site_id, meter=meter_id, at=swap.ts.isoformat(), by=swap.by),
    )
    return notes


def _correct(
    conn: sqlite3.Connection,
    site_id: str,
    target: Target,
    hole: FindingRow | None,
    swap: Replacement,
) -> str:
    """Account the readings across a swap recorded after them again, now bridged (the
    swap is stored in `conn` already). SwapRejected when it does not fit them."""
    if hole is None:  # the reading after it was not judged yet: the next one will
        account(conn, site_id, target, (), since=ms(swap.ts))
        return f"{target.series}: the readings after {swap.ts.isoformat()} accounted again"
    f = hole.finding
    result = deltas(
        [Sample(f.start, f.before), Sample(f.end, f.after)],
        target.spec,
        [scaled(swap, target.scale)],
    )
    if result.unknown:
        raise SwapRejected(f"{target.series}: {result.unknown[0].detail}")
    account(conn, site_id, target, (), since=ms(swap.ts))
    return (
        f"{target.series}: {f.start.isoformat()} .. {f.end.isoformat()} was "
        f"{hole.counted:g} ({f.issue.value}), now {result.total:g} across the swap"
    )
