"""The collector's HTTP API in-process: reads, accounting figures, the production write,
tokens (401 counted), the live stream, history from the embedded store, OpenAPI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from collector.accounting.engine import Accounting
from collector.accounting.live import LiveAccounting
from collector.api import figures
from collector.api.app import ApiContext, create_app
from collector.api.settings import ApiSettings
from collector.batch import Batch
from collector.deadletters import DeadLetters
from collector.guard import Guard
from collector.metrics import CollectorMetrics
from collector.plant import AccountingConfig
from collector.state.hub import Event, LiveHub
from collector.state.latest import LatestReadings
from collector.state.statuses import AgentStatuses, StatusRejected, agent_status
from collector.stores.history import Query, SqliteHistory, flux_query
from collector.stores.sqlite import SqliteStore
from greengauge.contract import (
    AgentState,
    AgentStatus,
    MeterHealth,
    MeterReading,
    MeterState,
    OutboxHealth,
    Quantity,
    ReadingBatch,
)

SITE = "s1"
READ = "read-token-0123456789"
WRITE = "write-token-0123456789"
E = Quantity.ENERGY_ACTIVE_IMPORT
P = Quantity.POWER_ACTIVE


def plant() -> AccountingConfig:
    line = {
        "product": "brackets",
        "output_unit": "pieces",
        "output": {"mes": True},
        "benchmark": {
            "custom": {
                "name": "test",
                "unit": "kgce/pieces",
                "benchmark": 0.02,
                "baseline": 0.03,
                "source": "test",
            }
        },
    }
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": SITE,
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "targets": {"base_energy_intensity": {"l1": 0.05}},
                    "meters": [
                        {"id": "incomer", "carrier": "electricity", "role": "boundary"},
                        {"id": "m1", "carrier": "electricity", "line": "l1"},
                        {"id": "m2", "carrier": "electricity", "line": "l2"},
                    ],
                    "lines": [{"id": "l1", **line}, {"id": "l2", **line}],
                }
            ],
        }
    )


@dataclass
class Rig:
    client: TestClient
    ctx: ApiContext
    accounting: Accounting
    latest: LatestReadings
    statuses: AgentStatuses
    store: SqliteStore
    dead_letters: DeadLetters
    now: datetime

    def feed(self, *batches: ReadingBatch) -> None:
        for batch in batches:
            self.latest.update(Batch.of(batch))
        self.accounting.process(list(batches))
        self.store.write([Batch.of(batch) for batch in batches])

    def get(self, path: str, token: str | None = READ, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.get(path, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()


def batch(seq: int, ts: datetime, **meters: tuple[float, float]) -> ReadingBatch:
    return ReadingBatch(
        site=SITE,
        agent="gw",
        seq=seq,
        readings=[
            MeterReading(meter=m, ts=ts, values={E: kwh, P: watts})
            for m, (kwh, watts) in meters.items()
        ],
    )


def make_rig(tmp_path: Path, settings: ApiSettings, at: datetime | None = None) -> Rig:
    """`at`: the API's clock stands still there (else it is the real clock)."""
    now = at or datetime.now(UTC).replace(microsecond=0)
    accounting = Accounting(plant(), tmp_path)
    dead_letters = DeadLetters(tmp_path / "dead.jsonl")
    latest, statuses = LatestReadings(), AgentStatuses()
    store = SqliteStore(tmp_path / "readings.sqlite")
    state = figures.State(latest, statuses, accounting)
    hub = LiveHub()

    async def refresh(site: str) -> None:
        hub.publish(Event("summary", site, figures.summary(state, site, datetime.now(UTC))))

    ctx = ApiContext(
        state,
        hub,
        SqliteHistory(tmp_path / "readings.sqlite"),
        LiveAccounting(accounting, Guard(dead_letters)),
        CollectorMetrics(),
        settings,
        refresh,
    )
    if at is not None:
        ctx.clock = lambda: at
    return Rig(
        TestClient(create_app(ctx), base_url=f"http://{settings.listen}"),
        ctx,
        accounting,
        latest,
        statuses,
        store,
        dead_letters,
        now,
    )


def tokens(read: str, write: str | None) -> ApiSettings:
    return ApiSettings.model_validate({"read_token": read, "write_token": write})


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(make_rig(tmp_path, tokens(READ, WRITE)))


