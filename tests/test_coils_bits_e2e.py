"""Coils, discrete inputs, bit fields and enumerations, served by the real simulator.

`energy-agent simulate` serves tests/profiles/breaker_status.yaml (two coils 17 apart, a
discrete input with states, a status word holding a two-bit breaker state and a flag, a
serial number as text). mbpoll (libmodbus) reads them as an independent client: -t 0
coils, -t 1 discrete inputs, -t 4 the status word; the values must be what the
simulator's dump says. `energy-agent probe` then reads them through the agent's own read
path (plan, Modbus TCP client or pymodbus RTU framing, decode) and must agree.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import listening, serial_line, wait_until
from modbus_plant import simulator as plant_simulator
from processes import BIN, SIMULATOR_START, read_json, running, wait_for, write_yaml
from servers import Mosquitto, free_port

PROFILE = str(Path(__file__).parent / "profiles" / "breaker_status.yaml")
UNIT_IDS = (1, 2, 3, 4)
HOST = "127.0.0.1"
_VALUE_LINE = re.compile(r"^\[(\d+)\]:\s*(\S+)\s*$")
STATES = {0: "open", 1: "closed", 2: "tripped"}


@contextlib.contextmanager
def simulator(folder: Path, framer: str) -> Iterator[tuple[int, dict[str, dict[str, float]]]]:
    """The simulator on a free port, ready: (port, unit id -> quantity -> value served)."""
    port = free_port()
    dump = folder / f"sim-{framer}.json"
    args = ["simulate", "--profile", PROFILE, "--port", str(port), "--framer", framer]
    args += ["--unit-ids", "1-4", "--hold", "--dump", str(dump)]
    with running("energy-agent", args, folder / f"sim-{framer}.log"):
        wait_for(dump.exists, SIMULATOR_START, "the breaker_status simulator")
        document = read_json(dump)
        assert document["identification"]["1"] == {"serial": "SIM00001"}
        yield port, document["values"]


@pytest.fixture(scope="module")
def tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Any]]]:
    with simulator(tmp_path_factory.mktemp("coils"), "tcp") as started:
        yield started


def mbpoll(port: int, unit_id: int, table: str, address: int, count: int) -> list[int]:
    """Items `address`.. (0-based) of a table as mbpoll reads them: "0" coils, "1"
    discrete inputs, "4:hex" holding registers."""
    program = shutil.which("mbpoll")
    if program is None:
        pytest.fail("mbpoll is not installed (Debian/Ubuntu: apt-get install mbpoll)")
    command = [program, "-m", "tcp", "-p", str(port), "-a", str(unit_id), "-0", "-1"]
    command += ["-t", table, "-r", str(address), "-c", str(count), HOST]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, f"mbpoll failed: {result.stderr or result.stdout}"
    printed = {
        int(m[1]): int(m[2], 0)
        for line in result.stdout.splitlines()
        if (m := _VALUE_LINE.match(line.strip()))
    }
    assert sorted(printed) == list(range(address, address + count)), result.stdout
    return [printed[a] for a in sorted(printed)]


def test_mbpoll_reads_the_coils_discrete_inputs_and_status_word_the_dump_says(
    tcp: tuple[int, dict[str, dict[str, float]]],
) -> None:
    port, served = tcp
    seen_states: set[float] = set()
    for unit_id in UNIT_IDS:
        values = served[str(unit_id)]
        coils = mbpoll(port, unit_id, "0", 3, 18)
        assert coils[0] == values["power_factor_l1"]
        assert coils[17] == values["power_factor_l2"]
        assert set(coils) <= {0, 1}
        [alarm] = mbpoll(port, unit_id, "1", 7, 1)
        assert alarm == values["power_factor_l3"]
        [word] = mbpoll(port, unit_id, "4:hex", 100, 1)
        assert (word >> 4) & 0b11 == values["power_factor"]
        assert word & 1 == values["count"]
        assert values["power_factor"] in STATES
        seen_states.add(values["power_factor"])
    # The units differ, so a bit read from the wrong place cannot agree by chance everywhere.
    assert len(seen_states) > 1
    assert len({served[str(u)]["power_factor_l1"] for u in UNIT_IDS}) == 2


def test_a_coil_beyond_the_table_is_refused(
    tcp: tuple[int, dict[str, dict[str, float]]],
) -> None:
    port, _ = tcp
    command = [str(shutil.which("mbpoll")), "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-1"]
    command += ["-t", "0", "-r", "64", "-c", "1", HOST]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode != 0
    assert "Illegal data address" in result.stdout + result.stderr


def probe_rows(port: int, unit_id: int, framer: str) -> tuple[dict[str, list[str]], str]:
    command = [str(BIN / "energy-agent"), "probe", "--host", HOST, "--port", str(port)]
    command += ["--framer", framer, "--unit-id", str(unit_id), "--profile", PROFILE]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return {line.split()[0]: line.split() for line in lines[start:end]}, result.stdout


def check_probe(port: int, served: dict[str, dict[str, float]], framer: str) -> None:
    for unit_id in UNIT_IDS:
        rows, output = probe_rows(port, unit_id, framer)
        values = served[str(unit_id)]
        assert {q: float(row[1]) for q, row in rows.items()} == values
        assert rows["power_factor_l1"][3:6] == ["coil", "0x0003", "bit"]
        assert rows["power_factor_l3"][3:6] == ["discrete_input", "0x0007", "bit"]
        assert rows["power_factor"][3:9] == ["holding", "0x0064", "uint16", "ABCD", "bits", "4..5"]
        assert rows["count"][3:8] == ["holding", "0x0064", "uint16", "ABCD", "bit"]
        assert rows["power_factor"][-2:] == ["state", STATES[int(values["power_factor"])]]
        alarm = {0: "normal", 1: "alarm"}[int(values["power_factor_l3"])]
        assert rows["power_factor_l3"][-2:] == ["state", alarm]
        # Text is not a reading: probe shows it, the wire never carries it.
        assert f"serial: SIM{unit_id:05d}" in output


def test_probe_reads_them_through_the_agents_modbus_tcp_client(
    tcp: tuple[int, dict[str, dict[str, float]]],
) -> None:
    check_probe(*tcp, "tcp")


def test_energy_agent_test_reads_them_through_the_pollers_run_makes(
    tcp: tuple[int, dict[str, dict[str, float]]], tmp_path: Path
) -> None:
    port, served = tcp
    config = tmp_path / "agent.yaml"
    meters = "".join(
        f"  - id: breaker{u}\n    modbus: {{host: {HOST}, port: {port}, unit_id: {u}}}\n"
        f"    profile: {PROFILE}\n"
        for u in UNIT_IDS
    )
    config.write_text(f"site: plant\nmqtt: {{url: mqtt://{HOST}:1}}\nmeters:\n{meters}")
    command = [str(BIN / "energy-agent"), "test", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "meters: 4 ok, 0 failed; values read: 20; values refused: 0" in result.stdout
    for unit_id in UNIT_IDS:
        section = result.stdout.split(f"meter breaker{unit_id}:")[1].split("\n\n")[1]
        rows = {line.split()[0]: line.split() for line in section.splitlines()[2:]}
        assert {q: float(row[1]) for q, row in rows.items()} == served[str(unit_id)]
        assert rows["power_factor_l2"][3:6] == ["0x0014", "coil", "(1)"]
        assert rows["power_factor_l3"][3:6] == ["0x0007", "discrete_input", "(2)"]


def test_probe_reads_them_through_rtu_framing(tmp_path: Path) -> None:
    with simulator(tmp_path, "rtu") as (port, served):
        check_probe(port, served, "rtu")


def test_the_agent_publishes_the_states_as_numbers(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # Modbus TCP (the agent's own client) and a serial line (pymodbus RTU) in one agent.
    with (
        serial_line(tmp_path) as (sim_end, agent_end),
        plant_simulator(tmp_path, "tcp", PROFILE, "1-2") as tcp,
        plant_simulator(tmp_path, "serial", PROFILE, "3", ["--serial", str(sim_end)]) as serial,
    ):
        meters: list[dict[str, Any]] = [
            {"id": f"tcp-{u}", "modbus": {"host": HOST, "port": tcp.port, "unit_id": u}}
            for u in (1, 2)
        ]
        meters.append(
            {"id": "rtu-3", "modbus": {"serial": {"device": str(agent_end)}, "unit_id": 3}}
        )
        for meter in meters:
            meter |= {"profile": PROFILE, "interval": 0.5}
        config = write_yaml(
            tmp_path / "agent.yaml",
            {
                "site": "plant-s",
                "agent_id": "gw-s",
                "mqtt": {"url": mosquitto.url},
                "meters": meters,
            },
        )
        expected = {"tcp-1": tcp.dump["1"], "tcp-2": tcp.dump["2"], "rtu-3": serial.dump["3"]}
        with (
            listening(mosquitto, "plant-s", "gw-s") as heard,
            running("energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log"),
        ):
            wait_until(
                lambda: all(len(heard.of(m)) >= 2 for m in expected),
                30.0,
                "two readings of every breaker at the broker",
            )
    for meter_id, served in expected.items():
        for reading in heard.of(meter_id):
            assert reading["values"] == served, meter_id
