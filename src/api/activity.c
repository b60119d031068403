/* GET /api/companies/:companyId/activity — newest first, ?limit= (1..500). */
#include "api/api.h"
#include "lib/json.h"

static int pc_activity_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    int64_t limit;
    const char *cid = pc_company_param(req, err);
    if (!cid || pc_query_limit(req, 100, 500, PC_LIMIT_STRICT, &limit, err) < 0)
        return -1;
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
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_activity_from_row));
}

const pc_route pc_routes_activity[] = {
    {"GET", "/api/companies/:companyId/activity", pc_activity_list, 0},
    {NULL, NULL, NULL, 0},
};
