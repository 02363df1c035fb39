"""Counter readings in line with the good reading before them: the bulk of any series,
measured without the walker's objects. Pure.

A reading is in line when nothing but its rise comes of it: no gap, fall beyond the
tolerance, wrap or implausible step (a swap between is the caller's to rule out). The
walker measures exactly that rise; `in_line` is the test for one reading, `in_line_run`
the same test over a run of readings at once (numpy), giving the same floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from collector.accounting.core.counters import CounterSpec

MAX_GAP_MS: Final = 300_000
"""Counter readings further apart are a gap (the walker reports it; still measured)."""

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def in_line(spec: CounterSpec, good_t: int, good_v: float, t: int, v: float) -> float | None:
    """The amount the walker measures from its good reading (none waiting after it) to
    the next reading when nothing but that amount comes of it. None: the walker must
    judge the reading."""
    rise = v - good_v
    if rise < -spec.tolerance or t - good_t > MAX_GAP_MS:
        return None
    rise = max(rise, 0.0)
    return rise if spec.fits_seconds(rise, (t - good_t) / 1000) else None


@dataclass(frozen=True, slots=True)
class Run:
    """The leading readings of a run that are in line, one after the other."""

    count: int
    good: Floats
    """After each of them, the good reading's value (jitter within the tolerance keeps
    the higher level); its time is the reading's."""
    amounts: Floats
    """What each measures, from the reading before it."""


def in_line_run(spec: CounterSpec, good_t: int, good_v: float, ts: Ints, vs: Floats) -> Run:
    """`in_line` over readings in time order, from a good reading: how many lead in line,
    and what they measure, as one `in_line` after the other would give it."""
    # Up to the first reading out of line, the good value is the running maximum and the
    # good time the reading before: both are known for every reading at once.
    good = np.maximum.accumulate(np.concatenate(([good_v], vs)))
    dt = np.diff(ts, prepend=good_t)
    rise = vs - good[:-1]
    ok = (rise >= -spec.tolerance) & (dt <= MAX_GAP_MS)
    amount = np.maximum(rise, 0.0)
    if spec.max_rate is not None:
        seconds = dt / 1000
        ok &= amount <= spec.max_rate * seconds / 3600.0 * (1 + 1e-12) + 1e-9
    out = np.flatnonzero(~ok)
    count = int(out[0]) if out.size else len(vs)
    return Run(count, good[1 : count + 1], amount[:count])
