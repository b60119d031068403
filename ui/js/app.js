// The board: a client-side router over real URLs (the daemon answers every
// non-API path with index.html), the shell (sidebar, sign-in) and the views.
import { h, clear, empty, pill, time, short } from "./dom.js";
import { api, get, auth } from "./api.js";
import { environmentsView, environmentFormView } from "./views/environments.js";
import { agentsView, agentFormView } from "./views/agents.js";
import { issuesView, issueView } from "./views/issues.js";
import { runsView, runView } from "./views/runs.js";
import { pluginsView } from "./views/plugins.js";
import { activityView } from "./views/activity.js";

const main = document.getElementById("main");
const sidebar = document.getElementById("sidebar");
export const state = { health: null, companies: [], cid: null };
let cleanup = [];

const routes = [
  ["/", pickerView],
  ["/companies", pickerView],
  ["/companies/:cid", dashboardView],
  ["/companies/:cid/environments", environmentsView],
  ["/companies/:cid/environments/new", environmentFormView],
  ["/companies/:cid/environments/:id/edit", environmentFormView],
  ["/companies/:cid/agents", agentsView],
  ["/companies/:cid/agents/new", agentFormView],
  ["/companies/:cid/agents/:id", agentFormView],
  ["/companies/:cid/issues", issuesView],
  ["/companies/:cid/issues/:id", issueView],
  ["/companies/:cid/runs", runsView],
  ["/companies/:cid/plugins", pluginsView],
  ["/companies/:cid/activity", activityView],
  ["/runs/:id", runView],
  ["/plugins", pluginsView],
];

function match(pattern, path) {
  const a = pattern.split("/").filter(Boolean), b = path.split("/").filter(Boolean);
  if (a.length !== b.length) return null;
  const params = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(":")) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return params;
}

export function navigate(path, replace = false) {
  history[replace ? "replaceState" : "pushState"]({}, "", path);
  render();
}

// Views register what must stop when the page changes (timers, streams).
export function onLeave(fn) { cleanup.push(fn); }

// Pages reached without a company in their URL (a run) name it once loaded.
export function setCompany(cid) {
  if (state.cid === cid) return;
  state.cid = cid;
  renderSidebar(location.pathname);
}

export function setTitle(text) {
  document.title = `${text} · Paperclip`;
}

async function render() {
  for (const fn of cleanup.splice(0)) { try { fn(); } catch {} }
  const path = location.pathname.replace(/\/+$/, "") || "/";
  for (const [pattern, view] of routes) {
    const params = match(pattern, path);
    if (!params) continue;
    if (params.cid) state.cid = params.cid;
    renderSidebar(path);
    clear(main, h("p", { class: "muted loading" }, "Loading…"));
    try {
      await view(main, params, new URLSearchParams(location.search));
    } catch (e) {
      if (e.status === 401) return;
      clear(main, h("h1", {}, "Something went wrong"),
        h("p", { class: "result bad", role: "alert" }, e.message || String(e)),
        h("p", {}, h("a", { href: "/" }, "Back to companies")));
    }
    return;
  }
  renderSidebar(path);
  clear(main, h("h1", {}, "Page not found"), h("p", {}, "No screen lives at this address. ",
    h("a", { href: "/" }, "Go to the company list")));
}

function renderSidebar(path) {
  const cid = state.cid;
  const company = state.companies.find((c) => c.id === cid);
  const link = (href, label) => h("a", { href, class: "nav-link",
    "aria-current": path === href || (href !== `/companies/${cid}` && path.startsWith(href + "/")) ? "page" : null }, label);
  clear(sidebar,
    h("a", { href: "/", class: "brand" }, h("img", { class: "logo", src: "/favicon.svg", alt: "" }), "Paperclip"),
    cid ? h("div", { class: "company-name", title: company?.name || "" }, company?.name || short(cid)) : null,
    cid ? h("ul", { class: "nav" },
      [["", "Dashboard"], ["/agents", "Agents"], ["/issues", "Issues"], ["/runs", "Runs"],
       ["/activity", "Activity"]].map(([p, l]) => h("li", {}, link(`/companies/${cid}${p}`, l))),
      h("li", { class: "nav-group" }, "Settings"),
      h("li", {}, link(`/companies/${cid}/environments`, "Environments")),
      h("li", {}, link(`/companies/${cid}/plugins`, "Plugins"))) : null,
    h("div", { class: "sidebar-foot" },
      path === "/login" ? null : h("a", { href: "/", class: "nav-link" }, "Switch company"),
      state.health ? h("p", { class: "muted small" }, `v${state.health.version} · ${state.health.deploymentMode.replace("_", " ")}`) : null,
      auth.key ? h("button", { type: "button", class: "link", onclick: () => { auth.key = null; location.reload(); } }, "Sign out") : null));
}

