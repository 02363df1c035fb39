"""Wall-clock aligned ticks: a 1 s meter is read near each whole second, a 60 s meter near
each whole minute, and a late read never shifts the ticks after it. Pure."""

from __future__ import annotations

import math


def next_tick(now: float, interval: float) -> float:
    """The first multiple of `interval` (in epoch seconds) strictly after `now`."""
    tick = math.floor(now / interval + 1) * interval
    # Float division can land a hair below `now` for huge epochs; step on in that case.
    return tick if tick > now else tick + interval


def last_tick(now: float, interval: float) -> float:
    """The last multiple of `interval` (in epoch seconds) at or before `now`: the tick a
    read that began at `now` belongs to."""
    count = math.floor(now / interval)
    # Float division can land a hair on either side of a whole multiple: the tick itself
    # (computed as count * interval, as next_tick does) decides.
    if (count + 1) * interval <= now:
        count += 1
    elif count * interval > now:
        count -= 1
    return count * interval
