"""Alerts reach people from a running collector, through real servers.

simulator -> energy-agent -> mosquitto -> energy-collector (`notify` and `alert_rules`
configured) -> a local webhook, a DingTalk-style robot that checks the signature as
DingTalk does, and aiosmtpd. A trickle of MES output raises the line's intensity alert;
stopping the agent (its retained status stays "online" but grows old) raises a
gateway-offline alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.publish
import pytest
import yaml
from notify_receivers import HttpReceiver, Received, SmtpReceiver
from processes import running, simulated_meters, wait_for
from servers import Mosquitto, free_port
from test_accounting_mes_alerts_e2e import SITE, TIMEOUT, UNIT, configs, output

from greengauge.contract import production_topic

DING_SECRET = "SECe2e-0123456789"  # noqa: S105 - a test secret

pytestmark = pytest.mark.e2e


def add_notify(collector_yaml: Path, hook: HttpReceiver, smtp: SmtpReceiver) -> None:
    config: dict[str, Any] = yaml.safe_load(collector_yaml.read_text())
    config["api"] = {"listen": f"127.0.0.1:{free_port()}"}
    config["notify"] = {
        "channels": {
            "hook": {"type": "webhook", "url": hook.url + "/hook", "secret": "hook-secret-e2e"},
            "ding": {
                "type": "dingtalk",
                "url": hook.url + "/dingtalk/robot/send?access_token=t0k",
                "secret": DING_SECRET,
            },
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "sender": "greengauge@plant.example",
                "to": ["shift@plant.example"],
            },
        },
        "routes": [{"channels": ["hook", "ding", "mail"]}],
        "retry_start": 0.2,
    }
    config["alert_rules"] = {"every": 0.5, "agents_offline": {"after": 3}}
    collector_yaml.write_text(yaml.safe_dump(config, sort_keys=False))


def status_every_second(agent_yaml: Path) -> None:
    config: dict[str, Any] = yaml.safe_load(agent_yaml.read_text())
    config["status_interval"] = 1
    agent_yaml.write_text(yaml.safe_dump(config, sort_keys=False))


def bodies(hook: HttpReceiver, path: str) -> list[dict[str, Any]]:
    found: list[Received] = [r for r in list(hook.received) if r.path.startswith(path)]
    return [r.json() for r in found]


def test_a_running_collector_notifies_intensity_and_offline_alerts(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with (
        simulated_meters(tmp_path, "schneider_iem3255", str(UNIT), hold=False) as (port, _),
        HttpReceiver(dingtalk_secret=DING_SECRET) as hook,
        SmtpReceiver() as smtp,
    ):
        agent_yaml, collector_yaml = configs(tmp_path, port, mosquitto)
        add_notify(collector_yaml, hook, smtp)
        status_every_second(agent_yaml)
        args = ["run", "--config", str(collector_yaml)]
        with running("energy-collector", args, tmp_path / "collector.log") as collector:
            with running("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "a.log"):
                wait_for(lambda: "subscribed" in collector.output(), TIMEOUT, "the subscriptions")
                now = datetime.now(UTC)
                paho.mqtt.publish.single(
                    production_topic(SITE),
                    output(1, now - timedelta(minutes=1), now),
                    qos=1,
                    port=mosquitto.port,
                )

                def raised() -> list[dict[str, Any]]:
                    return [b for b in bodies(hook, "/hook") if b["kind"] == "intensity"]

                [alert] = wait_for(raised, TIMEOUT, "the intensity alert at the webhook")
                assert (alert["action"], alert["site"], alert["subject"]) == (
                    "raised",
                    SITE,
                    "line-1",
                )
                assert alert["threshold"] == pytest.approx(0.002)
                assert alert["value"] > 0.002 and alert["unit"] == "kgce/pieces"
            # the agent stopped cleanly (no last will): its "online" status grows old
            offline = wait_for(
                lambda: [b for b in bodies(hook, "/hook") if b["kind"] == "offline"],
                TIMEOUT,
                "the gateway-offline alert at the webhook",
            )
            assert (offline[0]["action"], offline[0]["subject"]) == ("raised", "gw-mes")
            assert offline[0]["severity"] == "critical"
            wait_for(lambda: len(smtp.messages) >= 2, TIMEOUT, "both alerts by mail")
            wait_for(lambda: len(bodies(hook, "/dingtalk")) >= 2, TIMEOUT, "both at DingTalk")
            collector.assert_running()
        log = (tmp_path / "collector.log").read_text()
    subjects = sorted(str(m["Subject"]) for _, m in smtp.messages)
    assert subjects[:2] == [
        f"[CRITICAL] GreenGauge {SITE}/gw-mes: offline raised",
        f"[WARNING] GreenGauge {SITE}/line-1: intensity above baseline raised",
    ]
    # every DingTalk request verified (else the robot answers 310000 and it is given up)
    assert "gave up" not in log and "310000" not in log
    assert DING_SECRET not in log and "hook-secret-e2e" not in log and "t0k" not in log
