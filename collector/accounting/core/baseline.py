"""An energy baseline (ISO 50001 / ISO 50006): energy regressed on its relevant variables
over a baseline period, judged for adequacy, then used to predict the energy of a
reporting period; the difference accumulated is the CUSUM of savings.

The least-squares fit is numpy's (`numpy.linalg.lstsq`, an SVD solver), not hand-rolled:
it stays correct when the variables are nearly collinear, where the normal equations lose
digits. The statistics follow their usual definitions:

    R^2       = 1 - SSE / SST
    CV(RMSE)  = sqrt(SSE / (n - p)) / mean(y)     (ASHRAE Guideline 14: n - p degrees of freedom)
    t_j       = b_j / sqrt(s^2 [(X'X)^-1]_jj),  s^2 = SSE / (n - p)

with n observations, p fitted parameters (the intercept included), SSE the sum of squared
residuals and SST the sum of squares about the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from collector.accounting.core.factors import Confidence

MIN_R2: Final = 0.75
MIN_R2_SOURCE: Final = (
    "R^2 >= 0.75: the adequacy level commonly applied to energy baseline regressions "
    "(e.g. Bonneville Power Administration, Regression for M&V: Reference Guide, 2012, "
    "sec. 5.1.1); ISO 50006:2014 asks for a statistically valid model without fixing a number"
)
MIN_T: Final = 2.0
MIN_T_SOURCE: Final = (
    "|t| >= 2 for each variable's coefficient: about 95 % confidence that the variable is "
    "relevant, the rule of thumb of IPMVP-based regression guides (e.g. Bonneville Power "
    "Administration, Regression for M&V: Reference Guide, 2012)"
)
MAX_CV_RMSE: Final = 0.20
MAX_CV_RMSE_SOURCE: Final = (
    "CV(RMSE) <= 20 %: ASHRAE Guideline 14-2014, requirement on a whole-facility baseline "
    "model for energy use (reporting period under 12 months), as commonly quoted"
)
THRESHOLD_CONFIDENCE: Final = Confidence.MEDIUM
"""Both limits are read from secondary summaries of the documents, not their text."""


class BaselineError(ValueError):
    """The data cannot give a model (too few observations, a constant variable)."""


@dataclass(frozen=True)
class Fit:
    """A fitted baseline: energy = intercept + sum(coefficient x variable)."""

    variables: tuple[str, ...]
    intercept: float
    coefficients: tuple[float, ...]
    n: int
    r2: float
    cv_rmse: float
    mean: float
    t_stats: tuple[float, ...]
    """Each variable's coefficient over its standard error (infinite for an exact fit)."""

    @property
    def parameters(self) -> int:
        return len(self.coefficients) + 1

    def predict(self, values: Sequence[float]) -> float:
        if len(values) != len(self.coefficients):
            raise BaselineError(
                f"the model needs {len(self.coefficients)} variables "
                f"{list(self.variables)}, got {len(values)}"
            )
        return self.intercept + math.fsum(
            c * v for c, v in zip(self.coefficients, values, strict=True)
        )

    @property
    def r2_passes(self) -> bool:
        return self.r2 >= MIN_R2

    @property
    def cv_rmse_passes(self) -> bool:
        return self.cv_rmse <= MAX_CV_RMSE

    @property
    def t_passes(self) -> tuple[bool, ...]:
        return tuple(abs(t) >= MIN_T for t in self.t_stats)

    @property
    def adequate(self) -> bool:
        return self.r2_passes and self.cv_rmse_passes and all(self.t_passes)


def fit(variables: Sequence[str], rows: Sequence[Sequence[float]], energy: Sequence[float]) -> Fit:
    """Least squares of `energy` on the columns of `rows` (one row per observation, one
    column per variable) and an intercept."""
    n, p = len(energy), len(variables) + 1
    if len(rows) != n or any(len(r) != len(variables) for r in rows):
        raise BaselineError(f"{n} energy values need {n} rows of {len(variables)} variables")
    if n <= p:
        raise BaselineError(
            f"{n} observations cannot fit {p} parameters: at least {p + 1} are needed"
        )
    x = np.column_stack([np.ones(n), np.asarray(rows, dtype=float).reshape(n, p - 1)])
    y = np.asarray(energy, dtype=float)
    for k, name in enumerate(variables, start=1):
        if np.ptp(x[:, k]) == 0:
            raise BaselineError(f"variable {name!r} does not vary over the baseline period")
    solution, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    if rank < p:
        raise BaselineError(f"the variables {list(variables)} are collinear over the period")
    residuals = y - x @ solution
    sse = float(residuals @ residuals)
    mean = float(y.mean())
    sst = float(((y - mean) ** 2).sum())
    errors = np.sqrt(sse / (n - p) * np.diag(np.linalg.inv(x.T @ x)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stats = solution / errors
    return Fit(
        variables=tuple(variables),
        intercept=float(solution[0]),
        coefficients=tuple(float(c) for c in solution[1:]),
        n=n,
        r2=1.0 - sse / sst if sst else math.nan,
        cv_rmse=math.sqrt(sse / (n - p)) / mean if mean else math.nan,
        mean=mean,
        t_stats=tuple(
            float(t) if math.isfinite(t) else math.copysign(math.inf, c)
            for t, c in zip(t_stats[1:], solution[1:], strict=True)
        ),
    )


@dataclass(frozen=True)
class Step:
    actual: float
    expected: float
    savings: float
    """expected - actual: positive when less energy was used than the baseline predicts."""
    cusum: float
    """Savings accumulated from the start of the reporting period up to this step."""


def cusum(model: Fit, rows: Sequence[Sequence[float]], actual: Sequence[float]) -> list[Step]:
    """The model's prediction beside each actual value, and the running sum of savings."""
    steps: list[Step] = []
    savings: list[float] = []
    for values, used in zip(rows, actual, strict=True):
        expected = model.predict(values)
        savings.append(expected - used)
        steps.append(Step(used, expected, savings[-1], math.fsum(savings)))
    return steps
