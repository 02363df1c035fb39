"""Bench-only: the project's simulator (agent.simulator.server.serve) on several ports in one
process, so a benchmark can give every meter its own Modbus TCP connection (its own bus in
the agent, as Ethernet meters have) without starting hundreds of processes.

    python bench/multisim.py --profile bench/profiles/sdm630_full45.yaml \
        --first-port 26000 --ports 50 --unit-ids 1-2

serves unit ids 1-2 on each of ports 26000..26049. Nothing here changes the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path

from agent.profiles import load_profile
from agent.simulator.server import parse_unit_ids, serve
from greengauge.common.logs import setup_logging


async def _main(args: argparse.Namespace) -> None:
    profile = load_profile(args.profile, Path.cwd())
    unit_ids = parse_unit_ids(args.unit_ids)
    async with asyncio.TaskGroup() as tasks:
        for port in range(args.first_port, args.first_port + args.ports):
            tasks.create_task(serve(profile, "127.0.0.1", port, unit_ids, False, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--first-port", type=int, required=True)
    parser.add_argument("--ports", type=int, default=1)
    parser.add_argument("--unit-ids", default="1")
    args = parser.parse_args()
    setup_logging("WARNING")
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
