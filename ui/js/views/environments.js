// Environments: the list with Test connection on every row (Local too), the
// create/edit form with driver-specific fields (sandbox provider fields are
// generated from the provider's configSchema), delete with its blast radius,
// and each environment's leases.
import { h, clear, field, select, pill, time, empty, toast, short } from "../dom.js";
import { api, get, post, del, showError, clearErrors } from "../api.js";
import { navigate, setTitle } from "../app.js";

const DRIVERS = [["local", "Local — this Paperclip host"], ["ssh", "SSH — a remote machine"],
  ["sandbox", "Sandbox — a provider plugin"], ["plugin", "Plugin — a plugin's own driver"]];
const PROBES = "paperclip.lastProbes";

function lastProbes() {
  try { return JSON.parse(sessionStorage.getItem(PROBES)) || {}; } catch { return {}; }
}
function rememberProbe(id, res) {
  const all = lastProbes();
  all[id] = { ok: res.ok, summary: res.summary, at: new Date().toISOString() };
  sessionStorage.setItem(PROBES, JSON.stringify(all));
}

// Summary plus the diagnostics a failed probe carries (stderr excerpt, exit
// code), in a live region so screen readers hear the outcome.
export function probeResult(slot, res) {
  const d = res.details || {};
  const diag = [d.error, d.stderr].filter(Boolean).join("\n");
  clear(slot, h("strong", {}, res.ok ? "Connection works. " : "Test failed. "), res.summary || "",
    diag && !String(res.summary || "").includes(diag) ? h("pre", { class: "diag" }, diag) : null,
    !res.ok && d.exitCode !== undefined ? h("p", { class: "small" }, `exit code ${d.exitCode}${d.timedOut ? ", timed out" : ""}`) : null,
    Array.isArray(d.diagnostics) && d.diagnostics.length ? h("ul", { class: "diagnostics small" },
      d.diagnostics.map((x) => h("li", {}, h("strong", {}, `${x.severity || "info"}: `), x.message || x.code || ""))) : null);
  slot.className = `result ${res.ok ? "good" : "bad"}`;
  slot.hidden = false;
}

