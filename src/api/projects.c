/*
 * Projects and their workspaces (upstream's shape):
 *
 *   GET    /api/companies/:companyId/projects
 *   POST   /api/companies/:companyId/projects
 *   GET    /api/projects/:id
 *   PATCH  /api/projects/:id
 *   DELETE /api/projects/:id                           board only
 *   GET    /api/projects/:id/workspaces
 *   POST   /api/projects/:id/workspaces                {name?, sourceType?, cwd?, repoUrl?, ...}
 *   PATCH  /api/projects/:id/workspaces/:workspaceId
 *   DELETE /api/projects/:id/workspaces/:workspaceId
 *
 * Who may do what: reading, and writing a project's plain fields (name,
 * description, status, lead, goal), needs company access (the board or any
 * agent of the company). What decides where and with what runs execute —
 * executionWorkspacePolicy (its environmentId, its mode), env, and every
 * project workspace (a host cwd or a repository) — needs
 * `environments:manage`, since an agent must not be able to move its own
 * runs to another directory or machine. A confined agent (api/authz.h) may
 * name only environments it may run code in, and writes no project
 * workspace (each is a directory or a clone on the host).
 */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/authz.h"
#include "env/env.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

#define NAME_MAX_LEN 200
#define DESC_MAX_LEN 20000
#define PATH_MAX_LEN 1024
#define REF_MAX_LEN 200

static const char *const project_statuses[] = {"backlog", "planned", "in_progress", "completed",
                                               "cancelled", NULL};
static const char *const project_keys[] = {"name",        "description", "status",
                                           "leadAgentId", "goalId",      "goalIds",
                                           "targetDate",  "color",       "env",
                                           "executionWorkspacePolicy", "archivedAt", NULL};
static const char *const policy_keys[] = {"enabled",           "defaultMode",
                                          "allowIssueOverride", "defaultProjectWorkspaceId",
                                          "workspaceStrategy", "environmentId", NULL};
static const char *const policy_modes[] = {"shared_workspace", "isolated_workspace",
                                           "adapter_default", NULL};
static const char *const strategy_keys[] = {"type", "baseRef", "branchTemplate", NULL};
static const char *const strategy_types[] = {"project_primary", "git_worktree", NULL};
static const char *const ws_keys[] = {"name",       "sourceType", "cwd",       "repoUrl",
                                      "repoRef",    "defaultRef", "isPrimary", "metadata", NULL};
static const char *const ws_source_types[] = {"local_path", "git_repo", NULL};

/* environments:manage, and for a confined agent nothing that points runs
 * at the host: a project workspace is a host directory or a clone on the
 * host, so a confined agent may not write one at all. */
static int require_host_exec(pc_req *req, const char *cid, pc_error_t *err)
{
    if (pc_env_require_manage(req, cid, err) < 0)
        return -1;
    int confined = pc_actor_confined(req, err);
    if (confined < 0)
        return -1;
    if (confined)
        return pc_error_set(err, 403, "A confined agent cannot move execution out of its environment");
    return 0;
}

static json_t *project_get(pc_app *app, const char *id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM projects WHERE id=?", id, pc_project_from_row,
                       "Project not found", err);
}

/* The project of :id, checked for company access. */
static json_t *project_for_req(pc_req *req, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Project not found", err);
    return id ? pc_access_checked(req, project_get(req->app, id, err), err) : NULL;
}

/* A git ref or branch template: no whitespace, no option-looking start, so
 * it can never be read by git as a flag. */
static int check_ref(const json_t *o, const char *key, const char *field, pc_error_t *err)
{
    const char *v = NULL;
    if (pc_json_check_string(o, key, PC_J_NULLABLE, 1, REF_MAX_LEN, &v, err) < 0)
        return -1;
    if (!v)
        return 0;
    if (v[0] == '-' || strpbrk(v, " \t\r\n~^:?*[\\") || strstr(v, ".."))
        return pc_error_validation(err, field, "Invalid git ref");
    return 0;
}

/* executionWorkspacePolicy: upstream's keys, enums checked, environmentId
 * an environment of the company that can run work (env/select.c). */
