"""`energy-agent`: run the agent, and tools for integrators."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.configfile import ConfigError
from agent.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energy-agent",
        description="GreenGauge edge agent: polls Modbus meters, publishes readings over MQTT.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="poll the configured meters and publish readings")
    run.add_argument("--config", type=Path, required=True, help="agent config file (YAML)")

    simulate = commands.add_parser("simulate", help="serve simulated meters over Modbus TCP or RTU")
    simulate.add_argument("--profile", required=True, help="built-in profile name or profile file")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=5020)
    simulate.add_argument(
        "--unit-ids", default="1", help="unit ids to answer, e.g. 1-6 or 1,3,5 (default 1)"
    )
    simulate.add_argument(
        "--hold", action="store_true", help="freeze the values (for tests and commissioning)"
    )
    simulate.add_argument(
        "--dump", type=Path, help="write the values served, per unit id, to this JSON file"
    )
    simulate.add_argument(
        "--framer",
        choices=["tcp", "rtu"],
        default="tcp",
        help="on TCP: Modbus TCP (default), or RTU frames over TCP like a serial converter",
    )
    simulate.add_argument(
        "--serial", metavar="DEVICE", help="serve RTU on this serial device instead of TCP"
    )
    simulate.add_argument("--baud", type=int, default=9600, help="with --serial (default 9600)")
    simulate.add_argument(
        "--parity", choices=["none", "even", "odd"], default="none", help="with --serial"
    )
    simulate.add_argument("--stop-bits", type=int, choices=[1, 2], default=1, help="with --serial")
    simulate.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="UNIT:MODE",
        help="play a fault for a unit id: timeout, drop, garbage, short, nan, or "
        "exception=LOW-HIGH (registers refused); repeatable; SIGUSR1 toggles them",
    )
    simulate.add_argument(
        "--faults-off", action="store_true", help="start with the faults off (SIGUSR1: on)"
    )
    check = commands.add_parser(
        "check", help="validate a config and the profiles it uses, without polling"
    )
    check.add_argument("--config", type=Path, required=True, help="agent config file (YAML)")

    commands.add_parser("profiles", help="list the built-in meter profiles")
    commands.add_parser("schema", help="print the JSON schema of the config file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        if args.command == "run":
            from agent.runner import run_agent  # noqa: PLC0415 - keep tool start-up light

            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(run_agent(args.config))
        elif args.command == "check":
            from agent.inspect import check_report  # noqa: PLC0415

            print(check_report(args.config))
        elif args.command == "profiles":
            from agent.inspect import profiles_report  # noqa: PLC0415

            print(profiles_report())
        elif args.command == "schema":
            from agent.inspect import config_schema  # noqa: PLC0415

            print(config_schema())
        elif args.command == "simulate":
            from agent.profiles import load_profile  # noqa: PLC0415
            from agent.simulator.faults import parse_fault  # noqa: PLC0415
            from agent.simulator.server import SerialLine, parse_unit_ids, serve  # noqa: PLC0415

            profile = load_profile(args.profile, Path.cwd())
            unit_ids = parse_unit_ids(args.unit_ids)
            faults = [parse_fault(text) for text in args.fault]
            serial = (
                SerialLine(args.serial, args.baud, args.parity[0].upper(), args.stop_bits)
                if args.serial
                else None
            )
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(
                    serve(
                        profile,
                        args.host,
                        args.port,
                        unit_ids,
                        args.hold,
                        args.dump,
                        serial=serial,
                        rtu=args.framer == "rtu",
                        faults=faults,
                        faults_active=not args.faults_off,
                    )
                )
    except ConfigError as exc:
        print(f"energy-agent: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"energy-agent: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
