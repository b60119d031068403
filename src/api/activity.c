/* GET /api/companies/:companyId/activity — newest first, ?limit= (1..500). */
#include "api/api.h"
#include "lib/json.h"

static int pc_activity_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!cid || pc_require_company_access(req, cid, err) < 0)
        return -1;
    json_t *c = pc_company_get(req->app, cid, err);
    if (!c)
        return -1;
    json_decref(c);
    long limit = 100;
    const char *ls = pc_req_query(req, "limit");
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (*end || limit < 1 || limit > 500)
            return pc_error_validation(err, "limit", "limit must be an integer from 1 to 500");
    }
    const char *entity_type = pc_req_query(req, "entityType");
    const char *entity_id = pc_req_query(req, "entityId");
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM activity_log WHERE company_id=? AND (? IS NULL OR "
                      "entity_type=?) AND (? IS NULL OR entity_id=?) ORDER BY created_at DESC, id "
                      "DESC LIMIT ?",
                      json_pack("[s,s?,s?,s?,s?,i]", cid, entity_type, entity_type, entity_id,
                                entity_id, (int)limit),
                      &rows, err) < 0)
        return -1;
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *a = json_object();
        pc_json_copy(a, "id", row, "id");
        pc_json_copy(a, "companyId", row, "company_id");
        pc_json_copy(a, "actorType", row, "actor_type");
        pc_json_copy(a, "actorId", row, "actor_id");
        pc_json_copy(a, "action", row, "action");
        pc_json_copy(a, "entityType", row, "entity_type");
        pc_json_copy(a, "entityId", row, "entity_id");
        pc_json_copy(a, "agentId", row, "agent_id");
        pc_json_copy(a, "runId", row, "run_id");
        pc_json_set_from_text(a, "details", row, "details");
        pc_json_copy(a, "createdAt", row, "created_at");
        json_array_append_new(out, a);
    }
    json_decref(rows);
    return pc_resp_json(resp, 200, out);
}

const pc_route pc_routes_activity[] = {
    {"GET", "/api/companies/:companyId/activity", pc_activity_list, 0},
    {NULL, NULL, NULL, 0},
};
