"""Runs the API in the collector's event loop: uvicorn, the status subscription, and the
pump that pushes sites' figures and new alerts onto the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import uvicorn

from collector.api import figures
from collector.api.app import ApiContext, create_app
from collector.api.history import FluxHistory, History, SqliteHistory
from collector.api.live import Event
from collector.api.settings import ApiSettings
from collector.ingest import Ingest
from collector.metrics import CollectorMetrics
from greengauge.common.logs import fields
from greengauge.contract import Topic, subscription

if TYPE_CHECKING:
    from collector.config import CollectorConfig
    from collector.service import Collector

log = logging.getLogger(__name__)

ALERT_POLL: Final = 1.0
STOP_TIMEOUT: Final = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: SIGTERM and Ctrl-C stay the collector's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def open_history(config: CollectorConfig) -> History:
    if config.influxdb is not None:
        influx = config.influxdb
        return FluxHistory(
            influx.url, influx.org, influx.bucket, influx.token.get_secret_value(), influx.timeout
        )
    from collector.service import EMBEDDED_STORE_FILE  # noqa: PLC0415 - no import cycle

    return SqliteHistory(config.data_dir / EMBEDDED_STORE_FILE)


class Api:
    def __init__(
        self, collector: Collector, config: CollectorConfig, metrics: CollectorMetrics
    ) -> None:
        assert config.api is not None and collector.latest is not None
        self.settings: ApiSettings = config.api
        self.collector = collector
        self.state = figures.State(
            collector.latest,
            collector.statuses,
            collector.accounting.accounting if collector.accounting else None,
        )
        self.history = open_history(config)
        self.context = ApiContext(
            self.state,
            collector.hub,
            self.history,
            collector.accounting,
            metrics,
            self.settings,
            self.refresh,
        )
        self.app = create_app(self.context)
        from collector.service import client_id  # noqa: PLC0415 - no import cycle

        self.status_ingest = Ingest(
            config.mqtt,
            f"{client_id(config.mqtt)}-status",
            subscription(Topic.STATUS),
            collector.dead_letters.size_limited(
                lambda message: collector.statuses.receive(message, collector.guard),
                config.ingest.max_payload,
            ),
            config.ingest.receive_maximum,
            config.ingest.ack_overdue_seconds,
        )
        collector.ingests.append(self.status_ingest)
        self.server = _Server(
            uvicorn.Config(
                self.app,
                host=self.settings.host,
                port=self.settings.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        self._last_alert = -1

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.settings.port}/"

    async def refresh(self, site: str) -> None:
        if not self.collector.hub.subscribers:
            return
        now = datetime.now(UTC)
        summary = await asyncio.to_thread(figures.summary, self.state, site, now)
        self.collector.hub.publish(Event("summary", site, summary))

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.settings.summary_interval)
            if not self.collector.hub.subscribers:
                continue
            for site in figures.site_ids(self.state):
                try:
                    await self.refresh(site)
                except Exception:
                    log.exception("site summary failed", extra=fields(site=site))

    async def _alerts(self) -> None:
        acc = self.state.accounting
        if acc is None:
            return
        rows = await asyncio.to_thread(acc.db.alerts)
        self._last_alert = max((a.id for a in rows), default=0)
        while True:
            await asyncio.sleep(ALERT_POLL)
            rows = await asyncio.to_thread(acc.db.alerts)
            for a in rows:
                if a.id > self._last_alert:
                    self._last_alert = a.id
                    self.collector.hub.publish(Event("alert", a.site, figures.alert_view(a)))

    async def _serve(self) -> None:
        task = asyncio.ensure_future(self.server.serve())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.server.should_exit = True
            self.server.force_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, STOP_TIMEOUT)
            raise

    async def run(self) -> None:
        log.info(
            "api listening",
            extra=fields(
                url=self.url,
                dashboard=self.url,
                auth="open (loopback, no token)" if self.settings.open else "bearer tokens",
            ),
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._serve())
                tasks.create_task(self.status_ingest.run())
                tasks.create_task(self._summaries())
                tasks.create_task(self._alerts())
        finally:
            self.history.close()
