"""Packaging: `pip install greengauge` is the agent alone (pymodbus, pyserial, the MQTT
clients, pydantic, PyYAML, prometheus-client); the collector's dependencies come with
the `collector` extra. Checked on the source (every third-party import of agent/ and
greengauge/ is a base dependency, of collector/ a base or collector one), and end to end:
the agent installed alone into a fresh virtualenv from the package index (~30 s with
pip's cache) runs `--help` and `check`, has none of the collector's dependencies, and
`energy-collector` there names the extra to install."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_architecture import imports, sources
from venvs import install, run

from collector.needs import extra_requirements, missing_message

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"agent", "collector", "greengauge"}
# The import names of the collector extra's distributions, as the venv test looks for them.
COLLECTOR_MODULES = ["fastapi", "uvicorn", "influxdb_client", "matplotlib", "openpyxl"]
AGENT_MODULES = ["pymodbus", "serial", "aiomqtt", "paho", "pydantic", "yaml"]
ALL_MODULES = COLLECTOR_MODULES + AGENT_MODULES


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    found = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r) for r in requirements)
    return {_normal(m.group(0)) for m in found if m}


BASE = _names(PROJECT["dependencies"])
COLLECTOR_EXTRA = _names(PROJECT["optional-dependencies"]["collector"])
UVLOOP_EXTRA = _names(PROJECT["optional-dependencies"]["uvloop"])
"""The agent's `event_loop: uvloop`: imported only when a config chooses it."""


def third_party_distributions(package: str) -> dict[str, set[str]]:
    """The distributions each third-party module that `package` imports (at module level or
    inside a function) comes from, as installed in this (full) environment."""
    owners = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sources(package):
        for name in imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                continue
            assert top in owners, f"{path}: imports {top}, which no installed package provides"
            found.setdefault(top, set()).update(_normal(d) for d in owners[top])
    return found


@pytest.mark.parametrize(("package", "opt_in"), [("agent", UVLOOP_EXTRA), ("greengauge", set())])
def test_the_agent_imports_only_its_base_dependencies(package: str, opt_in: set[str]) -> None:
    allowed = BASE | opt_in
    outside = {m: d for m, d in third_party_distributions(package).items() if not d & allowed}
    assert not outside, f"{package}/ imports what `pip install greengauge` does not bring"


def test_the_collector_imports_only_base_and_collector_dependencies() -> None:
    allowed = BASE | COLLECTOR_EXTRA
    outside = {m: d for m, d in third_party_distributions("collector").items() if not d & allowed}
    assert not outside, "collector/ imports what `greengauge[collector]` does not bring"


def test_the_collector_extra_is_what_the_agent_does_not_need() -> None:
    assert {"fastapi", "uvicorn", "influxdb-client", "matplotlib"} <= COLLECTOR_EXTRA
    assert not COLLECTOR_EXTRA & BASE
    self_extras = [
        set(m.group(1).split(","))
        for r in PROJECT["optional-dependencies"]["dev"]
        if (m := re.fullmatch(r"greengauge\[([a-z,]+)\]", r))
    ]
    assert any("collector" in extras for extras in self_extras)
    assert {"uvloop"} == UVLOOP_EXTRA and not UVLOOP_EXTRA & BASE


def test_extra_requirements_reads_requires_dist_lines() -> None:
    requires = [
        "pymodbus<4,>=3.16",
        "influxdb-client<2,>=1.40; extra == 'collector'",
        'fastapi[standard]<1,>=0.110 ; extra == "collector"',
        "greengauge[collector]; extra == 'dev'",
        "pytest<10,>=8; extra == 'dev'",
        "tomli; python_version < '3.11'",
    ]
    assert extra_requirements(requires, "collector") == ["influxdb-client", "fastapi"]
    assert extra_requirements(requires, "dev") == ["greengauge", "pytest"]
    assert extra_requirements(requires, "none") == []


_DIST = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True)


@given(
    st.lists(
        st.tuples(
            _DIST, st.sampled_from(["", ">=1", "<2,>=1.0", "[x]>=3", " ==1.*"]), st.booleans()
        ),
        max_size=8,
    ),
    st.sampled_from(["'", '"']),
)
def test_extra_requirements_takes_exactly_the_extras_lines(
    lines: list[tuple[str, str, bool]], quote: str
) -> None:
    requires = [
        f"{name}{spec}; extra == {quote}collector{quote}" if mine else f"{name}{spec}"
        for name, spec, mine in lines
    ]
    assert extra_requirements(requires, "collector") == [n for n, _, mine in lines if mine]


def test_the_missing_message_names_the_extra() -> None:
    message = missing_message(["fastapi", "uvicorn"])
    assert message.startswith("energy-collector: ")
    assert "fastapi, uvicorn" in message
    assert "pip install 'greengauge[collector]'" in message


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with `pip install greengauge`, no extra."""
    work = tmp_path_factory.mktemp("agent-only")
    yield install(work, "venv")
    shutil.rmtree(work)


@pytest.mark.e2e
def test_the_agent_alone_runs_help_and_check(agent_venv: Path, tmp_path: Path) -> None:
    helped = run(agent_venv / "bin" / "energy-agent", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: energy-agent")
    config = ROOT / "configs" / "agent.example.yaml"

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return run(
            agent_venv / "bin" / "energy-agent",
            "check",
            "--config",
            path,
            cwd=tmp_path,
            env={"MQTT_PASSWORD": "not-a-secret"},
        )

    checked = check(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{config}: OK" in checked.stdout
    assert "incomer     eastron_sdm630" in checked.stdout
    # uvloop is an extra: a config that chooses it says what to install.
    uvloop_config = tmp_path / "uvloop.yaml"
    uvloop_config.write_text(config.read_text() + "event_loop: uvloop\n")
    refused = check(uvloop_config)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "event_loop: uvloop is not installed (pip install 'greengauge[uvloop]'" in (
        refused.stdout + refused.stderr
    )


@pytest.mark.e2e
def test_the_agent_alone_has_none_of_the_collectors_dependencies(
    agent_venv: Path, tmp_path: Path
) -> None:
    # Every agent and greengauge module imported, each from the venv (not the checkout),
    # without one of the collector's dependencies being there or being loaded.
    probe = f"""
import importlib, importlib.util, json, pkgutil, sys
import agent, greengauge
loaded = [m.name for p in (agent, greengauge)
          for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")
          if importlib.import_module(m.name)]
print(json.dumps({{
    "where": agent.__file__,
    "loaded": len(loaded),
    "found": {{n: importlib.util.find_spec(n) is not None for n in {ALL_MODULES}}},
    "in_memory": sorted({{n.split(".")[0] for n in sys.modules}} & set({COLLECTOR_MODULES})),
}}))
"""
    result = run(agent_venv / "bin" / "python", "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["where"].startswith(str(agent_venv))
    assert seen["loaded"] > 50
    assert seen["found"] == {n: n in AGENT_MODULES for n in ALL_MODULES}
    assert seen["in_memory"] == []


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["run", "check", "report"])
def test_the_collector_without_its_extra_names_the_extra(
    agent_venv: Path, tmp_path: Path, command: str
) -> None:
    config = ROOT / "configs" / "collector.single-plant.example.yaml"
    args = ["--site", "plant-a", "--month", "2026-01"] if command == "report" else []
    result = run(
        agent_venv / "bin" / "energy-collector", command, "--config", config, *args, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "pip install 'greengauge[collector]'" in result.stderr
    assert "influxdb-client" in result.stderr and "fastapi" in result.stderr