NOON: Final = datetime(2026, 10, 15, 4, 0, tzinfo=UTC)
"""12:00 in the plant's zone (Asia/Shanghai): "today" holds the last hour whatever the real
time (on the real clock, a test run just after midnight there found less energy today)."""


@pytest.fixture
def noon_rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(make_rig(tmp_path, tokens(READ, WRITE), at=NOON))


def _rig(r: Rig) -> Iterator[Rig]:
    try:
        yield r
    finally:
        r.client.close()
        r.accounting.close()
        r.store.close()


def test_settings_require_tokens_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENGAUGE_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GREENGAUGE_API_WRITE_TOKEN", raising=False)
    assert ApiSettings().open and ApiSettings().loopback
    assert ApiSettings(listen="[::1]:8080").loopback
    with pytest.raises(ValidationError, match="not loopback: set read_token"):
        ApiSettings(listen="0.0.0.0:8080")
    with pytest.raises(ValidationError, match="must differ"):
        tokens(READ, READ)
    with pytest.raises(ValidationError, match="at least 16"):
        tokens("short", None)
    with pytest.raises(ValidationError, match="host:port"):
        ApiSettings(listen="8080")
    monkeypatch.setenv("GREENGAUGE_API_READ_TOKEN", READ)
    from_env = ApiSettings(listen="0.0.0.0:8080")
    assert from_env.read_token is not None and from_env.read_token.get_secret_value() == READ
    assert READ not in repr(from_env)


