"""Alert notices reach real local receivers: a webhook (JSON, HMAC signature, retries with
backoff, refusals not retried), DingTalk (signed as DingTalk checks it), WeCom (key,
markdown or text), SMTP (plain, STARTTLS with login, SSL); a bounded queue; no secret in
any log line or error."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from notify_receivers import HttpReceiver, SmtpReceiver, make_certificates, wait_for

from collector.notify.events import Action, AlertKind, Notice, Severity
from collector.notify.notifier import Notifier, NotifierMetrics
from collector.notify.settings import NotifySettings
from collector.notify.webhook import SIGNATURE, TIMESTAMP

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
DING_SECRET = "SEC0123456789abcdef-robot-secret"  # noqa: S105 - a test secret
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
HOOK_SECRET = "hook-secret-never-logged"  # noqa: S105 - a test secret
PASSWORD = "smtp-password-never-logged"  # noqa: S105 - a test secret


def raised(**changes: Any) -> Notice:
    base = Notice(
        action=Action.RAISED,
        kind=AlertKind.INTENSITY,
        severity=Severity.WARNING,
        site="s1",
        subject="kiln",
        ts=NOW,
        alert_id=7,
        value=0.2561,
        threshold=0.2,
        unit="kgce/t",
        since=NOW - timedelta(minutes=15),
        detail="window rolling_1h, benchmark GB 21256",
    )
    return dataclasses.replace(base, **changes)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line with its structured fields (where a secret would show)."""
    return "\n".join(f"{r.getMessage()} {getattr(r, 'kv', {})}" for r in caplog.records)


def settings(channels: dict[str, Any], **more: Any) -> NotifySettings:
    return NotifySettings.model_validate(
        {
            "channels": channels,
            "routes": [{"channels": list(channels)}],
            "retry_start": 0.05,
            "retry_ceiling": 0.2,
            **more,
        }
    )


def notifier(config: NotifySettings) -> Notifier:
    n = Notifier(config, {"s1": SHANGHAI})
    n.start()
    return n


def test_webhook_gets_the_notice_as_json_signed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with HttpReceiver() as hook:
        config = settings(
            {"ops": {"type": "webhook", "url": hook.url + "/hook", "secret": HOOK_SECRET}}
        )
        n = notifier(config)
        n.notify(raised())
        assert n.drain(10)
        n.stop()
    [got] = hook.received
    assert got.path == "/hook"
    assert got.json() == raised().as_json()
    assert got.json()["site"] == "s1" and got.json()["value"] == 0.2561
    ts = got.headers[TIMESTAMP.lower()]
    expected = hmac.new(HOOK_SECRET.encode(), f"{ts}.".encode() + got.body, hashlib.sha256)
    assert got.headers[SIGNATURE.lower()] == "sha256=" + expected.hexdigest()
    assert n.counts[("ops", "sent")] == 1
    assert HOOK_SECRET not in logged(caplog)


def test_webhook_retries_with_backoff_then_delivers() -> None:
    with HttpReceiver() as hook:
        hook.script = [(503, b"busy"), (500, b"oops")]
        n = notifier(settings({"ops": {"type": "webhook", "url": hook.url}}))
        n.notify(raised())
        assert n.drain(10)
        n.stop()
    assert len(hook.received) == 3
    assert len({r.body for r in hook.received}) == 1  # the same notice each time
    assert n.counts[("ops", "failed_attempt")] == 2
    assert n.counts[("ops", "sent")] == 1
    assert n.counts[("ops", "given_up")] == 0


def test_webhook_refusal_is_not_retried_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    with HttpReceiver() as hook:
        hook.script = [(400, b"bad")]
        n = notifier(settings({"ops": {"type": "webhook", "url": hook.url + "/?token=tok-123"}}))
        n.notify(raised())
        assert n.drain(10)
        n.stop()
    assert len(hook.received) == 1
    assert n.counts[("ops", "given_up")] == 1
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert gave_up and gave_up[0].kv["reason"] == "HTTP 400 Bad Request"  # type: ignore[attr-defined]
    assert "tok-123" not in logged(caplog)


