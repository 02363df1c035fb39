"""An intensity alert as a sentence for people (webhook, mail, IM), in the reader's
language; the MQTT message (greengauge.contract.Alert) stays data only."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from collector.reports.numbers import ratio_text
from greengauge.common.i18n import _, datetime_text, using
from greengauge.contract import Alert, AlertKind


def alert_text(alert: Alert, zone: ZoneInfo, language: str | None = None) -> str:
    """The alert in `language` (None: the process's), its times in the site's `zone`."""
    with using(language):
        template = (
            _(
                "{site} {line}: energy consumption per unit of product {value} {unit} "
                "({window}) above the baseline level {threshold} {unit} ({benchmark}) "
                "since {since}"
            )
            if alert.kind is AlertKind.RAISED
            else _(
                "{site} {line}: energy consumption per unit of product back to {value} "
                "{unit} ({window}), within the baseline level {threshold} {unit} "
                "({benchmark}) since {since}"
            )
        )
        return template.format(
            site=alert.site,
            line=alert.line,
            value=ratio_text(alert.value),
            unit=alert.unit,
            window=alert.window,
            threshold=ratio_text(alert.threshold),
            benchmark=alert.benchmark,
            since=datetime_text(alert.since.astimezone(zone)),
        )
