"""Plain-text tables for the command line: aligned columns, numbers to the right. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from greengauge.common.i18n import ljust, rjust, width


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns as wide as their widest cell (in terminal columns: a Chinese character
    takes two); numeric columns right-aligned."""
    cells = [[_text(value) for value in row] for row in rows]
    widths = [max([width(h)] + [width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            rjust(v, w) if num else ljust(v, w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join(
        [line(list(headers)), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    )


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)
