/*
 * Issues: GET/POST /api/companies/:companyId/issues, GET/PATCH/DELETE
 * /api/issues/:issueId, POST /api/issues/:issueId/{checkout,release},
 * GET/POST /api/issues/:issueId/comments.
 *
 * Identifiers are PREFIX-N, N from companies.issue_counter incremented in the
 * same write transaction as the insert. Checkout is one compare-and-set
 * UPDATE, so two agents (or two runs) racing for an issue get exactly one
 * 200 and one 409. An issue created or updated into `todo` with an agent
 * assignee wakes that agent (source "assignment").
 */
#include <string.h>

#include "api/api.h"
#include "api/authz.h"
#include "api/issues.h"
#include "env/env.h"
#include "lib/buf.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "run/runtime.h"


static const char *const issue_statuses[] = {"backlog", "todo",    "in_progress", "in_review",
                                             "done",    "blocked", "cancelled",   NULL};
static const char *const issue_priorities[] = {"critical", "high", "medium", "low", NULL};

static json_t *issue_get(pc_app *app, const char *id, pc_error_t *err)
{
    /* ?1 binds id twice: an issue is named by its uuid or its identifier. */
    return pc_row_load(app, "SELECT * FROM issues WHERE id=?1 OR identifier=?1", id,
                       pc_issue_from_row, "Issue not found", err);
}

json_t *pc_issue_load_for(pc_req *req, pc_error_t *err)
{
    const char *id = pc_req_param(req, "issueId");
    if (!id || strlen(id) > 64) {
        pc_error_set(err, 404, "Issue not found");
        return NULL;
    }
    return pc_access_checked(req, issue_get(req->app, id, err), err);
}

/* The run an agent request acts for: its token's run, else the header. */
static const char *actor_run_id(const pc_req *req)
{
    if (req->actor.type != PC_ACTOR_AGENT)
        return NULL;
    if (req->actor.run_id[0])
        return req->actor.run_id;
    if (req->run_id_header && pc_uuid_valid(req->run_id_header))
        return req->run_id_header;
    return NULL;
}

/* What an agent caller may do to an issue's routing: handing work to
 * another agent (which wakes it) needs tasks:assign; choosing where the
 * issue's runs execute needs environments:manage and stays within the
 * caller's containment. old_assignee is the current assignee on a patch. */
static int issue_agent_guard(pc_req *req, const char *cid, json_t *b, const char *issue_id,
                             const char *old_assignee, pc_error_t *err)
{
    if (req->actor.type != PC_ACTOR_AGENT)
        return 0;
    json_t *ews = json_object_get(b, "executionWorkspaceSettings");
    if (ews) {
        const char *env = json_is_object(ews) ? pc_json_str(ews, "environmentId") : NULL;
        if (pc_actor_require(req, cid, PC_PERM_ENVIRONMENTS_MANAGE, NULL, err) < 0 ||
            pc_actor_may_select_env(req, env, err) < 0)
            return -1;
    }
    /* A project's policy decides the issue's workspace and may name its
     * environment: putting an issue into a project is the same choice. */
    const char *project = pc_json_str(b, "projectId");
    if (project && pc_uuid_valid(project)) {
        if (pc_actor_require(req, cid, PC_PERM_ENVIRONMENTS_MANAGE, NULL, err) < 0)
            return -1;
        _cleanup_json_ json_t *p = pc_db_query_one_s(
            req->app->db, "SELECT execution_workspace_policy FROM projects WHERE id=? AND company_id=?",
            json_pack("[s,s]", project, cid), err);
        if (!p && pc_error_is_set(err))
            return -1;
        _cleanup_json_ json_t *pol =
            pc_json_from_text(p ? pc_json_str(p, "execution_workspace_policy") : NULL);
        const char *penv = pc_json_str(pol, "environmentId");
        if (penv && pc_actor_may_select_env(req, penv, err) < 0)
            return -1;
    }
    const char *assignee = json_object_get(b, "assigneeAgentId") ? pc_json_str(b, "assigneeAgentId")
                                                                 : old_assignee;
    const char *status = pc_json_str(b, "status");
    bool hands_over = (json_object_get(b, "assigneeAgentId") || (status && !strcmp(status, "todo")));
    if (!hands_over || !assignee)
        return 0;
    if (strcmp(assignee, req->actor.agent_id) != 0 &&
        pc_actor_require(req, cid, PC_PERM_TASKS_ASSIGN, NULL, err) < 0)
        return -1;
    /* The assignment wakes the assignee: a confined caller may not start a
     * run, its own included, anywhere it could not choose itself. */
    json_t *override = NULL;
    if (ews) {
        override = json_is_object(ews) ? json_object_get(ews, "environmentId") : NULL;
        if (!override)
            override = json_null();
    }
    return pc_actor_may_cause_run(req, assignee, issue_id, override, err);
}

