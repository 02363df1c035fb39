"""Who may do what (issue 16): named users with roles on every write route, the legacy
tokens, the audit log read back from its file, the single sign-on proxy honoured only
from its address, refusals counted."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from test_api import NOON, READ, SITE, WRITE, E, Rig, make_rig, output

from collector.accounting.db import ms
from collector.api.audit import AuditLog
from collector.api.principals import Principal, Role, Tokens, Via, role_of_groups, user_name
from collector.api.settings import ApiSettings
from collector.check import check_report
from greengauge.common import i18n
from greengauge.contract import MeterReading, ReadingBatch

TOKENS = {
    "vera": "viewer-token-0123456789",
    "otto": "operator-token-0123456789",
    "ada": "admin-token-0123456789",
}
PROXY = "10.0.0.5"
M = timedelta(minutes=1)


def settings(**more: Any) -> ApiSettings:
    return ApiSettings.model_validate(
        {
            "read_token": READ,
            "write_token": WRITE,
            "users": [
                {"name": "vera", "role": "viewer", "token": TOKENS["vera"]},
                {"name": "otto", "role": "operator", "token": TOKENS["otto"]},
                {"name": "ada", "role": "admin", "token": TOKENS["ada"]},
            ],
            "trusted_proxy": {
                "from": [f"{PROXY}/32"],
                "roles": {"plant-admins": "admin", "shift-leads": "operator"},
            },
            **more,
        }
    )


@dataclass
class Roles:
    rig: Rig
    audit: AuditLog
    path: Path

    def client(self, address: str) -> TestClient:
        return TestClient(
            self.rig.client.app, base_url="http://127.0.0.1:8080", client=(address, 4000)
        )


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[Roles]:
    rig = make_rig(tmp_path, settings(), at=NOON)
    path = tmp_path / "audit.sqlite"
    rig.ctx.audit = AuditLog(path, keep_days=30)
    try:
        yield Roles(rig, rig.ctx.audit, path)
    finally:
        rig.ctx.audit.close()
        rig.client.close()
        rig.accounting.close()
        rig.store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def add_alert(rig: Rig) -> int:
    """A raised intensity alert on line l1, as the alarm engine records it."""
    with rig.accounting.db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO alert (site, line, kind, ts, since, value, threshold, window, unit, "
            "benchmark, published) VALUES (?, 'l1', 'raised', ?, ?, 0.05, 0.03, 'rolling_1h', "
            "'kgce/pieces', 'test', 0)",
            (SITE, ms(rig.now), ms(rig.now - 15 * M)),
        )
        return int(cursor.lastrowid or 0)


def counter_readings(rig: Rig) -> None:
    """The incomer's counter over the last minutes, so that a swap in between fits."""
    rig.feed(
        *[
            ReadingBatch(
                site=SITE,
                agent="gw",
                seq=i,
                readings=[MeterReading(meter="incomer", ts=rig.now - (5 - i) * M, values={E: v})],
            )
            for i, v in enumerate([1000.0, 1001.0, 1002.0, 1.0, 2.0])
        ]
    )


def write(rig: Rig, route: str) -> tuple[str, dict[str, Any], int]:
    """A valid write of each kind: (url, body, the status it is answered with)."""
    if route == "production":
        return f"/api/v1/sites/{SITE}/production", output(rig, "l1", 100.0), 202
    if route == "swaps":
        counter_readings(rig)
        swap = {
            "meter": "incomer",
            "at": (rig.now - 2.5 * M).isoformat(),
            "old_final": 1002.5,
            "new_initial": 0.5,
            "by": "J. Wang",
        }
        return f"/api/v1/sites/{SITE}/swaps", swap, 201
    return f"/api/v1/alerts/{add_alert(rig)}/ack", {"note": "checked"}, 201


