"""ISO 50006 energy baselines and the report's breakdowns and comparisons, worked by hand.

The regression, by hand (one variable, five days):

    output x = 1, 2, 3, 4, 5      energy y = 3, 5, 6, 9, 12
    mean x = 3, mean y = 7; Sxy = (-2)(-4) + (-1)(-2) + 0 + 1 x 2 + 2 x 5 = 22; Sxx = 10
    slope = 22 / 10 = 2.2; intercept = 7 - 2.2 x 3 = 0.4
    fitted 2.6, 4.8, 7.0, 9.2, 11.4; residuals 0.4, 0.2, -1.0, -0.2, 0.6
    SSE = 0.16 + 0.04 + 1 + 0.04 + 0.36 = 1.6; SST = 16 + 4 + 1 + 4 + 25 = 50
    R^2 = 1 - 1.6 / 50 = 0.968; CV(RMSE) = sqrt(1.6 / (5 - 2)) / 7 = 0.10433
    s^2 = 1.6 / 3; standard error of the slope sqrt(s^2 / Sxx) = 0.23094; t = 2.2 / 0.23094 = 9.5263

CUSUM of that model over three reporting days (x, y) = (2, 4), (4, 8), (5, 13):
    expected 4.8, 9.2, 11.4; savings 0.8, 1.2, -1.6; CUSUM 0.8, 2.0, 0.4.

The plant month (September-October 2026 the baseline, November the report): the kiln
uses 50 kgce a day plus 0.2 kgce a piece, making 100 + 10 d pieces on the d-th day of a
month; in November it uses 5 kgce a day less than the baseline predicts.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.accounting.core.baseline import MAX_CV_RMSE, MIN_R2, BaselineError, cusum, fit
from collector.accounting.db import AccountingDB, MinuteRow, ms
from collector.accounting.targets import output_series
from collector.baselines import parse_degree_days
from collector.plant import AccountingConfig
from collector.reports.breakdown import month_of
from collector.reports.build import build
from collector.reports.period import local_days

SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTER = datetime(2026, 12, 2, tzinfo=UTC)


# --- the regression, pure -------------------------------------------------------------------


def test_one_variable_fit_as_worked_by_hand() -> None:
    model = fit(["output"], [[1], [2], [3], [4], [5]], [3, 5, 6, 9, 12])
    assert model.coefficients == pytest.approx((2.2,))
    assert model.intercept == pytest.approx(0.4)
    assert model.r2 == pytest.approx(0.968)
    assert model.cv_rmse == pytest.approx(math.sqrt(1.6 / 3) / 7)
    assert model.n == 5 and model.parameters == 2
    assert model.t_stats == pytest.approx((2.2 / math.sqrt(1.6 / 3 / 10),))
    assert model.t_passes == (True,)
    assert MIN_R2 <= 0.968 and model.cv_rmse <= MAX_CV_RMSE
    assert model.adequate


def test_cusum_as_worked_by_hand() -> None:
    model = fit(["output"], [[1], [2], [3], [4], [5]], [3, 5, 6, 9, 12])
    steps = cusum(model, [[2], [4], [5]], [4, 8, 13])
    assert [s.expected for s in steps] == pytest.approx([4.8, 9.2, 11.4])
    assert [s.savings for s in steps] == pytest.approx([0.8, 1.2, -1.6])
    assert [s.cusum for s in steps] == pytest.approx([0.8, 2.0, 0.4])


def normal_equations(rows: list[list[int]], y: list[int]) -> list[Fraction]:
    """(X'X) b = X'y solved exactly (Gauss-Jordan on fractions): the test's own answer."""
    x = [[Fraction(1), *(Fraction(v) for v in r)] for r in rows]
    p = len(x[0])
    a = [
        [sum((r[i] * r[j] for r in x), Fraction(0)) for j in range(p)]
        + [sum((r[i] * v for r, v in zip(x, y, strict=True)), Fraction(0))]
        for i in range(p)
    ]
    for col in range(p):
        pivot = next(r for r in range(col, p) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        a[col] = [v / a[col][col] for v in a[col]]
        for r in range(p):
            if r != col:
                a[r] = [v - a[r][col] * w for v, w in zip(a[r], a[col], strict=True)]
    return [a[i][p] for i in range(p)]


def gram(rows: list[list[int]]) -> list[list[Fraction]]:
    """X'X of the rows with an intercept column, exactly."""
    x = [[1, *r] for r in rows]
    return [
        [sum((Fraction(u[i] * u[j]) for u in x), Fraction(0)) for j in range(3)] for i in range(3)
    ]


def det3(a: list[list[Fraction]]) -> Fraction:
    return (
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    )


@given(
    st.lists(
        st.tuples(st.integers(0, 500), st.integers(0, 30), st.integers(-20, 20)),
        min_size=6,
        max_size=40,
    )
)
def test_two_variable_fit_matches_the_normal_equations(data: list[tuple[int, int, int]]) -> None:
    rows = [[o, h] for o, h, _ in data]
    # energy = 40 + 3 x output + 2 x hdd + noise, kept positive
    y = [40 + 3 * o + 2 * h + e for o, h, e in data]
    try:
        model = fit(["output", "hdd"], rows, y)
    except BaselineError:
        # numpy found the two variables (or a constant one) unable to fit: check that
        # they are indeed collinear or constant, by the determinant of X'X
        assert (
            det3(gram(rows)) == 0
            or len({r[0] for r in rows}) == 1
            or len({r[1] for r in rows}) == 1
        )
        return
    b0, b1, b2 = normal_equations(rows, y)
    assert model.intercept == pytest.approx(float(b0), rel=1e-6, abs=1e-6)
    assert model.coefficients == pytest.approx((float(b1), float(b2)), rel=1e-6, abs=1e-6)
    mean = Fraction(sum(y), len(y))
    sse = sum((v - (b0 + b1 * r[0] + b2 * r[1])) ** 2 for r, v in zip(rows, y, strict=True))
    sst = sum((v - mean) ** 2 for v in y)
    if sst:
        assert model.r2 == pytest.approx(float(1 - sse / sst), abs=1e-6)
    assert model.cv_rmse == pytest.approx(
        math.sqrt(float(sse) / (len(y) - 3)) / float(mean), rel=1e-6, abs=1e-9
    )
    if sse:
        # t of output: b1 / sqrt(s^2 [(X'X)^-1]_11), the inverse's element by cofactors
        a = gram(rows)
        inverse_11 = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det3(a)
        t1 = b1 / Fraction(math.sqrt(float(sse / (len(y) - 3) * inverse_11)))
        assert model.t_stats[0] == pytest.approx(float(t1), rel=1e-5)


@pytest.mark.parametrize(
    ("variables", "rows", "energy", "message"),
    [
        (["output"], [[1], [2]], [1, 2], "2 observations cannot fit 2 parameters"),
        (["output"], [[3], [3], [3], [3]], [1, 2, 3, 4], "'output' does not vary"),
        (["output", "hdd"], [[1, 2], [2, 4], [3, 6], [4, 8]], [1, 2, 3, 5], "collinear"),
        (["output"], [[1], [2]], [1, 2, 3], "3 energy values need 3 rows"),
    ],
)
def test_a_model_that_cannot_be_fitted_says_why(
    variables: list[str], rows: list[list[float]], energy: list[float], message: str
) -> None:
    with pytest.raises(BaselineError, match=message):
        fit(variables, rows, energy)


# --- the plant month ------------------------------------------------------------------------


def plant(**extra: Any) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "p1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [
                        {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                        {"id": "gas", "carrier": "diesel", "role": "boundary"},
                        {"id": "l1", "carrier": "electricity", "line": "kiln"},
                        {"id": "g1", "carrier": "diesel", "line": "kiln"},
                    ],
                    "lines": [
                        {
                            "id": "kiln",
                            "product": "widgets",
                            "output_unit": "pieces",
                            "output": {"meter": "counter", "quantity": "count"},
                            "benchmark": {
                                "custom": {
                                    "name": "test",
                                    "unit": "kgce/pieces",
                                    "benchmark": 0.1,
                                    "baseline": 0.5,
                                    "source": "test",
                                }
                            },
                        }
                    ],
                    **extra,
                }
            ],
        }
    )


