"""Uploads to the provincial platform against a real HTTP server on loopback: retries on
5xx (not on a refusal), the record of what was sent and answered, resend (computed again,
late readings included), a plug-in transport, the schedule, and the CLI's exit codes and
errors. The worked day is test_platform_indicators' (612.4034 kgce on 2026-10-15)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from notify_receivers import HttpReceiver
from processes import write_yaml
from pydantic import ValidationError
from test_platform_indicators import DAY, MIDNIGHT, plant, seeded

from collector.accounting.db import AccountingDB, MinuteRow, ms
from collector.cli import main as collector_main
from collector.config import CollectorConfig
from collector.platform.cli import UsageError, site_time
from collector.platform.indicators import day_span, month_span, slot_span
from collector.platform.record import FILE, Record
from collector.platform.settings import PlatformSettings
from collector.platform.task import PER_CYCLE, due, scheduled
from collector.platform.transport import DeliveryError, open_transport
from collector.platform.uploader import Uploader
from greengauge.common import i18n

UNIT = "91330000MA2XXXXX0X"
NOW = datetime(2026, 10, 17, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    yield
    i18n.activate("en")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as r:
        yield r


def settings(url: str, **extra: Any) -> PlatformSettings:
    return PlatformSettings.model_validate(
        {
            "sites": {"p1": {"unit_code": UNIT, "indicators": {"total_energy": "T-001"}}},
            "transport": {"kind": "https_json", "url": url + "/upload", "token": "s3cret"},
            "attempts": 3,
            **extra,
        }
    )


class Harness:
    def __init__(self, tmp_path: Path, url: str, **extra: Any) -> None:
        self.db = seeded(tmp_path / "accounting.sqlite")
        self.record = Record(tmp_path / FILE)
        self.delays: list[float] = []
        self.config = plant()
        self.settings = settings(url, **extra)
        self.uploader = Uploader(
            self.config,
            self.settings,
            self.db,
            self.record,
            open_transport(self.settings.transport),
            sleep=self.delays.append,
            clock=lambda: NOW,
        )

    @property
    def site(self) -> Any:
        return self.config.sites[0]


@pytest.fixture
def harness(tmp_path: Path, receiver: HttpReceiver) -> Iterator[Harness]:
    h = Harness(tmp_path, receiver.url)
    yield h
    h.record.close()
    h.db.close()


def test_retries_on_5xx_then_records_the_answer(harness: Harness, receiver: HttpReceiver) -> None:
    receiver.script = [(503, b"busy"), (500, b"oops"), (200, b'{"code":0,"msg":"received"}')]
    outcome = harness.uploader.upload("p1", day_span(harness.site, DAY))
    assert (outcome.ok, outcome.attempts) == (True, 3)
    assert outcome.answer == '{"code":0,"msg":"received"}'
    assert len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1  # the same upload each time
    sent = receiver.received[-1]
    assert sent.path == "/upload"
    assert sent.headers["authorization"] == "Bearer s3cret"
    assert sent.headers["x-greengauge-period"] == "day:2026-10-15"
    body = sent.json()
    assert body["unit_code"] == UNIT
    total = next(x for x in body["indicators"] if x["key"] == "total_energy")
    assert total["value"] == pytest.approx(612.4034) and total["code"] == "T-001"
    # doubling backoff from 2 s, each scaled by 50-100 %
    assert len(harness.delays) == 2
    assert 1.0 <= harness.delays[0] <= 2.0 and 2.0 <= harness.delays[1] <= 4.0
    (row,) = harness.record.latest("p1", ms(MIDNIGHT), ms(MIDNIGHT + timedelta(days=1)))
    assert (row.period, row.label, row.ok, row.attempts) == ("day", "2026-10-15", True, 3)
    assert row.answer == '{"code":0,"msg":"received"}'
    assert row.transport == "https_json"
    assert row.sent() == body


def test_a_refusal_is_not_retried(harness: Harness, receiver: HttpReceiver) -> None:
    receiver.script = [(400, b'{"code":17,"msg":"bad unit"}')]
    outcome = harness.uploader.upload("p1", day_span(harness.site, DAY))
    assert (outcome.ok, outcome.attempts) == (False, 1)
    assert outcome.answer == "HTTP 400 Bad Request"
    assert len(receiver.received) == 1 and harness.delays == []
    (row,) = harness.record.latest("p1", 0, ms(NOW))
    assert (row.ok, row.answer) == (False, "HTTP 400 Bad Request")


def test_attempts_run_out_and_the_failure_is_recorded(
    harness: Harness, receiver: HttpReceiver
) -> None:
    receiver.script = [(503, b"busy")] * 3
    outcome = harness.uploader.upload("p1", day_span(harness.site, DAY))
    assert (outcome.ok, outcome.attempts) == (False, 3)
    assert len(receiver.received) == 3
    (row,) = harness.record.latest("p1", 0, ms(NOW))
    assert row.ok is False and row.answer == "HTTP 503 Service Unavailable"


def test_nothing_listening_is_a_recorded_failure(tmp_path: Path) -> None:
    with HttpReceiver() as gone:
        url = gone.url
    h = Harness(tmp_path, url)
    outcome = h.uploader.upload("p1", day_span(h.site, DAY))
    assert outcome.ok is False and outcome.attempts == 3
    assert outcome.answer.startswith("cannot connect")
    assert h.record.latest("p1", 0, ms(NOW))[0].ok is False


def late_reading(db: AccountingDB) -> None:
    """A late gas minute at 23:59:30 local... its row: 1 m3 more, 1.2143 kgce."""
    with db.transaction() as conn:
        AccountingDB.add_minutes(
            conn,
            "p1",
            [MinuteRow("gas", ms(MIDNIGHT + timedelta(hours=23, minutes=59)), 1.0, 1.2143, 0.0, 0)],
        )


def test_resend_computes_again_and_only_the_failed(
    harness: Harness, receiver: HttpReceiver
) -> None:
    slot = slot_span(harness.site, MIDNIGHT + timedelta(hours=9), 15)
    receiver.script = [(503, b"busy")] * 3
    harness.uploader.upload("p1", day_span(harness.site, DAY))  # not taken
    harness.uploader.upload("p1", slot)  # taken
    late_reading(harness.db)
    receiver.received.clear()
    outcomes = harness.uploader.resend(
        "p1", MIDNIGHT, MIDNIGHT + timedelta(days=1), only_failed=True
    )
    assert [(o.period, o.label, o.ok) for o in outcomes] == [("day", "2026-10-15", True)]
    (sent,) = receiver.received
    total = next(x for x in sent.json()["indicators"] if x["key"] == "total_energy")
    assert total["value"] == pytest.approx(612.4034 + 1.2143)
    latest = {
        u.period: u for u in harness.record.latest("p1", ms(MIDNIGHT), ms(MIDNIGHT) + 86_400_000)
    }
    assert latest["day"].ok and latest["slot"].ok
    # all of them, taken or not
    receiver.received.clear()
    again = harness.uploader.resend("p1", MIDNIGHT, MIDNIGHT + timedelta(days=1))
    assert sorted(o.period for o in again) == ["day", "slot"]
    assert len(receiver.received) == 2
    # every upload kept, read back from the file: 3 of the day, 2 of the slot
    with contextlib.closing(sqlite3.connect(harness.record.path)) as conn:
        kept = conn.execute("SELECT period, count(*) FROM upload GROUP BY period").fetchall()
    assert sorted(kept) == [("day", 3), ("slot", 2)]


def test_uploaded_completeness_and_consistency_come_from_the_record(
    harness: Harness, receiver: HttpReceiver
) -> None:
    for k in range(3):
        harness.uploader.upload(
            "p1", slot_span(harness.site, MIDNIGHT + timedelta(minutes=15 * k), 15)
        )
    harness.uploader.upload("p1", day_span(harness.site, DAY))
    day = harness.uploader.build("p1", day_span(harness.site, DAY))
    assert day["quality"]["slots"]["slots_uploaded"] == 3
    assert day["quality"]["slots"]["uploaded_completeness"] == pytest.approx(3 / 96)
    assert day["quality"]["slots"]["uploaded_meets"] is False
    late_reading(harness.db)
    month = harness.uploader.build("p1", month_span(harness.site, "2026-10"))
    check = month["quality"]["consistency"]
    assert check["days_from_record"] == 1
    total = check["indicators"]["total_energy"]
    assert total["days"] == pytest.approx(612.4034)
    assert total["month"] == pytest.approx(613.6177)
    assert total["deviation"] == pytest.approx(1.2143 / 613.6177)
    assert total["meets"] is True


class Recorder:
    """A province's transport, as a plug-in would be."""

    name = "recorder"
    sent: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def send(self, upload: dict[str, Any]) -> str:
        if self.options.get("refuse"):
            raise DeliveryError("refused by the province", retry=False)
        Recorder.sent.append(upload)
        return f"ok {self.options['tag']}"


