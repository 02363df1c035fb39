"""Items from another thread (paho's network thread) to the event loop, in order, with one
wake-up of the loop per burst instead of one per item.

`call_soon_threadsafe` writes to the loop's self-pipe and takes its lock on every call;
under load messages arrive faster than the loop turns, and the ones that arrive while a
hand-off is pending ride along with it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, consume: Callable[[T], None]) -> None:
        self._loop = loop
        self._consume = consume
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, item: T) -> None:
        """From any thread: `consume(item)` runs on the loop, after every earlier item."""
        with self._lock:
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, deque()
            self._scheduled = False
        for item in items:
            # As the loop does for a callback of its own: one failing item is logged and
            # does not take the items after it along.
            try:
                self._consume(item)
            except Exception:
                log.exception("handing a message to the event loop failed")
