"""Text for people in their language (English or Simplified Chinese): gettext catalogs
edited and extracted with Babel, and figures and dates formatted for the language.

Usage, so that `pybabel extract` (babel.cfg) finds every message:

    from greengauge.common.i18n import N_, _, ngettext

    TITLE = N_("Meters")                      # module level: marked, translated at use
    print(_(TITLE))
    print(_("Site total: {kgce} kgce").format(kgce=...))   # never _(f"...")
    print(ngettext("{n} series", "{n} series", n).format(n=n))

The language is per process (`activate`, set once by a program's command line or
config) or per block (`using`, e.g. a report rendered for one request); the library
default is English, so nothing depends on the shell's locale unless a program asks
(`choose`). Catalogs ship as .po files (package data) and are compiled in memory the
first time a language is used: no build step, no binary files in the repository, and
English (the source language) never reads a catalog.
"""

from __future__ import annotations

import gettext
import io
import os
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal, localcontext
from functools import cache
from pathlib import Path
from typing import Final

DOMAIN: Final = "greengauge"
CATALOGS: Final = Path(__file__).resolve().parent.parent / "locale"
"""greengauge/locale/<language>/LC_MESSAGES/greengauge.po"""
SOURCE: Final = "en"
"""The language the messages are written in."""
LANGUAGES: Final = ("en", "zh_CN")
TAGS: Final = {"en": "en", "zh_CN": "zh-CN"}
"""How a language is spelled on the command line and in configs (BCP 47)."""
ENV: Final = "GREENGAUGE_LANG"
LOCALE_ENV: Final = ("LC_ALL", "LC_MESSAGES", "LANG")
"""POSIX order: the first one set decides."""


class LanguageError(ValueError):
    """A language asked for by name that GreenGauge has no catalog for."""


def normalize(tag: str) -> str | None:
    """The supported language a tag or POSIX locale names (zh-CN, zh_CN.UTF-8, zh-Hans,
    en_US, C), or None. Traditional Chinese is not Simplified: None."""
    base = tag.split(".", 1)[0].split("@", 1)[0].replace("-", "_").lower()
    parts = base.split("_")
    if parts[0] == "zh":
        return None if {"hant", "tw", "hk", "mo"} & set(parts[1:]) else "zh_CN"
    if parts[0] in ("en", "c", "posix"):
        return "en"
    return None


def _named(tag: str, where: str) -> str:
    language = normalize(tag)
    if language is None:
        raise LanguageError(
            f"{where}: language {tag!r} is not supported: give one of {', '.join(TAGS.values())}"
        )
    return language


def choose(
    explicit: str | None = None,
    configured: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """A program's language: `explicit` (--lang), then GREENGAUGE_LANG, then `configured`
    (a config file's setting), then the POSIX locale (LC_ALL, LC_MESSAGES, LANG); a
    language named on purpose must be supported, a locale that is not gives English."""
    if explicit:
        return _named(explicit, "--lang")
    if environ.get(ENV):
        return _named(environ[ENV], ENV)
    if configured:
        return _named(configured, "language")
    for name in LOCALE_ENV:
        if environ.get(name):
            return normalize(environ[name]) or SOURCE
    return SOURCE


_process_language = SOURCE
_block_language: ContextVar[str | None] = ContextVar("greengauge_language", default=None)


def activate(language: str) -> None:
    """The language of this process's text from now on (threads included)."""
    global _process_language  # noqa: PLW0603 - one setting per process, set at start-up
    _process_language = _named(language, "language")


@contextmanager
def using(language: str | None) -> Iterator[None]:
    """Text made inside the block is in `language` (None: the process's language)."""
    token = _block_language.set(None if language is None else _named(language, "language"))
    try:
        yield
    finally:
        _block_language.reset(token)


def current() -> str:
    return _block_language.get() or _process_language


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The language's catalog, compiled from its .po once per process (fuzzy entries
    left out: an unreviewed translation prints as English)."""
    if language == SOURCE:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo  # noqa: PLC0415 - only for a translation
    from babel.messages.pofile import read_po  # noqa: PLC0415

    path = CATALOGS / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for extraction where it cannot be translated yet (module level)."""
    return message


# --- figures and dates -------------------------------------------------------------------


def decimal_text(value: Decimal, grouped: bool = True, decimals: int | None = None) -> str:
    """A decimal in the language's digits, decimal sign and grouping, never rounded
    again: every digit it has, or exactly `decimals` (round it first)."""
    from babel.numbers import format_decimal  # noqa: PLC0415 - keeps start-up light

    pattern = None
    if decimals is not None:
        pattern = ("#,##0" if grouped else "0") + ("." + "0" * decimals if decimals else "")
    # Babel quantizes in the current context: 28 digits would fail on a float's 1e25.
    with localcontext() as context:
        context.prec = max(context.prec, value.adjusted() + 2 + (decimals or 0))
        return format_decimal(
            value,
            format=pattern,
            locale=current(),
            group_separator=grouped,
            decimal_quantization=pattern is not None,
        )


def month_text(year: int, month: int) -> str:
    """A calendar month: November 2026, 2026年11月."""
    from babel.dates import format_skeleton  # noqa: PLC0415

    return format_skeleton("yMMMM", date(year, month, 1), locale=current())


def datetime_text(value: datetime) -> str:
    """A moment in its own time zone, with the offset: Nov 27, 2026, 4:05:00 PM +08:00,
    2026年11月27日 16:05:00 +08:00."""
    from babel.dates import format_datetime  # noqa: PLC0415

    language = current()
    moment = format_datetime(value, "medium", tzinfo=value.tzinfo, locale=language)
    return f"{moment} {format_datetime(value, 'xxx', tzinfo=value.tzinfo, locale=language)}"


def width(text: str) -> int:
    """Columns the text takes in a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ljust(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


def rjust(text: str, columns: int) -> str:
    return " " * (columns - width(text)) + text
