// GreenGauge dashboard: the site view for operators and the fleet view for central teams.
// Data from the collector's API; live updates from /api/v1/stream (server-sent events, read
// with fetch so the bearer token goes in a header, never in a URL).
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const TREND_HOURS = 3;
  const TREND_MAX_POINTS = 4000;
  const STATUS_TEXT = {
    leading: "Leading", compliant: "Compliant", above_baseline: "Above baseline",
    insufficient_output: "No output", ok: "OK", no_data: "No data",
  };
  const ui = {
    token: null,
    view: "site",
    site: null,
    sites: [],
    summary: null,
    latest: {},           // meter -> {ts (ms), values, custom}
    trend: {},            // meter -> [[ms, W], ...]
    trendMeters: [],
    intensity: {},        // line -> [[ms, value], ...]
    fleet: [],
    sort: { key: "status", dir: -1 },
    lastEvent: 0,
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

  async function api(path) {
    for (;;) {
      const res = await fetch(path, { headers: headers() });
      if (res.status === 401) { await askToken(); continue; }
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      return res.json();
    }
  }

  // --- formatting -------------------------------------------------------------------------
  const fmt = Charts.fmt;
// After the target year there is no path to be on: only whether the target is reached.
function pathText(t) {
  if (t.on_path === null) return t.reached ? "target year passed, target reached" : "target year passed, target not reached";
  return t.on_path ? "on path" : "behind path";
}

function power(w) {
    if (w === null || w === undefined) return ["–", ""];
    const a = Math.abs(w);
    if (a >= 1e6) return [fmt(w / 1e6, 2), "MW"];
    if (a >= 1e3) return [fmt(w / 1e3, a >= 1e5 ? 0 : 1), "kW"];
    return [fmt(w, 0), "W"];
  }
  function mass(kg) {
    if (kg === null || kg === undefined) return ["–", ""];
    return kg >= 10000 ? [fmt(kg / 1000, 2), "t"] : [fmt(kg, kg >= 100 ? 0 : 1), "kg"];
  }
  function count(v) {
    if (v === null || v === undefined) return "–";
    return Math.abs(v) >= 10 ? Math.round(v).toLocaleString() : fmt(v);
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 90) return `${Math.max(0, seconds).toFixed(seconds < 10 ? 1 : 0)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
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

  function renderKpis() {
    const [p, pu] = power(livePower());
    setValue($("#kpi-power"), p, pu);
    const acc = ui.summary && ui.summary.accounting;
    const today = acc && acc.today;
    setValue($("#kpi-kwh"), today ? fmt(today.kwh, today.kwh >= 100 ? 0 : 1) : "–", today ? "kWh" : "");
    setValue($("#kpi-kgce"), today ? fmt(today.kgce, today.kgce >= 100 ? 0 : 2) : "–", today ? "kgce" : "");
    const [c, cu] = today ? mass(today.kgco2) : ["–", ""];
    setValue($("#kpi-co2"), c, cu ? `${cu} CO₂` : "");
    $("#kpi-power-sub").textContent = acc ? `boundary meters: ${boundaryMeters().join(", ")}` : "sum of all meters";
  }

  function renderAge() {
    const newest = Math.max(0, ...Object.values(ui.latest).map((r) => r.ts));
    const node = $("#kpi-age");
    if (!newest) { setValue(node, "–"); return; }
    const s = (Date.now() - newest) / 1000;
    node.textContent = age(s);
    node.classList.toggle("stale", s > 10 && s <= 120);
    node.classList.toggle("dead", s > 120);
    $("#kpi-age-sub").textContent = `newest reading ${new Date(newest).toLocaleTimeString()}`;
    for (const row of document.querySelectorAll("#meters tbody tr")) {
      const r = ui.latest[row.dataset.meter];
      if (r) row.querySelector(".age").textContent = age((Date.now() - r.ts) / 1000);
    }
  }

  function lineWindow(line) {
    return line.windows[line.alert_window || "rolling_1h"] || line.windows.rolling_1h || {};
  }

  function renderLines() {
    const box = $("#lines");
    const acc = ui.summary && ui.summary.accounting;
    if (!acc || !acc.lines.length) return;
    box.textContent = "";
    const now = Date.now();
    const draw = [];
    for (const line of acc.lines) {
      const w = lineWindow(line);
      const today = line.windows.today || {};
      const b = line.benchmark;
      const status = w.status || "no_data";
      const hist = (ui.intensity[line.id] = ui.intensity[line.id] || []);
      if (!hist.length || now - hist[hist.length - 1][0] > 900) hist.push([now, w.value]);
      if (hist.length > 2000) hist.shift();
      const gauge = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      gauge.setAttribute("class", "gauge");
      const spark = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      spark.setAttribute("class", "spark");
      const [lp, lpu] = power(line.power_w);
      const target = line.target
        ? h("div", { class: "target", text:
            `Target ${line.target.target_year}: −${(line.target.required * 100).toFixed(1)} % vs ${line.target.base_year} · ` +
            `achieved ${(line.target.achieved * 100).toFixed(1)} % · ${pathText(line.target)}` })
        : null;
      const card = h("article", { class: "line-card", "data-line": line.id, "data-status": status },
        h("div", { class: "line-head" },
          h("div", {}, h("div", { class: "line-name", text: line.id }),
            h("div", { class: "line-product", text: `${line.product} · ${b.name}` })),
          h("span", { class: `badge ${status}`, text: STATUS_TEXT[status] || status })),
        h("div", { class: "line-main" },
          h("span", { class: "line-value", text: w.value === null || w.value === undefined ? "–" : fmt(w.value) }),
          h("span", { class: "line-unit", text: `${b.unit} · ${(w.window || "").replace("_", " ")}` })),
        gauge, spark,
        h("div", { class: "line-facts" },
          h("div", { text: "today" }, h("b", { text: today.value === null || today.value === undefined ? "–" : `${fmt(today.value)}` })),
          h("div", { text: "power" }, h("b", { text: `${lp} ${lpu}` })),
          h("div", { text: `output 1 h` }, h("b", { text: `${count(w.output)} ${line.output_unit}` }))),
        target);
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
    const acc = ui.summary && ui.summary.accounting;
    const list = $("#alerts");
    const alerts = (acc && acc.alerts) || [];
    list.textContent = "";
    $("#alert-count").textContent = String(alerts.length);
    $("#alert-count").classList.toggle("hot", alerts.length > 0);
    if (!alerts.length) { list.append(h("li", { class: "empty", text: "No active alerts" })); return; }
    for (const a of alerts) {
      list.append(h("li", { class: "alert" },
        h("div", { class: "alert-title", text: `${a.line}: ${fmt(a.value)} ${a.unit} above ${fmt(a.threshold)}` }),
        h("div", { class: "alert-meta", text: `since ${new Date(a.since).toLocaleString()} · ${a.window.replace("_", " ")} · ${a.benchmark}` })));
    }
  }

  function renderAgents() {
    const box = $("#agents");
    box.textContent = "";
    const agents = (ui.summary && ui.summary.agents) || [];
    if (!agents.length) { box.append(h("div", { class: "empty", text: "No agent status received yet" })); return; }
    for (const a of agents) {
      const backlog = a.outbox_depth === null ? "–" : `${a.outbox_depth} batch${a.outbox_depth === 1 ? "" : "es"} waiting`;
      box.append(h("div", { class: "agent" },
        h("span", { class: `state ${a.state}`, text: a.id }),
        h("span", { class: "muted", text: `${a.state} · outbox ${backlog}${a.outbox_dropped ? ` · ${a.outbox_dropped} dropped` : ""}` })));
    }
  }

  function renderMeters() {
    const body = $("#meters tbody");
    const meters = (ui.summary && ui.summary.meters) || [];
    body.textContent = "";
    const online = meters.filter((m) => m.state === "online").length;
    $("#meter-count").textContent = `${online} / ${meters.length} online`;
    for (const m of meters) {
      const r = ui.latest[m.id];
      const [p, pu] = power(r ? r.values.power_active : m.power_w);
      const errors = Object.entries(m.errors || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      // User-named quantities (steam temperature, THD, ...) as the id's tooltip, with units.
      const custom = Object.entries((r && r.custom) || {}).map(([k, c]) => `${k} ${c.value} ${c.unit}`).join("\n");
      body.append(h("tr", { "data-meter": m.id },
        h("td", { text: m.id, title: custom || null }),
        h("td", {}, h("span", { class: `state ${m.state}`, text: m.state })),
        h("td", { text: m.line || (m.role === "boundary" ? "site boundary" : "–") }),
        h("td", { class: "num power", text: `${p} ${pu}` }),
        h("td", { class: "num age", text: r ? age((Date.now() - r.ts) / 1000) : "–" }),
        h("td", { class: "num", text: m.reads === null ? "–" : String(m.reads) }),
        h("td", { class: "num", title: errors, text: String(m.error_count || 0) }),
        h("td", { text: m.agent || "–" })));
    }
  }

  function renderTrend() {
    const end = Date.now();
    // The last TREND_HOURS, or less while the data does not reach back that far.
    const first = Math.min(end, ...ui.trendMeters.map((id) => (ui.trend[id] && ui.trend[id].length ? ui.trend[id][0][0] : end)));
    const start = Math.max(end - TREND_HOURS * 3600e3, Math.min(first - 60e3, end - 10 * 60e3));
    const minutes = Math.round((end - start) / 60e3);
    $("#trend-span").textContent = minutes >= 90 ? `${Math.round(minutes / 60)} h` : `${minutes} min`;
    const series = ui.trendMeters.map((id, i) => ({
      name: id,
      color: Charts.PALETTE[i % Charts.PALETTE.length],
      points: (ui.trend[id] || []).map(([t, v]) => [t, v / 1000]),
      fill: i === 0,
      width: i === 0 ? 2.4 : 1.6,
    }));
    Charts.lineChart($("#trend"), series, { start, end, unit: "kW" });
    const legend = $("#trend-legend");
    legend.textContent = "";
    series.forEach((s) => {
      const sw = h("span", { class: "sw" });
      sw.style.background = s.color;
      legend.append(sw, s.name);
    });
  }

  function renderSite() {
    renderKpis();
    renderLines();
    renderAlerts();
    renderAgents();
    renderMeters();
    renderAge();
  }

  async function loadSite(site) {
    ui.site = site;
    ui.latest = {};
    ui.trend = {};
    ui.intensity = {};
    $("#lines").textContent = "";
    const [summary, latest] = await Promise.all([
      api(`/api/v1/sites/${encodeURIComponent(site)}`),
      api(`/api/v1/sites/${encodeURIComponent(site)}/latest`),
    ]);
    ui.summary = summary;
    for (const r of latest) ui.latest[r.meter] = { ts: Date.parse(r.ts), values: r.values, custom: r.custom || {} };
    if (!summary.accounting) {
      $("#lines").append(h("div", { class: "empty", text: "No plant model for this site: lines appear once the collector has an accounting section." }));
    }
    const acc = summary.accounting;
    const lineMeters = acc ? summary.meters.filter((m) => m.line).map((m) => m.id) : [];
    ui.trendMeters = [...new Set([...boundaryMeters(), ...lineMeters])].slice(0, 8);
    renderSite();
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
    renderTrend();
  }

  // --- fleet view --------------------------------------------------------------------------------
  const STATUS_RANK = { above_baseline: 4, compliant: 3, leading: 2, ok: 1, insufficient_output: 0, no_data: -1 };

  function renderFleet() {
    const body = $("#fleet tbody");
    body.textContent = "";
    const { key, dir } = ui.sort;
    const value = (row) => (key === "status" ? STATUS_RANK[row.status] ?? -2 : row[key]);
    const rows = [...ui.fleet].sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === y) return a.site.localeCompare(b.site);
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === "string" ? x.localeCompare(y) : x - y) * dir;
    });
    for (const th of document.querySelectorAll("#fleet th")) {
      th.setAttribute("aria-sort", th.dataset.key === key ? (dir > 0 ? "ascending" : "descending") : "none");
    }
    for (const r of rows) {
      const [p, pu] = power(r.power_w);
      const [c, cu] = mass(r.today_kgco2);
      let progress = h("span", { class: "muted", text: "no target set" });
      if (r.target_required) {
        const share = Math.max(0, Math.min(1, (r.target_achieved || 0) / r.target_required));
        const bar = h("span", { class: "bar" }, h("span", {}));
        bar.firstChild.style.width = `${(share * 100).toFixed(0)}%`;
        bar.firstChild.style.background = r.on_path ? "var(--leading)" : "var(--compliant)";
        progress = h("span", {}, bar, `${(r.target_achieved * 100).toFixed(1)} / ${(r.target_required * 100).toFixed(1)} %`);
      }
      const row = h("tr", { "data-site": r.site },
        h("td", { text: r.site }),
        h("td", {}, h("span", { class: `state ${r.status}`, text: STATUS_TEXT[r.status] || r.status })),
        h("td", { class: "num", text: fmt(r.intensity_1h) }),
        h("td", { class: "num", text: `${p} ${pu}` }),
        h("td", { class: "num", text: fmt(r.today_kgce) }),
        h("td", { class: "num", text: `${c} ${cu}` }),
        h("td", {}, progress),
        h("td", { class: "num", text: String(r.alerts) }),
        h("td", { class: "num", text: `${r.meters_online} / ${r.meters}` }),
        h("td", { class: "num", text: age(r.age_s) }));
      row.onclick = () => { show("site"); selectSite(r.site); };
      body.append(row);
    }
  }

  async function loadFleet() {
    ui.fleet = await api("/api/v1/fleet");
    const select = $("#site-select");
    const known = [...select.options].map((o) => o.value).join();
    if (known !== ui.fleet.map((r) => r.site).join()) {
      select.textContent = "";
      for (const r of ui.fleet) select.append(h("option", { value: r.site, text: r.site }));
    }
    if (ui.site) select.value = ui.site;
    renderFleet();
  }

  // --- live stream ------------------------------------------------------------------------------
  function setConn(state, text) {
    $("#conn").dataset.state = state;
    $("#conn-text").textContent = text;
  }

  function onReading(data) {
    if (data.site !== ui.site) return;
    for (const r of data.readings) {
      const ts = Date.parse(r.ts);
      const known = ui.latest[r.meter];
      if (!known || known.ts <= ts) ui.latest[r.meter] = { ts, values: r.values, custom: r.custom || {} };
      if (ui.trendMeters.includes(r.meter) && r.values.power_active !== undefined) {
        const points = (ui.trend[r.meter] = ui.trend[r.meter] || []);
        points.push([ts, r.values.power_active]);
        if (points.length > TREND_MAX_POINTS) points.splice(0, points.length - TREND_MAX_POINTS);
      }
      const row = document.querySelector(`#meters tr[data-meter="${CSS.escape(r.meter)}"]`);
      if (row && r.values.power_active !== undefined) {
        const [p, pu] = power(r.values.power_active);
        row.querySelector(".power").textContent = `${p} ${pu}`;
      }
    }
    renderKpis();
    renderAge();
  }

  function onEvent(kind, data) {
    ui.lastEvent = Date.now();
    if (kind === "reading") onReading(data);
    else if (kind === "summary" && data.site === ui.site) {
      ui.summary = data;
      renderSite();
    } else if (kind === "alert" && data.site === ui.site) {
      api(`/api/v1/sites/${encodeURIComponent(ui.site)}`).then((s) => { ui.summary = s; renderSite(); });
    }
  }

  async function stream() {
    let delay = 1000;
    for (;;) {
      try {
        const res = await fetch("/api/v1/stream", { headers: { ...headers(), Accept: "text/event-stream" } });
        if (res.status === 401) { setConn("down", "token needed"); await askToken(); continue; }
        if (!res.ok || !res.body) throw new Error(String(res.status));
        setConn("live", "live");
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
      setConn("down", "reconnecting");
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

  async function main() {
    loadToken();
    for (const b of document.querySelectorAll(".tabs button")) b.onclick = () => show(b.dataset.view);
    for (const th of document.querySelectorAll("#fleet th")) {
      th.onclick = () => {
        ui.sort = { key: th.dataset.key, dir: ui.sort.key === th.dataset.key ? -ui.sort.dir : -1 };
        renderFleet();
      };
    }
    $("#site-select").onchange = (ev) => selectSite(ev.target.value);
    setInterval(() => {
      $("#clock").textContent = new Date().toLocaleTimeString();
      if (ui.view === "site") renderAge();
    }, 1000);
    setInterval(() => { if (ui.view === "site") renderTrend(); }, 5000);
    setInterval(() => {
      if (ui.view === "fleet") loadFleet().catch(console.error);
      // Without a stream (a proxy that buffers), the page still refreshes.
      else if (ui.site && Date.now() - ui.lastEvent > 10000) {
        api(`/api/v1/sites/${encodeURIComponent(ui.site)}`).then((s) => { ui.summary = s; renderSite(); }).catch(console.error);
      }
    }, 5000);
    window.addEventListener("resize", () => { renderTrend(); renderLines(); });
    stream();
    await loadFleet();
    if (!ui.site && ui.fleet.length) ui.site = ui.fleet[0].site;
    if (ui.site) await loadSite(ui.site);
    show(ui.view);
  }

  main().catch((e) => { console.error(e); setConn("down", "error"); });
})();
