"""`energy-agent probe` and `scan` against the simulator, as an integrator commissions a bus."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from processes import (
    BIN,
    SIMULATOR_START,
    port_open,
    read_json,
    running,
    simulated_meters,
    wait_for,
)
from servers import free_port

from agent.modbus.codec.plan import plan_reads
from agent.probe import plausible
from agent.profiles import load_profile
from agent.scan import Candidate, Confidence, rank
from greengauge.contract import Quantity


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    with simulated_meters(tmp_path, "chint_dtsu666", "4,7") as started:
        yield started


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "energy-agent"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def table_rows(output: str) -> dict[str, list[str]]:
    """The first table's rows by their first cell (it ends at the first empty line)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return {line.split()[0]: line.split() for line in lines[start:end]}


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
    values, orders = result.stdout.split("\n\n")[1:3]
    rows = table_rows(values)
    profile = load_profile("chint_dtsu666")
    assert set(rows) == {str(r.quantity) for r in profile.read_registers}
    by_order = table_rows(orders)
    for quantity, row in rows.items():
        value = served[quantity]
        assert float(row[1]) == pytest.approx(value, rel=1e-6), quantity
        # columns: quantity value unit table register type order raw raw
        assert row[2] in {"V", "A", "W", "var", "1", "Hz", "kWh"}
        assert row[3] == "holding"  # the table's whole name, not "hold"
        # The orders table: quantity ABCD CDAB BADC DCBA, `*` on the plausible ones.
        assert by_order[quantity][1].endswith("*"), quantity
        assert float(by_order[quantity][1].rstrip("*")) == pytest.approx(value, rel=1e-5)
    verdict = result.stdout.splitlines()[-1]
    assert "plausible order: ABCD (" in verdict and "the profile reads ABCD" in verdict
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[int]:
    """SDM630s: unit 1 answers, 2 never does, 3 refuses every register."""
    port = free_port()
    args = ["simulate", "--profile", "eastron_sdm630", "--port", str(port), "--unit-ids", "1-3"]
    args += ["--hold", "--fault", "2:timeout", "--fault", "3:exception=0-65535"]
    with running("energy-agent", args, tmp_path / "sim.log"):
        wait_for(lambda: port_open(port), SIMULATOR_START, "the simulator")
        yield port


def _probe(port: int, unit: int, *more: str) -> subprocess.CompletedProcess[str]:
    where = ["--host", "127.0.0.1", "--port", str(port), "--timeout", "0.2"]
    return agent("probe", *where, "--unit-id", str(unit), "--profile", "eastron_sdm630", *more)


def test_probe_fails_when_nothing_answers_in_one_line(faulty: int) -> None:
    result = _probe(faulty, 2)
    requests = len(plan_reads(load_profile("eastron_sdm630")))
    assert result.returncode == 1
    assert result.stdout == ""  # no table of identical timeout rows
    assert result.stderr.strip().splitlines() == [
        f"energy-agent: probe: unit 2 on 127.0.0.1:{faulty} gave no register "
        f"({requests} requests: {requests} timeout)"
    ]


def test_probe_fails_when_every_register_is_refused(faulty: int) -> None:
    result = _probe(faulty, 3, "--all-orders")
    assert result.returncode == 1
    rows = table_rows(result.stdout)
    assert all("exception code 2" in " ".join(row) for row in rows.values())
    assert "no multi-register value read" in result.stdout
    assert f"unit 3 on 127.0.0.1:{faulty} refused all" in result.stderr


def test_probe_of_an_answering_unit_succeeds(faulty: int) -> None:
    result = _probe(faulty, 1)
    assert result.returncode == 0, result.stderr
    assert {row[3] for row in table_rows(result.stdout).values()} == {"input"}


def scan_matches(output: str) -> dict[str, list[tuple[str, str]]]:
    """unit id -> [(profile, match)], best first (a unit's further rows have no unit id)."""
    lines = output.splitlines()
    header = lines[0]
    at = {name: header.index(name) for name in ("profile", "match", "evidence")}
    found: dict[str, list[tuple[str, str]]] = {}
    unit = ""
    for line in lines[2:]:
        if not line.strip():
            break
        unit = line[: at["profile"]].split()[0] if line[: at["profile"]].strip() else unit
        profile = line[at["profile"] : at["match"]].strip()
        found.setdefault(unit, []).append((profile, line[at["match"] : at["evidence"]].strip()))
    return found


