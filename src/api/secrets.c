/*
 * Company secrets (upstream's shape, values write-only):
 *
 *   GET    /api/companies/:companyId/secrets      metadata of every secret
 *   POST   /api/companies/:companyId/secrets      {name, value, description?}
 *   GET    /api/secrets/:id
 *   PATCH  /api/secrets/:id                       {name?, description?, value?}
 *   DELETE /api/secrets/:id                       409 while an environment uses it
 *   GET    /api/environments/:id/secret-refs      the secrets its config references
 *
 * Who may do what: reading metadata needs company access (the board, or any
 * agent of the company); writing and the secret-refs view need
 * `environments:manage` (the rule of the environment routes, since secrets
 * exist here to be referenced by environment configs).
 *
 * A value goes in through POST or PATCH and never comes out: responses,
 * activity details and logs carry names and ids only. It is sealed at rest
 * by model/secrets.c and opened only when a probe or a run resolves an
 * environment config that references it.
 */
#include <string.h>

#include "api/api.h"
#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "model/secrets.h"

#define SECRET_NAME_MAX 200
#define SECRET_DESC_MAX 5000
#define SECRET_VALUE_MAX (1024 * 1024)

static const char *const create_keys[] = {"name", "value", "description", NULL};
static const char *const patch_keys[] = {"name", "value", "description", NULL};

/* The secret of :id, checked for company access. */
static json_t *pc_secret_for_req(pc_req *req, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Secret not found", err);
    return id ? pc_access_checked(req, pc_secret_get(req->app->db, id, err), err) : NULL;
}

/* Environments of the company whose config references secret_id, as
 * [{id, name, driver}]. A config that holds the id anywhere counts: the
 * drivers' own view of their secret fields (pc_envcfg_secret_ids) needs the
 * provider's schema, which is unknown while its plugin is down, and a
 * secret must not be deletable just because a plugin is stopped. The id is
 * a uuid, so it carries no LIKE wildcard. */
static json_t *pc_secret_users(pc_app *app, const char *company_id, const char *secret_id,
                               pc_error_t *err)
{
    json_t *rows = NULL;
    char *like = pc_xasprintf("%%%s%%", secret_id);
    int rc = pc_db_query_s(app->db,
                           "SELECT id, name, driver FROM environments WHERE company_id=? AND "
                           "config LIKE ? ORDER BY created_at, id",
                           json_pack("[s,s]", company_id, like), &rows, err);
    free(like);
    return rc < 0 ? NULL : rows;
}

static int pc_secrets_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    json_t *list = pc_secret_list(req->app->db, cid, err);
    return list ? pc_resp_json(resp, 200, list) : -1;
}

static int pc_secrets_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid || pc_env_require_manage(req, cid, err) < 0)
        return -1;
    json_t *b = req->body;
    const char *name = NULL, *value = NULL, *desc = NULL;
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, create_keys, err) < 0 ||
        pc_json_check_string(b, "name", PC_J_REQUIRED, 1, SECRET_NAME_MAX, &name, err) < 0 ||
        pc_json_check_string(b, "value", PC_J_REQUIRED, 1, SECRET_VALUE_MAX, &value, err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, SECRET_DESC_MAX, &desc, err) < 0)
        return -1;
    char id[PC_SECRET_ID_LEN + 1];
    if (pc_secret_create(req->app->db, cid, name, desc, value, false, id, err) < 0) {
        if (strstr(err->msg, "UNIQUE")) {
            pc_error_clear(err);
            return pc_error_set(err, 409, "Secret already exists: %s", name);
        }
        return -1;
    }
    json_t *details = json_pack("{s:s,s:s}", "name", name, "provider", "local_encrypted");
    pc_activity_log(req->app, &req->actor, cid, "secret.created", "secret", id, details, err);
    json_decref(details);
    pc_error_clear(err);
    json_t *s = pc_secret_get(req->app->db, id, err);
    return s ? pc_resp_json(resp, 201, s) : -1;
}

static int pc_secrets_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *s = pc_secret_for_req(req, err);
    return s ? pc_resp_json(resp, 200, s) : -1;
}

