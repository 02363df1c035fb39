"""The offline install: deploy/offline/make-bundle.sh builds a bundle for this machine's
platform (from the package index pip is set up with: ~15 s, 17 MB here), and the
bundle's install.sh installs it into a fresh virtual environment with no index at all,
after which the installed `energy-agent test` reads a simulated meter; a bundle built
`--with-uvloop` installs uvloop too, and its agent runs on it. The scripts' arguments
and install.sh's refusals (another Python, damaged wheels) are checked too.
Bundles for other platforms (manylinux_2_36_aarch64) are built by hand, not here: see
deploy/GATEWAY.md, "Offline install"."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import running, simulated_meters, wait_for, write_yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
MAKE_BUNDLE = ROOT / "deploy" / "offline" / "make-bundle.sh"
INSTALL = ROOT / "deploy" / "offline" / "install.sh"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def run(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=cwd,
    )


def offline_env() -> dict[str, str]:
    """A gateway's environment: no pip config, find-links or index; no checkout on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    return env | {"PIP_CONFIG_FILE": os.devnull}


@pytest.mark.parametrize("script", [MAKE_BUNDLE, INSTALL])
def test_the_scripts_are_valid_bash_and_explain_themselves(script: Path) -> None:
    assert run("bash", "-n", script).returncode == 0
    helped = run(script, "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument --bogus"),
        (["--platform"], "--platform needs a value"),
        (["--platform", "--no-index"], "--platform needs a value"),
        (["--platform", "Linux ARM"], "give a wheel platform tag"),
        (["--platform", "manylinux_2_5_x86_64"], "older than any wheel's"),
        (["--python-version", "3"], "give major.minor"),
        (["--python-version", "2.7"], "give major.minor"),
        (["--out", "bundle.zip"], "the bundle is a .tar.gz"),
        (["--out", "/nonexistent/b.tar.gz"], "no such directory /nonexistent"),
        (["--find-links", "/nonexistent"], "--find-links /nonexistent: no such directory"),
        (["--python", "no-such-python3"], "--python no-such-python3: not found"),
    ],
)
def test_make_bundle_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = run(MAKE_BUNDLE, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("make-bundle.sh: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix"], "--prefix needs a value"),
        (["--bogus"], "unknown argument --bogus"),
        ([], "is not an unpacked GreenGauge bundle"),  # run from the checkout
    ],
)
def test_install_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = run(INSTALL, *args)
    assert result.returncode == 2
    assert message in result.stderr


def build_bundle(folder: Path, *options: str) -> Path:
    """A bundle for this machine, as an integrator builds one."""
    before = sorted(p.name for p in ROOT.iterdir())
    out = folder / "greengauge.tar.gz"
    built = run(MAKE_BUNDLE, "--python", sys.executable, "--out", out, *options)
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"wrote {out}" in built.stdout
    assert sorted(p.name for p in ROOT.iterdir()) == before  # no build/ or egg-info left
    return out


def unpack(bundle: Path, folder: Path) -> Path:
    with tarfile.open(bundle) as archive:
        archive.extractall(folder, filter="data")
    (top,) = folder.iterdir()
    return top


