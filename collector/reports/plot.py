"""The monthly report's plot: each line's intensity per day against its benchmark."""

from __future__ import annotations

import math
from pathlib import Path

from collector.accounting.db import AccountingDB
from collector.plant import (
    AccountingConfig,
    resolve_benchmark,
)
from collector.reports.build import daily


def plot(config: AccountingConfig, db: AccountingDB, site_id: str, month: str, path: Path) -> None:
    """Intensity per day of each line against its benchmark and baseline (PNG, Agg)."""
    import matplotlib  # noqa: PLC0415 - only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    site = config.site(site_id)
    assert site is not None
    series = daily(config, db, site_id, month)
    fig, axes = plt.subplots(
        len(series) or 1, 1, figsize=(10, 3 * max(1, len(series))), squeeze=False
    )
    for ax, (line_id, points) in zip(axes[:, 0], series.items(), strict=False):
        judged = resolve_benchmark(site.line(line_id))
        days = [d.day for d, _ in points]
        values = [math.nan if v is None else v for _, v in points]
        ax.plot(days, values, marker="o", label=f"{line_id} ({judged.unit})")
        ax.axhline(
            judged.benchmark, color="green", linestyle="--", label=f"benchmark {judged.benchmark:g}"
        )
        ax.axhline(
            judged.baseline, color="red", linestyle="--", label=f"baseline {judged.baseline:g}"
        )
        ax.set_title(f"{site_id} {line_id}: {judged.name}, {month}")
        ax.set_xlabel("day of month")
        ax.set_ylabel(judged.unit)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
