// GreenGauge charts: small inline-SVG drawing helpers, no dependencies (texts from I18n).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { leading: "#22c55e", compliant: "#f5b301", above: "#ef4444" };
  const PALETTE = ["#38bdf8", "#a78bfa", "#f472b6", "#34d399", "#fb923c", "#facc15", "#60a5fa", "#f87171"];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function size(svg) {
    const box = svg.getBoundingClientRect();
    const w = Math.max(120, Math.round(box.width || 600));
    const h = Math.max(40, Math.round(box.height || 200));
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    return { w, h };
  }

  function niceStep(span, target) {
    const raw = span / Math.max(1, target);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (digits !== undefined) return I18n.number(v, digits);
    if (a >= 1000) return I18n.number(v, 0);
    if (a >= 100) return I18n.number(v, 1);
    if (a >= 1) return I18n.number(v, 2);
    if (a >= 0.01) return I18n.number(v, 3);
    if (a === 0) return "0";
    return v.toPrecision(2);
  }

  // Decimals that tell ticks `step` apart, the same for every tick of an axis.
  function stepDigits(step) {
    return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  }

  function message(svg, w, h, text) {
    const t = el("text", { x: w / 2, y: h / 2 + 4, "text-anchor": "middle", class: "chart-message" }, svg);
    t.textContent = text;
  }

  function timeLabel(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }

  // series: [{name, color, points: [[ms, value], ...]}]; opts: {start, end, unit, scale, empty}
  // Without a point in view, no axes (no invented scale): only opts.empty, the reason.
  function lineChart(svg, series, opts) {
    clear(svg);
    const { w, h } = size(svg);
    // The unit sits above the top tick, in a margin of its own.
    const m = { l: 54, r: 12, t: 24, b: 24 };
    const x0 = opts.start, x1 = opts.end;
    let lo = Infinity, hi = -Infinity;
    for (const s of series) {
      for (const [t, v] of s.points) if (t >= x0 && t <= x1) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (!isFinite(lo)) { message(svg, w, h, opts.empty || ""); return; }
    lo = Math.min(0, lo);
    if (hi <= lo) hi = lo + 1;
    const step = niceStep(hi - lo, 5);
    hi = Math.ceil(hi / step) * step;
    const X = (t) => m.l + ((t - x0) / (x1 - x0)) * (w - m.l - m.r);
    const Y = (v) => h - m.b - ((v - lo) / (hi - lo)) * (h - m.t - m.b);
    const digits = stepDigits(step * (opts.scale || 1));
    for (let i = 0, v = lo; v <= hi + step / 2; i++, v = lo + i * step) {
      el("line", { x1: m.l, x2: w - m.r, y1: Y(v), y2: Y(v), class: "grid" }, svg);
      const t = el("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, svg);
      t.textContent = fmt(v * (opts.scale || 1), digits);
    }
    const span = x1 - x0;
    const tstep = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360].map((mm) => mm * 60000)
      .find((s) => span / s <= Math.max(3, Math.floor((w - m.l) / 90))) || 3600000 * 6;
    for (let t = Math.ceil(x0 / tstep) * tstep; t <= x1; t += tstep) {
      el("line", { x1: X(t), x2: X(t), y1: m.t, y2: h - m.b, class: "grid" }, svg);
      const label = el("text", { x: X(t), y: h - 6, "text-anchor": "middle" }, svg);
      label.textContent = timeLabel(t);
    }
    if (opts.unit) {
      const u = el("text", { x: m.l - 6, y: 12, "text-anchor": "end", class: "unit" }, svg);
      u.textContent = opts.unit;
    }
    el("line", { x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b, class: "axis" }, svg);
    series.forEach((s) => {
      const pts = s.points.filter(([t]) => t >= x0 && t <= x1);
      if (!pts.length) return;
      const d = pts.map(([t, v], i) => `${i ? "L" : "M"}${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join("");
      if (s.fill) {
        el("path", {
          d: `${d}L${X(pts[pts.length - 1][0]).toFixed(1)},${Y(lo)}L${X(pts[0][0]).toFixed(1)},${Y(lo)}Z`,
          fill: s.color, "fill-opacity": 0.12, stroke: "none",
        }, svg);
      }
      el("path", { d, fill: "none", stroke: s.color, "stroke-width": s.width || 1.8, "stroke-linejoin": "round" }, svg);
      const [lt, lv] = pts[pts.length - 1];
      el("circle", { cx: X(lt), cy: Y(lv), r: 3, fill: s.color }, svg);
    });
  }

  // A horizontal scale: 0..benchmark green, ..baseline amber, beyond red; a marker at value.
  // The scale ends at twice the baseline: a value beyond it is pinned to the end, with an arrow.
  function bandGauge(svg, value, benchmark, baseline, unit) {
    clear(svg);
    const { w, h } = size(svg);
    const m = { l: 6, r: 10 };
    const top = 8, bar = 14;
    const max = Math.max(baseline * 2, benchmark * 2, 1e-12);
    const X = (v) => m.l + (Math.max(0, Math.min(v, max)) / max) * (w - m.l - m.r);
    const zones = [[0, benchmark, COLORS.leading], [benchmark, baseline, COLORS.compliant], [baseline, max, COLORS.above]];
    for (const [a, b, c] of zones) {
      el("rect", { x: X(a), y: top, width: Math.max(0, X(b) - X(a)), height: bar, fill: c, "fill-opacity": 0.25 }, svg);
    }
    const marks = [[benchmark, I18n.t("gauge.benchmark"), "end", -4], [baseline, I18n.t("gauge.baseline"), "start", 4]];
    for (const [v, name, anchor, dx] of marks) {
      el("line", { x1: X(v), x2: X(v), y1: top - 3, y2: top + bar + 3, stroke: "#cbd5e1", "stroke-width": 1, "stroke-dasharray": "2 2" }, svg);
      const t = el("text", { x: X(v) + dx, y: h - 4, "text-anchor": anchor }, svg);
      t.textContent = `${name} ${fmt(v)}`;
      // Keep the label inside the gauge on narrow screens.
      const len = t.getComputedTextLength ? t.getComputedTextLength() : 0;
      if (anchor === "end" && X(v) + dx - len < 0) { t.setAttribute("text-anchor", "start"); t.setAttribute("x", 0); }
      if (anchor === "start" && X(v) + dx + len > w) { t.setAttribute("text-anchor", "end"); t.setAttribute("x", w); }
    }
    if (value !== null && value !== undefined && isFinite(value)) {
      const x = X(value);
      const color = value <= benchmark ? COLORS.leading : value <= baseline ? COLORS.compliant : COLORS.above;
      el("rect", { x: m.l, y: top + 4, width: Math.max(0, x - m.l), height: bar - 8, fill: color, rx: 2 }, svg);
      if (value > max) {
        el("path", { d: `M${x - 2},${top - 2}L${x + 8},${top + bar / 2}L${x - 2},${top + bar + 2}Z`, fill: COLORS.above }, svg);
      } else {
        el("path", { d: `M${x - 6},${top - 7}L${x + 6},${top - 7}L${x},${top + 1}Z`, fill: "#f8fafc" }, svg);
        el("line", { x1: x, x2: x, y1: top, y2: top + bar, stroke: "#f8fafc", "stroke-width": 2 }, svg);
      }
    }
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", I18n.t("gauge.label", { value: fmt(value), unit, benchmark: fmt(benchmark), baseline: fmt(baseline) }));
  }

  // Intensity over time drawn over the benchmark / baseline bands.
  function bandSpark(svg, points, benchmark, baseline) {
    clear(svg);
    const { w, h } = size(svg);
    const vals = points.map((p) => p[1]).filter((v) => v !== null && isFinite(v));
    const hi = Math.min(Math.max(baseline * 1.5, ...vals.map((v) => v * 1.1)), baseline * 3);
    const Y = (v) => h - 2 - (Math.max(0, Math.min(v, hi)) / hi) * (h - 4);
    el("rect", { x: 0, y: Y(benchmark), width: w, height: h - 2 - Y(benchmark), fill: COLORS.leading, "fill-opacity": 0.13 }, svg);
    el("rect", { x: 0, y: Y(baseline), width: w, height: Y(benchmark) - Y(baseline), fill: COLORS.compliant, "fill-opacity": 0.13 }, svg);
    el("rect", { x: 0, y: 0, width: w, height: Y(baseline), fill: COLORS.above, "fill-opacity": 0.13 }, svg);
    if (points.length < 2) {
      message(svg, w, h, I18n.t(points.length ? "spark.collecting" : "spark.none"));
      return;
    }
    const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
    const X = (t) => 2 + ((t - t0) / (t1 - t0)) * (w - 4);
    let d = "";
    let pen = false;
    for (const [t, v] of points) {
      if (v === null || !isFinite(v)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${X(t).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
    }
    el("path", { d, fill: "none", stroke: "#e2e8f0", "stroke-width": 1.8 }, svg);
  }

  // A small trend without axes (the meter detail): the line and its last point.
  function spark(svg, points) {
    clear(svg);
    const { w, h } = size(svg);
    const vals = points.map((p) => p[1]).filter((v) => v !== null && isFinite(v));
    if (vals.length < 2) { message(svg, w, h, I18n.t("spark.collecting")); return; }
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (hi - lo < 1e-9 * Math.max(1, Math.abs(hi))) { lo -= 1; hi += 1; }
    const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
    const X = (t) => 2 + ((t - t0) / (t1 - t0)) * (w - 6);
    const Y = (v) => h - 3 - ((v - lo) / (hi - lo)) * (h - 6);
    const d = points.filter(([, v]) => v !== null && isFinite(v))
      .map(([t, v], i) => `${i ? "L" : "M"}${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join("");
    el("path", { d, fill: "none", stroke: PALETTE[0], "stroke-width": 1.5 }, svg);
    const [lt, lv] = points[points.length - 1];
    el("circle", { cx: X(lt), cy: Y(lv), r: 2.5, fill: PALETTE[0] }, svg);
  }

  return { lineChart, bandGauge, bandSpark, spark, fmt, PALETTE, COLORS };
})();