static int check_assignee(pc_app *app, const char *cid, const char *aid, pc_error_t *err)
{
    if (!aid)
        return 0;
    if (!pc_uuid_valid(aid))
        return pc_error_validation(err, "assigneeAgentId", "Invalid uuid");
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        app->db, "SELECT company_id, status FROM agents WHERE id=?", json_pack("[s]", aid), err);
    if (!row)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 422, "Assignee agent not found");
    if (strcmp(pc_json_str(row, "company_id"), cid) != 0)
        return pc_error_set(err, 422, "Assignee agent belongs to another company");
    if (!strcmp(pc_json_str(row, "status"), "terminated"))
        return pc_error_set(err, 422, "Cannot assign work to a terminated agent");
    return 0;
}

/* executionWorkspaceSettings: an object; environmentId, when set, must name
 * an environment of the company the assignee's adapter can run in (the
 * selection matrix, env/select.c). `assignee` is the agent the issue will
 * have after the write, NULL when none. */
static int check_ews(pc_app *app, const char *cid, json_t *ews, const char *assignee,
                     pc_error_t *err)
{
    if (!ews || json_is_null(ews))
        return 0;
    json_t *e = json_object_get(ews, "environmentId");
    if (!e || json_is_null(e))
        return 0;
    if (!json_is_string(e) || !pc_uuid_valid(json_string_value(e)))
        return pc_error_validation(err, "executionWorkspaceSettings.environmentId",
                                   "Invalid uuid");
    _cleanup_json_ json_t *agent = NULL;
    if (assignee) {
        agent = pc_db_query_one_s(app->db, "SELECT adapter_type FROM agents WHERE id=?",
                                  json_pack("[s]", assignee), err);
        if (!agent && pc_error_is_set(err))
            return -1;
    }
    return pc_env_validate_selection(app, cid, json_string_value(e),
                                     agent ? pc_json_str(agent, "adapter_type") : NULL, err);
}

static void wake_assignee(pc_req *req, const char *issue_id, const char *agent_id)
{
    pc_error_t err = PC_ERROR_INIT;
    pc_wakeup_opts o = {.source = "assignment", .trigger_detail = "system",
                        .reason = "issue_assigned", .issue_id = issue_id, .actor = &req->actor};
    json_t *r = pc_run_wakeup(req->app, agent_id, &o, &err);
    if (!r)
        pc_info("assignment wakeup for agent %s skipped: %s", agent_id, err.msg);
    json_decref(r);
    pc_error_clear(&err);
}

