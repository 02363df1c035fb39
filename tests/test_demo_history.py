"""The demo's month of history: the simulators' own model at past times, in the CSV the
importer reads, so the live readings carry on from where it ends."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from agent.simulator.history import SimulatedMeter, history_csv
from agent.simulator.values import simulated_values
from collector.importer import Refusal, read
from collector.validate import Window
from greengauge.contract import Quantity

E, N = Quantity.ENERGY_ACTIVE_IMPORT, Quantity.COUNT
METERS = [SimulatedMeter("incomer", 91, (E,)), SimulatedMeter("line-1-counter", 3, (N,))]
START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def test_the_history_is_the_simulators_model_in_the_importers_csv() -> None:
    text = history_csv(METERS, START, START + 3600, 300)
    rows = list(
        read(
            io.StringIO(text, newline=""),
            "history.csv",
            None,
            Window(timedelta(days=3650), timedelta(seconds=60)),
            datetime(2026, 12, 1, tzinfo=UTC),
        )
    )
    assert not [r for r in rows if isinstance(r, Refusal)]
    assert len(rows) == 12  # 10:00 .. 10:55, every 5 minutes
    for k, row in enumerate(rows):
        assert not isinstance(row, Refusal)
        t = START + 300 * k
        got = {(meter, q): (at, v) for meter, at, q, v in row.values}
        assert got[("incomer", E)] == (
            datetime.fromtimestamp(t, UTC),
            simulated_values([E], 91, t)[E],
        )
        assert got[("line-1-counter", N)][1] == simulated_values([N], 3, t)[N]
    energy = [v for r in rows if not isinstance(r, Refusal) for m, _, q, v in r.values if q is E]
    assert energy == sorted(energy)  # a counter only rises
    # the live simulator, one step later, carries on above the history's last value
    assert simulated_values([E], 91, START + 3600)[E] > energy[-1]


def test_a_bad_span_is_refused() -> None:
    with pytest.raises(ValueError, match="need start < end and a positive step"):
        history_csv(METERS, START, START, 300)


def test_the_history_command_reads_the_demo_agents_meters(tmp_path: Path) -> None:
    out = tmp_path / "history.csv"
    config = Path(__file__).resolve().parent.parent / "configs/demo/agent.yaml"
    before = time.time()
    assert (
        agent_main(["history", "--config", str(config), "--days", "0.05", "--output", str(out)])
        == 0
    )
    header, *rows = out.read_text().splitlines()
    assert header.split(",")[:2] == ["time", "incomer/energy_active_import[kWh]"]
    assert "line-1-counter/count[1]" in header and "line-1-counter/energy" not in header
    last = datetime.fromisoformat(rows[-1].split(",")[0]).timestamp()
    assert before - 600 < last <= before  # up to the last whole 5 minutes before now, less
    assert len(rows) == 15  # 0.05 days = 72 minutes: a row every 5 minutes from its start
