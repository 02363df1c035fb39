"""The monthly report's plot, drawn from the report's figures (PNG, Agg): per line, the
intensity of each day on a date axis over the shaded benchmark bands, the month's
intensity, the day's output beside it, and marks where the data are weak (gaps, counter
findings such as meter swaps, alerts corrected by late readings); then the CUSUM of
savings against each energy baseline. A month with little data says so on its panel."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from greengauge.common.i18n import _

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LITTLE_DATA_DAYS: Final = 3
"""Fewer days with an intensity than this: the panel says the month has little data."""
CJK_FONTS: Final = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC")
"""Fallbacks for Chinese labels, used when installed (Debian: fonts-wqy-microhei)."""
CJK_FILES: Final = ("wqy-microhei", "notosanscjk", "sourcehansans")
FIGURE_WIDTH: Final = 11.0
PANEL_HEIGHT: Final = 3.6
ISSUE_COLOURS: Final = {"replacement": "purple", "reset": "darkorange", "jump": "crimson"}


def _x(report: dict[str, Any], stamp: str) -> float:
    """Where a time of the month falls on the x axis: days since the month began (the
    day d is drawn at d + 0.5, its noon)."""
    start = datetime.fromisoformat(report["from"])
    return (datetime.fromisoformat(stamp) - start).total_seconds() / 86_400


def _dates(ax: Axes, report: dict[str, Any]) -> None:
    """Label the x axis with the days' dates (MM-DD), about ten of them."""
    days = [d["date"] for d in report["days"]]
    step = max(1, len(days) // 10)
    ax.set_xticks([k + 0.5 for k in range(0, len(days), step)], [d[5:] for d in days[::step]])
    ax.set_xlim(0, max(1, len(days)))


def _fonts() -> list[str]:
    """The font families to draw with: DejaVu Sans, then a CJK font for Chinese labels."""
    from matplotlib import font_manager  # noqa: PLC0415

    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not installed & set(CJK_FONTS):
        # matplotlib's font cache predates a font installed later (fonts-wqy-microhei):
        # add the CJK files it has not seen.
        for path in font_manager.findSystemFonts():
            if any(k in Path(path).name.lower() for k in CJK_FILES):
                font_manager.fontManager.addfont(path)
        installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in CJK_FONTS if f in installed)]


def _line_panel(ax: Axes, report: dict[str, Any], index: int) -> None:
    line = report["lines"][index]
    bench = line["benchmark"]
    unit = line["intensity_unit"]
    days = [k + 0.5 for k in range(len(report["days"]))]
    values = [d["lines"][index]["intensity"] for d in report["days"]]
    output = [d["lines"][index]["output"] for d in report["days"]]
    known = [v for v in values if v is not None]

    # Bands: below the benchmark (leading), up to the baseline (compliant), above it.
    low, high = sorted((bench["benchmark"], bench["baseline"]))
    top = max([high * 1.25, *known]) if known else high * 1.25
    ax.axhspan(
        0,
        low,
        color="tab:green",
        alpha=0.12,
        label=_("benchmark {value:g}").format(value=bench["benchmark"]),
    )
    ax.axhspan(
        low,
        high,
        color="gold",
        alpha=0.15,
        label=_("baseline {value:g}").format(value=bench["baseline"]),
    )
    ax.axhspan(high, top, color="tab:red", alpha=0.10)
    ax.set_ylim(0, top)

    ax.plot(
        days,
        [math.nan if v is None else v for v in values],
        marker="o",
        color="tab:blue",
        label=_("{line} per day").format(line=line["line"]),
    )
    if line["intensity"] is not None:
        ax.axhline(
            line["intensity"],
            color="tab:blue",
            linestyle="--",
            linewidth=1,
            label=_("month {value:.4g}").format(value=line["intensity"]),
        )
    _marks(ax, report, line["line"])

    twin = ax.twinx()
    twin.bar(days, output, width=0.8, color="grey", alpha=0.25, label=_("output"))
    twin.set_ylabel(_("output ({unit})").format(unit=line["output_unit"]))
    twin.set_ylim(0, max([*output, 1.0]) * 1.6)

    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_title(f"{report['site']} {line['line']}: {bench['name']}, {report['month']}")
    ax.set_ylabel(unit)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, loc="upper left", fontsize="x-small", ncols=4)
    if len(known) < LITTLE_DATA_DAYS:
        ax.text(
            0.5,
            0.5,
            _("little data: {known} of {days} days with enough output").format(
                known=len(known), days=len(days)
            ),
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize="large",
            bbox={"facecolor": "white", "alpha": 0.8},
        )


