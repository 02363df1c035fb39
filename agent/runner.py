"""`energy-agent run`: pollers for every meter feeding one publisher."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from agent.config import AgentConfig, AgentSetup, BusKey, EventLoop, MeterSettings, load_config
from agent.modbus.transport.bus import Bus
from agent.poller import MeterBus, MeterPoller, PollerBase, StateSink
from agent.publish.outbox import Limits, Outbox
from agent.publish.publisher import OUTBOX_FILE, Publisher
from agent.reading import Read
from greengauge.common.configfile import ConfigError
from greengauge.common.files import open_state
from greengauge.common.logs import fields
from greengauge.common.secrets import redact_url, tls_problems
from greengauge.contract import MeterHealth

if TYPE_CHECKING:
    from agent.dlt645.poller import Dlt645MeterBus
    from agent.dlt645.transport import Dlt645Bus
    from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 3.0
"""seconds a stopping agent spends sending what its outbox holds"""

_Bus = TypeVar("_Bus")


class MeterHealthView(Mapping[str, MeterHealth]):
    """Every meter's health, taken from its poller when asked."""

    def __init__(self, pollers: Mapping[str, PollerBase]) -> None:
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


def _as_is(bus: _Bus, meter: str) -> _Bus:
    return bus


@dataclass(frozen=True, slots=True)
class BusWatch:
    """What wraps each meter's view of its bus: metrics time it, `energy-agent test`
    records it; as it is otherwise."""

    modbus: Callable[[MeterBus, str], MeterBus] = _as_is
    dlt645: Callable[[Dlt645MeterBus, str], Dlt645MeterBus] = _as_is


def _dlt645_poller(
    meter: MeterSettings,
    setup: AgentSetup,
    buses: dict[BusKey, Dlt645Bus],
    deliver: Callable[[Read], None],
    on_state: StateSink | None,
    watch: BusWatch,
) -> PollerBase:
    """A DL/T 645 meter's poller, on the bus of its line (made here if it is the first)."""
    # Only configs with DL/T 645 meters load its code.
    from agent.dlt645.poller import Dlt645Poller  # noqa: PLC0415
    from agent.dlt645.transport import Dlt645Bus  # noqa: PLC0415

    assert meter.dlt645 is not None
    key = meter.dlt645.bus_key
    if key not in buses:
        buses[key] = Dlt645Bus.for_settings(meter.dlt645)
    return Dlt645Poller(
        meter,
        setup.dlt645_profiles[meter.id],
        watch.dlt645(buses[key], meter.id),
        deliver,
        on_state=on_state,
    )


def make_pollers(
    setup: AgentSetup,
    deliver: Callable[[Read], None],
    on_state: StateSink | None,
    watch: BusWatch,
    pollers: dict[str, PollerBase],
) -> list[Bus | Dlt645Bus]:
    """A poller for every meter, into `pollers` (in the config's order); the buses they share."""
    # One bus per serial device or TCP host:port: the unit of concurrency. Meters on one
    # bus take turns; buses are polled side by side.
    buses: dict[BusKey, Bus] = {}
    dlt645_buses: dict[BusKey, Dlt645Bus] = {}
    for meter in setup.config.meters:
        if meter.dlt645 is not None:
            pollers[meter.id] = _dlt645_poller(meter, setup, dlt645_buses, deliver, on_state, watch)
            continue
        assert meter.modbus is not None
        key = meter.modbus.bus_key
        if key not in buses:
            buses[key] = Bus.for_settings(meter.modbus)
        pollers[meter.id] = MeterPoller(
            meter,
            setup.profiles[meter.id],
            watch.modbus(buses[key], meter.id),
            deliver,
            on_state=on_state,
        )
    return [*buses.values(), *dlt645_buses.values()]


def _checked_setup(path: Path) -> AgentSetup:
    """The config, with what `check` finds raised here: the systemd unit stops on exit 2."""
    setup = load_config(path)
    problems = tls_problems(setup.config.mqtt, str(path))
    if problems:
        raise ConfigError(problems)
    return setup


def run_agent(config_path: Path) -> None:
    """Run the agent of a config until SIGTERM, on the event loop the config names."""
    setup = _checked_setup(config_path)
    with asyncio.Runner(loop_factory=_loop_factory(setup.config.event_loop)) as runner:
        runner.run(_serve(setup))


def _loop_factory(kind: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if kind is EventLoop.UVLOOP:
        import uvloop  # noqa: PLC0415 - optional, and 2 MiB only for those who chose it

        return uvloop.new_event_loop
    return None


async def _serve(setup: AgentSetup) -> None:
    config = setup.config
    limits = config.outbox
    path = config.state_dir / OUTBOX_FILE
    sizes = Limits(limits.max_batches, round(limits.max_megabytes * 1024 * 1024), limits.max_age)
    outbox = open_state(path, lambda: Outbox(path, sizes), "outbox")
    pollers: dict[str, PollerBase] = {}
    # Read when a status or a metrics scrape needs it, not built after every read.
    health = MeterHealthView(pollers)
    publisher = Publisher(config, outbox, health)
    metrics = _metrics(config, publisher, outbox, health)
    watch = BusWatch() if metrics is None else BusWatch(metrics.timed, metrics.timed_dlt645)
    buses = make_pollers(setup, publisher.submit, publisher.meter_state_changed, watch, pollers)
    # Parsing and validating the config leaves cyclic garbage (22,000 objects at 500
    # meters) that would wait for a full collection; freed now, before the pollers'
    # first tick, its memory is reused instead of adding to the peak (-0.6 MiB).
    gc.collect()
    log.info(
        "agent starting",
        extra=fields(
            site=config.site,
            agent=config.agent_id,
            meters=len(pollers),
            buses=len(buses),
            broker=redact_url(config.mqtt.url),
            event_loop=config.event_loop.value,
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
        for bus in buses:
            bus.close()
        outbox.close()
