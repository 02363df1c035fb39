"""The agent's floor: CPU of a Modbus TCP client alone, per request.

    .venv/bin/python bench/pymodbus_floor.py [--sets 3000]

Starts bench/multisim.py (bench-only SDM630 profile, one port), then reads the agent's
three blocks (80 + 26 + 16 input registers) of one unit over and over, nothing else: no
decoding, no MQTT, with pymodbus 3.16's AsyncModbusTcpClient and then with the agent's
own client (agent.modbus.transport.tcp.ModbusTcp). This process's CPU seconds (time.process_time)
per request and per block set give the ceiling in values per CPU second that an agent
built on that client has for this profile (45 values per block set; 39 before 2026-11-27).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import yaml
from common import BENCH, VAR, bin_path, child, free_port, machine, save_result, wait_port
from pymodbus.client import AsyncModbusTcpClient

from agent.modbus.transport.tcp import ModbusTcp

BLOCKS = ((0, 80), (200, 26), (342, 16))


async def _pymodbus(port: int, sets: int) -> float:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await client.connect()
    for _ in range(50):  # warm up
        await client.read_input_registers(0, count=80, device_id=1)
    started = time.process_time()
    for _ in range(sets):
        for address, count in BLOCKS:
            response = await client.read_input_registers(address, count=count, device_id=1)
            assert not response.isError()
    cpu = time.process_time() - started
    client.close()
    return cpu


async def _greengauge(port: int, sets: int) -> float:
    client = ModbusTcp("bench", "127.0.0.1", port)
    await client.connect(1.0)
    for _ in range(50):
        await client.read(4, 0, 80, 1, 1.0)
    started = time.process_time()
    for _ in range(sets):
        for address, count in BLOCKS:
            assert len(await client.read(4, address, count, 1, 1.0)) == count
    cpu = time.process_time() - started
    client.close()
    return cpu


CLIENTS = {"pymodbus_async_client": _pymodbus, "greengauge_modbus_tcp_client": _greengauge}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=3000, help="block sets (3 requests each)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    port = free_port()
    work = VAR / "floor" / time.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True)
    profile = BENCH / "profiles" / "sdm630_full45.yaml"
    values = len(yaml.safe_load(profile.read_text())["registers"])
    command = [bin_path("python"), str(BENCH / "multisim.py"), "--profile", str(profile)]
    with child([*command, "--first-port", str(port)], work / "sim.log"):
        wait_port(port, 30)
        for _ in range(args.repeat):
            for name, reads in CLIENTS.items():
                cpu = asyncio.run(reads(port, args.sets))
                requests = 3 * args.sets
                result = {
                    "limit": name,
                    "machine": machine(),
                    "requests": requests,
                    "cpu_ms_per_request": round(1000 * cpu / requests, 4),
                    "cpu_ms_per_block_set_3_requests": round(1000 * cpu / args.sets, 4),
                    "values_per_set": values,
                    "values_per_cpu_s": round(values * args.sets / cpu),
                }
                print(json.dumps(result))
                if not args.no_save:
                    save_result("limits", result)


if __name__ == "__main__":
    main()