static int pc_secrets_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *s = pc_secret_for_req(req, err);
    if (!s)
        return -1;
    const char *id = pc_json_str(s, "id"), *cid = pc_json_str(s, "companyId");
    json_t *b = req->body;
    const char *name = NULL, *value = NULL, *desc = NULL;
    int rc = -1;
    if (pc_env_require_manage(req, cid, err) < 0 || pc_json_check_is_object(b, err) < 0 ||
        pc_json_check_keys(b, patch_keys, err) < 0 ||
        pc_json_check_string(b, "name", 0, 1, SECRET_NAME_MAX, &name, err) < 0 ||
        pc_json_check_string(b, "value", 0, 1, SECRET_VALUE_MAX, &value, err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, SECRET_DESC_MAX, &desc, err) < 0)
        goto out;
    if (pc_secret_update(req->app->db, cid, id, name, json_object_get(b, "description") != NULL,
                         desc, value, err) < 0) {
        if (strstr(err->msg, "UNIQUE")) {
            pc_error_clear(err);
            pc_error_set(err, 409, "Secret already exists: %s", name);
        }
        goto out;
    }
    json_t *fresh = pc_secret_get(req->app->db, id, err);
    if (!fresh)
        goto out;
    /* Whether the value changed, never what it is. */
    json_t *details = json_pack("{s:O,s:b}", "name", json_object_get(fresh, "name"),
                                "valueRotated", value != NULL);
    pc_activity_log(req->app, &req->actor, cid, "secret.updated", "secret", id, details, err);
    json_decref(details);
    pc_error_clear(err);
    rc = pc_resp_json(resp, 200, fresh);
out:
    json_decref(s);
    return rc;
}

static int pc_secrets_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *s = pc_secret_for_req(req, err);
    if (!s)
        return -1;
    const char *id = pc_json_str(s, "id"), *cid = pc_json_str(s, "companyId");
    int rc = -1;
    json_t *users = NULL;
    if (pc_env_require_manage(req, cid, err) < 0)
        goto out;
    users = pc_secret_users(req->app, cid, id, err);
    if (!users)
        goto out;
    if (json_array_size(users) > 0) {
        /* The places that use it, so the caller knows what to change first. */
        char list[512] = "";
        size_t off = 0, i;
        json_t *u;
        json_array_foreach(users, i, u) {
            if (off < sizeof list)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s\"%s\" (%s)",
                                        i ? ", " : "", pc_json_str(u, "name"),
                                        pc_json_str(u, "id"));
        }
        pc_error_set(err, 409, "Secret is in use by environment%s %s",
                     json_array_size(users) == 1 ? "" : "s", list);
        goto out;
    }
    if (pc_secret_delete(req->app->db, cid, id, err) < 0)
        goto out;
    json_t *details = json_pack("{s:O}", "name", json_object_get(s, "name"));
    pc_activity_log(req->app, &req->actor, cid, "secret.deleted", "secret", id, details, err);
    json_decref(details);
    pc_error_clear(err);
    rc = pc_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
out:
    json_decref(users);
    json_decref(s);
    return rc;
}

static int pc_env_secret_refs(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Environment not found", err);
    if (!id)
        return -1;
    json_t *env = pc_access_checked(req, pc_env_load(req->app, id, err), err);
    if (!env)
        return -1;
    int rc = -1;
    json_t *ids = json_array(), *out = NULL;
    const char *cid = pc_json_str(env, "companyId");
    if (pc_env_require_manage(req, cid, err) < 0)
        goto done;
    pc_envcfg_secret_ids(req->app, pc_json_str(env, "driver"), json_object_get(env, "config"),
                         ids);
    out = json_array();
    size_t i;
    json_t *sid;
    json_array_foreach(ids, i, sid) {
        pc_error_t e = PC_ERROR_INIT;
        json_t *meta = pc_secret_get(req->app->db, json_string_value(sid), &e);
        if (meta && strcmp(pc_json_str(meta, "companyId"), cid) != 0) {
            json_decref(meta);
            meta = NULL;
        }
        if (!meta && e.status != 404 && pc_error_is_set(&e)) {
            pc_error_set(err, e.status, "%s", e.msg);
            pc_error_clear(&e);
            goto done;
        }
        pc_error_clear(&e);
        json_array_append_new(out, json_pack("{s:O,s:b,s:o}", "secretId", sid, "missing",
                                             meta == NULL, "secret", meta ? meta : json_null()));
    }
    rc = pc_resp_json(resp, 200, json_pack("{s:s,s:O}", "environmentId", id, "secretRefs", out));
done:
    json_decref(out);
    json_decref(ids);
    json_decref(env);
    return rc;
}

const pc_route pc_routes_secrets[] = {
    {"GET", "/api/companies/:companyId/secrets", pc_secrets_list, 0},
    {"POST", "/api/companies/:companyId/secrets", pc_secrets_create, 0},
    {"GET", "/api/secrets/:id", pc_secrets_get, 0},
    {"PATCH", "/api/secrets/:id", pc_secrets_patch, 0},
    {"DELETE", "/api/secrets/:id", pc_secrets_delete, 0},
    {"GET", "/api/environments/:id/secret-refs", pc_env_secret_refs, 0},
    {NULL, NULL, NULL, 0},
};
