"""`energy-agent`: run the agent, and tools for integrators."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from agent.config import ModbusSettings, SerialSettings
from agent.publish.outbox import OutboxError
from greengauge.common.configfile import ConfigError
from greengauge.common.i18n import activate, choose
from greengauge.common.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energy-agent",
        description="GreenGauge edge agent: polls Modbus meters, publishes readings over MQTT.",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING"],
        help="default INFO for run and simulate, WARNING for the tools",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="poll the configured meters and publish readings")
    run.add_argument("--config", type=Path, required=True, help="agent config file (YAML)")

    simulate = commands.add_parser(
        "simulate", help="serve simulated meters over Modbus TCP or RTU, or DL/T 645"
    )
    simulate.add_argument("--profile", required=True, help="built-in profile name or profile file")
    simulate.add_argument(
        "--protocol",
        choices=["modbus", "dlt645"],
        default="modbus",
        help="dlt645: DL/T 645-2007 on --serial or TCP, unit id N at address N in 12 digits",
    )
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
        help="play a fault for a unit id: timeout, drop, garbage, short, nan, "
        "exception[=LOW-HIGH] (registers refused) or flaky[=LOW-HIGH] (every other read "
        "refused); repeatable; SIGUSR1 toggles them",
    )
    simulate.add_argument(
        "--faults-off", action="store_true", help="start with the faults off (SIGUSR1: on)"
    )
    check = commands.add_parser(
        "check", help="validate a config and the profiles it uses, without polling"
    )
    check.add_argument("--config", type=Path, required=True, help="agent config file (YAML)")

    test = commands.add_parser(
        "test",
        help="read every configured meter once and show the values, publishing nothing "
        "(exit 1 if a meter or register failed)",
    )
    test.add_argument("--config", type=Path, required=True, help="agent config file (YAML)")

    probe = commands.add_parser("probe", help="read one meter once and show every register")
    _modbus_arguments(probe)
    probe.add_argument("--unit-id", type=int, default=1, help="Modbus unit id (default 1)")
    probe.add_argument("--profile", required=True, help="built-in profile name or profile file")
    probe.add_argument(
        "--all-orders",
        action="store_true",
        help="also decode multi-register values in all four byte orders",
    )

    scan = commands.add_parser("scan", help="find the unit ids that answer on a bus")
    _modbus_arguments(scan, timeout=0.3)
    scan.add_argument("--unit-ids", default="1-247", help="e.g. 1-247 (default) or 1,3,10-20")

    address = commands.add_parser(
        "dlt645-address",
        help="read the address of the only DL/T 645 meter on a line (broadcast read address)",
    )
    where = address.add_argument_group("where the meter is (give --host and --port, or --serial)")
    where.add_argument("--host", help="TCP transparent gateway")
    where.add_argument("--port", type=int)
    where.add_argument("--serial", metavar="DEVICE", help="serial line, e.g. /dev/ttyUSB0")
    where.add_argument("--baud", type=int, default=2400, help="default 2400")
    where.add_argument("--parity", choices=["none", "even", "odd"], default="even")
    where.add_argument("--stop-bits", type=int, choices=[1, 2], default=1)
    where.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")

    profiles = commands.add_parser("profiles", help="list the built-in meter profiles")
    profiles.add_argument("--protocol", choices=["modbus", "dlt645"], default="modbus")
    commands.add_parser("schema", help="print the JSON schema of the config file")
    history = commands.add_parser(
        "history",
        help="the simulated meters' past counter readings, as CSV for energy-collector import",
    )
    history.add_argument("--config", type=Path, required=True, help="agent config (YAML)")
    history.add_argument("--days", type=float, default=30.0, help="how far back (30)")
    history.add_argument("--step", type=float, default=300.0, help="seconds between rows (300)")
    history.add_argument("--output", type=Path, required=True, help="the CSV file to write")
    for command in commands.choices.values():
        command.add_argument(
            "--lang",
            help="language of tables and summaries: en or zh-CN (default: GREENGAUGE_LANG, "
            "then LC_ALL/LANG)",
        )
    return parser


def _modbus_arguments(parser: argparse.ArgumentParser, timeout: float = 1.0) -> None:
    where = parser.add_argument_group("where the meter is (give --host or --serial)")
    where.add_argument("--host", help="Modbus TCP meter or gateway")
    where.add_argument("--port", type=int, default=502)
    where.add_argument("--framer", choices=["tcp", "rtu"], default="tcp", help="rtu: RTU over TCP")
    where.add_argument("--serial", metavar="DEVICE", help="serial line, e.g. /dev/ttyUSB0")
    where.add_argument("--baud", type=int, default=9600)
    where.add_argument("--parity", choices=["none", "even", "odd"], default="none")
    where.add_argument("--stop-bits", type=int, choices=[1, 2], default=1)
    where.add_argument("--timeout", type=float, default=timeout, help="seconds per request")


def _modbus_settings(args: argparse.Namespace, unit_id: int = 1) -> ModbusSettings:
    """The settings the command-line options describe; ValueError naming the bad option."""
    data: dict[str, object] = {"unit_id": unit_id, "timeout": args.timeout}
    if args.serial:
        data["serial"] = {
            "device": args.serial,
            "baud": args.baud,
            "parity": args.parity,
            "stop_bits": args.stop_bits,
        }
    if args.host:
        data |= {"host": args.host, "port": args.port, "framer": args.framer}
    try:
        return ModbusSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(f"Modbus options: {problems}") from exc


async def _scan(args: argparse.Namespace) -> str:
    from agent.scan import scan, scan_table  # noqa: PLC0415
    from agent.simulator.server import parse_unit_ids  # noqa: PLC0415

    unit_ids = parse_unit_ids(args.unit_ids)
    settings = _modbus_settings(args, unit_ids[0])
    return scan_table(await scan(settings, unit_ids), settings)


async def _probe(args: argparse.Namespace) -> str:
    """The probe's tables; ReadError when no register could be read."""
    from agent.modbus.errors import ReadError  # noqa: PLC0415
    from agent.probe import probe  # noqa: PLC0415
    from agent.profiles import load_profile  # noqa: PLC0415

    settings = _modbus_settings(args, args.unit_id)
    result = await probe(settings, load_profile(args.profile, Path.cwd()), args.all_orders)
    if result.problem is not None:
        if result.text:
            print(result.text)
        raise ReadError("probe", result.problem)
    return result.text


