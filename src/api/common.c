/* The helpers declared in api.h that belong to no one resource. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

const char *pc_company_param(pc_req *req, pc_error_t *err)
{
    const char *cid = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!cid || pc_require_company_access(req, cid, err) < 0)
        return NULL;
    /* Existence only: the company row itself is not needed. */
    json_t *c = pc_db_query_one_s(req->app->db, "SELECT 1 AS x FROM companies WHERE id=?",
                                  json_pack("[s]", cid), err);
    if (!c) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "Company not found");
        return NULL;
    }
    json_decref(c);
    return cid;
}

json_t *pc_access_checked(const pc_req *req, json_t *obj, pc_error_t *err)
{
    if (obj && pc_require_company_access(req, pc_json_str(obj, "companyId"), err) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int pc_query_limit(const pc_req *req, int64_t dflt, int64_t max, pc_limit_mode mode, int64_t *out,
                   pc_error_t *err)
{
    *out = dflt;
    const char *l = pc_req_query(req, "limit");
    if (!l)
        return 0;
    char *end;
    long long n = strtoll(l, &end, 10);
    if (mode == PC_LIMIT_STRICT) {
        if (*end || n < 1 || n > max)
            return pc_error_validation(err, "limit", "limit must be an integer from 1 to %lld",
                                       (long long)max);
        *out = n;
    } else if (!*end && n > 0) {
        *out = n > max ? max : n;
    }
    return 0;
}

const char *pc_param_uuid(const pc_req *req, const char *name, const char *not_found,
                          pc_error_t *err)
{
    const char *v = pc_req_param(req, name);
    if (!v || !pc_uuid_valid(v)) {
        pc_error_set(err, 404, "%s", not_found);
        return NULL;
    }
    return v;
}

int pc_company_ref_check(pc_app *app, const char *table, const char *field, const char *id,
                         const char *company_id, const char *not_found, pc_error_t *err)
{
    if (!id)
        return 0;
    if (!pc_uuid_valid(id))
        return pc_error_validation(err, field, "Invalid uuid");
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT company_id FROM %s WHERE id=?", table);
    _cleanup_json_ json_t *row = pc_db_query_one_s(app->db, sql, json_pack("[s]", id), err);
    if (!row)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 422, "%s", not_found);
    if (strcmp(pc_json_str(row, "company_id"), company_id) != 0)
        return pc_error_set(err, 422, "%s", not_found);
    return 0;
}
