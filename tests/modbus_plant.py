"""Helpers for the transport and fault end-to-end tests: socat pty pairs standing in for
an RS-485 line, simulators on TCP / RTU over TCP / serial, and an MQTT listener that
records what the agent publishes (readings and status), straight from the broker."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from processes import Program, read_json, wait_for
from servers import Mosquitto, free_port, require_binary

from agent.profiles import load_profile

START_TIMEOUT = 20.0


@contextmanager
def serial_line(folder: Path, name: str = "line") -> Iterator[tuple[Path, Path]]:
    """A pty pair joined by socat: (simulator end, agent end), like two ends of a cable."""
    socat = require_binary("socat")
    sim_end, agent_end = folder / f"{name}-sim", folder / f"{name}-agent"
    log = (folder / f"socat-{name}.log").open("wb")
    process = subprocess.Popen(
        [
            socat,
            "-d",
            "-d",
            f"pty,raw,echo=0,link={sim_end}",
            f"pty,raw,echo=0,link={agent_end}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: (sim_end.exists() and agent_end.exists()) or process.poll() is not None,
            START_TIMEOUT,
            "socat's pty pair",
        )
        assert process.poll() is None, (folder / f"socat-{name}.log").read_text()
        yield sim_end, agent_end
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@dataclass
class Simulator:
    program: Program
    dump: dict[str, dict[str, float]]
    """unit id -> quantity -> value served (held), of the registers the agent reads (the
    simulator serves the unconfirmed ones too)"""
    port: int = 0


@contextmanager
def simulator(
    folder: Path,
    name: str,
    profile: str,
    unit_ids: str,
    extra: list[str] | None = None,
) -> Iterator[Simulator]:
    """`energy-agent simulate --hold` until it serves; TCP on a free port unless `extra`
    has --serial."""
    extra = extra or []
    dump = folder / f"{name}.json"
    port = 0 if "--serial" in extra else free_port()
    args = ["simulate", "--profile", profile, "--unit-ids", unit_ids, "--hold"]
    args += ["--dump", str(dump), *extra]
    if port:
        args += ["--port", str(port)]
    program = Program("energy-agent", args, folder / f"{name}.log")
    try:
        wait_for(
            lambda: dump.exists() or program.process.poll() is not None,
            START_TIMEOUT,
            f"simulator {name}",
        )
        program.assert_running()
        served = read_json(dump)["values"]
        if "dlt645" not in extra:  # a Modbus profile: its unconfirmed registers are not read
            read = {str(r.quantity) for r in load_profile(profile).read_registers}
            served = {
                unit: {q: v for q, v in values.items() if q in read}
                for unit, values in served.items()
            }
        yield Simulator(program, served, port)
    finally:
        program.stop()


@dataclass
class Listener:
    """Everything the agent publishes, as the broker delivers it."""

    readings: list[dict[str, Any]] = field(default_factory=list)
    """every MeterReading, in arrival order"""
    statuses: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, meter: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.readings if r["meter"] == meter]

    def last_status(self) -> dict[str, Any] | None:
        with self.lock:
            return self.statuses[-1] if self.statuses else None

    def meter_state(self, meter: str) -> str | None:
        status = self.last_status()
        if status is None or meter not in status.get("meters", {}):
            return None
        state: str = status["meters"][meter]["state"]
        return state


@contextmanager
def listening(broker: Mosquitto, site: str, agent: str) -> Iterator[Listener]:
    listener = Listener()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener")

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"greengauge/v1/{site}/{agent}/#", qos=1)

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        document = json.loads(message.payload)
        with listener.lock:
            if message.topic.endswith("/readings"):
                listener.readings.extend(document["readings"])
            else:
                listener.statuses.append(document)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield listener
    finally:
        client.loop_stop()
        client.disconnect()


def ticks(stamps: list[str]) -> list[float]:
    """Reading times (ISO, Z) as epoch seconds."""
    from datetime import datetime  # noqa: PLC0415

    return [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps]


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    return wait_for(condition, timeout, what, interval=0.05)


def settle(seconds: float) -> None:
    time.sleep(seconds)