static int issues_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    const char *status = pc_req_query(req, "status");
    const char *assignee = pc_req_query(req, "assigneeAgentId");
    /* status may be a comma-separated list; statuses are validated so the
     * IN list is built only from known words. */
    pc_buf sql;
    pc_buf_init(&sql, 4096);
    json_t *params = json_pack("[s]", cid);
    pc_buf_puts(&sql, "SELECT * FROM issues WHERE company_id=?", err);
    if (status && *status) {
        pc_buf_puts(&sql, " AND status IN (", err);
        const char *s = status;
        int n = 0;
        while (*s) {
            size_t len = strcspn(s, ",");
            char word[32];
            if (len == 0 || len >= sizeof word) {
                json_decref(params);
                pc_buf_release(&sql);
                return pc_error_validation(err, "status", "Invalid status");
            }
            snprintf(word, sizeof word, "%.*s", (int)len, s);
            bool known = false;
            for (int k = 0; issue_statuses[k]; k++)
                known |= !strcmp(issue_statuses[k], word);
            if (!known || n >= 7) {
                json_decref(params);
                pc_buf_release(&sql);
                return pc_error_validation(err, "status", "Invalid status");
            }
            pc_buf_puts(&sql, n ? ",?" : "?", err);
            json_array_append_new(params, json_string(word));
            n++;
            s += len;
            if (*s == ',')
                s++;
        }
        pc_buf_puts(&sql, ")", err);
    }
    if (assignee && *assignee) {
        pc_buf_puts(&sql, " AND assignee_agent_id=?", err);
        json_array_append_new(params, json_string(assignee));
    }
    pc_buf_puts(&sql, " ORDER BY created_at DESC, issue_number DESC LIMIT 1000", err);
    json_t *rows = NULL;
    int rc = pc_db_query(req->app->db, sql.data, params, &rows, err);
    json_decref(params);
    pc_buf_release(&sql);
    if (rc < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_issue_from_row));
}

