/*
 * Execution workspaces (where runs of a project work; created by the run
 * layer, run/workspace.c) and the operations that prepared them:
 *
 *   GET   /api/companies/:companyId/execution-workspaces   ?projectId= ?status=
 *   GET   /api/execution-workspaces/:id
 *   PATCH /api/execution-workspaces/:id          {name?, status?, config?, cleanupEligibleAt?}
 *   GET   /api/heartbeat-runs/:runId/workspace-operations
 *   GET   /api/workspace-operations/:id/log
 *
 * Reading needs company access. PATCH needs `environments:manage`:
 * config.environmentId is the first link of the run's environment chain.
 */
#include <string.h>

#include "api/api.h"
#include "api/authz.h"
#include "env/env.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

static const char *const ew_statuses[] = {"active", "idle", "in_review", "archived",
                                          "cleanup_failed", NULL};
static const char *const ew_keys[] = {"name", "status", "config", "cleanupEligibleAt",
                                      "cleanupReason", NULL};
static const char *const ew_config_keys[] = {"environmentId", NULL};

static json_t *ew_get(pc_app *app, const char *id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM execution_workspaces WHERE id=?", id,
                       pc_exec_workspace_from_row, "Execution workspace not found", err);
}

static int ew_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    const char *project = pc_req_query(req, "projectId");
    const char *status = pc_req_query(req, "status");
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM execution_workspaces WHERE company_id=? "
                      "AND (? IS NULL OR project_id=?) AND (? IS NULL OR status=?) "
                      "ORDER BY last_used_at DESC, id LIMIT 1000",
                      json_pack("[s,s?,s?,s?,s?]", cid, project, project, status, status), &rows,
                      err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_exec_workspace_from_row));
}

static json_t *ew_for_req(pc_req *req, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Execution workspace not found", err);
    return id ? pc_access_checked(req, ew_get(req->app, id, err), err) : NULL;
}

static int ew_show(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *w = ew_for_req(req, err);
    return w ? pc_resp_json(resp, 200, w) : -1;
}

static int ew_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = ew_for_req(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id"), *cid = pc_json_str(cur, "companyId");
    json_t *b = req->body, *cfg = NULL;
    const char *name = NULL, *status = NULL, *eligible = NULL, *reason = NULL, *env = NULL;
    if (pc_env_require_manage(req, cid, err) < 0 || pc_json_check_is_object(b, err) < 0 ||
        pc_json_check_keys(b, ew_keys, err) < 0 ||
        pc_json_check_string(b, "name", 0, 1, 200, &name, err) < 0 ||
        pc_json_check_enum(b, "status", 0, ew_statuses, &status, err) < 0 ||
        pc_json_check_string(b, "cleanupEligibleAt", PC_J_NULLABLE, 0, 64, &eligible, err) < 0 ||
        pc_json_check_string(b, "cleanupReason", PC_J_NULLABLE, 0, 500, &reason, err) < 0 ||
        pc_json_check_object(b, "config", PC_J_NULLABLE, &cfg, err) < 0)
        return -1;
    if (cfg && !json_is_null(cfg)) {
        if (pc_json_check_keys(cfg, ew_config_keys, err) < 0 ||
            pc_json_check_string(cfg, "environmentId", PC_J_NULLABLE, 0, 64, &env, err) < 0)
            return -1;
        if (env && !pc_uuid_valid(env))
            return pc_error_validation(err, "config.environmentId", "Invalid uuid");
        if (env && pc_env_validate_selection(req->app, cid, env, NULL, err) < 0)
            return -1;
        if (pc_actor_may_select_env(req, env, err) < 0)
            return -1;
    }
#define HAS(k) (json_object_get(b, k) != NULL)
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    bool closing = status && !strcmp(status, "archived");
    if (pc_db_exec_s(req->app->db,
                     "UPDATE execution_workspaces SET name=COALESCE(?,name),"
                     "status=COALESCE(?,status),config=CASE WHEN ? THEN ? ELSE config END,"
                     "cleanup_eligible_at=CASE WHEN ? THEN ? ELSE cleanup_eligible_at END,"
                     "cleanup_reason=CASE WHEN ? THEN ? ELSE cleanup_reason END,"
                     "closed_at=CASE WHEN ? THEN COALESCE(closed_at,?) ELSE closed_at END,"
                     "updated_at=? WHERE id=?",
                     json_pack("[s?,s?,b,O?,b,s?,b,s?,b,s,s,s]", name, status, HAS("config"),
                               cfg && !json_is_null(cfg) ? cfg : NULL, HAS("cleanupEligibleAt"),
                               eligible, HAS("cleanupReason"), reason, closing, ts, ts, id),
                     NULL, err) < 0)
        return -1;
#undef HAS
    pc_activity_log_steal(req->app, &req->actor, cid, "execution_workspace.updated",
                          "execution_workspace", id, json_pack("{s:s?}", "status", status), err);
    pc_error_clear(err);
    json_t *out = ew_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int ops_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *rid = pc_param_uuid(req, "runId", "Heartbeat run not found", err);
    if (!rid)
        return -1;
    _cleanup_json_ json_t *run = pc_db_query_one_s(
        req->app->db, "SELECT company_id FROM heartbeat_runs WHERE id=?", json_pack("[s]", rid),
        err);
    if (!run)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Heartbeat run not found");
    if (pc_require_company_access(req, pc_json_str(run, "company_id"), err) < 0)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM workspace_operations WHERE heartbeat_run_id=? "
                      "ORDER BY started_at, id",
                      json_pack("[s]", rid), &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_workspace_op_from_row));
}

static int ops_log(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Workspace operation not found", err);
    if (!id)
        return -1;
    _cleanup_json_ json_t *op = pc_db_query_one_s(
        req->app->db, "SELECT company_id, log FROM workspace_operations WHERE id=?",
        json_pack("[s]", id), err);
    if (!op)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Workspace operation not found");
    if (pc_require_company_access(req, pc_json_str(op, "company_id"), err) < 0)
        return -1;
    const char *log = pc_json_str(op, "log");
    return pc_resp_json(resp, 200,
                        json_pack("{s:s,s:s,s:s}", "operationId", id, "logStore", "db", "content",
                                  log ? log : ""));
}

const pc_route pc_routes_execution_workspaces[] = {
    {"GET", "/api/companies/:companyId/execution-workspaces", ew_list, 0},
    {"GET", "/api/execution-workspaces/:id", ew_show, 0},
    {"PATCH", "/api/execution-workspaces/:id", ew_patch, 0},
    {"GET", "/api/heartbeat-runs/:runId/workspace-operations", ops_list, 0},
    {"GET", "/api/workspace-operations/:id/log", ops_log, 0},
    {NULL, NULL, NULL, 0},
};
