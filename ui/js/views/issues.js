// Issues: a filtered list with a create form, and one issue's page to change
// status, assignee and environment and to read and write comments.
import { h, clear, field, select, pill, time, empty, toast, short } from "../dom.js";
import { api, get, post, showError, clearErrors } from "../api.js";
import { navigate, setTitle } from "../app.js";
import { envChoices } from "./agents.js";

const STATUSES = ["backlog", "todo", "in_progress", "in_review", "blocked", "done", "cancelled"];
const PRIORITIES = ["critical", "high", "medium", "low"];

function envSelect(envs, caps, agent, current) {
  const ok = agent ? envChoices(envs, caps, agent.adapterType) : envs.filter((e) => e.status === "active");
  return select([["", "The assignee's default"], ...ok.map((e) => [e.id, `${e.name} · ${e.driver}`])], current || "",
    { name: "environmentId" });
}

export async function issuesView(el, { cid }, query) {
  setTitle("Issues");
  const [agents, envs, caps] = await Promise.all([get(`/api/companies/${cid}/agents`),
    get(`/api/companies/${cid}/environments`), get(`/api/companies/${cid}/environments/capabilities`)]);
  const fStatus = select([["", "Any status"], ...STATUSES.map((s) => [s, s.replace("_", " ")])], query.get("status") || "", { id: "flt-status" });
  const fAgent = select([["", "Anyone"], ...agents.map((a) => [a.id, a.name])], query.get("assigneeAgentId") || "", { id: "flt-agent" });
  const listBox = h("div", { class: "table-wrap" });
  const name = (id) => agents.find((a) => a.id === id)?.name || (id ? short(id) : "—");
  const load = async () => {
    const q = new URLSearchParams();
    if (fStatus.value) q.set("status", fStatus.value);
    if (fAgent.value) q.set("assigneeAgentId", fAgent.value);
    history.replaceState({}, "", `${location.pathname}${q.size ? `?${q}` : ""}`);
    const issues = await get(`/api/companies/${cid}/issues${q.size ? `?${q}` : ""}`);
    clear(listBox, issues.length ? h("table", { class: "list" }, h("caption", { class: "sr-only" }, "Issues"),
      h("thead", {}, h("tr", {}, ["Issue", "Status", "Priority", "Assignee", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, issues.map((i) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `/companies/${cid}/issues/${i.id}` }, h("span", { class: "mono muted" }, i.identifier || ""), " ", i.title)),
        h("td", { "data-label": "Status" }, pill(i.status)), h("td", { "data-label": "Priority" }, i.priority || ""),
        h("td", { "data-label": "Assignee" }, name(i.assigneeAgentId)), h("td", { "data-label": "Updated" }, time(i.updatedAt))))))
      : empty(fStatus.value || fAgent.value ? "No issue matches these filters." : "No issues yet — create one below."));
  };
  fStatus.addEventListener("change", load);
  fAgent.addEventListener("change", load);

  const form = h("form", { class: "form", novalidate: true });
  const title = h("input", { name: "title", autocomplete: "off" });
  const descr = h("textarea", { name: "description", rows: 3 });
  const prio = select(PRIORITIES.map((p) => [p, p]), "medium", { name: "priority" });
  const assignee = select([["", "Unassigned"], ...agents.map((a) => [a.id, a.name])], "", { name: "assigneeAgentId" });
  const envWrap = h("div");
  const result = h("div", { class: "result", role: "status", hidden: true });
  let env = envSelect(envs, caps, null, "");
  const renderEnv = () => {
    env = envSelect(envs, caps, agents.find((a) => a.id === assignee.value), env.value);
    clear(envWrap, field("Environment", env, { name: "executionWorkspaceSettings.environmentId", hint: "Where the work runs; only environments the assignee's adapter supports." }));
  };
  assignee.addEventListener("change", renderEnv);
  renderEnv();
  title.dataset.errMatch = "title";
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    result.hidden = true;
    try {
      const b = { title: title.value.trim(), description: descr.value.trim() || null, priority: prio.value,
        assigneeAgentId: assignee.value || null };
      if (env.value) b.executionWorkspaceSettings = { environmentId: env.value };
      const i = await post(`/api/companies/${cid}/issues`, b);
      toast(`Created ${i.identifier || i.title}`, "good");
      navigate(`/companies/${cid}/issues/${i.id}`);
    } catch (err) { showError(form, err, result); }
  });
  form.append(h("div", { class: "grid" },
    field("Title", title, { required: true, name: "title", hint: "One line that says what needs doing." }),
    field("Priority", prio, { name: "priority" }),
    field("Assignee", assignee, { name: "assigneeAgentId", hint: "Assigning wakes the agent." }), envWrap,
    field("Description", descr, { name: "description", wide: true })), result,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Create issue")));
  clear(el, h("h1", {}, "Issues"),
    h("div", { class: "filters", role: "group", "aria-label": "Filters" },
      h("label", { for: "flt-status" }, "Status"), fStatus, h("label", { for: "flt-agent" }, "Assignee"), fAgent),
    listBox, h("section", { "aria-labelledby": "new-issue" }, h("h2", { id: "new-issue" }, "New issue"), form));
  await load();
}