export async function environmentsView(el, { cid }) {
  setTitle("Environments");
  const [envs, feed] = await Promise.all([get(`/api/companies/${cid}/environments`),
    get(`/api/companies/${cid}/activity?entityType=environment&limit=500`).catch(() => [])]);
  // The last saved-environment probe comes from the activity feed (it
  // survives reloads); this tab's own results add their summary.
  const probes = {};
  for (const a of feed) {
    if (a.action === "environment.probed" && !probes[a.entityId])
      probes[a.entityId] = { ok: a.details?.ok === true, at: a.createdAt };
  }
  for (const [id, p] of Object.entries(lastProbes())) {
    if (!probes[id] || probes[id].at <= p.at) probes[id] = p;
  }
  const table = h("table", { class: "list" },
    h("caption", { class: "sr-only" }, "Environments"),
    h("thead", {}, h("tr", {}, ["Name", "Driver", "Status", "Last test", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, envs.map((e) => envRow(cid, e, probes[e.id]))));
  clear(el,
    h("div", { class: "page-head" }, h("h1", {}, "Environments"),
      h("a", { class: "button primary", href: `/companies/${cid}/environments/new` }, "New environment")),
    h("p", { class: "lead" }, "Where agents run: this host (Local), a machine over SSH, or a sandbox from a provider plugin. Test any of them before an agent uses it."),
    envs.length ? h("div", { class: "table-wrap" }, table)
      : empty("No environments yet — ", h("a", { href: `/companies/${cid}/environments/new` }, "create one")));
}

function envRow(cid, e, last) {
  const result = h("div", { class: "result", role: "status", hidden: true });
  const lastCell = h("td", { "data-label": "Last test" },
    last ? [pill(last.ok ? "ok" : "failed"), " ", time(last.at), last.summary ? h("div", { class: "muted small" }, last.summary) : null]
      : h("span", { class: "muted" }, "not tested"));
  const leasesSlot = h("div", { class: "leases", hidden: true });
  const testBtn = h("button", { type: "button", onclick: async () => {
    testBtn.disabled = true;
    testBtn.textContent = "Testing…";
    try {
      const res = await post(`/api/environments/${e.id}/probe`, {});
      probeResult(result, res);
      rememberProbe(e.id, res);
      clear(lastCell, pill(res.ok ? "ok" : "failed"), " ", time(new Date().toISOString()));
    } catch (err) {
      clear(result, err.message);
      result.className = "result bad";
      result.hidden = false;
    }
    testBtn.disabled = false;
    testBtn.textContent = "Test connection";
  } }, "Test connection");
  const leasesBtn = h("button", { type: "button", "aria-expanded": "false", onclick: async () => {
    const open = leasesBtn.getAttribute("aria-expanded") === "true";
    leasesBtn.setAttribute("aria-expanded", String(!open));
    leasesSlot.hidden = open;
    if (!open) await renderLeases(leasesSlot, e.id);
  } }, "Leases");
  const delBtn = h("button", { type: "button", class: "danger", onclick: () => confirmDelete(cid, e, result) }, "Delete");
  const cfg = e.config || {};
  const where = e.driver === "ssh" ? `${cfg.username || "?"}@${cfg.host || "?"}:${cfg.port || 22}`
    : e.driver === "sandbox" ? `provider ${cfg.provider || "?"}` : e.driver === "plugin" ? `${cfg.pluginKey || "?"} · ${cfg.driverKey || "?"}` : "";
  return [
    h("tr", { "data-env": e.name },
      h("th", { scope: "row" }, h("a", { href: `/companies/${cid}/environments/${e.id}/edit` }, e.name),
        e.description ? h("div", { class: "muted small" }, e.description) : null),
      h("td", { "data-label": "Driver" }, e.driver, where ? h("div", { class: "muted small mono" }, where) : null),
      h("td", { "data-label": "Status" }, pill(e.status)),
      lastCell,
      h("td", {}, h("div", { class: "actions" }, testBtn,
        h("a", { class: "button", href: `/companies/${cid}/environments/${e.id}/edit`, "aria-label": `Edit ${e.name}` }, "Edit"),
        leasesBtn, e.driver === "local" ? null : delBtn))),
    h("tr", { class: "detail-row" }, h("td", { colspan: 5 }, result, leasesSlot)),
  ];
}

async function renderLeases(slot, id) {
  clear(slot, h("p", { class: "muted" }, "Loading leases…"));
  try {
    const leases = await get(`/api/environments/${id}/leases`);
    clear(slot, leases.length ? h("table", { class: "list compact" },
      h("caption", {}, "Leases"),
      h("thead", {}, h("tr", {}, ["Lease", "Status", "Policy", "Run", "Acquired", "Released", "Failure"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, leases.map((l) => h("tr", {},
        h("td", { class: "mono" }, short(l.id)), h("td", {}, pill(l.status)), h("td", {}, l.leasePolicy || ""),
        h("td", {}, l.heartbeatRunId ? h("a", { href: `/runs/${l.heartbeatRunId}` }, short(l.heartbeatRunId)) : "—"),
        h("td", {}, time(l.acquiredAt)), h("td", {}, time(l.releasedAt)), h("td", {}, l.failureReason || "")))))
      : empty("No leases yet: runs in this environment will show here."));
  } catch (err) {
    clear(slot, h("p", { class: "result bad" }, err.message));
  }
}

async function confirmDelete(cid, e, slot) {
  let radius = null;
  try { radius = await get(`/api/environments/${e.id}/delete-blast-radius`); } catch (err) { radius = { error: err.message }; }
  const dlg = h("dialog", { class: "dialog", "aria-labelledby": "del-title" });
  const msg = h("p", { class: "result bad", role: "alert", hidden: true });
  dlg.append(h("h2", { id: "del-title" }, `Delete environment “${e.name}”?`),
    h("p", {}, "This cannot be undone. What the delete touches:"),
    blastList(radius), msg,
    h("form", { method: "dialog", class: "buttons" },
      h("button", { value: "cancel", autofocus: true }, "Cancel"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        try {
          const use = radius?.activeRuntimeUse || {};
          const reusable = (use.reusableLeaseCount || 0) + (use.pendingCleanupLeaseCount || 0) > 0;
          await del(`/api/environments/${e.id}${reusable ? "?destroyReusableSandboxLeases=true" : ""}`);
          dlg.close();
          dlg.remove();
          toast(`Deleted ${e.name}`);
          navigate(`/companies/${cid}/environments`, true);
        } catch (err) {
          const reasons = err.details?.deleteBlockedReasons;
          msg.textContent = err.message + (reasons ? ` (${[].concat(reasons).map((r) => r.code || r.reason || JSON.stringify(r)).join(", ")})` : "");
          msg.hidden = false;
        }
      } }, "Delete environment")));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  void slot;
}

function blastList(r) {
  if (!r) return null;
  if (r.error) return h("p", { class: "result bad" }, r.error);
  const rows = [];
  const walk = (obj) => {
    for (const [k, v] of Object.entries(obj || {})) {
      if (v && typeof v === "object" && !Array.isArray(v)) { walk(v); continue; }
      if (typeof v !== "number" || v === 0) continue;
      rows.push(h("div", {}, h("dt", {}, k.replace(/Count$/, "").replace(/([A-Z])/g, " $1").toLowerCase()), h("dd", {}, String(v))));
    }
  };
  walk({ s: r.staticReferences, a: r.activeRuntimeUse });
  const blocked = (r.deleteBlockedReasons || []).map((x) => x.message || x.code || String(x));
  return h("div", {},
    rows.length ? h("dl", { class: "blast" }, rows) : h("p", {}, "Nothing references this environment."),
    blocked.length ? h("p", { class: "result bad" }, `Blocked: ${blocked.join("; ")}`) : null,
    r.staticReferences?.agentDefaultCount ? h("p", { class: "small" }, "Agents that use it as their default fall back to Local.") : null);
}

// ---- the form ----

export async function environmentFormView(el, { cid, id }) {
  const [caps, secrets, env] = await Promise.all([
    get(`/api/companies/${cid}/environments/capabilities`),
    get(`/api/companies/${cid}/secrets`).catch(() => []),
    id ? get(`/api/environments/${id}`) : null]);
  setTitle(env ? `Edit ${env.name}` : "New environment");
  const cfg = env?.config || {};
  const form = h("form", { class: "form", novalidate: true });
  const name = h("input", { name: "name", value: env?.name || "", autocomplete: "off" });
  const desc = h("input", { name: "description", value: env?.description || "", autocomplete: "off" });
  const driver = select(DRIVERS, env?.driver || "ssh", { name: "driver" });
  if (env) driver.disabled = env.driver === "local";
  const driverBox = h("div", { class: "driver-fields" });
  const result = h("div", { class: "result", role: "status", "aria-live": "polite", hidden: true });
  const saveBtn = h("button", { type: "submit", class: "primary" }, env ? "Save changes" : "Create environment");
  const testBtn = h("button", { type: "button" }, "Test connection");
  let collect = () => ({});

  const renderDriver = () => {
    const d = driver.value;
    if (d === "ssh") collect = sshFields(driverBox, cfg, secrets, !!env);
    else if (d === "sandbox") collect = sandboxFields(driverBox, cfg, caps);
    else if (d === "plugin") collect = pluginFields(driverBox, cfg);
    else collect = localFields(driverBox, cfg);
  };
  driver.addEventListener("change", renderDriver);
  renderDriver();

  const body = () => {
    const b = { name: name.value.trim(), description: desc.value.trim() || null, driver: driver.value };
    b.config = collect();
    return b;
  };
  testBtn.addEventListener("click", async () => {
    clearErrors(form);
    testBtn.disabled = true;
    clear(result, "Testing…");
    result.className = "result";
    result.hidden = false;
    try {
      const b = body();
      // A saved environment with an untouched form is probed as stored (its
      // secrets stay server-side); otherwise the draft is probed.
      const res = env && !form.dataset.dirty ? await post(`/api/environments/${env.id}/probe`, {})
        : await post(`/api/companies/${cid}/environments/probe-config`, { driver: b.driver, name: b.name || "draft", config: b.config });
      probeResult(result, res);
      if (env && !form.dataset.dirty) rememberProbe(env.id, res);
    } catch (err) {
      showError(form, err, result);
    }
    testBtn.disabled = false;
  });
  form.addEventListener("input", () => { form.dataset.dirty = "1"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    result.hidden = true;
    if (!name.value.trim()) {
      showError(form, { message: "Give the environment a name.", details: [{ path: ["name"], message: "Give the environment a name." }] }, null);
      return;
    }
    saveBtn.disabled = true;
    try {
      const b = body();
      if (env) {
        if (env.driver === "local") delete b.driver;
        await api("PATCH", `/api/environments/${env.id}`, b);
      } else await post(`/api/companies/${cid}/environments`, b);
      toast(env ? "Environment saved" : "Environment created", "good");
      navigate(`/companies/${cid}/environments`);
    } catch (err) {
      showError(form, err, result);
    }
    saveBtn.disabled = false;
  });

  form.append(
    h("div", { class: "grid" },
      field("Name", name, { required: true, name: "name", hint: "Shown in agent and issue pickers.", }),
      field("Description", desc, { name: "description", hint: "Optional: what this environment is for." }),
      field("Driver", driver, { name: "driver", hint: env ? "The driver of a saved environment changes only with a new config." : "How Paperclip reaches the machine that runs the agent's commands." })),
    driverBox, result,
    h("div", { class: "buttons sticky" },
      h("a", { class: "button", href: `/companies/${cid}/environments` }, "Cancel"), testBtn, saveBtn));
  name.dataset.errMatch = "name|already exists";
  clear(el, h("p", {}, h("a", { href: `/companies/${cid}/environments` }, "← Environments")),
    h("h1", {}, env ? `Edit ${env.name}` : "New environment"),
    h("p", { class: "lead" }, "Fill in the driver's settings, test the connection, then save. Nothing is stored until you save."),
    form);
}

function localFields(box, cfg) {
  const api = h("input", { name: "apiUrl", value: cfg.apiUrl || "", placeholder: "http://127.0.0.1:3100", inputmode: "url" });
  api.dataset.errMatch = "apiurl|api url";
  clear(box, h("fieldset", {}, h("legend", {}, "Local"),
    h("p", { class: "hint" }, "Runs commands on this Paperclip host as the daemon's user. There is nothing to connect to; Test checks that the host is usable."),
    field("API URL override", api, { name: "apiUrl", hint: "Optional: the URL runs call back on. Loopback or an allowed hostname only." })));
  return () => {
    const c = { ...cfg };
    if (api.value.trim()) c.apiUrl = api.value.trim(); else delete c.apiUrl;
    return c;
  };
}

function sshFields(box, cfg, secrets, editing) {
  const host = h("input", { name: "host", value: cfg.host || "", autocomplete: "off", spellcheck: "false" });
  const port = h("input", { name: "port", type: "number", min: 1, max: 65535, value: cfg.port ?? 22 });
  const user = h("input", { name: "username", value: cfg.username || "", autocomplete: "off", spellcheck: "false" });
  const path = h("input", { name: "remoteWorkspacePath", value: cfg.remoteWorkspacePath || "", placeholder: "/home/agent/work", spellcheck: "false" });
  const keySecretId = cfg.privateKeySecretRef?.secretId || "";
  const keyFrom = select([["", editing && keySecretId ? "Keep the stored key" : "Paste a key below"],
    ...secrets.filter((s) => !s.environmentManaged || s.id === keySecretId)
      .map((s) => [s.id, `Secret: ${s.name}${s.environmentManaged ? " (created with this environment)" : ""}`])],
    "", { name: "privateKeySecretRef" });
  const key = h("textarea", { name: "privateKey", rows: 4, spellcheck: "false", autocomplete: "off", class: "mono",
    placeholder: editing && keySecretId ? "A key is stored. Paste a new one only to replace it." : "-----BEGIN OPENSSH PRIVATE KEY-----" });
  const known = h("textarea", { name: "knownHosts", rows: 2, spellcheck: "false", class: "mono", value: cfg.knownHosts || "" });
  const strict = h("input", { type: "checkbox", name: "strictHostKeyChecking", checked: cfg.strictHostKeyChecking !== false });
  host.dataset.errMatch = "host|connect to";
  user.dataset.errMatch = "username|permission denied";
  path.dataset.errMatch = "workspace path";
  port.dataset.errMatch = "port";
  key.dataset.errMatch = "private key|key";
  keyFrom.addEventListener("change", () => { key.disabled = !!keyFrom.value; });
  clear(box, h("fieldset", {}, h("legend", {}, "SSH connection"),
    h("div", { class: "grid" },
      field("Host", host, { required: true, name: "host", hint: "Name or address of the machine." }),
      field("Port", port, { name: "port", hint: "1–65535; 22 unless the server says otherwise." }),
      field("Username", user, { required: true, name: "username", hint: "The account the agent's commands run as." }),
      field("Remote workspace path", path, { required: true, name: "remoteWorkspacePath", hint: "Absolute directory on the host where work is synced." }),
      field("Private key from", keyFrom, { name: "privateKeySecretRef", hint: "Use a company secret, or paste a key: it is stored as a secret and never shown again." }),
      field("Private key", key, { name: "privateKey", wide: true, hint: "Write-only. Leave empty to use the key source above." }),
      field("Known hosts", known, { name: "knownHosts", wide: true, hint: "Optional known_hosts lines for this host; empty means none pinned." }),
      field("Strict host key checking", strict, { name: "strictHostKeyChecking", hint: "Refuse hosts whose key is not in Known hosts. Turn off only on trusted networks." }))));
  return () => {
    const c = { host: host.value.trim(), port: port.value === "" ? undefined : Number(port.value),
      username: user.value.trim(), remoteWorkspacePath: path.value.trim(),
      knownHosts: known.value.trim() || null, strictHostKeyChecking: strict.checked };
    if (key.value.trim() && !keyFrom.value) c.privateKey = key.value.replace(/\r\n/g, "\n").trimEnd() + "\n";
    else if (keyFrom.value) c.privateKeySecretRef = { type: "secret_ref", secretId: keyFrom.value, version: "latest" };
    else if (keySecretId) c.privateKeySecretRef = cfg.privateKeySecretRef;
    return c;
  };
}

function sandboxFields(box, cfg, caps) {
  const providers = Object.entries(caps.sandboxProviders || {});
  const provider = select(providers.map(([k, p]) => [k, `${p.displayName || k}${p.source === "builtin" ? " (built-in, test only)" : ""}${p.status !== "supported" ? ` — ${p.status}` : ""}`]),
    cfg.provider || providers.find(([, p]) => p.status === "supported")?.[0] || providers[0]?.[0], { name: "provider" });
  provider.dataset.errMatch = "provider";
  const schemaBox = h("div", { class: "grid" });
  let collectSchema = () => ({});
  const renderSchema = () => {
    const p = caps.sandboxProviders?.[provider.value] || {};
    collectSchema = schemaFields(schemaBox, p.configSchema, provider.value === cfg.provider ? cfg : {});
    desc.textContent = p.description || (p.source === "builtin" ? "Probe-only provider for testing the form; it cannot be saved." : "");
  };
  const desc = h("p", { class: "hint" });
  provider.addEventListener("change", renderSchema);
  clear(box, h("fieldset", {}, h("legend", {}, "Sandbox"),
    providers.length ? [field("Provider", provider, { required: true, name: "provider", hint: "Installed sandbox provider plugins. Install more under Plugins." }), desc, schemaBox]
      : empty("No sandbox provider is installed — install one under Plugins.")));
  if (providers.length) renderSchema();
  return () => ({ provider: provider.value, ...collectSchema() });
}

// One control per configSchema property: enum → select, boolean → checkbox,
// number/integer → number input with its bounds, format secret-ref → a
// write-only password box, arrays of strings → one per line, else text.
export function schemaFields(box, schema, values) {
  const props = schema?.properties || {};
  const required = new Set(schema?.required || []);
  const getters = [];
  clear(box);
  if (!Object.keys(props).length) {
    box.append(h("p", { class: "hint wide" }, "This provider takes no settings."));
    return () => ({});
  }
  for (const [key, p] of Object.entries(props)) {
    const label = p.title || key.replace(/([A-Z])/g, " $1").replace(/^./, (c) => c.toUpperCase());
    const v = values[key] !== undefined ? values[key] : p.default;
    let ctl, read;
    if (Array.isArray(p.enum)) {
      ctl = select([...(required.has(key) || p.default !== undefined ? [] : [["", "—"]]), ...p.enum.map((x) => [String(x), String(x)])], v === undefined ? "" : String(v));
      read = () => ctl.value === "" ? undefined : (p.type === "number" || p.type === "integer" ? Number(ctl.value) : ctl.value);
    } else if (p.type === "boolean") {
      ctl = h("input", { type: "checkbox", checked: v === true });
      read = () => ctl.checked;
    } else if (p.type === "number" || p.type === "integer") {
      ctl = h("input", { type: "number", value: v ?? "", min: p.minimum, max: p.maximum, step: p.type === "integer" ? 1 : "any" });
      read = () => ctl.value === "" ? undefined : Number(ctl.value);
    } else if (p.type === "array") {
      ctl = h("textarea", { rows: 2, class: "mono", value: Array.isArray(v) ? v.join("\n") : "" });
      read = () => ctl.value.split("\n").map((s) => s.trim()).filter(Boolean);
    } else if (p.format === "secret-ref") {
      const stored = typeof values[key] === "string" && values[key];
      ctl = h("input", { type: "password", autocomplete: "off", placeholder: stored ? "Stored as a secret. Type to replace." : "" });
      // An untouched stored value goes back as a binding to its secret, so it
      // is never mistaken for a new plaintext value.
      read = () => ctl.value ? ctl.value : (stored ? { type: "secret_ref", secretId: stored, version: "latest" } : undefined);
    } else {
      ctl = h("input", { value: v ?? "", autocomplete: "off", spellcheck: "false" });
      read = () => ctl.value.trim() === "" ? undefined : ctl.value.trim();
    }
    ctl.name = key;
    ctl.dataset.errMatch = key.toLowerCase();
    const bounds = p.minimum !== undefined && p.maximum !== undefined ? ` (${p.minimum}–${p.maximum})` : "";
    const dflt = p.default !== undefined && !(Array.isArray(p.default) && !p.default.length) ? ` Default: ${p.default}.` : "";
    const hint = `${p.description || ""}${bounds}${dflt}${p.format === "secret-ref" ? " Saved as a company secret; never shown again." : ""}`.trim();
    box.append(field(label, ctl, { name: key, required: required.has(key), hint, wide: p.type === "array" }));
    getters.push([key, read]);
  }
  return () => {
    const out = {};
    for (const [k, read] of getters) { const x = read(); if (x !== undefined) out[k] = x; }
    return out;
  };
}

function pluginFields(box, cfg) {
  const pk = h("input", { name: "pluginKey", value: cfg.pluginKey || "", spellcheck: "false" });
  const dk = h("input", { name: "driverKey", value: cfg.driverKey || "", spellcheck: "false" });
  const dc = h("textarea", { name: "driverConfig", rows: 5, class: "mono", value: JSON.stringify(cfg.driverConfig || {}, null, 2) });
  pk.dataset.errMatch = "plugin";
  dk.dataset.errMatch = "driver key|driverkey";
  dc.dataset.errMatch = "driverconfig|json";
  clear(box, h("fieldset", {}, h("legend", {}, "Plugin driver"),
    h("div", { class: "grid" },
      field("Plugin key", pk, { required: true, name: "pluginKey", hint: "The plugin's id, e.g. acme.cloud-envs." }),
      field("Driver key", dk, { required: true, name: "driverKey", hint: "Which of the plugin's drivers to use." }),
      field("Driver config (JSON)", dc, { name: "driverConfig", wide: true, hint: "Passed to the plugin, which validates it." }))));
  return () => {
    let driverConfig;
    try { driverConfig = JSON.parse(dc.value || "{}"); } catch (e) {
      throw Object.assign(new Error("Driver config is not valid JSON"), { details: [{ path: ["driverConfig"], message: e.message }] });
    }
    return { pluginKey: pk.value.trim(), driverKey: dk.value.trim(), driverConfig };
  };
}
