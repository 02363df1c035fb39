"""deploy/grafana: the dashboards parse, use the provisioned datasource, and every
measurement, field and tag their Flux queries name is one the collector writes.

What the collector writes is taken from the collector itself: reading batches through
its line-protocol encoder, and the accounting's derived points (energy_interval,
output_interval, intensity) from a real Accounting run, through the same encoder.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.accounting.engine import SITE_LINE, Accounting
from collector.ledger.intensity import Window
from collector.plant import AccountingConfig, Carrier
from collector.stores.lineprotocol import Point, batch_lines, point_lines
from greengauge.contract import MeterReading, Quantity, ReadingBatch

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
Schema = dict[str, dict[str, set[str]]]
"""measurement -> {"tags": ..., "fields": ...}"""


class Capture:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def write_points(self, points: Sequence[Point]) -> int:
        self.points.extend(points)
        return len(points)

    def close(self) -> None:
        pass


def _parse(lines: bytes, schema: Schema) -> None:
    for line in lines.decode().splitlines():
        head, fields, _ts = line.split(" ")
        measurement, *tags = head.split(",")
        entry = schema.setdefault(measurement, {"tags": set(), "fields": set()})
        entry["tags"].update(t.split("=", 1)[0] for t in tags)
        entry["fields"].update(f.split("=", 1)[0] for f in fields.split(","))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    schema: Schema = {}
    t0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    every = ReadingBatch(
        site="s1",
        agent="gw",
        seq=0,
        readings=[MeterReading(meter="m", ts=t0, values={q: 1.0 for q in Quantity})],
    )
    _parse(batch_lines([every]), schema)

    line = {
        "id": "kiln",
        "product": "widgets",
        "output_unit": "pieces",
        "output": {"meter": "counter", "quantity": "count"},
        "benchmark": {
            "custom": {
                "name": "t",
                "unit": "kgce/pieces",
                "benchmark": 0.1,
                "baseline": 0.2,
                "source": "test",
            }
        },
    }
    config = AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "s1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [
                        {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                        {"id": "l1", "carrier": "electricity", "line": "kiln"},
                    ],
                    "lines": [line],
                }
            ],
        }
    )
    store = Capture()
    now = t0 + timedelta(minutes=30)
    accounting = Accounting(config, tmp_path_factory.mktemp("acc"), store, clock=lambda: now)
    batches = [
        ReadingBatch(
            site="s1",
            agent="gw",
            seq=i,
            readings=[
                MeterReading(meter=m, ts=t0 + timedelta(minutes=i), values={q: 100.0 + i * step})
                for m, q, step in (
                    ("incomer", Quantity.ENERGY_ACTIVE_IMPORT, 2.0),
                    ("l1", Quantity.ENERGY_ACTIVE_IMPORT, 1.0),
                    ("counter", Quantity.COUNT, 10.0),
                )
            ],
        )
        for i in range(10)
    ]
    accounting.process(batches)
    accounting.flush()
    accounting.evaluate()
    accounting.close()
    _parse(point_lines(store.points), schema)
    assert set(schema) == {"reading", "energy_interval", "output_interval", "intensity"}
    return schema


def dashboards() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in DASHBOARDS:
        yield path.name, json.loads(path.read_text())


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            yield panel["title"], t["query"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]


_MEASUREMENT = re.compile(r'r\._measurement\s*==\s*"([^"]+)"')
_FIELD = re.compile(r'r\._field\s*==\s*"([^"]+)"')
_TAG = re.compile(r"\br\.([a-z][a-z0-9_]*)\s*(==|!=)\s*\"([^\"]*)\"")
_GROUP = re.compile(r"group\(columns:\s*\[([^\]]*)\]\)")
_TAG_VALUES = re.compile(r'tagValues\([^)]*tag:\s*"([^"]+)"')
_LITERALS = {
    "window": {w.value for w in Window},
    "carrier": {c.value for c in Carrier},
    "line": {SITE_LINE},
}


def test_there_are_the_three_dashboards() -> None:
    names = {name for name, _ in dashboards()}
    assert names == {"plant-overview.json", "meter-detail.json", "intensity.json"}
    uids = [d["uid"] for _, d in dashboards()]
    assert len(set(uids)) == len(uids)


def test_every_panel_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    )
    [source] = provisioned["datasources"]
    assert source["type"] == "influxdb" and source["jsonData"]["version"] == "Flux"
    from_environment = "${INFLUXDB_TOKEN}"
    assert source["secureJsonData"]["token"] == from_environment
    for name, dashboard in dashboards():
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], (name, panel["title"])
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == source["uid"], (name, panel["title"])
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "greengauge.yaml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"


def test_variables_used_are_defined() -> None:
    for name, dashboard in dashboards():
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        text = json.dumps(dashboard["panels"]) + json.dumps(dashboard["templating"])
        used = set(re.findall(r"\$\{(\w+)\}", text))
        assert used <= defined, (name, used - defined)


def test_queries_name_what_the_collector_writes(written: Schema) -> None:
    checked = 0
    for name, dashboard in dashboards():
        for title, query in queries(dashboard):
            where = f"{name}: {title}"
            measurements = set(_MEASUREMENT.findall(query))
            assert measurements, f"{where}: names no measurement"
            assert measurements <= set(written), f"{where}: {measurements - set(written)}"
            tags = set.intersection(*(written[m]["tags"] for m in measurements))
            fields_ = set.union(*(written[m]["fields"] for m in measurements))
            for field in _FIELD.findall(query):
                assert field in fields_, f"{where}: no field {field!r} in {measurements}"
                checked += 1
            for tag, _op, literal in _TAG.findall(query):
                assert tag in tags, f"{where}: no tag {tag!r} in {measurements}"
                if tag in _LITERALS and "$" not in literal:
                    assert literal in _LITERALS[tag], f"{where}: {tag} {literal!r} never written"
                checked += 1
            for group in _GROUP.findall(query):
                for column in re.findall(r'"([^"]+)"', group):
                    assert column in tags | {"_field", "_measurement"}, f"{where}: {column!r}"
            for tag in _TAG_VALUES.findall(query):
                assert tag in tags, f"{where}: tagValues of {tag!r}"
    assert checked > 50


def test_every_quantity_and_accounting_field_is_documented(written: Schema) -> None:
    readme = (GRAFANA / "README.md").read_text()
    for measurement, entry in written.items():
        assert f"`{measurement}`" in readme
        if measurement != "reading":
            for name in entry["fields"] | entry["tags"]:
                assert f"`{name}`" in readme, (measurement, name)
    by_kind: dict[str, int] = defaultdict(int)
    for _, d in dashboards():
        for _, q in queries(d):
            for m in _MEASUREMENT.findall(q):
                by_kind[m] += 1
    assert set(by_kind) == set(written)  # every measurement shown somewhere


def test_provisioning_fits_the_compose_stack() -> None:
    """deploy/compose.yaml mounts deploy/grafana and sets the datasource's variables."""
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    mounted = mounts["./grafana"]
    assert grafana["environment"]["GF_PATHS_PROVISIONING"] == f"{mounted}/provisioning"
    provider_file = GRAFANA / "provisioning" / "dashboards" / "greengauge.yaml"
    [provider] = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["options"]["path"] == f"{mounted}/dashboards"
    source_file = GRAFANA / "provisioning" / "datasources" / "influxdb.yaml"
    source = yaml.safe_load(source_file.read_text())
    for name in set(re.findall(r"\$\{(\w+)\}", json.dumps(source))):
        assert name in grafana["environment"], name
