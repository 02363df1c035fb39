"""Counters never create or lose energy, through the accounting database: a zero read on a
wrapping gas counter, a jump that stays, a meter swap recorded in the plant model, with
`energy-collector swap` (a subprocess) or POST /api/v1/sites/{site}/swaps, before or
after the readings across it were accounted, read back from the accounting and the
report. Worked by hand in the comments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processes import write_yaml
from test_api import READ, SITE, WRITE, make_rig, tokens

from collector.accounting.core.counters import Replacement
from collector.accounting.engine import Accounting
from collector.accounting.queries import meter_totals
from collector.accounting.swaps import SwapRejected, record_swap
from collector.config import load_config
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.reports.render import render
from greengauge.common.configfile import ConfigError
from greengauge.contract import MeterReading, Quantity, ReadingBatch

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
M = timedelta(minutes=1)
E = Quantity.ENERGY_ACTIVE_IMPORT
V = Quantity.VOLUME
SWAP_AT = T0 + 2.5 * M


def plant(swaps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "settle": 0,
        "sites": [
            {
                "id": "s1",
                "grid_factor": {"series": "national_average", "year": 2023},
                "meters": [
                    {
                        "id": "incomer",
                        "carrier": "electricity",
                        "role": "boundary",
                        "counter": {"max_rate": 300},
                        "swaps": swaps or [],
                    },
                    {
                        "id": "gas-main",
                        "carrier": "natural_gas",
                        "role": "boundary",
                        "counter": {"modulus": 1000000, "max_rate": 650},
                    },
                ],
            }
        ],
        "conversion": {
            "coefficients": {
                "natural_gas": {"value": 1.2143, "unit": "kgce/m3", "source": "GB/T 2589"}
            }
        },
    }


def batches(meter: str, quantity: Quantity, values: list[float]) -> list[ReadingBatch]:
    return [
        ReadingBatch(
            site="s1",
            agent="gw",
            seq=i,
            readings=[MeterReading(meter=meter, ts=T0 + i * M, values={quantity: v})],
        )
        for i, v in enumerate(values)
    ]


def total(acc: Accounting, meter: str) -> float:
    site = acc.config.sites[0]
    return meter_totals(acc.db, acc.config, "s1", site.meter(meter), 0, 2**62)[0]


def report_counters(acc: Accounting) -> list[dict[str, Any]]:
    report = build(acc.config, acc.db, "s1", "2026-11")
    assert "Counter readings not used" in render(report, "table")
    counters: list[dict[str, Any]] = report["counters"]
    return counters


# Old meter (incomer, kWh, 180 kW = 3 kWh a minute): 123450.0, 123453.0, 123456.0 at
# minutes 0, 1, 2; taken out at 2.5 reading 123456.7. New meter fitted reading 0.3,
# reads 2.0, 5.0 at minutes 3, 4. Minute 2-3: (123456.7 - 123456.0) + (2.0 - 0.3)
# = 0.7 + 1.7 = 2.4 kWh. Total 3 + 3 + 2.4 + 3 = 11.4 kWh.
SWAPPED = [123450.0, 123453.0, 123456.0, 2.0, 5.0]
ACROSS = 11.4
# Unrecorded, 123456.0 -> 2.0 reads as a reset (2.0 fits 300 kW x 1 min = 5 kWh): that
# minute is estimated at the neighbours' 3 kWh. Total 3 + 3 + 3 + 3 = 12.
UNRECORDED = 12.0
SWAP = Replacement(SWAP_AT, new_initial=0.3, old_final=123456.7, by="J. Wang")


def test_a_zero_read_on_the_gas_main_is_excluded_and_reported(tmp_path: Path) -> None:
    # The case: 600000, 600010, 0, 600030, 600040 a minute apart, modulus 1e6,
    # 650 m3/h (10.8 m3 a minute): 600010 -> 0 would be a 399,990 m3 wrap, not
    # plausible; 600010 -> 600030 (20 m3 in 2 min) is: 0 is a glitch. 10 + 20 + 10 = 40 m3.
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    acc.process(batches("gas-main", V, [600000.0, 600010.0, 0.0, 600030.0, 600040.0]))
    assert total(acc, "gas-main") == pytest.approx(40.0, rel=1e-3)
    (row,) = report_counters(acc)
    assert (row["series"], row["issue"], row["excluded"]) == ("gas-main", "glitch", 0.0)
    assert "reading 0 out of line" in row["reason"]


def test_a_jump_that_stays_excludes_only_the_jump(tmp_path: Path) -> None:
    # 1 kWh a minute; +5000 in the 4th minute, and it stays. Minute 3-4 estimated at the
    # neighbours' 1 kWh, 5001 - 1 = 5000 excluded: 6 kWh in 6 minutes.
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    acc.process(batches("incomer", E, [0.0, 1.0, 2.0, 3.0, 5004.0, 5005.0, 5006.0]))
    assert total(acc, "incomer") == pytest.approx(6.0, rel=1e-3)
    (row,) = report_counters(acc)
    assert row["issue"] == "jump"
    assert row["excluded"] == pytest.approx(5000.0, rel=1e-3)
    assert row["estimated"] == pytest.approx(1.0, rel=1e-3)
    assert row["counted"] == pytest.approx(1.0, rel=1e-3)


def test_a_jump_that_stays_one_reading_per_pass(tmp_path: Path) -> None:
    # as the live collector sees it: one reading per accounting pass
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    for b in batches("incomer", E, [0.0, 1.0, 2.0, 3.0, 5004.0, 5005.0, 5006.0]):
        acc.process([b])
    assert total(acc, "incomer") == pytest.approx(6.0, rel=1e-3)


def test_a_jump_is_estimated_from_both_neighbours_whatever_the_passes(tmp_path: Path) -> None:
    # 1 kWh a minute, then +5000 that stays, then 3 kWh a minute: minute 3-4 estimated at
    # (1 + 3) / 2 = 2 kWh from the rates before and after, 5002 - 2 = 5000 excluded:
    # 1 + 1 + 1 + 2 + 3 + 3 = 11 kWh, in one pass or one reading per pass (the rate before
    # was accounted in an earlier pass)
    values = [0.0, 1.0, 2.0, 3.0, 5005.0, 5008.0, 5011.0]
    for per_pass in (False, True):
        acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path / str(per_pass))
        every = batches("incomer", E, values)
        for group in [[b] for b in every] if per_pass else [every]:
            acc.process(group)
        assert total(acc, "incomer") == pytest.approx(11.0, rel=1e-3), per_pass
        (row,) = report_counters(acc)
        assert row["estimated"] == pytest.approx(2.0, rel=1e-3), per_pass


def test_a_swap_in_the_plant_model_bridges_the_readings(tmp_path: Path) -> None:
    swaps = [{"at": SWAP_AT.isoformat(), "old_final": 123456.7, "new_initial": 0.3, "by": "JW"}]
    config = AccountingConfig.model_validate(plant(swaps))
    acc = Accounting(config, tmp_path)
    for b in batches("incomer", E, SWAPPED):
        acc.process([b])
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)
    acc.close()
    # a restart records it once, not twice
    acc = Accounting(config, tmp_path)
    assert len(acc.db.query("SELECT * FROM counter_swap")) == 1
    (row,) = report_counters(acc)
    assert row["issue"] == "replacement" and row["counted"] == pytest.approx(2.4, rel=1e-3)


def test_a_swap_recorded_after_its_readings_corrects_them(tmp_path: Path) -> None:
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    acc.process(batches("incomer", E, SWAPPED))
    assert total(acc, "incomer") == pytest.approx(UNRECORDED, rel=1e-3)
    assert [r["issue"] for r in report_counters(acc)] == ["reset"]
    notes = record_swap(acc.db, acc.config, "s1", "incomer", SWAP, T0 + 10 * M)
    assert "now 2.4" in notes[0]
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)
    assert [r["issue"] for r in report_counters(acc)] == ["replacement"]
    # recorded again (a retry): nothing changes
    record_swap(acc.db, acc.config, "s1", "incomer", SWAP, T0 + 10 * M)
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)


@pytest.mark.parametrize("order", [[4, 0, 1, 3, 2], [3, 4, 2, 1, 0], [0, 1, 2, 3, 4]])
def test_a_swap_applies_to_readings_in_any_order_and_recompute_keeps_it(
    tmp_path: Path, order: list[int]
) -> None:
    # event time: a reading that comes late across the swap is walked with the swap, and
    # the findings of a re-walked span replace those stored (one replacement, not two)
    swaps = [{"at": SWAP_AT.isoformat(), "old_final": 123456.7, "new_initial": 0.3, "by": "JW"}]
    acc = Accounting(AccountingConfig.model_validate(plant(swaps)), tmp_path)
    every = batches("incomer", E, SWAPPED)
    for i in order:
        acc.process([every[i]])
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)
    assert [r["issue"] for r in report_counters(acc)] == ["replacement"]
    acc.recompute("s1", T0 - M, T0 + 10 * M)
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)
    (row,) = report_counters(acc)
    assert row["issue"] == "replacement" and row["counted"] == pytest.approx(2.4, rel=1e-3)


def test_a_late_jump_and_a_recompute_keep_one_finding_and_the_estimate(tmp_path: Path) -> None:
    # the readings of test_a_jump_that_stays_excludes_only_the_jump, newest first
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    for b in reversed(batches("incomer", E, [0.0, 1.0, 2.0, 3.0, 5004.0, 5005.0, 5006.0])):
        acc.process([b])
    assert total(acc, "incomer") == pytest.approx(6.0, rel=1e-3)
    acc.recompute("s1", T0 - M, T0 + 10 * M)
    assert total(acc, "incomer") == pytest.approx(6.0, rel=1e-3)
    (row,) = report_counters(acc)
    assert row["issue"] == "jump" and row["excluded"] == pytest.approx(5000.0, rel=1e-3)


def test_a_swap_recorded_late_then_recomputed_stays_bridged(tmp_path: Path) -> None:
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    acc.process(batches("incomer", E, SWAPPED))
    record_swap(acc.db, acc.config, "s1", "incomer", SWAP, T0 + 10 * M)
    acc.recompute("s1", T0 - M, T0 + 10 * M)
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)
    assert [r["issue"] for r in report_counters(acc)] == ["replacement"]


@st.composite
def swapped_deliveries(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], list[ReadingBatch], list[list[ReadingBatch]]]:
    """A reading a minute of the incomer (0-4 kWh a minute, within its 5), maybe a jump
    of 5000 that stays and maybe a recorded swap half a minute before a reading, cut into
    batches delivered in any order, some twice."""
    n = draw(st.integers(3, 30))
    rates = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    jump = draw(st.one_of(st.none(), st.integers(1, n - 1)))
    swap_at = draw(st.one_of(st.none(), st.integers(1, n - 1)))
    shown, swaps, value = [], [], 123_000.0
    for i in range(n):
        if i == jump:
            value += 5000.0
        if i == swap_at:
            old_final = value + rates[i - 1] / 2
            value = 0.3 + rates[i - 1] / 2
            swaps.append(
                {
                    "at": (T0 + (i - 0.5) * M).isoformat(),
                    "old_final": old_final,
                    "new_initial": 0.3,
                    "by": "JW",
                }
            )
        shown.append(value)
        value += rates[i]
    readings = batches("incomer", E, shown)
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=6)))
    chunks = [readings[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True) if a < b]
    twice = draw(st.lists(st.sampled_from(chunks), max_size=2))
    return swaps, readings, [*draw(st.permutations(chunks)), *twice]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(swapped_deliveries())
def test_swaps_and_jumps_in_any_delivery_order_give_the_in_order_figures(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[dict[str, Any]], list[ReadingBatch], list[list[ReadingBatch]]],
) -> None:
    swaps, readings, delivered = case
    config = AccountingConfig.model_validate(plant(swaps))
    in_order = Accounting(config, tmp_path_factory.mktemp("in-order"))
    in_order.process(readings)
    shuffled = Accounting(config, tmp_path_factory.mktemp("shuffled"))
    for chunk in delivered:
        shuffled.process(chunk)
    minutes = "SELECT series, minute, amount, quality FROM minute ORDER BY series, minute"
    findings = "SELECT * FROM counter_finding ORDER BY series, start, end, issue"
    for query in (minutes, findings):
        assert shuffled.db.query(query) == in_order.db.query(query)
    shuffled.recompute("s1", T0 - M, T0 + 40 * M)
    for query in (minutes, findings):
        assert shuffled.db.query(query) == in_order.db.query(query)
    in_order.close()
    shuffled.close()


@pytest.mark.parametrize(
    ("swap", "reason"),
    [
        (Replacement(SWAP_AT, 0.3, 99.0, "x"), "does not fit"),  # old final below 123456
        (Replacement(SWAP_AT, 0.3, 123499.0, "x"), "does not fit"),  # 43 + 1.7 in a minute
        (Replacement(T0 + 30 * M, 0.3, 1.0, "x"), "future"),
        (Replacement(T0 + 0.5 * M, 0.3, 1.0, "x"), "no break"),
    ],
)
def test_a_swap_that_does_not_fit_is_refused_and_not_stored(
    tmp_path: Path, swap: Replacement, reason: str
) -> None:
    acc = Accounting(AccountingConfig.model_validate(plant()), tmp_path)
    acc.process(batches("incomer", E, SWAPPED))
    with pytest.raises(SwapRejected, match=reason):
        record_swap(acc.db, acc.config, "s1", "incomer", swap, T0 + 10 * M)
    assert acc.db.query("SELECT * FROM counter_swap") == []
    assert total(acc, "incomer") == pytest.approx(UNRECORDED, rel=1e-3)


def test_a_modulus_without_max_rate_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    accounting = plant()
    accounting["sites"][0]["meters"][1]["counter"] = {"modulus": 1000000}
    data = {"mqtt": {"url": "mqtt://localhost:1883"}, "data_dir": str(tmp_path)}
    data["accounting"] = accounting
    path = write_yaml(tmp_path / "c.yaml", data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (line,) = [p for p in str(caught.value).splitlines() if "needs max_rate" in p]
    assert line.startswith(f"{path}:")
    assert "meters.1.counter: " in line and "needs max_rate" in line
    number = int(line.split(":")[1])
    assert "modulus" in path.read_text().splitlines()[number - 1]


def test_the_example_config_gas_main_is_valid() -> None:
    text = (ROOT / "configs/collector.example.yaml").read_text()
    data = yaml.safe_load(text)
    meters = data["accounting"]["sites"][0]["meters"]
    gas = next(m for m in meters if m["id"] == "gas-main")
    assert gas["counter"] == {"modulus": 1000000, "max_rate": 650}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_the_swap_command_is_stored_and_applied_after_a_restart(tmp_path: Path) -> None:
    data = {
        "mqtt": {"url": "mqtt://localhost:1883"},
        "data_dir": str(tmp_path),
        "accounting": plant(),
    }
    path = write_yaml(tmp_path / "c.yaml", data)
    config = load_config(path)
    assert config.accounting is not None
    acc = Accounting(config.accounting, tmp_path)
    acc.process(batches("incomer", E, SWAPPED[:3]))  # the old meter's readings
    acc.close()
    args = ["swap", "--config", str(path), "--site", "s1", "--meter", "incomer"]
    args += ["--at", SWAP_AT.isoformat(), "--old-final", "123456.7", "--new-initial", "0.3"]
    done = cli(*args, "--by", "J. Wang")
    assert done.returncode == 0, done.stderr
    assert "recorded: meter incomer" in done.stdout
    # refused: a meter the plant does not have, a negative reading
    bad = cli(*[("nope" if a == "incomer" else a) for a in args], "--by", "x")
    assert bad.returncode == 2 and "no counter meter 'nope'" in bad.stderr
    bad = cli(*[("-1" if a == "0.3" else a) for a in args], "--by", "x")
    assert bad.returncode == 2 and "--new-initial" in bad.stderr
    acc = Accounting(config.accounting, tmp_path)  # the collector, restarted
    acc.process(batches("incomer", E, SWAPPED)[3:])  # the new meter's readings
    assert total(acc, "incomer") == pytest.approx(ACROSS, rel=1e-3)
    (row,) = report_counters(acc)
    assert "J. Wang" in row["reason"]


def test_the_swap_api_records_checks_and_applies(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, tokens(READ, WRITE))
    now = rig.now
    values = [123450.0, 123453.0, 123456.0, 2.0, 5.0]
    rig.feed(
        *[
            ReadingBatch(
                site=SITE,
                agent="gw",
                seq=i,
                readings=[MeterReading(meter="incomer", ts=now - (5 - i) * M, values={E: v})],
            )
            for i, v in enumerate(values)
        ]
    )
    site = rig.accounting.config.sites[0]

    def incomer() -> float:
        db, config = rig.accounting.db, rig.accounting.config
        return meter_totals(db, config, SITE, site.meter("incomer"), 0, 2**62)[0]

    # no max_rate here: 123456 -> 2.0 is a fall, the minute estimated at 3 kWh
    assert incomer() == pytest.approx(UNRECORDED, rel=1e-3)
    body = {
        "meter": "incomer",
        "at": (now - 2.5 * M).isoformat(),
        "old_final": 123456.7,
        "new_initial": 0.3,
        "by": "J. Wang",
    }
    url = f"/api/v1/sites/{SITE}/swaps"
    auth = {"Authorization": f"Bearer {WRITE}", "Content-Type": "application/json"}

    def post(content: bytes, headers: dict[str, str] = auth) -> Any:
        return rig.client.post(url, headers=headers, content=content)

    assert post(json.dumps(body).encode(), {"Authorization": f"Bearer {WRITE}"}).status_code == 415
    read = {**auth, "Authorization": f"Bearer {READ}"}
    assert post(json.dumps(body).encode(), read).status_code == 403
    assert post(json.dumps(body).encode(), {"Content-Type": "application/json"}).status_code == 401
    for change, reason in (
        ({"new_initial": -1}, "new_initial"),
        ({"meter": "nope"}, "no counter meter"),
        ({"old_final": 99.0}, "does not fit"),
        ({"at": "2026-11-24T10:00:00"}, "timezone"),
    ):
        response = post(json.dumps({**body, **change}).encode())
        assert response.status_code == 422 and reason in response.text, response.text
    twice = b'{"meter": "incomer", "meter": "m1", ' + json.dumps(body).encode()[1:]
    assert post(twice).status_code == 422
    assert incomer() == pytest.approx(UNRECORDED, rel=1e-3)  # nothing applied yet
    response = post(json.dumps(body).encode())
    assert response.status_code == 201, response.text
    assert "now 2.4" in response.json()["changes"][0]
    assert incomer() == pytest.approx(ACROSS, rel=1e-3)
    stored = rig.accounting.db.query("SELECT meter, old_final, new_initial, by FROM counter_swap")
    assert stored == [("incomer", 123456.7, 0.3, "J. Wang")]