static int issues_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!cid || pc_require_company_access(req, cid, err) < 0)
        return -1;
    json_t *b = req->body;
    const char *title = NULL, *desc = NULL, *status = NULL, *priority = "medium",
               *assignee = NULL, *assignee_user = NULL, *parent = NULL, *project = NULL,
               *goal = NULL, *billing = NULL;
    json_t *ews = NULL;
    if (pc_json_check_is_object(b, err) < 0 ||
        pc_json_check_string(b, "title", PC_J_REQUIRED, 1, 500, &title, err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, 200000, &desc, err) < 0 ||
        pc_json_check_enum(b, "status", 0, issue_statuses, &status, err) < 0 ||
        pc_json_check_enum(b, "priority", 0, issue_priorities, &priority, err) < 0 ||
        pc_json_check_string(b, "assigneeAgentId", PC_J_NULLABLE, 0, 64, &assignee, err) < 0 ||
        pc_json_check_string(b, "assigneeUserId", PC_J_NULLABLE, 0, 200, &assignee_user, err) < 0 ||
        pc_json_check_string(b, "parentId", PC_J_NULLABLE, 0, 64, &parent, err) < 0 ||
        pc_json_check_string(b, "projectId", PC_J_NULLABLE, 0, 64, &project, err) < 0 ||
        pc_json_check_string(b, "goalId", PC_J_NULLABLE, 0, 64, &goal, err) < 0 ||
        pc_json_check_string(b, "billingCode", PC_J_NULLABLE, 0, 200, &billing, err) < 0 ||
        pc_json_check_object(b, "executionWorkspaceSettings", PC_J_NULLABLE, &ews, err) < 0)
        return -1;
    if (!status)
        status = assignee ? "todo" : "backlog";
    json_t *c = pc_company_get(req->app, cid, err);
    if (!c)
        return -1;
    json_decref(c);
    if (issue_agent_guard(req, cid, b, NULL, NULL, err) < 0 ||
        check_assignee(req->app, cid, assignee, err) < 0 ||
        check_ews(req->app, cid, ews, assignee, err) < 0 ||
        pc_company_ref_check(req->app, "projects", "projectId", project, cid, "Project not found",
                             err) < 0 ||
        pc_company_ref_check(req->app, "goals", "goalId", goal, cid, "Goal not found", err) < 0)
        return -1;
    if (parent) {
        _cleanup_json_ json_t *p = pc_db_query_one_s(
            req->app->db, "SELECT id FROM issues WHERE id=? AND company_id=?",
            json_pack("[s,s]", parent, cid), err);
        if (!p)
            return pc_error_is_set(err) ? -1 : pc_error_set(err, 422, "Parent issue not found");
    }
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    const char *by_agent = req->actor.type == PC_ACTOR_AGENT ? req->actor.agent_id : NULL;
    const char *by_user = req->actor.type == PC_ACTOR_BOARD ? req->actor.user_id : NULL;
    if (pc_db_begin(req->app->db, err) < 0)
        return -1;
    _cleanup_json_ json_t *ctr = NULL;
    if (pc_db_exec_s(req->app->db,
                     "UPDATE companies SET issue_counter=issue_counter+1 WHERE id=?",
                     json_pack("[s]", cid), NULL, err) < 0 ||
        !(ctr = pc_db_query_one_s(req->app->db,
                                  "SELECT issue_counter, issue_prefix FROM companies WHERE id=?",
                                  json_pack("[s]", cid), err))) {
        pc_db_rollback(req->app->db);
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Company not found");
    }
    int64_t num = pc_json_int(ctr, "issue_counter", 0);
    char ident[64];
    snprintf(ident, sizeof ident, "%s-%lld", pc_json_str(ctr, "issue_prefix"), (long long)num);
    bool in_progress = !strcmp(status, "in_progress");
    if (pc_db_exec_s(
            req->app->db,
            "INSERT INTO issues(id,company_id,project_id,goal_id,parent_id,title,description,"
            "status,priority,assignee_agent_id,assignee_user_id,created_by_agent_id,"
            "created_by_user_id,issue_number,identifier,billing_code,"
            "execution_workspace_settings,started_at,created_at,updated_at) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            json_pack("[s,s,s?,s?,s?,s,s?,s,s,s?,s?,s?,s?,I,s,s?,O?,s?,s,s]", id, cid, project, goal,
                      parent, title, desc, status, priority, assignee, assignee_user, by_agent,
                      by_user, (json_int_t)num, ident, billing,
                      ews && !json_is_null(ews) ? ews : NULL, in_progress ? ts : NULL, ts, ts),
            NULL, err) < 0 ||
        pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        return -1;
    }
    pc_activity_log_steal(req->app, &req->actor, cid, "issue.created", "issue", id,
                          json_pack("{s:s,s:s}", "identifier", ident, "status", status), err);
    pc_error_clear(err);
    if (assignee && !strcmp(status, "todo"))
        wake_assignee(req, id, assignee);
    json_t *out = issue_get(req->app, id, err);
    return out ? pc_resp_json(resp, 201, out) : -1;
}

static int issues_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *i = pc_issue_load_for(req, err);
    return i ? pc_resp_json(resp, 200, i) : -1;
}

/* True when run_id names a run that is still queued or running. */
static bool run_active(pc_app *app, const char *run_id)
{
    if (!run_id)
        return false;
    pc_error_t e = PC_ERROR_INIT;
    json_t *r = pc_db_query_one_s(app->db,
                                  "SELECT 1 AS x FROM heartbeat_runs WHERE id=? AND status IN "
                                  "('queued','running')",
                                  json_pack("[s]", run_id), &e);
    pc_error_clear(&e);
    bool active = r != NULL;
    json_decref(r);
    return active;
}

