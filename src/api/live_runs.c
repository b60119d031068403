/*
 * Live runs: GET /api/companies/:companyId/live-runs,
 * GET /api/issues/:issueId/live-runs, GET /api/issues/:issueId/active-run and
 * GET /api/heartbeat-runs/:runId/issues, with upstream's shapes.
 *
 * A run is live while it is queued or running. The live lists are summaries
 * ({id, status, invocationSource, triggerDetail, startedAt, finishedAt,
 * createdAt, agentId, agentName, adapterType} and, company-wide, issueId);
 * active-run answers the full run with the agent's name and adapter type, or
 * null. Every route is readable by the board and by agents of the company.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/issues.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "run/runtime.h"

#define LIVE_COLUMNS                                                                              \
    "r.id, r.status, r.invocation_source, r.trigger_detail, r.started_at, r.finished_at, "       \
    "r.created_at, r.agent_id, a.name AS agent_name, a.adapter_type, r.task_key"

/* One summary row as upstream's live-run object. */
static json_t *live_from_row(json_t *row, bool with_issue)
{
    json_t *o = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "id",
                          json_object_get(row, "id"), "status", json_object_get(row, "status"),
                          "invocationSource", json_object_get(row, "invocation_source"),
                          "triggerDetail", json_object_get(row, "trigger_detail"), "startedAt",
                          json_object_get(row, "started_at"), "finishedAt",
                          json_object_get(row, "finished_at"), "createdAt",
                          json_object_get(row, "created_at"), "agentId",
                          json_object_get(row, "agent_id"), "agentName",
                          json_object_get(row, "agent_name"), "adapterType",
                          json_object_get(row, "adapter_type"));
    /* A run's task key is the issue its wake was about (contextSnapshot
     * issueId). */
    if (with_issue)
        json_object_set(o, "issueId", json_object_get(row, "task_key"));
    return o;
}

static int live_append(json_t *out, json_t *rows, bool with_issue)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(out, live_from_row(row, with_issue));
    return 0;
}

static int company_live_runs(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    /* ?minCount=N tops the list up with the most recent finished runs, for
     * a panel that should never be empty; upstream clamps it to 0..20. */
    const char *mc = pc_req_query(req, "minCount");
    long min_count = 0;
    if (mc) {
        char *end;
        min_count = strtol(mc, &end, 10);
        if (*end || min_count < 0)
            min_count = 0;
        if (min_count > 20)
            min_count = 20;
    }
    _cleanup_json_ json_t *live = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT " LIVE_COLUMNS " FROM heartbeat_runs r JOIN agents a ON "
                      "a.id=r.agent_id WHERE r.company_id=? AND r.status IN ('queued','running') "
                      "ORDER BY r.created_at DESC, r.id DESC LIMIT 1000",
                      json_pack("[s]", cid), &live, err) < 0)
        return -1;
    json_t *out = json_array();
    live_append(out, live, true);
    if ((long)json_array_size(live) < min_count) {
        _cleanup_json_ json_t *recent = NULL;
        if (pc_db_query_s(req->app->db,
                          "SELECT " LIVE_COLUMNS " FROM heartbeat_runs r JOIN agents a ON "
                          "a.id=r.agent_id WHERE r.company_id=? AND r.status NOT IN "
                          "('queued','running') ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
                          json_pack("[s,I]", cid,
                                    (json_int_t)(min_count - (long)json_array_size(live))),
                          &recent, err) < 0) {
            json_decref(out);
            return -1;
        }
        live_append(out, recent, true);
    }
    return pc_resp_json(resp, 200, out);
}

static int issue_live_runs(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *i = pc_issue_load_for(req, err);
    if (!i)
        return -1;
    _cleanup_json_ json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT " LIVE_COLUMNS " FROM heartbeat_runs r JOIN agents a ON "
                      "a.id=r.agent_id WHERE r.company_id=? AND r.status IN ('queued','running') "
                      "AND r.task_key=? ORDER BY r.created_at DESC, r.id DESC",
                      json_pack("[O,O]", json_object_get(i, "companyId"),
                                json_object_get(i, "id")),
                      &rows, err) < 0)
        return -1;
    json_t *out = json_array();
    live_append(out, rows, false);
    return pc_resp_json(resp, 200, out);
}

static bool run_live(json_t *run)
{
    const char *st = pc_json_str(run, "status");
    return st && (!strcmp(st, "queued") || !strcmp(st, "running"));
}

