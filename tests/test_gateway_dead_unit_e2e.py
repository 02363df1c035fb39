"""One dead unit behind a shared Modbus TCP gateway: the agent keeps its one connection
(transaction ids drop late replies), and the healthy units behind the gateway are read
on every tick. The real agent and simulator, through a proxy that counts connections."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from modbus_plant import listening, simulator, ticks, wait_until
from processes import running
from servers import Mosquitto
from test_transports_e2e import AGENT, SITE, agent_config

pytestmark = pytest.mark.e2e

INTERVAL = 0.5
TIMEOUT = 30.0
HEALTHY = [1, 2, 3]
DEAD = 4


@contextmanager
def counting_proxy(target: int) -> Iterator[tuple[int, list[int]]]:
    """A TCP proxy to 127.0.0.1:`target` on its own loop: (its port, [connections made])."""
    loop = asyncio.new_event_loop()
    connections = [0]
    started = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Event] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def serve() -> None:
        stop.append(asyncio.Event())
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await stop[0].wait()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield port[0], connections
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


def test_a_dead_unit_behind_a_gateway_costs_the_others_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    units = f"1-{DEAD}"
    with (
        simulator(tmp_path, "tcp", "chint_dtsu666", units, ["--fault", f"{DEAD}:timeout"]) as sim,
        counting_proxy(sim.port) as (port, connections),
    ):
        meters: list[dict[str, Any]] = [
            {
                "id": f"unit-{unit}",
                "profile": "chint_dtsu666",
                "interval": INTERVAL,
                "modbus": {"host": "127.0.0.1", "port": port, "unit_id": unit, "timeout": 0.1},
            }
            for unit in [DEAD, *HEALTHY]
        ]
        config = agent_config(tmp_path / "agent.yaml", mosquitto, meters)
        with (
            listening(mosquitto, SITE, AGENT) as heard,
            running("energy-agent", ["run", "--config", str(config)], tmp_path / "a.log") as agent,
        ):
            wait_until(
                lambda: all(len(heard.of(f"unit-{u}")) >= 12 for u in HEALTHY),
                TIMEOUT,
                "twelve readings of every healthy unit",
            )
            wait_until(
                lambda: heard.meter_state(f"unit-{DEAD}") == "offline",
                TIMEOUT,
                "the dead unit offline",
            )
            agent.assert_running()
            status = heard.last_status()
        made = connections[0]
    # Timeouts of the dead unit (each its own) never closed the shared connection.
    assert status is not None and status["meters"][f"unit-{DEAD}"]["errors"]["timeout"] >= 3
    assert made == 1
    for unit in HEALTHY:
        grid = [round(t / INTERVAL) for t in ticks([r["ts"] for r in heard.of(f"unit-{unit}")])]
        # Every tick from the first to the last, none missed.
        assert grid == list(range(grid[0], grid[0] + len(grid))), (unit, grid)
