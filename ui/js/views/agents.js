// Agents: the list with Wake now, and one page to create or edit an agent:
// adapter and its config, the default environment (only those the adapter
// can run in, per capabilities), and API keys (a new key is shown once).
import { h, clear, field, select, pill, time, empty, toast, short } from "../dom.js";
import { api, get, post, del, showError, clearErrors } from "../api.js";
import { navigate, setTitle } from "../app.js";

const ROLES = ["ceo", "cto", "cmo", "cfo", "security", "engineer", "designer", "pm", "qa", "devops", "researcher", "general"];
const ADAPTERS = ["process", "http", "claude_local", "codex_local", "cursor", "gemini_local", "opencode_local", "pi_local", "openclaw_gateway", "hermes_local"];

export async function wake(agent, slot) {
  try {
    const run = await post(`/api/agents/${agent.id}/wakeup`, { source: "on_demand", reason: "board_wake" });
    if (slot) clear(slot, "Woken: ", h("a", { href: `/runs/${run.id}` }, `run ${short(run.id)}`), " ", pill(run.status));
    if (slot) { slot.className = "result good"; slot.hidden = false; }
    return run;
  } catch (err) {
    if (slot) { clear(slot, err.message); slot.className = "result bad"; slot.hidden = false; }
    else toast(err.message, "bad");
    return null;
  }
}