async function pickerView(el) {
  setTitle("Companies");
  state.cid = null;
  renderSidebar("/");
  state.companies = await get("/api/companies");
  const form = h("form", { class: "inline-form", onsubmit: async (e) => {
    e.preventDefault();
    const name = form.elements.name.value.trim();
    const msg = form.querySelector(".result");
    try {
      const c = await api("POST", "/api/companies", { name });
      navigate(`/companies/${c.id}`);
    } catch (err) { msg.textContent = err.message; msg.hidden = false; }
  } },
    h("label", { for: "new-company" }, "New company name"),
    h("input", { id: "new-company", name: "name", required: true, autocomplete: "off" }),
    h("button", { type: "submit", class: "primary" }, "Create company"),
    h("p", { class: "result bad", role: "alert", hidden: true }));
  clear(el, h("h1", {}, "Companies"),
    h("p", { class: "lead" }, "Pick the company whose agents, issues and environments you want to see."),
    state.companies.length
      ? h("ul", { class: "cards" }, state.companies.map((c) => h("li", { class: "card" },
          h("h2", {}, h("a", { href: `/companies/${c.id}` }, c.name)),
          h("p", { class: "muted" }, c.description || `Prefix ${c.issuePrefix}`), pill(c.status))))
      : empty("No companies yet — create one below."),
    form);
}

async function dashboardView(el, { cid }) {
  const [company, agents, issues, runs] = await Promise.all([
    get(`/api/companies/${cid}`), get(`/api/companies/${cid}/agents`),
    get(`/api/companies/${cid}/issues`), get(`/api/companies/${cid}/heartbeat-runs`)]);
  setTitle(company.name);
  if (!state.companies.some((c) => c.id === cid)) { state.companies.push(company); renderSidebar(location.pathname); }
  const open = issues.filter((i) => !["done", "cancelled"].includes(i.status));
  const live = runs.filter((r) => ["queued", "running"].includes(r.status));
  const agentName = (id) => agents.find((a) => a.id === id)?.name || short(id);
  clear(el,
    h("h1", {}, company.name),
    h("p", { class: "lead" }, company.description || "Agents, open work and runs at a glance."),
    h("div", { class: "kpis" },
      kpi("Agents", agents.length), kpi("Open issues", open.length), kpi("Live runs", live.length),
      kpi("Runs", runs.length)),
    h("section", { "aria-labelledby": "d-agents" }, h("h2", { id: "d-agents" }, "Agents"),
      agents.length ? h("ul", { class: "cards" }, agents.map((a) => h("li", { class: "card" },
        h("h3", {}, h("a", { href: `/companies/${cid}/agents/${a.id}` }, a.name)),
        h("p", { class: "muted" }, `${a.role} · ${a.adapterType}`), pill(a.status))))
      : empty("No agents yet — ", h("a", { href: `/companies/${cid}/agents/new` }, "create one"))),
    h("div", { class: "two-col" },
      h("section", { "aria-labelledby": "d-issues" }, h("h2", { id: "d-issues" }, "Open issues"),
        open.length ? h("ul", { class: "rows" }, open.slice(0, 8).map((i) => h("li", {},
          h("a", { href: `/companies/${cid}/issues/${i.id}` }, `${i.identifier || ""} ${i.title}`), pill(i.status))))
        : empty("No open issues.", h("a", { href: `/companies/${cid}/issues` }, "Create an issue"))),
      h("section", { "aria-labelledby": "d-runs" }, h("h2", { id: "d-runs" }, "Recent and live runs"),
        runs.length ? h("ul", { class: "rows" }, runs.slice(0, 8).map((r) => h("li", {},
          h("a", { href: `/runs/${r.id}` }, `${agentName(r.agentId)} · run ${short(r.id)}`), pill(r.status),
          time(r.createdAt))))
        : empty("No runs yet. Wake an agent to start one."))));
}

function kpi(label, n) {
  return h("div", { class: "kpi" }, h("span", { class: "kpi-n" }, String(n)), h("span", { class: "kpi-l" }, label));
}

function loginView() {
  renderSidebar("/login");
  const form = h("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    auth.key = form.elements.key.value.trim();
    const msg = form.querySelector(".result");
    auth.checking = true;
    try {
      state.companies = await get("/api/companies");
      auth.checking = false;
      render();
    } catch (err) {
      auth.checking = false;
      auth.key = null;
      msg.textContent = err.status === 401 ? "That key was not accepted." : err.message;
      msg.hidden = false;
      form.elements.key.focus();
    }
  } },
    h("h1", {}, "Sign in"),
    h("p", { class: "lead" }, "This instance runs in authenticated mode. Paste a board key (create one with ",
      h("code", {}, "paperclip auth create-board-key"), "). It is kept for this browser tab only."),
    h("label", { for: "board-key" }, "Board key"),
    h("input", { id: "board-key", name: "key", type: "password", required: true, autocomplete: "off" }),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    h("p", { class: "result bad", role: "alert", hidden: true }));
  setTitle("Sign in");
  clear(main, form);
  form.elements.key.focus();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || e.defaultPrevented || e.button !== 0 ||
      e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
  main.focus({ preventScroll: true });
});
window.addEventListener("popstate", render);

auth.onUnauthorized = () => loginView();

(async () => {
  try {
    state.health = await get("/api/health");
  } catch (e) {
    clear(main, h("h1", {}, "The daemon is not answering"), h("p", { class: "result bad" }, e.message));
    return;
  }
  if (state.health.deploymentMode === "authenticated" && !auth.key) return loginView();
  try { state.companies = await get("/api/companies"); } catch (e) { if (e.status === 401) return; }
  render();
})();