def test_a_plugin_transport(tmp_path: Path) -> None:
    plugin = {"kind": "plugin", "factory": "test_platform_upload:Recorder", "options": {"tag": "x"}}
    h = Harness(tmp_path, "http://127.0.0.1:1", transport=plugin)
    Recorder.sent.clear()
    outcome = h.uploader.upload("p1", day_span(h.site, DAY))
    assert (outcome.ok, outcome.answer) == (True, "ok x")
    assert Recorder.sent[0]["label"] == "2026-10-15"
    assert h.record.latest("p1", 0, ms(NOW))[0].transport == "recorder"


@pytest.mark.parametrize(
    ("factory", "error"),
    [
        ("no_such_module_here:f", "cannot import no_such_module_here"),
        ("test_platform_upload:Nothing", "has no Nothing"),
        ("builtins:dict", "returned dict, not a transport"),
        ("test_platform_upload:settings", "failed: TypeError"),
    ],
)
def test_a_plugin_that_cannot_be_made_is_named(factory: str, error: str) -> None:
    given = settings("http://127.0.0.1:1", transport={"kind": "plugin", "factory": factory})
    with pytest.raises(ValueError, match=error) as caught:
        open_transport(given.transport)
    assert factory in str(caught.value)


# --- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"transport": {"kind": "https_json", "url": "http://203.0.113.5/x"}}, "https://"),
        ({"transport": {"kind": "https_json", "url": "ftp://h/x"}}, "https://"),
        ({"sites": {"p1": {"unit_code": "123"}}}, "unit_code"),
        ({"sites": {"p1": {"unit_code": UNIT, "indicators": {"nope": "1"}}}}, "nope"),
        ({"sites": {"p1": {"unit_code": UNIT, "output_value": {"2026-13": 5.0}}}}, "2026-13"),
        ({"slot_minutes": 20}, "slot_minutes"),
        ({"surprise": 1}, "surprise"),
        ({"backoff": 10, "backoff_ceiling": 5}, "backoff_ceiling"),
    ],
)
def test_bad_settings_are_named(change: dict[str, Any], error: str) -> None:
    raw = {
        "sites": {"p1": {"unit_code": UNIT}},
        "transport": {"kind": "https_json", "url": "https://platform.example/upload"},
    } | change
    with pytest.raises(ValidationError, match=error):
        PlatformSettings.model_validate(raw)


