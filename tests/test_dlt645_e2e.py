"""DL/T 645 meters polled by the agent, end to end: two meters and a dead one on a serial
line (a socat pty pair) and a meter behind a TCP transparent gateway, all simulated by
`energy-agent simulate --protocol dlt645`; readings and status taken from the broker."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import listening, serial_line, simulator, wait_until
from processes import running, write_yaml
from servers import Mosquitto, free_port

pytestmark = pytest.mark.e2e

SITE, AGENT = "plant-d", "gw-d"
TIMEOUT = 30.0
INTERVAL = 0.5


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_serial_line_and_tcp_gateway_with_a_dead_meter(
    tmp_path: Path, mosquitto: Mosquitto, event_loop: str
) -> None:
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(
            tmp_path,
            "serial",
            "chint_dtsu666_dlt645",
            "1-2",
            ["--protocol", "dlt645", "--serial", str(sim_end), "--baud", "9600"],
        ) as serial,
        simulator(tmp_path, "gateway", "chint_ddsu666_dlt645", "5", ["--protocol", "dlt645"]) as gw,
    ):
        line = {"serial": {"device": str(agent_end), "baud": 9600}, "timeout": 0.3}
        meters: list[dict[str, Any]] = [
            *(
                {
                    "id": f"line-{unit}",
                    "profile": "chint_dtsu666_dlt645",
                    "dlt645": {**line, "address": f"{unit:012d}"},
                }
                for unit in (1, 2)
            ),
            # Nobody answers at this address: its timeouts must not hold the others back.
            {
                "id": "dead-9",
                "profile": "chint_dtsu666_dlt645",
                "dlt645": {**line, "address": "000000000009"},
            },
            {
                "id": "gw-5",
                "profile": "chint_ddsu666_dlt645",
                "dlt645": {"host": "127.0.0.1", "port": gw.port, "address": "000000000005"},
            },
        ]
        for meter in meters:
            meter["interval"] = INTERVAL
        expected = {"line-1": serial.dump["1"], "line-2": serial.dump["2"], "gw-5": gw.dump["5"]}
        metrics = f"127.0.0.1:{free_port()}"
        config = write_yaml(
            tmp_path / "agent.yaml",
            {
                "site": SITE,
                "agent_id": AGENT,
                "mqtt": {"url": mosquitto.url},
                "status_interval": 1,
                "metrics": {"listen": metrics},
                "meters": meters,
                "event_loop": event_loop,
            },
        )
        with (
            listening(mosquitto, SITE, AGENT) as heard,
            running(
                "energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log"
            ) as agent,
        ):
            wait_until(
                lambda: all(len(heard.of(m)) >= 4 for m in expected),
                TIMEOUT,
                "four readings of every live meter at the broker",
            )
            wait_until(
                lambda: heard.meter_state("dead-9") == "offline",
                TIMEOUT,
                "the dead meter offline in the status",
            )
            agent.assert_running()
            with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as page:
                scraped = page.read().decode()
    for meter_id, served in expected.items():
        readings = heard.of(meter_id)
        for reading in readings:
            assert reading["values"] == served, meter_id  # the meter's digits, exactly
    assert not heard.of("dead-9")
    status = heard.last_status()
    assert status is not None
    assert all(status["meters"][m]["state"] == "online" for m in expected)
    dead = status["meters"]["dead-9"]
    assert dead["reads"] == 0 and dead["errors"].get("timeout", 0) >= 3
    # One request per data identifier, counted per meter.
    requests = {
        line.split("{")[1].split('"')[1]: float(line.split()[-1])
        for line in scraped.splitlines()
        if line.startswith("greengauge_agent_meter_requests_total{")
    }
    assert requests["line-1"] >= 4 * 19 and requests["gw-5"] >= 4 * 9, requests
    log = agent.output()
    assert "buses=2" in log and f"event_loop={event_loop}" in log, log[-2000:]
    assert "meter offline" in log and "address=000000000009" in log
