// The board's only way to the daemon: the public HTTP API on the same origin.
// In authenticated mode the board key lives in sessionStorage (this tab only).
const KEY = "paperclip.boardKey";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.details = body?.details;
  }
}

export const auth = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(v) { v ? sessionStorage.setItem(KEY, v) : sessionStorage.removeItem(KEY); },
  onUnauthorized: null,
  checking: false, // a key being tried: a 401 is its answer, not a reason to re-ask
};

function headers(body) {
  const hd = { accept: "application/json" };
  if (body !== undefined) hd["content-type"] = "application/json";
  if (auth.key) hd.authorization = `Bearer ${auth.key}`;
  return hd;
}

export async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(body),
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = { error: text.slice(0, 300) }; }
  if (r.status === 401 && auth.onUnauthorized && !auth.checking) auth.onUnauthorized();
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

export const get = (p) => api("GET", p);
export const post = (p, b = {}) => api("POST", p, b);
export const patch = (p, b) => api("PATCH", p, b);
export const del = (p) => api("DELETE", p);

// Follows a text/event-stream with fetch (EventSource cannot send the
// Authorization header). onEvent(name, data) per event; returns abort().
export function follow(path, onEvent, onClose) {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch(path, { headers: headers(), signal: ctl.signal });
      if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let ev = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) ev = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) onEvent(ev, data.join("\n"));
        }
      }
      onClose?.(null);
    } catch (e) {
      if (e.name !== "AbortError") onClose?.(e);
    }
  })();
  return () => ctl.abort();
}

// Puts an API error next to what it concerns: a Validation error's details
// paths name fields (data-field="config.host" or "host"); a plain message is
// matched against the fields' data-err-match words; whatever is left goes to
// the action's own message slot.
export function showError(form, err, actionSlot) {
  clearErrors(form);
  let placed = false;
  const fields = [...form.querySelectorAll("[data-field]")];
  const put = (ctl, msg) => {
    const slot = document.getElementById(`${ctl.id}-err`);
    if (!slot) return false;
    slot.textContent = msg;
    slot.hidden = false;
    ctl.setAttribute("aria-invalid", "true");
    if (!placed) ctl.focus();
    placed = true;
    return true;
  };
  if (Array.isArray(err?.details)) {
    for (const d of err.details) {
      const p = (d.path || []).join(".");
      const ctl = fields.find((f) => f.dataset.field === p || `config.${f.dataset.field}` === p ||
        f.dataset.field === `config.${p}`);
      if (ctl) put(ctl, d.message);
    }
  }
  const msg = err?.message || String(err);
  if (!placed) {
    const low = msg.toLowerCase();
    const ctl = fields.find((f) => (f.dataset.errMatch || "").split("|").some((w) => w && low.includes(w)));
    if (ctl) put(ctl, msg);
  }
  if (actionSlot) {
    const extra = Array.isArray(err?.details) && !placed
      ? err.details.map((d) => `${(d.path || []).join(".")}: ${d.message}`).join("; ") : "";
    actionSlot.textContent = extra ? `${msg} — ${extra}` : msg;
    actionSlot.className = "result bad";
    actionSlot.hidden = false;
  }
}

export function clearErrors(form) {
  for (const e of form.querySelectorAll(".field-error")) { e.hidden = true; e.textContent = ""; }
  for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
}
