// Plugins: what is installed, its status and health, recent errors, install
// from a local path, enable/disable.
import { h, clear, field, pill, time, empty, toast } from "../dom.js";
import { get, post, showError, clearErrors } from "../api.js";
import { navigate, setTitle } from "../app.js";

export async function pluginsView(el) {
  setTitle("Plugins");
  const plugins = await get("/api/plugins");
  const pathIn = h("input", { name: "packageName", placeholder: "/opt/paperclip/plugins/my-plugin", spellcheck: "false", class: "mono" });
  pathIn.dataset.errMatch = "package|path|manifest";
  const result = h("div", { class: "result", role: "status", hidden: true });
  const form = h("form", { class: "form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const p = await post("/api/plugins/install", { packageName: pathIn.value.trim(), isLocalPath: true });
      toast(`Installed ${p.pluginKey}`, "good");
      navigate(location.pathname, true);
    } catch (err) { showError(form, err, result); }
  } }, field("Local plugin directory", pathIn, { name: "packageName", required: true, hint: "A directory with a Paperclip plugin package on this host." }),
    result, h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Install plugin")));
  const cards = h("ul", { class: "cards wide-cards" });
  clear(el, h("h1", {}, "Plugins"),
    h("p", { class: "lead" }, "Plugins add sandbox providers, environment drivers and tools. They run as separate worker processes."),
    h("section", { "aria-labelledby": "pl-inst" }, h("h2", { id: "pl-inst" }, "Installed"),
      plugins.length ? cards : empty("No plugins installed yet — install one from a local directory below.")),
    h("section", { "aria-labelledby": "pl-new" }, h("h2", { id: "pl-new" }, "Install from a local path"), form));
  for (const p of plugins) cards.append(await pluginCard(p));
}

async function pluginCard(p) {
  const m = p.manifestJson || {};
  const [health, logs] = await Promise.all([get(`/api/plugins/${p.id}/health`).catch(() => null),
    get(`/api/plugins/${p.id}/logs`).catch(() => [])]);
  const errors = (Array.isArray(logs) ? logs : []).filter((l) => l.level === "error" || l.level === "warn").slice(-3);
  const slot = h("div", { class: "result", role: "status", hidden: true });
  const enabled = p.enabled !== undefined ? p.enabled : p.status !== "disabled";
  const toggle = h("button", { type: "button", "aria-label": `${enabled ? "Disable" : "Enable"} ${m.displayName || p.pluginKey}`, onclick: async () => {
    toggle.disabled = true;
    try {
      await post(`/api/plugins/${p.id}/${enabled ? "disable" : "enable"}`, {});
      navigate(location.pathname, true);
    } catch (err) { clear(slot, err.message); slot.className = "result bad"; slot.hidden = false; toggle.disabled = false; }
  } }, enabled ? "Disable" : "Enable");
  const healthMsg = health?.details?.message || (health?.checks || []).filter((c) => !c.passed).map((c) => c.message || c.name).join("; ");
  return h("li", { class: "card", "data-plugin": p.pluginKey },
    h("div", { class: "page-head" }, h("h3", {}, m.displayName || p.pluginKey), pill(p.status)),
    h("p", { class: "muted small mono" }, `${p.pluginKey} · v${p.version}`),
    m.description ? h("p", {}, m.description) : null,
    health ? h("p", { class: "small" }, "Health: ", pill(health.healthy ? "healthy" : "unhealthy"), healthMsg ? ` ${healthMsg}` : "") : null,
    p.lastError ? h("p", { class: "result bad" }, "Last error: ", p.lastError) : null,
    errors.length ? h("ul", { class: "small plugin-errors", "aria-label": "Recent warnings and errors" },
      errors.map((l) => h("li", {}, h("strong", {}, `${l.level}: `), l.message, " ", time(l.createdAt)))) : null,
    h("p", { class: "small muted" }, "Installed ", time(p.installedAt)),
    h("div", { class: "toolbar" }, toggle), slot);
}
