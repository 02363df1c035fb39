"""The page's message catalogs: every string the dashboard shows is in both, English and
Simplified Chinese, with the same placeholders, under the standards' Chinese terms; every
key the page asks for exists, and the page has no text outside the catalogs."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from collector.accounting.core.counters import Issue
from collector.accounting.core.intensity import Window
from collector.api.app import STATIC
from collector.api.principals import Role, Via
from collector.reports.build import QUALITY_KEY
from greengauge.contract import Quantity

STATIC_DIR = Path(__file__).resolve().parent.parent / "collector" / "api" / "static"
LANGS = ("en", "zh-CN")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("key") / I18n.t("key") with a literal key; t(`family.${...}`) names a family.
LITERAL = re.compile(r"(?:^|[^\w.$]|I18n\.)t\(\"([^\"]+)\"")
FAMILY = re.compile(r"(?:^|[^\w.$]|I18n\.)t\(`([\w.-]+)\.\$\{")
# Each family of keys the page builds, with every value the API can give it.
FAMILIES: dict[str, set[str]] = {
    "status": {"leading", "compliant", "above_baseline", "insufficient_output", "ok"}
    | {"no_data", "no_current_data"},
    "meterstate": {"online", "offline", "stale", "unknown"},
    "window": {w.value for w in Window},
    "issue": {i.value for i in Issue},
    "q": {q.value for q in Quantity},
    "quality.kind": set(QUALITY_KEY.values()),
    "conn": {"loading", "no_data", "down", "live"},
    "meters": {"meter", "state", "line", "power", "last_reading", "reads", "errors", "agent"},
    "role": {r.value for r in Role},
    "who.via": {v.value for v in Via},
}
# The terms of GB/T 2589 and the NDRC benchmark notices, as the page must use them.
TERMS = ("综合能耗", "单位产品综合能耗", "标杆水平", "基准水平", "吨标准煤")
# Text the page shows as is, in any language.
UNTRANSLATED = {"GreenGauge", "\N{HORIZONTAL ELLIPSIS}", "\N{MULTIPLICATION SIGN}", "·"}


def catalog(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((STATIC_DIR / f"messages.{lang}.json").read_text("utf-8"))
    return data


def scripts() -> str:
    return "\n".join((STATIC_DIR / n).read_text("utf-8") for n in STATIC if n.endswith(".js"))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()
        self.stray: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style", "title")
        for name, value in attrs:
            if name.startswith("data-i18n") and value:
                self.keys.add(value)

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style", "title")

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if text and not self._skip and text not in UNTRANSLATED:
            self.stray.append(text)


def page() -> _Page:
    parser = _Page()
    parser.feed((STATIC_DIR / "index.html").read_text("utf-8"))
    return parser


def test_the_catalogs_are_served() -> None:
    for lang in LANGS:
        assert f"messages.{lang}.json" in STATIC


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_has_a_translation_in_every_catalog(lang: str) -> None:
    english, other = catalog("en"), catalog(lang)
    assert sorted(set(english) - set(other)) == [], f"no {lang} translation"
    assert sorted(set(other) - set(english)) == [], f"{lang} has keys English lacks"
    for key, text in other.items():
        assert isinstance(text, str) and text.strip(), f"{lang} {key}: empty"
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(english[key])), (
            f"{lang} {key}: placeholders differ from English"
        )


def test_chinese_uses_the_standard_terms() -> None:
    chinese = "\n".join(catalog("zh-CN").values())
    for term in TERMS:
        assert term in chinese, term
    zh = catalog("zh-CN")
    assert zh["status.leading"] == "达到标杆水平"
    assert zh["status.compliant"] == "达到基准水平"
    assert zh["lines.title"].endswith("单位产品综合能耗")


def test_every_key_the_page_asks_for_exists() -> None:
    english = set(catalog("en"))
    html = page()
    js = scripts()
    literal = set(LITERAL.findall(js)) | html.keys
    assert literal, "no keys found: the pattern no longer matches the page's code"
    assert sorted(literal - english) == []
    families = set(FAMILY.findall(js))
    assert families <= set(FAMILIES), f"a family of keys with no known values: {families}"
    for family in families:
        missing = {f"{family}.{v}" for v in FAMILIES[family]} - english
        assert sorted(missing) == []


def test_the_page_has_no_text_outside_the_catalogs() -> None:
    assert page().stray == []
