"""The HTTP API and the dashboard, as one ASGI app (FastAPI); OpenAPI at /openapi.json.

Reads: sites, meters with health, latest readings, energy / kgce / CO2 / intensity per
line and site with benchmark standing and target progress, alerts, history of a
quantity. Live: /api/v1/stream (server-sent events: `reading`, `summary`, `alert`).
Write: production output or value added from the MES, validated exactly as the MES's
MQTT messages are (collector.accounting.live); meter swaps (collector.accounting.swaps).
/metrics for Prometheus.
Access (host names, users and roles, where writes come from): collector.api.auth; every
write is kept with who and when in the audit log (collector.api.audit, GET /api/v1/audit).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError

from collector.accounting.live import LiveAccounting, MesRejected
from collector.accounting.swaps import SwapRejected, record_swap
from collector.api import figures
from collector.api.audit import AuditLog, Write, body_text
from collector.api.auth import Guard
from collector.api.bodies import read_body
from collector.api.principals import Principal
from collector.api.settings import ApiSettings
from collector.metrics import CONTENT_TYPE, CollectorMetrics
from collector.notify.alerts import AlertNotices
from collector.plant import SwapRecord
from collector.reports.build import build
from collector.reports.csvfile import render_csv
from collector.reports.period import ReportError
from collector.reports.render import json_safe
from collector.reports.workbook import XLSX_MEDIA_TYPE, render_xlsx
from collector.state.hub import LiveHub
from collector.stores.history import History, HistoryError
from collector.stores.history import Query as HistoryQuery
from collector.validate import unique_keys
from greengauge.common.files import condition
from greengauge.common.logs import fields
from greengauge.contract import (
    UNITS,
    ProductionOutput,
    Quantity,
    QuantityName,
    ValueAdded,
    check_custom_name,
    check_id,
    production_topic,
)

log = logging.getLogger(__name__)

MAX_BODY: Final = 64 * 1024
MAX_AUDIT_PAGE: Final = 500
# The writes, as their routes are named and the audit log names them.
PRODUCTION: Final = "production"
SWAP: Final = "swap"
ACK: Final = "ack"
DEFAULT_SPAN: Final = timedelta(hours=3)
STATIC: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "messages.en.json": "application/json",
    "messages.zh-CN.json": "application/json",
}


@dataclass
class ApiContext:
    state: figures.State
    hub: LiveHub
    history: History | None
    live: LiveAccounting | None
    metrics: CollectorMetrics
    settings: ApiSettings
    refresh: Callable[[str], Awaitable[None]]
    """recompute a site's summary and push it on the stream (after a write)"""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    notices: AlertNotices | None = None
    """where an acknowledgement is delivered to people (config `notify`), if anywhere"""
    audit: AuditLog | None = None
    """where every write is kept with who and when (data_dir), if anywhere"""


def _static(name: str) -> bytes:
    return importlib.resources.files("collector.api").joinpath("static", name).read_bytes()


def _site(ctx: ApiContext, site: str) -> str:
    try:
        check_id(site)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if site not in figures.site_ids(ctx.state):
        raise HTTPException(404, f"no site {site!r}")
    return site


def _quantity(name: str) -> QuantityName:
    """A canonical quantity, or a valid user-named one; 422 with the reason otherwise."""
    try:
        return Quantity(name)
    except ValueError:
        pass
    try:
        return check_custom_name(name)
    except ValueError as exc:
        raise HTTPException(
            422,
            f"quantity: not a canonical quantity (greengauge/contract/quantities.py), and {exc}",
        ) from None


_SWAP_SCHEMA: Final = SwapRecord.model_json_schema(ref_template="#/components/schemas/{model}")
_PRODUCTION_SCHEMA: Final = TypeAdapter(ProductionOutput | ValueAdded).json_schema(
    mode="serialization", ref_template="#/components/schemas/{model}"
)