def collector_config(tmp_path: Path, platform: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "data_dir": str(tmp_path),
        "accounting": plant().model_dump(mode="json", exclude_unset=True),
    }
    if platform is not None:
        body["platform"] = platform
    return body


def test_meter_and_line_codes_map_the_plant_model(tmp_path: Path) -> None:
    codes = {"meter_amount:grid": "M-GRID", "product_output:kiln": "P-KILN"}
    raw = collector_config(
        tmp_path,
        {
            "sites": {"p1": {"unit_code": UNIT, "indicators": codes}},
            "transport": {"kind": "https_json", "url": "https://p.example"},
        },
    )
    config = CollectorConfig.model_validate(raw)
    assert config.platform is not None
    assert config.platform.sites["p1"].codes().indicators == codes


@pytest.mark.parametrize(
    ("sites", "error"),
    [
        ({"elsewhere": {"unit_code": UNIT}}, "not a site of the plant model"),
        ({"p1": {"unit_code": UNIT, "indicators": {"carrier_amount:water": "W"}}}, "water"),
        ({"p1": {"unit_code": UNIT, "indicators": {"meter_amount:nope": "M"}}}, "'nope'"),
    ],
)
def test_platform_names_only_what_the_plant_model_has(
    tmp_path: Path, sites: dict[str, Any], error: str
) -> None:
    raw = collector_config(
        tmp_path, {"sites": sites, "transport": {"kind": "https_json", "url": "https://p.example"}}
    )
    with pytest.raises(ValidationError, match=error):
        CollectorConfig.model_validate(raw)


# --- the schedule -----------------------------------------------------------------------