static int add_comment(pc_req *req, const char *cid, const char *issue_id, const char *body,
                       char id_out[PC_UUID_LEN + 1], pc_error_t *err)
{
    char ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id_out);
    pc_iso_now(ts);
    const char *by_agent = req->actor.type == PC_ACTOR_AGENT ? req->actor.agent_id : NULL;
    const char *by_user = req->actor.type == PC_ACTOR_BOARD ? req->actor.user_id : NULL;
    if (pc_db_exec_s(req->app->db,
                     "INSERT INTO issue_comments(id,company_id,issue_id,author_agent_id,"
                     "author_user_id,run_id,body,created_at,updated_at) VALUES(?,?,?,?,?,?,?,?,?)",
                     json_pack("[s,s,s,s?,s?,s?,s,s,s]", id_out, cid, issue_id, by_agent, by_user,
                               actor_run_id(req), body, ts, ts),
                     NULL, err) < 0)
        return -1;
    pc_activity_log_steal(req->app, &req->actor, cid, "issue.comment_added", "issue", issue_id,
                          json_pack("{s:s}", "commentId", id_out), err);
    pc_error_clear(err);
    return 0;
}

static int issues_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = pc_issue_load_for(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id"), *cid = pc_json_str(cur, "companyId");
    json_t *b = req->body;
    const char *title = NULL, *desc = NULL, *status = NULL, *priority = NULL, *assignee = NULL,
               *assignee_user = NULL, *billing = NULL, *comment = NULL, *project = NULL,
               *goal = NULL;
    json_t *ews = NULL;
    if (pc_json_check_is_object(b, err) < 0 ||
        pc_json_check_string(b, "title", 0, 1, 500, &title, err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, 200000, &desc, err) < 0 ||
        pc_json_check_enum(b, "status", 0, issue_statuses, &status, err) < 0 ||
        pc_json_check_enum(b, "priority", 0, issue_priorities, &priority, err) < 0 ||
        pc_json_check_string(b, "assigneeAgentId", PC_J_NULLABLE, 0, 64, &assignee, err) < 0 ||
        pc_json_check_string(b, "assigneeUserId", PC_J_NULLABLE, 0, 200, &assignee_user, err) < 0 ||
        pc_json_check_string(b, "billingCode", PC_J_NULLABLE, 0, 200, &billing, err) < 0 ||
        pc_json_check_string(b, "comment", 0, 1, 100000, &comment, err) < 0 ||
        pc_json_check_string(b, "projectId", PC_J_NULLABLE, 0, 64, &project, err) < 0 ||
        pc_json_check_string(b, "goalId", PC_J_NULLABLE, 0, 64, &goal, err) < 0 ||
        pc_json_check_object(b, "executionWorkspaceSettings", PC_J_NULLABLE, &ews, err) < 0)
        return -1;
#define HAS(k) (json_object_get(b, k) != NULL)
    if (pc_company_ref_check(req->app, "projects", "projectId", project, cid, "Project not found",
                             err) < 0 ||
        pc_company_ref_check(req->app, "goals", "goalId", goal, cid, "Goal not found", err) < 0)
        return -1;
    if (issue_agent_guard(req, cid, b, id, pc_json_str(cur, "assigneeAgentId"), err) < 0 ||
        (HAS("assigneeAgentId") && check_assignee(req->app, cid, assignee, err) < 0) ||
        check_ews(req->app, cid,
                  /* a new assignee is checked against the kept selection */
                  HAS("executionWorkspaceSettings") ? ews
                  : HAS("assigneeAgentId") ? json_object_get(cur, "executionWorkspaceSettings")
                                           : NULL,
                  HAS("assigneeAgentId") ? assignee : pc_json_str(cur, "assigneeAgentId"),
                  err) < 0)
        return -1;
    /* An agent may not change an issue another live run has checked out. */
    const char *checkout = pc_json_str(cur, "checkoutRunId");
    const char *my_run = actor_run_id(req);
    if (req->actor.type == PC_ACTOR_AGENT && checkout && (!my_run || strcmp(checkout, my_run)) &&
        run_active(req->app, checkout) &&
        strcmp(req->actor.agent_id, pc_json_str(cur, "assigneeAgentId") ? pc_json_str(cur, "assigneeAgentId") : "") != 0)
        return pc_error_set(err, 409, "Issue is checked out by another agent");
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    const char *new_status = status ? status : pc_json_str(cur, "status");
    bool to_done = status && !strcmp(status, "done");
    bool to_cancel = status && !strcmp(status, "cancelled");
    bool to_progress = status && !strcmp(status, "in_progress");
    if (pc_db_exec_s(
            req->app->db,
            "UPDATE issues SET title=CASE WHEN ? THEN ? ELSE title END,"
            "description=CASE WHEN ? THEN ? ELSE description END,"
            "status=CASE WHEN ? THEN ? ELSE status END,"
            "priority=CASE WHEN ? THEN ? ELSE priority END,"
            "assignee_agent_id=CASE WHEN ? THEN ? ELSE assignee_agent_id END,"
            "assignee_user_id=CASE WHEN ? THEN ? ELSE assignee_user_id END,"
            "billing_code=CASE WHEN ? THEN ? ELSE billing_code END,"
            "execution_workspace_settings=CASE WHEN ? THEN ? ELSE execution_workspace_settings END,"
            "started_at=CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END,"
            "completed_at=CASE WHEN ? THEN ? ELSE completed_at END,"
            "cancelled_at=CASE WHEN ? THEN ? ELSE cancelled_at END,"
            "checkout_run_id=CASE WHEN ? THEN NULL ELSE checkout_run_id END,"
            "project_id=CASE WHEN ? THEN ? ELSE project_id END,"
            "goal_id=CASE WHEN ? THEN ? ELSE goal_id END,"
            "updated_at=? WHERE id=?",
            json_pack("[b,s?,b,s?,b,s?,b,s?,b,s?,b,s?,b,s?,b,O?,b,s,b,s,b,s,b,b,s?,b,s?,s,s]",
                      title != NULL,
                      title, HAS("description"), desc, status != NULL, status, priority != NULL,
                      priority, HAS("assigneeAgentId"), assignee, HAS("assigneeUserId"),
                      assignee_user, HAS("billingCode"), billing, HAS("executionWorkspaceSettings"),
                      ews && !json_is_null(ews) ? ews : NULL, to_progress, ts, to_done, ts,
                      to_cancel, ts, to_done || to_cancel, HAS("projectId"), project,
                      HAS("goalId"), goal, ts, id),
            NULL, err) < 0)
        return -1;
    if (comment) {
        char cmid[PC_UUID_LEN + 1];
        if (add_comment(req, cid, id, comment, cmid, err) < 0)
            return -1;
    }
    pc_activity_log_steal(req->app, &req->actor, cid, "issue.updated", "issue", id,
                          json_pack("{s:o,s:s}", "changedFields", pc_changed_fields(b), "status",
                                    new_status),
                          err);
    pc_error_clear(err);
    /* Upstream's rule: a closed issue's reusable sandboxes go. The sweeper
     * destroys them; this only hands them over. */
    if (to_done || to_cancel) {
        pc_env_issue_closed(req->app, cid, id, status, err);
        pc_error_clear(err);
    }
    /* Wake the assignee when the issue newly lands in its todo list. */
    const char *old_assignee = pc_json_str(cur, "assigneeAgentId");
    const char *new_assignee = HAS("assigneeAgentId") ? assignee : old_assignee;
    bool assignee_changed = HAS("assigneeAgentId") && assignee &&
                            (!old_assignee || strcmp(old_assignee, assignee) != 0);
    bool status_to_todo = status && !strcmp(status, "todo") &&
                          strcmp(pc_json_str(cur, "status"), "todo") != 0;
    if (new_assignee && !strcmp(new_status, "todo") && (assignee_changed || status_to_todo))
        wake_assignee(req, id, new_assignee);
#undef HAS
    json_t *out = issue_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int issues_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    json_t *cur = pc_issue_load_for(req, err);
    if (!cur)
        return -1;
    if (pc_db_exec_s(req->app->db, "DELETE FROM issues WHERE id=?",
                     json_pack("[s]", pc_json_str(cur, "id")), NULL, err) < 0) {
        json_decref(cur);
        return -1;
    }
    pc_activity_log_steal(req->app, &req->actor, pc_json_str(cur, "companyId"), "issue.deleted",
                          "issue", pc_json_str(cur, "id"),
                          json_pack("{s:O}", "identifier", json_object_get(cur, "identifier")),
                          err);
    pc_error_clear(err);
    pc_env_issue_closed(req->app, pc_json_str(cur, "companyId"), pc_json_str(cur, "id"),
                        "deleted", err);
    pc_error_clear(err);
    return pc_resp_json(resp, 200, cur);
}