export async function agentsView(el, { cid }) {
  setTitle("Agents");
  const agents = await get(`/api/companies/${cid}/agents`);
  clear(el,
    h("div", { class: "page-head" }, h("h1", {}, "Agents"),
      h("a", { class: "button primary", href: `/companies/${cid}/agents/new` }, "New agent")),
    agents.length ? h("div", { class: "table-wrap" }, h("table", { class: "list" },
      h("caption", { class: "sr-only" }, "Agents"),
      h("thead", {}, h("tr", {}, ["Name", "Role", "Adapter", "Status", "Last heartbeat", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, agents.map((a) => {
        const slot = h("div", { class: "result", role: "status", hidden: true });
        return [h("tr", {},
          h("th", { scope: "row" }, h("a", { href: `/companies/${cid}/agents/${a.id}` }, a.name), a.title ? h("div", { class: "muted small" }, a.title) : null),
          h("td", { "data-label": "Role" }, a.role), h("td", { "data-label": "Adapter" }, a.adapterType),
          h("td", { "data-label": "Status" }, pill(a.status)), h("td", { "data-label": "Last heartbeat" }, time(a.lastHeartbeatAt)),
          h("td", {}, h("div", { class: "actions" }, h("button", { type: "button", onclick: () => wake(a, slot), "aria-label": `Wake ${a.name} now` }, "Wake now")))),
        h("tr", { class: "detail-row" }, h("td", { colspan: 6 }, slot))];
      }))))
      : empty("No agents yet — ", h("a", { href: `/companies/${cid}/agents/new` }, "create one")));
}

// Environments an adapter can use: the driver must be supported for it, and
// a sandbox's provider too (the probe-only built-in fake never is).
export function envChoices(envs, caps, adapterType) {
  const a = (caps.adapters || []).find((x) => x.adapterType === adapterType);
  if (!a) return [];
  return envs.filter((e) => e.status === "active" && a.drivers?.[e.driver] === "supported" &&
    (e.driver !== "sandbox" || (a.sandboxProviders?.[e.config?.provider] ?? caps.sandboxProviders?.[e.config?.provider]?.status) === "supported"));
}

export async function agentFormView(el, { cid, id }) {
  const [caps, envs, agent, keys] = await Promise.all([
    get(`/api/companies/${cid}/environments/capabilities`), get(`/api/companies/${cid}/environments`),
    id ? get(`/api/agents/${id}`) : null, id ? get(`/api/agents/${id}/keys`).catch(() => []) : []]);
  setTitle(agent ? agent.name : "New agent");
  const ac = agent?.adapterConfig || {};
  const form = h("form", { class: "form", novalidate: true });
  const name = h("input", { name: "name", value: agent?.name || "", autocomplete: "off" });
  const title = h("input", { name: "title", value: agent?.title || "", autocomplete: "off" });
  const role = select(ROLES.map((r) => [r, r]), agent?.role || "general", { name: "role" });
  const adapter = select(ADAPTERS.map((x) => [x, x]), agent?.adapterType || "process", { name: "adapterType" });
  const envSel = h("select", { name: "defaultEnvironmentId" });
  const adapterBox = h("div", { class: "grid" });
  const result = h("div", { class: "result", role: "status", hidden: true });
  name.dataset.errMatch = "name";
  adapter.dataset.errMatch = "adapter";
  envSel.dataset.errMatch = "environment";
  let readConfig = () => ({});

  const fillEnvs = () => {
    const ok = envChoices(envs, caps, adapter.value);
    const cur = envSel.value || agent?.defaultEnvironmentId || "";
    clear(envSel, h("option", { value: "" }, "Default: Local (this host)"),
      ok.filter((e) => e.driver !== "local").map((e) => h("option", { value: e.id, selected: e.id === cur }, `${e.name} · ${e.driver}`)));
    envHint.textContent = ok.length > 1 ? `${ok.length - 1} environment(s) fit the ${adapter.value} adapter.`
      : `The ${adapter.value} adapter runs on this host only, or no other environment fits it.`;
  };
  const envHint = h("p", { class: "hint" });
  // Both editors are built once, so switching the adapter back and forth
  // keeps what was typed.
  const cmd = h("input", { name: "command", value: ac.command || "", spellcheck: "false", class: "mono" });
  const args = h("textarea", { name: "args", rows: 3, class: "mono", value: (ac.args || []).join("\n") });
  const cwd = h("input", { name: "cwd", value: ac.cwd || "", spellcheck: "false", class: "mono" });
  const timeout = h("input", { name: "timeoutSec", type: "number", min: 0, value: ac.timeoutSec ?? 0 });
  const raw = h("textarea", { name: "adapterConfig", rows: 6, class: "mono", value: JSON.stringify(ac, null, 2) });
  cmd.dataset.errMatch = "command";
  const processFields = [
    field("Command", cmd, { required: true, name: "adapterConfig.command", hint: "Program to run on each heartbeat, e.g. sh." }),
    field("Timeout (seconds)", timeout, { name: "adapterConfig.timeoutSec", hint: "0 means no limit." }),
    field("Arguments", args, { name: "adapterConfig.args", wide: true, hint: "One argument per line." }),
    field("Working directory", cwd, { name: "adapterConfig.cwd", hint: "Absolute, or relative to the workspace." })];
  const rawField = field("Adapter config (JSON)", raw, { name: "adapterConfig", wide: true, hint: "Settings for this adapter, e.g. model or url." });
  const renderAdapter = () => {
    if (adapter.value === "process") {
      clear(adapterBox, ...processFields);
      readConfig = () => {
        if (!cmd.value.trim())
          throw Object.assign(new Error("A process agent needs a command."), { details: [{ path: ["adapterConfig", "command"], message: "Give the program to run, e.g. sh." }] });
        return { ...ac, command: cmd.value.trim(), args: args.value.split("\n").filter((s) => s !== ""),
          ...(cwd.value.trim() ? { cwd: cwd.value.trim() } : {}), timeoutSec: Number(timeout.value || 0) };
      };
    } else {
      clear(adapterBox, rawField);
      readConfig = () => {
        try { return JSON.parse(raw.value || "{}"); } catch (e) {
          throw Object.assign(new Error("Adapter config is not valid JSON"), { details: [{ path: ["adapterConfig"], message: e.message }] });
        }
      };
    }
    fillEnvs();
  };
  adapter.addEventListener("change", renderAdapter);
  renderAdapter();

  const saveBtn = h("button", { type: "submit", class: "primary" }, agent ? "Save changes" : "Create agent");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    result.hidden = true;
    saveBtn.disabled = true;
    try {
      const b = { name: name.value.trim(), title: title.value.trim() || null, role: role.value,
        adapterType: adapter.value, adapterConfig: readConfig(), defaultEnvironmentId: envSel.value || null };
      const saved = agent ? await api("PATCH", `/api/agents/${agent.id}`, b) : await post(`/api/companies/${cid}/agents`, b);
      toast(agent ? "Agent saved" : "Agent created", "good");
      navigate(`/companies/${cid}/agents/${saved.id}`, !agent);
    } catch (err) { showError(form, err, result); }
    saveBtn.disabled = false;
  });
  form.append(
    h("div", { class: "grid" },
      field("Name", name, { required: true, name: "name", hint: "How the agent shows up in issues and runs." }),
      field("Title", title, { name: "title", hint: "Optional job title." }),
      field("Role", role, { name: "role", hint: "Its place in the company." }),
      field("Adapter", adapter, { name: "adapterType", hint: "What runs on a heartbeat: a process, an HTTP call, or a coding CLI." })),
    h("fieldset", {}, h("legend", {}, "Adapter config"), adapterBox),
    h("fieldset", {}, h("legend", {}, "Environment"),
      field("Default environment", envSel, { name: "defaultEnvironmentId", hint: "Where this agent's runs execute unless an issue picks another." }), envHint),
    result,
    h("div", { class: "buttons sticky" }, h("a", { class: "button", href: `/companies/${cid}/agents` }, "Cancel"), saveBtn));

  const parts = [h("p", {}, h("a", { href: `/companies/${cid}/agents` }, "← Agents")),
    h("div", { class: "page-head" }, h("h1", {}, agent ? agent.name : "New agent"), agent ? pill(agent.status) : null)];
  if (agent) {
    const wakeSlot = h("div", { class: "result", role: "status", hidden: true });
    const paused = agent.status === "paused";
    parts.push(h("div", { class: "toolbar" },
      h("button", { type: "button", class: "primary", onclick: () => wake(agent, wakeSlot) }, "Wake now"),
      h("button", { type: "button", onclick: async () => {
        try {
          await post(`/api/agents/${agent.id}/${paused ? "resume" : "pause"}`, {});
          toast(paused ? "Agent resumed" : "Agent paused");
          navigate(location.pathname, true);
        } catch (err) { clear(wakeSlot, err.message); wakeSlot.className = "result bad"; wakeSlot.hidden = false; }
      } }, paused ? "Resume" : "Pause"),
      h("a", { class: "button", href: `/companies/${cid}/runs?agentId=${agent.id}` }, "Runs")), wakeSlot);
  }
  parts.push(form);
  if (agent) parts.push(keysSection(agent, keys));
  clear(el, ...parts);
}