BASELINE = {"line": "kiln", "first_month": "2026-09", "last_month": "2026-10"}


def kiln_day(day: date, saved: float = 0.0) -> tuple[float, float]:
    """(kgce, pieces) of the kiln on a day: 50 + 0.2 x pieces, less `saved`."""
    pieces = 100.0 + 10 * day.day
    return 50 + 0.2 * pieces - saved, pieces


def write_days(db: AccountingDB, first: date, last: date, saved: float = 0.0) -> None:
    """One minute at local noon per day: the kiln's electricity carrying its kgce, its
    output, and the incomer twice the kiln's (so half the site is unallocated)."""
    with db.transaction() as conn:
        day = first
        while day <= last:
            kgce, pieces = kiln_day(day, saved)
            minute = ms(datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI))
            db.add_minutes(
                conn,
                "p1",
                [
                    MinuteRow("l1", minute, kgce / 0.1229, kgce, kgce * 4, 0),
                    MinuteRow("incomer", minute, 2 * kgce / 0.1229, 2 * kgce, kgce * 8, 0),
                    MinuteRow("gas", minute, 0, 0, 0, 0),
                    MinuteRow(output_series("kiln"), minute, pieces, 0, 0, 0),
                ],
            )
            day += timedelta(days=1)


@pytest.fixture
def db(tmp_path: Path) -> AccountingDB:
    db = AccountingDB(tmp_path / "accounting.sqlite")
    write_days(db, date(2026, 9, 1), date(2026, 10, 31))
    write_days(db, date(2026, 11, 1), date(2026, 11, 30), saved=5.0)
    return db