def test_due_periods_skip_what_the_platform_took(harness: Harness) -> None:
    now = MIDNIGHT + timedelta(days=1, hours=1, minutes=10)  # 2026-10-16 01:10 local
    spans = due(harness.site, harness.settings, harness.record, now)
    slots = [s for s in spans if s.period == "slot"]
    # from 2026-10-15 00:00 to 00:55 on the 16th: ends by 01:05 (settle 300 s)
    assert len(slots) == 24 * 4 + 4
    assert [s.label for s in spans if s.period != "slot"] == ["2026-09", "2026-10-14", "2026-10-15"]
    harness.uploader.upload("p1", slots[0])
    again = due(harness.site, harness.settings, harness.record, now)
    assert slots[0] not in again and len(again) == len(spans) - 1


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def cli_config(tmp_path: Path, receiver: HttpReceiver) -> Path:
    seeded(tmp_path / "accounting.sqlite").close()
    platform = {
        "sites": {"p1": {"unit_code": UNIT, "output_value": {"2026-10": 5_000_000}}},
        "transport": {"kind": "https_json", "url": receiver.url + "/up"},
        "attempts": 2,
        "backoff": 0.01,
    }
    return write_yaml(tmp_path / "collector.yaml", collector_config(tmp_path, platform))


def cli(config: Path, *args: str) -> int:
    return collector_main(["platform", args[0], "--config", str(config), *args[1:]])


def test_export_csv_opens_as_excel_reads_it(
    cli_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(cli_config, "export", "--site", "p1", "--day", "2026-10-15", "--format", "csv") == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(out.removeprefix("\ufeff"))))
    assert rows[0][:4] == ["section", "period", "key", "of"]
    total = next(r for r in rows if r[2] == "total_energy")
    assert total[1] == "day:2026-10-15"
    assert float(total[7]) == pytest.approx(612.4034)
    assert total[5] == "综合能源消费量"
    gas = next(r for r in rows if r[2] == "carrier_amount" and r[3] == "natural_gas")
    assert (float(gas[7]), gas[8]) == (360.0, "m3")
    quality = {r[2]: r[7] for r in rows if r[0] == "quality"}
    assert quality["slots.slots_complete"] == "94"
    assert quality["slots.meets"] == "true"


def test_export_json_of_a_month_and_a_slot(
    cli_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(cli_config, "export", "--site", "p1", "--month", "2026-10") == 0
    month = json.loads(capsys.readouterr().out)
    assert month["unit_code"] == UNIT
    values = {x["key"]: x["value"] for x in month["indicators"] if x["of"] is None}
    assert values["output_value"] == 5_000_000 and values["value_added"] == 1_000_000
    assert cli(cli_config, "export", "--site", "p1", "--slot", "2026-10-15T10:00") == 0
    slot = json.loads(capsys.readouterr().out)
    assert slot["from"] == "2026-10-15T10:00:00+08:00"


def test_export_in_chinese(cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("export", "--site", "p1", "--day", "2026-10-15", "--format", "csv")
    assert cli(cli_config, *args, "--lang", "zh-CN") == 0
    header = next(csv.reader(io.StringIO(capsys.readouterr().out.removeprefix("\ufeff"))))
    assert header[2:6] == ["指标键", "对象", "编码", "中文名称"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("export", "--site", "p1", "--day", "2026-02-30"), "day '2026-02-30': give YYYY-MM-DD"),
        (("export", "--site", "p1", "--month", "2026-13"), "month '2026-13': give YYYY-MM"),
        (("export", "--site", "nope", "--day", "2026-10-15"), "--site: 'nope' is not in the"),
        (("export", "--site", "p1", "--slot", "2026-10-15T10:05"), "multiple of 15 minutes"),
        (("export", "--site", "p1", "--slot", "yesterday"), "--slot 'yesterday'"),
        (("resend", "--site", "p1", "--from", "2026-10-16", "--to", "2026-10-15"), "--to must"),
        (("resend", "--site", "p1", "--from", "soon", "--to", "2026-10-15"), "--from 'soon'"),
    ],
)
def test_bad_arguments_exit_2_naming_them(
    cli_config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], error: str
) -> None:
    assert cli(cli_config, *args) == 2
    assert error in capsys.readouterr().err