static int check_policy(pc_app *app, const char *cid, const char *project_id, json_t *pol,
                        pc_error_t *err)
{
    if (!pol || json_is_null(pol))
        return 0;
    const char *mode = NULL, *env = NULL, *dpw = NULL;
    bool b;
    json_t *strat = NULL;
    if (pc_json_check_keys(pol, policy_keys, err) < 0 ||
        pc_json_check_bool(pol, "enabled", 0, &b, NULL, err) < 0 ||
        pc_json_check_bool(pol, "allowIssueOverride", 0, &b, NULL, err) < 0 ||
        pc_json_check_enum(pol, "defaultMode", 0, policy_modes, &mode, err) < 0 ||
        pc_json_check_string(pol, "environmentId", PC_J_NULLABLE, 0, 64, &env, err) < 0 ||
        pc_json_check_string(pol, "defaultProjectWorkspaceId", PC_J_NULLABLE, 0, 64, &dpw, err) <
            0 ||
        pc_json_check_object(pol, "workspaceStrategy", PC_J_NULLABLE, &strat, err) < 0)
        return -1;
    if (strat && !json_is_null(strat)) {
        const char *type = NULL;
        if (pc_json_check_keys(strat, strategy_keys, err) < 0 ||
            pc_json_check_enum(strat, "type", 0, strategy_types, &type, err) < 0 ||
            check_ref(strat, "baseRef", "executionWorkspacePolicy.workspaceStrategy.baseRef", err) <
                0 ||
            check_ref(strat, "branchTemplate",
                      "executionWorkspacePolicy.workspaceStrategy.branchTemplate", err) < 0)
            return -1;
    }
    if (dpw) {
        if (!project_id)
            return pc_error_set(err, 422, "Project workspace not found");
        if (!pc_uuid_valid(dpw))
            return pc_error_validation(err, "executionWorkspacePolicy.defaultProjectWorkspaceId",
                                       "Invalid uuid");
        _cleanup_json_ json_t *w = pc_db_query_one_s(
            app->db, "SELECT id FROM project_workspaces WHERE id=? AND project_id=?",
            json_pack("[s,s]", dpw, project_id), err);
        if (!w)
            return pc_error_is_set(err) ? -1 : pc_error_set(err, 422, "Project workspace not found");
    }
    if (env) {
        if (!pc_uuid_valid(env))
            return pc_error_validation(err, "executionWorkspacePolicy.environmentId",
                                       "Invalid uuid");
        if (pc_env_validate_selection(app, cid, env, NULL, err) < 0)
            return -1;
    }
    return 0;
}

/* Who may write a policy: environments:manage, and the environment it
 * names (the company default when none) must be one the caller may run
 * code in (containment, api/authz.h). */
static int may_set_policy(pc_req *req, const char *cid, json_t *pol, pc_error_t *err)
{
    if (pc_env_require_manage(req, cid, err) < 0)
        return -1;
    const char *env = json_is_object(pol) ? pc_json_str(pol, "environmentId") : NULL;
    return pc_actor_may_select_env(req, env, err);
}

/* env: an object of string values (variables for the project's runs). */
static int check_env(json_t *env, pc_error_t *err)
{
    if (!env || json_is_null(env))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (!json_is_string(v) && !json_is_object(v))
            return pc_error_validation(err, "env", "Values must be strings or objects");
    }
    return 0;
}

/* goalIds (upstream's list form) wins over goalId; one goal is kept. */
static int parse_goal(pc_app *app, const char *cid, json_t *b, bool *has, const char **goal,
                      pc_error_t *err)
{
    json_t *ids = json_object_get(b, "goalIds");
    *has = json_object_get(b, "goalId") != NULL || ids != NULL;
    *goal = NULL;
    if (ids) {
        if (!json_is_array(ids) || json_array_size(ids) > 1 ||
            (json_array_size(ids) == 1 && !json_is_string(json_array_get(ids, 0))))
            return pc_error_validation(err, "goalIds", "Expected at most one goal id");
        *goal = json_string_value(json_array_get(ids, 0));
    } else if (pc_json_check_string(b, "goalId", PC_J_NULLABLE, 0, 64, goal, err) < 0) {
        return -1;
    }
    return pc_company_ref_check(app, "goals", "goalId", *goal, cid, "Goal not found", err);
}