export async function issueView(el, { cid, id }) {
  const [issue, agents, envs, caps, comments] = await Promise.all([get(`/api/issues/${id}`),
    get(`/api/companies/${cid}/agents`), get(`/api/companies/${cid}/environments`),
    get(`/api/companies/${cid}/environments/capabilities`), get(`/api/issues/${id}/comments`).catch(() => [])]);
  const runs = await get(`/api/issues/${id}/runs`).catch(() => []);
  setTitle(issue.identifier || issue.title);
  const form = h("form", { class: "form", novalidate: true });
  const status = select(STATUSES.map((s) => [s, s.replace("_", " ")]), issue.status, { name: "status" });
  const prio = select(PRIORITIES.map((p) => [p, p]), issue.priority, { name: "priority" });
  const assignee = select([["", "Unassigned"], ...agents.map((a) => [a.id, a.name])], issue.assigneeAgentId || "", { name: "assigneeAgentId" });
  const cur = issue.executionWorkspaceSettings?.environmentId || "";
  const envWrap = h("div");
  let env;
  const renderEnv = () => {
    env = envSelect(envs, caps, agents.find((a) => a.id === assignee.value), env ? env.value : cur);
    clear(envWrap, field("Environment", env, { name: "executionWorkspaceSettings.environmentId", hint: "Only environments the assignee's adapter supports." }));
  };
  assignee.addEventListener("change", renderEnv);
  renderEnv();
  const result = h("div", { class: "result", role: "status", hidden: true });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const b = { status: status.value, priority: prio.value, assigneeAgentId: assignee.value || null,
        executionWorkspaceSettings: { ...(issue.executionWorkspaceSettings || {}), environmentId: env.value || null } };
      await api("PATCH", `/api/issues/${id}`, b);
      toast("Issue saved", "good");
      navigate(location.pathname, true);
    } catch (err) { showError(form, err, result); }
  });
  form.append(h("div", { class: "grid" }, field("Status", status, { name: "status" }), field("Priority", prio, { name: "priority" }),
    field("Assignee", assignee, { name: "assigneeAgentId" }), envWrap), result,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Save")));

  const cbody = h("textarea", { name: "body", rows: 3 });
  const cres = h("div", { class: "result", role: "status", hidden: true });
  const cform = h("form", { class: "form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(cform);
    try { await post(`/api/issues/${id}/comments`, { body: cbody.value }); navigate(location.pathname, true); }
    catch (err) { showError(cform, err, cres); }
  } }, field("Comment", cbody, { name: "body", wide: true }), cres,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Add comment")));
  const who = (c) => c.authorAgentId ? (agents.find((a) => a.id === c.authorAgentId)?.name || "agent") : "Board";
  clear(el, h("p", {}, h("a", { href: `/companies/${cid}/issues` }, "← Issues")),
    h("div", { class: "page-head" }, h("h1", {}, h("span", { class: "mono muted" }, issue.identifier || ""), " ", issue.title), pill(issue.status)),
    issue.description ? h("p", { class: "prose" }, issue.description) : null,
    form,
    h("section", { "aria-labelledby": "r-h" }, h("h2", { id: "r-h" }, "Runs"),
      runs.length ? h("ul", { class: "rows" }, runs.map((r) => h("li", {},
        h("a", { href: `/runs/${r.id}` }, `Run ${short(r.id)}`), pill(r.status), time(r.createdAt))))
        : empty("No runs for this issue yet.")),
    h("section", { "aria-labelledby": "c-h" }, h("h2", { id: "c-h" }, "Comments"),
      comments.length ? h("ol", { class: "feed" }, comments.map((c) => h("li", {}, h("strong", {}, who(c)), " ", time(c.createdAt),
        h("p", { class: "prose" }, c.body)))) : empty("No comments yet."), cform));
}
