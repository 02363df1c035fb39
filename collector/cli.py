"""`energy-collector`: ingest readings from every agent into the store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from agent.configfile import ConfigError
from agent.files import check_writable, condition
from agent.logs import setup_logging
from collector.config import CollectorConfig, load_config


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
    report = commands.add_parser(
        "report", help="a site's month: energy, kgce, CO2, intensity vs benchmark, demand, TOU"
    )
    report.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    report.add_argument("--site", required=True)
    report.add_argument("--month", required=True, help="YYYY-MM, in the site's time zone")
    report.add_argument("--format", choices=["table", "json", "csv"], default="table")
    report.add_argument("--plot", type=Path, help="also draw intensity per day to this PNG")
    recompute = commands.add_parser(
        "recompute",
        help="account a period of a site again from the readings it used (idempotent)",
    )
    recompute.add_argument(
        "--config", type=Path, required=True, help="collector config file (YAML)"
    )
    recompute.add_argument("--site", required=True)
    recompute.add_argument(
        "--from", dest="start", required=True, help="ISO 8601 time; without offset: site time"
    )
    recompute.add_argument(
        "--to", dest="end", required=True, help="ISO 8601 time; without offset: site time"
    )
    return parser


def _site_time(text: str, tz: tzinfo, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _recompute(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.accounting.db import from_ms  # noqa: PLC0415
    from collector.accounting.engine import Accounting  # noqa: PLC0415
    from collector.service import open_store  # noqa: PLC0415
    from collector.stores import PointStore  # noqa: PLC0415

    if config.accounting is None:
        print("energy-collector: the config has no `accounting` section", file=sys.stderr)
        return 2
    site = config.accounting.site(args.site)
    if site is None:
        print(f"energy-collector: site {args.site!r} is not in the plant model", file=sys.stderr)
        return 2
    try:
        start = _site_time(args.start, site.tz, "--from")
        end = _site_time(args.end, site.tz, "--to")
    except ValueError as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2
    if not end > start:
        print("energy-collector: --to must be after --from", file=sys.stderr)
        return 2
    store = open_store(config)
    accounting = Accounting(
        config.accounting, config.data_dir, store if isinstance(store, PointStore) else None
    )
    accounting.on_close(store.close)
    try:
        spans = accounting.recompute(site.id, start, end)
        written = accounting.flush()  # the replaced minutes, beside the readings
    finally:
        accounting.close()
    for span in spans:
        print(
            f"{site.id} {span.series}: minutes {from_ms(span.first).isoformat()} .. "
            f"{from_ms(span.end).isoformat()} accounted again, {span.changed} changed"
        )
    print(f"{len(spans)} series accounted again, {written} points written to the store")
    return 0


def _report(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.accounting.db import FILE, AccountingDB  # noqa: PLC0415
    from collector.report import ReportError, build, plot, render  # noqa: PLC0415

    if config.accounting is None:
        print("energy-collector: the config has no `accounting` section", file=sys.stderr)
        return 2
    path = config.data_dir / FILE
    if not path.exists():
        print(f"energy-collector: no accounting database at {path}", file=sys.stderr)
        return 2
    try:
        db = AccountingDB(path)
    except sqlite3.Error as exc:  # not set aside as `run` does: a report only reads
        print(f"energy-collector: cannot open {path}: {exc}", file=sys.stderr)
        return 2
    try:
        report = build(config.accounting, db, args.site, args.month)
        print(render(report, args.format))
        if args.plot is not None:
            plot(config.accounting, db, args.site, args.month, args.plot)
    except ReportError as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 0


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
    offline = {"report": _report, "recompute": _recompute}
    if args.command in offline:
        return offline[args.command](config, args)
    try:
        check_writable(config.data_dir)
    except OSError as exc:
        reason = f"{condition(exc)} ({exc.strerror or exc})"
        print(
            f"energy-collector: data_dir {config.data_dir} is not writable: {reason}",
            file=sys.stderr,
        )
        return 2
    from collector.service import run_collector  # noqa: PLC0415 - keep `--help` fast

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_collector(config, args.table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
