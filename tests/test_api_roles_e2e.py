"""The single sign-on proxy against the real collector (uvicorn): its headers honoured
from the proxy's address only, however the request says it was forwarded; a write by
the proxy's user kept in data_dir/audit.sqlite."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from processes import running, wait_for, write_yaml
from servers import Mosquitto, free_port
from test_api_e2e import SITE, _up, config
from test_dashboard_e2e import CHROMIUM_ARGS, _chromium

PROXY = "127.0.0.2"
"""Another loopback address: a connection from it is the proxy's."""
USER = {"X-Forwarded-User": "zhao", "X-Forwarded-Groups": "ops,shift-leads"}
ADMIN_TOKEN = "e2e-admin-token-0123456789"  # noqa: S105 - a test token


def client(local: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=local), timeout=5)


def test_the_proxy_user_only_from_the_proxy_address_and_audited(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    path = config(tmp_path, mosquitto, port, tokens=False)
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["api"]["users"] = [{"name": "ada", "role": "admin", "token": "${TEST_ADMIN_TOKEN}"}]
    data["api"]["trusted_proxy"] = {"from": [f"{PROXY}/32"], "roles": {"shift-leads": "operator"}}
    write_yaml(path, data)
    now = datetime.now(UTC).replace(microsecond=0)
    output = {
        "kind": "output",
        "site": SITE,
        "line": "line-1",
        "start": (now - timedelta(minutes=10)).isoformat(),
        "end": now.isoformat(),
        "quantity": 120.0,
        "unit": "pieces",
    }
    with (
        running("energy-collector", ["run", "--config", str(path)], tmp_path / "c.log"),
        client(PROXY) as proxy,
        client("127.0.0.1") as local,
    ):
        wait_for(lambda: _up(base), 20, "the API to answer")
        me = proxy.get(f"{base}/api/v1/me", headers=USER)
        assert me.json() == {"name": "zhao", "role": "operator", "via": "proxy"}
        # Not from the proxy: the headers are anyone's, and so is X-Forwarded-For.
        assert local.get(f"{base}/api/v1/me", headers=USER).status_code == 401
        forged = {**USER, "X-Forwarded-For": PROXY, "X-Real-IP": PROXY}
        assert local.get(f"{base}/api/v1/me", headers=forged).status_code == 401
        written = proxy.post(
            f"{base}/api/v1/sites/{SITE}/production",
            headers={**USER, "Content-Type": "application/json"},
            content=json.dumps(output).encode(),
        )
        assert written.status_code == 202, written.text
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        listed = local.get(f"{base}/api/v1/audit", headers=admin).json()["entries"]
        assert [(e["who"], e["via"], e["action"], e["status"]) for e in listed] == [
            ("zhao", "proxy", "production", 202)
        ]
        metrics = local.get(f"{base}/metrics", headers=admin).text
        assert 'greengauge_api_unauthorized_total{reason="missing"} 2.0' in metrics
        signed_in_on_the_page(base)
    conn = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    try:
        [(who, role, body, at)] = conn.execute("SELECT who, role, body, at FROM audit").fetchall()
    finally:
        conn.close()
    assert (who, role, json.loads(body)) == ("zhao", "operator", output)
    assert abs(at / 1000 - datetime.now(UTC).timestamp()) < 120


def signed_in_on_the_page(base: str) -> None:
    """The page says who it is signed in as, in the browser's language."""
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            for locale, text in (("en-US", "ada · admin"), ("zh-CN", "ada · 管理员")):
                page = browser.new_context(locale=locale).new_page()
                page.goto(f"{base}/#token={ADMIN_TOKEN}")
                expect(page.locator("#who")).to_have_text(text, timeout=10_000)
                title = page.locator("#who").get_attribute("title") or ""
                assert ("personal token" in title) if locale == "en-US" else ("个人令牌" in title)
        finally:
            browser.close()
