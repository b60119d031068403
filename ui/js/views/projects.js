// Projects: the list, and one page to create or edit a project — its plain
// fields, the execution workspace policy (shared or isolated workspaces, and
// the environment its runs use), its project workspaces (where the code is)
// and the execution workspaces runs have made for it.
import { h, clear, field, select, pill, time, empty, toast, short } from "../dom.js";
import { api, get, post, del, showError, clearErrors } from "../api.js";
import { navigate, setTitle } from "../app.js";

const STATUSES = ["backlog", "planned", "in_progress", "completed", "cancelled"];
const MODES = [["adapter_default", "None: the agent's own workspace"],
  ["shared_workspace", "Shared: one workspace for the project"],
  ["isolated_workspace", "Isolated: one workspace per issue"]];

export function modeLabel(p) {
  const pol = p?.executionWorkspacePolicy;
  if (!pol?.enabled || !pol.defaultMode || pol.defaultMode === "adapter_default") return "none";
  return pol.defaultMode === "isolated_workspace" ? "isolated" : "shared";
}

export async function projectsView(el, { cid }) {
  setTitle("Projects");
  const [projects, agents, envs] = await Promise.all([get(`/api/companies/${cid}/projects`),
    get(`/api/companies/${cid}/agents`), get(`/api/companies/${cid}/environments`)]);
  const agentName = (id) => agents.find((a) => a.id === id)?.name || (id ? short(id) : "—");
  const envName = (id) => envs.find((e) => e.id === id)?.name || (id ? short(id) : "Company default");
  clear(el,
    h("div", { class: "page-head" }, h("h1", {}, "Projects"),
      h("a", { class: "button primary", href: `/companies/${cid}/projects/new` }, "New project")),
    h("p", { class: "lead" }, "A project groups issues and says where their runs work."),
    projects.length ? h("div", { class: "table-wrap" }, h("table", { class: "list" },
      h("caption", { class: "sr-only" }, "Projects"),
      h("thead", {}, h("tr", {}, ["Name", "Status", "Lead", "Workspaces", "Environment", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, projects.map((p) => h("tr", { "data-project": p.name },
        h("th", { scope: "row" }, h("a", { href: `/companies/${cid}/projects/${p.id}` }, p.name),
          p.description ? h("div", { class: "muted small" }, p.description) : null),
        h("td", { "data-label": "Status" }, pill(p.status)), h("td", { "data-label": "Lead" }, agentName(p.leadAgentId)),
        h("td", { "data-label": "Workspaces" }, modeLabel(p)),
        h("td", { "data-label": "Environment" }, envName(p.executionWorkspacePolicy?.environmentId)),
        h("td", { "data-label": "Updated" }, time(p.updatedAt)))))))
      : empty("No projects yet — ", h("a", { href: `/companies/${cid}/projects/new` }, "create one")));
}

export async function projectFormView(el, { cid, id }) {
  const [agents, envs, goals, project] = await Promise.all([get(`/api/companies/${cid}/agents`),
    get(`/api/companies/${cid}/environments`), get(`/api/companies/${cid}/goals`).catch(() => []),
    id ? get(`/api/projects/${id}`) : null]);
  setTitle(project ? project.name : "New project");
  const pol = project?.executionWorkspacePolicy || {};
  const form = h("form", { class: "form", novalidate: true });
  const name = h("input", { name: "name", value: project?.name || "", autocomplete: "off" });
  const descr = h("textarea", { name: "description", rows: 3, value: project?.description || "" });
  const status = select(STATUSES.map((s) => [s, s.replace("_", " ")]), project?.status || "backlog", { name: "status" });
  const lead = select([["", "No lead"], ...agents.map((a) => [a.id, a.name])], project?.leadAgentId || "", { name: "leadAgentId" });
  const goal = select([["", "No goal"], ...goals.map((g) => [g.id, g.title])], project?.goalId || "", { name: "goalId" });
  const mode = select(MODES, pol.enabled ? pol.defaultMode || "adapter_default" : "adapter_default", { name: "defaultMode" });
  // Any active environment of the company: the policy has no adapter of its
  // own, so the daemon checks that the one named can run work.
  const active = envs.filter((e) => e.status === "active" || e.id === pol.environmentId);
  const envSel = select([["", "Company default"], ...active.map((e) => [e.id, `${e.name} · ${e.driver}`])],
    pol.environmentId || "", { name: "environmentId" });
  const baseRef = h("input", { name: "baseRef", value: pol.workspaceStrategy?.baseRef || "", class: "mono", spellcheck: "false", autocomplete: "off" });
  const branch = h("input", { name: "branchTemplate", value: pol.workspaceStrategy?.branchTemplate || "", class: "mono", spellcheck: "false", autocomplete: "off",
    placeholder: "paperclip/{{issue.identifier}}" });
  const result = h("div", { class: "result", role: "status", hidden: true });
  name.dataset.errMatch = "name";
  envSel.dataset.errMatch = "environment";
  goal.dataset.errMatch = "goal";
  lead.dataset.errMatch = "lead";
  const policyFields = h("div", { class: "grid" });
  const renderPolicy = () => {
    const on = mode.value !== "adapter_default";
    for (const c of [envSel, baseRef, branch]) c.disabled = !on;
  };
  mode.addEventListener("change", renderPolicy);

  const saveBtn = h("button", { type: "submit", class: "primary" }, project ? "Save changes" : "Create project");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    result.hidden = true;
    saveBtn.disabled = true;
    try {
      const on = mode.value !== "adapter_default";
      const strategy = {};
      if (baseRef.value.trim()) strategy.baseRef = baseRef.value.trim();
      if (branch.value.trim()) strategy.branchTemplate = branch.value.trim();
      const policy = { ...pol, enabled: on, defaultMode: mode.value, environmentId: envSel.value || null };
      if (Object.keys(strategy).length) policy.workspaceStrategy = { ...(pol.workspaceStrategy || {}), ...strategy };
      else if (policy.workspaceStrategy) { delete policy.workspaceStrategy.baseRef; delete policy.workspaceStrategy.branchTemplate; }
      const b = { name: name.value.trim(), description: descr.value.trim() || null, status: status.value,
        leadAgentId: lead.value || null, goalId: goal.value || null, executionWorkspacePolicy: policy };
      const saved = project ? await api("PATCH", `/api/projects/${project.id}`, b) : await post(`/api/companies/${cid}/projects`, b);
      toast(project ? "Project saved" : "Project created", "good");
      navigate(`/companies/${cid}/projects/${saved.id}`, !project);
    } catch (err) { showError(form, err, result); }
    saveBtn.disabled = false;
  });
  policyFields.append(
    field("Workspace mode", mode, { name: "executionWorkspacePolicy.defaultMode", hint: "Whether runs of this project's issues share its directory or each issue gets its own (a git worktree on a new branch)." }),
    field("Environment", envSel, { name: "executionWorkspacePolicy.environmentId", hint: "Where this project's runs execute." }),
    field("Base ref", baseRef, { name: "executionWorkspacePolicy.workspaceStrategy.baseRef", hint: "Branch or commit new worktrees start from; empty: the workspace's ref." }),
    field("Branch name", branch, { name: "executionWorkspacePolicy.workspaceStrategy.branchTemplate", hint: "For isolated workspaces; may contain {{issue.identifier}}." }));
  renderPolicy();
  form.append(
    h("div", { class: "grid" },
      field("Name", name, { required: true, name: "name", hint: "How the project shows up on issues." }),
      field("Status", status, { name: "status" }),
      field("Lead agent", lead, { name: "leadAgentId", hint: "The agent who owns the project." }),
      field("Goal", goal, { name: "goalId", hint: goals.length ? "What the project works towards." : "The company has no goals yet." }),
      field("Description", descr, { name: "description", wide: true })),
    h("fieldset", {}, h("legend", {}, "Execution workspaces"), policyFields),
    result,
    h("div", { class: "buttons sticky" }, h("a", { class: "button", href: `/companies/${cid}/projects` }, "Cancel"), saveBtn));

  const parts = [h("p", {}, h("a", { href: `/companies/${cid}/projects` }, "← Projects")),
    h("div", { class: "page-head" }, h("h1", {}, project ? project.name : "New project"), project ? pill(project.status) : null),
    form];
  if (project) {
    const ews = await get(`/api/companies/${cid}/execution-workspaces?projectId=${encodeURIComponent(project.id)}`).catch(() => []);
    parts.push(workspacesSection(project), executionSection(ews));
  }
  clear(el, ...parts);
}

