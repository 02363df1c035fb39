"""`energy-agent test --config` against the simulator, as an integrator commissions a plant:
a good meter, a dead one, one refusing a register and one with a value that is not a
number; the exit code, the table, and that nothing reached the broker or the disk. The
same for DL/T 645 meters behind a TCP gateway."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from modbus_plant import Simulator, simulator
from paho.mqtt.enums import CallbackAPIVersion
from processes import BIN, write_yaml
from servers import Mosquitto, free_port

from agent.dlt645.codec import encode_bcd
from agent.dlt645.profile import load_dlt645_profile

pytestmark = pytest.mark.e2e

PROFILE = "chint_dtsu666"
GOOD, DEAD, REFUSING, NOT_A_NUMBER = 4, 5, 6, 7
POWER_ACTIVE = 0x2012  # refused by unit 6
FREQUENCY = 0x2044  # NaN on unit 7
DDSU, DTSU = "chint_ddsu666_dlt645", "chint_dtsu666_dlt645"


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Simulator]:
    faults = [
        f"{DEAD}:timeout",
        f"{REFUSING}:exception={POWER_ACTIVE}-{POWER_ACTIVE + 1}",
        f"{NOT_A_NUMBER}:nan={FREQUENCY}-{FREQUENCY + 1}",
    ]
    extra = [arg for fault in faults for arg in ("--fault", fault)]
    with simulator(tmp_path, "plant", PROFILE, f"{GOOD}-{NOT_A_NUMBER}", extra) as started:
        yield started


class Counting:
    """A subscriber to everything at the broker, counting what arrives."""

    MARKER = "test/marker"

    def __init__(self, broker: Mosquitto) -> None:
        self.messages = 0
        self.subscribed = threading.Event()
        self._marker = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="counter")
        self._client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.on_message = self._count
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def _count(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.MARKER:
            self._marker.set()
        else:
            self.messages += 1

    def round_trip(self) -> None:
        """Our own message back: the broker handled whatever came before it."""
        self._client.publish(self.MARKER, b"", qos=1)
        assert self._marker.wait(10), "the marker message never came back"

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def config(tmp_path: Path, broker_url: str, port: int, units: dict[str, int]) -> Path:
    meters = [
        {
            "id": name,
            "profile": PROFILE,
            "modbus": {"host": "127.0.0.1", "port": port, "unit_id": unit, "timeout": 0.5},
        }
        for name, unit in units.items()
    ]
    return write_yaml(
        tmp_path / "agent.yaml",
        {
            "site": "plant-a",
            "agent_id": "gw-01",
            "mqtt": {"url": broker_url},
            "state_dir": "state",
            "meters": meters,
        },
    )


def commission(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "energy-agent"), "test", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def section(output: str, meter: str) -> dict[str, list[str]]:
    """The value rows of one meter's table: quantity -> cells (split on 2+ spaces)."""
    lines = output.split(f"meter {meter}:", 1)[1].split("\n\n")[1].splitlines()[2:]
    return {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in lines}


def overview(output: str) -> dict[str, str]:
    """meter -> result, from the overview table before the summary line."""
    table = output.rstrip().split("\n\n")[-2].splitlines()
    assert table[0].split() == ["meter", "profile", "transport", "address", "result"]
    rows = [re.split(r"\s{2,}", line) for line in table[2:]]
    return {row[0]: row[-1] for row in rows}


