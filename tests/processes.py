"""The project's own programs as child processes, the way users run them: through the CLIs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from servers import free_port

BIN = Path(sys.executable).parent


class Program:
    """A running `energy-agent` / `energy-collector` command with its output in a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log: Path,
        bin_dir: Path = BIN,
        env: dict[str, str] | None = None,
    ) -> None:
        """`bin_dir`, `env`: another installation's command (an installed bundle's) and
        the environment it runs in; by default this checkout's, in this environment."""
        self.name = name
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [str(bin_dir / name), *args],
            stdout=self._file,
            stderr=subprocess.STDOUT,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.output()[-3000:]}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


@contextlib.contextmanager
def running(
    name: str,
    args: list[str],
    log: Path,
    bin_dir: Path = BIN,
    env: dict[str, str] | None = None,
) -> Iterator[Program]:
    program = Program(name, args, log, bin_dir, env)
    try:
        yield program
    finally:
        program.stop()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` when it never is."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


SIMULATOR_START = 30.0


@contextlib.contextmanager
def simulated_meters(
    workdir: Path, profile: str, unit_ids: str, hold: bool = True
) -> Iterator[tuple[int, Path]]:
    """`energy-agent simulate` on a free port, ready (its dump written): (port, dump file)."""
    port = free_port()
    dump = workdir / f"sim-{profile}-{port}.json"
    args = ["simulate", "--profile", profile, "--port", str(port), "--unit-ids", unit_ids]
    args += ["--dump", str(dump), *(["--hold"] if hold else [])]
    with running("energy-agent", args, workdir / f"sim-{profile}-{port}.log"):
        wait_for(dump.exists, SIMULATOR_START, f"the {profile} simulator")
        yield port, dump
