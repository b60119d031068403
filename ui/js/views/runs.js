// Runs: the company's list (refreshed while any run is live) and one run's
// page following its log over the SSE route, stdout/stderr/system told apart,
// auto-scrolling until the reader scrolls up.
import { h, clear, pill, time, empty, short } from "../dom.js";
import { get, post, follow } from "../api.js";
import { onLeave, setTitle, setCompany } from "../app.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "timed_out", "interrupted"]);

export async function runsView(el, { cid }, query) {
  setTitle("Runs");
  const agentId = query.get("agentId");
  const agents = await get(`/api/companies/${cid}/agents`);
  const name = (id) => agents.find((a) => a.id === id)?.name || short(id);
  const tbody = h("tbody");
  const wrap = h("div", { class: "table-wrap" });
  const load = async () => {
    let runs = await get(`/api/companies/${cid}/heartbeat-runs${agentId ? `?agentId=${encodeURIComponent(agentId)}` : ""}`);
    if (agentId) runs = runs.filter((r) => r.agentId === agentId);
    clear(tbody, runs.map((r) => h("tr", {},
      h("th", { scope: "row" }, h("a", { href: `/runs/${r.id}` }, `Run ${short(r.id)}`)),
      h("td", { "data-label": "Agent" }, name(r.agentId)), h("td", { "data-label": "Status" }, pill(r.status)),
      h("td", { "data-label": "Source" }, r.invocationSource || ""), h("td", { "data-label": "Created" }, time(r.createdAt)),
      h("td", { "data-label": "Error" }, r.error || ""))));
    clear(wrap, runs.length ? h("table", { class: "list" }, h("caption", { class: "sr-only" }, "Runs"),
      h("thead", {}, h("tr", {}, ["Run", "Agent", "Status", "Source", "Created", "Error"].map((t) => h("th", { scope: "col" }, t)))), tbody)
      : empty("No runs yet. Wake an agent from its page to start one."));
    return runs.some((r) => !FINAL.has(r.status));
  };
  clear(el, h("h1", {}, agentId ? `Runs of ${name(agentId)}` : "Runs"),
    h("p", { class: "lead" }, "Heartbeat runs, newest first. The list refreshes while a run is live."), wrap);
  await load();
  const t = setInterval(() => load().catch(() => {}), 3000);
  onLeave(() => clearInterval(t));
}

export async function runView(el, { id }) {
  const run = await get(`/api/heartbeat-runs/${id}`);
  setCompany(run.companyId);
  const agent = await get(`/api/agents/${run.agentId}`).catch(() => null);
  setTitle(`Run ${short(id)}`);
  const status = h("span", {}, pill(run.status));
  const log = h("div", { class: "log", role: "log", "aria-label": "Run log", tabindex: "0", "aria-live": "off" });
  const follower = h("p", { class: "small muted", "aria-live": "polite" });
  const errBox = h("div", { class: "result bad", role: "alert", hidden: !run.error }, run.error ? `${run.error}${run.errorCode ? ` (${run.errorCode})` : ""}` : "");
  const cancelBtn = h("button", { type: "button", class: "danger", hidden: FINAL.has(run.status), onclick: async () => {
    cancelBtn.disabled = true;
    try { await post(`/api/heartbeat-runs/${id}/cancel`, {}); } catch (e) { clear(errBox, e.message); errBox.hidden = false; }
  } }, "Cancel run");
  const where = h("dl", { class: "facts" });
  const fillFacts = async (r) => {
    let env = null, lease = null;
    if (r.environmentId) env = await get(`/api/environments/${r.environmentId}`).catch(() => null);
    if (r.leaseId) lease = await get(`/api/environment-leases/${r.leaseId}`).catch(() => null);
    const fact = (k, v) => h("div", {}, h("dt", {}, k), h("dd", {}, v));
    clear(where,
      fact("Agent", agent ? h("a", { href: `/companies/${r.companyId}/agents/${agent.id}` }, agent.name) : short(r.agentId)),
      fact("Source", `${r.invocationSource || ""} ${r.triggerDetail ? `(${r.triggerDetail})` : ""}`),
      fact("Started", time(r.startedAt)), fact("Finished", time(r.finishedAt)),
      fact("Exit code", r.exitCode ?? "—"),
      fact("Environment", env ? h("a", { href: `/companies/${r.companyId}/environments/${env.id}/edit` }, `${env.name} · ${env.driver}`) : (r.environmentId ? short(r.environmentId) : "—")),
      fact("Lease", lease ? [h("span", { class: "mono" }, short(lease.id)), " ", pill(lease.status), lease.failureReason ? ` ${lease.failureReason}` : ""] : (r.leaseId ? short(r.leaseId) : "—")));
  };
  await fillFacts(run);

  // Auto-scroll only while the reader is at the bottom.
  let stick = true;
  log.addEventListener("scroll", () => { stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 8; });
  let lines = 0;
  const addLine = (data) => {
    let e;
    try { e = JSON.parse(data); } catch { e = { stream: "stdout", chunk: data }; }
    const s = ["stdout", "stderr", "system"].includes(e.stream) ? e.stream : "system";
    log.append(h("div", { class: `line ${s}` }, h("span", { class: "stream" }, s === "stdout" ? "out" : s === "stderr" ? "err" : "sys"),
      h("span", { class: "chunk" }, String(e.chunk ?? "").replace(/\n$/, ""))));
    lines++;
    if (stick) log.scrollTop = log.scrollHeight;
  };
  follower.textContent = FINAL.has(run.status) ? "Loading the log…" : "● Live — following the log";
  const stop = follow(`/api/heartbeat-runs/${id}/log?follow=1`, async (ev, data) => {
    if (ev === "log") addLine(data);
    if (ev === "end") {
      const r = await get(`/api/heartbeat-runs/${id}`).catch(() => run);
      clear(status, pill(r.status));
      cancelBtn.hidden = true;
      follower.textContent = `Finished: ${r.status}. ${lines} log line${lines === 1 ? "" : "s"}.`;
      if (r.error) { clear(errBox, `${r.error}${r.errorCode ? ` (${r.errorCode})` : ""}`); errBox.hidden = false; }
      await fillFacts(r);
    }
  }, (err) => { if (err) follower.textContent = `The log stream stopped: ${err.message}`; });
  onLeave(stop);
  clear(el,
    h("p", {}, h("a", { href: `/companies/${run.companyId}/runs` }, "← Runs")),
    h("div", { class: "page-head" }, h("h1", {}, `Run ${short(id)}`), status, cancelBtn),
    errBox, where,
    h("h2", {}, "Log"), follower,
    h("p", { class: "legend small" }, h("span", { class: "line stdout" }, "out = stdout"), " ", h("span", { class: "line stderr" }, "err = stderr"), " ", h("span", { class: "line system" }, "sys = Paperclip")),
    log);
}