def _serial_line(args: argparse.Namespace) -> SerialSettings | None:
    if not args.serial:
        return None
    data = {
        "device": args.serial,
        "baud": args.baud,
        "parity": args.parity,
        "stop_bits": args.stop_bits,
    }
    try:
        return SerialSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise ValueError(f"serial options: {problems}") from exc


async def _dlt645_address(args: argparse.Namespace) -> str:
    from agent.dlt645.transport import Dlt645Bus  # noqa: PLC0415

    line = _serial_line(args)
    if (line is None) == (args.host is None) or (args.host is not None and args.port is None):
        raise ValueError("give --serial, or --host and --port (a TCP gateway)")
    bus = Dlt645Bus.for_line(line, args.host, args.port)
    try:
        return await bus.read_address(args.timeout)
    finally:
        bus.close()


def _is_dlt645(args: argparse.Namespace) -> bool:
    return args.command == "dlt645-address" or getattr(args, "protocol", None) == "dlt645"


def _dlt645_command(args: argparse.Namespace) -> int:
    """dlt645-address, and profiles and simulate with --protocol dlt645."""
    from agent.modbus.errors import ReadError  # noqa: PLC0415

    if args.command == "profiles":
        from agent.dlt645.profile import profiles_report  # noqa: PLC0415

        print(profiles_report())
    elif args.command == "simulate":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_simulate_dlt645(args))
    else:
        try:
            print(asyncio.run(_dlt645_address(args)))
        except ReadError as exc:
            print(f"energy-agent: {exc}", file=sys.stderr)
            return 1
    return 0


async def _simulate_dlt645(args: argparse.Namespace) -> None:
    from agent.dlt645.profile import load_dlt645_profile  # noqa: PLC0415
    from agent.simulator.dlt645 import serve_dlt645  # noqa: PLC0415
    from agent.simulator.server import parse_unit_ids  # noqa: PLC0415

    if args.fault or args.framer != "tcp":
        raise ValueError("--fault and --framer are for Modbus, not with --protocol dlt645")
    line = _serial_line(args)
    profile = load_dlt645_profile(args.profile, Path.cwd())
    unit_ids = parse_unit_ids(args.unit_ids)
    await serve_dlt645(profile, args.host, args.port, unit_ids, args.hold, args.dump, serial=line)


def _history(args: argparse.Namespace) -> None:
    """Up to the last whole step before now: the live readings carry on from there."""
    import time  # noqa: PLC0415

    from agent.config import load_config  # noqa: PLC0415
    from agent.simulator.history import COUNTERS, SimulatedMeter, history_csv  # noqa: PLC0415

    setup = load_config(args.config)
    meters = [
        SimulatedMeter(
            m.id,
            m.modbus.unit_id,
            tuple(q for q in COUNTERS if q in {r.quantity for r in setup.profiles[m.id].registers}),
        )
        for m in setup.config.meters
        if m.modbus is not None
    ]
    end = time.time() // args.step * args.step
    args.output.write_text(history_csv(meters, end - args.days * 86_400, end, args.step))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    services = ("run", "simulate")
    setup_logging(args.log_level or ("INFO" if args.command in services else "WARNING"))
    try:
        activate(choose(args.lang))
        if args.command == "run":
            from agent.runner import run_agent  # noqa: PLC0415 - keep tool start-up light

            with contextlib.suppress(KeyboardInterrupt):
                run_agent(args.config)
        elif args.command == "check":
            from agent.check import check_report  # noqa: PLC0415

            print(check_report(args.config))
        elif args.command == "test":
            from agent.commission import commission  # noqa: PLC0415

            tested = asyncio.run(commission(args.config))
            print(tested.report())
            return 0 if tested.ok else 1
        elif args.command in ("probe", "scan"):
            from agent.modbus.errors import ReadError  # noqa: PLC0415

            try:
                print(asyncio.run(_probe(args) if args.command == "probe" else _scan(args)))
            except ReadError as exc:
                print(f"energy-agent: {exc}", file=sys.stderr)
                return 1
        elif _is_dlt645(args):
            return _dlt645_command(args)
        elif args.command == "profiles":
            from agent.check import profiles_report  # noqa: PLC0415

            print(profiles_report())
        elif args.command == "schema":
            from agent.check import config_schema  # noqa: PLC0415

            print(config_schema())
        elif args.command == "history":
            _history(args)
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
    # ConfigError and ValueError: a bad config or argument; OutboxError: state_dir
    # unwritable at start. One line each, not a traceback.
    except (ConfigError, ValueError, OutboxError) as exc:
        print(f"energy-agent: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