def test_two_periods_at_once_is_a_usage_error(cli_config: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        cli(cli_config, "export", "--site", "p1", "--day", "2026-10-15", "--month", "2026-10")
    assert caught.value.code == 2


def test_upload_without_a_platform_section_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(tmp_path / "accounting.sqlite").close()
    config = write_yaml(tmp_path / "c.yaml", collector_config(tmp_path, None))
    assert cli(config, "upload", "--site", "p1", "--day", "2026-10-15") == 2
    assert "no `platform.sites` entry" in capsys.readouterr().err


def test_no_accounting_database_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_yaml(tmp_path / "c.yaml", collector_config(tmp_path, None))
    assert cli(config, "export", "--site", "p1", "--day", "2026-10-15") == 2
    assert "no accounting database at" in capsys.readouterr().err


def test_upload_and_resend_exit_codes(
    cli_config: Path, receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(cli_config, "upload", "--site", "p1", "--day", "2026-10-15") == 0
    assert "taken after 1 attempt(s)" in capsys.readouterr().out
    receiver.script = [(503, b"busy")] * 2
    assert cli(cli_config, "upload", "--site", "p1", "--month", "2026-10") == 1
    assert "not taken after 2 attempt(s): HTTP 503" in capsys.readouterr().out
    record = Record(cli_config.parent / FILE)
    assert [(u.period, u.ok) for u in record.latest("p1", 0, ms(NOW))] == [
        ("month", False),
        ("day", True),
    ]
    record.close()
    failed = ("--site", "p1", "--from", "2026-09-01", "--to", "2026-11-01", "--only-failed")
    assert cli(cli_config, "resend", *failed) == 0
    assert "p1 month 2026-10: taken" in capsys.readouterr().out
    assert (
        cli(cli_config, "resend", "--site", "p1", "--from", "2025-01-01", "--to", "2025-02-01") == 0
    )
    assert "nothing recorded for p1" in capsys.readouterr().out


def test_the_documented_example_is_valid() -> None:
    """configs/collector.example.yaml's commented `platform:` block, uncommented."""
    text = (Path(__file__).resolve().parent.parent / "configs/collector.example.yaml").read_text()
    lines = text.splitlines()
    first = lines.index("# platform:")
    block = []
    for line in lines[first:]:
        if line == "#":
            break
        block.append(line.removeprefix("# ").replace("${PLATFORM_TOKEN}", "t"))
    raw = yaml.safe_load("\n".join(block))["platform"]
    given = PlatformSettings.model_validate(raw)
    assert given.sites["plant-a"].indicators["carrier_amount:electricity"] == "<code>"
    assert given.slot_minutes == 15 and given.schedule is False


async def test_the_schedule_uploads_the_oldest_due_first_a_few_a_cycle(
    harness: Harness, receiver: HttpReceiver
) -> None:
    now = MIDNIGHT + timedelta(days=1, hours=1, minutes=10)
    expected = due(harness.site, harness.settings, harness.record, now)
    runner = asyncio.create_task(scheduled(harness.uploader, cycle=3600, clock=lambda: now))
    for _ in range(200):
        if len(receiver.received) >= PER_CYCLE:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # nothing more comes this cycle
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    sent = [(r.json()["period"], r.json()["label"]) for r in receiver.received]
    assert sent == [(s.period, s.label) for s in expected[:PER_CYCLE]]
    assert sent[0] == ("month", "2026-09")
    taken = harness.record.latest("p1", 0, ms(now))
    assert len(taken) == PER_CYCLE and all(u.ok for u in taken)
    assert due(harness.site, harness.settings, harness.record, now) == expected[PER_CYCLE:]


def test_check_redacts_the_platforms_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = {
        "sites": {"p1": {"unit_code": UNIT}},
        "transport": {
            "kind": "https_json",
            "url": "https://platform.example/up?key=url-secret-1",
            "token": "token-secret-2",
        },
    }
    config = write_yaml(tmp_path / "c.yaml", collector_config(tmp_path, platform))
    assert collector_main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "platform:" in out and UNIT in out
    assert "url-secret-1" not in out and "token-secret-2" not in out


@given(st.text(max_size=40) | st.datetimes().map(datetime.isoformat))
def test_any_time_text_is_a_time_or_a_usage_error(text: str) -> None:
    site = plant().sites[0]
    try:
        value = site_time(text, site, "--from")
    except UsageError as exc:
        assert str(exc).startswith(f"--from {text!r}")
    else:
        assert value.tzinfo is not None
