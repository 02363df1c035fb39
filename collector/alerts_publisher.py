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

from collector.accounting.db import AccountingDB, AlertRow, from_ms
from greengauge.common.backoff import Backoff
from greengauge.common.broker import BrokerSettings
from greengauge.common.files import DiskFault
from greengauge.common.logs import fields
from greengauge.common.mqtt import Connection, Protocol, paho_client, stay_connected
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
    """A connection of its own, kept by the shared MQTT layer (backoff, MQTT 5 -> 3.1.1)."""

    def __init__(self, mqtt: BrokerSettings, client_id: str, db: AccountingDB) -> None:
        self._db = db
        self.disk = DiskFault("alerts", db.path)
        self._mqtt = mqtt
        self._client_id = client_id
        self._protocol = Protocol(mqtt)
        self._lock = threading.Lock()
        self._client: paho.Client | None = None
        """the connected client; None while away (alerts wait in the database)"""
        self._inflight: dict[int, int] = {}  # mid -> alert id

    async def run(self) -> None:
        await stay_connected(self._mqtt, self._protocol, self._session)

    async def _session(self, backoff: Backoff) -> None:
        client = paho_client(self._mqtt, self._client_id, self._protocol)
        client.on_publish = self._on_publish
        connection = Connection(client, lambda: self._connected(client))
        try:
            await connection.open(self._mqtt)
            backoff.reset()
            await connection.until_lost()
        finally:
            with self._lock:
                self._client = None
                self._inflight.clear()
            await connection.close()

    def _connected(self, client: paho.Client) -> None:
        """In paho's thread, on the CONNACK: what was not acknowledged goes now."""
        with self._lock:
            self._client = client
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
            client = self._client
            if client is not None:
                info = client.publish(alerts_topic(row.site), payload, qos=1)
                if info.rc == paho.MQTT_ERR_SUCCESS:
                    self._inflight[info.mid] = row.id
                    return
        log.info(
            "alert not published yet (broker away): sent on reconnect",
            extra=fields(site=row.site, line=row.line, alert_id=row.id),
        )
