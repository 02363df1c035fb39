"""`energy-agent run`: pollers for every meter feeding one publisher."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import AgentConfig, AgentSetup, BusKey, load_config
from agent.configfile import ConfigError
from agent.files import open_state
from agent.logs import fields
from agent.modbus.bus import Bus
from agent.outbox import Limits, Outbox
from agent.poller import MeterPoller
from agent.publisher import OUTBOX_FILE, Publisher
from agent.secrets import redact_url, tls_problems
from agent.wire import MeterHealth

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 3.0
"""seconds a stopping agent spends sending what its outbox holds"""


class MeterHealthView(Mapping[str, MeterHealth]):
    """Every meter's health, taken from its poller when asked."""

    def __init__(self, pollers: Mapping[str, MeterPoller]) -> None:
        self._pollers = pollers

    def __getitem__(self, meter: str) -> MeterHealth:
        return self._pollers[meter].health()

    def __iter__(self) -> Iterator[str]:
        return iter(self._pollers)

    def __len__(self) -> int:
        return len(self._pollers)


def _metrics(
    config: AgentConfig, publisher: Publisher, outbox: Outbox, health: Mapping[str, MeterHealth]
) -> AgentMetrics | None:
    if not config.metrics.listen:
        return None
    # prometheus_client only when metrics are on: it costs a small gateway ~1.5 MiB.
    from agent.metrics import AgentMetrics  # noqa: PLC0415

    return AgentMetrics(publisher, outbox, health)


def _checked_setup(path: Path) -> AgentSetup:
    """The config, with what `check` finds raised here: the systemd unit stops on exit 2."""
    setup = load_config(path)
    problems = tls_problems(setup.config.mqtt, str(path))
    if problems:
        raise ConfigError(problems)
    return setup


async def run_agent(config_path: Path) -> None:
    setup = _checked_setup(config_path)
    config = setup.config
    limits = config.outbox
    path = config.state_dir / OUTBOX_FILE
    sizes = Limits(limits.max_batches, round(limits.max_megabytes * 1024 * 1024), limits.max_age)
    outbox = open_state(path, lambda: Outbox(path, sizes), "outbox")
    pollers: dict[str, MeterPoller] = {}
    # Read when a status or a metrics scrape needs it, not built after every read.
    health = MeterHealthView(pollers)
    publisher = Publisher(config, outbox, health)
    # One bus per serial device or TCP host:port: the unit of concurrency. Meters on one
    # bus take turns; buses are polled side by side.
    buses: dict[BusKey, Bus] = {}
    metrics = _metrics(config, publisher, outbox, health)
    for meter in config.meters:
        key = meter.modbus.bus_key
        if key not in buses:
            buses[key] = Bus.for_settings(meter.modbus)
        meter_bus = buses[key] if metrics is None else metrics.timed(buses[key], meter.id)
        pollers[meter.id] = MeterPoller(
            meter,
            setup.profiles[meter.id],
            meter_bus,
            publisher.submit,
            on_state=publisher.meter_state_changed,
        )
    log.info(
        "agent starting",
        extra=fields(
            site=config.site,
            agent=config.agent_id,
            meters=len(pollers),
            buses=len(buses),
            broker=redact_url(config.mqtt.url),
        ),
    )
    # SIGTERM (systemd, docker stop): the pollers stop, the publisher commits what it
    # holds to the outbox and sends what it can within a short grace, writes its
    # counters, and the process exits; what is left is sent on the next start.
    main = asyncio.current_task()
    terminated = asyncio.Event()
    poller_tasks: list[asyncio.Task[None]] = []

    async def stop() -> None:
        for poller in pollers.values():
            poller.stop()
        for task in poller_tasks:
            task.cancel()
        await publisher.shutdown(SHUTDOWN_GRACE)
        if main is not None:
            main.cancel()

    def terminate() -> None:
        if not terminated.is_set():
            terminated.set()
            stopping.append(asyncio.create_task(stop()))

    stopping: list[asyncio.Task[None]] = []
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    if metrics is not None and config.metrics.listen is not None:
        metrics.start(config.metrics.listen)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publisher.run())
            for poller in pollers.values():
                poller_tasks.append(tasks.create_task(poller.run()))
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
        log.info("agent stopped by SIGTERM")
    finally:
        if metrics is not None:
            metrics.stop()
        for bus in buses.values():
            bus.close()
        outbox.close()