typedef struct project_body {
    const char *name, *desc, *status, *lead, *goal, *target, *color, *archived;
    json_t *env, *policy;
    bool has_goal;
} project_body;

static int parse_project(pc_req *req, const char *cid, const char *project_id, bool create,
                         project_body *pb, pc_error_t *err)
{
    json_t *b = req->body;
    memset(pb, 0, sizeof *pb);
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, project_keys, err) < 0 ||
        pc_json_check_string(b, "name", create ? PC_J_REQUIRED : 0, 1, NAME_MAX_LEN, &pb->name,
                             err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, DESC_MAX_LEN, &pb->desc, err) <
            0 ||
        pc_json_check_enum(b, "status", 0, project_statuses, &pb->status, err) < 0 ||
        pc_json_check_string(b, "leadAgentId", PC_J_NULLABLE, 0, 64, &pb->lead, err) < 0 ||
        pc_json_check_string(b, "targetDate", PC_J_NULLABLE, 0, 64, &pb->target, err) < 0 ||
        pc_json_check_string(b, "color", PC_J_NULLABLE, 0, 32, &pb->color, err) < 0 ||
        pc_json_check_string(b, "archivedAt", PC_J_NULLABLE, 0, 64, &pb->archived, err) < 0 ||
        pc_json_check_object(b, "env", PC_J_NULLABLE, &pb->env, err) < 0 ||
        pc_json_check_object(b, "executionWorkspacePolicy", PC_J_NULLABLE, &pb->policy, err) < 0)
        return -1;
    /* Where runs execute is not an agent's to choose (see the header). */
    if ((json_object_get(b, "env") && pc_env_require_manage(req, cid, err) < 0) ||
        (json_object_get(b, "executionWorkspacePolicy") &&
         may_set_policy(req, cid, pb->policy, err) < 0))
        return -1;
    if (check_env(pb->env, err) < 0 || check_policy(req->app, cid, project_id, pb->policy, err) < 0 ||
        parse_goal(req->app, cid, b, &pb->has_goal, &pb->goal, err) < 0 ||
        pc_company_ref_check(req->app, "agents", "leadAgentId", pb->lead, cid,
                             "Lead agent not found", err) < 0)
        return -1;
    return 0;
}

static int projects_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM projects WHERE company_id=? ORDER BY created_at, id",
                      json_pack("[s]", cid), &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_project_from_row));
}

static int projects_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    project_body pb;
    if (parse_project(req, cid, NULL, true, &pb, err) < 0)
        return -1;
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    if (pc_db_exec_s(req->app->db,
                     "INSERT INTO projects(id,company_id,goal_id,name,description,status,"
                     "lead_agent_id,target_date,color,env,execution_workspace_policy,archived_at,"
                     "created_at,updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     json_pack("[s,s,s?,s,s?,s,s?,s?,s?,O?,O?,s?,s,s]", id, cid, pb.goal, pb.name,
                               pb.desc, pb.status ? pb.status : "backlog", pb.lead, pb.target,
                               pb.color, pb.env && !json_is_null(pb.env) ? pb.env : NULL,
                               pb.policy && !json_is_null(pb.policy) ? pb.policy : NULL,
                               pb.archived, ts, ts),
                     NULL, err) < 0)
        return -1;
    pc_activity_log_steal(req->app, &req->actor, cid, "project.created", "project", id,
                          json_pack("{s:s}", "name", pb.name), err);
    pc_error_clear(err);
    json_t *out = project_get(req->app, id, err);
    return out ? pc_resp_json(resp, 201, out) : -1;
}

static int projects_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *p = project_for_req(req, err);
    if (!p)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM project_workspaces WHERE project_id=? "
                      "ORDER BY is_primary DESC, created_at, id",
                      json_pack("[s]", pc_json_str(p, "id")), &rows, err) < 0) {
        json_decref(p);
        return -1;
    }
    json_t *ws = pc_rows_map(rows, pc_project_workspace_from_row);
    json_object_set(p, "primaryWorkspace",
                    json_array_size(ws) ? json_array_get(ws, 0) : json_null());
    json_object_set_new(p, "workspaces", ws);
    return pc_resp_json(resp, 200, p);
}

