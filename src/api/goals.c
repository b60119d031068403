/*
 * Goals (upstream's shape): what projects and issues work towards.
 *
 *   GET   /api/companies/:companyId/goals
 *   POST  /api/companies/:companyId/goals    {title, description?, level?, status?,
 *                                             parentId?, ownerAgentId?}
 *   GET   /api/goals/:id
 *   PATCH /api/goals/:id
 *
 * Company access suffices for all of them (the board or an agent of the
 * company): a goal decides nothing about where or how work runs.
 */
#include <string.h>

#include "api/api.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

static const char *const goal_levels[] = {"company", "team", "agent", "task", NULL};
static const char *const goal_statuses[] = {"planned", "active", "achieved", "cancelled", NULL};
static const char *const goal_keys[] = {"title",    "description",  "level", "status",
                                        "parentId", "ownerAgentId", NULL};

static json_t *goal_get(pc_app *app, const char *id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM goals WHERE id=?", id, pc_goal_from_row,
                       "Goal not found", err);
}

typedef struct goal_body {
    const char *title, *desc, *level, *status, *parent, *owner;
} goal_body;

static int parse_goal(pc_app *app, const char *cid, json_t *b, bool create, goal_body *g,
                      pc_error_t *err)
{
    memset(g, 0, sizeof *g);
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, goal_keys, err) < 0 ||
        pc_json_check_string(b, "title", create ? PC_J_REQUIRED : 0, 1, 500, &g->title, err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, 20000, &g->desc, err) < 0 ||
        pc_json_check_enum(b, "level", 0, goal_levels, &g->level, err) < 0 ||
        pc_json_check_enum(b, "status", 0, goal_statuses, &g->status, err) < 0 ||
        pc_json_check_string(b, "parentId", PC_J_NULLABLE, 0, 64, &g->parent, err) < 0 ||
        pc_json_check_string(b, "ownerAgentId", PC_J_NULLABLE, 0, 64, &g->owner, err) < 0)
        return -1;
    return pc_company_ref_check(app, "goals", "parentId", g->parent, cid, "Parent goal not found",
                                err) < 0 ||
                   pc_company_ref_check(app, "agents", "ownerAgentId", g->owner, cid,
                                        "Owner agent not found", err) < 0
               ? -1
               : 0;
}

static int goals_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db, "SELECT * FROM goals WHERE company_id=? ORDER BY created_at, id",
                      json_pack("[s]", cid), &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_goal_from_row));
}

static int goals_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    goal_body g;
    if (!cid || parse_goal(req->app, cid, req->body, true, &g, err) < 0)
        return -1;
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    if (pc_db_exec_s(req->app->db,
                     "INSERT INTO goals(id,company_id,title,description,level,status,parent_id,"
                     "owner_agent_id,created_at,updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
                     json_pack("[s,s,s,s?,s,s,s?,s?,s,s]", id, cid, g.title, g.desc,
                               g.level ? g.level : "task", g.status ? g.status : "planned",
                               g.parent, g.owner, ts, ts),
                     NULL, err) < 0)
        return -1;
    pc_activity_log_steal(req->app, &req->actor, cid, "goal.created", "goal", id,
                          json_pack("{s:s}", "title", g.title), err);
    pc_error_clear(err);
    json_t *out = goal_get(req->app, id, err);
    return out ? pc_resp_json(resp, 201, out) : -1;
}

static json_t *goal_for_req(pc_req *req, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Goal not found", err);
    return id ? pc_access_checked(req, goal_get(req->app, id, err), err) : NULL;
}

static int goals_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *g = goal_for_req(req, err);
    return g ? pc_resp_json(resp, 200, g) : -1;
}

static int goals_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *cur = goal_for_req(req, err);
    if (!cur)
        return -1;
    const char *id = pc_json_str(cur, "id"), *cid = pc_json_str(cur, "companyId");
    json_t *b = req->body;
    goal_body g;
    if (parse_goal(req->app, cid, b, false, &g, err) < 0)
        return -1;
    if (g.parent && !strcmp(g.parent, id))
        return pc_error_set(err, 422, "A goal cannot be its own parent");
#define HAS(k) (json_object_get(b, k) != NULL)
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_exec_s(req->app->db,
                     "UPDATE goals SET title=COALESCE(?,title),"
                     "description=CASE WHEN ? THEN ? ELSE description END,"
                     "level=COALESCE(?,level),status=COALESCE(?,status),"
                     "parent_id=CASE WHEN ? THEN ? ELSE parent_id END,"
                     "owner_agent_id=CASE WHEN ? THEN ? ELSE owner_agent_id END,updated_at=? "
                     "WHERE id=?",
                     json_pack("[s?,b,s?,s?,s?,b,s?,b,s?,s,s]", g.title, HAS("description"), g.desc,
                               g.level, g.status, HAS("parentId"), g.parent, HAS("ownerAgentId"),
                               g.owner, ts, id),
                     NULL, err) < 0)
        return -1;
#undef HAS
    pc_activity_log_steal(req->app, &req->actor, cid, "goal.updated", "goal", id,
                          json_pack("{}"), err);
    pc_error_clear(err);
    json_t *out = goal_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

const pc_route pc_routes_goals[] = {
    {"GET", "/api/companies/:companyId/goals", goals_list, 0},
    {"POST", "/api/companies/:companyId/goals", goals_create, 0},
    {"GET", "/api/goals/:id", goals_get, 0},
    {"PATCH", "/api/goals/:id", goals_patch, 0},
    {NULL, NULL, NULL, 0},
};
