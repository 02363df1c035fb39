"""An agent that vanishes shows offline at the collector: its last will, made when the
connection opened (so its ts is older than the updates after it), still ends that
connection's statuses. The real agent against mosquitto, killed without a goodbye."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import listening, simulator, wait_until
from processes import running
from servers import Mosquitto
from test_transports_e2e import agent_config

from collector.state.statuses import AgentStatuses, agent_status
from greengauge.contract import AgentState, AgentStatus, Topic, topic

pytestmark = pytest.mark.e2e

SITE, AGENT = "plant-t", "gw-t"
TIMEOUT = 30.0


def parsed(document: dict[str, Any]) -> AgentStatus:
    """A status as the collector parses it off the wire."""
    return agent_status(topic(SITE, AGENT, Topic.STATUS), json.dumps(document).encode())


def test_the_last_will_ends_its_connection_at_the_collector(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with simulator(tmp_path, "tcp", "eastron_sdm630", "1") as sim:
        meters = [
            {
                "id": "m1",
                "profile": "eastron_sdm630",
                "modbus": {"host": "127.0.0.1", "port": sim.port, "unit_id": 1},
            }
        ]
        config = agent_config(tmp_path / "agent.yaml", mosquitto, meters)
        args = ["run", "--config", str(config)]
        with listening(mosquitto, SITE, AGENT) as heard:
            with running("energy-agent", args, tmp_path / "agent-1.log") as agent:
                wait_until(lambda: len(heard.statuses) >= 3, TIMEOUT, "three online statuses")
                agent.stop(signal.SIGKILL)
            wait_until(lambda: heard.statuses[-1]["state"] == "offline", TIMEOUT, "the last will")
            first = [parsed(s) for s in heard.statuses]
            with running("energy-agent", args, tmp_path / "agent-2.log"):
                wait_until(lambda: heard.statuses[-1]["state"] == "online", TIMEOUT, "online again")
            again = parsed(heard.statuses[-1])
    online, will = first[:-1], first[-1]
    assert all(s.state is AgentState.ONLINE for s in online)
    # The will was made when the connection opened: older than the updates after it.
    assert will.ts < online[-1].ts
    # The collector, taking every status in the order the broker delivered them:
    statuses = AgentStatuses()
    for status in first:
        statuses.update(status)
    assert statuses.agents[(SITE, AGENT)].state is AgentState.OFFLINE
    # A later connection is newer than the will, and the will is not newer than it.
    statuses.update(again)
    assert statuses.agents[(SITE, AGENT)] == again
    statuses.update(will)
    assert statuses.agents[(SITE, AGENT)] == again
    # How: every status names its connection, the will too.
    assert will.connected is not None and {s.connected for s in online} == {will.connected}
    assert again.connected is not None and again.connected > will.connected
