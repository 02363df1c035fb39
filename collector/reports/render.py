"""The monthly report in one of its formats: JSON (unrounded), table or CSV."""

from __future__ import annotations

import json
import math
from typing import Any

from collector.reports.csvfile import render_csv
from collector.reports.table import render_table


def json_safe(value: Any) -> Any:
    """NaN and infinity (not JSON) as null, the way the table prints them as '-'."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(json_safe(report), indent=2, ensure_ascii=False, allow_nan=False)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)
