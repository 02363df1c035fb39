"""Runs the API in the collector's event loop: uvicorn, the status subscription, and the
pump that pushes sites' figures and new alerts onto the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Final

import uvicorn

from collector.accounting.live import LiveAccounting
from collector.api import figures
from collector.api.app import ApiContext, create_app
from collector.api.audit import AuditLog
from collector.api.settings import ApiSettings
from collector.metrics import CollectorMetrics
from collector.notify.alerts import AlertNotices
from collector.state.hub import Event, LiveHub
from collector.stores.history import History
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

ALERT_POLL: Final = 1.0
STOP_TIMEOUT: Final = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: SIGTERM and Ctrl-C stay the collector's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Api:
    """The HTTP API and dashboard over the collector's state, which it reads, never owns."""

    def __init__(
        self,
        settings: ApiSettings,
        state: figures.State,
        hub: LiveHub,
        history: History,
        live: LiveAccounting | None,
        metrics: CollectorMetrics,
        notices: AlertNotices | None,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.hub = hub
        self.context = ApiContext(
            state, hub, history, live, metrics, settings, self.refresh, notices=notices, audit=audit
        )
        self.app = create_app(self.context)
        self.server = _Server(
            uvicorn.Config(
                self.app,
                host=self.settings.host,
                port=self.settings.port,
                log_config=None,
                access_log=False,
                # request.client stays the peer, never an X-Forwarded-For from loopback:
                # api.trusted_proxy decides by the peer's address.
                proxy_headers=False,
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
        if not self.hub.subscribers:
            return
        now = datetime.now(UTC)
        summary = await asyncio.to_thread(figures.summary, self.state, site, now)
        self.hub.publish(Event("summary", site, summary))

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.settings.summary_interval)
            if not self.hub.subscribers:
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
                    self.hub.publish(Event("alert", a.site, figures.alert_view(a)))

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
                auth="open (loopback, no token)" if self.settings.open else "users and roles",
                users=len(self.settings.users),
                sso_proxy=self.settings.trusted_proxy is not None,
            ),
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._serve())
            tasks.create_task(self._summaries())
            tasks.create_task(self._alerts())