def install(unpacked: Path, prefix: Path) -> str:
    """install.sh's output."""
    installed = run(
        unpacked / "install.sh",
        "--prefix",
        prefix,
        "--no-systemd",
        "--python",
        sys.executable,
        env=offline_env(),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return installed.stdout


def wheel_names(unpacked: Path) -> set[str]:
    return {p.name.split("-")[0].lower() for p in (unpacked / "wheels").glob("*.whl")}


def described(unpacked: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (unpacked / "BUNDLE").read_text().splitlines())


def meter_config(path: Path, port: int, state_dir: Path, **more: object) -> Path:
    """One simulated SDM630 on `port`, a broker that is not there (the outbox keeps all)."""
    return write_yaml(
        path,
        {
            "site": "plant-a",
            "mqtt": {"url": "mqtt://127.0.0.1:1"},
            "state_dir": str(state_dir),
            "meters": [
                {
                    "id": "incomer",
                    "profile": "eastron_sdm630",
                    "interval": 1,
                    "modbus": {"host": "127.0.0.1", "port": port},
                }
            ],
            **more,
        },
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain bundle (asyncio only), built once for the module."""
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def unpacked(bundle: Path, tmp_path: Path) -> Iterator[Path]:
    top = unpack(bundle, tmp_path / "unpacked")
    yield top
    shutil.rmtree(tmp_path / "unpacked")


def test_the_bundle_holds_the_agent_its_wheels_and_what_install_needs(unpacked: Path) -> None:
    about = described(unpacked)
    assert about["GREENGAUGE_VERSION"] == "0.1.0"
    assert about["PYTHON_VERSION"] == PYTHON_VERSION
    assert about["EXTRAS"] == ""
    assert unpacked.name == f"greengauge-offline-0.1.0-{about['PLATFORM']}-py311"
    wheels = wheel_names(unpacked)
    assert {"greengauge", "pip", "pymodbus", "pydantic", "pydantic_core", "paho_mqtt"} <= wheels
    # The agent alone: none of the collector's (the `collector` extra's) dependencies,
    # and no uvloop unless asked for.
    assert not {"fastapi", "uvicorn", "influxdb_client", "matplotlib", "starlette"} & wheels
    assert "uvloop" not in wheels
    sums = (unpacked / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(list((unpacked / "wheels").glob("*.whl")))
    assert os.access(unpacked / "install.sh", os.X_OK)
    unit = unpacked / "systemd" / "energy-agent.service"
    assert unit.read_bytes() == (ROOT / "deploy/systemd/energy-agent.service").read_bytes()
    assert (unpacked / "configs" / "agent.example.yaml").exists()


def test_the_bundle_installs_without_an_index_and_the_agent_reads_a_meter(
    unpacked: Path, tmp_path: Path
) -> None:
    prefix, units = tmp_path / "opt", tmp_path / "units"
    installed = run(
        unpacked / "install.sh",
        "--prefix",
        prefix,
        "--unit-dir",
        units,
        "--python",
        sys.executable,
        env=offline_env(),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (units / "energy-agent.service").exists()
    where = run(
        prefix / "bin" / "python",
        "-c",
        "import agent; print(agent.__file__)",
        env=offline_env(),
        cwd=tmp_path,  # not the checkout, whose agent/ `python -c` would find first
    )
    assert where.stdout.startswith(str(prefix)), where  # the bundle's agent, not the checkout's
    assert (prefix / "bin" / "pip").exists()  # pip came from the bundle, for upgrades
    with simulated_meters(tmp_path, "eastron_sdm630", "1") as (port, _):
        config = write_yaml(
            tmp_path / "agent.yaml",
            {
                "site": "plant-a",
                "mqtt": {"url": "mqtt://127.0.0.1:1"},
                "meters": [
                    {
                        "id": "incomer",
                        "profile": "eastron_sdm630",
                        "modbus": {"host": "127.0.0.1", "port": port},
                    }
                ],
            },
        )
        tested = run(prefix / "bin" / "energy-agent", "test", "--config", config, env=offline_env())
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "meters: 1 ok, 0 failed" in tested.stdout
    # The plain bundle has no uvloop: a config that chooses it is refused at its line.
    uvloop_config = meter_config(tmp_path / "uvloop.yaml", 1, tmp_path, event_loop="uvloop")
    refused = run(prefix / "bin" / "energy-agent", "check", "--config", uvloop_config)
    assert refused.returncode != 0
    assert "event_loop: uvloop is not installed" in refused.stdout + refused.stderr


def test_a_bundle_with_uvloop_installs_it_and_the_agent_reads_on_it(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    unpacked = unpack(
        build_bundle(tmp_path_factory.mktemp("uvloop"), "--with-uvloop"), tmp_path / "unpacked"
    )
    assert described(unpacked)["EXTRAS"] == "uvloop"
    assert unpacked.name.endswith("-py311-uvloop")
    assert "uvloop" in wheel_names(unpacked)
    prefix, state = tmp_path / "opt", tmp_path / "state"
    assert "with uvloop: `event_loop: uvloop` in agent.yaml" in install(unpacked, prefix)
    with simulated_meters(tmp_path, "eastron_sdm630", "1") as (port, _):
        config = meter_config(tmp_path / "agent.yaml", port, state, event_loop="uvloop")
        checked = run(prefix / "bin" / "energy-agent", "check", "--config", config)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        log = tmp_path / "agent.log"
        args = ["run", "--config", str(config)]
        with running("energy-agent", args, log, prefix / "bin", offline_env()) as agent:
            # Readings reach the outbox (the broker is not there): the agent polls on uvloop.
            wait_for(lambda: _outbox_readings(state) >= 2, 20, "two readings in the outbox")
            agent.assert_running()
    assert "event_loop=uvloop" in log.read_text()  # the agent's start line (logfmt)


def _outbox_readings(state: Path) -> int:
    path = state / "outbox.sqlite"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            (count,) = db.execute("SELECT COALESCE(SUM(readings), 0) FROM batch").fetchone()
        except sqlite3.OperationalError:  # not created yet
            return 0
    return int(count)


def test_install_refuses_a_bundle_for_another_python(unpacked: Path, tmp_path: Path) -> None:
    described = unpacked / "BUNDLE"
    described.write_text(described.read_text().replace(PYTHON_VERSION, "3.99"))
    result = run(unpacked / "install.sh", "--prefix", tmp_path / "opt", "--no-systemd")
    assert result.returncode == 2
    assert "this bundle is for Python 3.99" in result.stderr
    assert not (tmp_path / "opt").exists()


def test_install_refuses_damaged_wheels(unpacked: Path, tmp_path: Path) -> None:
    (wheel,) = (unpacked / "wheels").glob("pymodbus-*.whl")
    wheel.write_bytes(wheel.read_bytes()[:1000])  # a copy cut short
    result = run(
        unpacked / "install.sh",
        "--prefix",
        tmp_path / "opt",
        "--no-systemd",
        "--python",
        sys.executable,
    )
    assert result.returncode == 2
    assert "wheels damaged or missing" in result.stderr
    assert not (tmp_path / "opt").exists()
