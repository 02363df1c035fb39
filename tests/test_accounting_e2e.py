"""Energy accounting end to end, through real servers and the CLIs:

simulator counters -> energy-agent -> mosquitto -> energy-collector (embedded store,
accounting database) -> `energy-collector report --format json`.

The simulator's counters are pure functions of time (agent/simulator/values.py), so the
energy each meter advanced between the first and the last reading the collector stored
is known independently of the collector. The report must match it.

Tolerances, and why: the meters are Schneider iEM3255 profiles, whose energy register
is an int64 in Wh, so each counter reading is quantised to 0.001 kWh (two readings:
at most 0.002 kWh off); and the agent stamps a reading with its read time while the
simulator evaluates the counter when it answers, a few milliseconds apart (bounded here
by 50 ms at each end, at the meter's peak power). Over ~20 s at 117-142 kW that is
about 0.8 %; the bound is computed per meter and asserted to be under 1 %. Against
the counter readings the collector stored, the report must agree to 1e-9 (pure
arithmetic). The production counter counts whole pieces: +-1 piece against the model.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from processes import BIN, Program, running, wait_for, write_yaml
from servers import Mosquitto, free_port

from agent.simulator.values import meter_for_unit

SITE = "plant-acc"
AGENT = "gw-acc"
INCOMER, LINE_METER, COUNTER = 38, 13, 27  # unit ids: 142 kW, 117 kW, ~6300 pieces/h
TIMEOUT = 30.0
WH = 0.001  # kWh: the iEM3255 energy register's resolution
SKEW = 0.05  # s: read time stamp vs the simulator's evaluation, bound per end


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {"schneider_iem3255": free_port(), "generic_production_counter": free_port()}
    programs = []
    try:
        for profile, units in (
            ("schneider_iem3255", f"{INCOMER},{LINE_METER}"),
            ("generic_production_counter", str(COUNTER)),
        ):
            dump = tmp_path / f"{profile}.json"
            args = ["simulate", "--profile", profile, "--port", str(ports[profile])]
            args += ["--unit-ids", units, "--dump", str(dump)]
            programs.append(Program("energy-agent", args, tmp_path / f"sim-{profile}.log"))
            wait_for(dump.exists, TIMEOUT, f"the {profile} simulator")
        yield ports
    finally:
        for program in programs:
            program.stop()


def configs(tmp_path: Path, ports: dict[str, int], broker: Mosquitto) -> tuple[Path, Path]:
    def meter(mid: str, profile: str, unit: int) -> dict[str, Any]:
        return {
            "id": mid,
            "profile": profile,
            "modbus": {"host": "127.0.0.1", "port": ports[profile], "unit_id": unit},
            "interval": 0.5,
        }

    agent = write_yaml(
        tmp_path / "agent.yaml",
        {
            "site": SITE,
            "agent_id": AGENT,
            "mqtt": {"url": broker.url},
            "state_dir": str(tmp_path / "agent-state"),
            "meters": [
                meter("incomer", "schneider_iem3255", INCOMER),
                meter("line-1", "schneider_iem3255", LINE_METER),
                meter("counter-1", "generic_production_counter", COUNTER),
            ],
        },
    )
    collector = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {"url": broker.url, "client_id": "collector-acc"},
            "data_dir": str(tmp_path / "collector-data"),
            "write": {"max_delay": 0.1},
            "accounting": {
                "interval": 0.5,
                "intensity_interval": 1,
                "sites": [
                    {
                        "id": SITE,
                        "timezone": "Asia/Shanghai",
                        "grid_factor": {"series": "national_average", "year": 2023},
                        "meters": [
                            {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                            {"id": "line-1", "carrier": "electricity", "line": "line-1"},
                            {
                                "id": "rest",
                                "carrier": "electricity",
                                "plus": ["incomer"],
                                "minus": ["line-1"],
                            },
                        ],
                        "lines": [
                            {
                                "id": "line-1",
                                "product": "brackets",
                                "output_unit": "pieces",
                                "output": {"meter": "counter-1", "quantity": "count"},
                                "benchmark": {
                                    "custom": {
                                        "name": "test line",
                                        "unit": "kgce/pieces",
                                        "benchmark": 0.5,
                                        "baseline": 1.0,
                                        "source": "test",
                                    }
                                },
                            }
                        ],
                    }
                ],
            },
        },
    )
    return agent, collector


def stored(database: Path, meter: str, quantity: str) -> list[tuple[int, float]]:
    try:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(
                "SELECT ts, value FROM reading WHERE meter = ? AND quantity = ? ORDER BY ts",
                (meter, quantity),
            ).fetchall()
    except sqlite3.OperationalError:  # created, its table not yet
        return []
    return [(int(t), float(v)) for t, v in rows]


def model(unit: int, quantity: str, ts_ms: int) -> float:
    values = meter_for_unit(unit).values(ts_ms / 1000)
    return {q.value: v for q, v in values.items()}[quantity]


def report(collector_yaml: Path, month: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            str(BIN / "energy-collector"),
            "report",
            "--config",
            str(collector_yaml),
            "--site",
            SITE,
            "--month",
            month,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("restart", [False, True], ids=["steady", "collector-killed-and-restarted"])
def test_report_matches_the_energy_the_simulated_counters_advanced(
    tmp_path: Path, simulators: dict[str, int], mosquitto: Mosquitto, restart: bool
) -> None:
    agent_yaml, collector_yaml = configs(tmp_path, simulators, mosquitto)
    database = tmp_path / "collector-data" / "readings.sqlite"
    accounting = tmp_path / "collector-data" / "accounting.sqlite"
    collector_args = ["run", "--config", str(collector_yaml)]
    collector = Program("energy-collector", collector_args, tmp_path / "collector.log")
    try:
        with running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"):
            wait_for(
                lambda: (
                    database.exists()
                    and len(stored(database, "incomer", "energy_active_import")) >= 20
                ),
                TIMEOUT,
                "readings stored",
            )
            if restart:
                wait_for(accounting.exists, TIMEOUT, "the accounting database")
                collector.stop(signal.SIGKILL)
                collector = Program("energy-collector", collector_args, tmp_path / "collector2.log")
            count = len(stored(database, "incomer", "energy_active_import"))
            wait_for(
                lambda: len(stored(database, "incomer", "energy_active_import")) >= count + 20,
                TIMEOUT,
                "more readings stored",
            )
            collector.assert_running()
        collector.stop()  # graceful: what is queued is accounted
    finally:
        collector.stop()
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    result = report(collector_yaml, month)
    meters = {m["meter"]: m for m in result["meters"]}
    for meter, unit in (("incomer", INCOMER), ("line-1", LINE_METER)):
        readings = stored(database, meter, "energy_active_import")
        (t0, v0), (t1, v1) = readings[0], readings[-1]
        got = meters[meter]["amount"]
        # against the readings the collector stored: pure arithmetic
        assert got == pytest.approx(v1 - v0, rel=1e-9), meter  # the JSON is not rounded
        # against the simulator's counters, independently of the collector
        advanced = model(unit, "energy_active_import", t1) - model(unit, "energy_active_import", t0)
        peak_kw = max(model(unit, "power_active", t) for t, _ in readings) / 1000
        tolerance = (2 * WH + 2 * peak_kw * SKEW / 3600) / advanced
        assert tolerance < 0.01, f"{meter}: run too short for a 1 % check ({tolerance:.2%})"
        assert got == pytest.approx(advanced, rel=tolerance), meter
        assert meters[meter]["kgce"] == pytest.approx(got * 0.1229, rel=1e-9)
        assert meters[meter]["kgco2"] == pytest.approx(got * 0.5306, rel=1e-9)
    rest = meters["rest"]["amount"]
    assert rest == pytest.approx(meters["incomer"]["amount"] - meters["line-1"]["amount"], rel=1e-9)
    counts = stored(database, "counter-1", "count")
    line = result["lines"][0]
    assert line["output"] == pytest.approx(counts[-1][1] - counts[0][1], rel=1e-9)
    modelled = model(COUNTER, "count", counts[-1][0]) - model(COUNTER, "count", counts[0][0])
    assert abs(line["output"] - modelled) <= 1
    assert line["kgce"] == meters["line-1"]["kgce"]  # the sum of its one meter
    assert line["intensity"] == pytest.approx(line["kgce"] / line["output"], rel=1e-12)
    assert line["intensity_unit"] == "kgce/pieces"
    assert line["status"] in ("leading", "compliant", "above_baseline")
    assert result["totals"]["kgce"] == meters["incomer"]["kgce"]  # the sum of its one meter
    assert result["factors"]["electricity"]["coefficient"].startswith("0.1229 kgce/kWh")
    assert "national_average 2023" in result["co2"]["grid_factor"]
    # the derived measurements are in the store beside the readings
    with sqlite3.connect(database) as connection:
        measurements = {m for (m,) in connection.execute("SELECT DISTINCT measurement FROM point")}
    assert "intensity" in measurements
    table = subprocess.run(
        [
            str(BIN / "energy-collector"),
            "report",
            "--config",
            str(collector_yaml),
            "--site",
            SITE,
            "--month",
            month,
            "--plot",
            str(tmp_path / "plot.png"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "Coefficients and factors used" in table and (tmp_path / "plot.png").stat().st_size > 0
