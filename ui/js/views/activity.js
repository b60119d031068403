// The company's activity feed: one row per mutation, newest first.
import { h, clear, time, empty, short } from "../dom.js";
import { get } from "../api.js";
import { setTitle } from "../app.js";

export async function activityView(el, { cid }) {
  setTitle("Activity");
  const rows = await get(`/api/companies/${cid}/activity?limit=100`);
  clear(el, h("h1", {}, "Activity"),
    h("p", { class: "lead" }, "Everything that changed in this company, newest first. Details never carry secret values."),
    rows.length ? h("ol", { class: "feed" }, rows.map((a) => h("li", {},
      h("span", { class: "mono action" }, a.action),
      h("span", {}, ` ${a.entityType} ${short(a.entityId)}`),
      h("span", { class: "muted small" }, ` by ${a.actorType}${a.actorId && a.actorType !== "user" ? ` ${short(a.actorId)}` : ""} `),
      a.runId ? h("a", { href: `/runs/${a.runId}` }, `run ${short(a.runId)} `) : null,
      time(a.createdAt))))
      : empty("No activity yet."));
}
