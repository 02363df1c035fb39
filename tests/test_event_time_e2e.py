"""A broker outage in a running pipeline: the agent's backlog reaches the accounting after
live data, and is accounted where the energy was used.

simulators -> energy-agent -> mosquitto (stopped OUTAGE seconds, then started again) ->
energy-collector (embedded store, accounting). The agent sends what it buffered beside
the live readings, slowly (drain_rate 2 batches/s), so the backlog arrives after later
readings: late readings. The collector's minute rows must then be exactly those of an
accounting fed the same stored readings in time order, and the correction is logged and
counted (/metrics).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import yaml
from processes import Program, running, wait_for, write_yaml
from servers import Mosquitto, free_port
from test_accounting_e2e import TIMEOUT, configs, simulators, stored
from test_metrics_e2e import scrape, value

from collector.accounting.db import from_ms
from collector.accounting.engine import Accounting
from collector.config import load_config
from greengauge.contract import MeterReading, Quantity, ReadingBatch

__all__ = ["simulators"]  # the fixture, used by name

OUTAGE = 4.0
LATE = "late readings: minutes accounted again"


def readings_in_time_order(database: Path, site: str) -> list[ReadingBatch]:
    """Every reading the store holds, a batch per (agent, time), oldest first."""
    values: dict[tuple[str, int], dict[str, dict[Quantity, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    with sqlite3.connect(database) as connection:
        for agent, meter, quantity, ts, value in connection.execute(
            "SELECT agent, meter, quantity, ts, value FROM reading WHERE site = ?", (site,)
        ):
            values[(agent, ts)][meter][Quantity(quantity)] = value
    return [
        ReadingBatch(
            site=site,
            agent=agent,
            seq=i,
            readings=[
                MeterReading(meter=m, ts=from_ms(ts), values=v)
                for m, v in values[(agent, ts)].items()
            ],
        )
        for i, (agent, ts) in enumerate(sorted(values, key=lambda k: k[1]))
    ]


def test_a_backlog_after_a_broker_outage_is_accounted_where_it_was_used(
    tmp_path: Path, simulators: dict[str, int], mosquitto: Mosquitto
) -> None:
    agent_yaml, collector_yaml = configs(tmp_path, simulators, mosquitto)
    agent_config = yaml.safe_load(agent_yaml.read_text())
    write_yaml(agent_yaml, {**agent_config, "outbox": {"drain_rate": 2}})
    api = free_port()
    collector_config = yaml.safe_load(collector_yaml.read_text())
    write_yaml(collector_yaml, {**collector_config, "api": {"listen": f"127.0.0.1:{api}"}})
    database = tmp_path / "collector-data" / "readings.sqlite"
    collector = Program(
        "energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "collector.log"
    )
    try:
        wait_for(lambda: "msg=subscribed" in collector.output(), TIMEOUT, "the collector")
        with running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"):
            wait_for(
                lambda: (
                    database.exists()
                    and len(stored(database, "incomer", "energy_active_import")) >= 6
                ),
                TIMEOUT,
                "readings stored",
            )
            mosquitto.stop()
            outage_start = time.time() * 1000
            time.sleep(OUTAGE)
            outage_end = time.time() * 1000
            mosquitto.start()
            wait_for(lambda: LATE in collector.output(), TIMEOUT, "late readings accounted")
            agent_log = tmp_path / "agent.log"
            wait_for(lambda: "backlog sent" in agent_log.read_text(), TIMEOUT, "the backlog sent")
            collector.assert_running()
            metrics = scrape(f"http://127.0.0.1:{api}/metrics")
            assert (value(metrics, "greengauge_accounting_corrections_total") or 0) >= 1
            assert (value(metrics, "greengauge_accounting_late_readings_total") or 0) >= 1
        collector.stop()  # graceful: what is queued is accounted
    finally:
        collector.stop()
    incomer = stored(database, "incomer", "energy_active_import")
    during = [t for t, _ in incomer if outage_start + 1000 < t < outage_end - 1000]
    assert during, "the outage's readings reached the store"
    config = load_config(collector_yaml).accounting
    assert config is not None
    in_order = Accounting(config, tmp_path / "in-order")
    in_order.process(readings_in_time_order(database, config.sites[0].id))
    every_minute = (
        "SELECT site, series, minute, amount, kgce, kgco2, quality FROM minute ORDER BY 1, 2, 3"
    )
    live = sqlite3.connect(tmp_path / "collector-data" / "accounting.sqlite")
    try:
        assert live.execute(every_minute).fetchall() == in_order.db.query(every_minute)
    finally:
        live.close()
        in_order.close()
