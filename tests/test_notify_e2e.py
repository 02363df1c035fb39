"""An intensity alert raised by the accounting reaches a local webhook and a local SMTP
server with the right content; an operator acknowledges it through the API (write token),
the acknowledgement is recorded with who and when and reaches both too;
`energy-collector alerts test` reports each channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from notify_receivers import HttpReceiver, SmtpReceiver
from test_accounting_engine import T0, FakeStore, readings
from test_accounting_engine import config as plant

from collector.accounting.engine import Accounting
from collector.accounting.live import LiveAccounting
from collector.api import figures
from collector.api.app import ApiContext, create_app
from collector.api.settings import ApiSettings
from collector.cli import main
from collector.deadletters import DeadLetters
from collector.guard import Guard
from collector.metrics import CollectorMetrics
from collector.notify.alerts import AlertNotices, acknowledgements, notices_for
from collector.notify.settings import NotifySettings
from collector.state.hub import LiveHub
from collector.state.latest import LatestReadings
from collector.state.statuses import AgentStatuses

READ = "read-token-0123456789"
WRITE = "write-token-0123456789"
ALERT = {"window": "rolling_15min", "band": 0.01, "min_duration": 120, "threshold": 0.001}


@dataclass
class Plant:
    hook: HttpReceiver
    smtp: SmtpReceiver
    accounting: Accounting
    live: LiveAccounting
    notices: AlertNotices
    client: TestClient
    clock: list[Any]

    def post_ack(self, alert_id: int, body: dict[str, Any], token: str = WRITE) -> Any:
        return self.client.post(
            f"/api/v1/alerts/{alert_id}/ack",
            content=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )


def notify_config(hook: HttpReceiver, smtp: SmtpReceiver) -> dict[str, Any]:
    return {
        "channels": {
            "ops-hook": {"type": "webhook", "url": hook.url + "/alerts", "secret": "k" * 20},
            "plant-mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "sender": "greengauge@plant.example",
                "to": ["shift@plant.example"],
            },
        },
        "routes": [{"sites": ["s1"], "channels": ["ops-hook", "plant-mail"]}],
        "retry_start": 0.05,
    }


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Plant]:
    with HttpReceiver() as hook, SmtpReceiver() as smtp:
        clock = [T0]
        accounting = Accounting(plant(alert=ALERT), tmp_path, FakeStore(), clock=lambda: clock[0])
        live = LiveAccounting(accounting, Guard(DeadLetters(tmp_path / "dead.jsonl")))
        notices = notices_for(NotifySettings.model_validate(notify_config(hook, smtp)), accounting)
        accounting.set_sink(notices)
        state = figures.State(LatestReadings(), AgentStatuses(), accounting)

        async def refresh(site: str) -> None:
            pass

        ctx = ApiContext(
            state,
            LiveHub(),
            None,
            live,
            CollectorMetrics(),
            ApiSettings.model_validate({"read_token": READ, "write_token": WRITE}),
            refresh,
            clock=lambda: clock[0],
            notices=notices,
        )
        client = TestClient(create_app(ctx), base_url="http://127.0.0.1:8080")
        try:
            yield Plant(hook, smtp, accounting, live, notices, client, clock)
        finally:
            client.close()
            accounting.close()


def test_an_alert_and_its_acknowledgement_reach_the_webhook_and_email(rig: Plant) -> None:
    rig.accounting.process(readings(10))
    for minute in (5, 6, 7, 8):
        rig.clock[0] = T0 + timedelta(minutes=minute)
        rig.accounting.evaluate()
    [alert] = rig.accounting.db.alerts("s1")
    assert rig.notices.notifier.drain(10)

    [raised] = [r.json() for r in rig.hook.received]
    assert raised["action"] == "raised" and raised["kind"] == "intensity"
    assert (raised["site"], raised["subject"], raised["alert_id"]) == ("s1", "kiln", alert.id)
    assert raised["value"] == pytest.approx(alert.value)
    assert raised["threshold"] == 0.001 and raised["unit"] == "kgce/pieces"
    assert raised["since"] == (T0 + timedelta(minutes=5)).isoformat()
    [(_, mail)] = rig.smtp.messages
    assert mail["Subject"] == "[WARNING] GreenGauge s1/kiln: intensity above baseline raised"
    assert mail["To"] == "shift@plant.example"
    text = mail.get_content()
    assert "threshold 0.001 kgce/pieces" in text and f"alert id {alert.id}" in text
    assert "condition since 2026-11-24 10:05:00 CST" in text  # Shanghai, the site's zone

    rig.clock[0] = T0 + timedelta(minutes=9)
    answer = rig.post_ack(alert.id, {"by": "张伟 (shift B)", "note": "kiln door open"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["by"] == "张伟 (shift B)"
    ack = acknowledgements(rig.accounting.db)[alert.id]
    assert (ack.by, ack.at, ack.note) == ("张伟 (shift B)", rig.clock[0], "kiln door open")
    assert rig.notices.notifier.drain(10)
    acked = rig.hook.received[-1].json()
    assert acked["action"] == "acknowledged" and acked["by"] == "张伟 (shift B)"
    assert acked["ts"] == rig.clock[0].isoformat() and acked["alert_id"] == alert.id
    assert "note: kiln door open" in acked["detail"]
    ack_mail = rig.smtp.messages[-1][1]
    assert ack_mail["Subject"].endswith("intensity above baseline acknowledged")
    assert "acknowledged by 张伟 (shift B)" in ack_mail.get_content()

    headers = {"Authorization": f"Bearer {READ}"}
    shown = rig.client.get(f"/api/v1/alerts/{alert.id}/ack", headers=headers)
    assert shown.status_code == 200 and shown.json()["by"] == "张伟 (shift B)"
    assert shown.json()["at"] == rig.clock[0].isoformat()
    missing = rig.client.get(f"/api/v1/alerts/{alert.id + 99}/ack", headers=headers)
    assert missing.status_code == 404
    # The page learns it from the alert lists, without a request per alert.
    at = rig.clock[0].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    given = {"by": "张伟 (shift B)", "at": at, "note": "kiln door open"}
    for query in ("", "?active=true"):
        listed = rig.client.get(f"/api/v1/alerts{query}", headers=headers).json()
        assert [a["ack"] for a in listed] == [given], query

    again = rig.post_ack(alert.id, {"by": "li"})
    assert again.status_code == 409 and "acknowledged by 张伟 (shift B)" in again.json()["detail"]
    assert rig.post_ack(alert.id, {"by": "li"}, token=READ).status_code == 403
    assert rig.post_ack(alert.id + 99, {"by": "li"}).status_code == 404
    assert rig.post_ack(alert.id, {"by": ""}).status_code == 422
    assert rig.post_ack(alert.id, {"by": "li", "extra": 1}).status_code == 422
    assert len(rig.hook.received) == 2  # refused acknowledgements notify nobody


def test_a_cleared_record_is_not_acknowledged(rig: Plant) -> None:
    with rig.accounting.db.transaction() as conn:
        conn.execute(
            "INSERT INTO alert (site, line, kind, ts, since, value, threshold, window, unit, "
            "benchmark) VALUES ('s1', 'kiln', 'cleared', 0, 0, 0, 0, 'w', 'u', 'b')"
        )
    [row] = rig.accounting.db.alerts("s1")
    answer = rig.post_ack(row.id, {"by": "li"})
    assert answer.status_code == 422 and "acknowledge the raised one" in answer.json()["detail"]


def test_alerts_test_command_reports_each_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with HttpReceiver(wecom_key="right-key") as robots, SmtpReceiver() as smtp:
        notify = notify_config(robots, smtp)
        notify["channels"]["group"] = {"type": "wecom", "url": robots.url + "/wecom?key=right-key"}
        notify["routes"][0]["channels"].append("group")
        path = tmp_path / "collector.yaml"
        config = {"mqtt": {"url": "mqtt://127.0.0.1:1883"}, "notify": notify}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        assert main(["alerts", "test", "--config", str(path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["channel", "type", "result"]
        assert [line.split()[:3] for line in lines[1:]] == [
            ["ops-hook", "webhook", "ok"],
            ["plant-mail", "email", "ok"],
            ["group", "wecom", "ok"],
        ]
        assert [r.json()["action"] for r in robots.received[:1]] == ["test"]
        assert smtp.messages[0][1]["Subject"].endswith("test message test")

        notify["channels"]["group"]["url"] = robots.url + "/wecom?key=wrong-key"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        assert main(["--log-level", "WARNING", "alerts", "test", "--config", str(path)]) == 1
        out = capsys.readouterr().out
        assert "group       wecom    error: robot refused it: errcode 93000" in out
        assert "wrong-key" not in out
        assert main(["alerts", "test", "--config", str(path), "--channel", "nope"]) == 2
        assert "no channel 'nope'" in capsys.readouterr().err