static int projects_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = project_for_req(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id"), *cid = pc_json_str(cur, "companyId");
    json_t *b = req->body;
    project_body pb;
    if (parse_project(req, cid, id, false, &pb, err) < 0)
        return -1;
#define HAS(k) (json_object_get(b, k) != NULL)
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_exec_s(
            req->app->db,
            "UPDATE projects SET name=COALESCE(?,name),"
            "description=CASE WHEN ? THEN ? ELSE description END,status=COALESCE(?,status),"
            "lead_agent_id=CASE WHEN ? THEN ? ELSE lead_agent_id END,"
            "goal_id=CASE WHEN ? THEN ? ELSE goal_id END,"
            "target_date=CASE WHEN ? THEN ? ELSE target_date END,"
            "color=CASE WHEN ? THEN ? ELSE color END,"
            "env=CASE WHEN ? THEN ? ELSE env END,"
            "execution_workspace_policy=CASE WHEN ? THEN ? ELSE execution_workspace_policy END,"
            "archived_at=CASE WHEN ? THEN ? ELSE archived_at END,updated_at=? WHERE id=?",
            json_pack("[s?,b,s?,s?,b,s?,b,s?,b,s?,b,s?,b,O?,b,O?,b,s?,s,s]", pb.name,
                      HAS("description"), pb.desc, pb.status, HAS("leadAgentId"), pb.lead,
                      pb.has_goal, pb.goal, HAS("targetDate"), pb.target, HAS("color"), pb.color,
                      HAS("env"), pb.env && !json_is_null(pb.env) ? pb.env : NULL,
                      HAS("executionWorkspacePolicy"),
                      pb.policy && !json_is_null(pb.policy) ? pb.policy : NULL, HAS("archivedAt"),
                      pb.archived, ts, id),
            NULL, err) < 0)
        return -1;
#undef HAS
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
        json_array_append_new(keys, json_string(k));
    pc_activity_log_steal(req->app, &req->actor, cid, "project.updated", "project", id,
                          json_pack("{s:o}", "changedKeys", keys), err);
    pc_error_clear(err);
    json_t *out = project_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int projects_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    json_t *cur = project_for_req(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id");
    /* Issues keep existing without their project, as upstream's SET NULL. */
    if (pc_db_begin(req->app->db, err) < 0)
        goto fail;
    if (pc_db_exec_s(req->app->db, "UPDATE issues SET project_id=NULL WHERE project_id=?",
                     json_pack("[s]", id), NULL, err) < 0 ||
        pc_db_exec_s(req->app->db, "DELETE FROM projects WHERE id=?", json_pack("[s]", id), NULL,
                     err) < 0 ||
        pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        goto fail;
    }
    pc_activity_log_steal(req->app, &req->actor, pc_json_str(cur, "companyId"), "project.deleted",
                          "project", id, json_pack("{s:O}", "name", json_object_get(cur, "name")),
                          err);
    pc_error_clear(err);
    return pc_resp_json(resp, 200, cur);
fail:
    json_decref(cur);
    return -1;
}

/* ------------------------------------------------------ project workspaces */

static json_t *pw_get(pc_app *app, const char *id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM project_workspaces WHERE id=?", id,
                       pc_project_workspace_from_row, "Project workspace not found", err);
}

static int pw_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *p = project_for_req(req, err);
    if (!p)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM project_workspaces WHERE project_id=? "
                      "ORDER BY is_primary DESC, created_at, id",
                      json_pack("[s]", pc_json_str(p, "id")), &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_project_workspace_from_row));
}

typedef struct pw_body {
    const char *name, *source, *cwd, *repo_url, *repo_ref, *default_ref;
    json_t *metadata;
    bool primary, has_primary;
} pw_body;

