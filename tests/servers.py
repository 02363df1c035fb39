"""Real servers for end-to-end tests: mosquitto and VictoriaMetrics on free loopback ports.

Each server runs as a child process with its own folder (config, data, logs) and can be
stopped gracefully, killed, and restarted on the same port with the same data, which is
what broker-outage and store-outage tests need. The `mosquitto` and `victoria_metrics`
fixtures in conftest.py start one per test; test modules import the classes with
`from servers import Mosquitto, VictoriaMetrics` (pytest puts tests/ on sys.path).

A missing server binary fails the run, never skips it: a suite that silently skips its
end-to-end tests reports green while proving nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import http.client
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import pytest

HOST: Final = "127.0.0.1"
DEPLOY: Final = Path(__file__).resolve().parent.parent / "deploy"
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 10.0
_POLL_INTERVAL: Final = 0.01
_PORT_ATTEMPTS: Final = 3

_DEBIAN_PACKAGES: Final = {"mosquitto": "mosquitto", "victoria-metrics": "victoria-metrics"}
# Debian puts mosquitto in /usr/sbin, which is not on every user's PATH.
_EXTRA_BIN_DIRS: Final = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")

# Children still running when the interpreter exits (a crashed or interrupted run)
# would otherwise keep ports and temp folders busy.
_children: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_children):
        with contextlib.suppress(OSError):
            process.kill()
            process.wait(timeout=5)


class ServerError(RuntimeError):
    """A test server did not start or stop as expected."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def require_binary(name: str) -> str:
    """Path of a server binary; fail the test (not skip) when it is not installed."""
    found = shutil.which(name) or shutil.which(name, path=":".join(_EXTRA_BIN_DIRS))
    if found is None:
        package = _DEBIAN_PACKAGES.get(name, f"that provides {name}")
        pytest.fail(
            f"{name} is not installed: install the Debian package {package} "
            f"(apt-get install {package}); `make test` installs it. "
            "End-to-end tests need the real server and are never skipped.",
            pytrace=False,
        )
    return found


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _Server:
    """A server child process bound to one loopback port for its whole life."""

    binary: ClassVar[str]

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        # An explicit port must be honoured; an automatic one may be swapped if another
        # process grabs it between free_port() and the server's bind.
        self._port_fixed = port is not None
        self._port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._output = workdir / f"{self.binary}.out"

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _arguments(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write whatever the server reads at start-up (config files)."""

    def _ready(self) -> bool:
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self._output, lines)

    def start(self) -> None:
        """Start the server and return once it serves requests (bounded by START_TIMEOUT)."""
        if self.running:
            raise ServerError(f"{self.binary} is already running on port {self._port}")
        binary = require_binary(self.binary)
        for attempt in range(_PORT_ATTEMPTS):
            self._prepare()
            if self._launch(binary):
                return
            if self._port_fixed or attempt == _PORT_ATTEMPTS - 1:
                break
            self._port = free_port()
        raise ServerError(
            f"{self.binary} exited during start-up on port {self._port}:\n{self.log_tail()}"
        )

    def _launch(self, binary: str) -> bool:
        """Run the server until ready (True) or until it exits (False); raise on timeout."""
        with self._output.open("ab") as output:
            process = subprocess.Popen(
                [binary, *self._arguments()],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._process = process
        _children.add(process)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None:
            if self._ready():
                return True
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self.binary} did not become ready on port {self._port} within "
                    f"{START_TIMEOUT:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)
        self._forget()
        return False

    def stop(self) -> None:
        """Graceful stop (SIGTERM) and wait; a server that hangs is killed and reported."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServerError(
                    f"{self.binary} ignored SIGTERM for {STOP_TIMEOUT:.0f} s and was killed:\n"
                    f"{self.log_tail()}"
                ) from None
        self._forget()

    def kill(self) -> None:
        """Crash the server (SIGKILL): nothing is flushed or saved."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._forget()

    def restart(self) -> None:
        """Graceful stop, then start again on the same port with the same data."""
        self.stop()
        self._port_fixed = True
        self.start()

    def _forget(self) -> None:
        if self._process is not None:
            _children.discard(self._process)
        self._process = None


class Mosquitto(_Server):
    """A mosquitto broker: anonymous, loopback only, persistent like a production broker.

    Persistence is saved on a graceful stop (and every `autosave_interval`, mosquitto's
    default 30 min), so `restart()` keeps retained messages, persistent sessions and
    their queued messages, while `kill()` loses whatever was not saved, as a crash would.
    """

    binary = "mosquitto"

    def __init__(
        self, workdir: Path, port: int | None = None, extra_config: Sequence[str] = ()
    ) -> None:
        """`extra_config`: more mosquitto.conf lines, e.g. "max_queued_messages 10000"."""
        super().__init__(workdir, port)
        self.extra_config = list(extra_config)
        self.config_file = workdir / "mosquitto.conf"
        self.log_file = workdir / "mosquitto.log"
        self.data_dir = workdir / "data"

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            f"log_dest file {self.log_file}",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            # Started as root, mosquitto would switch to user "mosquitto", which cannot
            # write to this folder; naming the current user keeps it as it is.
            f"user {getpass.getuser()}",
            # As deploy/mosquitto/mosquitto.conf: just above the collector's max_payload.
            "max_packet_size 1049600",
            *self.extra_config,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")

    def _arguments(self) -> list[str]:
        return ["-c", str(self.config_file)]

    def _ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(filter(None, (_tail(self.log_file, lines), super().log_tail(lines))))


class DeployedMosquitto(Mosquitto):
    """The compose stack's broker: deploy/mosquitto/mosquitto.conf and acl as shipped.

    Paths are moved into the work folder and the two listeners onto free loopback ports:
    `port` is the gateways' and MES's (8883 in compose), `collector_port` the collector's
    (8884). TLS uses a test PKI made by deploy/pki/make-test-pki.sh (`ca_file`). Gateways
    get their users from deploy/mosquitto/add-agent.sh (`add_agent`, into `users_dir`);
    the password files and the ACL are assembled as deploy/mosquitto/entrypoint.sh does.
    """

    def __init__(self, workdir: Path, collector_password: str) -> None:
        super().__init__(workdir)
        self.collector_password = collector_password
        self.collector_port = free_port()
        self.config_dir = workdir / "config"
        self.certs = workdir / "certs"
        self.users_dir = workdir / "users"
        self.config_dir.mkdir(exist_ok=True)
        shutil.copy(DEPLOY / "mosquitto/acl", self.config_dir / "acl")

    @property
    def url(self) -> str:
        return f"mqtts://{HOST}:{self.port}"

    @property
    def collector_url(self) -> str:
        return f"mqtts://{HOST}:{self.collector_port}"

    @property
    def ca_file(self) -> Path:
        return self.certs / "ca.pem"

    def add_agent(self, site: str, agent: str, password: str) -> subprocess.CompletedProcess[str]:
        """Run add-agent.sh SITE AGENT with the password on stdin (takes effect at start)."""
        return subprocess.run(
            [str(DEPLOY / "mosquitto/add-agent.sh"), site, agent],
            input=password + "\n",
            capture_output=True,
            text=True,
            check=False,
            env={"MOSQUITTO_DIR": str(self.users_dir), "PATH": ":".join(_EXTRA_BIN_DIRS)},
        )

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        if not self.ca_file.exists():
            subprocess.run(
                [str(DEPLOY / "pki/make-test-pki.sh"), str(self.certs)],
                check=True,
                capture_output=True,
            )
        gateways = self.users_dir / "passwd"
        passwd = self.data_dir / "passwd"
        passwd.write_bytes(gateways.read_bytes() if gateways.exists() else b"")
        agents = self.users_dir / "agents.acl"
        (self.data_dir / "acl").write_bytes(
            (self.config_dir / "acl").read_bytes()
            + (agents.read_bytes() if agents.exists() else b"")
        )
        subprocess.run(
            [
                require_binary("mosquitto_passwd"),
                "-c",
                "-b",
                str(self.data_dir / "passwd-collector"),
                "collector",
                self.collector_password,
            ],
            check=True,
        )
        conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
        for shipped, here in (
            ("/mosquitto/config/greengauge/", self.config_dir),
            ("/mosquitto/data/", self.data_dir),
            ("/mosquitto/certs/", self.certs),
        ):
            conf = conf.replace(shipped, f"{here}/")
        for shipped_port, port in ((8883, self.port), (8884, self.collector_port)):
            assert f"\nlistener {shipped_port}\n" in conf
            conf = conf.replace(f"\nlistener {shipped_port}\n", f"\nlistener {port} {HOST}\n")
        conf += f"user {getpass.getuser()}\nlog_dest file {self.log_file}\n"
        self.config_file.write_text(conf)

    def _ready(self) -> bool:
        try:
            for port in (self.port, self.collector_port):
                with socket.create_connection((HOST, port), timeout=1):
                    pass
        except OSError:
            return False
        return True


class VictoriaMetrics(_Server):
    """A single-node VictoriaMetrics standing in for InfluxDB (it takes the v2 write API).

    What a write to `/api/v2/write?org=O&bucket=B&precision=ms` becomes (checked against
    victoria-metrics 1.79, see tests/test_servers.py):

    - every field is its own series named `{measurement}_{field}`: line
      `reading,agent=a,meter=m,site=s voltage_l1=230.1 1700000000000` gives metric
      `reading_voltage_l1` with labels exactly `agent`, `meter`, `site`;
    - `org` and `bucket` are ignored: no `db` (or other) label is added, unlike the v1
      `/write?db=X`, which adds `db="X"`;
    - tag values come back unescaped (`\\,` `\\=` `\\ ` and a doubled backslash);
    - a line it cannot parse is logged and skipped, the request still answers 204;
      it answers 400 only to an unreadable body (bad gzip) or a line longer than
      `-influx.maxLineSize`;
    - timestamps are kept in milliseconds; values keep about 12 significant digits
      (230.66666666666666 reads back as 230.6666666666), not the full float64.

    Test-friendly flags: `-search.latencyOffset=0` and `-search.disableCache` make a
    point visible to queries as soon as it is flushed; `-dedup.minScrapeInterval=1ms`
    keeps one sample per series and millisecond, as InfluxDB keeps one point per series
    and timestamp (without it, writing a point twice stores it twice).
    """

    binary = "victoria-metrics"

    FLAGS: ClassVar[tuple[str, ...]] = (
        "-retentionPeriod=100y",
        "-search.latencyOffset=0",
        "-search.disableCache",
        "-dedup.minScrapeInterval=1ms",
    )
    # Export's default end is "now" at second resolution, which hides points stamped in
    # the current second; asking up to 2100-01-01 shows everything written.
    _EXPORT_END: Final = "4102444800"

    def __init__(
        self, workdir: Path, port: int | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        """`extra_args`: more command-line flags, e.g. "-influx.maxLineSize=100"."""
        super().__init__(workdir, port)
        self.extra_args = list(extra_args)
        self.data_dir = workdir / "data"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _arguments(self) -> list[str]:
        return [
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={HOST}:{self.port}",
            *self.FLAGS,
            *self.extra_args,
        ]

    def _ready(self) -> bool:
        try:
            return self._get("/health", timeout=1) == b"OK"
        except (OSError, http.client.HTTPException):
            return False

    def _get(self, path: str, timeout: float = 10) -> bytes:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as response:  # noqa: S310
            body: bytes = response.read()
            return body

    def force_flush(self) -> None:
        """Make every point written so far visible to queries and exports."""
        self._get("/internal/force_flush")

    def write_lines(self, lines: str | bytes, precision: str = "ms") -> None:
        """POST line protocol to the InfluxDB v2 write endpoint (org/bucket "test")."""
        body = lines.encode() if isinstance(lines, str) else lines
        query = urllib.parse.urlencode({"org": "test", "bucket": "test", "precision": precision})
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/api/v2/write?{query}", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every raw sample of the series matching a selector, flushed first.

        `match` is a series selector such as `reading_voltage_l1` or
        `{__name__=~"reading_.*", site="s1"}`. Each item is
        `{"metric": {"__name__": ..., label: value}, "values": [...], "timestamps": [...]}`
        (timestamps in epoch ms); items are sorted by their labels.
        """
        self.force_flush()
        query = urllib.parse.urlencode({"match[]": match, "end": self._EXPORT_END})
        body = self._get(f"/api/v1/export?{query}")
        series = [json.loads(line) for line in body.splitlines() if line.strip()]
        return sorted(series, key=lambda item: sorted(item["metric"].items()))
