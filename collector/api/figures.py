"""What the API shows, built from the collector's state: pure reads, no writes.

Meter health joins the agents' status messages with the latest readings; energy, kgce,
CO2 and intensity come from the accounting database through the accounting's own query
functions (collector.accounting.engine), so the API shows exactly what the reports and
the alerts use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from collector.accounting.core.emissions import by_scope
from collector.accounting.core.intensity import Window, window_start
from collector.accounting.core.targets import Target, progress
from collector.accounting.db import AccountingDB, ms
from collector.accounting.engine import Accounting
from collector.accounting.queries import Figure, line_figures, meter_totals, site_figures, standing
from collector.accounting.targets import output_series
from collector.api import trust
from collector.notify.alerts import Acknowledgement, acknowledgements
from collector.plant import Carrier, LineConfig, SiteConfig, resolve_benchmark
from collector.reports.build import indicators
from collector.state.latest import LatestReadings, Row, stale_after
from collector.state.statuses import AgentStatuses
from greengauge.contract import UNITS, AgentState, AgentStatus, Quantity

NO_CURRENT_DATA: Final = "no_current_data"
"""A site's status while a line rests on a meter that is not current."""
LIVE_WINDOWS: Final = (Window.ROLLING_15MIN, Window.ROLLING_1H, Window.TODAY)


@dataclass(frozen=True, slots=True)
class State:
    """The collector's state the API reads (all owned by the collector)."""

    latest: LatestReadings
    statuses: AgentStatuses
    accounting: Accounting | None


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def site_ids(state: State) -> list[str]:
    ids = {row.site for row in state.latest.rows()} | state.statuses.sites()
    if state.accounting is not None:
        ids |= {s.id for s in state.accounting.config.sites}
    return sorted(ids)


def site_config(state: State, site: str) -> SiteConfig | None:
    return None if state.accounting is None else state.accounting.config.site(site)


def _rows(state: State, site: str) -> dict[str, Row]:
    return {r.reading.meter: r for r in state.latest.rows() if r.site == site}


def meters(state: State, site: str, now: datetime) -> list[dict[str, Any]]:
    """Every meter of a site: its health, newest reading and agent."""
    rows = _rows(state, site)
    statuses = state.statuses.of_site(site)
    health: dict[str, tuple[AgentStatus, Any]] = {}
    for agent_said in statuses:
        for meter_id, meter_health in agent_said.meters.items():
            health[meter_id] = (agent_said, meter_health)
    agent_of: dict[str, AgentStatus] = {s.agent: s for s in statuses}
    config = site_config(state, site)
    configured = {m.id: m for m in config.meters if not m.virtual} if config else {}
    out: list[dict[str, Any]] = []
    for meter_id in sorted(set(rows) | set(health) | set(configured)):
        row = rows.get(meter_id)
        status: AgentStatus | None = None
        h: Any = None
        if meter_id in health:
            status, h = health[meter_id]
        agent = status.agent if status else (row.agent if row else None)
        agent_status = status or (agent_of.get(agent) if agent else None)
        last = row.reading.ts if row else None
        age = (now - last).total_seconds() if last else None
        if agent_status is not None and agent_status.state is AgentState.OFFLINE:
            meter_state = "offline"
        elif h is not None:
            meter_state = h.state.value
        elif last is None:
            meter_state = "unknown"
        else:
            meter_state = "online"
        # Stale after a few of the meter's own intervals (state.latest.stale_after).
        if meter_state == "online" and (row is None or row.stale(now)):
            meter_state = "stale"
        m = configured.get(meter_id)
        values = row.reading.values if row else {}
        out.append(
            {
                "id": meter_id,
                "agent": agent,
                "state": meter_state,
                "last_reading": iso(last),
                "age_s": None if age is None else round(age, 3),
                "interval_s": row.interval.total_seconds() if row and row.interval else None,
                "stale_after_s": stale_after(row.interval if row else None).total_seconds(),
                "power_w": values.get(Quantity.POWER_ACTIVE),
                "reads": h.reads if h else None,
                "errors": dict(h.errors) if h else {},
                "error_count": sum(h.errors.values()) if h else 0,
                "excluded": h.excluded if h else 0,
                "carrier": m.carrier.value if m else None,
                "role": m.role.value if m else None,
                "line": m.line if m else None,
            }
        )
    return out


