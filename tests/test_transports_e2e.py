"""Every transport against real servers, through one agent: Modbus TCP to the simulator,
RTU on a serial line (a socat pty pair) with several meters on it, and RTU over TCP.
The readings and the status are taken from the broker."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import listening, serial_line, simulator, ticks, wait_until
from processes import running, write_yaml
from servers import Mosquitto, require_binary

pytestmark = pytest.mark.e2e

SITE, AGENT = "plant-t", "gw-t"
TIMEOUT = 30.0
INTERVAL = 0.5


def agent_config(
    path: Path, broker: Mosquitto, meters: list[dict[str, Any]], event_loop: str = "asyncio"
) -> Path:
    return write_yaml(
        path,
        {
            "site": SITE,
            "agent_id": AGENT,
            "mqtt": {"url": broker.url},
            "status_interval": 1,
            "meters": meters,
            "event_loop": event_loop,
        },
    )


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_tcp_serial_bus_and_rtu_over_tcp_in_one_agent(
    tmp_path: Path, mosquitto: Mosquitto, event_loop: str
) -> None:
    # Linux ptys refuse parity (tcsetattr EINVAL): parity is for real lines only.
    line: dict[str, Any] = {"baud": 19200, "stop_bits": 2}
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(tmp_path, "tcp", "eastron_sdm630", "1") as tcp,
        simulator(
            tmp_path,
            "serial",
            "chint_dtsu666",
            "2-4",
            ["--serial", str(sim_end), "--baud", "19200", "--stop-bits", "2"],
        ) as serial,
        simulator(tmp_path, "rtutcp", "eastron_sdm630", "5", ["--framer", "rtu"]) as rtu_tcp,
    ):
        serial_modbus: dict[str, Any] = {
            "serial": {"device": str(agent_end), **line},
            "timeout": 0.5,
        }
        meters: list[dict[str, Any]] = [
            {
                "id": "tcp-1",
                "profile": "eastron_sdm630",
                "modbus": {"host": "127.0.0.1", "port": tcp.port, "unit_id": 1},
            },
            *(
                {
                    "id": f"rtu-{unit}",
                    "profile": "chint_dtsu666",
                    "modbus": {**serial_modbus, "unit_id": unit},
                }
                for unit in (2, 3, 4)
            ),
            {
                "id": "rtutcp-5",
                "profile": "eastron_sdm630",
                "modbus": {
                    "host": "127.0.0.1",
                    "port": rtu_tcp.port,
                    "framer": "rtu",
                    "unit_id": 5,
                },
            },
        ]
        for meter in meters:
            meter["interval"] = INTERVAL
        expected = {
            "tcp-1": tcp.dump["1"],
            "rtu-2": serial.dump["2"],
            "rtu-3": serial.dump["3"],
            "rtu-4": serial.dump["4"],
            "rtutcp-5": rtu_tcp.dump["5"],
        }
        config = agent_config(tmp_path / "agent.yaml", mosquitto, meters, event_loop)
        with (
            listening(mosquitto, SITE, AGENT) as heard,
            running(
                "energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log"
            ) as agent,
        ):
            wait_until(
                lambda: all(len(heard.of(m)) >= 4 for m in expected),
                TIMEOUT,
                "four readings of every meter at the broker",
            )
            wait_until(
                lambda: all(heard.meter_state(m) == "online" for m in expected),
                TIMEOUT,
                "every meter online in the status",
            )
            agent.assert_running()
    for meter_id, served in expected.items():
        readings = heard.of(meter_id)
        for reading in readings:
            assert reading["values"] == pytest.approx(served, rel=1e-12, abs=1e-12), meter_id
        stamps = ticks([r["ts"] for r in readings])
        # stamped at the read, on the 0.5 s grid (the serial meters wait their turn)
        assert all((t % INTERVAL) < 0.3 for t in stamps), (meter_id, stamps)
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    status = heard.last_status()
    assert status is not None and status["state"] == "online"
    assert set(status["meters"]) == set(expected)
    assert all(h["reads"] >= 1 and h["last_read"] for h in status["meters"].values())
    log = agent.output()
    assert "buses=3" in log, log[-2000:]
    assert f"event_loop={event_loop}" in log, log[-2000:]
    # SIGTERM (the `running` context's stop) ends it cleanly on either loop.
    assert agent.process.returncode == 0 and "agent stopped by SIGTERM" in log, log[-2000:]


def test_mbpoll_reads_the_serial_simulator(tmp_path: Path) -> None:
    """An independent RTU master (libmodbus) agrees with the simulator on the line."""
    mbpoll = require_binary("mbpoll")
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(
            tmp_path,
            "serial",
            "eastron_sdm630",
            "1,7",
            ["--serial", str(sim_end), "--baud", "9600"],
        ) as serial,
    ):
        command = [mbpoll, "-m", "rtu", "-b", "9600", "-P", "none", "-0", "-1", "-o", "1"]
        command += ["-r", "0", "-c", "2", "-t", "3:float", "-B"]
        for unit in ("1", "7"):
            result = subprocess.run(
                [*command, "-a", unit, str(agent_end)],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            printed = [
                line.split()[-1] for line in result.stdout.splitlines() if line.startswith("[")
            ]
            assert [float(v) for v in printed] == pytest.approx(
                [serial.dump[unit]["voltage_l1"], serial.dump[unit]["voltage_l2"]], rel=1e-5
            )
        # a unit nobody simulates is silent on a serial line
        result = subprocess.run(
            [*command, "-a", "9", str(agent_end)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert result.returncode != 0 and "timed out" in result.stderr.lower(), result
