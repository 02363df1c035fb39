"""`energy-collector platform export | upload | resend`: the provincial platform's indicators
from the accounting database. Exit status: 0 done, 1 some upload not taken by the
platform (each recorded), 2 a usage, config or database error.

Imports only argparse until a command runs: `energy-collector --help` stays fast."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.accounting.db import AccountingDB
    from collector.config import CollectorConfig
    from collector.plant import SiteConfig
    from collector.platform.indicators import Span
    from collector.platform.record import Record
    from collector.platform.uploader import Outcome, Uploader

PROGRAM = "energy-collector"


def _period_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    parser.add_argument("--site", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--day", help="YYYY-MM-DD, in the site's time zone")
    which.add_argument("--month", help="YYYY-MM, in the site's time zone")
    which.add_argument(
        "--slot", help="start of a real-time slot, ISO 8601 (without offset: site time)"
    )


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    platform = commands.add_parser(
        "platform",
        help="the provincial energy online-monitoring platform: export, upload, resend",
        description="Indicators for the provincial energy online-monitoring platform "
        "(重点用能单位能耗在线监测系统) from the accounting database. Exit status: 0 done, "
        "1 an upload the platform did not take (recorded), 2 a usage, config or database error.",
    )
    actions = platform.add_subparsers(dest="platform_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="a slot's, day's or month's indicators, to stdout")
    _period_options(export)
    export.add_argument("--format", choices=["json", "csv"], default="json")
    upload = actions.add_parser("upload", help="compute a period's indicators and upload them")
    _period_options(upload)
    resend = actions.add_parser(
        "resend",
        help="compute again and upload every period recorded in a time range",
        description="Every period whose upload is recorded as starting in [--from, --to) is "
        "computed again from the accounting database (late readings included) and uploaded.",
    )
    resend.add_argument("--config", type=Path, required=True, help="collector config file (YAML)")
    resend.add_argument("--site", required=True)
    resend.add_argument(
        "--from", dest="start", required=True, help="YYYY-MM-DD or ISO 8601 (site time)"
    )
    resend.add_argument(
        "--to", dest="end", required=True, help="YYYY-MM-DD or ISO 8601 (site time)"
    )
    resend.add_argument(
        "--only-failed", action="store_true", help="only the periods the platform did not take"
    )
    for action in actions.choices.values():
        # SUPPRESS: left unset here, a --lang given before the action is kept
        action.add_argument("--lang", default=argparse.SUPPRESS, help="en or zh-CN")


class UsageError(ValueError):
    """A bad argument: exit status 2."""


def _fail(text: str) -> int:
    print(f"{PROGRAM}: {text}", file=sys.stderr)
    return 2


def site_time(text: str, site: SiteConfig, option: str) -> datetime:
    """A date (its local midnight) or an ISO 8601 time (without offset: site time)."""
    from greengauge.common.i18n import _  # noqa: PLC0415

    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), site.tz)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            _("{option} {text!r}: give YYYY-MM-DD or an ISO 8601 time").format(
                option=option, text=text
            )
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=site.tz)


def _span(site: SiteConfig, args: argparse.Namespace, slot_minutes: int) -> Span:
    from collector.platform.indicators import (  # noqa: PLC0415
        day_span,
        month_span,
        parse_day,
        slot_span,
    )

    if args.day is not None:
        return day_span(site, parse_day(args.day))
    if args.month is not None:
        return month_span(site, args.month)
    return slot_span(site, site_time(args.slot, site, "--slot"), slot_minutes)


def _checked(config: CollectorConfig, args: argparse.Namespace) -> tuple[SiteConfig, Path]:
    """The site and the accounting database's path; UsageError naming what is wrong."""
    from collector.accounting.db import FILE  # noqa: PLC0415
    from greengauge.common.i18n import _  # noqa: PLC0415

    if config.accounting is None:
        raise UsageError(_("the config has no `accounting` section"))
    site = config.accounting.site(args.site)
    if site is None:
        raise UsageError(
            _("--site: {site!r} is not in the plant model: {sites}").format(
                site=args.site, sites=[s.id for s in config.accounting.sites]
            )
        )
    if args.platform_command != "export" and (
        config.platform is None or args.site not in config.platform.sites
    ):
        raise UsageError(
            _("--site: {site!r} has no `platform.sites` entry in the config").format(site=args.site)
        )
    path = config.data_dir / FILE
    if not path.exists():
        raise UsageError(_("no accounting database at {path}").format(path=path))
    return site, path