function workspacesSection(project) {
  const list = h("ul", { class: "rows", id: "project-workspaces" });
  const render = (ws) => clear(list, ws.length ? ws.map((w) => h("li", { "data-workspace": w.name },
    h("span", {}, h("strong", {}, w.name), " ", h("span", { class: "mono muted small" },
      [w.repoUrl, w.repoRef ? `@${w.repoRef}` : null, w.cwd ? ` ${w.cwd}` : null].filter(Boolean).join(""))),
    w.isPrimary ? pill("primary") : null,
    h("button", { type: "button", class: "danger", "aria-label": `Remove workspace ${w.name}`, onclick: async () => {
      if (!confirm(`Remove workspace “${w.name}”? Execution workspaces already made from it stay.`)) return;
      try { await del(`/api/projects/${project.id}/workspaces/${w.id}`); render(await get(`/api/projects/${project.id}/workspaces`)); }
      catch (err) { toast(err.message, "bad"); }
    } }, "Remove")))
    : h("li", { class: "muted" }, "No workspaces: runs of this project work in their agent's own directory."));
  render(project.workspaces || []);
  const form = h("form", { class: "form", novalidate: true });
  const wname = h("input", { name: "wsName", autocomplete: "off" });
  const repo = h("input", { name: "repoUrl", class: "mono", spellcheck: "false", autocomplete: "off", placeholder: "https://example.com/org/repo.git" });
  const ref = h("input", { name: "repoRef", class: "mono", spellcheck: "false", autocomplete: "off", placeholder: "main" });
  const cwd = h("input", { name: "cwd", class: "mono", spellcheck: "false", autocomplete: "off", placeholder: "/srv/code/app" });
  const result = h("div", { class: "result", role: "status", hidden: true });
  repo.dataset.errMatch = "repo";
  cwd.dataset.errMatch = "cwd";
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    result.hidden = true;
    try {
      const b = { name: wname.value.trim() || "workspace" };
      if (repo.value.trim()) b.repoUrl = repo.value.trim();
      if (ref.value.trim()) b.repoRef = ref.value.trim();
      if (cwd.value.trim()) b.cwd = cwd.value.trim();
      await post(`/api/projects/${project.id}/workspaces`, b);
      toast("Workspace added", "good");
      form.reset();
      render(await get(`/api/projects/${project.id}/workspaces`));
    } catch (err) { showError(form, err, result); }
  });
  form.append(h("div", { class: "grid" },
    field("Workspace name", wname, { name: "name", hint: "e.g. app" }),
    field("Repository URL", repo, { name: "repoUrl", hint: "A git repository to clone; or give a host directory below." }),
    field("Repository ref", ref, { name: "repoRef", hint: "Branch, tag or commit; empty: the default branch." }),
    field("Host directory", cwd, { name: "cwd", hint: "Absolute path of a checkout on this host." })),
    result, h("div", { class: "buttons" }, h("button", { type: "submit" }, "Add workspace")));
  return h("section", { "aria-labelledby": "pw-h" }, h("h2", { id: "pw-h" }, "Project workspaces"), list,
    h("h3", {}, "Add a workspace"), form);
}

function executionSection(ews) {
  return h("section", { "aria-labelledby": "ew-h" }, h("h2", { id: "ew-h" }, "Execution workspaces"),
    ews.length ? h("div", { class: "table-wrap" }, h("table", { class: "list" },
      h("caption", { class: "sr-only" }, "Execution workspaces"),
      h("thead", {}, h("tr", {}, ["Name", "Mode", "Status", "Branch", "Directory", "Last used"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ews.map((w) => h("tr", {},
        h("th", { scope: "row" }, w.name || short(w.id)),
        h("td", { "data-label": "Mode" }, (w.mode || "").replace("_workspace", "")),
        h("td", { "data-label": "Status" }, pill(w.status)),
        h("td", { "data-label": "Branch", class: "mono" }, w.branchName || "—"),
        h("td", { "data-label": "Directory", class: "mono small" }, w.cwd || "—"),
        h("td", { "data-label": "Last used" }, time(w.lastUsedAt || w.createdAt)))))))
      : empty("None yet: runs of this project's issues make them."));
}
