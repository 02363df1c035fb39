"""The counts the running collector reports, as one snapshot.

The composition root (collector.app) fills it from the parts it built; the metrics
read only this, so no part's internals are the metrics' business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DiskStat:
    name: str
    failing: bool
    failures: int


@dataclass(frozen=True, slots=True)
class AccountingStat:
    readings_used: int
    corrections: int
    late_readings: int
    too_old_readings: int


@dataclass(frozen=True, slots=True)
class Stats:
    messages: int = 0
    values_written: int = 0
    store_writes: int = 0
    store_faults: int = 0
    pending: int = 0
    spool_depth: int = 0
    dead_letters: int = 0
    dead_letter_bytes: int = 0
    dead_letters_truncated: int = 0
    dead_letter_files_deleted: int = 0
    dead_letter_repeats: int = 0
    dead_letters_pending: int = 0
    dead_letter_repaired_bytes: int = 0
    disks: Sequence[DiskStat] = ()
    sequence_gaps: int = 0
    sequence_missing: int = 0
    sequence_repeats: int = 0
    sequence_epochs: int = 0
    sequence_agents_forgotten: int = 0
    mqtt_connected: bool = False
    stream_subscribers: int = 0
    status_rejected: int = 0
    statuses_evicted: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    """messages dead-lettered as invalid, by topic kind"""
    failed: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """messages whose handling raised, by (topic kind, stage)"""
    ack_overdue: int = 0
    latest_meters: int | None = None
    """None when the collector keeps no latest-readings table"""
    latest_evicted: int = 0
    accounting: AccountingStat | None = None
