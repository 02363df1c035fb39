"""The indicator catalogue (collector/data/platform_catalogue.yaml): what the platform is
sent, the class of every energy carrier, and the data-quality thresholds, each with its
source and confidence. The platform's codes are not public: every code may be null in
the file and is then the site's configured one (`platform.codes`)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.accounting.core.factors import Confidence
from collector.plant import Carrier

FILE = "platform_catalogue.yaml"
Period = Literal["slot", "day", "month"]
PERIODS: tuple[Period, ...] = ("slot", "day", "month")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    text: str = Field(min_length=1)
    confidence: Confidence


class Indicator(_Model):
    key: str = Field(pattern=r"^[a-z_]+$")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    unit: str = Field(
        min_length=1, description="native: the carrier's unit; output: the line's output unit"
    )
    periods: tuple[Period, ...] = Field(min_length=1)
    per: Literal["site", "carrier", "line", "meter"]
    code: str | None = None
    source: Source


class CarrierClass(_Model):
    class_: Literal["primary", "secondary", "working_medium"] = Field(alias="class")
    name_zh: str = Field(min_length=1)
    code: str | None = None
    source: Source


class Quality(_Model):
    completeness_min: float = Field(gt=0, le=1)
    consistency_max: float = Field(gt=0, lt=1)
    day_start_offset_max_s: float = Field(ge=0)
    month_start_offset_max_s: float = Field(ge=0)
    source: Source


class Catalogue(_Model):
    version: str
    sources: dict[str, Source]
    quality: Quality
    slot_minutes: tuple[int, ...]
    slot_source: Source
    indicators: tuple[Indicator, ...]
    carriers: dict[Carrier, CarrierClass]

    @model_validator(mode="after")
    def _complete(self) -> Catalogue:
        keys = [x.key for x in self.indicators]
        if len(set(keys)) != len(keys):
            raise ValueError("indicators named twice")
        missing = sorted(c.value for c in Carrier if c not in self.carriers)
        if missing:
            raise ValueError(f"carriers without a class: {missing}")
        return self

    def indicator(self, key: str) -> Indicator:
        return next(x for x in self.indicators if x.key == key)


def parse(text: str) -> Catalogue:
    raw: Any = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{FILE}: not a mapping")
    return Catalogue.model_validate(raw)


@cache
def catalogue() -> Catalogue:
    return parse(resources.files("collector").joinpath("data", FILE).read_text(encoding="utf-8"))
