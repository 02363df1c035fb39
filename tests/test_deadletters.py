"""Dead letters: bounded entries and files, whole lines only, and held back (unacknowledged)
while the disk is full or read-only, on a real small filesystem."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from disks import fill, small_filesystem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import DeadLetterSettings
from collector.deadletters import DeadLetters, entry_line, files_of, repair
from collector.ingest import Message

TOPIC = "greengauge/v1/s/a/readings"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def entries(path: Path, max_files: int = 100) -> list[dict[str, object]]:
    """Every entry of every file, oldest first; fails on any line that is not whole JSON."""
    found: list[dict[str, object]] = []
    for file in reversed(files_of(path, max_files)):
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file} ends in a partial line"
        found += [json.loads(line) for line in data.splitlines()]
    return found


def test_an_entry_keeps_size_hash_and_a_prefix_only() -> None:
    payload = b"x" * 10_000_000
    line = entry_line(TOPIC, payload, "not JSON", WHEN, 100)
    entry = json.loads(line)
    assert len(line) < 1000
    assert entry["size"] == 10_000_000
    assert entry["sha256"] == hashlib.sha256(payload).hexdigest()
    assert entry["payload"] == "x" * 100 and entry["truncated"] is True
    assert (entry["topic"], entry["reason"]) == (TOPIC, "not JSON")


def test_a_binary_payload_is_kept_as_base64() -> None:
    entry = json.loads(entry_line(TOPIC, b"\xff\xfe\x00", "binary", WHEN, 100))
    assert base64.b64decode(entry["payload_base64"]) == b"\xff\xfe\x00"
    assert entry["truncated"] is False and "payload" not in entry


def test_an_utf8_character_cut_by_the_prefix_is_kept_as_base64() -> None:
    entry = json.loads(entry_line(TOPIC, "é".encode() * 3, "r", WHEN, 3))
    assert base64.b64decode(entry["payload_base64"]) == "é".encode() + b"\xc3"


def test_a_huge_reason_is_bounded() -> None:
    assert len(entry_line(TOPIC, b"", "r" * 1_000_000, WHEN, 10)) < 3000


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 40_000), min_size=1, max_size=60),
    prefix=st.integers(0, 8192),
    max_files=st.integers(1, 4),
)
def test_rotation_bounds_the_bytes_on_disk_and_keeps_whole_lines_newest_last(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], prefix: int, max_files: int
) -> None:
    limits = DeadLetterSettings(payload_prefix=prefix, max_file_bytes=65_536, max_files=max_files)
    path = tmp_path_factory.mktemp("dl") / "dead-letters.jsonl"
    dead = DeadLetters(path, limits)
    acked: list[int] = []
    for index, size in enumerate(sizes):
        dead.add(
            TOPIC,
            f"{index:04}".encode() + bytes([65 + index % 26]) * size,
            f"#{index}",
            functools.partial(acked.append, index),
        )
    assert acked == list(range(len(sizes)))
    files = files_of(path, max_files)
    assert 1 <= len(files) <= max_files
    assert all(f.stat().st_size <= limits.max_file_bytes for f in files)
    assert sum(f.stat().st_size for f in files) <= max_files * limits.max_file_bytes
    kept = entries(path, max_files)
    # What rotation kept is the newest entries, in order, each bounded by the prefix.
    assert [e["reason"] for e in kept] == [
        f"#{i}" for i in range(len(sizes) - len(kept), len(sizes))
    ]
    assert all(e["size"] == sizes[int(str(e["reason"])[1:])] + 4 for e in kept)
    assert all(len(str(e.get("payload", ""))) <= prefix for e in kept)
    assert dead.count == len(sizes)


def test_a_partial_last_line_is_cut_off_on_open_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dead-letters.jsonl"
    whole = entry_line(TOPIC, b"{}", "first", WHEN, 100)
    path.write_bytes(whole + b'{"received": "2026-01-0')
    dead = DeadLetters(path)
    assert dead.repaired_bytes == len(b'{"received": "2026-01-0')
    assert "partial line" in caplog.text
    dead.add(TOPIC, b"[]", "second")
    assert [e["reason"] for e in entries(path)] == ["first", "second"]


@pytest.mark.parametrize("content", [b"", b"no newline at all", b"x" * 200_000, b"a\nb\n"])
def test_repair_keeps_exactly_the_whole_lines(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    repair(path)
    whole = content[: content.rfind(b"\n") + 1]
    assert path.read_bytes() == whole


def test_a_full_disk_holds_the_entries_back_unacknowledged_until_space_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_filesystem(tmp_path / "disk", 256 * 1024) as disk:
        dead = DeadLetters(disk / "dead-letters.jsonl")
        dead.add(TOPIC, b"before", "r0")
        filler = fill(disk)
        acked: list[int] = []
        caplog.set_level(logging.WARNING)
        for index in range(1, 50):
            dead.add(
                TOPIC,
                b"y" * 4000 + bytes([index]),
                f"r{index}",
                functools.partial(acked.append, index),
            )
            dead.write_waiting()  # what the backoff's timer does
        assert acked == [] and dead.pending == 49
        assert dead.fault.condition == "disk full" and dead.fault.failures >= 49
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        # Nothing half-written stays behind: the file is whole lines, the first entry only.
        assert [e["reason"] for e in entries(dead.path)] == ["r0"]
        filler.unlink()
        dead.write_waiting()
        assert acked == list(range(1, 50)) and dead.pending == 0
        assert [e["reason"] for e in entries(dead.path)] == [f"r{i}" for i in range(50)]
        assert not dead.fault.failing and "writable again" in caplog.text


def test_a_read_only_disk_holds_the_entries_back(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", 64 * 1024, read_only=True) as disk:
        dead = DeadLetters(disk / "dead-letters.jsonl")
        acked: list[int] = []
        dead.add(TOPIC, b"x", "r", lambda: acked.append(1))
        assert acked == [] and dead.pending == 1
        assert dead.fault.condition == "read-only filesystem"


async def test_the_retry_runs_by_itself_on_the_event_loop(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", 128 * 1024) as disk:
        dead = DeadLetters(disk / "dead-letters.jsonl")
        filler = fill(disk)
        acked: list[int] = []
        dead.add(TOPIC, b"x" * 5000, "r", lambda: acked.append(1))
        assert acked == []
        filler.unlink()
        for _ in range(100):
            if acked:
                break
            await asyncio.sleep(0.05)
        assert acked == [1] and entries(dead.path)[0]["reason"] == "r"


def test_a_payload_over_the_limit_is_dead_lettered_not_delivered(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dead-letters.jsonl", DeadLetterSettings(payload_prefix=10))
    delivered: list[bytes] = []
    acked: list[str] = []
    receive = dead.size_limited(lambda m: delivered.append(m.payload), 1024)
    receive(Message(TOPIC, b"a" * 1024, lambda: acked.append("small")))
    receive(Message(TOPIC, b"b" * 1025, lambda: acked.append("big")))
    assert delivered == [b"a" * 1024] and acked == ["big"]
    (entry,) = entries(dead.path)
    assert entry["size"] == 1025 and "over the limit of 1024 bytes" in str(entry["reason"])
    assert dead.truncated == 1


def test_a_message_delivered_again_after_a_crash_is_kept_once_and_acked(tmp_path: Path) -> None:
    path = tmp_path / "dead-letters.jsonl"
    DeadLetters(path).add(TOPIC, b"garbage", "not JSON")  # durable, then the ack was lost
    again = DeadLetters(path)  # the restarted collector
    acked: list[str] = []
    again.add(TOPIC, b"garbage", "not JSON", lambda: acked.append("again"))
    again.add("other/topic", b"garbage", "not JSON", lambda: acked.append("other"))
    assert acked == ["again", "other"]
    assert [e["topic"] for e in entries(path)] == [TOPIC, "other/topic"]
    assert (again.repeats, again.count) == (1, 1)


async def test_a_flood_in_one_turn_of_the_event_loop_is_one_write_and_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real_fsync = os.fsync

    def counted(descriptor: int) -> None:
        syncs.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", counted)
    dead = DeadLetters(tmp_path / "dead-letters.jsonl")
    acked: list[int] = []
    for index in range(500):
        dead.add(TOPIC, f"bad {index}".encode(), "r", functools.partial(acked.append, index))
    assert acked == []  # not durable yet: written once the loop turns
    await asyncio.sleep(0)
    assert acked == list(range(500)) and len(syncs) == 1
    assert len(entries(dead.path)) == 500
