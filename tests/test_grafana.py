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

from collector.accounting.core.intensity import Window
from collector.accounting.engine import Accounting
from collector.accounting.targets import SITE_LINE
from collector.batch import Batch
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


Row = dict[str, Any]
"""One value as Flux sees it: _measurement, _field, _value, _time and the tags."""


def rows_of(lines: bytes) -> list[Row]:
    """Line protocol (the collector's, no escaped characters in these tests) as rows."""
    rows = []
    for line in lines.decode().splitlines():
        head, fields, ts = line.split(" ")
        measurement, *tags = head.split(",")
        base: Row = {"_measurement": measurement, "_time": int(ts)}
        for tag in tags:
            key, tag_value = tag.split("=", 1)
            base[key] = tag_value
        for field in fields.split(","):
            name, value = field.split("=", 1)
            rows.append({**base, "_field": name, "_value": float(value)})
    return rows


SITE = "s1"
# The dashboards' variables, as a user picks them for the written plant.
VARIABLES = {"site": SITE, "meter": "incomer", "line": "kiln", "window": "today"}
METERS = {  # meter -> (role tag, line tag) the plant model gives it
    "incomer": ("boundary", SITE_LINE),
    "l1": ("submeter", "kiln"),
    "compressor": ("submeter", SITE_LINE),
    "rest": ("virtual", SITE_LINE),
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """What the collector writes for a site with a boundary meter, a line's sub-meter, a
    sub-meter of no line and a virtual meter (the rest), 10 minutes of readings: reading
    batches through its encoder, the accounting's derived points through the same one."""
    t0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    every = ReadingBatch(
        site=SITE,
        agent="gw",
        seq=0,
        readings=[MeterReading(meter="incomer", ts=t0, values={q: 1.0 for q in Quantity})],
    )
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
                    "id": SITE,
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [
                        {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                        {"id": "l1", "carrier": "electricity", "line": "kiln"},
                        {"id": "compressor", "carrier": "electricity"},
                        {
                            "id": "rest",
                            "carrier": "electricity",
                            "plus": ["incomer"],
                            "minus": ["l1", "compressor"],
                        },
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
            site=SITE,
            agent="gw",
            seq=i,
            readings=[
                MeterReading(meter=m, ts=t0 + timedelta(minutes=i), values={q: 100.0 + i * step})
                for m, q, step in (
                    ("incomer", Quantity.ENERGY_ACTIVE_IMPORT, 4.0),
                    ("l1", Quantity.ENERGY_ACTIVE_IMPORT, 1.0),
                    ("compressor", Quantity.ENERGY_ACTIVE_IMPORT, 2.0),
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
    lines = batch_lines([Batch.of(b) for b in (every, *batches)])
    return rows_of(lines) + rows_of(point_lines(store.points))


@pytest.fixture(scope="module")
def written(rows: list[Row]) -> Schema:
    schema: Schema = {}
    for row in rows:
        entry = schema.setdefault(row["_measurement"], {"tags": set(), "fields": set()})
        entry["tags"].update(k for k in row if not k.startswith("_"))
        entry["fields"].add(row["_field"])
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
    # A read-only token from a file (compose's influxdb-read-token service writes it).
    assert re.fullmatch(r"\$__file\{/[^}]+\}", source["secureJsonData"]["token"])
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
    # The read-only token: the one-shot service writes it into a volume Grafana mounts
    # (read-only) where the datasource reads it, and Grafana starts only after it.
    [token_file] = re.findall(r"\$__file\{([^}]+)\}", json.dumps(source))
    maker = compose["services"]["influxdb-read-token"]
    assert maker["environment"]["TOKEN_FILE"] == token_file
    volume = {v.split(":")[1]: v.split(":")[0] for v in maker["volumes"]}[
        str(Path(token_file).parent)
    ]
    assert f"{volume}:{Path(token_file).parent}:ro" in grafana["volumes"]
    assert grafana["depends_on"]["influxdb-read-token"] == {
        "condition": "service_completed_successfully"
    }
    assert "INFLUXDB_TOKEN" not in json.dumps(grafana)  # the operator token stays out


# --- the queries' logic run on what the collector wrote ----------------------------------

_FILTER = re.compile(r"\|>\s*filter\(fn:\s*\(r\)\s*=>\s*(.*)\)\s*$")
_FLUX_NAME = re.compile(r"\br\.([A-Za-z_][A-Za-z0-9_]*)")
_FLUX_WORDS = re.compile(r"[A-Za-z_]+")


def predicate(flux: str) -> Any:
    """A Flux filter predicate as a Python function of a row. Only what the dashboards
    use: ==, != on string literals, `and`, `or`, parentheses; anything else fails here."""
    expression = re.sub(r"\$\{(\w+)\}", lambda m: VARIABLES[m.group(1)], flux)
    python = _FLUX_NAME.sub(lambda m: f"r.get({m.group(1)!r})", expression)
    words = set(_FLUX_WORDS.findall(re.sub(r'"[^"]*"|\'[^\']*\'', "", python)))
    assert words <= {"r", "get", "and", "or"}, f"Flux this test cannot run: {flux}"
    code = compile(python, "<flux>", "eval")
    return lambda row: eval(code, {"__builtins__": {}}, {"r": row})  # noqa: S307 - checked


def run(query: str, rows: list[Row]) -> dict[tuple[str, ...], list[Row]]:
    """The query's filters and its last group() over the rows: the tables it gives, by
    group key (Flux's default group key, the series, when it has no group())."""
    kept = rows
    for line in query.splitlines():
        match = _FILTER.search(line)
        if match:
            test = predicate(match.group(1))
            kept = [row for row in kept if test(row)]
    groups = _GROUP.findall(query)
    tables: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in kept:
        if groups:
            columns = re.findall(r'"([^"]+)"', groups[-1])
        else:
            columns = sorted(
                k for k in row if not k.startswith("_") or k in ("_field", "_measurement")
            )
        tables[tuple(str(row.get(c)) for c in columns)].append(row)
    return dict(tables)


def panel_query(dashboard: str, title: str) -> str:
    [(query,)] = [
        (q,) for name, d in dashboards() for t, q in queries(d) if name == dashboard and t == title
    ]
    return query


def total(table: list[Row]) -> float:
    return sum(float(row["_value"]) for row in table)


def test_every_query_finds_what_the_collector_wrote(rows: list[Row]) -> None:
    """Each panel's filters, run on the collector's own points, keep some: no name, tag
    value or variable in a query that the collector never writes."""
    empty = []
    for name, dashboard in dashboards():
        for title, query in queries(dashboard):
            if "tagValues" in query:
                continue  # a variable's values: checked by name above
            if not run(query, rows):
                empty.append(f"{name}: {title}")
    assert empty == []


def energy(rows: list[Row], field: str, keep: Any) -> float:
    return sum(
        float(r["_value"])
        for r in rows
        if r["_measurement"] == "energy_interval" and r["_field"] == field and keep(r)
    )


def test_the_role_and_line_tags_are_the_plant_models(rows: list[Row]) -> None:
    tags = {
        (r["meter"], r["role"], r["line"]) for r in rows if r["_measurement"] == "energy_interval"
    }
    assert tags == {(meter, role, line) for meter, (role, line) in METERS.items()}


def test_the_site_total_counts_each_kwh_once(rows: list[Row]) -> None:
    """kgce and CO2 per hour: the boundary meters' sum, which is what the accounting's own
    site figure says; every meter's would count the sub-meters and the rest again."""
    tables = run(panel_query("plant-overview.json", "kgce and CO₂ per hour"), rows)
    assert set(tables) == {("kgce",), ("kgco2",)}
    for field in ("kgce", "kgco2"):
        boundary = energy(rows, field, lambda r: METERS[r["meter"]][0] == "boundary")
        everything = energy(rows, field, lambda r: True)
        assert boundary > 0
        assert everything == pytest.approx(2 * boundary)  # the trap the panel fell into
        assert total(tables[(field,)]) == pytest.approx(boundary, rel=1e-12)
    today = run(panel_query("plant-overview.json", "kgce today"), rows)
    [site_figure] = [row["_value"] for table in today.values() for row in table]
    assert total(tables[("kgce",)]) == pytest.approx(site_figure, rel=1e-9)


def test_each_line_counts_its_own_meters_only(rows: list[Row]) -> None:
    tables = run(
        panel_query("plant-overview.json", "Electricity per line (kWh per interval)"), rows
    )
    assert set(tables) == {("kiln",)}  # no line made of the site's meters
    kiln = energy(rows, "amount", lambda r: METERS[r["meter"]][1] == "kiln")
    assert kiln == pytest.approx(9.0)  # l1's counter advanced 1 kWh a minute
    assert total(tables[("kiln",)]) == pytest.approx(kiln, rel=1e-12)