def test_a_plant_with_faults_is_shown_meter_by_meter_and_fails(
    plant: Simulator, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    counter = Counting(mosquitto)
    try:
        assert counter.subscribed.wait(10)
        log_before = mosquitto.log_file.read_text()
        path = config(
            tmp_path,
            mosquitto.url,
            plant.port,
            {"good": GOOD, "dead": DEAD, "refusing": REFUSING, "nan": NOT_A_NUMBER},
        )
        result = commission(path)
        counter.round_trip()
        log_after = mosquitto.log_file.read_text()
    finally:
        counter.close()
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr

    results = overview(out)
    assert results["good"] == "ok"
    assert results["dead"] == f"timeout: unit {DEAD} on 127.0.0.1:{plant.port}: no reply in 0.5s"
    assert results["refusing"] == "exception 2 (illegal data address): 1 refused"
    assert results["nan"] == "decode errors: 1"
    assert out.rstrip().endswith(
        # 24 values a DTSU666 reads (its per-phase energies are unconfirmed, so not read):
        # 24 (good) + 22 (refusing: 0x2012 is the total active power, and the total power
        # factor needs it for its sign) + 23 (nan: frequency undecodable) = 69
        "meters: 1 ok, 3 failed; values read: 69; values refused: 1; decode errors: 1"
    )

    served = plant.dump
    good = section(out, "good")
    assert len(good) == len(served[str(GOOD)]) == 24
    for quantity, value in served[str(GOOD)].items():
        cells = good[quantity]  # quantity value unit where (register) request format raw
        assert float(cells[1]) == pytest.approx(value, rel=1e-6), quantity
        assert cells[4] == "holding (3)" and cells[5] == "float32 ABCD"
        assert re.fullmatch(r"[0-9A-F]{4} [0-9A-F]{4}", cells[6]), cells
    assert good["power_active"][3] == "0x2012"

    refusing = section(out, "refusing")
    assert refusing["power_active"][1:] == [
        "-",
        "W",
        "0x2012",
        "holding (3)",
        "float32 ABCD",
        "refused: exception code 2 (illegal data address)",
    ]
    assert float(refusing["power_active_l1"][1]) == pytest.approx(
        served[str(REFUSING)]["power_active_l1"], rel=1e-6
    )
    nan = section(out, "nan")["frequency"]
    assert nan[1] == "-" and nan[6] == "7FC0 0000" and nan[7].startswith("not a number")
    assert f"meter dead: {PROFILE}, tcp 127.0.0.1:{plant.port}, unit {DEAD}: timeout" in out

    # Nothing published, no connection attempt at all, and no outbox on disk.
    assert counter.messages == 0
    assert log_after.startswith(log_before)
    assert "New connection" not in log_after[len(log_before) :], log_after
    assert not (tmp_path / "state").exists()


def test_a_plant_that_answers_everything_passes(plant: Simulator, tmp_path: Path) -> None:
    # No broker at all: the test must not need one.
    path = config(tmp_path, "mqtt://127.0.0.1:1", plant.port, {"incomer": GOOD})
    result = commission(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert overview(result.stdout) == {"incomer": "ok"}
    assert result.stdout.rstrip().endswith(
        "meters: 1 ok, 0 failed; values read: 24; values refused: 0; decode errors: 0"
    )
    assert result.stderr == ""
    assert not (tmp_path / "state").exists()


def test_a_bad_config_is_a_config_error(tmp_path: Path) -> None:
    path = config(tmp_path, "mqtt://127.0.0.1:1", 502, {"incomer": GOOD})
    path.write_text(path.read_text().replace(PROFILE, "no_such_meter"))
    result = commission(path)
    assert result.returncode == 2
    assert f"{path}:" in result.stderr and "meters.0.profile" in result.stderr
    assert result.stdout == ""


def test_a_meter_with_nothing_listening_fails_with_the_connection_error(tmp_path: Path) -> None:
    port = free_port()
    path = config(tmp_path, "mqtt://127.0.0.1:1", port, {"incomer": GOOD, "feeder": NOT_A_NUMBER})
    result = commission(path)
    assert result.returncode == 1
    results = overview(result.stdout)
    assert results["incomer"].startswith(f"connect: no connection to 127.0.0.1:{port}")
    # The second meter on that bus fails at once instead of costing another connect.
    assert results["feeder"].startswith(f"connect: no connection to 127.0.0.1:{port}")
    assert result.stdout.rstrip().endswith(
        "meters: 0 ok, 2 failed; values read: 0; values refused: 0; decode errors: 0"
    )


def test_dlt645_meters_behind_a_gateway_are_shown_with_identifiers_and_raw_bytes(
    tmp_path: Path,
) -> None:
    single, three = (load_dlt645_profile(name) for name in (DDSU, DTSU))
    lacking = [s for s in three.read_values if s.di not in {v.di for v in single.values}]
    assert lacking, "the three-phase profile asks for identifiers the single-phase one lacks"
    with simulator(tmp_path, "gateway", DDSU, "5-6", ["--protocol", "dlt645"]) as gateway:
        gw = {"host": "127.0.0.1", "port": gateway.port, "timeout": 0.5}
        meters = [
            {"id": "incomer", "profile": DDSU, "dlt645": {**gw, "address": "000000000005"}},
            # A three-phase profile on a single-phase meter: what it lacks is refused.
            {"id": "feeder", "profile": DTSU, "dlt645": {**gw, "address": "000000000006"}},
            # Nobody answers at this address.
            {"id": "dead", "profile": DDSU, "dlt645": {**gw, "address": "000000000009"}},
        ]
        path = write_yaml(
            tmp_path / "agent.yaml",
            {"site": "plant-d", "agent_id": "gw-d", "mqtt": {"url": "mqtt://127.0.0.1:1"}}
            | {"state_dir": "state", "meters": meters},
        )
        result = commission(path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    where = f"dlt645 gateway 127.0.0.1:{gateway.port}"
    assert f"meter incomer: {DDSU}, {where}, address 000000000005: ok" in out

    served = gateway.dump["5"]
    incomer = section(out, "incomer")
    assert len(incomer) == len(single.read_values)
    for spec in single.read_values:
        # quantity value unit where request format raw
        cells = incomer[spec.quantity.value]
        value = served[spec.quantity.value]
        assert float(cells[1]) == pytest.approx(value, rel=1e-6), cells
        raw = encode_bcd(value / spec.scale, spec.size, spec.decimals, spec.signed)
        identifier = " ".join(spec.identifier[i : i + 2] for i in range(0, 8, 2))
        assert cells[3:] == [
            identifier,
            "read data (0x11)",
            spec.format + (" signed" if spec.signed else ""),
            raw.hex(" ").upper(),
        ], cells
    assert incomer["voltage_l1"][3] == "02 01 01 00"

    refusal = "error 02 (no such data (the meter does not have this data identifier))"
    feeder = section(out, "feeder")
    for spec in lacking:
        assert feeder[spec.quantity.value][1] == "-"
        assert feeder[spec.quantity.value][-1] == f"refused: {refusal}"
    assert float(feeder["voltage_l1"][1]) == pytest.approx(gateway.dump["6"]["voltage_l1"])

    dead = section(out, "dead")
    first, *rest = (dead[spec.quantity.value][-1] for spec in single.read_values)
    timeout = f"timeout: meter 000000000009 on 127.0.0.1:{gateway.port}: no reply in 0.5s"
    assert first == timeout
    assert set(rest) == {"not read: the read stopped before it"}

    results = overview(out)
    assert results == {
        "incomer": "ok",
        "feeder": f"{refusal}: {len(lacking)} refused",
        "dead": timeout,
    }
    read = len(single.read_values) + len(three.read_values) - len(lacking)
    assert out.rstrip().endswith(
        f"meters: 1 ok, 2 failed; values read: {read}; values refused: {len(lacking)}; "
        "decode errors: 0"
    )
    assert not (tmp_path / "state").exists()
