"""Messages from paho's thread reach the event loop in order, many per wake-up, and one
that fails does not take the later ones with it."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from collector.handoff import Handoff


async def test_items_from_threads_arrive_in_order_in_bursts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    got: list[tuple[int, int]] = []
    wakeups = 0
    handoff: Handoff[tuple[int, int]] = Handoff(loop, got.append)
    original = loop.call_soon_threadsafe

    def counting(*args: Any) -> asyncio.Handle:
        nonlocal wakeups
        wakeups += 1
        return original(*args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)

    def produce(thread: int) -> None:
        for index in range(2000):
            handoff.put((thread, index))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    await asyncio.sleep(0.05)
    assert len(got) == 6000
    for thread_id in range(3):
        assert [i for t, i in got if t == thread_id] == list(range(2000))
    assert wakeups < 6000 / 4


async def test_a_failing_item_does_not_lose_the_later_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[int] = []

    def consume(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        got.append(item)

    handoff: Handoff[int] = Handoff(asyncio.get_running_loop(), consume)
    with caplog.at_level(logging.ERROR):
        for item in range(4):
            handoff.put(item)
        await asyncio.sleep(0.01)
    assert got == [0, 2, 3]
    assert "handing a message to the event loop failed" in caplog.text