def test_the_baseline_recovers_the_plants_model_and_the_cusum_of_savings(
    db: AccountingDB,
) -> None:
    report = build(plant(energy_baselines=[BASELINE]), db, "p1", "2026-11", now=AFTER)
    (b,) = report["energy_baselines"]
    assert b["status"] == "ok" and b["observations"] == 61  # September and October
    assert b["coefficients"]["intercept"] == pytest.approx(50)
    assert b["coefficients"]["output"] == pytest.approx(0.2)
    assert b["r2"] == pytest.approx(1.0)
    assert b["adequate"] is True
    assert b["variable_units"] == {"output": "pieces/d"}
    run = b["reporting"]
    assert run["days"] == 30
    expected = math.fsum(50 + 0.2 * (100 + 10 * d) for d in range(1, 31))
    assert run["expected_kgce"] == pytest.approx(expected)
    assert run["actual_kgce"] == pytest.approx(expected - 150)
    assert run["savings_kgce"] == pytest.approx(150)
    assert run["normalised_enpi"] == pytest.approx((expected - 150) / expected)
    assert [s["cusum_kgce"] for s in run["cusum"]] == pytest.approx([5.0 * d for d in range(1, 31)])
    assert run["cusum"][0]["date"] == "2026-11-01"
    sources = " ".join(c["source"] for c in b["checks"])
    assert "ASHRAE Guideline 14" in sources and "0.75" in sources


def test_a_baseline_period_without_data_says_why(db: AccountingDB) -> None:
    config = plant(
        energy_baselines=[{**BASELINE, "first_month": "2025-01", "last_month": "2025-02"}]
    )
    (b,) = build(config, db, "p1", "2026-11", now=AFTER)["energy_baselines"]
    assert b["status"] == "no_model" and b["observations"] == 0
    assert "0 observations cannot fit 2 parameters" in b["reason"]
    assert "reporting" not in b


def test_degree_days_enter_the_model(db: AccountingDB, tmp_path: Path) -> None:
    # HDD that the energy does not depend on: its coefficient is ~0, output's stays 0.2
    lines = ["date,hdd,cdd"]
    day = date(2026, 9, 1)
    while day <= date(2026, 11, 30):
        lines.append(f"{day},{(day.day * 7) % 11},0")
        day += timedelta(days=1)
    (tmp_path / "dd.csv").write_text("\n".join(lines))
    config = plant(
        energy_baselines=[{**BASELINE, "variables": ["output", "hdd"]}],
        degree_days={"file": str(tmp_path / "dd.csv"), "source": "test station, base 18 C"},
    )
    (b,) = build(config, db, "p1", "2026-11", now=AFTER)["energy_baselines"]
    assert b["coefficients"]["output"] == pytest.approx(0.2)
    assert b["coefficients"]["hdd"] == pytest.approx(0, abs=1e-9)
    assert b["degree_days_source"] == "test station, base 18 C"
    assert b["variable_units"]["hdd"] == "K·d"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"energy_baselines": [{**BASELINE, "line": "nope"}]}, "no line 'nope'"),
        (
            {"energy_baselines": [{**BASELINE, "variables": ["output", "cdd"]}]},
            "hdd/cdd need `degree_days`",
        ),
        (
            {"energy_baselines": [{**BASELINE, "first_month": "2026-11"}]},
            "last_month is before first_month",
        ),
        ({"energy_baselines": [{**BASELINE, "first_month": "2026-13"}]}, "first_month"),
        (
            {"energy_baselines": [{**BASELINE, "variables": ["output", "output"]}]},
            "named twice",
        ),
    ],
)
def test_bad_baseline_settings_are_refused_by_name(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plant(**extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-01-01,3", "expected 'YYYY-MM-DD,hdd,cdd'"),
        ("date,hdd,cdd\n2026-01-01,x,1", ":2: expected"),
        ("2026-01-01,300,0", "0..100"),
        ("2026-01-01,1,0\n2026-01-01,2,0", "given twice"),
        ("# nothing", "no degree days"),
    ],
)
def test_a_bad_degree_day_file_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_degree_days(text, "dd.csv")


