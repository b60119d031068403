/*
 * The agent runtime routes: GET /api/agents/me, POST
 * /api/agents/:agentId/wakeup (202 with the queued run) and POST
 * /api/agents/:agentId/heartbeat/invoke. This table is routed before the
 * agents table so "me" is never taken for an agent id.
 */
#include <string.h>

#include "api/api.h"
#include "api/authz.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "run/runtime.h"


static const char *const wake_sources[] = {"timer", "assignment", "on_demand", "automation", NULL};
static const char *const wake_triggers[] = {"manual", "ping", "callback", "system", NULL};
static const char *const wake_keys[] = {"source",  "triggerDetail",  "reason",
                                        "payload", "idempotencyKey", "forceFreshSession",
                                        "issueId", "taskId",         NULL};

static int agents_me(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (req->actor.type != PC_ACTOR_AGENT)
        return pc_error_set(err, 401, "Agent authentication required");
    json_t *a = pc_agent_view(req, pc_agent_get(req->app, req->actor.agent_id, err), err);
    return a ? pc_resp_json(resp, 200, a) : -1;
}

/* The target of a wake: an agent caller wakes itself freely, another agent
 * only with tasks:assign (waking is how work is handed to an agent). */
static json_t *wake_target(pc_req *req, pc_error_t *err)
{
    json_t *a = pc_agent_load_for(req, NULL, err);
    if (!a || req->actor.type != PC_ACTOR_AGENT || !strcmp(req->actor.agent_id, pc_json_str(a, "id")))
        return a;
    if (pc_actor_require(req, pc_json_str(a, "companyId"), PC_PERM_TASKS_ASSIGN, NULL, err) < 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static int agents_wakeup(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *a = wake_target(req, err);
    if (!a)
        return -1;
    json_t *b = req->body ? req->body : NULL;
    _cleanup_json_ json_t *empty = json_object();
    if (!b)
        b = empty;
    const char *source = "on_demand", *trigger = "manual", *reason = NULL, *idem = NULL,
               *issue = NULL, *task = NULL;
    json_t *payload = NULL;
    bool fresh = false;
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, wake_keys, err) < 0 ||
        pc_json_check_enum(b, "source", 0, wake_sources, &source, err) < 0 ||
        pc_json_check_enum(b, "triggerDetail", PC_J_NULLABLE, wake_triggers, &trigger, err) < 0 ||
        pc_json_check_string(b, "reason", PC_J_NULLABLE, 0, 500, &reason, err) < 0 ||
        pc_json_check_object(b, "payload", PC_J_NULLABLE, &payload, err) < 0 ||
        pc_json_check_string(b, "idempotencyKey", PC_J_NULLABLE, 1, 255, &idem, err) < 0 ||
        pc_json_check_bool(b, "forceFreshSession", 0, &fresh, NULL, err) < 0 ||
        pc_json_check_string(b, "issueId", PC_J_NULLABLE, 0, 64, &issue, err) < 0 ||
        pc_json_check_string(b, "taskId", PC_J_NULLABLE, 0, 64, &task, err) < 0)
        return -1;
    /* The task comes from the body or from payload.issueId/taskId, as
     * upstream's wake contexts carry it. */
    if (!issue)
        issue = task;
    if (!issue && payload && json_is_object(payload))
        issue = pc_json_str(payload, "issueId") ? pc_json_str(payload, "issueId")
                                                : pc_json_str(payload, "taskId");
    if (issue) {
        if (!pc_uuid_valid(issue))
            return pc_error_validation(err, "issueId", "Invalid uuid");
        _cleanup_json_ json_t *row = pc_db_query_one_s(
            req->app->db, "SELECT id FROM issues WHERE id=? AND company_id=?",
            json_pack("[s,s]", issue, pc_json_str(a, "companyId")), err);
        if (!row)
            return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Issue not found");
    }
    /* A confined caller may not start a run, its own included, anywhere it
     * could not choose itself. */
    if (req->actor.type == PC_ACTOR_AGENT &&
        pc_actor_may_cause_run(req, pc_json_str(a, "id"), issue, NULL, err) < 0)
        return -1;
    pc_wakeup_opts o = {.source = source,
                        .trigger_detail = trigger,
                        .reason = reason,
                        .payload = payload && !json_is_null(payload) ? payload : NULL,
                        .idempotency_key = idem,
                        .issue_id = issue,
                        .force_fresh_session = fresh,
                        .actor = &req->actor};
    json_t *run = pc_run_wakeup(req->app, pc_json_str(a, "id"), &o, err);
    if (!run)
        return -1;
    pc_activity_log_steal(req->app, &req->actor, pc_json_str(a, "companyId"), "heartbeat.invoked",
                          "agent", pc_json_str(a, "id"),
                          json_pack("{s:s,s:O?}", "source", source, "runId",
                                    json_object_get(run, "id")),
                          err);
    pc_error_clear(err);
    return pc_resp_json(resp, 202, run);
}

static int agents_invoke(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *a = wake_target(req, err);
    if (!a)
        return -1;
    if (req->actor.type == PC_ACTOR_AGENT &&
        pc_actor_may_cause_run(req, pc_json_str(a, "id"), NULL, NULL, err) < 0)
        return -1;
    pc_wakeup_opts o = {.source = "on_demand", .trigger_detail = "manual",
                        .reason = "manual_invoke", .actor = &req->actor};
    json_t *run = pc_run_wakeup(req->app, pc_json_str(a, "id"), &o, err);
    return run ? pc_resp_json(resp, 202, run) : -1;
}

const pc_route pc_routes_agent_runtime[] = {
    {"GET", "/api/agents/me", agents_me, 0},
    {"POST", "/api/agents/:agentId/wakeup", agents_wakeup, 0},
    {"POST", "/api/agents/:agentId/heartbeat/invoke", agents_invoke, 0},
    {NULL, NULL, NULL, 0},
};
