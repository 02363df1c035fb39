"""`energy-agent probe` and `scan` against the simulator, as an integrator commissions a bus."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import BIN, read_json, simulated_meters
from servers import free_port

from agent.profiles import load_profile


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    with simulated_meters(tmp_path, "chint_dtsu666", "4,7") as started:
        yield started


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "energy-agent"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def table_rows(output: str) -> dict[str, list[str]]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    return {line.split()[0]: line.split() for line in lines[start:] if line.strip()}


def test_probe_shows_every_quantity_with_its_value_unit_and_raw_registers(
    simulator: tuple[int, Path],
) -> None:
    port, dump = simulator
    result = agent(
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--unit-id",
        "4",
        "--profile",
        "chint_dtsu666",
        "--all-orders",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the tools keep routine logging out of the way
    served = read_json(dump)["values"]["4"]
    rows = table_rows(result.stdout)
    profile = load_profile("chint_dtsu666")
    assert set(rows) == {str(r.quantity) for r in profile.registers}
    for quantity, value in served.items():
        row = rows[quantity]
        assert float(row[1]) == pytest.approx(value, rel=1e-6), quantity
        # columns: quantity value unit table register type order raw raw ABCD CDAB BADC DCBA
        assert row[2] in {"V", "A", "W", "var", "1", "Hz", "kWh"}
        assert float(row[9]) == pytest.approx(value, rel=1e-5)  # ABCD column, 6 digits


def test_scan_finds_the_answering_unit_ids_and_their_profile(
    simulator: tuple[int, Path],
) -> None:
    port, _ = simulator
    result = agent("scan", "--host", "127.0.0.1", "--port", str(port), "--unit-ids", "1-8")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert sorted(rows) == ["4", "7"]
    for unit in ("4", "7"):
        assert "chint_dtsu666" in rows[unit]
        assert "eastron_sdm630" not in " ".join(rows[unit])
    assert "8/8 unit ids, 2 found" in result.stderr  # the progress bar's last state


def test_probe_without_a_server_says_so_and_fails() -> None:
    result = agent(
        "probe", "--host", "127.0.0.1", "--port", str(free_port()), "--profile", "eastron_sdm630"
    )
    assert result.returncode == 1
    assert "no connection to 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_probe_options_are_checked() -> None:
    result = agent("probe", "--profile", "eastron_sdm630")
    assert result.returncode == 2
    assert "give either host" in result.stderr
