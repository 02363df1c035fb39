"""The collector's spool on a real SQLite file: order, chunks, restart."""

from __future__ import annotations

from pathlib import Path

from collector.spool import Spool


def test_spooled_messages_replay_in_order_in_chunks_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path)
    spool.append([(f"t/{i}", f"payload {i}".encode(), 10) for i in range(3)])
    spool.append([(f"t/{i}", f"payload {i}".encode(), 10) for i in range(3, 7)])
    assert spool.depth == 7
    chunk = spool.oldest(max_values=25)
    assert [c.topic for c in chunk] == ["t/0", "t/1"]
    spool.remove_through(chunk[-1].id)
    # No close(): a killed collector never gets to it.
    reopened = Spool(path)
    assert reopened.depth == 5
    assert [c.payload for c in reopened.oldest(max_values=1000)] == [
        f"payload {i}".encode() for i in range(2, 7)
    ]


def test_a_message_larger_than_a_chunk_still_comes_out(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    spool.append([("big", b"x", 500), ("small", b"y", 1)])
    assert [c.topic for c in spool.oldest(max_values=100)] == ["big"]
    assert spool.oldest(max_values=100)[0].values == 500