def agents(state: State, site: str, now: datetime) -> list[dict[str, Any]]:
    out = []
    for s in state.statuses.of_site(site):
        outbox = s.outbox
        out.append(
            {
                "id": s.agent,
                "state": s.state.value,
                "since": iso(s.ts),
                "outbox_depth": outbox.depth if outbox else None,
                "outbox_oldest": iso(outbox.oldest) if outbox else None,
                "outbox_dropped": outbox.dropped if outbox else None,
                "meters_offline": sum(1 for h in s.meters.values() if h.state.value == "offline"),
            }
        )
    return out


def latest(state: State, site: str) -> list[dict[str, Any]]:
    return [
        {
            "meter": r.reading.meter,
            "agent": r.agent,
            "ts": iso(r.reading.ts),
            "values": {q.value: v for q, v in r.reading.values.items()},
            "units": {q.value: UNITS[q] for q in r.reading.values},
            "custom": {
                name: {"value": c.value, "unit": c.unit, "kind": c.kind.value}
                for name, c in r.reading.custom.items()
            },
        }
        for r in sorted(_rows(state, site).values(), key=lambda r: r.reading.meter)
    ]


def custom_unit(state: State, site: str, meter: str, name: str) -> str | None:
    """The unit of a user-named quantity in the meter's latest reading, if it has one."""
    row = _rows(state, site).get(meter)
    custom = row.reading.custom.get(name) if row else None
    return custom.unit if custom else None


def _power(rows: dict[str, Row], meter_ids: list[str]) -> float | None:
    values = [
        rows[m].reading.values[Quantity.POWER_ACTIVE]
        for m in meter_ids
        if m in rows and Quantity.POWER_ACTIVE in rows[m].reading.values
    ]
    return sum(values) if values else None


def _figure(f: Figure, status: str) -> dict[str, Any]:
    return {
        "window": f.window.value,
        "start": iso(f.judged.start),
        "end": iso(f.judged.end),
        "value": _num(f.judged.value),
        "status": status,
        "kgce": f.kgce,
        "kgco2": f.kgco2,
        "kwh": f.kwh,
        "output": f.output,
    }


def _progress(base: float | None, settings: Any, ytd: float | None, now: datetime) -> Any:
    if base is None or ytd is None or not base > 0:
        return None
    target = Target(
        settings.base_year, base, settings.target_year, settings.energy_reduction, "configured"
    )
    p = progress(target, now.year, ytd)
    return {
        "base_year": target.base_year,
        "base_intensity": base,
        "target_year": target.target_year,
        "target_intensity": p.target_intensity,
        "required": p.required,
        "achieved": p.achieved,
        "path_intensity": target.path(now.year) if now.year <= target.target_year else None,
        "on_path": p.on_path,
        "reached": p.reached,
        "ytd_intensity": ytd,
    }


def _active_alerts(db: AccountingDB, site: str) -> list[dict[str, Any]]:
    newest: dict[str, Any] = {}
    for a in db.alerts(site=site):
        newest[a.line] = a
    raised = [a for a in newest.values() if a.kind == "raised"]
    acks = acknowledgements(db, [a.id for a in raised])
    return [alert_view(a, acks.get(a.id)) for a in raised]


def alert_view(a: Any, ack: Acknowledgement | None = None) -> dict[str, Any]:
    """An alert record; `ack`: who acknowledged it and when (the page shows it), or null."""
    from collector.accounting.db import from_ms  # noqa: PLC0415

    return {
        "id": a.id,
        "site": a.site,
        "line": a.line,
        "kind": a.kind,
        "ts": iso(from_ms(a.ts)),
        "since": iso(from_ms(a.since)),
        "value": a.value,
        "threshold": a.threshold,
        "unit": a.unit,
        "window": a.window,
        "benchmark": a.benchmark,
        "corrected": a.corrected,
        "ack": None if ack is None else {"by": ack.by, "at": iso(ack.at), "note": ack.note},
    }