def audit_rows(path: Path) -> list[dict[str, Any]]:
    """The audit log as the file holds it, oldest first (not through the API)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")]
    finally:
        conn.close()


def refusals(rig: Rig, reason: str) -> float:
    value = rig.ctx.metrics.unauthorized.labels(reason)._value.get()
    return float(value)


WHO = {
    "vera": (TOKENS["vera"], Role.VIEWER),
    "otto": (TOKENS["otto"], Role.OPERATOR),
    "ada": (TOKENS["ada"], Role.ADMIN),
    "read_token": (READ, Role.VIEWER),
    "write_token": (WRITE, Role.OPERATOR),
}


@pytest.mark.parametrize("route", ["production", "swaps", "ack"])
@pytest.mark.parametrize("name", list(WHO))
def test_each_role_on_each_write_route(roles: Roles, route: str, name: str) -> None:
    rig = roles.rig
    token, role = WHO[name]
    url, body, done = write(rig, route)
    answer = rig.client.post(url, headers=bearer(token), content=json.dumps(body).encode())
    rows = audit_rows(roles.path)
    if role is Role.VIEWER:
        assert answer.status_code == 403, answer.text
        assert f"{name} (viewer) may not do this" in answer.json()["detail"]
        assert refusals(rig, "read_only") == 1
        # Nothing was done, but the attempt is kept: who tried what, and why it was refused.
        [row] = rows
        assert (row["who"], row["role"], row["status"], row["body"]) == (name, "viewer", 403, "")
        assert row["action"] == {"production": "production", "swaps": "swap", "ack": "ack"}[route]
        assert row["site"] == (None if route == "ack" else SITE)
        assert "needs the operator role" in row["outcome"]
        return
    assert answer.status_code == done, answer.text
    [row] = rows
    assert (row["who"], row["role"], row["status"], row["outcome"]) == (name, role, done, "done")
    assert row["via"] == ("legacy_token" if name == "write_token" else "token")
    assert row["action"] == {"production": "production", "swaps": "swap", "ack": "ack"}[route]
    assert json.loads(row["body"]) == body
    assert row["at"] == ms(rig.now)  # the API's clock
    assert refusals(rig, "read_only") == 0


def test_an_acknowledgement_names_the_person_on_shift_and_keeps_the_user(roles: Roles) -> None:
    rig = roles.rig
    first, second = add_alert(rig), add_alert(rig)
    given = rig.client.post(
        f"/api/v1/alerts/{first}/ack",
        headers=bearer(TOKENS["otto"]),
        content=json.dumps({"by": "张伟 (shift B)"}).encode(),
    )
    assert given.status_code == 201, given.text
    assert (given.json()["by"], given.json()["user"]) == ("张伟 (shift B)", "otto")
    unnamed = rig.client.post(
        f"/api/v1/alerts/{second}/ack", headers=bearer(TOKENS["ada"]), content=b"{}"
    )
    assert unnamed.json()["by"] == "ada"
    shown = rig.client.get(f"/api/v1/alerts/{first}/ack", headers=bearer(TOKENS["vera"]))
    assert shown.json()["by"] == "张伟 (shift B)"
    again = rig.client.post(
        f"/api/v1/alerts/{first}/ack", headers=bearer(TOKENS["ada"]), content=b"{}"
    )
    assert again.status_code == 409
    rows = audit_rows(roles.path)
    assert [(r["who"], r["target"], r["status"]) for r in rows] == [
        ("otto", str(first), 201),
        ("ada", str(second), 201),
        ("ada", str(first), 409),  # refused writes are kept too, with why
    ]
    assert "was acknowledged by 张伟 (shift B)" in rows[2]["outcome"]


def test_the_audit_log_is_for_admins_and_pages(roles: Roles) -> None:
    rig = roles.rig
    for minutes in range(1, 6):
        body = output(rig, "l1", 10.0 * minutes, minutes=minutes)
        answer = rig.client.post(
            f"/api/v1/sites/{SITE}/production",
            headers=bearer(TOKENS["otto"]),
            content=json.dumps(body).encode(),
        )
        assert answer.status_code == 202, answer.text
    for name in ("vera", "otto", "read_token", "write_token"):
        token = WHO[name][0]
        assert rig.client.get("/api/v1/audit", headers=bearer(token)).status_code == 403
    assert refusals(rig, "not_admin") == 2
    assert refusals(rig, "read_only") == 2
    first = rig.client.get("/api/v1/audit", headers=bearer(TOKENS["ada"]), params={"limit": 3})
    assert first.status_code == 200, first.text
    page = first.json()
    ids = [e["id"] for e in page["entries"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3 and page["next"] == ids[-1]
    rest = rig.client.get(
        "/api/v1/audit", headers=bearer(TOKENS["ada"]), params={"limit": 3, "before": ids[-1]}
    ).json()
    assert len(rest["entries"]) == 2 and rest["next"] is None
    entry = page["entries"][0]
    assert (entry["who"], entry["role"], entry["action"], entry["site"]) == (
        "otto",
        "operator",
        "production",
        SITE,
    )
    assert entry["at"] == rig.now.isoformat(timespec="milliseconds")
    assert json.loads(entry["body"])["quantity"] == 50.0
    only = rig.client.get("/api/v1/audit", headers=bearer(TOKENS["ada"]), params={"user": "nobody"})
    assert only.json() == {"entries": [], "next": None}


def test_the_audit_log_is_append_only_and_keeps_its_days(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path, keep_days=30)
    who = Principal("otto", Role.OPERATOR, Via.TOKEN)
    from collector.api.audit import Write  # noqa: PLC0415

    start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    old = log.record(who, Write("swap", SITE, None, "{}"), 201, "done", start)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET who = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    conn.close()
    later = start + timedelta(days=31)
    new = log.record(who, Write("ack", None, "7", "{}"), 201, "done", later)
    log.close()
    assert [r["id"] for r in audit_rows(path)] == [new] and new > old
    # Reopened, it goes on where it was (ids are never reused).
    again = AuditLog(path, keep_days=30)
    assert again.record(who, Write("ack", None, "8", "{}"), 201, "done", later) == new + 1
    again.close()


def test_a_body_of_any_size_is_kept_bounded(tmp_path: Path) -> None:
    from collector.api.audit import MAX_DETAIL, Write, body_text  # noqa: PLC0415

    log = AuditLog(tmp_path / "audit.sqlite", keep_days=1)
    who = Principal("otto", Role.OPERATOR, Via.TOKEN)
    text = body_text(b"\xff" * 70_000)
    log.record(
        who, Write("production", SITE, None, text), 422, "invalid", datetime.now().astimezone()
    )
    log.close()
    [row] = audit_rows(tmp_path / "audit.sqlite")
    assert len(row["body"]) == MAX_DETAIL


# --- the single sign-on proxy -------------------------------------------------------------


def test_the_proxy_user_is_honoured_only_from_the_proxy(roles: Roles) -> None:
    rig = roles.rig
    admin = {"X-Forwarded-User": "li.wei@plant.example", "X-Forwarded-Groups": "staff,plant-admins"}
    from_proxy = roles.client(PROXY)
    me = from_proxy.get("/api/v1/me", headers=admin)
    assert me.json() == {"name": "li.wei@plant.example", "role": "admin", "via": "proxy"}
    assert from_proxy.get("/api/v1/audit", headers=admin).status_code == 200
    # The same headers from anywhere else are anyone's to send: ignored.
    elsewhere = roles.client("10.0.0.6")
    assert elsewhere.get("/api/v1/me", headers=admin).status_code == 401
    assert refusals(rig, "missing") == 1
    with_token = elsewhere.get("/api/v1/me", headers={**admin, **bearer(TOKENS["vera"])})
    assert with_token.json() == {"name": "vera", "role": "viewer", "via": "token"}
    assert (
        elsewhere.get("/api/v1/audit", headers={**admin, **bearer(TOKENS["vera"])}).status_code
        == 403
    )
    # In no mapped group: the default role, a viewer; a shift lead operates.
    plain = from_proxy.get("/api/v1/me", headers={"X-Forwarded-User": "wang"}).json()
    assert plain["role"] == "viewer"
    lead = {"X-Forwarded-User": "zhao", "X-Forwarded-Groups": "shift-leads"}
    alert = add_alert(rig)
    acked = from_proxy.post(
        f"/api/v1/alerts/{alert}/ack",
        headers={**lead, "Content-Type": "application/json"},
        content=b"{}",
    )
    assert acked.status_code == 201, acked.text
    [row] = audit_rows(roles.path)
    assert (row["who"], row["role"], row["via"]) == ("zhao", "operator", "proxy")
    # The proxy's cookie goes with any page's request: a write from another origin is refused.
    cross = from_proxy.post(
        f"/api/v1/alerts/{alert}/ack",
        headers={**lead, "Content-Type": "application/json", "Origin": "https://evil.example"},
        content=b"{}",
    )
    assert cross.status_code == 403 and refusals(rig, "origin") == 1
    refused = audit_rows(roles.path)[-1]
    assert (refused["who"], refused["status"], refused["target"]) == ("zhao", 403, str(alert))
    assert "another origin" in refused["outcome"]
    # A header that is no user name is refused, not taken for someone.
    assert from_proxy.get("/api/v1/me", headers={"X-Forwarded-User": " "}).status_code == 401
    assert refusals(rig, "proxy_user") == 1


def test_a_proxy_without_default_role_refuses_users_in_no_group(tmp_path: Path) -> None:
    proxy = {"from": [f"{PROXY}/32"], "default_role": None}
    rig = make_rig(tmp_path, settings(trusted_proxy=proxy))
    try:
        client = TestClient(rig.client.app, base_url="http://127.0.0.1:8080", client=(PROXY, 1))
        stranger = client.get(
            "/api/v1/me", headers={"X-Forwarded-User": "x", "X-Forwarded-Groups": "staff"}
        )
        assert stranger.status_code == 403 and refusals(rig, "no_role") == 1
        # With no role mapping, groups named after the roles count.
        named = client.get(
            "/api/v1/me", headers={"X-Forwarded-User": "x", "X-Forwarded-Groups": "operator"}
        )
        assert named.json()["role"] == "operator"
    finally:
        rig.client.close()
        rig.accounting.close()
        rig.store.close()


# --- settings -------------------------------------------------------------------------------


def test_users_settings_are_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENGAUGE_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GREENGAUGE_API_WRITE_TOKEN", raising=False)
    user = {"name": "li", "role": "operator", "token": "x" * 16}
    for change, error in (
        ({"role": "root"}, "role"),
        ({"token": "short"}, "users: li: token: at least 16"),
        ({"name": "li wei"}, "name"),
        ({"name": "read_token"}, "legacy token"),
        ({"extra": 1}, "extra"),
    ):
        with pytest.raises(ValidationError, match=error):
            ApiSettings.model_validate({"users": [{**user, **change}]})
    with pytest.raises(ValidationError, match="the name li is given twice"):
        ApiSettings.model_validate({"users": [user, {**user, "token": "y" * 16}]})
    with pytest.raises(ValidationError, match="share a token") as shared:
        ApiSettings.model_validate({"users": [user, {**user, "name": "wang"}]})
    # The config loader shows the message, never the input (collector.configfile).
    assert "x" * 16 not in shared.value.errors()[0]["msg"]
    with pytest.raises(ValidationError, match="share a token"):
        ApiSettings.model_validate({"read_token": "x" * 16, "users": [user]})
    for proxy, error in (
        ({"from": []}, "at least 1"),
        ({"from": ["0.0.0.0/0"]}, "every address"),
        ({"from": ["10.0.0.300/32"]}, "from"),
        ({"from": ["10.0.0.5/32"], "header": "X User"}, "not an HTTP header name"),
        ({"from": ["10.0.0.5/32"], "roles": {"g": "root"}}, "roles"),
    ):
        with pytest.raises(ValidationError, match=error):
            ApiSettings.model_validate({"trusted_proxy": proxy})
    # Off loopback, users (or a proxy) are enough: no legacy token needed.
    assert not ApiSettings.model_validate({"listen": "0.0.0.0:8080", "users": [user]}).open
    behind = ApiSettings.model_validate(
        {"listen": "0.0.0.0:8080", "trusted_proxy": {"from": ["10.0.0.5/32"]}}
    )
    assert not behind.open
    assert "x" * 16 not in repr(ApiSettings.model_validate({"users": [user]}))


# --- pure parts -------------------------------------------------------------------------------


@given(st.lists(st.text(min_size=16, max_size=40), min_size=1, max_size=6, unique=True), st.data())
def test_a_token_finds_its_principal_and_nothing_else_does(
    tokens: list[str], data: st.DataObject
) -> None:
    who = [Principal(f"u{i}", Role.VIEWER, Via.TOKEN) for i in range(len(tokens))]
    table = Tokens(zip(tokens, who, strict=True))
    for token, principal in zip(tokens, who, strict=True):
        assert table.find(token) is principal
    other = data.draw(st.text(max_size=40).filter(lambda t: t not in tokens))
    assert table.find(other) is None


@given(st.text(max_size=200))
def test_a_proxy_user_name_is_printable_bounded_or_refused(value: str) -> None:
    name = user_name(value)
    if name is not None:
        assert 0 < len(name) <= 100 and name == name.strip()
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def test_the_highest_role_of_the_groups_counts() -> None:
    mapping = {"ops": Role.OPERATOR, "admins": Role.ADMIN, "all": Role.VIEWER}
    assert role_of_groups("all, admins ops", mapping, None) is Role.ADMIN
    assert role_of_groups("", mapping, Role.VIEWER) is Role.VIEWER
    assert role_of_groups("Admins", mapping, None) is None  # names are exact


# --- `energy-collector check` ------------------------------------------------------------------


def test_check_says_who_may_use_the_api_in_either_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTTO_TOKEN", TOKENS["otto"])
    path = tmp_path / "collector.yaml"
    api = {
        "listen": "0.0.0.0:8080",
        "read_token": READ,
        "users": [
            {"name": "otto", "role": "operator", "token": "${OTTO_TOKEN}"},
            {"name": "ada", "role": "admin", "token": TOKENS["ada"]},
        ],
        "trusted_proxy": {"from": ["127.0.0.1/32"]},
    }
    body = {"mqtt": {"url": "mqtt://127.0.0.1:1"}, "data_dir": str(tmp_path), "api": api}
    path.write_text(json.dumps(body))
    report = check_report(path)
    assert (
        "api 0.0.0.0:8080: 2 users: otto (operator), ada (admin); legacy shared tokens: "
        "read_token; single sign-on proxy from 127.0.0.1/32"
    ) in report.splitlines()
    for secret in (READ, *TOKENS.values()):
        assert secret not in report
    with i18n.using("zh_CN"):
        chinese = check_report(path)
    assert "2 个用户: otto（操作员）, ada（管理员）" in chinese  # noqa: RUF001
    assert "单点登录代理，来自 127.0.0.1/32" in chinese  # noqa: RUF001


def test_the_single_sign_on_example_is_valid() -> None:
    """The collector settings in docs/single-sign-on.md, as an operator would copy them."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "single-sign-on.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    api = yaml.safe_load(block.replace("${MES_API_TOKEN}", TOKENS["otto"]))["api"]
    settings = ApiSettings.model_validate(api)
    proxy = settings.trusted_proxy
    assert proxy is not None and [str(n) for n in proxy.from_] == ["127.0.0.1/32"]
    assert (
        role_of_groups("staff,shift-leads", proxy.group_roles, proxy.default_role) is Role.OPERATOR
    )