static int parse_pw(json_t *b, bool create, pw_body *w, pc_error_t *err)
{
    memset(w, 0, sizeof *w);
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, ws_keys, err) < 0 ||
        pc_json_check_string(b, "name", 0, 1, NAME_MAX_LEN, &w->name, err) < 0 ||
        pc_json_check_enum(b, "sourceType", 0, ws_source_types, &w->source, err) < 0 ||
        pc_json_check_string(b, "cwd", PC_J_NULLABLE, 1, PATH_MAX_LEN, &w->cwd, err) < 0 ||
        pc_json_check_string(b, "repoUrl", PC_J_NULLABLE, 1, PATH_MAX_LEN, &w->repo_url, err) <
            0 ||
        check_ref(b, "repoRef", "repoRef", err) < 0 ||
        check_ref(b, "defaultRef", "defaultRef", err) < 0 ||
        pc_json_check_bool(b, "isPrimary", 0, &w->primary, &w->has_primary, err) < 0 ||
        pc_json_check_object(b, "metadata", PC_J_NULLABLE, &w->metadata, err) < 0)
        return -1;
    w->repo_ref = pc_json_str(b, "repoRef");
    w->default_ref = pc_json_str(b, "defaultRef");
    if (w->cwd && w->cwd[0] != '/')
        return pc_error_validation(err, "cwd", "Must be an absolute path");
    /* A repository URL becomes a `git clone` argument: never an option. */
    if (w->repo_url && (w->repo_url[0] == '-' || strpbrk(w->repo_url, " \t\r\n")))
        return pc_error_validation(err, "repoUrl", "Invalid repository URL");
    if (create && !w->cwd && !w->repo_url)
        return pc_error_set(err, 422, "Workspace requires at least one of cwd or repoUrl");
    return 0;
}

static int pw_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *p = project_for_req(req, err);
    if (!p)
        return -1;
    const char *pid = pc_json_str(p, "id"), *cid = pc_json_str(p, "companyId");
    pw_body w;
    if (require_host_exec(req, cid, err) < 0 || parse_pw(req->body, true, &w, err) < 0)
        return -1;
    _cleanup_json_ json_t *n = pc_db_query_one_s(
        req->app->db, "SELECT COUNT(*) AS n FROM project_workspaces WHERE project_id=?",
        json_pack("[s]", pid), err);
    if (!n)
        return -1;
    /* The first workspace of a project is its primary one. */
    bool primary = w.has_primary ? w.primary : pc_json_int(n, "n", 0) == 0;
    const char *name = w.name ? w.name : w.cwd ? w.cwd : w.repo_url;
    const char *source = w.source ? w.source : w.cwd ? "local_path" : "git_repo";
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    if (pc_db_begin(req->app->db, err) < 0)
        return -1;
    if ((primary && pc_db_exec_s(req->app->db,
                                 "UPDATE project_workspaces SET is_primary=0 WHERE project_id=?",
                                 json_pack("[s]", pid), NULL, err) < 0) ||
        pc_db_exec_s(req->app->db,
                     "INSERT INTO project_workspaces(id,company_id,project_id,name,source_type,cwd,"
                     "repo_url,repo_ref,default_ref,metadata,is_primary,created_at,updated_at) "
                     "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     json_pack("[s,s,s,s,s,s?,s?,s?,s?,O?,i,s,s]", id, cid, pid, name, source,
                               w.cwd, w.repo_url, w.repo_ref, w.default_ref,
                               w.metadata && !json_is_null(w.metadata) ? w.metadata : NULL,
                               primary ? 1 : 0, ts, ts),
                     NULL, err) < 0 ||
        pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        return -1;
    }
    pc_activity_log_steal(req->app, &req->actor, cid, "project.workspace_created", "project", pid,
                          json_pack("{s:s}", "workspaceId", id), err);
    pc_error_clear(err);
    json_t *out = pw_get(req->app, id, err);
    return out ? pc_resp_json(resp, 201, out) : -1;
}

/* The workspace :workspaceId of the project :id, for a manager. */
static json_t *pw_for_req(pc_req *req, pc_error_t *err)
{
    _cleanup_json_ json_t *p = project_for_req(req, err);
    if (!p || require_host_exec(req, pc_json_str(p, "companyId"), err) < 0)
        return NULL;
    const char *wid = pc_param_uuid(req, "workspaceId", "Project workspace not found", err);
    if (!wid)
        return NULL;
    json_t *w = pw_get(req->app, wid, err);
    if (w && strcmp(pc_json_str(w, "projectId"), pc_json_str(p, "id")) != 0) {
        json_decref(w);
        pc_error_set(err, 404, "Project workspace not found");
        return NULL;
    }
    return w;
}

