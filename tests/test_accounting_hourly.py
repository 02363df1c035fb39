"""An hourly grid factor series overrides the static factor for the hours it covers.

The month of tests/test_report_sections.py: 20 kWh at the incomer between 02:00 and
02:10 UTC. With a series giving 0.3 kgCO2/kWh for the 02:00 hour, the incomer's CO2 is
20 x 0.3 = 6.0 kg instead of 20 x 0.5306 (the static national 2023 factor).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_report_sections import config as month_config
from test_report_sections import month_batches

from collector.accounting.engine import Accounting
from collector.config import load_config
from collector.reports.build import build
from greengauge.common.configfile import ConfigError


def write_config(tmp_path: Path, series: str) -> Path:
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "hourly.csv").write_text(series)
    accounting = month_config().model_dump(mode="json", exclude_defaults=True)
    accounting["sites"][0]["hourly_grid_factor"] = {
        "file": "grid/hourly.csv",
        "source": "test grid operator",
    }
    path = tmp_path / "collector.yaml"
    path.write_text(
        yaml.safe_dump(
            {"mqtt": {"url": "mqtt://127.0.0.1"}, "data_dir": "data", "accounting": accounting}
        )
    )
    return path


def test_the_hourly_series_overrides_the_static_factor(tmp_path: Path) -> None:
    series = "hour,kgco2_per_kwh\n2026-11-24T02:00:00Z,0.3\n2026-11-24T03:00:00+00:00,0.9\n"
    config = load_config(write_config(tmp_path, series))
    assert config.accounting is not None
    acc = Accounting(config.accounting, tmp_path / "acc")
    acc.process(month_batches())
    report = build(acc.config, acc.db, "s1", "2026-11")
    meters = {m["meter"]: m for m in report["meters"]}
    assert meters["incomer"]["kgco2"] == pytest.approx(6.0, rel=1e-6)
    assert meters["l1"]["kgco2"] == pytest.approx(3.0, rel=1e-6)
    assert "test grid operator" in report["co2"]["hourly_grid_factor"]


def test_hours_the_series_does_not_cover_keep_the_static_factor(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "2026-11-24T05:00:00Z,0.3\n"))
    assert config.accounting is not None
    acc = Accounting(config.accounting, tmp_path / "acc")
    acc.process(month_batches())
    meters = {m["meter"]: m for m in build(acc.config, acc.db, "s1", "2026-11")["meters"]}
    assert meters["incomer"]["kgco2"] == pytest.approx(20 * 0.5306, rel=1e-6)


@pytest.mark.parametrize(
    ("series", "problem"),
    [
        ("2026-11-24T02:00:00Z,0.3\n2026-11-24T02:30:00Z,0.3\n", "hourly.csv:2: the hour start"),
        ("2026-11-24T02:00:00,0.3\n", "hourly.csv:1"),
        ("2026-11-24T02:00:00Z,0.3\nnot a line\n", "hourly.csv:2: expected 'hour start"),
        ("# nothing\n", "no hourly factors"),
    ],
)
def test_a_bad_series_is_a_config_error_naming_file_and_line(
    tmp_path: Path, series: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, series))
    assert problem in str(caught.value)
    assert "collector.yaml:" in str(caught.value)
