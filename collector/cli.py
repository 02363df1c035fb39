"""`energy-collector`: ingest readings from every agent into the store."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from collector.config import CollectorConfig, load_config
from collector.platform import cli as platform_cli
from greengauge.common.configfile import ConfigError
from greengauge.common.files import check_writable, condition
from greengauge.common.i18n import _, activate, choose
from greengauge.common.logs import setup_logging

if TYPE_CHECKING:
    from collector.importer import Options


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
        "--drain",
        action="store_true",
        help=(
            "a replica that is going away for good: leave the shared group, store what "
            "the broker queued for this replica id, and exit"
        ),
    )
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
    report.add_argument("--format", choices=["table", "json", "csv", "xlsx"], default="table")
    report.add_argument(
        "--output", type=Path, help="write the report to this file (xlsx: required)"
    )
    report.add_argument(
        "--plot", type=Path, help="also draw intensity, output and CUSUM per day to this PNG"
    )
    swap = commands.add_parser(
        "swap",
        help="record a meter swap or counter reset (kept in the accounting database)",
        description="Record a meter swap or counter reset: the energy across it is computed "
        "from the old meter's final reading and the new one's first. Readings as shown on "
        "the meters (before any `scale`).",
    )
    swap.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    swap.add_argument("--site", required=True)
    swap.add_argument("--meter", required=True)
    swap.add_argument(
        "--at", required=True, help="when the new meter was fitted, ISO 8601 with a zone"
    )
    swap.add_argument(
        "--old-final",
        type=float,
        help="the old meter's final reading (leave out if not read: the energy between its "
        "last reading and the swap is then not measured)",
    )
    swap.add_argument(
        "--new-initial", type=float, required=True, help="the new meter's reading when fitted"
    )
    swap.add_argument("--by", required=True, help="who records it")
    imp = commands.add_parser(
        "import",
        help="load readings from CSV files, or from the readings store, into the accounting",
        description="Load readings from CSV files (README: 'Importing history'): validated "
        "as live readings, stored (a value already stored is kept once) and accounted. "
        "With --from-store instead of files: account the readings of a site and period "
        "that are in the readings store already. "
        "Exit status: 0 every row imported, 1 some rows refused (the others imported), "
        "2 a usage, config, file or store error.",
    )
    imp.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    imp.add_argument("--site", required=True)
    imp.add_argument(
        "--agent",
        help="agent id the readings are stored under (import); with --from-store: "
        "only that agent's readings (default: every agent's)",
    )
    imp.add_argument(
        "--timezone", help="zone of times without an offset, e.g. Asia/Shanghai (else refused)"
    )
    imp.add_argument("--encoding", help="of the files, e.g. gbk (default: UTF-8)")
    imp.add_argument("--refusals", type=Path, help="write every refused row to this file")
    imp.add_argument("--show", type=int, default=20, help="refused rows listed in the summary (20)")
    imp.add_argument(
        "--from-store",
        action="store_true",
        help="account the readings already in the readings store (needs --from and --to)",
    )
    imp.add_argument(
        "--from", dest="start", help="with --from-store: ISO 8601 time; without offset: site time"
    )
    imp.add_argument(
        "--to", dest="end", help="with --from-store: ISO 8601 time; without offset: site time"
    )
    imp.add_argument("files", type=Path, nargs="*", metavar="FILE")
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
    alerts = commands.add_parser("alerts", help="alert delivery (config `notify`)")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    trial = alert_commands.add_parser(
        "test",
        help="send a test message to each configured channel and show what each answered",
        description="Send a test message to each channel in the config's `notify` section, "
        "one attempt each. Exit status: 0 every channel took it, 1 some did not, 2 a config "
        "error.",
    )
    trial.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    trial.add_argument("--channel", help="only this channel")
    platform_cli.add_parser(commands)
    for command in commands.choices.values():
        command.add_argument(
            "--lang",
            help="language of reports and summaries: en or zh-CN (default: GREENGAUGE_LANG, "
            "the config's `language`, then LC_ALL/LANG)",
        )
    return parser


def _alerts(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.notify.trial import table, try_channels  # noqa: PLC0415

    if config.notify is None:
        print("energy-collector: the config has no `notify` section", file=sys.stderr)
        return 2
    if args.channel is not None and args.channel not in config.notify.channels:
        known = ", ".join(config.notify.channels)
        print(
            f"energy-collector: --channel: no channel {args.channel!r} ({known})", file=sys.stderr
        )
        return 2
    sites = config.accounting.sites if config.accounting is not None else []
    rows = try_channels(config.notify, {s.id: s.tz for s in sites}, args.channel)
    print(table(rows))
    return 0 if all(r[2] == "ok" for r in rows) else 1


def _swap(config: CollectorConfig, args: argparse.Namespace) -> int:
    from pydantic import ValidationError  # noqa: PLC0415

    from collector.accounting.db import FILE, AccountingDB  # noqa: PLC0415
    from collector.accounting.swaps import SwapRejected, record_swap  # noqa: PLC0415
    from collector.plant import SwapConfig  # noqa: PLC0415

    if config.accounting is None:
        print("energy-collector: the config has no `accounting` section", file=sys.stderr)
        return 2
    try:
        given = SwapConfig.model_validate(
            {
                "at": args.at,
                "old_final": args.old_final,
                "new_initial": args.new_initial,
                "by": args.by,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"energy-collector: {problems.replace('_', '-')}", file=sys.stderr)
        return 2
    path = config.data_dir / FILE
    try:
        db = AccountingDB(path)
    except sqlite3.Error as exc:
        print(f"energy-collector: cannot open {path}: {exc}", file=sys.stderr)
        return 2
    try:
        notes = record_swap(
            db, config.accounting, args.site, args.meter, given.replacement(), datetime.now(UTC)
        )
    except SwapRejected as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"energy-collector: cannot record it in {path}: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(
        _("recorded: meter {meter} swapped at {at} by {by}").format(
            meter=args.meter, at=given.at.isoformat(), by=given.by
        )
    )
    for note in notes:
        print(f"  {note}")
    return 0


def _site_time(text: str, tz: tzinfo, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _recompute(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.accounting.db import from_ms  # noqa: PLC0415
    from collector.accounting.engine import Accounting  # noqa: PLC0415
    from collector.stores import PointStore  # noqa: PLC0415
    from collector.stores.opening import open_store  # noqa: PLC0415

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
    shown = -1

    def progress(done: int, total: int) -> None:
        nonlocal shown
        percent = done * 100 // total
        if percent // 10 > shown // 10 or done == total:  # a line every 10 %
            shown = percent
            print(
                _("recompute: {done}/{total} series ({percent} %)").format(
                    done=done, total=total, percent=percent
                ),
                file=sys.stderr,
                flush=True,
            )

    try:
        spans = accounting.recompute(site.id, start, end, progress)
        written = accounting.flush()  # the replaced minutes, beside the readings
        written += accounting.restate_all()  # and the intensity points written on them
    finally:
        accounting.close()
    for span in spans:
        print(
            _(
                "{site} {series}: minutes {first} .. {end} accounted again, {changed} changed"
            ).format(
                site=site.id,
                series=span.series,
                first=from_ms(span.first).isoformat(),
                end=from_ms(span.end).isoformat(),
                changed=span.changed,
            )
        )
    print(
        _("{spans} series accounted again, {written} points written to the store").format(
            spans=len(spans), written=written
        )
    )
    return 0


def _report(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.accounting.db import FILE, AccountingDB  # noqa: PLC0415
    from collector.reports.build import build  # noqa: PLC0415
    from collector.reports.period import ReportError  # noqa: PLC0415
    from collector.reports.plot import plot  # noqa: PLC0415
    from collector.reports.render import render  # noqa: PLC0415
    from collector.reports.workbook import render_xlsx  # noqa: PLC0415

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
        if args.format == "xlsx" or args.output is not None:
            if args.output is None:
                print(_("energy-collector: --format xlsx needs --output FILE"), file=sys.stderr)
                return 2
            args.output.write_bytes(
                render_xlsx(report)
                if args.format == "xlsx"
                else render(report, args.format).encode("utf-8")
            )
        else:
            print(render(report, args.format))
        if args.plot is not None:
            plot(report, args.plot)
    except ReportError as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 0


def _import(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.importer import run  # noqa: PLC0415
    from collector.stores import StoreError  # noqa: PLC0415
    from greengauge.contract import check_id  # noqa: PLC0415

    try:
        for option in ("site", "agent"):
            try:
                if getattr(args, option) is not None:
                    check_id(getattr(args, option))
            except ValueError as exc:
                raise ValueError(f"--{option}: {exc}") from None
        if args.show < 0:
            raise ValueError("--show: not negative")
        if args.from_store:
            return _import_store(config, args)
        if args.start is not None or args.end is not None:
            raise ValueError("--from and --to: only with --from-store")
        return asyncio.run(run(config, _csv_options(args), sys.stdout, sys.stderr))
    # HeaderError is a ValueError; sqlite3.Error: the accounting database cannot be opened
    except (ValueError, OSError, StoreError, sqlite3.Error) as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2


def _csv_options(args: argparse.Namespace) -> Options:
    """`import FILE...`'s options; ValueError for a usage error."""
    from collector.importer import Options  # noqa: PLC0415

    if not args.files:
        raise ValueError("give the CSV files to import, or --from-store")
    zone = None
    if args.timezone is not None:
        try:
            zone = ZoneInfo(args.timezone)
        except (KeyError, ValueError, OSError):  # not found, not a key, too long
            raise ValueError(f"--timezone: unknown zone {args.timezone!r}") from None
    encoding = args.encoding or "utf-8-sig"
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"--encoding: unknown encoding {encoding!r}") from None
    for path in args.files:
        if not path.is_file():
            raise ValueError(f"{path}: not a file")
    return Options(
        args.files, args.site, args.agent or "import", zone, encoding, args.refusals, args.show
    )