def test_scan_finds_the_answering_unit_ids_and_their_profile(
    simulator: tuple[int, Path],
) -> None:
    port, _ = simulator
    result = agent("scan", "--host", "127.0.0.1", "--port", str(port), "--unit-ids", "1-8")
    assert result.returncode == 0, result.stderr
    found = scan_matches(result.stdout)
    assert sorted(found) == ["4", "7"]
    for unit in ("4", "7"):
        # Not the four generic templates, which any device serving register 0 would fit.
        assert found[unit] == [("chint_dtsu666", "likely")]
    assert "8/8 unit ids, 2 found" in result.stderr  # the progress bar's last state


def _scan_one(tmp_path: Path, profile: str, *faults: str) -> list[tuple[str, str]]:
    port = free_port()
    args = ["simulate", "--profile", profile, "--port", str(port), "--unit-ids", "1", "--hold"]
    for fault in faults:
        args += ["--fault", fault]
    with running("energy-agent", args, tmp_path / f"sim-{profile}.log"):
        wait_for(lambda: port_open(port), SIMULATOR_START, f"the {profile} simulator")
        result = agent("scan", "--host", "127.0.0.1", "--port", str(port), "--unit-ids", "1")
    assert result.returncode == 0, result.stderr
    return scan_matches(result.stdout)["1"]


def test_scan_ranks_an_sdm630_above_the_sdm120_subset_and_not_as_an_em340(tmp_path: Path) -> None:
    """The SDM120's map is a subset of the SDM630's; the EM340's reads give values no
    meter shows (floats as CDAB integers)."""
    assert _scan_one(tmp_path, "eastron_sdm630") == [
        ("eastron_sdm630", "likely"),
        ("eastron_sdm120", "possible"),
    ]


def test_scan_tells_an_iem3255_from_a_pm5xxx_by_its_model_register(tmp_path: Path) -> None:
    assert _scan_one(tmp_path, "schneider_iem3255") == [("schneider_iem3255", "likely")]
    pm5xxx = _scan_one(tmp_path, "schneider_pm5xxx")
    assert pm5xxx[0] == ("schneider_pm5xxx", "identified")


def test_scan_matches_an_iem3255_lacking_some_registers_as_partial(tmp_path: Path) -> None:
    """An iEM3x55 that refuses the reactive energies (3220..3227, 1-based) still fits."""
    found = _scan_one(tmp_path, "schneider_iem3255", "1:exception=3219-3226")
    assert found == [("schneider_iem3255", "partial")]


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


@given(
    st.lists(
        st.builds(
            Candidate,
            profile=st.sampled_from(["a", "b", "c", "d"]),
            confidence=st.sampled_from(list(Confidence)),
            plausible=st.integers(1, 40),
            total=st.just(40),
            evidence=st.just("x"),
        ),
        max_size=6,
    )
)
def test_ranking_puts_the_strongest_evidence_first(candidates: list[Candidate]) -> None:
    ranked = rank(candidates)
    assert sorted(c.profile for c in ranked) == sorted(c.profile for c in candidates)
    assert [c.confidence for c in ranked] == sorted((c.confidence for c in ranked), reverse=True)
    likely = [c for c in ranked if c.confidence is Confidence.LIKELY]
    # At most one kind of "likely": none beside an identified one, all with the most values.
    if any(c.confidence is Confidence.IDENTIFIED for c in candidates):
        assert not likely
    assert len({c.plausible for c in likely}) <= 1


@pytest.mark.parametrize(
    ("quantity", "value", "expected"),
    [
        (Quantity.VOLTAGE_L1, 230.1, True),
        (Quantity.VOLTAGE_L1, 0.0, True),
        (Quantity.VOLTAGE_L1, 2.30412e23, False),  # 230 V read as BADC
        (Quantity.VOLTAGE_L1, 2.9e-13, False),  # and as DCBA: a denormal next to zero
        (Quantity.POWER_FACTOR_L2, -0.93, True),
        (Quantity.POWER_FACTOR_L2, 1.5, False),
        (Quantity.POWER_ACTIVE, -5.6e6, True),  # 5.6 MW exported
        (Quantity.ENERGY_ACTIVE_IMPORT, 8.4e7, True),
        (Quantity.FREQUENCY, float("nan"), False),
        (Quantity.COUNT, 1e14, True),
    ],
)
def test_plausible_values(quantity: Quantity, value: float, expected: bool) -> None:
    assert plausible(quantity, value) is expected
