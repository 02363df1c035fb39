"""`energy-agent run`: pollers for every meter feeding one publisher."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from agent.config import load_config
from agent.logs import fields
from agent.modbus.connection import TcpConnection
from agent.outbox import Limits, Outbox
from agent.poller import MeterPoller
from agent.publisher import OUTBOX_FILE, Publisher

log = logging.getLogger(__name__)


async def run_agent(config_path: Path) -> None:
    setup = load_config(config_path)
    config = setup.config
    limits = config.outbox
    outbox = Outbox(
        config.state_dir / OUTBOX_FILE,
        Limits(limits.max_batches, round(limits.max_megabytes * 1024 * 1024), limits.max_age),
    )
    publisher = Publisher(config, outbox)
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
    # SIGTERM (systemd, docker stop) stops as Ctrl-C does: the publisher commits what
    # it holds to the outbox and writes its counters before the process exits.
    main = asyncio.current_task()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        if main is not None:
            main.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publisher.run())
            for poller in pollers:
                tasks.create_task(poller.run())
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
        log.info("agent stopped by SIGTERM")
    finally:
        for connection in connections.values():
            connection.close()
        outbox.close()
