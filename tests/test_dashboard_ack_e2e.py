"""Acknowledging an alert from the dashboard (issue 16), in Debian's chromium against a
real collector, agent and simulated meter: an alert raised by the accounting, an
operator acknowledging it on the page (after a failed attempt, said in plain words), the
acknowledgement read back from the API and the audit log with who and when; a viewer
sees no button, and sees who acknowledged it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish
import pytest
import yaml
from processes import running, wait_for, write_yaml
from servers import Mosquitto, free_port
from test_accounting_mes_alerts_e2e import SITE, TIMEOUT, configs, meter_port, output
from test_api_e2e import _up
from test_dashboard_e2e import ARTIFACTS, CHROMIUM_ARGS, _chromium

from greengauge.contract import production_topic

__all__ = ["meter_port"]  # the fixture, used by name

TOKENS = {
    "li": ("operator", "e2e-operator-token-0123456789"),
    "wang": ("viewer", "e2e-viewer-token-0123456789"),
    "ada": ("admin", "e2e-admin-token-01234567890"),
}
ON_SHIFT = "张伟 (shift B)"


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user][1]}"}


def active_alert(base: str) -> int | None:
    listed = httpx.get(f"{base}/api/v1/alerts?active=true", headers=bearer("wang")).json()
    return int(listed[0]["id"]) if listed else None


def test_an_operator_acknowledges_an_alert_on_the_page(
    tmp_path: Path, meter_port: int, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    agent_yaml, collector_yaml = configs(tmp_path, meter_port, mosquitto)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data: dict[str, Any] = yaml.safe_load(collector_yaml.read_text())
    data["api"] = {"listen": f"127.0.0.1:{port}", "summary_interval": 0.5, "users": []}
    for name, (role, token) in TOKENS.items():
        monkeypatch.setenv(f"TEST_TOKEN_{name.upper()}", token)
        data["api"]["users"].append(
            {"name": name, "role": role, "token": f"${{TEST_TOKEN_{name.upper()}}}"}
        )
    write_yaml(collector_yaml, data)
    errors: list[str] = []
    with (
        running("energy-collector", ["run", "--config", str(collector_yaml)], tmp_path / "c.log"),
        running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log"),
        sync_playwright() as playwright,
    ):
        wait_for(lambda: _up(base), TIMEOUT, "the API to answer")
        now = datetime.now(UTC)
        # One piece for ~140 kW: far above the line's baseline, so an alert is raised.
        paho.mqtt.publish.single(
            production_topic(SITE),
            output(1, now - timedelta(minutes=1), now),
            qos=1,
            port=mosquitto.port,
        )
        wait_for(lambda: active_alert(base) is not None, TIMEOUT, "an alert to be raised")
        alert_id = active_alert(base)
        ARTIFACTS.mkdir(exist_ok=True)
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            viewer = browser.new_context(locale="en-US").new_page()
            viewer.on("pageerror", lambda exc: errors.append(str(exc)))
            viewer.goto(f"{base}/#token={TOKENS['wang'][1]}")
            expect(viewer.locator("#who")).to_have_text("wang · viewer", timeout=10_000)
            shown = viewer.locator(f"#alerts li[data-alert='{alert_id}']")
            expect(shown).to_be_visible(timeout=10_000)
            expect(shown.locator(".ack-button")).to_have_count(0)

            page = browser.new_context(locale="en-US").new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/#token={TOKENS['li'][1]}")
            expect(page.locator("#who")).to_have_text("li · operator", timeout=10_000)
            item = page.locator(f"#alerts li[data-alert='{alert_id}']")
            item.locator(".ack-button").click(timeout=10_000)
            expect(page.locator("#ack-by")).to_have_value("li")  # the signed-in user
            page.locator("#ack-by").fill(ON_SHIFT)
            page.locator("#ack-note").fill("kiln door open")
            # The collector out of reach: said so, nothing recorded, the dialog stays.
            page.route("**/ack", lambda route: route.abort())
            page.locator("#ack-submit").click()
            expect(page.locator("#ack-error")).to_contain_text("could not be reached")
            page.screenshot(path=str(ARTIFACTS / "dashboard-ack-dialog.png"))
            page.unroute("**/ack")
            page.locator("#ack-submit").click()
            expect(page.locator("#ack-dialog")).to_be_hidden()
            done = item.locator(".alert-ack")
            expect(done).to_contain_text(f"acknowledged by {ON_SHIFT} at")
            expect(item.locator(".ack-button")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "dashboard-ack-done.png"))
            # Acknowledged earlier: the viewer's page learns it from the summary.
            expect(shown.locator(".alert-ack")).to_contain_text(f"acknowledged by {ON_SHIFT}")
        finally:
            browser.close()

        ack = httpx.get(f"{base}/api/v1/alerts/{alert_id}/ack", headers=bearer("wang")).json()
        assert (ack["by"], ack["note"]) == (ON_SHIFT, "kiln door open")
        at = datetime.fromisoformat(ack["at"])
        assert now <= at <= datetime.now(UTC)
        entries = httpx.get(f"{base}/api/v1/audit", headers=bearer("ada")).json()["entries"]
        assert [
            (e["who"], e["role"], e["action"], e["target"], e["status"], json.loads(e["body"]))
            for e in entries
        ] == [
            (
                "li",
                "operator",
                "ack",
                str(alert_id),
                201,
                {"by": ON_SHIFT, "note": "kiln door open"},
            )
        ]
        assert now <= datetime.fromisoformat(entries[0]["at"]) <= datetime.now(UTC)
    assert errors == []