def test_unreachable_webhook_gives_up_after_the_attempts(caplog: pytest.LogCaptureFixture) -> None:
    with HttpReceiver() as hook:
        url = hook.url
    n = notifier(settings({"ops": {"type": "webhook", "url": url}}, attempts=3))
    n.notify(raised())
    assert n.drain(10)
    n.stop()
    assert n.counts[("ops", "failed_attempt")] == 3
    assert n.counts[("ops", "given_up")] == 1
    assert "cannot connect" in logged(caplog)


def test_dingtalk_request_verifies_as_dingtalk_checks_it() -> None:
    with HttpReceiver(dingtalk_secret=DING_SECRET) as robot:
        url = robot.url + "/dingtalk/robot/send?access_token=abc"
        good = {
            "type": "dingtalk",
            "url": url,
            "secret": DING_SECRET,
            "at_mobiles": ["13800138000"],
        }
        n = notifier(settings({"ding": good}))
        n.notify(raised())
        n.notify(raised(action=Action.CLEARED))
        assert n.drain(10)
        n.stop()
    assert n.counts[("ding", "sent")] == 2
    first = robot.received[0]
    assert first.query["access_token"] == "abc"  # noqa: S105 - a test token
    body = first.json()
    assert body["msgtype"] == "markdown"
    assert "s1/kiln" in body["markdown"]["title"]
    assert "value 0.2561 kgce/t, threshold 0.2 kgce/t" in body["markdown"]["text"]
    assert "22:30:00 CST" in body["markdown"]["text"]  # the site's local time
    assert body["at"]["atMobiles"] == ["13800138000"]
    assert "@13800138000" in body["markdown"]["text"]
    assert robot.received[1].json()["at"]["atMobiles"] == []  # cleared: nobody woken


def test_dingtalk_wrong_secret_is_refused_and_not_retried() -> None:
    with HttpReceiver(dingtalk_secret=DING_SECRET) as robot:
        bad = {"type": "dingtalk", "url": robot.url + "/dingtalk?access_token=a", "secret": "SECx"}
        n = Notifier(settings({"ding": bad}), {"s1": SHANGHAI})
        error = n.deliver("ding", raised())
    assert error is not None and not error.retry
    assert "errcode 310000" in str(error)
    assert len(robot.received) == 1


def test_wecom_markdown_and_text_with_the_key_in_the_url() -> None:
    with HttpReceiver(wecom_key=WECOM_KEY) as robot:
        base = robot.url + "/wecom/cgi-bin/webhook/send?key="
        config = settings(
            {
                "md": {"type": "wecom", "url": base + WECOM_KEY},
                "txt": {
                    "type": "wecom",
                    "url": base + WECOM_KEY,
                    "msgtype": "text",
                    "mentioned_mobile_list": ["13800138000"],
                },
                "wrong": {"type": "wecom", "url": base + "nope"},
            }
        )
        n = Notifier(config, {"s1": SHANGHAI})
        assert n.deliver("md", raised()) is None
        assert n.deliver("txt", raised()) is None
        wrong = n.deliver("wrong", raised())
    assert wrong is not None and "errcode 93000" in str(wrong)
    assert WECOM_KEY not in str(wrong)
    md, txt = robot.received[0].json(), robot.received[1].json()
    assert md["msgtype"] == "markdown"
    assert md["markdown"]["content"].startswith("### [WARNING] GreenGauge s1/kiln")
    assert txt["msgtype"] == "text"
    assert "intensity above baseline raised" in txt["text"]["content"]
    assert txt["text"]["mentioned_mobile_list"] == ["13800138000"]


def test_wecom_content_is_cut_to_its_byte_limit() -> None:
    with HttpReceiver(wecom_key=WECOM_KEY) as robot:
        url = robot.url + "/wecom?key=" + WECOM_KEY
        n = Notifier(settings({"md": {"type": "wecom", "url": url}}), {})
        assert n.deliver("md", raised(detail="能耗" * 3000)) is None
    assert len(robot.received[0].json()["markdown"]["content"].encode()) <= 4096


def test_email_plain(tmp_path: Path) -> None:
    with SmtpReceiver() as smtp:
        channel = {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "sender": "alerts@plant.example",
            "to": ["ops@plant.example", "energy@plant.example"],
        }
        n = Notifier(settings({"mail": channel}), {"s1": SHANGHAI})
        assert n.deliver("mail", raised()) is None
    [(envelope, mail)] = smtp.messages
    assert envelope.rcpt_tos == ["ops@plant.example", "energy@plant.example"]
    assert mail["Subject"] == "[WARNING] GreenGauge s1/kiln: intensity above baseline raised"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "value 0.2561 kgce/t" in body.decode()
    assert "condition since 2026-11-24 22:15:00 CST" in body.decode()


