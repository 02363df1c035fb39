"""Site-level messages: the collector's alerts and the production data a MES reports."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import Field

from greengauge.contract.fields import SCHEMA_VERSION, Id, Timestamp, Value, WireModel

MAX_QUANTITY: Final = 1e12
"""Largest production output one MES report may carry: sums over years stay exact enough."""
MAX_CNY: Final = 1e15
"""Largest monthly value added (CNY): far above any plant, far below float overflow."""


class AlertKind(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class Alert(WireModel):
    """A line's intensity went above its threshold (the benchmark's baseline), or back."""

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Id
    line: Id
    id: int = Field(ge=0, description="the collector's alert id (its accounting database)")
    kind: AlertKind
    ts: Timestamp = Field(description="when the condition had lasted the minimum duration")
    since: Timestamp = Field(description="when the condition began")
    value: Value = Field(description="the intensity at ts")
    threshold: Value
    unit: str = Field(description="the intensity's unit, e.g. kgce/t")
    window: str = Field(description="the window the intensity is taken over, e.g. rolling_1h")
    benchmark: str = Field(description="the benchmark entry the line is judged against")


class ProductionOutput(WireModel):
    """Output of a line over [start, end), as the MES reports it; the same report sent
    again (same line, start, end) replaces the earlier one."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["output"] = "output"
    site: Id
    line: Id
    start: Timestamp
    end: Timestamp
    quantity: Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False)]
    unit: str = Field(min_length=1, description="must be the line's configured output unit")


class ValueAdded(WireModel):
    """A site's value added (CNY) for one calendar month, as the MES or ERP reports it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["value_added"] = "value_added"
    site: Id
    month: str = Field(pattern=r"^[1-9]\d{3}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    cny: Annotated[float, Field(gt=0, le=MAX_CNY, allow_inf_nan=False)]