static int issue_active_run(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *i = pc_issue_load_for(req, err);
    if (!i)
        return -1;
    json_t *run = NULL;
    const char *exec = pc_json_str(i, "executionRunId");
    if (exec) {
        run = pc_run_get(req->app, exec, err);
        pc_error_clear(err);
        if (run && !run_live(run)) {
            json_decref(run);
            run = NULL;
        }
    }
    /* The issue's lock may not be taken yet: its assignee's running run
     * for this issue counts too, as upstream finds it. */
    const char *assignee = pc_json_str(i, "assigneeAgentId");
    const char *status = pc_json_str(i, "status");
    if (!run && assignee && status && !strcmp(status, "in_progress")) {
        _cleanup_json_ json_t *row = pc_db_query_one_s(
            req->app->db,
            "SELECT id, task_key FROM heartbeat_runs WHERE agent_id=? AND status='running' "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            json_pack("[s]", assignee), err);
        if (pc_error_is_set(err))
            return -1;
        const char *tk = row ? pc_json_str(row, "task_key") : NULL;
        if (tk && !strcmp(tk, pc_json_str(i, "id"))) {
            run = pc_run_get(req->app, pc_json_str(row, "id"), err);
            pc_error_clear(err);
        }
    }
    if (!run)
        return pc_resp_json(resp, 200, json_null());
    json_t *agent = pc_agent_get(req->app, pc_json_str(run, "agentId"), err);
    if (!agent) {
        pc_error_clear(err);
        json_decref(run);
        return pc_resp_json(resp, 200, json_null());
    }
    json_object_set(run, "agentId", json_object_get(agent, "id"));
    json_object_set(run, "agentName", json_object_get(agent, "name"));
    json_object_set(run, "adapterType", json_object_get(agent, "adapterType"));
    json_decref(agent);
    return pc_resp_json(resp, 200, run);
}

/* One entry of a run's issue list, from an issues row. */
static json_t *run_issue_entry(json_t *row)
{
    return json_pack("{s:O,s:O,s:O,s:O,s:O}", "issueId", json_object_get(row, "id"),
                     "identifier", json_object_get(row, "identifier"), "title",
                     json_object_get(row, "title"), "status", json_object_get(row, "status"),
                     "priority", json_object_get(row, "priority"));
}

static int run_issues(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "runId", "Heartbeat run not found", err);
    if (!id)
        return -1;
    _cleanup_json_ json_t *run = pc_access_checked(req, pc_run_get(req->app, id, err), err);
    if (!run)
        return -1;
    /* The issues the run touched (activity rows it wrote), then the issue
     * it was woken for when none of those is it. */
    _cleanup_json_ json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT DISTINCT i.id, i.identifier, i.title, i.status, i.priority FROM "
                      "activity_log l JOIN issues i ON i.id=l.entity_id WHERE l.company_id=? AND "
                      "l.run_id=? AND l.entity_type='issue' ORDER BY i.id",
                      json_pack("[O,s]", json_object_get(run, "companyId"), id), &rows,
                      err) < 0)
        return -1;
    json_t *out = json_array();
    bool has_ctx = false;
    const char *ctx_issue = pc_json_str(pc_json_obj(run, "contextSnapshot"), "issueId");
    size_t k;
    json_t *row;
    json_array_foreach(rows, k, row)
    {
        if (ctx_issue && !strcmp(ctx_issue, pc_json_str(row, "id")))
            has_ctx = true;
        json_array_append_new(out, run_issue_entry(row));
    }
    if (ctx_issue && !has_ctx) {
        _cleanup_json_ json_t *ir = pc_db_query_one_s(
            req->app->db,
            "SELECT id, identifier, title, status, priority FROM issues WHERE id=? AND "
            "company_id=?",
            json_pack("[s,O]", ctx_issue, json_object_get(run, "companyId")), err);
        if (pc_error_is_set(err)) {
            json_decref(out);
            return -1;
        }
        if (ir)
            json_array_append_new(out, run_issue_entry(ir));
    }
    return pc_resp_json(resp, 200, out);
}

const pc_route pc_routes_live_runs[] = {
    {"GET", "/api/companies/:companyId/live-runs", company_live_runs, 0},
    {"GET", "/api/issues/:issueId/live-runs", issue_live_runs, 0},
    {"GET", "/api/issues/:issueId/active-run", issue_active_run, 0},
    {"GET", "/api/heartbeat-runs/:runId/issues", run_issues, 0},
    {NULL, NULL, NULL, 0},
};
