/* The helpers declared in api.h that belong to no one resource. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "lib/json.h"
#include "lib/util.h"

int pc_activity_log(pc_app *app, const pc_actor *actor, const char *company_id, const char *action,
                    const char *entity_type, const char *entity_id, json_t *details,
                    pc_error_t *err)
{
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    const char *actor_type = "system", *actor_id = "system", *agent_id = NULL, *run_id = NULL;
    if (actor && actor->type == PC_ACTOR_BOARD) {
        actor_type = "user";
        actor_id = actor->user_id;
    } else if (actor && actor->type == PC_ACTOR_AGENT) {
        actor_type = "agent";
        actor_id = actor->agent_id;
        agent_id = actor->agent_id;
        run_id = actor->run_id[0] ? actor->run_id : NULL;
    }
    return pc_db_exec_s(app->db,
                        "INSERT INTO activity_log(id,company_id,actor_type,actor_id,action,"
                        "entity_type,entity_id,agent_id,run_id,details,created_at) "
                        "VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                        json_pack("[s,s,s,s,s,s,s,s?,s?,O?,s]", id, company_id, actor_type, actor_id,
                                  action, entity_type, entity_id, agent_id, run_id, details, ts),
                        NULL, err);
}

int pc_activity_log_steal(pc_app *app, const pc_actor *actor, const char *company_id,
                          const char *action, const char *entity_type, const char *entity_id,
                          json_t *details, pc_error_t *err)
{
    int rc = pc_activity_log(app, actor, company_id, action, entity_type, entity_id, details, err);
    json_decref(details);
    return rc;
}

json_t *pc_changed_fields(json_t *body)
{
    json_t *changed = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) json_array_append_new(changed, json_string(k));
    return changed;
}

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

json_t *pc_row_load(pc_app *app, const char *sql, const char *id, json_t *(*from_row)(json_t *),
                    const char *not_found, pc_error_t *err)
{
    json_t *row = pc_db_query_one_s(app->db, sql, json_pack("[s]", id), err);
    if (!row) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "%s", not_found);
        return NULL;
    }
    json_t *obj = from_row(row);
    json_decref(row);
    return obj;
}

json_t *pc_rows_map(json_t *rows, json_t *(*from_row)(json_t *))
{
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(out, from_row(row));
    json_decref(rows);
    return out;
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

void pc_json_set_from_text(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_object_set_new(obj, key, pc_json_from_text(pc_json_str(row, column)));
}

void pc_json_copy(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    /* Keys are string literals (ASCII field names): skip the UTF-8 check. */
    json_object_set_nocheck(obj, key, v ? v : json_null());
}

void pc_json_copy_bool(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    json_object_set_new(obj, key, json_boolean(json_is_integer(v) && json_integer_value(v) != 0));
}
