// GreenGauge dashboard: the site view for operators and the fleet view for central teams.
// Data from the collector's API; live updates from /api/v1/stream (server-sent events, read
// with fetch so the bearer token goes in a header, never in a URL). Every text from
// I18n's message catalogs (messages.<lang>.json).
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const t = (key, vars) => I18n.t(key, vars);
  const TREND_HOURS = 3;
  const TREND_MAX_POINTS = 4000;
  const DETAIL_MINUTES = 15;
  const DETAIL_MAX_POINTS = 600;
  const ui = {
    token: null,
    view: "site",
    site: null,
    summary: null,
    summaryAt: 0,         // when the summary was received (ms): ages tick on from it
    loaded: false,        // the site's first summary is in
    conn: "connecting",   // the stream: connecting, up, down, token
    downSince: null,
    latest: {},           // meter -> {ts (ms), values, units, custom}
    trend: {},            // meter -> [[ms, W], ...]
    trendMeters: [],
    trendLoaded: false,
    intensity: {},        // line -> [[ms, value], ...]
    fleet: [],
    sort: { key: "status", dir: -1 },
    lastEvent: 0,
    detail: null,         // the meter shown in detail
    detailTrend: {},      // quantity -> [[ms, value], ...] of that meter
    who: null,            // GET /api/v1/me: name, role, via
    acked: {},            // alert id -> {by, at, note}: acknowledged here, until a summary says so
    acking: null,         // the alert the acknowledgement dialog is for
  };

  // --- token ----------------------------------------------------------------------------
  function loadToken() {
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("token")) {
      sessionStorage.setItem("gg-token", hash.get("token"));
      hash.delete("token");
      history.replaceState(null, "", location.pathname + (hash.toString() ? "#" + hash : ""));
    }
    ui.token = sessionStorage.getItem("gg-token");
    ui.site = hash.get("site");
    if (hash.get("view") === "fleet") ui.view = "fleet";
  }

  function headers() {
    return ui.token ? { Authorization: `Bearer ${ui.token}` } : {};
  }

  let asking = null;
  function askToken() {
    if (asking) return asking;
    asking = new Promise((resolve) => {
      const dialog = $("#token-dialog");
      dialog.hidden = false;
      $("#token-input").focus();
      $("#token-form").onsubmit = (ev) => {
        ev.preventDefault();
        ui.token = $("#token-input").value.trim();
        sessionStorage.setItem("gg-token", ui.token);
        dialog.hidden = true;
        asking = null;
        resolve();
      };
    });
    return asking;
  }

  // Every API call goes with the page's credentials (a token, or the proxy's cookie); a
  // 401 asks for a token and tries again.
  async function request(path, init) {
    const extra = (init && init.headers) || {};
    for (;;) {
      const res = await fetch(path, { ...init, headers: { ...headers(), ...extra } });
      if (res.status === 401) { await askToken(); continue; }
      return res;
    }
  }

  async function api(path) {
    const res = await request(path);
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    return res.json();
  }

  // --- who ----------------------------------------------------------------------------------
  // Who the API takes this page for: a named user, the single sign-on user, or anyone
  // (no tokens, loopback), and so what they may do.
  async function loadWho() {
    ui.who = await api("/api/v1/me");
    renderWho();
    renderAlerts();
  }

  // The API lets an operator or an admin acknowledge (it says so again on the POST).
  function mayAck() {
    return Boolean(ui.who) && (ui.who.role === "operator" || ui.who.role === "admin");
  }

  function renderWho() {
    if (!ui.who) return;
    const el = $("#who");
    el.hidden = false;
    el.textContent = t("who.signed_in", { name: ui.who.name, role: t(`role.${ui.who.role}`) });
    el.title = t(`who.via.${ui.who.via}`);
  }

  // --- formatting -------------------------------------------------------------------------
  const fmt = Charts.fmt;
  const DASH = "–";
  const known = (v) => v !== null && v !== undefined;

  // After the target year there is no path to be on: only whether the target is reached.
  function pathText(target) {
    if (target.on_path === null) return t(target.reached ? "target.passed_reached" : "target.passed_missed");
    return t(target.on_path ? "target.on_path" : "target.behind_path");
  }
  function power(w) {
    if (!known(w)) return [DASH, ""];
    const a = Math.abs(w);
    if (a >= 1e6) return [fmt(w / 1e6, 2), "MW"];
    if (a >= 1e3) return [fmt(w / 1e3, a >= 1e5 ? 0 : 1), "kW"];
    return [fmt(w, 0), "W"];
  }
  function mass(kg) {
    if (!known(kg)) return [DASH, ""];
    return kg >= 10000 ? [fmt(kg / 1000, 2), "t"] : [fmt(kg, kg >= 100 ? 0 : 1), "kg"];
  }
  function count(v) {
    if (!known(v)) return DASH;
    return Math.abs(v) >= 10 ? fmt(Math.round(v), 0) : fmt(v);
  }
  function age(seconds) {
    if (!known(seconds)) return DASH;
    if (seconds < 90) return t("dur.s", { n: fmt(Math.max(0, seconds), seconds < 10 ? 1 : 0) });
    if (seconds < 5400) return t("dur.min", { n: fmt(Math.round(seconds / 60), 0) });
    return t("dur.h", { n: fmt(seconds / 3600, 1) });
  }
  function pct(share) {
    return known(share) ? `${fmt(share * 100, share >= 0.995 || share === 0 ? 0 : 1)} %` : DASH;
  }
  function unitText(unit) {
    return unit === "1" ? "" : unit === "m3" ? "m³" : unit || "";
  }
  function windowText(w) {
    return w ? t(`window.${w}`) : "";
  }
  // Seconds since the summary came, added to the ages it gave.
  function since() {
    return ui.summaryAt ? (Date.now() - ui.summaryAt) / 1000 : 0;
  }
  function setValue(node, value, unit) {
    const before = node.dataset.v;
    node.textContent = value;
    if (unit) {
      const span = document.createElement("span");
      span.className = "unit";
      span.textContent = unit;
      node.appendChild(span);
    }
    node.dataset.v = value;
    if (before !== undefined && before !== value) {
      node.classList.remove("flash");
      void node.offsetWidth;
      node.classList.add("flash");
    }
  }
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function svg(cls) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    node.setAttribute("class", cls);
    return node;
  }
  // A meter's name anywhere on the page: a button that opens its detail.
  function meterLink(id, text) {
    const b = h("button", { type: "button", class: "meter-link", "data-meter": id, text: text || id });
    b.onclick = (ev) => { ev.stopPropagation(); openDetail(id); };
    return b;
  }
  // "line-1 (offline, 51 s)" for each meter a figure rests on that is not current.
  function lateMeters(fresh) {
    const box = h("span", { class: "late-meters" });
    fresh.meters.forEach((m, i) => {
      if (i) box.append(", ");
      const ageText = known(m.age_s) ? t("fresh.meter_age", { age: age(m.age_s + since()) }) : t("fresh.never");
      box.append(meterLink(m.id), ` (${t(`meterstate.${m.state}`)}, ${ageText})`);
    });
    return box;
  }

  // --- page state: loading, no data yet, disconnected, live --------------------------------
  function pageState() {
    if (ui.conn === "down" || ui.conn === "token") return "down";
    if (!ui.loaded) return "loading";
    if (!Object.keys(ui.latest).length) return "no_data";
    return ui.conn === "up" ? "live" : "loading";
  }

  function renderState() {
    const state = pageState();
    document.body.dataset.state = state;
    $("#conn").dataset.state = state;
    $("#conn-text").textContent = ui.conn === "token" ? t("conn.token") : t(`conn.${state}`);
    const banner = $("#banner");
    banner.hidden = state !== "down";
    if (state === "down") {
      banner.textContent = t("banner.down", { time: I18n.time(ui.downSince || Date.now()) });
    }
  }

  // --- site view ----------------------------------------------------------------------------
  function boundaryMeters() {
    const meters = (ui.summary && ui.summary.meters) || [];
    const boundary = meters.filter((m) => m.role === "boundary").map((m) => m.id);
    return boundary.length ? boundary : meters.map((m) => m.id);
  }

  function livePower() {
    let total = null;
    for (const id of boundaryMeters()) {
      const r = ui.latest[id];
      const v = r && r.values.power_active;
      if (v !== undefined) total = (total || 0) + v;
    }
    return total;
  }

  // The site's figures rest on its boundary meters (all meters without a plant model).
  function siteFreshness() {
    const acc = ui.summary && ui.summary.accounting;
    if (acc && acc.freshness) return acc.freshness;
    const meters = (ui.summary && ui.summary.meters) || [];
    const ages = meters.map((m) => m.age_s).filter(known);
    const late = meters.filter((m) => m.state !== "online").map((m) => ({ id: m.id, state: m.state, age_s: m.age_s }));
    return { state: ages.length ? (late.length ? "stale" : "live") : "no_data", age_s: ages.length ? Math.max(...ages) : null, meters: late };
  }

  function renderKpis() {
    if (!ui.loaded) return;
    const acc = ui.summary && ui.summary.accounting;
    const fresh = siteFreshness();
    const [p, pu] = power(livePower());
    setValue($("#kpi-power"), p, pu);
    const today = acc && acc.today;
    setValue($("#kpi-kwh"), today ? fmt(today.kwh, today.kwh >= 100 ? 0 : 1) : DASH, today ? "kWh" : "");
    setValue($("#kpi-kgce"), today ? fmt(today.kgce, today.kgce >= 100 ? 0 : 2) : DASH, today ? "kgce" : "");
    const [c, cu] = today ? mass(today.kgco2) : [DASH, ""];
    setValue($("#kpi-co2"), c, cu ? `${cu} CO₂` : "");
    $("#kpi-power-sub").textContent = acc ? t("kpi.power_sub_boundary", { meters: boundaryMeters().join(", ") }) : t("kpi.power_sub_all");
    const stale = fresh.state !== "live";
    for (const id of ["#kpi-power", "#kpi-kwh", "#kpi-kgce", "#kpi-co2"]) {
      $(id).closest(".kpi").classList.toggle("stale", stale);
    }
    const note = $("#site-note");
    note.hidden = !(stale && fresh.meters.length);
    note.textContent = "";
    if (!note.hidden) note.append(h("b", { text: t("fresh.no_current_data") }), " · ", t("fresh.site_rests_on"), " ", lateMeters(fresh));
    renderQuality($("#kpi-quality"), acc && acc.quality);
  }

  function renderAge() {
    if (!ui.loaded) return;
    const fresh = siteFreshness();
    const node = $("#kpi-age");
    if (!known(fresh.age_s)) {
      setValue(node, DASH);
      $("#kpi-age-sub").textContent = t("fresh.no_readings");
    } else {
      const s = fresh.age_s + since();
      node.textContent = age(s);
      node.classList.toggle("stale", fresh.state !== "live");
      $("#kpi-age-sub").textContent = t("kpi.freshness_sub");
    }
    for (const row of document.querySelectorAll("#meters tbody tr")) {
      const r = ui.latest[row.dataset.meter];
      if (r) row.querySelector(".age").textContent = age((Date.now() - r.ts) / 1000);
    }
    for (const card of document.querySelectorAll(".line-card[data-fresh='stale']")) {
      const line = lineById(card.dataset.line);
      const node2 = card.querySelector(".stale-age");
      if (line && node2) node2.textContent = t("fresh.as_of", { age: age(line.freshness.age_s + since()) });
    }
    if (ui.detail) renderDetailFacts();
  }

  function lineById(id) {
    const acc = ui.summary && ui.summary.accounting;
    return acc ? acc.lines.find((l) => l.id === id) : null;
  }

  function lineWindow(line) {
    return line.windows[line.alert_window || "rolling_1h"] || line.windows.rolling_1h || {};
  }

  // Plain words for how a figure is known: measured minutes, estimated share, set-asides.
  function qualityText(q) {
    if (!q || !q.expected_minutes) return { cls: "none", text: t("quality.none"), title: "" };
    const measured = q.completeness || 0;
    const estimated = q.estimated_share || 0;
    const cls = measured >= 0.95 && estimated < 0.05 ? "good" : measured >= 0.75 ? "partial" : "poor";
    let text = t("quality.summary", { measured: pct(q.completeness), estimated: pct(q.estimated_share) });
    if (q.findings && q.findings.length) {
      const kinds = [...new Set(q.findings.map((f) => t(`issue.${f.issue}`)))].join(", ");
      text += ` · ${t("quality.findings", { n: q.findings.length, kinds })}`;
    }
    const by = Object.entries(q.by_quality || {}).filter(([, v]) => v).map(([k, v]) => `${t(`quality.kind.${k}`)}: ${fmt(v)} kgce`);
    const title = [t("quality.minutes", { measured: q.measured_minutes, expected: q.expected_minutes }), ...by].join("\n");
    return { cls, text, title };
  }

  function renderQuality(node, quality) {
    node.textContent = "";
    if (!quality) return;
    for (const w of ["rolling_1h", "today"]) {
      if (!quality[w]) continue;
      const q = qualityText(quality[w]);
      node.append(h("div", { class: `quality ${q.cls}`, title: q.title || null },
        h("span", { class: "quality-window", text: `${t("quality.label")} · ${windowText(w)}` }), " ", q.text));
    }
  }

  function pendingText(line) {
    const p = line.pending_alert;
    if (!p) return null;
    const lasted = Math.max(0, (Date.now() - Date.parse(p.since)) / 1000);
    const vars = { for: age(lasted), at: age(p.min_duration_s), threshold: fmt(p.threshold), unit: line.benchmark.unit };
    if (p.phase === "clearing") return t("pending.clearing", vars);
    return p.threshold === line.benchmark.baseline ? t("pending.rising_baseline", vars) : t("pending.rising", vars);
  }

  function renderLines() {
    const box = $("#lines");
    if (!ui.loaded) return;
    const acc = ui.summary && ui.summary.accounting;
    box.textContent = "";
    if (!acc) { box.append(h("div", { class: "empty", text: t("lines.no_model") })); return; }
    if (!acc.lines.length) { box.append(h("div", { class: "empty", text: t("lines.none") })); return; }
    const now = Date.now();
    const draw = [];
    for (const line of acc.lines) {
      const w = lineWindow(line);
      const today = line.windows.today || {};
      const b = line.benchmark;
      const fresh = line.freshness || { state: "live", meters: [], fed_by: [] };
      const current = fresh.state === "live";
      // A class judged on data that is not current is not shown: "no current data".
      const status = current ? w.status || "no_data" : "no_current_data";
      const hist = (ui.intensity[line.id] = ui.intensity[line.id] || []);
      if (current && (!hist.length || now - hist[hist.length - 1][0] > 900)) hist.push([now, w.value]);
      if (hist.length > 2000) hist.shift();
      const gauge = svg("gauge");
      const spark = svg("spark");
      const [lp, lpu] = power(line.power_w);
      const target = line.target
        ? h("div", { class: "target", text: t("target.line", {
            year: line.target.target_year, required: fmt(line.target.required * 100, 1), base: line.target.base_year,
            achieved: fmt(line.target.achieved * 100, 1), path: pathText(line.target) }) })
        : null;
      const staleNote = current ? null : h("div", { class: "stale-note" },
        h("b", { text: t(fresh.state === "no_data" ? "fresh.no_data_yet" : "fresh.no_current_data") }), " · ",
        h("span", { class: "stale-age", text: known(fresh.age_s) ? t("fresh.as_of", { age: age(fresh.age_s + since()) }) : "" }), " · ",
        t("fresh.rests_on"), " ", lateMeters(fresh));
      const pending = current ? pendingText(line) : null;
      const feeds = h("div", { class: "line-meters" }, h("span", { class: "muted", text: t("lines.meters") }), " ");
      fresh.fed_by.forEach((id, i) => { if (i) feeds.append(" "); feeds.append(meterLink(id)); });
      const quality = h("div", { class: "line-quality" });
      renderQuality(quality, line.quality);
      const card = h("article", { class: "line-card", "data-line": line.id, "data-status": status, "data-fresh": fresh.state },
        h("div", { class: "line-head" },
          h("div", {}, h("div", { class: "line-name", text: line.id }),
            h("div", { class: "line-product", text: `${line.product} · ${b.name}` })),
          h("span", { class: `badge ${status}`, text: t(`status.${status}`) })),
        staleNote,
        h("div", { class: "line-main" },
          h("span", { class: "line-value", text: known(w.value) ? fmt(w.value) : DASH }),
          h("span", { class: "line-unit", text: `${b.unit} · ${windowText(w.window)}` })),
        pending ? h("div", { class: "pending", text: pending }) : null,
        gauge, spark,
        h("div", { class: "line-facts" },
          h("div", { text: windowText("today") }, h("b", { text: known(today.value) ? fmt(today.value) : DASH })),
          h("div", { text: t("lines.power") }, h("b", { text: `${lp} ${lpu}` })),
          h("div", { text: t("lines.output_1h") }, h("b", { text: `${count(w.output)} ${line.output_unit}` }))),
        quality, target, feeds);
      box.appendChild(card);
      draw.push(() => {
        Charts.bandGauge(gauge, w.value, b.benchmark, b.baseline, b.unit);
        Charts.bandSpark(spark, hist, b.benchmark, b.baseline);
      });
    }
    // Drawn once every card is laid out: the grid's column widths depend on them all.
    for (const fn of draw) fn();
  }

  function renderAlerts() {
    const list = $("#alerts");
    if (!ui.loaded) return;
    const acc = ui.summary && ui.summary.accounting;
    const alerts = (acc && acc.alerts) || [];
    const pending = ((acc && acc.lines) || []).filter((l) => l.pending_alert && l.freshness.state === "live");
    list.textContent = "";
    $("#alert-count").textContent = String(alerts.length);
    $("#alert-count").classList.toggle("hot", alerts.length > 0);
    if (!acc) { list.append(h("li", { class: "empty", text: t("alerts.no_model") })); return; }
    for (const a of alerts) {
      const item = h("li", { class: "alert", "data-alert": String(a.id) },
        h("div", { class: "alert-title", text: alertTitle(a) }),
        h("div", { class: "alert-meta", text: t("alerts.meta", { since: I18n.dateTime(Date.parse(a.since)), window: windowText(a.window), benchmark: a.benchmark }) }));
      const ack = a.ack || ui.acked[a.id];
      if (ack) {
        item.append(h("div", { class: "alert-ack", title: ack.note || null,
          text: t("ack.done", { by: ack.by, time: I18n.dateTime(Date.parse(ack.at)) }) }));
      } else if (mayAck()) {
        const button = h("button", { type: "button", class: "ack-button", text: t("ack.button") });
        button.onclick = () => openAck(a);
        item.append(button);
      }
      list.append(item);
    }
    for (const line of pending) {
      list.append(h("li", { class: "alert pending" },
        h("div", { class: "alert-title", text: `${line.id}: ${pendingText(line)}` }),
        h("div", { class: "alert-meta", text: t("alerts.pending_meta") })));
    }
    if (!alerts.length && !pending.length) list.append(h("li", { class: "empty", text: t("alerts.none") }));
  }

  function alertTitle(a) {
    return t("alerts.title_line", { line: a.line, value: fmt(a.value), unit: a.unit, threshold: fmt(a.threshold) });
  }

  // --- acknowledging an alert ---------------------------------------------------------------
  function openAck(alert) {
    ui.acking = alert;
    $("#ack-alert").textContent = alertTitle(alert);
    $("#ack-by").value = ui.who ? ui.who.name : "";
    $("#ack-note").value = "";
    ackError(null);
    $("#ack-submit").disabled = false;
    $("#ack-dialog").hidden = false;
    $("#ack-note").focus();
  }

  function closeAck() {
    ui.acking = null;
    $("#ack-dialog").hidden = true;
  }

  // In plain words; the collector's own reason (in English) below it, when it gave one.
  function ackError(text, detail) {
    const box = $("#ack-error");
    box.hidden = !text;
    box.textContent = text || "";
    if (text && detail) box.append(h("small", { text: detail }));
  }

  async function reason(res) {
    try {
      const body = await res.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) {
      return "";
    }
  }

  function ackRefused(status) {
    // A role that should do (the page's view of it is older than the collector's): its reason says why.
    if (status === 403 && mayAck()) return t("ack.error.refused");
    if (status === 403) return t("ack.error.forbidden", { role: t(`role.${ui.who ? ui.who.role : "viewer"}`) });
    if (status === 404) return t("ack.error.gone");
    if (status === 422) return t("ack.error.invalid");
    if (status === 503) return t("ack.error.busy");
    return t("ack.error.other", { status });
  }

  async function submitAck(ev) {
    ev.preventDefault();
    const alert = ui.acking;
    if (!alert) return;
    const by = $("#ack-by").value.trim();
    const body = { note: $("#ack-note").value.trim() };
    if (by) body.by = by;
    $("#ack-submit").disabled = true;
    try {
      let res;
      try {
        res = await request(`/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      } catch (e) {
        ackError(t("ack.error.network"));
        return;
      }
      if (res.ok) {
        const done = await res.json();
        ui.acked[alert.id] = { by: done.by, at: done.at, note: done.note };
        closeAck();
        renderAlerts();
        return;
      }
      const detail = await reason(res);
      if (res.status === 409) {
        // Someone was first: say who, and show theirs on the alert.
        const earlier = await api(`/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`).catch(() => null);
        if (earlier) {
          ui.acked[alert.id] = earlier;
          renderAlerts();
          ackError(t("ack.error.taken", { by: earlier.by, time: I18n.dateTime(Date.parse(earlier.at)) }));
        } else {
          ackError(t("ack.error.taken_unknown"), detail);
        }
        return;
      }
      ackError(ackRefused(res.status), detail);
    } finally {
      $("#ack-submit").disabled = false;
    }
  }

  function renderAgents() {
    const box = $("#agents");
    if (!ui.loaded) return;
    box.textContent = "";
    const agents = (ui.summary && ui.summary.agents) || [];
    if (!agents.length) { box.append(h("div", { class: "empty", text: t("agents.none") })); return; }
    for (const a of agents) {
      const backlog = a.outbox_depth === null ? DASH : t("agents.waiting", { n: a.outbox_depth });
      const dropped = a.outbox_dropped ? ` · ${t("agents.dropped", { n: a.outbox_dropped })}` : "";
      box.append(h("div", { class: "agent" },
        h("span", { class: `state ${a.state}`, text: a.id }),
        h("span", { class: "muted", text: `${t(`meterstate.${a.state}`)} · ${t("agents.outbox")} ${backlog}${dropped}` })));
    }
  }

  function renderMeters() {
    const body = $("#meters tbody");
    if (!ui.loaded) return;
    const meters = (ui.summary && ui.summary.meters) || [];
    body.textContent = "";
    const online = meters.filter((m) => m.state === "online").length;
    $("#meter-count").textContent = t("meters.online", { online, total: meters.length });
    const label = (key) => t(`meters.${key}`);
    if (!meters.length) body.append(h("tr", {}, h("td", { class: "empty", colspan: "8", text: t("meters.none") })));
    for (const m of meters) {
      const r = ui.latest[m.id];
      const [p, pu] = power(r ? r.values.power_active : m.power_w);
      const errors = Object.entries(m.errors || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      const row = h("tr", { "data-meter": m.id, class: m.state === "online" ? null : "not-current" },
        h("td", { "data-label": label("meter") }, meterLink(m.id)),
        h("td", { "data-label": label("state") }, h("span", { class: `state ${m.state}`, text: t(`meterstate.${m.state}`) })),
        h("td", { "data-label": label("line"), text: m.line || (m.role === "boundary" ? t("meters.boundary") : DASH) }),
        h("td", { class: "num power", "data-label": label("power"), text: `${p} ${pu}` }),
        h("td", { class: "num age", "data-label": label("last_reading"), text: r ? age((Date.now() - r.ts) / 1000) : DASH }),
        h("td", { class: "num", "data-label": label("reads"), text: m.reads === null ? DASH : String(m.reads) }),
        h("td", { class: "num", "data-label": label("errors"), title: errors || null, text: String(m.error_count || 0) }),
        h("td", { "data-label": label("agent"), text: m.agent || DASH }));
      row.onclick = () => openDetail(m.id);
      body.append(row);
    }
  }

  function renderTrend() {
    const end = Date.now();
    // The last TREND_HOURS, or less while the data does not reach back that far.
    const first = Math.min(end, ...ui.trendMeters.map((id) => (ui.trend[id] && ui.trend[id].length ? ui.trend[id][0][0] : end)));
    const start = Math.max(end - TREND_HOURS * 3600e3, Math.min(first - 60e3, end - 10 * 60e3));
    const minutes = Math.round((end - start) / 60e3);
    const span = minutes >= 90 ? t("dur.h", { n: Math.round(minutes / 60) }) : t("dur.min", { n: minutes });
    $("#trend-title").textContent = t("trend.title", { span });
    const series = ui.trendMeters.map((id, i) => ({
      name: id,
      color: Charts.PALETTE[i % Charts.PALETTE.length],
      points: (ui.trend[id] || []).map(([ts, v]) => [ts, v / 1000]),
      fill: i === 0,
      width: i === 0 ? 2.4 : 1.6,
    }));
    const empty = !ui.trendLoaded ? t("state.loading") : t("trend.no_data");
    Charts.lineChart($("#trend"), series, { start, end, unit: "kW", empty });
    const legend = $("#trend-legend");
    legend.textContent = "";
    series.forEach((s) => {
      const sw = h("span", { class: "sw" });
      sw.style.background = s.color;
      legend.append(h("span", { class: "legend-item" }, sw, s.name));
    });
  }

  function renderSite() {
    renderKpis();
    renderLines();
    renderAlerts();
    renderAgents();
    renderMeters();
    renderAge();
    renderState();
  }

  function useSummary(summary) {
    ui.summary = summary;
    ui.summaryAt = Date.now();
    ui.loaded = true;
    renderSite();
  }

  async function loadSite(site) {
    ui.site = site;
    ui.latest = {};
    ui.trend = {};
    ui.intensity = {};
    ui.loaded = false;
    ui.trendLoaded = false;
    const [summary, latest] = await Promise.all([
      api(`/api/v1/sites/${encodeURIComponent(site)}`),
      api(`/api/v1/sites/${encodeURIComponent(site)}/latest`),
    ]);
    for (const r of latest) keepReading(r);
    ui.summary = summary;
    const acc = summary.accounting;
    const lineMeters = acc ? summary.meters.filter((m) => m.line).map((m) => m.id) : [];
    ui.trendMeters = [...new Set([...boundaryMeters(), ...lineMeters])].slice(0, 8);
    useSummary(summary);
    renderTrend();
    const end = new Date();
    const start = new Date(end - TREND_HOURS * 3600e3);
    await Promise.all(ui.trendMeters.map(async (id) => {
      try {
        const q = new URLSearchParams({ meter: id, quantity: "power_active", start: start.toISOString(), end: end.toISOString(), step: "30" });
        const data = await api(`/api/v1/sites/${encodeURIComponent(site)}/history?${q}`);
        const live = ui.trend[id] || [];
        ui.trend[id] = data.points.map((p) => [p[0] + 15000, p[1]]).concat(live);
      } catch (e) { /* no history source: live points only */ }
    }));
    ui.trendLoaded = true;
    renderTrend();
  }

  // --- meter detail ------------------------------------------------------------------------
  function quantityName(q) {
    return q.startsWith("x_") ? q : t(`q.${q}`);
  }

  function detailValues(r) {
    const out = Object.entries(r.values).map(([q, v]) => [q, v, unitText(r.units[q])]);
    for (const [q, c] of Object.entries(r.custom || {})) out.push([q, c.value, unitText(c.unit)]);
    return out;
  }

  function renderDetailFacts() {
    const id = ui.detail;
    const m = ((ui.summary && ui.summary.meters) || []).find((x) => x.id === id);
    const r = ui.latest[id];
    const state = m ? m.state : "unknown";
    const stateNode = $("#meter-state");
    stateNode.className = `state ${state}`;
    stateNode.textContent = t(`meterstate.${state}`);
    $("#meter-dialog .dialog").dataset.state = state;
    const facts = [
      [t("detail.last_reading"), r ? `${age((Date.now() - r.ts) / 1000)} · ${I18n.time(r.ts)}` : DASH],
      [t("detail.interval"), m && known(m.interval_s) ? age(m.interval_s) : DASH],
      [t("meters.agent"), (m && m.agent) || DASH],
      [t("meters.line"), m ? m.line || (m.role === "boundary" ? t("meters.boundary") : DASH) : DASH],
      [t("meters.errors"), m ? Object.entries(m.errors || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "0" : DASH],
    ];
    const box = $("#meter-facts");
    box.textContent = "";
    for (const [k, v] of facts) box.append(h("div", {}, h("span", { class: "muted", text: k }), h("b", { text: v })));
  }

  function renderDetailValues() {
    const id = ui.detail;
    const r = ui.latest[id];
    const body = $("#meter-quantities tbody");
    if (!r) {
      body.textContent = "";
      body.append(h("tr", {}, h("td", { colspan: "4", class: "empty", text: t("detail.no_readings") })));
      return;
    }
    for (const [q, v, unit] of detailValues(r)) {
      let row = body.querySelector(`tr[data-quantity="${CSS.escape(q)}"]`);
      if (!row) {
        body.querySelector("td.empty")?.closest("tr")?.remove();
        row = h("tr", { "data-quantity": q },
          h("td", { text: quantityName(q), title: q }),
          h("td", { class: "num value" }),
          h("td", { class: "unit", text: unit }),
          h("td", { class: "trend-cell" }, svg("qspark")));
        body.append(row);
      }
      row.querySelector(".value").textContent = fmt(v);
      Charts.spark(row.querySelector(".qspark"), ui.detailTrend[q] || []);
    }
  }

  function remember(q, ts, v) {
    const points = (ui.detailTrend[q] = ui.detailTrend[q] || []);
    if (points.length && points[points.length - 1][0] >= ts) return;
    points.push([ts, v]);
    if (points.length > DETAIL_MAX_POINTS) points.splice(0, points.length - DETAIL_MAX_POINTS);
  }

  async function openDetail(id) {
    ui.detail = id;
    ui.detailTrend = {};
    $("#meter-title").textContent = t("detail.title", { meter: id });
    $("#meter-quantities tbody").textContent = "";
    $("#meter-dialog").hidden = false;
    renderDetailFacts();
    renderDetailValues();
    $("#meter-close").focus();
    const r = ui.latest[id];
    if (!r) return;
    // A short trend of every quantity: the stored last minutes, then the live readings.
    const end = new Date();
    const start = new Date(end - DETAIL_MINUTES * 60e3);
    const site = ui.site;
    await Promise.all(detailValues(r).map(async ([q]) => {
      try {
        const query = new URLSearchParams({ meter: id, quantity: q, start: start.toISOString(), end: end.toISOString(), step: "10" });
        const data = await api(`/api/v1/sites/${encodeURIComponent(site)}/history?${query}`);
        if (ui.detail !== id) return;
        const live = ui.detailTrend[q] || [];
        ui.detailTrend[q] = data.points.map((p) => [p[0] + 5000, p[1]]).filter(([ts]) => !live.length || ts < live[0][0]).concat(live);
      } catch (e) { /* no history source: live points only */ }
    }));
    if (ui.detail === id) renderDetailValues();
  }

  function closeDetail() {
    ui.detail = null;
    $("#meter-dialog").hidden = true;
  }

  // --- fleet view --------------------------------------------------------------------------------
  const STATUS_RANK = { above_baseline: 5, no_current_data: 4, compliant: 3, leading: 2, ok: 1, insufficient_output: 0, no_data: -1 };

  function renderFleet() {
    const body = $("#fleet tbody");
    body.textContent = "";
    const { key, dir } = ui.sort;
    const value = (row) => (key === "status" ? STATUS_RANK[row.status] ?? -2 : row[key]);
    const rows = [...ui.fleet].sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === y) return a.site.localeCompare(b.site);
      if (!known(x)) return 1;
      if (!known(y)) return -1;
      return (typeof x === "string" ? x.localeCompare(y) : x - y) * dir;
    });
    const label = {};
    for (const th of document.querySelectorAll("#fleet th")) {
      th.setAttribute("aria-sort", th.dataset.key === key ? (dir > 0 ? "ascending" : "descending") : "none");
      label[th.dataset.key] = th.textContent;
    }
    for (const r of rows) {
      const [p, pu] = power(r.power_w);
      const [c, cu] = mass(r.today_kgco2);
      let progress = h("span", { class: "muted", text: t("fleet.no_target") });
      if (r.target_required) {
        const share = Math.max(0, Math.min(1, (r.target_achieved || 0) / r.target_required));
        const bar = h("span", { class: "bar" }, h("span", {}));
        bar.firstChild.style.width = `${(share * 100).toFixed(0)}%`;
        bar.firstChild.style.background = r.on_path ? "var(--leading)" : "var(--compliant)";
        progress = h("span", {}, bar, `${fmt(r.target_achieved * 100, 1)} / ${fmt(r.target_required * 100, 1)} %`);
      }
      const cell = (k, attrs, ...children) => h("td", { "data-label": label[k], ...attrs }, ...children);
      const row = h("tr", { "data-site": r.site },
        cell("site", { text: r.site }),
        cell("status", {}, h("span", { class: `state ${r.status}`, text: t(`status.${r.status}`) })),
        cell("intensity_1h", { class: "num", text: fmt(r.intensity_1h) }),
        cell("power_w", { class: "num", text: `${p} ${pu}` }),
        cell("today_kgce", { class: "num", text: fmt(r.today_kgce) }),
        cell("today_kgco2", { class: "num", text: `${c} ${cu}` }),
        cell("target_achieved", {}, progress),
        cell("alerts", { class: "num", text: String(r.alerts) }),
        cell("meters_online", { class: "num", text: `${r.meters_online} / ${r.meters}` }),
        cell("age_s", { class: "num", text: age(r.age_s) }));
      row.onclick = () => { show("site"); selectSite(r.site); };
      body.append(row);
    }
  }

  async function loadFleet() {
    ui.fleet = await api("/api/v1/fleet");
    const select = $("#site-select");
    const sites = [...select.options].map((o) => o.value).join();
    if (sites !== ui.fleet.map((r) => r.site).join()) {
      select.textContent = "";
      for (const r of ui.fleet) select.append(h("option", { value: r.site, text: r.site }));
    }
    if (ui.site) select.value = ui.site;
    renderFleet();
  }

  // --- live stream ------------------------------------------------------------------------------
  function setConn(conn) {
    if (conn === "down" && ui.conn !== "down") ui.downSince = Date.now();
    ui.conn = conn;
    renderState();
  }

  function keepReading(r) {
    const ts = Date.parse(r.ts);
    const had = ui.latest[r.meter];
    if (!had || had.ts <= ts) ui.latest[r.meter] = { ts, values: r.values, units: r.units || {}, custom: r.custom || {} };
    return ts;
  }

  function onReading(data) {
    if (data.site !== ui.site) return;
    for (const r of data.readings) {
      // The stream carries the wire batch: units are the contract's, from the latest.
      const had = ui.latest[r.meter];
      const ts = keepReading({ ...r, units: had ? had.units : {} });
      if (ui.trendMeters.includes(r.meter) && r.values.power_active !== undefined) {
        const points = (ui.trend[r.meter] = ui.trend[r.meter] || []);
        points.push([ts, r.values.power_active]);
        if (points.length > TREND_MAX_POINTS) points.splice(0, points.length - TREND_MAX_POINTS);
      }
      if (r.meter === ui.detail) {
        for (const [q, v] of Object.entries(r.values)) remember(q, ts, v);
        for (const [q, c] of Object.entries(r.custom || {})) remember(q, ts, c.value);
      }
      const row = document.querySelector(`#meters tr[data-meter="${CSS.escape(r.meter)}"]`);
      if (row && r.values.power_active !== undefined) {
        const [p, pu] = power(r.values.power_active);
        row.querySelector(".power").textContent = `${p} ${pu}`;
      }
    }
    if (ui.detail && data.readings.some((r) => r.meter === ui.detail)) renderDetailValues();
    renderKpis();
    renderAge();
    renderState();
  }

  function onEvent(kind, data) {
    ui.lastEvent = Date.now();
    if (kind === "reading") onReading(data);
    else if (kind === "summary" && data.site === ui.site) useSummary(data);
    else if (kind === "alert" && data.site === ui.site) {
      api(`/api/v1/sites/${encodeURIComponent(ui.site)}`).then(useSummary).catch(console.error);
    }
  }

  async function stream() {
    let delay = 1000;
    for (;;) {
      try {
        const res = await fetch("/api/v1/stream", { headers: { ...headers(), Accept: "text/event-stream" } });
        if (res.status === 401) { setConn("token"); await askToken(); continue; }
        if (!res.ok || !res.body) throw new Error(String(res.status));
        setConn("up");
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let kind = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) kind = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) {
              try { onEvent(kind, JSON.parse(data)); } catch (e) { console.error(e); }
            }
          }
        }
      } catch (e) { /* reconnect below */ }
      setConn("down");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  // --- navigation --------------------------------------------------------------------------------
  function show(view) {
    ui.view = view;
    $("#view-site").hidden = view !== "site";
    $("#view-fleet").hidden = view !== "fleet";
    $("#tab-site").setAttribute("aria-selected", String(view === "site"));
    $("#tab-fleet").setAttribute("aria-selected", String(view === "fleet"));
    if (view === "fleet") loadFleet().catch(console.error);
    if (view === "site") renderTrend();
    updateHash();
  }

  function updateHash() {
    const hash = new URLSearchParams();
    if (ui.site) hash.set("site", ui.site);
    if (ui.view === "fleet") hash.set("view", "fleet");
    history.replaceState(null, "", `${location.pathname}#${hash}`);
  }

  function selectSite(site) {
    $("#site-select").value = site;
    loadSite(site).catch(console.error);
    updateHash();
  }

  function rerender() {
    renderState();
    renderWho();
    renderSite();
    renderTrend();
    if (ui.view === "fleet") renderFleet();
    if (ui.detail) {
      $("#meter-title").textContent = t("detail.title", { meter: ui.detail });
      $("#meter-quantities tbody").textContent = "";
      renderDetailFacts();
      renderDetailValues();
    }
  }

  async function main() {
    await I18n.load();
    $("#lang-select").value = I18n.lang;
    $("#lang-select").onchange = (ev) => I18n.choose(ev.target.value).then(rerender).catch(console.error);
    renderState();
    renderTrend();
    loadToken();
    loadWho().catch(console.error);
    for (const b of document.querySelectorAll(".tabs button")) b.onclick = () => show(b.dataset.view);
    for (const th of document.querySelectorAll("#fleet th")) {
      th.onclick = () => {
        ui.sort = { key: th.dataset.key, dir: ui.sort.key === th.dataset.key ? -ui.sort.dir : -1 };
        renderFleet();
      };
    }
    $("#site-select").onchange = (ev) => selectSite(ev.target.value);
    $("#meter-close").onclick = closeDetail;
    $("#meter-dialog").onclick = (ev) => { if (ev.target === ev.currentTarget) closeDetail(); };
    $("#ack-form").onsubmit = (ev) => { submitAck(ev).catch(console.error); };
    $("#ack-cancel").onclick = closeAck;
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape") return;
      if (ui.acking) closeAck(); else if (ui.detail) closeDetail();
    });
    setInterval(() => {
      $("#clock").textContent = I18n.time(Date.now());
      if (ui.view === "site") renderAge();
    }, 1000);
    setInterval(() => { if (ui.view === "site") renderTrend(); }, 5000);
    setInterval(() => {
      if (ui.view === "fleet") loadFleet().catch(console.error);
      // Without a stream (a proxy that buffers), the page still refreshes.
      else if (ui.site && Date.now() - ui.lastEvent > 10000) {
        api(`/api/v1/sites/${encodeURIComponent(ui.site)}`).then(useSummary).catch(console.error);
      }
    }, 5000);
    window.addEventListener("resize", () => { renderTrend(); renderLines(); });
    stream();
    await loadFleet();
    if (!ui.site && ui.fleet.length) ui.site = ui.fleet[0].site;
    if (ui.site) await loadSite(ui.site);
    else { ui.loaded = true; ui.trendLoaded = true; renderSite(); renderTrend(); }
    show(ui.view);
  }

  main().catch((e) => { console.error(e); setConn("down"); });
})();
