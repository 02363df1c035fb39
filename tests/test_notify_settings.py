"""The notify config (strict, secrets from the environment and never shown), routing and
quiet hours in the site's local time, the messages' texts. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from collector.check import check_report
from collector.notify import message
from collector.notify.events import Action, AlertKind, Notice, Severity
from collector.notify.routing import channels_for, in_quiet_hours
from collector.notify.settings import NotifySettings, QuietHours, Route
from greengauge.common.configfile import ConfigError, load_model

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
SECRET = "SECdingtalk-0f1e2d"  # noqa: S105 - a test secret
TOKEN = "tok-0a9b8c7d"  # noqa: S105 - a test token


def notice(severity: Severity = Severity.WARNING, site: str = "s1", **more: Any) -> Notice:
    return Notice(Action.RAISED, AlertKind.OFFLINE, severity, site, "m1", NOW, **more)


def channels(**more: Any) -> dict[str, Any]:
    return {"a": {"type": "webhook", "url": "https://hook.example/a"}, **more}


def test_unknown_fields_and_channels_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        NotifySettings.model_validate(
            {"channels": channels(), "routes": [{"channels": ["a"]}], "colour": 1}
        )
    with pytest.raises(ValueError, match=r"routes\[0\].channels: no channel 'b' \(channels: a\)"):
        NotifySettings.model_validate({"channels": channels(), "routes": [{"channels": ["b"]}]})
    with pytest.raises(ValueError, match="unknown time zone"):
        NotifySettings.model_validate(
            {"channels": channels(), "routes": [{"channels": ["a"]}], "timezone": "Mars/Base"}
        )
    with pytest.raises(ValueError, match="username and password go together"):
        NotifySettings.model_validate(
            {
                "channels": {
                    "m": {
                        "type": "email",
                        "host": "h",
                        "sender": "a@b",
                        "to": ["c@d"],
                        "username": "u",
                    }
                },
                "routes": [{"channels": ["m"]}],
            }
        )


def test_a_bad_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    from collector.config import CollectorConfig  # noqa: PLC0415

    url = f"ftp://oapi.example/robot/send?access_token={TOKEN}"
    config = {
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "notify": {
            "channels": {"d": {"type": "dingtalk", "url": url}},
            "routes": [{"channels": ["d"]}],
        },
    }
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(
        ConfigError, match=r"notify.channels.d.dingtalk.url: must be an http"
    ) as caught:
        load_model(path, CollectorConfig, {})
    assert TOKEN not in str(caught.value)


def test_secrets_come_from_the_environment_and_check_never_shows_them(tmp_path: Path) -> None:
    config = {
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "notify": {
            "channels": {
                "ding": {
                    "type": "dingtalk",
                    "url": "https://oapi.dingtalk.com/robot/send?access_token=${DING_TOKEN}",
                    "secret": "${DING_SECRET}",
                },
                "mail": {
                    "type": "email",
                    "host": "smtp.example",
                    "username": "alerts",
                    "password": "${SMTP_PASSWORD}",
                    "sender": "alerts@plant.example",
                    "to": ["ops@plant.example"],
                },
            },
            "routes": [{"channels": ["ding", "mail"], "min_severity": "warning"}],
        },
    }
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    environ = {"DING_TOKEN": TOKEN, "DING_SECRET": SECRET, "SMTP_PASSWORD": "pw-9f8e"}
    from collector.config import CollectorConfig  # noqa: PLC0415

    loaded, _ = load_model(path, CollectorConfig, environ)
    assert loaded.notify is not None
    ding = loaded.notify.channels["ding"]
    assert ding.type == "dingtalk" and ding.secret is not None
    assert ding.secret.get_secret_value() == SECRET
    assert ding.url.get_secret_value().endswith(TOKEN)
    for name, value in environ.items():
        import os  # noqa: PLC0415

        os.environ[name] = value
    try:
        report = check_report(path)
    finally:
        for name in environ:
            del os.environ[name]
    assert "notify:" in report and "ding:" in report
    for value in environ.values():
        assert value not in report


def test_a_config_error_names_where() -> None:
    with pytest.raises(ValueError, match=r"channels.a.webhook.timeout"):
        NotifySettings.model_validate(
            {
                "channels": {"a": {"type": "webhook", "url": "https://h/", "timeout": 0}},
                "routes": [{"channels": ["a"]}],
            }
        )


times = st.times()


@given(times, times, times)
def test_quiet_hours_are_the_span_from_start_to_end_across_midnight(
    start: time, end: time, now: time
) -> None:
    quiet = QuietHours(start=start, end=end)
    inside = in_quiet_hours(quiet, now)
    if start == end:
        assert not inside
    elif start < end:
        assert inside == (start <= now < end)
    else:  # across midnight: the complement of [end, start)
        assert inside == (not end <= now < start)


def test_routes_by_site_severity_and_action_with_quiet_hours_in_local_time() -> None:
    routes = [
        Route(
            sites=["s1"],
            min_severity=Severity.WARNING,
            channels=["day"],
            quiet_hours=QuietHours(start=time(22), end=time(7)),
        ),
        Route(min_severity=Severity.CRITICAL, channels=["pager", "day"]),
        Route(actions=[Action.ACKNOWLEDGED], channels=["log"]),
    ]
    assert channels_for(routes, notice(), NOW, SHANGHAI) == ([], ["day"])  # 22:30 there
    assert channels_for(routes, notice(), NOW, UTC) == (["day"], [])  # 14:30 in UTC
    assert channels_for(routes, notice(Severity.CRITICAL), NOW, SHANGHAI) == (["day", "pager"], [])
    assert channels_for(routes, notice(Severity.INFO), NOW, SHANGHAI) == ([], [])
    assert channels_for(routes, notice(site="s2"), NOW, SHANGHAI) == ([], [])
    ack = Notice(Action.ACKNOWLEDGED, AlertKind.OFFLINE, Severity.INFO, "s2", "m1", NOW)
    assert channels_for(routes, ack, NOW, SHANGHAI) == (["log"], [])


def test_messages_say_what_where_and_when_in_the_sites_time() -> None:
    n = notice(
        alert_id=3,
        value=330.0,
        threshold=300.0,
        unit="s",
        since=NOW - timedelta(minutes=5),
        detail="meter m1 (agent gw): no reading",
    )
    assert message.subject(n) == "[WARNING] GreenGauge s1/m1: offline raised"
    assert message.lines(n, SHANGHAI) == [
        "value 330 s, threshold 300 s",
        "meter m1 (agent gw): no reading",
        "condition since 2026-11-24 22:25:00 CST",
        "raised at 2026-11-24 22:30:00 CST",
        "alert id 3",
    ]
    md = message.markdown(n, SHANGHAI)
    assert md.startswith("### [WARNING]") and "> raised at 2026-11-24 22:30:00 CST" in md


def test_redacted_turns_enums_into_their_plain_values() -> None:
    """`check` dumps every section as YAML: an enum setting (email security, severities)
    must come out as its value (safe_dump refused the enum object)."""
    from collector.notify.settings import Security  # noqa: PLC0415
    from greengauge.common.secrets import redacted  # noqa: PLC0415

    route = Route(channels=["a"], min_severity=Severity.CRITICAL)
    dumped = yaml.safe_dump({"security": redacted(Security.SSL), "route": redacted(route)})
    assert "security: ssl" in dumped and "min_severity: critical" in dumped
    assert redacted(Security.SSL, "password") == "********"
