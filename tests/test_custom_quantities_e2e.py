"""User-named quantities travel from a Modbus meter to the stores and the API.

A steam meter's profile maps its mass counter (canonical) and three registers the
canonical list has no name for: steam temperature (degC), pressure (bar) and a
feed-water counter (m3). simulator (held values) -> energy-agent -> mosquitto ->
energy-collector -> VictoriaMetrics, and the same through the embedded SQLite store
with the API beside it: what the simulator served is what the stores hold and what
the API and the dashboard (in chromium) show, with each user-named quantity's unit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import Program, read_json, running, wait_for, write_yaml
from servers import Mosquitto, VictoriaMetrics, free_port
from test_dashboard_e2e import CHROMIUM_ARGS, _chromium

SITE = "plant-steam"
AGENT = "gw-steam"
METER = "boiler-1"
UNIT_ID = 7
TIMEOUT = 30.0

SOURCE = "bench layout for the custom quantities e2e test"
PROFILE: dict[str, Any] = {
    "model": "bench_steam_meter",
    "manufacturer": "GreenGauge test bench",
    "description": "steam meter with temperature, pressure and a feed-water counter",
    "sources": {"bench": SOURCE},
    "function": "holding",
    "registers": [
        {"quantity": "mass", "address": 0, "type": "uint32", "unit": "t", "scale": 0.001},
        {"quantity": "x_steam_temperature", "address": 2, "type": "float32", "unit": "degC"},
        {"quantity": "x_steam_pressure", "address": 4, "type": "uint16", "unit": "bar"},
        {
            "quantity": "x_feedwater_volume",
            "address": 5,
            "type": "uint32",
            "unit": "m3",
            "scale": 0.1,
            "kind": "counter",
        },
    ],
}
for register in PROFILE["registers"]:
    register["source"] = SOURCE
UNITS = {"x_steam_temperature": "degC", "x_steam_pressure": "bar", "x_feedwater_volume": "m3"}
KINDS = {
    "x_steam_temperature": "instantaneous",
    "x_steam_pressure": "instantaneous",
    "x_feedwater_volume": "counter",
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int, dict[str, float]]]:
    """The profile file, the simulator's port, and what it serves (quantity -> value)."""
    profile = write_yaml(tmp_path / "bench_steam_meter.yaml", PROFILE)
    port = free_port()
    dump = tmp_path / "dump.json"
    args = ["simulate", "--profile", str(profile), "--port", str(port)]
    args += ["--unit-ids", str(UNIT_ID), "--hold", "--dump", str(dump)]
    simulator = Program("energy-agent", args, tmp_path / "simulator.log")
    try:
        wait_for(dump.exists, TIMEOUT, "the simulator's dump")
        values: dict[str, float] = read_json(dump)["values"][str(UNIT_ID)]
        yield profile, port, values
    finally:
        simulator.stop()


def agent_config(path: Path, profile: Path, port: int, broker: Mosquitto) -> Path:
    meter = {
        "id": METER,
        "profile": str(profile),
        "modbus": {"host": "127.0.0.1", "port": port, "unit_id": UNIT_ID},
        "interval": 0.5,
    }
    return write_yaml(
        path, {"site": SITE, "agent_id": AGENT, "mqtt": {"url": broker.url}, "meters": [meter]}
    )


def collector_config(
    path: Path, broker: Mosquitto, influx: VictoriaMetrics | None, api_port: int | None
) -> Path:
    config: dict[str, Any] = {
        "mqtt": {"url": broker.url, "client_id": "collector-custom-e2e"},
        "data_dir": str(path.parent / "collector-data"),
        "write": {"max_delay": 0.1},
    }
    if influx is not None:
        config["influxdb"] = {
            "url": influx.url,
            "org": "plant",
            "bucket": "energy",
            "token": "${TEST_INFLUX_TOKEN}",
        }
    if api_port is not None:
        config["api"] = {"listen": f"127.0.0.1:{api_port}", "summary_interval": 0.5}
    return write_yaml(path, config)


def test_the_simulator_serves_every_quantity_of_the_profile(
    served: tuple[Path, int, dict[str, float]],
) -> None:
    _, _, values = served
    assert set(values) == {"mass", *UNITS}


def in_victoria(influx: VictoriaMetrics) -> dict[str, list[float]]:
    stored: dict[str, list[float]] = {}
    for series in influx.export('{__name__=~"reading_.*"}'):
        labels = series["metric"]
        assert (labels["site"], labels["agent"], labels["meter"]) == (SITE, AGENT, METER)
        stored[labels["__name__"].removeprefix("reading_")] = series["values"]
    return stored


