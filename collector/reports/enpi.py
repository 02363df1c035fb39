"""The report's energy baselines (ISO 50001 / ISO 50006): per configured baseline, daily
energy (kgce) regressed on its relevant variables over the baseline period, the model's
adequacy, and against it the report month's normalised EnPI (actual / expected energy)
and the CUSUM of savings day by day."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from collector.accounting.core.baseline import (
    MAX_CV_RMSE,
    MAX_CV_RMSE_SOURCE,
    MIN_R2,
    MIN_R2_SOURCE,
    MIN_T,
    MIN_T_SOURCE,
    THRESHOLD_CONFIDENCE,
    BaselineError,
    Fit,
    cusum,
    fit,
)
from collector.accounting.db import AccountingDB, ms
from collector.accounting.queries import line_totals, site_totals
from collector.baselines import EnergyBaseline
from collector.plant import AccountingConfig, SiteConfig
from collector.reports.period import local_days, month_bounds, site_unit

GRANULARITY: Final = "day"
"""One observation per local day with data: a month has enough of them for a model on
two or three variables, which months would not give within a year."""


class _Days:
    """The days of a span with energy data, their variables and energy."""

    def __init__(self) -> None:
        self.dates: list[str] = []
        self.rows: list[list[float]] = []
        self.energy: list[float] = []


def _observe(
    config: AccountingConfig,
    db: AccountingDB,
    site: SiteConfig,
    baseline: EnergyBaseline,
    span: tuple[datetime, datetime],
    now: datetime,
) -> _Days:
    """Each whole local day of `span` before `now` with energy data and, where the model
    uses them, degree days."""
    out = _Days()
    for start, end in local_days(*span):
        if end > now:
            break
        a, b = ms(start), ms(end)
        if baseline.line is None:
            kgce, _, _, output, quality = site_totals(db, config, site, a, b)
        else:
            kgce, _, _, output, quality = line_totals(db, config, site, baseline.line, a, b)
        if quality is None:
            continue  # no readings that day: not an observation
        weather = site.degree_days.of(start.date()) if site.degree_days else None
        values: list[float] = []
        for variable in baseline.variables:
            if variable == "output":
                values.append(output)
            elif weather is not None:
                values.append(weather[0] if variable == "hdd" else weather[1])
        if len(values) < len(baseline.variables):
            continue  # no degree days for the day
        out.dates.append(start.date().isoformat())
        out.rows.append(values)
        out.energy.append(kgce)
    return out


def _units(site: SiteConfig, baseline: EnergyBaseline) -> dict[str, str]:
    output = site.line(baseline.line).output_unit if baseline.line else site_unit(site)
    units = {"output": f"{output}/d", "hdd": "K·d", "cdd": "K·d"}
    return {v: units[v] for v in baseline.variables}


def _checks(model: Fit) -> list[dict[str, Any]]:
    significance = [
        {
            "statistic": f"t_{name}",
            "value": t,
            "limit": MIN_T,
            "rule": "|t| >=",
            "passes": passes,
            "source": MIN_T_SOURCE,
            "confidence": THRESHOLD_CONFIDENCE.value,
        }
        for name, t, passes in zip(model.variables, model.t_stats, model.t_passes, strict=True)
    ]
    return [
        *significance,
        {
            "statistic": "r2",
            "value": model.r2,
            "limit": MIN_R2,
            "rule": ">=",
            "passes": model.r2_passes,
            "source": MIN_R2_SOURCE,
            "confidence": THRESHOLD_CONFIDENCE.value,
        },
        {
            "statistic": "cv_rmse",
            "value": model.cv_rmse,
            "limit": MAX_CV_RMSE,
            "rule": "<=",
            "passes": model.cv_rmse_passes,
            "source": MAX_CV_RMSE_SOURCE,
            "confidence": THRESHOLD_CONFIDENCE.value,
        },
    ]


def baseline_figures(
    config: AccountingConfig,
    db: AccountingDB,
    site: SiteConfig,
    baseline: EnergyBaseline,
    span: tuple[datetime, datetime],
    now: datetime,
) -> dict[str, Any]:
    """One baseline: the model over its period, and the report month (`span`) against it."""

    period = (
        month_bounds(baseline.first_month, site)[0],
        month_bounds(baseline.last_month, site)[1],
    )
    out: dict[str, Any] = {
        "baseline": baseline.name,
        "line": baseline.line,
        "energy_unit": "kgce/d",
        "granularity": GRANULARITY,
        "first_month": baseline.first_month,
        "last_month": baseline.last_month,
        "variables": list(baseline.variables),
        "variable_units": _units(site, baseline),
        "degree_days_source": site.degree_days.source
        if site.degree_days and {"hdd", "cdd"} & set(baseline.variables)
        else None,
    }
    known = _observe(config, db, site, baseline, period, now)
    out["observations"] = len(known.energy)
    try:
        model = fit(baseline.variables, known.rows, known.energy)
    except BaselineError as exc:
        return out | {"status": "no_model", "reason": str(exc)}
    out |= {
        "status": "ok",
        "coefficients": {"intercept": model.intercept}
        | dict(zip(model.variables, model.coefficients, strict=True)),
        "r2": model.r2,
        "cv_rmse": model.cv_rmse,
        "checks": _checks(model),
        "adequate": model.adequate,
    }
    now_days = _observe(config, db, site, baseline, span, now)
    steps = cusum(model, now_days.rows, now_days.energy)
    actual = math.fsum(s.actual for s in steps)
    expected = math.fsum(s.expected for s in steps)
    out["reporting"] = {
        "days": len(steps),
        "actual_kgce": actual,
        "expected_kgce": expected,
        "savings_kgce": math.fsum(s.savings for s in steps),
        "normalised_enpi": actual / expected if steps and expected > 0 else None,
        "cusum": [
            {
                "date": day,
                "actual_kgce": s.actual,
                "expected_kgce": s.expected,
                "savings_kgce": s.savings,
                "cusum_kgce": s.cusum,
            }
            for day, s in zip(now_days.dates, steps, strict=True)
        ],
    }
    return out


def baselines(
    config: AccountingConfig,
    db: AccountingDB,
    site: SiteConfig,
    span: tuple[datetime, datetime],
    now: datetime,
) -> list[dict[str, Any]]:
    return [baseline_figures(config, db, site, b, span, now) for b in site.energy_baselines]