# aiosmtpd warns of AUTH without STARTTLS, which SSL from the first byte is not
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_login(
    tmp_path: Path, security: str, caplog: pytest.LogCaptureFixture
) -> None:
    certs = make_certificates(tmp_path / "certs")
    with SmtpReceiver(certs, security, login=("alerts", PASSWORD)) as smtp:
        channel = {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": security,
            "username": "alerts",
            "password": PASSWORD,
            "sender": "alerts@plant.example",
            "to": ["ops@plant.example"],
            "ca_file": str(certs / "ca.pem"),
        }
        wrong = {**channel, "password": "not-it-" + PASSWORD}
        n = Notifier(settings({"mail": channel, "wrong": wrong}), {"s1": SHANGHAI})
        assert n.deliver("mail", raised()) is None
        refused = n.deliver("wrong", raised())
    assert len(smtp.messages) == 1
    assert smtp.logins == ["alerts", "alerts"]
    assert refused is not None and not refused.retry
    assert "login refused" in str(refused)
    assert PASSWORD not in str(refused) and PASSWORD not in logged(caplog)


def test_email_refuses_a_server_certificate_from_another_ca(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    with SmtpReceiver(certs, "starttls") as smtp:
        channel = {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "sender": "alerts@plant.example",
            "to": ["ops@plant.example"],
            "ca_file": str(certs / "other-ca.pem"),
        }
        error = Notifier(settings({"mail": channel}), {}).deliver("mail", raised())
    assert error is not None and "SSL" in str(error)
    assert smtp.messages == []


def test_a_full_queue_drops_and_counts_and_notify_never_waits() -> None:
    with HttpReceiver() as hook:
        n = Notifier(settings({"ops": {"type": "webhook", "url": hook.url}}, queue_size=2), {})
        for _ in range(3):
            n.notify(raised())  # not started: nothing leaves the queue
        assert n.counts[("ops", "dropped")] == 1
        assert n.waiting == 2
        n.start()
        assert n.drain(10)
        n.stop()
    assert len(hook.received) == 2
    assert n.counts[("ops", "sent")] == 2


def test_metrics_count_each_outcome_per_channel() -> None:
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

    with HttpReceiver() as hook:
        hook.script = [(400, b"no")]
        n = notifier(settings({"ops": {"type": "webhook", "url": hook.url}}))
        n.notify(raised())
        n.notify(raised())
        assert n.drain(10)
        n.stop()
    registry = CollectorRegistry()
    registry.register(NotifierMetrics(n))
    text = generate_latest(registry).decode()
    assert 'greengauge_alert_notices_total{channel="ops",outcome="sent"} 1.0' in text
    assert 'greengauge_alert_notices_total{channel="ops",outcome="given_up"} 1.0' in text
    assert "greengauge_alert_notices_waiting 0.0" in text


def test_quiet_hours_hold_back_all_but_the_bypassing_severities() -> None:
    with HttpReceiver() as hook:
        config = NotifySettings.model_validate(
            {
                "channels": {"ops": {"type": "webhook", "url": hook.url}},
                "routes": [
                    {
                        "channels": ["ops"],
                        "quiet_hours": {"start": "22:00", "end": "07:00", "bypass": ["critical"]},
                    }
                ],
            }
        )
        n = Notifier(config, {"s1": SHANGHAI}, clock=lambda: NOW)  # 22:30 at the site
        n.start()
        n.notify(raised())
        n.notify(raised(severity=Severity.CRITICAL, alert_id=8))
        assert n.drain(10)
        n.stop()
    assert [r.json()["alert_id"] for r in hook.received] == [8]
    assert n.counts[("ops", "quiet")] == 1
    assert json.loads(hook.received[0].body)["severity"] == "critical"


def test_stop_returns_while_a_channel_hangs() -> None:
    with HttpReceiver() as hook:
        hook.delay = 3
        n = notifier(settings({"ops": {"type": "webhook", "url": hook.url, "timeout": 5}}))
        n.notify(raised())
        wait_for(lambda: hook.received)
        n.stop(timeout=0.2)
        assert n.waiting == 1
