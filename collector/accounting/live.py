"""The accounting in a running collector, and what the MES reports to it.

A `LiveAccounting` (built by collector.app when the config has a plant model) takes
every validated reading batch in `feed`; its `run` is one more task of the collector:
the accounting passes, and a subscription to the MES's production topics (output per
line, value added per month), whose messages are validated (times inside the accepted
window, no key twice) and either recorded or dead-lettered by the guard with the
reason, then acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from collector.accounting.core.series import Amount, allocate
from collector.accounting.db import MinuteRow, ms
from collector.accounting.engine import MINUTE, Accounting
from collector.accounting.targets import output_series
from collector.acks import Progress
from collector.batch import Readings
from collector.guard import Guard
from collector.ingest import Ingest, Message
from collector.plant import OutputFromMes
from collector.validate import DEFAULT_WINDOW, Rejected, Window, describe, unique_keys
from greengauge.common.backoff import Backoff
from greengauge.common.logs import fields
from greengauge.contract import (
    ProductionOutput,
    ValueAdded,
    parse_production_topic,
)

log = logging.getLogger(__name__)


def _kind(value: Any) -> str | None:
    """Which message a production payload is: its `kind` (output when left out, as the
    model's default), so a refusal names the fields of that message only, not of both."""
    if isinstance(value, dict):
        kind = value.get("kind", "output")
        return kind if isinstance(kind, str) else None
    return None


_MES: TypeAdapter[ProductionOutput | ValueAdded] = TypeAdapter(
    Annotated[
        Annotated[ProductionOutput, Tag("output")] | Annotated[ValueAdded, Tag("value_added")],
        Discriminator(_kind),
    ]
)


class MesRejected(Rejected):
    pass


class LiveAccounting:
    def __init__(
        self, accounting: Accounting, guard: Guard, window: Window = DEFAULT_WINDOW
    ) -> None:
        self.accounting = accounting
        self._guard = guard
        self._window = window
        self._waiting: deque[Message] = deque()
        self._backoff = Backoff(start=0.2, ceiling=10.0)
        self.mes: Ingest | None = None
        """alerts delivered to people (config `notify`), None without"""

    def subscribe(self, mes: Ingest) -> None:
        """Take the MES's production messages from this subscription (QoS 1, manual acks)."""
        self.mes = mes

    def feed(self, batch: Readings) -> None:
        self.accounting.feed(batch)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.accounting.run())
            if self.mes is not None:
                tasks.create_task(self.mes.run())

    def receive(self, message: Message) -> None:
        self._waiting.append(message)
        if len(self._waiting) == 1:
            self._record_waiting()

    def _record_waiting(self) -> None:
        """Record the MES messages in order; on a full or read-only disk, the first waits
        (unacknowledged, later ones behind it: a period sent again replaces the older one)
        and is retried after a backoff."""
        while self._waiting:
            message = self._waiting[0]

            def use(message: Message = message) -> bool:
                self.record(message.topic, message.payload, message.progress)
                return True

            try:
                if self._guard.run("production", message, use, transient=sqlite3.OperationalError):
                    message.ack()
            except sqlite3.OperationalError as exc:
                delay = self._backoff.next_delay()
                self.accounting.disk.failed(exc, delay)
                asyncio.get_running_loop().call_later(delay, self._record_waiting)
                return
            self._waiting.popleft()
        self._backoff.reset()

    def record(self, topic: str, payload: bytes, progress: Progress | None = None) -> None:
        """Record one MES message; MesRejected with the reason when it cannot be used."""
        progress = progress or Progress()
        progress.stage = "parse"
        try:
            site_id = parse_production_topic(topic)
            message = _MES.validate_json(payload)
            unique_keys(payload, "production message")
        except ValidationError as exc:
            raise MesRejected(f"invalid production message: {describe(exc)}") from exc
        except ValueError as exc:
            raise MesRejected(f"invalid production message: {exc}") from exc
        progress.stage = "validate"
        try:
            self._check_times(message)
        except Rejected as exc:
            raise MesRejected(str(exc)) from None
        if message.site != site_id:
            raise MesRejected(f"message says site {message.site!r}, topic site {site_id!r}")
        config = self.accounting.config.site(site_id)
        if config is None:
            raise MesRejected(f"site {site_id!r} is not in the plant model")
        db = self.accounting.db
        if isinstance(message, ValueAdded):
            progress.stage = "accounting"
            db.set_value_added(site_id, message.month, message.cny)
            log.info("value added recorded", extra=fields(site=site_id, month=message.month))
            return
        line = next((x for x in config.lines if x.id == message.line), None)
        if line is None:
            raise MesRejected(f"site {site_id!r} has no line {message.line!r}")
        if not isinstance(line.output, OutputFromMes):
            raise MesRejected(f"line {line.id!r} counts its output from a meter, not the MES")
        if message.unit != line.output_unit:
            raise MesRejected(
                f"line {line.id!r} counts output in {line.output_unit}, message in {message.unit}"
            )
        if not message.end > message.start or message.end - message.start > timedelta(days=31):
            raise MesRejected("the period must end after it starts and last at most 31 days")
        series = output_series(line.id)
        progress.stage = "accounting"
        with db.transaction() as conn:
            old = db.replace_mes_output(
                conn, site_id, line.id, ms(message.start), ms(message.end), message.quantity
            )
            amounts = [Amount(message.start, message.end, message.quantity)]
            if old is not None:
                amounts.append(Amount(message.start, message.end, -old))
            rows = [
                MinuteRow(series, ms(b.start), b.value, 0.0, 0.0, int(b.quality))
                for b in allocate(amounts, MINUTE)
            ]
            db.add_minutes(conn, site_id, rows)
        log.info(
            "production output recorded",
            extra=fields(site=site_id, line=line.id, quantity=message.quantity, replaced=old),
        )

    def _check_times(self, message: ProductionOutput | ValueAdded) -> None:
        now = datetime.now(UTC)
        if isinstance(message, ValueAdded):
            month = datetime.strptime(message.month, "%Y-%m").replace(tzinfo=UTC)
            self._window.check(month, now, "month")
        else:
            self._window.check(message.start, now, "start")
            self._window.check(message.end, now, "end")

    def close(self) -> None:
        self.accounting.close()