Command = Callable[["CollectorConfig", "AccountingDB", "SiteConfig", argparse.Namespace], int]


def run(config: CollectorConfig, args: argparse.Namespace) -> int:
    from collector.accounting.db import AccountingDB  # noqa: PLC0415
    from collector.platform.indicators import PeriodError  # noqa: PLC0415
    from greengauge.common.i18n import _  # noqa: PLC0415

    commands: dict[str, Command] = {"export": _export, "upload": _upload, "resend": _resend}
    try:
        site, path = _checked(config, args)
        db = AccountingDB(path)
    except UsageError as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _fail(_("cannot open {path}: {error}").format(path=path, error=exc))
    try:
        return commands[args.platform_command](config, db, site, args)
    except (PeriodError, UsageError) as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _fail(_("database error: {error}").format(error=exc))
    finally:
        db.close()


def _export(
    config: CollectorConfig, db: AccountingDB, site: SiteConfig, args: argparse.Namespace
) -> int:
    from datetime import UTC  # noqa: PLC0415

    from collector.platform.export import render  # noqa: PLC0415
    from collector.platform.indicators import Codes, compute  # noqa: PLC0415

    assert config.accounting is not None
    given = None if config.platform is None else config.platform.sites.get(site.id)
    slot = 15 if config.platform is None else config.platform.slot_minutes
    upload = compute(
        config.accounting,
        db,
        site.id,
        _span(site, args, slot),
        codes=Codes() if given is None else given.codes(),
        now=datetime.now(UTC),
        slot_minutes=slot,
        output_value=None if given is None else given.output_value,
    )
    sys.stdout.write(render(upload, args.format))
    if args.format == "json":
        sys.stdout.write("\n")
    return 0


def _uploader(config: CollectorConfig, db: AccountingDB) -> tuple[Uploader, Record]:
    from collector.platform.record import FILE, Record  # noqa: PLC0415
    from collector.platform.transport import open_transport  # noqa: PLC0415
    from collector.platform.uploader import Uploader  # noqa: PLC0415

    assert config.platform is not None and config.accounting is not None
    try:
        transport = open_transport(config.platform.transport)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    record = Record(config.data_dir / FILE)
    return Uploader(config.accounting, config.platform, db, record, transport), record


def _print(outcomes: list[Outcome]) -> int:
    from greengauge.common.i18n import _  # noqa: PLC0415

    for o in outcomes:
        status = _("taken") if o.ok else _("not taken")
        print(
            _("{site} {period} {label}: {status} after {attempts} attempt(s): {answer}").format(
                site=o.site,
                period=o.period,
                label=o.label,
                status=status,
                attempts=o.attempts,
                answer=o.answer[:200],
            )
        )
    return 0 if all(o.ok for o in outcomes) else 1


def _upload(
    config: CollectorConfig, db: AccountingDB, site: SiteConfig, args: argparse.Namespace
) -> int:
    assert config.platform is not None
    uploader, record = _uploader(config, db)
    try:
        return _print([uploader.upload(site.id, _span(site, args, config.platform.slot_minutes))])
    finally:
        record.close()


def _resend(
    config: CollectorConfig, db: AccountingDB, site: SiteConfig, args: argparse.Namespace
) -> int:
    from greengauge.common.i18n import _  # noqa: PLC0415

    start = site_time(args.start, site, "--from")
    end = site_time(args.end, site, "--to")
    if not end > start:
        raise UsageError(_("--to must be after --from"))
    uploader, record = _uploader(config, db)
    try:
        outcomes = uploader.resend(site.id, start, end, args.only_failed)
    finally:
        record.close()
    if not outcomes:
        print(_("nothing recorded for {site} in that range").format(site=site.id))
    return _print(outcomes)