static int pw_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = pw_for_req(req, err);
    if (!cur)
        return -1;
    json_t *b = req->body;
    pw_body w;
    if (parse_pw(b, false, &w, err) < 0)
        return -1;
    const char *id = pc_json_str(cur, "id"), *pid = pc_json_str(cur, "projectId");
#define HAS(k) (json_object_get(b, k) != NULL)
    const char *cwd = HAS("cwd") ? w.cwd : pc_json_str(cur, "cwd");
    const char *url = HAS("repoUrl") ? w.repo_url : pc_json_str(cur, "repoUrl");
    if (!cwd && !url)
        return pc_error_set(err, 422, "Workspace requires at least one of cwd or repoUrl");
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_begin(req->app->db, err) < 0)
        return -1;
    if ((w.has_primary && w.primary &&
         pc_db_exec_s(req->app->db, "UPDATE project_workspaces SET is_primary=0 WHERE project_id=?",
                      json_pack("[s]", pid), NULL, err) < 0) ||
        pc_db_exec_s(
            req->app->db,
            "UPDATE project_workspaces SET name=COALESCE(?,name),"
            "source_type=COALESCE(?,source_type),cwd=?,repo_url=?,"
            "repo_ref=CASE WHEN ? THEN ? ELSE repo_ref END,"
            "default_ref=CASE WHEN ? THEN ? ELSE default_ref END,"
            "metadata=CASE WHEN ? THEN ? ELSE metadata END,"
            "is_primary=CASE WHEN ? THEN ? ELSE is_primary END,updated_at=? WHERE id=?",
            json_pack("[s?,s?,s?,s?,b,s?,b,s?,b,O?,b,i,s,s]", w.name, w.source, cwd, url,
                      HAS("repoRef"), w.repo_ref, HAS("defaultRef"), w.default_ref,
                      HAS("metadata"), w.metadata && !json_is_null(w.metadata) ? w.metadata : NULL,
                      w.has_primary, w.primary ? 1 : 0, ts, id),
            NULL, err) < 0 ||
        pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        return -1;
    }
#undef HAS
    pc_activity_log_steal(req->app, &req->actor, pc_json_str(cur, "companyId"),
                          "project.workspace_updated", "project", pid,
                          json_pack("{s:s}", "workspaceId", id), err);
    pc_error_clear(err);
    json_t *out = pw_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int pw_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *cur = pw_for_req(req, err);
    if (!cur)
        return -1;
    if (pc_db_exec_s(req->app->db, "DELETE FROM project_workspaces WHERE id=?",
                     json_pack("[s]", pc_json_str(cur, "id")), NULL, err) < 0) {
        json_decref(cur);
        return -1;
    }
    pc_activity_log_steal(req->app, &req->actor, pc_json_str(cur, "companyId"),
                          "project.workspace_deleted", "project", pc_json_str(cur, "projectId"),
                          json_pack("{s:O}", "workspaceId", json_object_get(cur, "id")), err);
    pc_error_clear(err);
    return pc_resp_json(resp, 200, cur);
}

const pc_route pc_routes_projects[] = {
    {"GET", "/api/companies/:companyId/projects", projects_list, 0},
    {"POST", "/api/companies/:companyId/projects", projects_create, 0},
    {"GET", "/api/projects/:id", projects_get, 0},
    {"PATCH", "/api/projects/:id", projects_patch, 0},
    {"DELETE", "/api/projects/:id", projects_delete, 0},
    {"GET", "/api/projects/:id/workspaces", pw_list, 0},
    {"POST", "/api/projects/:id/workspaces", pw_create, 0},
    {"PATCH", "/api/projects/:id/workspaces/:workspaceId", pw_patch, 0},
    {"DELETE", "/api/projects/:id/workspaces/:workspaceId", pw_delete, 0},
    {NULL, NULL, NULL, 0},
};