def test_custom_quantities_reach_victoria_metrics(
    tmp_path: Path,
    served: tuple[Path, int, dict[str, float]],
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "e2e-token")
    profile, port, values = served
    collector_yaml = collector_config(
        tmp_path / "collector.yaml", mosquitto, victoria_metrics, None
    )
    agent_yaml = agent_config(tmp_path / "agent.yaml", profile, port, mosquitto)
    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "collector.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"),
    ):
        stored = wait_for(
            lambda: (
                (s := in_victoria(victoria_metrics))
                and all(len(s.get(q, [])) >= 2 for q in values)
                and s
            ),
            TIMEOUT,
            "two reads of every quantity in victoria-metrics",
        )
        collector.assert_running()
    assert set(stored) == set(values)
    for quantity, value in values.items():
        assert stored[quantity] == pytest.approx([value] * len(stored[quantity])), quantity


def test_custom_quantities_in_sqlite_and_the_api(
    tmp_path: Path, served: tuple[Path, int, dict[str, float]], mosquitto: Mosquitto
) -> None:
    profile, port, values = served
    api_port = free_port()
    collector_yaml = collector_config(tmp_path / "collector.yaml", mosquitto, None, api_port)
    agent_yaml = agent_config(tmp_path / "agent.yaml", profile, port, mosquitto)
    database = tmp_path / "collector-data" / "readings.sqlite"
    base = f"http://127.0.0.1:{api_port}"

    def rows() -> dict[str, list[float]]:
        if not database.exists():
            return {}
        with sqlite3.connect(database) as connection:
            try:
                found = connection.execute(
                    "SELECT quantity, value FROM reading "
                    "WHERE site = ? AND agent = ? AND meter = ?",
                    (SITE, AGENT, METER),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                return {}  # the collector has made the file, not yet its tables
        result: dict[str, list[float]] = {}
        for quantity, value in found:
            result.setdefault(quantity, []).append(value)
        return result

    with (
        running(
            "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "collector.log"
        ) as collector,
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"),
    ):
        stored = wait_for(
            lambda: (s := rows()) and all(len(s.get(q, [])) >= 2 for q in values) and s,
            TIMEOUT,
            "two reads of every quantity in the SQLite store",
        )
        latest = httpx.get(f"{base}/api/v1/sites/{SITE}/latest").json()
        history = httpx.get(
            f"{base}/api/v1/sites/{SITE}/history",
            params={"meter": METER, "quantity": "x_steam_temperature", "step": 3600},
        )
        hostile = httpx.get(
            f"{base}/api/v1/sites/{SITE}/history",
            params={"meter": METER, "quantity": "x_Steam Temp"},
        )
        detail = dashboard_detail(base)
        collector.assert_running()
    assert set(stored) == set(values)
    for quantity, value in values.items():
        assert stored[quantity] == pytest.approx([value] * len(stored[quantity])), quantity
    with sqlite3.connect(database) as connection:
        units = connection.execute(
            "SELECT quantity, unit, kind FROM custom_quantity WHERE meter = ?", (METER,)
        ).fetchall()
    assert sorted(units) == sorted((q, UNITS[q], KINDS[q]) for q in UNITS)

    (reading,) = latest
    assert reading["meter"] == METER
    assert reading["values"] == pytest.approx({"mass": values["mass"]})
    assert reading["custom"] == {
        q: {"value": pytest.approx(values[q]), "unit": UNITS[q], "kind": KINDS[q]} for q in UNITS
    }
    assert history.status_code == 200, history.text
    body = history.json()
    assert (body["quantity"], body["unit"]) == ("x_steam_temperature", "degC")
    assert sum(p[4] for p in body["points"]) >= 2
    means = [p[1] for p in body["points"]]
    assert means == pytest.approx([values["x_steam_temperature"]] * len(means))
    assert hostile.status_code == 422
    assert "invalid custom quantity name" in hostile.text
    # The page writes m3 as m³; other units as the profile gave them.
    assert {q: unit for q, (_, unit) in detail.items()} == {**UNITS, "x_feedwater_volume": "m³"}
    for quantity, (shown, _) in detail.items():
        # As shown: rounded for display (1 decimal from 100, 2 from 1), grouped by commas.
        assert float(shown.replace(",", "")) == pytest.approx(values[quantity], abs=0.05), quantity


def dashboard_detail(base: str) -> dict[str, tuple[str, str]]:
    """The user-named quantities in the dashboard's detail view of the meter (opened by
    clicking it in the meter table): name -> (value as shown, unit)."""
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-US")
            page.goto(f"{base}/#site={SITE}")
            page.locator(f"#meters tr[data-meter='{METER}'] button.meter-link").click(
                timeout=TIMEOUT * 1000
            )
            rows = page.locator("#meter-quantities tbody tr[data-quantity^='x_']")
            expect(rows).to_have_count(len(UNITS), timeout=TIMEOUT * 1000)
            shown = {}
            for row in rows.all():
                name = row.get_attribute("data-quantity") or ""
                value = row.locator(".value").inner_text()
                shown[name] = (value, row.locator(".unit").inner_text())
        finally:
            browser.close()
    return shown
