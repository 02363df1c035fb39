"""Publishes intensity alerts on greengauge/v1/{site}/alerts (QoS 1).

Every alert is first an entry in the accounting database (the record the API shows);
it is marked published once the broker acknowledged it. Alerts not acknowledged (the
broker was away, the collector stopped) are published again on the next connection, so
a subscriber may see an alert twice: its `id` tells them apart.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from collector.accounting.db import AccountingDB, AlertRow, from_ms
from greengauge.common.broker import BrokerSettings
from greengauge.common.files import DiskFault
from greengauge.common.logs import fields
from greengauge.common.tls import ssl_context
from greengauge.contract import Alert, AlertKind, alerts_topic

log = logging.getLogger(__name__)


def alert_message(row: AlertRow) -> Alert:
    return Alert(
        site=row.site,
        line=row.line,
        id=row.id,
        kind=AlertKind(row.kind),
        ts=from_ms(row.ts),
        since=from_ms(row.since),
        value=row.value,
        threshold=row.threshold,
        unit=row.unit,
        window=row.window,
        benchmark=row.benchmark,
    )


class AlertsPublisher:
    """A paho client of its own, reconnecting by itself."""

    def __init__(self, mqtt: BrokerSettings, client_id: str, db: AccountingDB) -> None:
        self._db = db
        self.disk = DiskFault("alerts", db.path)
        self._mqtt = mqtt
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # mid -> alert id
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if mqtt.username is not None:
            self._client.username_pw_set(
                mqtt.username, mqtt.password.get_secret_value() if mqtt.password else None
            )
        context = ssl_context(mqtt)
        if context is not None:
            self._client.tls_set_context(context)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish

    def start(self) -> None:
        self._client.reconnect_delay_set(1, 30)
        self._client.connect_async(self._mqtt.host, self._mqtt.port, self._mqtt.keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, code: Any, _p: Any = None) -> None:
        if not code.is_failure:
            for row in self._db.alerts(unpublished=True):
                self._send(row)

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, _rc: Any, _p: Any = None) -> None:
        with self._lock:
            alert_id = self._inflight.pop(mid, None)
        if alert_id is None:
            return
        try:
            self._db.mark_published(alert_id)
        except sqlite3.Error as exc:  # disk full or read-only: published again later, harmless
            self.disk.failed(exc)
        else:
            self.disk.ok()

    def publish_alert(self, site: str, alert_id: int) -> None:
        for row in self._db.alerts(site=site, unpublished=True):
            if row.id == alert_id:
                self._send(row)

    def _send(self, row: AlertRow) -> None:
        payload = alert_message(row).model_dump_json()
        with self._lock:
            info = self._client.publish(alerts_topic(row.site), payload, qos=1)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                self._inflight[info.mid] = row.id
        if info.rc != paho.MQTT_ERR_SUCCESS:
            log.info(
                "alert not published yet (broker away): sent on reconnect",
                extra=fields(site=row.site, line=row.line, alert_id=row.id),
            )
