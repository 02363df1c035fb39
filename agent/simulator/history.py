"""Past readings of the simulated meters, as `energy-collector import` reads them: the
same model the simulator serves (agent.simulator.values, a pure function of unit id and
time), so a history generated up to now joins the live readings without a step. `make
demo` loads a month of it before the live plant starts, so that the report, the plots,
the energy baselines and the dashboard's trends have data at first run."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from agent.simulator.values import simulated_values
from greengauge.contract import UNITS, Quantity

COUNTERS: Final = (Quantity.ENERGY_ACTIVE_IMPORT, Quantity.COUNT)
"""What the history carries: the counters the accounting uses (energy and output)."""


@dataclass(frozen=True)
class SimulatedMeter:
    id: str
    unit_id: int
    quantities: tuple[Quantity, ...]
    """The meter's counters among COUNTERS (those its profile maps)."""


def history_csv(meters: Sequence[SimulatedMeter], start: float, end: float, step: float) -> str:
    """The wide CSV of `energy-collector import`: a `time` column (UTC, ISO 8601) and one
    column `<meter>/<quantity>[<unit>]` per meter and counter, a row every `step` seconds
    from `start` up to (not including) `end` (epoch seconds)."""
    if step <= 0 or end <= start:
        raise ValueError(
            f"history: need start < end and a positive step, got {start}, {end}, {step}"
        )
    columns = [(m, q) for m in meters for q in m.quantities]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", *(f"{m.id}/{q.value}[{UNITS[q]}]" for m, q in columns)])
    t = start
    while t < end:
        row = [datetime.fromtimestamp(t, UTC).isoformat()]
        values = {m.id: simulated_values(m.quantities, m.unit_id, t) for m in meters}
        row += [repr(values[m.id][q]) for m, q in columns]
        writer.writerow(row)
        t += step
    return out.getvalue()