def test_tokens_401_counted_403_for_read_token_on_write(rig: Rig) -> None:
    c = rig.client
    assert c.get("/api/v1/fleet").status_code == 401
    assert c.get("/api/v1/fleet", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/v1/fleet", headers={"Authorization": f"Basic {READ}"}).status_code == 401
    answer = c.get("/api/v1/fleet")
    assert answer.headers["www-authenticate"] == "Bearer"
    assert c.get("/api/v1/fleet", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    assert c.get("/api/v1/fleet", headers={"Authorization": f"Bearer {WRITE}"}).status_code == 200
    denied = c.post(
        f"/api/v1/sites/{SITE}/production",
        headers={"Authorization": f"Bearer {READ}"},
        content=b"{}",
    )
    assert denied.status_code == 403
    # The dashboard's files hold no data: served without a token.
    assert c.get("/").status_code == 200
    text = c.get("/metrics", headers={"Authorization": f"Bearer {READ}"}).text
    assert 'greengauge_api_unauthorized_total{reason="missing"} 3.0' in text
    assert 'greengauge_api_unauthorized_total{reason="invalid"} 1.0' in text
    assert 'greengauge_api_unauthorized_total{reason="read_only"} 1.0' in text


def test_open_on_loopback_without_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENGAUGE_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GREENGAUGE_API_WRITE_TOKEN", raising=False)
    r = make_rig(tmp_path, ApiSettings())
    try:
        assert r.client.get("/api/v1/fleet").status_code == 200
        assert r.client.get("/openapi.json").status_code == 200
    finally:
        r.accounting.close()
        r.store.close()


@pytest.fixture
def open_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """No tokens, on loopback: the operator's own machine, and the browser on it."""
    monkeypatch.delenv("GREENGAUGE_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GREENGAUGE_API_WRITE_TOKEN", raising=False)
    r = make_rig(tmp_path, ApiSettings())
    try:
        yield r
    finally:
        r.client.close()
        r.accounting.close()
        r.store.close()


def mes_output(rig: Rig) -> bytes:
    end = rig.now.replace(second=0)
    return json.dumps(
        {
            "kind": "output",
            "site": SITE,
            "line": "l1",
            "start": (end - timedelta(minutes=5)).isoformat(),
            "end": end.isoformat(),
            "quantity": 5.0,
            "unit": "pieces",
        }
    ).encode()


def mes_outputs(rig: Rig) -> int:
    return int(rig.accounting.db.query("SELECT count(*) FROM mes_output")[0][0])


def refusals(rig: Rig, reason: str) -> float:
    value = rig.ctx.metrics.unauthorized.labels(reason)._value.get()
    return float(value)


def test_open_api_refuses_cross_site_writes(open_rig: Rig) -> None:
    """A web page elsewhere cannot write production figures through the operator's
    browser: a foreign Origin gets 403, a form-like content type 415; nothing recorded."""
    url = f"/api/v1/sites/{SITE}/production"
    body = mes_output(open_rig)
    json_type = {"Content-Type": "application/json"}
    foreign = [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "http://evil.example", **json_type},
        {"Origin": "http://127.0.0.1:9999", **json_type},  # another port: another origin
        {"Origin": "null", **json_type},  # sandboxed frame, file:
        {"Sec-Fetch-Site": "cross-site", **json_type},
    ]
    for headers in foreign:
        answer = open_rig.client.post(url, content=body, headers=headers)
        assert answer.status_code == 403, headers
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "", "text/json"):
        headers = {"Origin": "http://127.0.0.1:8080", "Content-Type": content_type}
        assert open_rig.client.post(url, content=body, headers=headers).status_code == 415
    assert mes_outputs(open_rig) == 0
    assert refusals(open_rig, "origin") == len(foreign)
    # The dashboard's own origin, and a non-browser client (no Origin), may write.
    same = {"Origin": "http://127.0.0.1:8080", "Content-Type": "application/json; charset=utf-8"}
    assert open_rig.client.post(url, content=body, headers=same).status_code == 202
    assert open_rig.client.post(url, content=body, headers=json_type).status_code == 202
    assert mes_outputs(open_rig) == 1


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.2:8080", "[", ""])
def test_open_api_refuses_other_host_names(open_rig: Rig, host: str) -> None:
    """DNS rebinding: a page on evil.example, resolved to 127.0.0.1, asks with its own
    Host: 400 for reads, writes and the schema alike, counted."""
    headers = {"Host": host}
    for path in ("/api/v1/fleet", "/openapi.json", "/", "/metrics"):
        answer = open_rig.client.get(path, headers=headers)
        assert answer.status_code == 400, path
        assert host not in answer.text or not host
    answer = open_rig.client.post(
        f"/api/v1/sites/{SITE}/production",
        content=mes_output(open_rig),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert mes_outputs(open_rig) == 0
    assert refusals(open_rig, "host") == 5
    for name in ("localhost:8080", "127.0.0.1", "[::1]:8080", "LOCALHOST"):
        assert open_rig.client.get("/api/v1/fleet", headers={"Host": name}).status_code == 200


def test_allowed_hosts_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENGAUGE_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GREENGAUGE_API_WRITE_TOKEN", raising=False)
    loopback = frozenset({"localhost", "127.0.0.1", "::1"})
    assert ApiSettings().hosts == loopback
    assert ApiSettings(listen="127.0.0.5:80").hosts == loopback | {"127.0.0.5"}
    assert ApiSettings(listen="[::1]:80").hosts == loopback
    chosen = ApiSettings(allowed_hosts=["Collector.Plant.example", "10.0.0.5", "[fd00::5]"])
    assert chosen.hosts == frozenset({"collector.plant.example", "10.0.0.5", "fd00::5"})
    # On every address the API needs tokens, and answers to any name by default.
    wide = ApiSettings.model_validate({"listen": "0.0.0.0:8080", "read_token": READ})
    assert wide.hosts is None
    with pytest.raises(ValidationError, match="DNS rebinding"):
        ApiSettings(allowed_hosts=["*"])
    for bad in ("http://collector", "collector:8080", "cafe:8080", "a/b", "", "a b", "[x]"):
        with pytest.raises(ValidationError, match="without scheme or port"):
            ApiSettings(allowed_hosts=[bad])
    r = make_rig(tmp_path, chosen)
    try:
        fleet = "/api/v1/fleet"
        assert (
            r.client.get(fleet, headers={"Host": "collector.plant.example:8080"}).status_code == 200
        )
        assert r.client.get(fleet, headers={"Host": "localhost"}).status_code == 400
    finally:
        r.client.close()
        r.accounting.close()
        r.store.close()


def test_with_tokens_a_write_needs_json_not_an_origin(rig: Rig) -> None:
    """A token is not sent by a browser on its own: a write with the write token is let in
    from any origin, but still only as JSON."""
    url = f"/api/v1/sites/{SITE}/production"
    auth = {"Authorization": f"Bearer {WRITE}", "Origin": "http://mes.example"}
    body = mes_output(rig)
    assert rig.client.post(url, content=body, headers=auth).status_code == 415
    answer = rig.client.post(
        url, content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 202


def test_sites_meters_health_latest(rig: Rig) -> None:
    t = rig.now - timedelta(seconds=2)
    rig.feed(batch(0, t, incomer=(100.0, 50_000.0), m1=(10.0, 20_000.0), m2=(20.0, 25_000.0)))
    rig.statuses.update(
        AgentStatus(
            site=SITE,
            agent="gw",
            state=AgentState.ONLINE,
            ts=rig.now,
            meters={
                "incomer": MeterHealth(state=MeterState.ONLINE, reads=5, errors={}),
                "m1": MeterHealth(
                    state=MeterState.ONLINE, reads=5, errors={"timeout": 2}, excluded=1
                ),
                "m2": MeterHealth(state=MeterState.OFFLINE, reads=1, errors={"timeout": 9}),
            },
            outbox=OutboxHealth(depth=7, dropped=1),
        )
    )
    [site] = rig.get("/api/v1/sites")
    assert site["site"] == SITE and site["meters"] == 3 and site["meters_offline"] == 1
    health = rig.get(f"/api/v1/sites/{SITE}/meters")
    by_id = {m["id"]: m for m in health["meters"]}
    assert by_id["m1"]["state"] == "online" and by_id["m1"]["errors"] == {"timeout": 2}
    assert by_id["m1"]["excluded"] == 1 and by_id["m2"]["excluded"] == 0
    assert by_id["m2"]["state"] == "offline" and by_id["m2"]["error_count"] == 9
    assert by_id["incomer"]["power_w"] == 50_000.0 and by_id["incomer"]["agent"] == "gw"
    assert health["agents"] == [
        {
            "id": "gw",
            "state": "online",
            "since": figures.iso(rig.now),
            "outbox_depth": 7,
            "outbox_oldest": None,
            "outbox_dropped": 1,
            "meters_offline": 1,
        }
    ]
    latest = rig.get(f"/api/v1/sites/{SITE}/latest")
    assert [x["meter"] for x in latest] == ["incomer", "m1", "m2"]
    assert latest[0]["values"] == {"energy_active_import": 100.0, "power_active": 50_000.0}
    # The agent's last will: every meter of it offline.
    rig.statuses.update(
        AgentStatus(site=SITE, agent="gw", state=AgentState.OFFLINE, ts=rig.now + timedelta(1))
    )
    states = {m["id"]: m["state"] for m in rig.get(f"/api/v1/sites/{SITE}/meters")["meters"]}
    assert states == {"incomer": "offline", "m1": "offline", "m2": "offline"}
    assert (
        rig.client.get(
            "/api/v1/sites/nowhere", headers={"Authorization": f"Bearer {READ}"}
        ).status_code
        == 404
    )


def test_a_line_on_a_silent_meter_is_stale_and_not_judged(rig: Rig) -> None:
    # m1, read every 5 s, last heard 30 s ago: stale after 3 intervals, floored at 10 s.
    last = rig.now - timedelta(seconds=30)
    for i in range(4):
        rig.feed(batch(i, last - timedelta(seconds=5 * (3 - i)), m1=(10.0 + i, 20_000.0)))
    for i in range(2):  # the incomer and m2 are current
        ts = rig.now - timedelta(seconds=1 - i)
        rig.feed(batch(10 + i, ts, incomer=(100.0 + i, 50_000.0), m2=(20.0 + i, 25_000.0)))
    summary = rig.get(f"/api/v1/sites/{SITE}")
    meters = {m["id"]: m for m in summary["meters"]}
    assert meters["m1"]["state"] == "stale"
    assert meters["m1"]["interval_s"] == 5.0 and meters["m1"]["stale_after_s"] == 15.0
    assert meters["incomer"]["state"] == meters["m2"]["state"] == "online"
    lines = {x["id"]: x for x in summary["accounting"]["lines"]}
    stale = lines["l1"]["freshness"]
    assert stale["state"] == "stale" and stale["fed_by"] == ["m1"]
    assert [m["id"] for m in stale["meters"]] == ["m1"] and stale["age_s"] >= 30
    assert lines["l2"]["freshness"]["state"] == "live"
    assert summary["accounting"]["freshness"]["state"] == "live"  # the site: its incomer
    assert set(lines["l1"]["quality"]) == {"rolling_1h", "today"}
    assert lines["l1"]["pending_alert"] is None  # no alert configured
    # The fleet never gives a class that rests on old data.
    [site] = rig.get("/api/v1/fleet")
    assert site["status"] == "no_current_data" and site["freshness"] == "live"
    latest = {x["meter"]: x for x in rig.get(f"/api/v1/sites/{SITE}/latest")}
    assert latest["m1"]["units"] == {"energy_active_import": "kWh", "power_active": "W"}


def test_status_messages_are_validated_against_their_topic() -> None:
    ok = AgentStatus(site="s1", agent="gw", state=AgentState.ONLINE, ts=datetime.now(UTC))
    payload = ok.model_dump_json().encode()
    assert agent_status("greengauge/v1/s1/gw/status", payload) == ok
    with pytest.raises(StatusRejected, match="topic of site 's2'"):
        agent_status("greengauge/v1/s2/gw/status", payload)
    with pytest.raises(StatusRejected, match="not a status topic"):
        agent_status("greengauge/v1/s1/gw/readings", payload)
    with pytest.raises(StatusRejected, match="invalid agent status"):
        agent_status("greengauge/v1/s1/gw/status", b"{}")


def _energy(rig: Rig, minutes: int = 10) -> None:
    """m1 uses 1 kWh a minute, m2 2 kWh, the incomer 4, over the last `minutes`."""
    start = rig.now - timedelta(minutes=minutes)
    batches = [
        batch(
            i,
            start + timedelta(minutes=i),
            incomer=(100.0 + 4 * i, 240_000.0),
            m1=(10.0 + i, 60_000.0),
            m2=(20.0 + 2 * i, 120_000.0),
        )
        for i in range(minutes + 1)
    ]
    rig.feed(*batches)


def post(rig: Rig, body: dict[str, Any], token: str = WRITE) -> Any:
    return rig.client.post(
        f"/api/v1/sites/{SITE}/production",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        content=json.dumps(body).encode(),
    )


def output(rig: Rig, line: str, quantity: float, minutes: int = 10) -> dict[str, Any]:
    return {
        "kind": "output",
        "site": SITE,
        "line": line,
        "start": figures.iso(rig.now - timedelta(minutes=minutes)),
        "end": figures.iso(rig.now),
        "quantity": quantity,
        "unit": "pieces",
    }


def test_accounting_figures_standing_and_production_write(noon_rig: Rig) -> None:
    rig = noon_rig
    _energy(rig)
    # 10 kWh x 0.1229 = 1.229 kgce on l1; 20 kWh on l2.
    assert post(rig, output(rig, "l1", 10.0)).status_code == 202  # 0.1229 kgce/piece
    assert post(rig, output(rig, "l2", 10_000.0)).status_code == 202  # leading
    acc = rig.get(f"/api/v1/sites/{SITE}/accounting")
    lines = {x["id"]: x for x in acc["lines"]}
    one_hour = lines["l1"]["windows"]["rolling_1h"]
    assert one_hour["kwh"] == pytest.approx(10.0)
    assert one_hour["kgce"] == pytest.approx(1.229)
    assert one_hour["output"] == pytest.approx(10.0)
    assert one_hour["value"] == pytest.approx(0.1229)
    assert one_hour["status"] == "above_baseline"
    assert lines["l2"]["windows"]["rolling_1h"]["status"] == "leading"
    assert lines["l1"]["benchmark"]["baseline"] == 0.03
    assert lines["l1"]["power_w"] == 60_000.0
    assert acc["power_w"] == 240_000.0
    assert acc["today"]["kwh"] == pytest.approx(40.0)
    assert acc["today"]["kgce"] == pytest.approx(40 * 0.1229)
    assert acc["today"]["kgco2"] > 0
    target = lines["l1"]["target"]
    assert target["base_intensity"] == 0.05 and target["reached"] is False
    # after the default target year 2025 there is no path to be on
    past = rig.now.year > 2025
    assert target["on_path"] is (None if past else False)
    assert (target["path_intensity"] is None) is past
    assert target["achieved"] == pytest.approx(1 - 0.1229 / 0.05)
    # The same period again replaces it: l1 now leading.
    assert post(rig, output(rig, "l1", 1_000_000.0)).status_code == 202
    lines = {x["id"]: x for x in rig.get(f"/api/v1/sites/{SITE}/lines")}
    assert lines["l1"]["windows"]["rolling_1h"]["status"] == "leading"
    assert lines["l1"]["windows"]["rolling_1h"]["output"] == pytest.approx(1_000_000.0)


def test_a_months_report_with_its_data_quality(rig: Rig) -> None:
    # 10 minutes on 15 October 2026: the incomer rises 4 kWh a minute, 40 kWh in all, every
    # minute measured: 10 of October's 44,640 minutes complete, nothing estimated.
    start = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)
    rig.feed(
        *[
            batch(i, start + timedelta(minutes=i), incomer=(100.0 + 4 * i, 240_000.0))
            for i in range(11)
        ]
    )
    got = rig.get(f"/api/v1/sites/{SITE}/report", month="2026-10")
    [incomer] = [m for m in got["meters"] if m["meter"] == "incomer"]
    assert incomer["amount"] == pytest.approx(40.0)
    quality = incomer["data_quality"]
    assert (quality["expected_minutes"], quality["measured_minutes"]) == (31 * 24 * 60, 10)
    assert quality["by_quality"]["measured"] == pytest.approx(40.0)
    assert quality["estimated_share"] == 0.0
    # 40 kWh x 0.1229 kgce/kWh = 4.916 kgce, the exact sum of the one carrier
    assert got["totals"]["kgce"] == pytest.approx(4.916)
    assert got["totals"]["kgce"] == sum(c["kgce"] for c in got["carriers"])
    headers = {"Authorization": f"Bearer {READ}"}
    path = f"/api/v1/sites/{SITE}/report"
    csv_answer = rig.client.get(path, params={"month": "2026-10", "format": "csv"}, headers=headers)
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert "site,s1,kgce,4.916,kgce,sum of the carriers," in csv_answer.text
    bad = rig.client.get(path, params={"month": "2026-13"}, headers=headers)
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["detail"]
    assert rig.client.get(path, params={"month": "2026-10"}).status_code == 401


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"unit": "t"}, "counts output in pieces, message in t"),
        ({"line": "l9"}, "has no line 'l9'"),
        ({"site": "s2"}, "topic site 's1'"),
        ({"quantity": -1}, "greater than or equal to 0"),
        ({"start": "2026-01-01T00:00:00"}, "timezone"),
        ({"extra": 1}, "Extra inputs are not permitted"),
        # Valid ISO 8601 that overflows in UTC: was an OverflowError, answered 500.
        ({"start": "0001-01-01T00:00:00+01:00"}, "is out of range in UTC"),
        ({"start": "1969-12-31T23:00:00Z"}, "start 1969-12-31T23:00:00+00:00 is more than"),
        ({"end": "2999-01-01T00:00:00Z"}, "ahead of the collector's clock"),
        ({"quantity": 1e300}, "less than or equal to 1000000000000"),
    ],
)
def test_production_write_is_validated(rig: Rig, change: dict[str, Any], reason: str) -> None:
    answer = post(rig, {**output(rig, "l1", 5.0), **change})
    assert answer.status_code == 422
    assert reason in answer.json()["detail"]


