"""The agent's `event_loop`: asyncio by default, uvloop when chosen and installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent.config import EventLoop, load_config
from greengauge.common.configfile import ConfigError

CONFIG = """\
site: s1
agent_id: gw
mqtt: {url: "mqtt://127.0.0.1:1883"}
meters:
  - {id: a, profile: eastron_sdm630, modbus: {host: 10.0.0.5}}
"""


def write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG + extra)
    return path


def test_asyncio_unless_told(tmp_path: Path) -> None:
    assert load_config(write(tmp_path)).config.event_loop is EventLoop.ASYNCIO


def test_uvloop_when_chosen(tmp_path: Path) -> None:
    setup = load_config(write(tmp_path, "event_loop: uvloop\n"))
    assert setup.config.event_loop is EventLoop.UVLOOP


def test_uvloop_chosen_but_not_installed_names_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    path = write(tmp_path, "event_loop: uvloop\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        f"{path}:6: event_loop: uvloop is not installed "
        "(pip install 'greengauge[uvloop]', or Debian's python3-uvloop)"
    ]


def test_an_unknown_loop_is_refused_with_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, "event_loop: trio\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    [problem] = raised.value.problems
    assert problem.startswith(f"{path}:6: event_loop:") and "'asyncio' or 'uvloop'" in problem
