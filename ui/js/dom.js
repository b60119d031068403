// Small DOM helpers: h() builds elements, so no string of HTML is ever
// assembled from API data (names, logs and errors are shown as text).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value" || k === "checked" || k === "selected") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (p) => `${p}-${++uid}`;

// A labelled form field: label, control, a hint saying what the field does,
// and a slot for the API's error about it (aria-describedby links both).
export function field(label, control, { hint, required, name, wide } = {}) {
  const id = control.id || (control.id = nextId("f"));
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  const errEl = h("p", { class: "field-error", id: `${id}-err`, hidden: true });
  control.setAttribute("aria-describedby", [hintEl && hintEl.id, errEl.id].filter(Boolean).join(" "));
  if (required) control.required = true;
  if (name) control.dataset.field = name;
  const isCheck = control.type === "checkbox";
  const lab = h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
  return h("div", { class: `field${isCheck ? " check" : ""}${wide ? " wide" : ""}`, "data-field-wrap": name || "" },
    isCheck ? [control, lab] : [lab, control], hintEl, errEl);
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, label, extra]) =>
    h("option", { value: v, selected: v === value, ...(extra || {}) }, label)));
}

export function pill(status) {
  const s = String(status ?? "unknown");
  const tone = /^(ok|active|ready|succeeded|running|supported|idle|done|healthy)$/.test(s) ? "good"
    : /^(failed|error|timed_out|unhealthy|unsupported|cancelled|blocked)$/.test(s) ? "bad"
    : /^(queued|paused|pending|in_progress|todo|backlog|installed|disabled|pending_approval|in_review)$/.test(s) ? "warn"
    : "neutral";
  return h("span", { class: `pill ${tone}` }, s.replaceAll("_", " "));
}

export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  return h("time", { datetime: iso, title: d.toLocaleString() }, ago(d));
}

export function ago(d) {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

export function empty(text, action) {
  return h("div", { class: "empty" }, h("p", {}, text), action ? [" ", action] : null);
}

export function toast(text, tone = "info") {
  const t = h("div", { class: `toast ${tone}` }, text);
  document.getElementById("toasts").append(t);
  setTimeout(() => t.remove(), 5000);
}

export function short(id) {
  return String(id ?? "").slice(0, 8);
}