def _marks(ax: Axes, report: dict[str, Any], line: str) -> None:
    """Gaps shaded, counter findings and corrected alerts marked, each once in the legend."""
    labelled: set[str] = set()

    def label(text: str) -> str | None:
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for k, row in enumerate(report["days"]):
        if row["gap"]:
            ax.axvspan(k, k + 1, color="grey", alpha=0.2, lw=0, label=label(_("gap")))
    for c in report["counters"]:
        colour = ISSUE_COLOURS.get(c["issue"], "black")
        ax.axvline(
            _x(report, c["from"]),
            color=colour,
            linestyle=":",
            label=label(c["issue"]),
        )
    for c in report["late_corrections"]:
        if c["line"] != line:
            continue
        ax.plot(
            [_x(report, c["at"])],
            [ax.get_ylim()[1] * 0.95],
            marker="v",
            color="black",
            linestyle="none",
            label=label(_("corrected later")),
        )


def _cusum_panel(ax: Axes, report: dict[str, Any], baseline: dict[str, Any]) -> None:
    steps = baseline["reporting"]["cusum"]
    days = [_x(report, s["date"] + "T12:00" + report["from"][19:]) for s in steps]
    ax.axhline(0, color="black", linewidth=0.8)
    ax.fill_between(days, [s["cusum_kgce"] for s in steps], color="tab:green", alpha=0.2)
    ax.plot(days, [s["cusum_kgce"] for s in steps], marker="o", color="tab:green", label="CUSUM")
    ax.set_title(
        _(
            "CUSUM of savings against the energy baseline of {name} "
            "(R² {r2:.3f}, CV(RMSE) {cv:.1%}{verdict})"
        ).format(
            name=baseline["baseline"],
            r2=baseline["r2"],
            cv=baseline["cv_rmse"],
            verdict="" if baseline["adequate"] else _(", NOT adequate"),
        )
    )
    ax.set_ylabel("kgce")
    if len(steps) < LITTLE_DATA_DAYS:
        ax.text(
            0.5,
            0.5,
            _("little data: {known} days").format(known=len(steps)),
            transform=ax.transAxes,
            ha="center",
        )


def plot(report: dict[str, Any], path: Path) -> None:
    """Write the report's plot to `path` (PNG)."""
    import matplotlib  # noqa: PLC0415 - only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    # A family list, not font.sans-serif: only the family list falls back glyph by glyph.
    with matplotlib.rc_context({"font.family": _fonts()}):
        fig = figure(report)
        fig.savefig(path, dpi=100)
    plt.close(fig)


def figure(report: dict[str, Any]) -> Figure:
    """The report's figure: a panel per line, then one per fitted energy baseline."""
    import matplotlib  # noqa: PLC0415 - only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    baselines = [b for b in report["energy_baselines"] if b["status"] == "ok"]
    panels = len(report["lines"]) + len(baselines)
    fig, axes = plt.subplots(
        max(1, panels),
        1,
        figsize=(FIGURE_WIDTH, PANEL_HEIGHT * max(1, panels)),
        squeeze=False,
        sharex=True,
    )
    for k in range(len(report["lines"])):
        _line_panel(axes[k, 0], report, k)
    for k, b in enumerate(baselines, start=len(report["lines"])):
        _cusum_panel(axes[k, 0], report, b)
    _dates(axes[-1, 0], report)
    if not panels:
        axes[0, 0].text(0.5, 0.5, _("no lines and no energy baselines to draw"), ha="center")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
