"""Chinese and English (issue 16): the catalog is complete and current, the language is
chosen as documented, and the report, CLI summaries and alert texts come out in it with
the standards' terms and the locale's figures and dates."""

from __future__ import annotations

import configparser
import csv
import io
import os
import string
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st
from processes import BIN
from test_report_sections import config as sections_config
from test_report_sections import month_batches

from agent.cli import main as agent_main
from collector.accounting.engine import Accounting
from collector.cli import main as collector_main
from collector.notify import message
from collector.notify.events import Action, Notice, Severity
from collector.notify.events import AlertKind as NoticeKind
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.reports.numbers import DECIMALS, amount_text
from collector.reports.render import render
from greengauge.common import i18n
from greengauge.contract import MeterReading, Quantity, ReadingBatch

ROOT = Path(__file__).resolve().parent.parent
CATALOG = i18n.CATALOGS / "zh_CN" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The CLIs set the process's language: put it back for the tests that follow."""
    yield
    i18n.activate("en")


# --- the catalog ------------------------------------------------------------------------


def catalog() -> Catalog:
    with CATALOG.open("rb") as source:
        return read_po(source, locale="zh_CN")


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def forms(text: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """A message's id or translation as its forms (one, or one per plural form)."""
    if text is None:
        return ()
    return (text,) if isinstance(text, str) else tuple(text)


def untranslated(messages: Catalog) -> list[str]:
    """Messages an English text would print for: no translation (of any plural form),
    or one marked fuzzy."""
    return [
        f"{m.id!r}: {'fuzzy' if m.fuzzy else 'no translation'}"
        for m in messages
        if m.id and (m.fuzzy or not all(forms(m.string)) or not forms(m.string))
    ]


def test_every_message_has_a_chinese_translation() -> None:
    messages = catalog()
    assert len(messages) > 100
    assert untranslated(messages) == []
    assert any(not isinstance(m.id, str) for m in messages)  # plurals are checked too
    for m in messages:
        if m.id:
            # a placeholder left out or made up would print wrongly or raise KeyError
            for text in forms(m.string):
                assert fields(text) == fields(forms(m.id)[-1]), m.id


def test_a_missing_or_fuzzy_translation_is_caught() -> None:
    messages = catalog()
    first, second = [m for m in messages if m.id][:2]
    (plural,) = [m for m in messages if m.id == ("{n} meter", "{n} meters")]
    first.string = ""
    second.flags.add("fuzzy")
    plural.string = ("",)
    assert untranslated(messages) == [
        f"{first.id!r}: no translation",
        f"{second.id!r}: fuzzy",
        f"{plural.id!r}: no translation",
    ]


def test_the_catalog_holds_exactly_the_messages_of_the_source() -> None:
    """`make messages` was run after the last change of a message (babel.cfg's files)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "babel.cfg")
    method_map = [
        (pattern.strip(), method) for method, pattern in (s.split(":", 1) for s in cfg.sections())
    ]
    extracted = {forms(message) for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map)}
    assert {forms(m.id) for m in catalog() if m.id} == extracted


def test_a_fuzzy_translation_prints_english(tmp_path: Path) -> None:
    """What the catalog loader does with a fuzzy entry: leaves it out."""
    messages = catalog()
    (entry,) = [m for m in messages if m.id == "Meters"]
    entry.flags.add("fuzzy")
    compiled = io.BytesIO()
    from babel.messages.mofile import write_mo  # noqa: PLC0415

    write_mo(compiled, messages, use_fuzzy=False)
    compiled.seek(0)
    import gettext  # noqa: PLC0415

    assert gettext.GNUTranslations(compiled).gettext("Meters") == "Meters"
    assert i18n.translations("zh_CN").gettext("Meters") == "计量表"


# --- the language chosen ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh-CN", "zh_CN"),
        ("zh_CN.UTF-8", "zh_CN"),
        ("zh_CN.GB18030", "zh_CN"),
        ("zh-Hans", "zh_CN"),
        ("zh_Hans_CN", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh_TW.UTF-8", None),
        ("zh-Hant", None),
        ("en", "en"),
        ("en_US.UTF-8", "en"),
        ("en-GB", "en"),
        ("C", "en"),
        ("POSIX", "en"),
        ("C.UTF-8", "en"),
        ("de_DE.UTF-8", None),
        ("", None),
    ],
)
def test_tags_and_locales_name_a_supported_language(tag: str, language: str | None) -> None:
    assert i18n.normalize(tag) == language


@given(st.text(max_size=30))
def test_normalize_never_raises_and_gives_a_supported_language(tag: str) -> None:
    assert i18n.normalize(tag) in (*i18n.LANGUAGES, None)


def test_choice_order_lang_then_env_then_config_then_locale() -> None:
    env = {"GREENGAUGE_LANG": "en", "LANG": "zh_CN.UTF-8"}
    assert i18n.choose("zh-CN", "en", env) == "zh_CN"
    assert i18n.choose(None, "zh-CN", env) == "en"
    assert i18n.choose(None, "zh-CN", {"LANG": "en_US.UTF-8"}) == "zh_CN"
    assert i18n.choose(None, None, {"LANG": "zh_CN.UTF-8"}) == "zh_CN"
    assert i18n.choose(None, None, {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}) == "en"
    assert i18n.choose(None, None, {"LC_ALL": "", "LANG": "zh_CN.UTF-8"}) == "zh_CN"
    assert i18n.choose(None, None, {"LANG": "fr_FR.UTF-8"}) == "en"  # a locale: not an error
    assert i18n.choose(None, None, {}) == "en"


@pytest.mark.parametrize(
    ("explicit", "env", "where"),
    [("fr", {}, "--lang"), (None, {"GREENGAUGE_LANG": "zh-TW"}, "GREENGAUGE_LANG")],
)
def test_a_language_asked_for_by_name_must_be_supported(
    explicit: str | None, env: dict[str, str], where: str
) -> None:
    with pytest.raises(i18n.LanguageError, match=f"^{where}: language .* en, zh-CN$"):
        i18n.choose(explicit, None, env)


def test_using_is_scoped_and_activate_is_the_default() -> None:
    i18n.activate("zh-CN")
    assert i18n._("Meters") == "计量表"
    with i18n.using("en"):
        assert i18n._("Meters") == "Meters"
    assert i18n._("Meters") == "计量表"


# --- figures and dates --------------------------------------------------------------------


@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["en", "zh-CN"]),
)
def test_amounts_keep_pythons_rounding_in_every_language(
    value: float, grouped: bool, language: str
) -> None:
    """The locale spells the digits; the rounding stays the report's (ROUNDING_RULE)."""
    with i18n.using(language):
        text = amount_text(value, grouped)
    expected = f"{value:.{DECIMALS}f}"
    expected = expected.removeprefix("-") if float(expected) == 0 else expected
    assert text.replace(",", "") == expected
    if not grouped:
        assert "," not in text


def test_figures_follow_the_locale() -> None:
    for language, locale in (("en", "en"), ("zh-CN", "zh_CN")):
        with i18n.using(language):
            assert amount_text(1234567.8914) == format_decimal(
                Decimal("1234567.891"), format="#,##0.000", locale=locale
            )
            assert i18n.decimal_text(Decimal("0.000123")) == "0.000123"
    with i18n.using("zh-CN"):
        assert amount_text(1234567.8914) == "1,234,567.891"
        assert i18n.month_text(2026, 11) == "2026年11月"
        moment = datetime(2026, 11, 27, 16, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert i18n.datetime_text(moment) == "2026年11月27日 16:05:00 +08:00"
    with i18n.using("en"):
        assert i18n.month_text(2026, 11) == "November 2026"


def test_wide_characters_take_two_columns() -> None:
    assert i18n.width("单位产品综合能耗 kgce") == 16 + 5
    assert i18n.ljust("峰", 4) == "峰  " and i18n.rjust("谷", 3) == " 谷"


# --- the report -----------------------------------------------------------------------------


def three_period_config() -> AccountingConfig:
    """tests/test_report_sections.py's plant with a peak, flat and valley calendar."""
    raw: dict[str, Any] = sections_config().model_dump(mode="json", exclude_unset=True)
    raw["sites"][0]["tou"]["seasons"]["all_year"] = {
        "months": list(range(1, 13)),
        "hours": {
            "peak": [8, 9, 10, 11, 17, 18, 19, 20],
            "flat": [12, 13, 14, 15, 16, 21, 22],
            "valley": [23, 0, 1, 2, 3, 4, 5, 6, 7],
        },
        "prices": {"peak": 1.2, "flat": 0.7, "valley": 0.3},
    }
    return AccountingConfig.model_validate(raw)


def day_batches() -> list[ReadingBatch]:
    """test_report_sections' ten minutes, then one reading a day later: the gap's energy
    is spread over every hour of the day, so each period has some."""
    batches = month_batches()
    last = batches[-1]
    later = [
        MeterReading(
            meter=r.meter,
            ts=r.ts + timedelta(days=1),
            values={q: v + (1 if q is Quantity.COUNT else 24) for q, v in r.values.items()},
        )
        for r in last.readings
    ]
    return [*batches, ReadingBatch(site="s1", agent="gw", seq=last.seq + 1, readings=later)]


@pytest.fixture
def month(tmp_path: Path) -> dict[str, Any]:
    acc = Accounting(three_period_config(), tmp_path)
    acc.process(day_batches())
    report = build(acc.config, acc.db, "s1", "2026-11")
    acc.close()
    return report


def test_the_report_in_chinese_uses_the_standards_terms(month: dict[str, Any]) -> None:
    with i18n.using("zh-CN"):
        table = render(month, "table")
    for term in ("综合能耗", "吨标准煤", "单位产品综合能耗", "标杆水平", "基准水平", "当量值"):
        assert term in table, term
    tou = table[table.index("峰谷分时") :].splitlines()
    periods = {row.split()[1] for row in tou[3:6]}
    assert periods == {"峰", "平", "谷"}, tou
    assert "能耗与碳排放报告：厂区 s1，2026年11月" in table
    assert "综合能耗：0.005 吨标准煤" in table  # 5.408 kgce
    assert "厂区合计：5.408 kgce" in table
    assert "Meters" not in table and "source:" not in table


def test_the_chinese_table_stays_aligned(month: dict[str, Any]) -> None:
    with i18n.using("zh-CN"):
        table = render(month, "table")
    lines = table.splitlines()
    start = lines.index("计量表")
    header, rule, *rows = lines[start + 1 : start + 5]
    assert set(rule) <= {"-", " "}
    # every column starts where its rule starts, in terminal columns
    starts = [i for i, c in enumerate(rule) if c == "-" and (i == 0 or rule[i - 1] == " ")]
    for row in (header, *rows):
        cells = [i18n.width(row[: row.index(cell)]) for cell in row.split()]
        assert cells[0] == starts[0]
    assert i18n.width(header.rstrip()) <= len(rule)


def test_the_english_report_is_unchanged(month: dict[str, Any]) -> None:
    table = render(month, "table")
    assert "Energy and carbon report: site s1, November 2026" in table
    assert "Comprehensive energy consumption: 0.005 tce" in table
    assert "Site total: 5.408 kgce, 23.346 kgCO2" in table
    assert "计量表" not in table and "综合能耗" not in table  # (sources may quote Chinese)


def test_the_csv_opens_in_excel_in_either_language(month: dict[str, Any]) -> None:
    for language, header in (
        ("en", ["section", "name", "quantity", "value", "unit", "source", "confidence"]),
        ("zh-CN", ["部分", "名称", "测量量", "值", "单位", "来源", "可信度"]),
    ):
        with i18n.using(language):
            text = render(month, "csv")
        data = text.encode("utf-8")
        assert data.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert rows[0] == header
        assert rows[1][:4] == ["site", "s1", "kgce", "5.408"]  # keys and figures as before


# --- the programs -----------------------------------------------------------------------------


@pytest.fixture
def collector_yaml(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    accounting = three_period_config()
    acc = Accounting(accounting, data_dir)
    acc.process(day_batches())
    acc.close()
    path = tmp_path / "collector.yaml"
    raw = accounting.model_dump(mode="json", exclude_unset=True)
    body = {"mqtt": {"url": "mqtt://127.0.0.1:1"}, "data_dir": str(data_dir), "accounting": raw}
    path.write_text(yaml.safe_dump(body, allow_unicode=True))
    return path


REPORT = ["report", "--site", "s1", "--month", "2026-11"]


def test_report_lang_option_and_config_setting(
    collector_yaml: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert collector_main([*REPORT, "--config", str(collector_yaml), "--lang", "zh-CN"]) == 0
    assert "综合能耗：" in capsys.readouterr().out
    monkeypatch.delenv("GREENGAUGE_LANG")
    raw = yaml.safe_load(collector_yaml.read_text())
    collector_yaml.write_text(yaml.safe_dump({**raw, "language": "zh-CN"}))
    i18n.activate("en")
    assert collector_main([*REPORT, "--config", str(collector_yaml)]) == 0
    assert "综合能耗：" in capsys.readouterr().out
    assert collector_main([*REPORT, "--config", str(collector_yaml), "--lang", "en"]) == 0
    assert "Comprehensive energy consumption:" in capsys.readouterr().out


def test_report_refuses_an_unsupported_language(
    collector_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert collector_main([*REPORT, "--config", str(collector_yaml), "--lang", "fr"]) == 2
    assert capsys.readouterr().err == (
        "energy-collector: --lang: language 'fr' is not supported: give one of en, zh-CN\n"
    )
    raw = yaml.safe_load(collector_yaml.read_text())
    collector_yaml.write_text(yaml.safe_dump({**raw, "language": "fr"}))
    assert collector_main([*REPORT, "--config", str(collector_yaml)]) == 2
    assert "language" in capsys.readouterr().err


def test_the_collector_speaks_the_shells_locale(collector_yaml: Path) -> None:
    """LANG alone, as a Chinese Windows or Linux desktop sets it, in a real process."""
    env = {k: v for k, v in os.environ.items() if k not in ("GREENGAUGE_LANG", "LC_ALL")}
    env["LANG"] = "zh_CN.UTF-8"
    done = subprocess.run(
        [
            str(BIN / "energy-collector"),
            *REPORT,
            "--config",
            str(collector_yaml),
            "--format",
            "csv",
        ],
        capture_output=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert done.stdout.startswith("\ufeff部分,名称".encode())


def test_collector_check_in_chinese_with_plurals(
    collector_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert collector_main(["check", "--config", str(collector_yaml), "--lang", "zh-CN"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{collector_yaml}：正常\n")
    assert "accounting 厂区 s1：2 块计量表，1 条产线\n" in out
    assert collector_main(["check", "--config", str(collector_yaml), "--lang", "en"]) == 0
    assert "accounting site s1: 2 meters, 1 line\n" in capsys.readouterr().out


def test_agent_check_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "configs" / "demo" / "agent.yaml"
    assert agent_main(["check", "--config", str(config), "--lang", "zh-CN"]) == 0
    out = capsys.readouterr().out
    assert "：正常\n厂区 " in out
    header = next(line for line in out.splitlines() if line.startswith("计量表"))
    assert header.split()[:3] == ["计量表", "型号配置", "modbus"]


# --- alerts -----------------------------------------------------------------------------------


def test_alert_notices_in_both_languages() -> None:
    """What webhooks, mail and the group robots say (collector.notify.message)."""
    notice = Notice(
        action=Action.RAISED,
        kind=NoticeKind.INTENSITY,
        severity=Severity.WARNING,
        site="s1",
        subject="kiln",
        ts=datetime(2026, 11, 27, 8, 5, tzinfo=UTC),
        alert_id=7,
        value=123.456789,
        threshold=110.0,
        unit="kgce/t",
        since=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
    )
    shanghai = ZoneInfo("Asia/Shanghai")
    with i18n.using("zh-CN"):
        assert message.text(notice, shanghai).splitlines() == [
            "[WARNING] GreenGauge s1/kiln：单位产品能耗高于基准水平 触发",
            "数值 123.5 kgce/t，阈值 110 kgce/t",
            "状况开始于 2026-11-27 16:00:00 CST",
            "触发于 2026-11-27 16:05:00 CST",
            "告警编号 7",
        ]
    with i18n.using("en"):
        assert message.text(notice, shanghai).splitlines() == [
            "[WARNING] GreenGauge s1/kiln: intensity above baseline raised",
            "value 123.5 kgce/t, threshold 110 kgce/t",
            "condition since 2026-11-27 16:00:00 CST",
            "raised at 2026-11-27 16:05:00 CST",
            "alert id 7",
        ]
