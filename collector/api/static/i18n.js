// GreenGauge page translations: every string the page shows comes from one message catalog
// per language (messages.<lang>.json, flat keys, {name} placeholders). The language is the
// one chosen on the page (kept in localStorage), else the browser's.
"use strict";

const I18n = (() => {
  const LANGS = ["en", "zh-CN"];
  const FALLBACK = "en";
  let lang = FALLBACK;
  let messages = {};
  let fallback = {};

  function pick() {
    const chosen = localStorage.getItem("gg-lang");
    if (LANGS.includes(chosen)) return chosen;
    for (const wanted of navigator.languages || [navigator.language]) {
      const w = String(wanted || "").toLowerCase();
      if (w.startsWith("zh")) return "zh-CN";
      if (w.startsWith("en")) return "en";
    }
    return FALLBACK;
  }

  async function catalog(name) {
    const res = await fetch(`/static/messages.${name}.json`, { cache: "no-cache" });
    if (!res.ok) throw new Error(`messages.${name}.json: ${res.status}`);
    return res.json();
  }

  async function load(name) {
    lang = LANGS.includes(name) ? name : pick();
    [messages, fallback] = await Promise.all([catalog(lang), lang === FALLBACK ? null : catalog(FALLBACK)]);
    fallback = fallback || messages;
    document.documentElement.lang = lang;
    apply(document);
  }

  // t(key, {name: value}): the message in the page's language; a key missing there
  // shows the English one (the catalogs' test keeps both complete), never the key.
  function t(key, vars) {
    let text = messages[key];
    if (text === undefined) text = fallback[key];
    if (text === undefined) { console.error(`no message ${key}`); return key; }
    return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k]))) : text;
  }

  // Static page text: data-i18n="key" sets the text, data-i18n-<attr>="key" an attribute.
  function apply(root) {
    for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of root.querySelectorAll("*")) {
      for (const a of node.getAttributeNames()) {
        if (a.startsWith("data-i18n-")) node.setAttribute(a.slice(10), t(node.getAttribute(a)));
      }
    }
  }

  function choose(name) {
    localStorage.setItem("gg-lang", name);
    return load(name);
  }

  // Numbers with a fixed number of decimals, grouped the locale's way.
  const formats = new Map();
  function number(v, digits) {
    const key = `${lang}/${digits}`;
    if (!formats.has(key)) {
      formats.set(key, new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    }
    return formats.get(key).format(v);
  }
  const time = (ms) => new Date(ms).toLocaleTimeString(lang, { hour12: false });
  const dateTime = (ms) => new Date(ms).toLocaleString(lang, { hour12: false });

  return { load, choose, t, apply, number, time, dateTime, LANGS, get lang() { return lang; } };
})();
