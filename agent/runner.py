"""`energy-agent run`: pollers for every meter feeding one publisher."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from agent.config import load_config
from agent.logs import fields
from agent.modbus.connection import TcpConnection
from agent.poller import MeterPoller
from agent.publisher import Publisher

log = logging.getLogger(__name__)


async def run_agent(config_path: Path) -> None:
    setup = load_config(config_path)
    config = setup.config
    publisher = Publisher(config)
    connections: dict[tuple[str, int], TcpConnection] = {}
    pollers = []
    for meter in config.meters:
        modbus = meter.modbus
        key = (modbus.host, modbus.port)
        if key not in connections:
            connections[key] = TcpConnection(modbus.host, modbus.port, modbus.timeout)
        pollers.append(
            MeterPoller(meter, setup.profiles[meter.id], connections[key], publisher.submit)
        )
    log.info(
        "agent starting",
        extra=fields(
            site=config.site, agent=config.agent_id, meters=len(pollers), broker=config.mqtt.url
        ),
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publisher.run())
            for poller in pollers:
                tasks.create_task(poller.run())
    finally:
        for connection in connections.values():
            connection.close()