def test_production_write_with_a_key_twice_is_refused(rig: Rig) -> None:
    body = json.dumps(output(rig, "l1", 5.0)).replace('"quantity"', '"quantity": 9e9, "quantity"')
    answer = rig.client.post(
        f"/api/v1/sites/{SITE}/production",
        headers={"Authorization": f"Bearer {WRITE}", "Content-Type": "application/json"},
        content=body.encode(),
    )
    assert answer.status_code == 422
    assert "key 'quantity' appears more than once" in answer.json()["detail"]


def test_production_write_needs_the_write_token(rig: Rig) -> None:
    assert post(rig, output(rig, "l1", 5.0), token="bad-token-" + "bad-token").status_code == 401
    assert post(rig, output(rig, "l1", 5.0), token=READ).status_code == 403
    assert rig.client.post(f"/api/v1/sites/{SITE}/production", content=b"{}").status_code == 401


def test_history_from_the_embedded_store(rig: Rig) -> None:
    start = rig.now - timedelta(minutes=10)
    rig.feed(
        *[batch(i, start + timedelta(seconds=10 * i), m1=(float(i), 1000.0 * i)) for i in range(60)]
    )
    data = rig.get(
        f"/api/v1/sites/{SITE}/history",
        meter="m1",
        quantity="power_active",
        start=figures.iso(start),
        end=figures.iso(rig.now),
        step=60,
    )
    assert data["unit"] == "W" and data["step"] == 60
    points = data["points"]
    assert sum(p[4] for p in points) == 60
    assert all(p[2] <= p[1] <= p[3] for p in points)
    assert points[0][2] == 0.0 and points[-1][3] == 59_000.0
    too_many = rig.client.get(
        f"/api/v1/sites/{SITE}/history",
        params={"meter": "m1", "quantity": "power_active", "step": 0.1},
        headers={"Authorization": f"Bearer {READ}"},
    )
    assert too_many.status_code == 422 and "larger step" in too_many.text


