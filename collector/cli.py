"""`energy-collector`: ingest readings from every agent into the store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.configfile import ConfigError
from agent.logs import setup_logging
from collector.config import load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energy-collector",
        description="GreenGauge collector: validates agents' readings and stores them.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="subscribe to the agents and store their readings")
    run.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    run.add_argument(
        "--table",
        action="store_true",
        help="show the latest reading of every meter as a live table on stdout",
    )
    check = commands.add_parser(
        "check", help="validate a config (and its TLS files) and summarise it, secrets redacted"
    )
    check.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.command == "check":
        from collector.inspect import check_report  # noqa: PLC0415

        try:
            print(check_report(args.config))
        except ConfigError as exc:
            print(f"energy-collector: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2
    from collector.service import run_collector  # noqa: PLC0415 - keep `--help` fast

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_collector(config, args.table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
