"""Faults on a real serial line (socat pty pair + simulator), with a healthy TCP meter
beside it: the agent keeps every other meter on schedule, drops only the bad values,
finds the registers a meter refuses (and reads them again once it answers them), marks
the silent meter offline in its status (as the broker delivers it), and brings it back
on its own when the fault heals."""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import listening, serial_line, simulator, ticks, wait_until
from processes import running, write_yaml
from servers import Mosquitto, free_port
from test_metrics_e2e import Samples, scrape, value

from agent.modbus.codec.plan import plan_reads
from agent.profiles import load_profile

pytestmark = pytest.mark.e2e

SITE, AGENT = "plant-f", "gw-f"
INTERVAL = 0.5
TIMEOUT = 30.0
RECOVERY = 60.0
"""Generous: after faults as short as these the backoff is a few seconds (ceiling 300 s)."""


def on_grid(stamps: list[float]) -> list[int]:
    """The tick of each read: reads are stamped when they start, at or just after it."""
    return [int((t + 0.01) // INTERVAL) for t in stamps]


def test_a_bad_meter_does_not_hold_up_the_others_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    profile = load_profile("eastron_sdm630")
    by_address = {r.address: str(r.quantity) for r in profile.registers}
    refused, booting = 342, 0  # unit 3 refuses register 342; unit 4's register 0 reads NaN
    faults = ["--fault", "2:timeout", "--fault", f"3:exception={refused}-{refused + 1}"]
    faults += ["--fault", f"4:nan={booting}-{booting + 1}"]
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        simulator(
            tmp_path,
            "serial",
            "eastron_sdm630",
            "1-4",
            ["--serial", str(sim_end), "--baud", "38400", *faults],
        ) as line,
        simulator(tmp_path, "tcp", "chint_dtsu666", "9") as tcp,
    ):
        serial: dict[str, Any] = {"serial": {"device": str(agent_end), "baud": 38400}}
        meters: list[dict[str, Any]] = [
            {
                "id": f"bus-{unit}",
                "profile": "eastron_sdm630",
                "modbus": {**serial, "unit_id": unit, "timeout": 0.15},
                "interval": INTERVAL,
            }
            for unit in (1, 2, 3, 4)
        ]
        meters.append(
            {
                "id": "tcp-9",
                "profile": "chint_dtsu666",
                "modbus": {"host": "127.0.0.1", "port": tcp.port, "unit_id": 9},
                "interval": INTERVAL,
            }
        )
        config = write_yaml(
            tmp_path / "agent.yaml",
            {
                "site": SITE,
                "agent_id": AGENT,
                "mqtt": {"url": mosquitto.url},
                "status_interval": 1,
                "meters": meters,
            },
        )
        with (
            listening(mosquitto, SITE, AGENT) as heard,
            running(
                "energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log"
            ) as agent,
        ):
            wait_until(
                lambda: heard.meter_state("bus-2") == "offline",
                TIMEOUT,
                "bus-2 reported offline in the status",
            )
            # a few seconds with the fault on: the rest keeps its schedule
            start = len(heard.of("tcp-9"))
            wait_until(lambda: len(heard.of("tcp-9")) >= start + 8, TIMEOUT, "tcp-9 reads on")
            during = heard.last_status()
            assert during is not None
            assert {m: h["state"] for m, h in during["meters"].items()} == {
                "bus-1": "online",
                "bus-2": "offline",
                "bus-3": "online",
                "bus-4": "online",
                "tcp-9": "online",
            }
            assert heard.of("bus-2") == []

            # heal: SIGUSR1 switches the simulator's faults off
            refusing = heard.of("bus-3")
            line.program.process.send_signal(signal.SIGUSR1)
            wait_until(lambda: "faults off" in line.program.output(), 10, "the faults off")
            wait_until(
                lambda: heard.meter_state("bus-2") == "online",
                TIMEOUT,
                "bus-2 back online in the status",
            )
            wait_until(lambda: len(heard.of("bus-2")) >= 3, TIMEOUT, "bus-2 readings again")
            wait_until(
                lambda: (
                    (heard.last_status() or {})["meters"]["bus-3"]["excluded"] == 0
                    and by_address[refused] in heard.of("bus-3")[-1]["values"]
                ),
                RECOVERY,
                "bus-3's refused register read again",
            )
            agent.assert_running()
            output = agent.output()
            final = heard.last_status()

    # the other bus never missed a tick, nor did the healthy meter on the faulty line
    for meter in ("tcp-9", "bus-1"):
        grid = on_grid(ticks([r["ts"] for r in heard.of(meter)]))
        assert grid == list(range(grid[0], grid[0] + len(grid))), (meter, grid)

    # bus-2: back with the values it serves
    for reading in heard.of("bus-2"):
        assert reading["values"] == pytest.approx(line.dump["2"], rel=1e-12)
    # bus-3: everything but the refused register while refused, found once, then back
    assert refusing
    assert all(by_address[refused] not in r["values"] for r in refusing)
    assert all(len(r["values"]) == len(profile.registers) - 1 for r in refusing)
    assert len(heard.of("bus-3")[-1]["values"]) == len(profile.registers)
    refusals = re.findall(r'msg="register refused, left out".*', output)
    assert len(refusals) == 1, refusals
    assert "meter=bus-3" in refusals[0] and f"register={refused} " in refusals[0]
    back = re.findall(r'msg="register answered again".*', output)
    assert len(back) == 1 and "meter=bus-3" in back[0] and f"register={refused} " in back[0]
    # bus-4: the NaN value dropped (logged once, counted) while the fault was on, the rest kept
    nan_readings = [r for r in heard.of("bus-4") if by_address[booting] not in r["values"]]
    assert nan_readings, "the NaN fault was seen"
    assert all(len(r["values"]) == len(profile.registers) - 1 for r in nan_readings)
    assert by_address[booting] in heard.of("bus-4")[-1]["values"]
    dropped = re.findall(r'msg="value dropped" meter=bus-4.*', output)
    assert len(dropped) == 1 and f"register={booting} " in dropped[0], dropped
    assert "not a number" in dropped[0]

    assert final is not None
    health = final["meters"]
    assert health["bus-2"]["errors"]["timeout"] >= 3
    assert health["bus-3"]["errors"] == {"illegal_address": 1}
    assert health["bus-3"]["excluded"] == 0
    assert health["bus-4"]["errors"]["bad_value"] == len(nan_readings)
    assert health["bus-1"]["errors"] == {} and health["tcp-9"]["errors"] == {}
    assert 'msg="meter offline" meter=bus-2' in output
    assert 'msg="meter online again" meter=bus-2' in output


REFUSED = 342


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(f"exception={REFUSED}-{REFUSED + 1}", id="one-register-refused"),
        pytest.param("flaky", id="every-register-refused-half-the-time"),
    ],
)
def test_refused_registers_come_back_and_the_reads_merge_again(
    tmp_path: Path, mosquitto: Mosquitto, fault: str
) -> None:
    """The issue: a transient "illegal data address" left registers out until a restart
    (a meter refusing half the time lost all 28 in seconds). Now the agent asks for them
    again on a backoff: once the simulator's fault is switched off they all come back,
    each logged once when left out and once when back, and the requests per read
    (counted by the agent's metrics) return to the fewest the profile needs."""
    profile = load_profile("eastron_sdm630")
    minimum = len(plan_reads(profile))
    metrics_port = free_port()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with simulator(tmp_path, "tcp", "eastron_sdm630", "5", ["--fault", f"5:{fault}"]) as sim:
        config = write_yaml(
            tmp_path / "agent.yaml",
            {
                "site": SITE,
                "agent_id": AGENT,
                "mqtt": {"url": mosquitto.url},
                "status_interval": 1,
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "meters": [
                    {
                        "id": "m5",
                        "profile": "eastron_sdm630",
                        "modbus": {"host": "127.0.0.1", "port": sim.port, "unit_id": 5},
                        "interval": INTERVAL,
                    }
                ],
            },
        )

        def excluded() -> int | None:
            status = heard.last_status()
            if status is None or "m5" not in status["meters"]:
                return None
            count: int = status["meters"]["m5"]["excluded"]
            return count

        def whole(reading: dict[str, Any]) -> bool:
            return len(reading["values"]) == len(profile.registers)

        with (
            listening(mosquitto, SITE, AGENT) as heard,
            running(
                "energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log"
            ) as agent,
        ):
            wait_until(excluded, TIMEOUT, "registers excluded in the status")
            wait_until(
                lambda: value(scrape(url), "greengauge_agent_meter_excluded_registers", meter="m5"),
                TIMEOUT,
                "registers excluded in the metrics",
            )
            # a few seconds of the fault: retries back off meanwhile
            start = len(heard.of("m5"))
            wait_until(lambda: len(heard.of("m5")) >= start + 10, TIMEOUT, "reads on")
            refusing = heard.of("m5")
            sim.program.process.send_signal(signal.SIGUSR1)
            wait_until(lambda: "faults off" in sim.program.output(), 10, "the faults off")
            wait_until(
                lambda: heard.of("m5") and whole(heard.of("m5")[-1]) and excluded() == 0,
                RECOVERY,
                "every register read again, nothing excluded in the status",
            )

            def requests_per_read() -> float | None:
                before = scrape(url)
                wait_until(
                    lambda: reads(scrape(url)) >= reads(before) + 4, TIMEOUT, "four more reads"
                )
                after = scrape(url)
                made = requests(after) - requests(before)
                done = reads(after) - reads(before)
                # a scrape may land inside a read: take a window whose counts line up
                return made / done if made % done == 0 else None

            per_read = wait_until(requests_per_read, TIMEOUT, "whole reads in the metrics")
            assert per_read == minimum
            agent.assert_running()
            output = agent.output()

    # While refused, the meter kept being read: only what it refused was missing.
    assert refusing and not all(whole(r) for r in refusing)
    # Each register left out was logged once, and once when it came back.
    left_out = Counter(
        re.findall(r'msg="register refused, left out" meter=m5 register=(\d+) ', output)
    )
    back = Counter(re.findall(r'msg="register answered again" meter=m5 register=(\d+) ', output))
    assert left_out and back == left_out
    if fault.startswith("exception"):
        assert left_out == {str(REFUSED): 1}
        assert all(len(r["values"]) == len(profile.registers) - 1 for r in refusing)


def reads(samples: Samples) -> float:
    return value(samples, "greengauge_agent_meter_reads_total", meter="m5") or 0.0


def requests(samples: Samples) -> float:
    return value(samples, "greengauge_agent_meter_requests_total", meter="m5") or 0.0