function keysSection(agent, keys) {
  const list = h("ul", { class: "rows" });
  const shown = h("div", { class: "result good", role: "status", hidden: true });
  const render = (ks) => clear(list, ks.length ? ks.map((k) => h("li", {}, h("span", {}, k.name), time(k.createdAt),
    h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.name}`, onclick: async () => {
      if (!confirm(`Revoke key “${k.name}”? Anything using it stops working.`)) return;
      try { await del(`/api/agents/${agent.id}/keys/${k.id}`); render(await get(`/api/agents/${agent.id}/keys`)); }
      catch (err) { toast(err.message, "bad"); }
    } }, "Revoke"))) : h("li", { class: "muted" }, "No keys. Agents running through Paperclip get a run token; keys are for agents that call in on their own."));
  render(keys);
  const kname = h("input", { name: "keyName", autocomplete: "off" });
  const kform = h("form", { class: "inline-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const k = await post(`/api/agents/${agent.id}/keys`, { name: kname.value.trim() || "key" });
      clear(shown, h("p", {}, "Copy this key now: it is not shown again."), h("code", { class: "secret" }, k.token));
      shown.hidden = false;
      kname.value = "";
      render(await get(`/api/agents/${agent.id}/keys`));
    } catch (err) { clear(shown, err.message); shown.className = "result bad"; shown.hidden = false; }
  } }, h("label", { for: "key-name" }, "New key name"), kname, h("button", { type: "submit" }, "Create key"));
  kname.id = "key-name";
  return h("section", { "aria-labelledby": "keys-h" }, h("h2", { id: "keys-h" }, "API keys"), list, kform, shown);
}
