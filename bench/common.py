"""Shared by the benchmarks: process CPU and memory from /proc, the machine, statistics.

CPU is read from /proc/PID/stat (utime + stime, in clock ticks) of the measured process
only, so a figure is "CPU seconds this process spent", which the other engineers' test
suites on the same machine disturb far less than wall-clock throughput. The servers come
from tests/servers.py (mosquitto, VictoriaMetrics), reused as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VAR = BENCH / "var"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT / "tests"))

from servers import Mosquitto, VictoriaMetrics, free_port  # noqa: E402

__all__ = [
    "BENCH",
    "ROOT",
    "VAR",
    "Mosquitto",
    "VictoriaMetrics",
    "free_port",
]

TICKS = os.sysconf("SC_CLK_TCK")
PYTHON = Path(sys.executable)
# py-spy from `make bench-setup` (bench/.venv), else beside this interpreter.
PY_SPY = next(
    (p for p in (BENCH / ".venv" / "bin" / "py-spy", PYTHON.parent / "py-spy") if p.exists()),
    BENCH / ".venv" / "bin" / "py-spy",
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (its threads included)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of the process so far, by thread id."""
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            found[int(task.name)] = cpu_seconds_of(task / "stat")
    return found


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    # After the ")": state is fields[0], utime fields[11], stime fields[12].
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak RSS) in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (Node-RED, npm wrappers)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pids += tree_pids(int(child))
    return pids


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": _commit(),
    }


def _commit() -> str:
    """The code measured: the checkout's commit, "+changes" when agent/ or collector/
    differ from it."""
    root = BENCH.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "agent", "collector")
    return f"{head}+changes" if changed else head


class MachineLoad:
    """Whole-machine busy fraction between start() and stop(): how noisy the run was."""

    def __init__(self) -> None:
        self._start = self._snap()

    @staticmethod
    def _snap() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]

    def busy(self) -> float:
        total1, idle1 = self._snap()
        total0, idle0 = self._start
        return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bin_path(name: str) -> str:
    """A console script of the project's virtualenv (the one running this script)."""
    return str(PYTHON.parent / name)


@contextlib.contextmanager
def child(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in `log`, terminated (then killed) on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def save_result(name: str, data: dict[str, Any]) -> Path:
    """Append one run's figures to bench/results/NAME.jsonl (kept in git: the record)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    with path.open("a") as file:
        file.write(json.dumps(data, sort_keys=True) + "\n")
    return path


def wait_port(port: int, timeout: float = 15.0) -> None:
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def subscriber(
    port: int, topic: str, client_id: str, on_message: Callable[[bytes], None]
) -> paho.Client:
    """A QoS 1 subscriber on the loopback broker, calling `on_message(payload)` from
    paho's thread; it subscribes again after a reconnect."""

    def received(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        on_message(bytes(message.payload))  # bytes already: no copy

    def on_connect(client: paho.Client, *_: Any) -> None:
        client.subscribe(topic, qos=1)

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_message = received
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client
