"""The terminal view: the latest reading of every meter as a table that refreshes in place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.wire import MeterReading, Quantity, ReadingBatch

COLUMNS: tuple[tuple[str, Quantity, float, str], ...] = (
    ("P kW", Quantity.POWER_ACTIVE, 1e-3, "{:>9.2f}"),
    ("E import kWh", Quantity.ENERGY_ACTIVE_IMPORT, 1.0, "{:>13.2f}"),
    ("U1 V", Quantity.VOLTAGE_L1, 1.0, "{:>6.1f}"),
    ("I1 A", Quantity.CURRENT_L1, 1.0, "{:>7.2f}"),
    ("PF", Quantity.POWER_FACTOR, 1.0, "{:>5.2f}"),
    ("Hz", Quantity.FREQUENCY, 1.0, "{:>6.2f}"),
    ("count", Quantity.COUNT, 1.0, "{:>9.0f}"),
)


@dataclass(frozen=True, slots=True)
class Row:
    site: str
    agent: str
    reading: MeterReading


class LatestReadings:
    def __init__(self) -> None:
        # Rows are built when read, not per reading received (thousands a second).
        self._latest: dict[tuple[str, str, str], MeterReading] = {}

    def update(self, batch: ReadingBatch) -> None:
        latest = self._latest
        site, agent = batch.site, batch.agent
        for reading in batch.readings:
            key = (site, agent, reading.meter)
            known = latest.get(key)
            if known is None or known.ts <= reading.ts:
                latest[key] = reading

    def rows(self) -> list[Row]:
        latest = self._latest
        return [Row(key[0], key[1], latest[key]) for key in sorted(latest)]


def _cell(reading: MeterReading, quantity: Quantity, factor: float, fmt: str) -> str:
    value = reading.values.get(quantity)
    width = len(fmt.format(0.0))
    return fmt.format(value * factor) if value is not None else "-".rjust(width)


def render(rows: list[Row], now: datetime, footer: str) -> str:
    """A plain-text table, one line per meter, with the age of its latest reading."""
    names = [(r.site, r.agent, r.reading.meter) for r in rows]
    widths = [
        max([len(header)] + [len(n[i]) for n in names])
        for i, header in enumerate(("site", "agent", "meter"))
    ]
    value_widths = [len(fmt.format(0.0)) for _, _, _, fmt in COLUMNS]
    header = "  ".join(
        [h.ljust(w) for h, w in zip(("site", "agent", "meter"), widths, strict=True)]
        + [c[0].rjust(w) for c, w in zip(COLUMNS, value_widths, strict=True)]
        + ["age s".rjust(6)]
    )
    lines = [header, "-" * len(header)]
    for row, name in zip(rows, names, strict=True):
        age = (now - row.reading.ts).total_seconds()
        cells = [n.ljust(w) for n, w in zip(name, widths, strict=True)]
        cells += [_cell(row.reading, q, f, fmt) for _, q, f, fmt in COLUMNS]
        cells.append(f"{age:>6.1f}")
        lines.append("  ".join(cells))
    if not rows:
        lines.append("(no readings yet)")
    lines.append("")
    lines.append(footer)
    return "\n".join(lines)