def _import_store(config: CollectorConfig, args: argparse.Namespace) -> int:
    """`import --from-store`; ValueError for a usage error."""
    from collector import importer_store  # noqa: PLC0415

    given = [
        f"--{name}"
        for name, value in (
            ("timezone", args.timezone),
            ("encoding", args.encoding),
            ("refusals", args.refusals),
        )
        if value is not None
    ]
    if args.files:
        given.insert(0, f"FILE ({args.files[0]})")
    if given:
        raise ValueError(f"--from-store reads no files: leave out {', '.join(given)}")
    if args.start is None or args.end is None:
        raise ValueError("--from-store needs --from and --to (the period to account)")
    site = None if config.accounting is None else config.accounting.site(args.site)
    if site is None:
        raise ValueError(
            f"--site: {args.site!r} is not in the plant model (the config's `accounting`)"
        )
    start = _site_time(args.start, site.tz, "--from")
    end = _site_time(args.end, site.tz, "--to")
    if not end > start:
        raise ValueError("--to must be after --from")
    options = importer_store.StoreOptions(site.id, start, end, args.agent, args.show)
    return asyncio.run(importer_store.run(config, options, sys.stdout, sys.stderr))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    # ConfigError: a bad config file; ValueError: an unsupported --lang or language.
    try:
        if args.command == "check":
            from collector.check import check_report  # noqa: PLC0415

            activate(choose(args.lang))
            print(check_report(args.config))
            return 0
        config = load_config(args.config)
        activate(choose(args.lang, config.language))
    except (ConfigError, ValueError) as exc:
        print(f"energy-collector: {exc}", file=sys.stderr)
        return 2
    # Not the collector's service: they work on the data_dir's files alone.
    offline = {
        "report": _report,
        "swap": _swap,
        "import": _import,
        "recompute": _recompute,
        "alerts": _alerts,
        "platform": platform_cli.run,
    }
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
    return _run(config, args)


def _run(config: CollectorConfig, args: argparse.Namespace) -> int:
    if args.drain and config.ingest.shared_group is None:
        print("energy-collector: --drain is for a replica (ingest.shared_group)", file=sys.stderr)
        return 2
    from collector.app import run_collector  # noqa: PLC0415 - keep `--help` fast
    from collector.ingest import SharedSubscriptionNeedsMqtt5  # noqa: PLC0415

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_collector(config, args.table, args.drain))
    except ExceptionGroup as group:
        refused = group.subgroup(SharedSubscriptionNeedsMqtt5)
        if refused is None:
            raise
        print(f"energy-collector: {_first(refused)}", file=sys.stderr)
        return 2
    return 0


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of a (possibly nested) group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


if __name__ == "__main__":
    sys.exit(main())