def test_flux_history_query_names_what_the_collector_writes() -> None:
    q = Query(
        "s1", 'we"ird', P, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), 60
    )
    flux = flux_query("energy", q)
    assert 'from(bucket: "energy")' in flux
    assert "range(start: 2026-01-01T00:00:00Z, stop: 2026-01-02T00:00:00Z)" in flux
    assert 'r._measurement == "reading"' in flux
    assert 'r.meter == "we\\"ird"' in flux and 'r._field == "power_active"' in flux
    assert "aggregateWindow(every: 60000ms, fn: mean" in flux


def test_live_stream_sends_readings_and_summaries(rig: Rig) -> None:
    hub = rig.ctx.hub

    async def scenario() -> list[bytes]:
        chunks: list[bytes] = []
        stream = hub.stream(SITE, keepalive=0.05)
        chunks.append(await anext(stream))  # retry: line; subscribed now
        hub.readings(Batch.of(batch(1, rig.now, m1=(1.0, 2.0))))
        hub.readings(
            Batch.of(
                ReadingBatch(
                    site="other",
                    agent="gw",
                    seq=1,
                    readings=[MeterReading(meter="x", ts=rig.now, values={P: 1.0})],
                )
            )
        )
        await rig.ctx.refresh(SITE)
        chunks.append(await anext(stream))
        chunks.append(await anext(stream))
        chunks.append(await anext(stream))  # idle: a keepalive comment
        await stream.aclose()
        return chunks

    chunks = asyncio.run(scenario())
    assert chunks[0] == b"retry: 2000\n\n"
    kind, data = chunks[1].decode().split("\n")[:2]
    assert kind == "event: reading"
    reading = json.loads(data.removeprefix("data: "))
    assert reading["site"] == SITE and reading["readings"][0]["meter"] == "m1"
    assert chunks[2].startswith(b"event: summary\n")
    assert chunks[3] == b": keepalive\n\n"
    assert hub.subscribers == 0


