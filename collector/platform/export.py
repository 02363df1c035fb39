"""A period's indicators as JSON or CSV (`energy-collector platform export`).

JSON: the computed dict, unrounded, NaN and infinity as null. CSV: UTF-8 with a
byte-order mark (Excel on Chinese Windows reads it, as the report's CSV), one row per
indicator, then one per data-quality figure; values unrounded (an exchange file, not a
display: the platform does its own rounding), None empty, headings in the reader's
language."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Final

from collector.reports.csvfile import CSV_BOM
from collector.reports.render import json_safe
from greengauge.common.i18n import N_, _

CSV_HEADER: Final = (
    N_("section"),
    N_("period"),
    N_("key"),
    N_("of"),
    N_("code"),
    N_("name_zh"),
    N_("name_en"),
    N_("value"),
    N_("unit"),
    N_("code_from"),
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _flat(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(value, list):
        yield prefix, ";".join(_cell(x) for x in value)
    else:
        yield prefix, value


def render_csv(upload: dict[str, Any]) -> str:
    buffer = io.StringIO(CSV_BOM)
    buffer.seek(0, io.SEEK_END)
    writer = csv.writer(buffer)
    writer.writerow([_(h) for h in CSV_HEADER])
    period = f"{upload['period']}:{upload['label']}"
    for r in upload["indicators"]:
        writer.writerow(
            [
                "indicator",
                period,
                r["key"],
                _cell(r["of"]),
                _cell(r["code"]),
                r["name_zh"],
                r["name_en"],
                _cell(r["value"]),
                r["unit"],
                _cell(r["code_from"]),
            ]
        )
    for key, value in _flat("", upload["quality"]):
        writer.writerow(["quality", period, key, "", "", "", "", _cell(value), "", ""])
    return buffer.getvalue()


def render(upload: dict[str, Any], fmt: str) -> str:
    if fmt == "csv":
        return render_csv(upload)
    return json.dumps(json_safe(upload), indent=2, ensure_ascii=False, allow_nan=False)