def alerts(state: State, site: str | None, active: bool) -> list[dict[str, Any]]:
    acc = state.accounting
    if acc is None:
        return []
    if active:
        sites = [site] if site else [s.id for s in acc.config.sites]
        return [a for s in sites for a in _active_alerts(acc.db, s)]
    acks = acknowledgements(acc.db)
    return [alert_view(a, acks.get(a.id)) for a in acc.db.alerts(site=site)]


def accounting(
    state: State, site: str, now: datetime, meter_list: list[dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    """Per line and for the site: every window's energy, kgce, CO2, output, intensity and
    standing; each line's benchmark; target progress; today's site totals; and how far
    each can be trusted: the freshness of the meters it rests on, its data quality and
    an alert building up (collector.api.trust)."""
    acc = state.accounting
    config = site_config(state, site)
    if acc is None or config is None:
        return None
    db, plant = acc.db, acc.config
    rows = _rows(state, site)
    if meter_list is None:
        meter_list = meters(state, site, now)
    lines = []
    for line in config.lines:
        judged = resolve_benchmark(line)
        figures = line_figures(db, plant, config, line, now)
        by_window = {f.window.value: _figure(f, standing(f.judged.value, judged)) for f in figures}
        ytd = by_window.get(Window.YEAR_TO_DATE.value, {})
        base = config.targets.base_energy_intensity.get(line.id)
        ytd_kgce = (ytd.get("kgce") / ytd["output"]) if ytd.get("output") else None
        lines.append(
            {
                "id": line.id,
                "product": line.product,
                "output_unit": line.output_unit,
                "power_w": _power(rows, [m.id for m in config.line_meters(line.id)]),
                "benchmark": {
                    "name": judged.name,
                    "unit": judged.unit,
                    "benchmark": judged.benchmark,
                    "baseline": judged.baseline,
                    "source": judged.source,
                    "kind": judged.kind,
                },
                "alert_window": line.alert.window.value if line.alert else None,
                "windows": by_window,
                "target": _progress(base, config.targets, ytd_kgce, now),
                "freshness": trust.freshness(meter_list, trust.line_meters(config, line)),
                "quality": trust.line_quality(db, config, line, now),
                "pending_alert": trust.pending_alert(db, config, line, judged),
                "indicators": _month_indicators(line, figures),
            }
        )
    site_windows = {
        f.window.value: _figure(f, standing(f.judged.value, None))
        for f in site_figures(db, plant, config, now)
    }
    today = window_start(Window.TODAY, now, config.tz, config.shift_list)
    kwh = kgce = kgco2 = 0.0
    scoped: list[tuple[int, float]] = []
    for m in config.boundary_meters():
        amount, ce, co2, _ = meter_totals(db, plant, site, m, ms(today), ms(now))
        kgce, kgco2 = kgce + ce, kgco2 + co2
        kwh += amount if m.carrier is Carrier.ELECTRICITY else 0.0
        scoped.append((config.scope(m.carrier), co2))
    ytd_site = site_windows.get(Window.YEAR_TO_DATE.value, {})
    site_base = config.targets.base_energy_intensity.get(site)
    boundary = [m.id for m in config.boundary_meters() if not m.virtual]
    return {
        "site": site,
        "timezone": config.timezone,
        "ts": iso(now),
        "power_w": _power(rows, boundary),
        "today": {
            "start": iso(today),
            "kwh": kwh,
            "kgce": kgce,
            "kgco2": kgco2,
            "emissions": emissions(db, config, scoped, today, now),
        },
        "lines": lines,
        "windows": site_windows,
        "target": _progress(site_base, config.targets, _num(ytd_site.get("value")), now),
        "alerts": _active_alerts(db, site),
        "freshness": trust.freshness(meter_list, trust.boundary_meters(config)),
        "quality": trust.site_quality(db, config, now),
    }


def _month_indicators(line: LineConfig, figures: list[Figure]) -> dict[str, Any] | None:
    """Every indicator of the line over the month to date, graded as the report grades."""
    f = next((x for x in figures if x.window is Window.MONTH_TO_DATE), None)
    if f is None:
        return None
    output = f.output if f.judged.value is not None else None
    numerators = {"kgce": f.kgce, "kgCO2": f.kgco2, "kWh": f.kwh}
    return {"window": f.window.value, "indicators": indicators(line, output, numerators)}


def emissions(
    db: AccountingDB,
    site: SiteConfig,
    energy: list[tuple[int, float]],
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """CO2 by scope over [start, end): energy CO2 given as (scope, kg) of the boundary
    meters, process CO2 from each line's output x its configured factors."""
    process: dict[str, float] = {}
    for line in site.lines:
        if line.process_emissions:
            output = db.totals(site.id, [output_series(line.id)], ms(start), ms(end))[0]
            process[line.id] = output * line.process_factor
    s = by_scope(energy, process.values())
    return {
        "scope1_combustion_kgco2": s.scope1_combustion,
        "scope1_process_kgco2": s.scope1_process,
        "scope1_kgco2": s.scope1,
        "scope2_kgco2": s.scope2_location,
        "energy_kgco2": s.energy_location,
        "total_kgco2": s.total_location,
        "process_kgco2_by_line": process,
    }


def _worst(statuses: list[str]) -> str:
    order = [
        "above_baseline",
        NO_CURRENT_DATA,
        "compliant",
        "leading",
        "ok",
        "insufficient_output",
    ]
    for s in order:
        if s in statuses:
            return s
    return "no_data"


def summary(state: State, site: str, now: datetime) -> dict[str, Any]:
    """Everything the site view shows, in one document (also the stream's `summary`)."""
    meter_list = meters(state, site, now)
    acc = accounting(state, site, now, meter_list)
    rows = _rows(state, site)
    newest = max((r.reading.ts for r in rows.values()), default=None)
    power = acc["power_w"] if acc else _power(rows, list(rows))
    return {
        "site": site,
        "ts": iso(now),
        "power_w": power,
        "newest_reading": iso(newest),
        "age_s": None if newest is None else round((now - newest).total_seconds(), 3),
        "meters": meter_list,
        "agents": agents(state, site, now),
        "accounting": acc,
    }


def fleet(state: State, now: datetime) -> list[dict[str, Any]]:
    """Every site side by side: intensity, standing, target progress, freshness, health."""
    out = []
    for site in site_ids(state):
        s = summary(state, site, now)
        acc = s["accounting"]
        line_status = []
        intensity = None
        if acc:
            for line in acc["lines"]:
                w = line["windows"].get(line["alert_window"] or Window.ROLLING_1H.value)
                if line["freshness"]["state"] != "live":
                    line_status.append(NO_CURRENT_DATA)  # never a class on old data
                elif w:
                    line_status.append(w["status"])
            w = acc["windows"].get(Window.ROLLING_1H.value)
            intensity = w["value"] if w else None
        states = [m["state"] for m in s["meters"]]
        out.append(
            {
                "site": site,
                "power_w": s["power_w"],
                "today_kgce": acc["today"]["kgce"] if acc else None,
                "today_kgco2": acc["today"]["kgco2"] if acc else None,
                "intensity_1h": intensity,
                "status": _worst(line_status),
                "lines_above_baseline": line_status.count("above_baseline"),
                "target_achieved": acc["target"]["achieved"] if acc and acc["target"] else None,
                "target_required": acc["target"]["required"] if acc and acc["target"] else None,
                "on_path": acc["target"]["on_path"] if acc and acc["target"] else None,
                "alerts": len(acc["alerts"]) if acc else 0,
                "newest_reading": s["newest_reading"],
                "age_s": s["age_s"],
                "meters": len(states),
                "meters_online": states.count("online"),
                "meters_offline": states.count("offline"),
                "freshness": acc["freshness"]["state"] if acc else None,
            }
        )
    return out