def create_app(ctx: ApiContext) -> FastAPI:  # noqa: PLR0915 - one route per function
    def keep(who: Principal, write: Write, status: int, outcome: str) -> None:
        if ctx.audit is None:
            return
        try:
            ctx.audit.record(who, write, status, outcome, ctx.clock())
        except sqlite3.Error as exc:
            # Logged, not answered: the write is done (or refused) already, and an error
            # now would only make the client retry it.
            log.error(
                "audit log not written",
                extra=fields(who=who.name, action=write.action, error=condition(exc)),
            )

    def denied(who: Principal, request: Request, refusal: HTTPException) -> None:
        """A write refused for the role or the origin: kept too, without its body."""
        route = request.scope.get("route")
        params = request.path_params
        action = getattr(route, "name", None) or request.url.path
        write = Write(action, params.get("site"), params.get("alert_id"), "")
        keep(who, write, refusal.status_code, str(refusal.detail))

    guard = Guard(ctx.settings, ctx.metrics.refused, denied)
    app = FastAPI(
        title="GreenGauge collector API",
        version="1",
        description="Sites, meters, readings, energy and carbon accounting, alerts; live.",
        docs_url=None,  # Swagger UI would load from a CDN: the schema is at /openapi.json
        redoc_url=None,
        openapi_url=None,  # served below, behind the read token
        dependencies=[Depends(guard.host)],
    )
    read = [Depends(guard.read)]
    operator = Depends(guard.write)
    viewer = Depends(guard.read)
    state = ctx.state

    async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    @asynccontextmanager
    async def audited(who: Principal, write: Write, status: int) -> AsyncIterator[None]:
        """Keep the write in the audit log with how it ended: done, or refused and why."""
        try:
            yield
        except HTTPException as exc:
            await off_loop(keep, who, write, exc.status_code, str(exc.detail))
            raise
        await off_loop(keep, who, write, status, "done")

    # --- dashboard ---------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(_static("index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return Response(_static(name), media_type=STATIC[name])

    # --- reads -----------------------------------------------------------------------------

    @app.get("/api/v1/sites", dependencies=read, tags=["read"])
    async def sites() -> list[dict[str, Any]]:
        """Every site known from the plant model, the agents' status or their readings."""
        now = ctx.clock()
        return await off_loop(figures.fleet, state, now)  # type: ignore[no-any-return]

    @app.get("/api/v1/fleet", dependencies=read, tags=["read"])
    async def fleet() -> list[dict[str, Any]]:
        """Every site side by side: intensity, standing, targets, data freshness, health."""
        return await off_loop(figures.fleet, state, ctx.clock())  # type: ignore[no-any-return]

    @app.get("/api/v1/sites/{site}", dependencies=read, tags=["read"])
    async def site_summary(site: str) -> dict[str, Any]:
        """A site's live view: power, meters with health, agents, accounting, alerts."""
        _site(ctx, site)
        return await off_loop(figures.summary, state, site, ctx.clock())  # type: ignore[no-any-return]

    @app.get("/api/v1/sites/{site}/meters", dependencies=read, tags=["read"])
    async def site_meters(site: str) -> dict[str, Any]:
        """Meters with health (online / offline / stale), last reading, errors; agents with
        their outbox backlog."""
        _site(ctx, site)
        now = ctx.clock()
        return {
            "meters": figures.meters(state, site, now),
            "agents": figures.agents(state, site, now),
        }

    @app.get("/api/v1/sites/{site}/lines", dependencies=read, tags=["read"])
    async def site_lines(site: str) -> list[dict[str, Any]]:
        """Production lines with benchmark, every window's figures and target progress."""
        _site(ctx, site)
        acc = await off_loop(figures.accounting, state, site, ctx.clock())
        if acc is None:
            raise HTTPException(404, f"site {site!r} has no plant model (accounting)")
        return acc["lines"]  # type: ignore[no-any-return]

    @app.get("/api/v1/sites/{site}/latest", dependencies=read, tags=["read"])
    async def site_latest(site: str) -> list[dict[str, Any]]:
        """The newest reading of every meter of the site."""
        _site(ctx, site)
        return figures.latest(state, site)

    @app.get("/api/v1/sites/{site}/accounting", dependencies=read, tags=["read"])
    async def site_accounting(site: str) -> dict[str, Any]:
        """Energy, kgce, CO2, output and intensity per line and for the site, per window
        (rolling_15min, rolling_1h, shift, today, month_to_date, year_to_date), with the
        benchmark standing, target progress, today's totals and active alerts."""
        _site(ctx, site)
        acc = await off_loop(figures.accounting, state, site, ctx.clock())
        if acc is None:
            raise HTTPException(404, f"site {site!r} has no plant model (accounting)")
        return acc  # type: ignore[no-any-return]

    @app.get("/api/v1/sites/{site}/report", dependencies=read, tags=["read"], response_model=None)
    async def site_report(
        site: str,
        month: Annotated[str, Query(description="YYYY-MM, in the site's time zone")],
        format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
    ) -> dict[str, Any] | Response:
        """The month's report, as `energy-collector report` makes it: unrounded figures
        whose totals are exact sums, with the data quality of every meter, line and the
        site and the source and confidence of every factor (CSV: rounded for display)."""
        _site(ctx, site)
        acc = state.accounting
        if acc is None:
            raise HTTPException(404, f"site {site!r} has no plant model (accounting)")
        try:
            built = await off_loop(build, acc.config, acc.db, site, month, ctx.clock())
        except ReportError as exc:
            raise HTTPException(422, str(exc)) from None
        if format == "csv":
            return Response(render_csv(built), media_type="text/csv; charset=utf-8")
        if format == "xlsx":
            return Response(
                await off_loop(render_xlsx, built),
                media_type=XLSX_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{site}-{month}.xlsx"'},
            )
        return json_safe(built)  # type: ignore[no-any-return]

    @app.get("/api/v1/alerts", dependencies=read, tags=["read"])
    async def alerts(
        site: str | None = None,
        active: Annotated[bool, Query(description="only alerts raised and not cleared")] = False,
    ) -> list[dict[str, Any]]:
        """Intensity alerts, oldest first (or the active ones)."""
        return await off_loop(figures.alerts, state, site, active)  # type: ignore[no-any-return]

    @app.get("/api/v1/sites/{site}/history", dependencies=read, tags=["read"])
    async def history(
        site: str,
        meter: str,
        quantity: Annotated[
            str, Query(description="a canonical quantity, or a user-named one (x_...)")
        ],
        start: datetime | None = None,
        end: datetime | None = None,
        step: Annotated[float | None, Query(gt=0, description="seconds per point")] = None,
        agent: str | None = None,
    ) -> dict[str, Any]:
        """One quantity of one meter over [start, end) (default: the last 3 hours), as
        mean / min / max per `step` seconds (default: about 300 points)."""
        _site(ctx, site)
        name = _quantity(quantity)
        if ctx.history is None:
            raise HTTPException(501, "no history source for this store")
        end = (end or ctx.clock()).astimezone(UTC)
        start = (start or end - DEFAULT_SPAN).astimezone(UTC)
        span = (end - start).total_seconds()
        step = step or max(1.0, round(span / 300))
        q = HistoryQuery(site, meter, name, start, end, step, agent)
        try:
            buckets = await off_loop(ctx.history.query, q)
        except HistoryError as exc:
            raise HTTPException(422, str(exc)) from None
        return {
            "site": site,
            "meter": meter,
            "quantity": str(name),
            "unit": UNITS[name]
            if isinstance(name, Quantity)
            else figures.custom_unit(state, site, meter, name)
            or await off_loop(ctx.history.custom_unit, site, meter, name),
            "start": figures.iso(start),
            "end": figures.iso(end),
            "step": step,
            "columns": ["ts", "mean", "min", "max", "count"],
            "points": [[b.ts, b.mean, b.min, b.max, b.count] for b in buckets],
        }

    @app.get("/api/v1/stream", dependencies=read, tags=["live"])
    async def stream(site: str | None = None) -> StreamingResponse:
        """Server-sent events: `reading` (every batch as it arrives), `summary` (a site's
        figures, every few seconds), `alert` (raised or cleared)."""
        if site is not None:
            _site(ctx, site)
        return StreamingResponse(
            ctx.hub.stream(site),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # --- write -------------------------------------------------------------------------------

    @app.post(
        "/api/v1/sites/{site}/production",
        name=PRODUCTION,
        tags=["write"],
        status_code=202,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _PRODUCTION_SCHEMA}},
            }
        },
    )
    async def production(site: str, request: Request, who: Principal = operator) -> dict[str, Any]:
        """Production output of a line over [start, end) or a month's value added, from the
        MES: the same message and the same checks as on greengauge/v1/{site}/production.
        Sending the same period again replaces it."""
        live = ctx.live
        if live is None:
            raise HTTPException(404, "this collector has no plant model (accounting)")
        body = await read_body(request, MAX_BODY)
        async with audited(who, Write(PRODUCTION, site, None, body_text(body)), 202):
            topic = production_topic(site)
            try:
                await off_loop(live.record, topic, body)
            except MesRejected as exc:
                raise HTTPException(422, str(exc)) from None
            except sqlite3.Error as exc:  # full or read-only disk: nothing recorded
                raise HTTPException(
                    503, f"cannot record it now ({condition(exc)}): retry"
                ) from None
        await ctx.refresh(site)
        return {"recorded": json.loads(body)}

    @app.post(
        "/api/v1/sites/{site}/swaps",
        name=SWAP,
        tags=["write"],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _SWAP_SCHEMA}},
            }
        },
    )
    async def swaps(site: str, request: Request, who: Principal = operator) -> dict[str, Any]:
        """Record a meter swap or counter reset: the meter, when the new counter was
        fitted, the old one's final reading and the new one's first (as shown on the
        meters), who records it. Kept in the accounting database; the energy across the
        swap is bridged from these readings, also for readings already accounted."""
        live = ctx.live
        if live is None:
            raise HTTPException(404, "this collector has no plant model (accounting)")
        _site(ctx, site)
        body = await read_body(request, MAX_BODY)
        async with audited(who, Write(SWAP, site, None, body_text(body)), 201):
            try:
                record = SwapRecord.model_validate_json(body)
                unique_keys(body, "swap")
            except (ValueError, ValidationError) as exc:
                raise HTTPException(422, f"invalid swap: {exc}") from None
            accounting = live.accounting
            try:
                notes = await off_loop(
                    record_swap,
                    accounting.db,
                    accounting.config,
                    site,
                    record.meter,
                    record.replacement(),
                    ctx.clock(),
                )
            except SwapRejected as exc:
                raise HTTPException(422, str(exc)) from None
            except sqlite3.Error as exc:  # full or read-only disk: nothing recorded
                raise HTTPException(
                    503, f"cannot record it now ({condition(exc)}): retry"
                ) from None
        await ctx.refresh(site)
        return {"recorded": json.loads(record.model_dump_json()), "changes": notes}

    @app.post("/api/v1/alerts/{alert_id}/ack", name=ACK, tags=["write"], status_code=201)
    async def acknowledge(
        alert_id: int, request: Request, who: Principal = operator
    ) -> dict[str, Any]:
        """Acknowledge a raised alert: who is on shift (`by`, default: the signed-in
        user) and an optional `note`; recorded with the time in the accounting database,
        once, and notified (config `notify`). The audit log keeps the signed-in user."""
        from collector.notify import alerts as notices  # noqa: PLC0415

        live = ctx.live
        if live is None:
            raise HTTPException(404, "this collector has no plant model (accounting)")
        body = await read_body(request, MAX_BODY)
        async with audited(who, Write(ACK, None, str(alert_id), body_text(body)), 201):
            try:
                given = notices.AckRequest.model_validate_json(body)
                unique_keys(body, "acknowledgement")
            except (ValueError, ValidationError) as exc:
                raise HTTPException(422, f"invalid acknowledgement: {exc}") from None
            try:
                row, ack = await off_loop(
                    notices.acknowledge,
                    live.accounting.db,
                    alert_id,
                    given,
                    ctx.clock(),
                    who.name,
                )
            except notices.AckRefused as exc:
                raise HTTPException(exc.status, str(exc)) from None
            except sqlite3.Error as exc:  # full or read-only disk: nothing recorded
                raise HTTPException(
                    503, f"cannot record it now ({condition(exc)}): retry"
                ) from None
        if ctx.notices is not None:
            ctx.notices.acknowledged(row, ack)
        return {
            "alert_id": alert_id,
            "by": ack.by,
            "at": ack.at.isoformat(),
            "note": ack.note,
            "user": who.name,
        }

    @app.get("/api/v1/alerts/{alert_id}/ack", dependencies=read, tags=["read"])
    async def acknowledgement(alert_id: int) -> dict[str, Any]:
        """Who acknowledged an alert and when; 404 when nobody has (yet)."""
        from collector.notify.alerts import acknowledgements  # noqa: PLC0415

        if ctx.live is None:
            raise HTTPException(404, "this collector has no plant model (accounting)")
        acks = await off_loop(acknowledgements, ctx.live.accounting.db)
        ack = acks.get(alert_id)
        if ack is None:
            raise HTTPException(404, f"alert {alert_id} is not acknowledged")
        return {"alert_id": alert_id, "by": ack.by, "at": ack.at.isoformat(), "note": ack.note}

    # --- who --------------------------------------------------------------------------------

    @app.get("/api/v1/me", tags=["read"])
    async def me(who: Principal = viewer) -> dict[str, Any]:
        """Who the API takes the caller for: name, role (viewer, operator, admin) and how
        they were recognised (token, legacy_token, proxy, open)."""
        return {"name": who.name, "role": who.role.value, "via": who.via.value}

    @app.get("/api/v1/audit", dependencies=[Depends(guard.admin)], tags=["admin"])
    async def audit(
        limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
        before: Annotated[int | None, Query(ge=1, description="`next` of the page before")] = None,
        site: str | None = None,
        user: Annotated[str | None, Query(description="the signed-in user (who)")] = None,
    ) -> dict[str, Any]:
        """Every write through the API, newest first: when, who (the signed-in user, their
        role, and how they were recognised), what (action, site, target, the body) and how
        it ended (HTTP status, outcome). Admins only. Page on with `before=next`."""
        if ctx.audit is None:
            raise HTTPException(501, "this collector keeps no audit log")
        rows = await off_loop(ctx.audit.page, limit, before, site, user)
        return {"entries": rows, "next": rows[-1]["id"] if len(rows) == limit else None}

    # --- operations --------------------------------------------------------------------------

    @app.get("/openapi.json", dependencies=read, include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/metrics", dependencies=read, include_in_schema=False)
    async def metrics() -> Response:
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