static int issues_checkout(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = pc_issue_load_for(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id"), *cid = pc_json_str(cur, "companyId");
    json_t *b = req->body;
    const char *agent_id = NULL;
    if (pc_json_check_is_object(b, err) < 0 ||
        pc_json_check_string(b, "agentId", PC_J_REQUIRED, 1, 64, &agent_id, err) < 0)
        return -1;
    if (!pc_uuid_valid(agent_id))
        return pc_error_validation(err, "agentId", "Invalid uuid");
    json_t *exp = json_object_get(b, "expectedStatuses");
    _cleanup_json_ json_t *expected = json_array();
    if (exp) {
        if (!json_is_array(exp) || json_array_size(exp) == 0 || json_array_size(exp) > 7)
            return pc_error_validation(err, "expectedStatuses", "Expected a non-empty array");
        size_t i;
        json_t *v;
        json_array_foreach(exp, i, v)
        {
            bool known = false;
            for (int k = 0; json_is_string(v) && issue_statuses[k]; k++)
                known |= !strcmp(issue_statuses[k], json_string_value(v));
            if (!known)
                return pc_error_validation(err, "expectedStatuses", "Invalid status");
            json_array_append(expected, v);
        }
    } else {
        json_array_append_new(expected, json_string("todo"));
        json_array_append_new(expected, json_string("backlog"));
        json_array_append_new(expected, json_string("blocked"));
    }
    if (req->actor.type == PC_ACTOR_AGENT && strcmp(req->actor.agent_id, agent_id) != 0)
        return pc_error_set(err, 403, "Agent can only checkout issues for itself");
    if (check_assignee(req->app, cid, agent_id, err) < 0)
        return -1;
    const char *run_id = actor_run_id(req);
    /* Checking out again from the run (or agent) that holds it is a no-op. */
    const char *holder = pc_json_str(cur, "checkoutRunId");
    const char *owner = pc_json_str(cur, "assigneeAgentId");
    if (!strcmp(pc_json_str(cur, "status"), "in_progress") && owner && !strcmp(owner, agent_id) &&
        ((holder && run_id && !strcmp(holder, run_id)) || (!holder && !run_id)))
        return pc_resp_json(resp, 200, json_incref(cur));
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    pc_buf sql;
    pc_buf_init(&sql, 4096);
    pc_buf_puts(&sql,
                "UPDATE issues SET status='in_progress', assignee_agent_id=?, checkout_run_id=?, "
                "execution_run_id=COALESCE(execution_run_id, ?), "
                "started_at=COALESCE(started_at, ?), updated_at=? WHERE id=? AND status IN (",
                err);
    json_t *params = json_pack("[s,s?,s?,s,s,s]", agent_id, run_id, run_id, ts, ts, id);
    for (size_t i = 0; i < json_array_size(expected); i++) {
        pc_buf_puts(&sql, i ? ",?" : "?", err);
        json_array_append(params, json_array_get(expected, i));
    }
    /* The holder check: free, ours, or held by a run that is no longer live. */
    pc_buf_puts(&sql,
                ") AND (assignee_agent_id IS NULL OR assignee_agent_id=?) AND "
                "(checkout_run_id IS NULL OR checkout_run_id=? OR checkout_run_id NOT IN "
                "(SELECT id FROM heartbeat_runs WHERE status IN ('queued','running')))",
                err);
    json_array_append_new(params, json_string(agent_id));
    json_array_append_new(params, run_id ? json_string(run_id) : json_null());
    int64_t changes = 0;
    int rc = pc_db_exec(req->app->db, sql.data, params, &changes, err);
    json_decref(params);
    pc_buf_release(&sql);
    if (rc < 0)
        return -1;
    if (changes != 1) {
        _cleanup_json_ json_t *now = issue_get(req->app, id, err);
        if (!now)
            return -1;
        pc_error_set(err, 409, "Issue checkout conflict");
        pc_error_details(err, json_pack("{s:s,s:O,s:O,s:O,s:O}", "issueId", id, "status",
                                        json_object_get(now, "status"), "assigneeAgentId",
                                        json_object_get(now, "assigneeAgentId"), "checkoutRunId",
                                        json_object_get(now, "checkoutRunId"), "expectedStatuses",
                                        expected));
        return -1;
    }
    pc_activity_log_steal(req->app, &req->actor, cid, "issue.checked_out", "issue", id,
                          json_pack("{s:s,s:s?}", "agentId", agent_id, "runId", run_id), err);
    pc_error_clear(err);
    json_t *out = issue_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int issues_release(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = pc_issue_load_for(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id"), *cid = pc_json_str(cur, "companyId");
    const char *owner = pc_json_str(cur, "assigneeAgentId");
    if (req->actor.type == PC_ACTOR_AGENT && (!owner || strcmp(owner, req->actor.agent_id) != 0))
        return pc_error_set(err, 403, "Only the assignee can release this issue");
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_exec_s(req->app->db,
                     "UPDATE issues SET status='todo', assignee_agent_id=NULL, "
                     "checkout_run_id=NULL, execution_run_id=NULL, execution_locked_at=NULL, "
                     "updated_at=? WHERE id=?",
                     json_pack("[s,s]", ts, id), NULL, err) < 0)
        return -1;
    pc_activity_log_steal(req->app, &req->actor, cid, "issue.released", "issue", id, NULL, err);
    pc_error_clear(err);
    json_t *out = issue_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int comments_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = pc_issue_load_for(req, err);
    if (!cur)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM issue_comments WHERE issue_id=? ORDER BY created_at, id",
                      json_pack("[s]", pc_json_str(cur, "id")), &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_issue_comment_from_row));
}