def test_degree_days_are_read_by_date() -> None:
    assert parse_degree_days("date,hdd,cdd\n2026-01-01, 12.5 ,0\n", "dd.csv") == {
        date(2026, 1, 1): (12.5, 0.0)
    }


# --- breakdowns and comparisons -------------------------------------------------------------


def test_breakdowns_by_line_and_carrier_and_the_unallocated_remainder(db: AccountingDB) -> None:
    report = build(plant(), db, "p1", "2026-11", now=AFTER)
    kiln = math.fsum(kiln_day(date(2026, 11, d), 5.0)[0] for d in range(1, 31))
    pieces = math.fsum(kiln_day(date(2026, 11, d))[1] for d in range(1, 31))
    (elec,) = [x for x in report["line_carriers"] if x["carrier"] == "electricity"]
    assert elec["line"] == "kiln" and elec["kgce"] == pytest.approx(kiln)
    (gas,) = [x for x in report["line_carriers"] if x["carrier"] == "diesel"]
    assert gas["kgce"] == 0 and gas["meters"] == ["g1"]
    rest = {x["carrier"]: x for x in report["unallocated"]}
    assert rest["electricity"]["kgce"] == pytest.approx(kiln)  # the incomer is twice the kiln
    assert rest["electricity"]["share"] == pytest.approx(0.5)
    assert rest["diesel"]["kgce"] == 0 and rest["diesel"]["share"] is None
    site = report["site_intensity"]
    assert site["output"] == pytest.approx(pieces) and site["output_unit"] == "pieces"
    assert site["kgce_per_unit"] == pytest.approx(2 * kiln / pieces)


def test_a_row_per_day_with_its_gaps(db: AccountingDB) -> None:
    days = build(plant(), db, "p1", "2026-11", now=AFTER)["days"]
    assert [d["date"] for d in days] == [f"2026-11-{d:02d}" for d in range(1, 31)]
    first = days[0]
    kgce, pieces = kiln_day(date(2026, 11, 1), 5.0)
    assert first["kgce"] == pytest.approx(2 * kgce) and first["output"] == pieces
    assert first["lines"][0]["intensity"] == pytest.approx(kgce / pieces)
    # one minute measured of 1,440: every day is a gap
    assert first["completeness"] == pytest.approx(1 / 1440) and first["gap"] is True
    assert math.fsum(d["kgce"] for d in days) == pytest.approx(
        build(plant(), db, "p1", "2026-11", now=AFTER)["totals"]["kgce"]
    )


def test_previous_month_and_same_month_last_year(db: AccountingDB) -> None:
    report = build(plant(), db, "p1", "2026-11", now=AFTER)
    previous, last_year = report["comparisons"]
    assert previous["kind"] == "previous_month" and previous["month"] == "2026-10"
    october = math.fsum(kiln_day(date(2026, 10, d))[0] for d in range(1, 32))
    november = math.fsum(kiln_day(date(2026, 11, d), 5.0)[0] for d in range(1, 31))
    assert previous["figures"]["kgce"] == pytest.approx(2 * october)
    assert previous["change"]["kgce"] == pytest.approx(november / october - 1)
    assert previous["line_change"][0]["line"] == "kiln"
    assert last_year == {"kind": "same_month_last_year", "month": "2025-11", "status": "no_data"}


def test_month_arithmetic_and_local_days() -> None:
    assert month_of("2026-01", -1) == "2025-12"
    assert month_of("2026-11", -12) == "2025-11"
    assert month_of("2026-12", 1) == "2027-01"
    berlin = ZoneInfo("Europe/Berlin")  # 2026-10-25 has 25 hours there
    spans = list(
        local_days(datetime(2026, 10, 24, tzinfo=berlin), datetime(2026, 10, 27, tzinfo=berlin))
    )
    assert [(b.timestamp() - a.timestamp()) / 3600 for a, b in spans] == [24, 25, 24]


def test_a_site_baseline_regresses_the_boundary_on_the_lines_output(db: AccountingDB) -> None:
    # the incomer is twice the kiln: 100 kgce a day plus 0.4 a piece; 10 a day saved
    site = {"first_month": "2026-09", "last_month": "2026-10"}
    (b,) = build(plant(energy_baselines=[site]), db, "p1", "2026-11", now=AFTER)["energy_baselines"]
    assert b["baseline"] == "site" and b["line"] is None
    assert b["coefficients"]["intercept"] == pytest.approx(100)
    assert b["coefficients"]["output"] == pytest.approx(0.4)
    assert b["reporting"]["savings_kgce"] == pytest.approx(300)
