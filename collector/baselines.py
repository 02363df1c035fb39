"""The plant model's energy baselines (ISO 50006): which energy is regressed on which
variables over which months, and the degree days a weather-dependent baseline needs."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from greengauge.common.configfile import read_beside
from greengauge.contract import Id

_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
Variable = Literal["output", "hdd", "cdd"]
"""A relevant variable: the line's (or the site's) output, heating or cooling degree days."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnergyBaseline(_Model):
    """Energy (kgce) of a line, or of the site without `line`, per day, regressed on
    `variables` over the months `first_month` to `last_month` (inclusive)."""

    line: Id | None = Field(default=None, description="the line; none: the site boundary")
    first_month: str = Field(pattern=_MONTH, description="first month of the baseline period")
    last_month: str = Field(pattern=_MONTH, description="last month of the baseline period")
    variables: tuple[Variable, ...] = Field(default=("output",), min_length=1)

    @model_validator(mode="after")
    def _order(self) -> EnergyBaseline:
        if self.last_month < self.first_month:
            raise ValueError(f"baseline {self.name}: last_month is before first_month")
        if len(set(self.variables)) != len(self.variables):
            raise ValueError(f"baseline {self.name}: a variable is named twice")
        return self

    @property
    def name(self) -> str:
        return self.line or "site"


class DegreeDays(_Model):
    """Heating and cooling degree days per local day: a CSV file of `date,hdd,cdd` lines
    (a header line is allowed), with the base temperature and station in `source`."""

    file: Path = Field(description="CSV file; relative to the config file's folder")
    source: str = Field(min_length=1, description="station, base temperatures, publisher")
    _by_day: dict[date, tuple[float, float]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> DegreeDays:
        text, name = read_beside(self.file, info.context)
        self._by_day = parse_degree_days(text, name)
        return self

    def of(self, day: date) -> tuple[float, float] | None:
        """(HDD, CDD) of a local day, if the file has it."""
        return self._by_day.get(day)


_ROW = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*,\s*([^,]+?)\s*,\s*([^,]+?)\s*$")


def parse_degree_days(text: str, name: str) -> dict[date, tuple[float, float]]:
    """`date,hdd,cdd` lines into local date -> (HDD, CDD)."""
    by_day: dict[date, tuple[float, float]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _ROW.match(line)
        try:
            if found is None:
                raise ValueError(line)
            day = date.fromisoformat(found[1])
            hdd, cdd = float(found[2]), float(found[3])
        except ValueError:
            if number == 1 and not line[:1].isdigit():
                continue  # a header
            raise ValueError(
                f"{name}:{number}: expected 'YYYY-MM-DD,hdd,cdd', got {line!r}"
            ) from None
        if not (0 <= hdd < 100 and 0 <= cdd < 100):
            raise ValueError(f"{name}:{number}: degree days must be 0..100 a day: {line!r}")
        if day in by_day:
            raise ValueError(f"{name}:{number}: {day} is given twice")
        by_day[day] = (hdd, cdd)
    if not by_day:
        raise ValueError(f"{name}: no degree days in the file")
    return by_day


def check_baselines(
    baselines: tuple[EnergyBaseline, ...],
    lines: dict[str, str],
    degree_days: DegreeDays | None,
) -> None:
    """Each baseline names a line of the site (`lines`: id -> output unit), a site
    baseline on output needs one output unit, degree days need their file."""
    for b in baselines:
        if b.line is not None and b.line not in lines:
            raise ValueError(f"energy baseline: no line {b.line!r}; lines: {sorted(lines)}")
        if b.line is None and "output" in b.variables and len(set(lines.values())) != 1:
            raise ValueError(
                "energy baseline of the site on output: the lines need one output unit, "
                f"they have {sorted(set(lines.values()))}"
            )
        if {"hdd", "cdd"} & set(b.variables) and degree_days is None:
            raise ValueError(f"energy baseline {b.name}: hdd/cdd need `degree_days` (a file)")