static int comments_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = pc_issue_load_for(req, err);
    if (!cur)
        return -1;
    const char *body = NULL;
    if (pc_json_check_is_object(req->body, err) < 0 ||
        pc_json_check_string(req->body, "body", PC_J_REQUIRED, 1, 100000, &body, err) < 0)
        return -1;
    char cmid[PC_UUID_LEN + 1];
    if (add_comment(req, pc_json_str(cur, "companyId"), pc_json_str(cur, "id"), body, cmid, err) <
        0)
        return -1;
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        req->app->db, "SELECT * FROM issue_comments WHERE id=?", json_pack("[s]", cmid), err);
    if (!row)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 500, "comment vanished");
    return pc_resp_json(resp, 201, pc_issue_comment_from_row(row));
}

const pc_route pc_routes_issues[] = {
    {"GET", "/api/companies/:companyId/issues", issues_list, 0},
    {"POST", "/api/companies/:companyId/issues", issues_create, 0},
    {"GET", "/api/issues/:issueId", issues_get, 0},
    {"PATCH", "/api/issues/:issueId", issues_patch, 0},
    {"DELETE", "/api/issues/:issueId", issues_delete, 0},
    {"POST", "/api/issues/:issueId/checkout", issues_checkout, 0},
    {"POST", "/api/issues/:issueId/release", issues_release, 0},
    {"GET", "/api/issues/:issueId/comments", comments_list, 0},
    {"POST", "/api/issues/:issueId/comments", comments_create, 0},
    {NULL, NULL, NULL, 0},
};