def test_slow_subscriber_is_dropped_not_waited_for(rig: Rig) -> None:
    hub = rig.ctx.hub

    async def scenario() -> list[bytes]:
        stream = hub.stream(None)
        await anext(stream)
        for i in range(1100):
            hub.readings(Batch.of(batch(i, rig.now, m1=(1.0, 2.0))))
        return [chunk async for chunk in stream]

    chunks = asyncio.run(scenario())
    assert len(chunks) == 999 and hub.dropped == 1 and hub.subscribers == 0


def test_openapi_schema(rig: Rig) -> None:
    assert rig.client.get("/openapi.json").status_code == 401  # the read token is needed
    for path in ("/docs", "/redoc"):
        assert rig.client.get(path, headers={"Authorization": f"Bearer {READ}"}).status_code == 404
    schema = rig.get("/openapi.json")
    paths = schema["paths"]
    for path in (
        "/api/v1/sites",
        "/api/v1/fleet",
        "/api/v1/sites/{site}",
        "/api/v1/sites/{site}/meters",
        "/api/v1/sites/{site}/latest",
        "/api/v1/sites/{site}/accounting",
        "/api/v1/sites/{site}/report",
        "/api/v1/sites/{site}/history",
        "/api/v1/alerts",
        "/api/v1/stream",
        "/api/v1/sites/{site}/production",
    ):
        assert path in paths, path
    body = paths["/api/v1/sites/{site}/production"]["post"]["requestBody"]
    assert "anyOf" in body["content"]["application/json"]["schema"]
