/*
 * Environments routes (upstream PR-era paths, bodies, codes and texts):
 *
 *   GET    /api/companies/:companyId/environments          ?status=&driver=
 *   POST   /api/companies/:companyId/environments
 *   GET    /api/companies/:companyId/environments/capabilities
 *   POST   /api/companies/:companyId/environments/probe-config
 *   GET    /api/environments/:id
 *   PATCH  /api/environments/:id
 *   DELETE /api/environments/:id                        ?destroyReusableSandboxLeases=true
 *   GET    /api/environments/:id/delete-blast-radius
 *   POST   /api/environments/:id/probe
 *   GET    /api/environments/:id/leases                    ?status=
 *   GET    /api/environment-leases/:leaseId
 *
 * Who may do what: reading needs company access; every mutation, probe and
 * lease read needs `environments:manage`, which the board has (local_trusted
 * implicit board, board keys: instance admins here) and an agent of the same
 * company has when its permissions grant it — permissions["environments:manage"]
 * === true, a "grants" array naming it (as a string or {permissionKey}), or
 * canCreateAgents (upstream's CTO-like agents). Unprivileged readers get the
 * environment with config {}, metadata null and the *Redacted flags.
 *
 * Secrets never leave: config holds secret references only, activity details
 * carry change summaries (keys counted, never values) and probes resolve
 * secrets in memory for the duration of the probe.
 */
#include <string.h>

#include "api/agents.h"
#include "api/api.h"
#include "api/authz.h"
#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/secrets.h"
#include "lib/util.h"

static const char *const env_statuses[] = {"active", "archived", NULL};
static const char *const lease_statuses[] = {"active",  "released",        "expired", "failed",
                                             "retained", "pending_cleanup", NULL};


/* environments:manage for company_id (0/1), or -1 with err on a store fault. */
static int pc_env_can_manage(pc_req *req, const char *company_id, pc_error_t *err)
{
    return pc_actor_can(req, company_id, PC_PERM_ENVIRONMENTS_MANAGE, err);
}

int pc_env_require_manage(pc_req *req, const char *company_id, pc_error_t *err)
{
    if (pc_require_company_access(req, company_id, err) < 0)
        return -1;
    int can = pc_env_can_manage(req, company_id, err);
    if (can < 0)
        return -1;
    if (!can)
        return pc_error_set(err, 403, "Missing permission: environments:manage");
    return 0;
}

/* environments:manage for a change to an environment. A confined agent
 * cannot change environments at all even with the permission: rewriting
 * the one it runs in (its driver or config) would move it out of its own
 * confinement. */
static int pc_env_require_change(pc_req *req, const char *company_id, pc_error_t *err)
{
    if (pc_env_require_manage(req, company_id, err) < 0)
        return -1;
    int confined = pc_actor_confined(req, err);
    if (confined < 0)
        return -1;
    if (confined)
        return pc_error_set(err, 403, "A confined agent cannot change environments");
    return 0;
}

static json_t *pc_env_redact(json_t *env)
{
    json_object_set_new(env, "config", json_object());
    json_object_set_new(env, "metadata", json_null());
    json_object_set_new(env, "configRedacted", json_true());
    json_object_set_new(env, "metadataRedacted", json_true());
    return env;
}

/* The environment of :id, checked for company access. */
static json_t *pc_env_for_req(pc_req *req, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "id", "Environment not found", err);
    return id ? pc_access_checked(req, pc_env_load(req->app, id, err), err) : NULL;
}

static int pc_envs_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    const char *status = pc_req_query(req, "status"), *driver = pc_req_query(req, "driver");
    json_t *local = pc_env_ensure_local(req->app, cid, err);
    if (!local)
        return -1;
    json_decref(local);
    int can = pc_env_can_manage(req, cid, err);
    if (can < 0)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM environments WHERE company_id=? AND (? IS NULL OR status=?) "
                      "AND (? IS NULL OR driver=?) ORDER BY created_at, id",
                      json_pack("[s,s?,s?,s?,s?]", cid, status, status, driver, driver), &rows,
                      err) < 0)
        return -1;
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *e = pc_env_from_row(row);
        json_array_append_new(out, can ? e : pc_env_redact(e));
    }
    json_decref(rows);
    return pc_resp_json(resp, 200, out);
}

/* Upstream's capabilities shape, limited to what executes here: only the
 * adapters this daemon runs are listed, and each cell comes from the same
 * matrix selection writes are checked against (env/select.c). Providers
 * that isolate nothing carry "isolation": "none" and "testOnly": true. */
static int pc_envs_capabilities(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    json_t *providers = json_object();
    json_object_set_new(providers, "fake",
                        json_pack("{s:s,s:b,s:b,s:b,s:b,s:s,s:s}", "status", "unsupported",
                                  "supportsSavedProbe", 1, "supportsUnsavedProbe", 1,
                                  "supportsRunExecution", 0, "supportsReusableLeases", 0,
                                  "displayName", "Fake", "source", "builtin"));
    json_t *list = req->app->plugins ? pc_plugin_list_sandbox_providers(req->app->plugins) : NULL;
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        const char *key = pc_json_str(p, "driverKey");
        if (!key || !json_is_true(json_object_get(p, "running")) ||
            json_object_get(providers, key))
            continue;
        json_t *schema = json_object_get(p, "configSchema");
        json_t *desc = json_object_get(p, "description");
        const char *dn = pc_json_str(p, "displayName");
        bool test_only = pc_env_provider_test_only(key);
        json_t *info = json_pack("{s:s,s:b,s:b,s:b,s:b,s:s,s:s,s:s}", "status", "supported",
                                 "supportsSavedProbe", 1, "supportsUnsavedProbe", 1,
                                 "supportsRunExecution", 1, "supportsReusableLeases",
                                 json_is_true(json_object_get(p, "supportsReusableLeases")),
                                 "displayName", dn ? dn : key, "source", "plugin", "pluginKey",
                                 pc_json_str(p, "pluginKey") ? pc_json_str(p, "pluginKey") : "");
        json_object_set(info, "description", desc ? desc : json_null());
        json_object_set(info, "pluginId",
                        json_object_get(p, "pluginId") ? json_object_get(p, "pluginId")
                                                       : json_null());
        json_object_set(info, "configSchema", schema ? schema : json_null());
        if (test_only) {
            json_object_set_new(info, "isolation", json_string("none"));
            json_object_set_new(info, "testOnly", json_true());
        }
        json_object_set_new(providers, key, info);
    }
    json_decref(list);
    json_t *adapters = json_array();
    for (const char *const *a = pc_env_exec_adapters; *a; a++) {
        json_t *sp = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(providers, k, v) {
            bool ok = pc_env_adapter_provider_ok(*a) &&
                      !strcmp(pc_json_str(v, "status"), "supported");
            json_object_set_new(sp, k, json_string(ok ? "supported" : "unsupported"));
        }
        json_t *ds = json_object();
        for (const pc_env_driver *const *d = pc_env_drivers(); *d; d++)
            json_object_set_new(ds, (*d)->name,
                                json_string(pc_env_adapter_driver_ok(*a, *d) ? "supported"
                                                                             : "unsupported"));
        json_array_append_new(adapters, json_pack("{s:s,s:o,s:o}", "adapterType", *a, "drivers",
                                                  ds, "sandboxProviders", sp));
    }
    json_t *drivers = json_object();
    for (const pc_env_driver *const *d = pc_env_drivers(); *d; d++)
        json_object_set_new(drivers, (*d)->name,
                            json_string((*d)->runs ? "supported" : "unsupported"));
    json_t *out = json_pack("{s:o,s:o,s:o}", "adapters", adapters, "drivers", drivers,
                            "sandboxProviders", providers);
    return pc_resp_json(resp, 200, out);
}

static const char *const env_body_keys[] = {"name",   "description", "driver", "status",
                                            "config", "metadata",    NULL};

typedef struct pc_env_body {
    const char *name, *description, *driver, *status;
    json_t *config, *metadata;
    bool has_description, has_metadata, has_config;
} pc_env_body;

/* body.driver, when given, must name a driver of the table; the 400 lists
 * them the way an enum check would. */
static int pc_env_check_driver(json_t *b, const char **out, pc_error_t *err)
{
    const char *s = NULL;
    if (pc_json_check_string(b, "driver", 0, 0, 256, &s, err) < 0)
        return -1;
    if (!s || pc_env_driver_find(s)) {
        *out = s;
        return 0;
    }
    char list[512] = "";
    size_t off = 0;
    const pc_env_driver *const *d = pc_env_drivers();
    for (size_t i = 0; d[i] && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s'%s'", i ? " | " : "",
                                d[i]->name);
    return pc_error_validation(err, "driver", "Invalid enum value. Expected %s", list);
}

static int pc_env_parse_body(json_t *b, bool name_required, pc_env_body *o, pc_error_t *err)
{
    memset(o, 0, sizeof *o);
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, env_body_keys, err) < 0 ||
        pc_json_check_string(b, "name", name_required ? PC_J_REQUIRED : 0, 1, 200, &o->name,
                             err) < 0 ||
        pc_json_check_string(b, "description", PC_J_NULLABLE, 0, 5000, &o->description, err) <
            0 ||
        pc_env_check_driver(b, &o->driver, err) < 0 ||
        pc_json_check_enum(b, "status", 0, env_statuses, &o->status, err) < 0 ||
        pc_json_check_object(b, "config", PC_J_NULLABLE, &o->config, err) < 0 ||
        pc_json_check_object(b, "metadata", PC_J_NULLABLE, &o->metadata, err) < 0)
        return -1;
    if (o->config && json_is_null(o->config))
        o->config = NULL;
    o->has_config = o->config != NULL;
    o->has_description = json_object_get(b, "description") != NULL;
    o->has_metadata = json_object_get(b, "metadata") != NULL;
    if (o->metadata && json_is_null(o->metadata))
        o->metadata = NULL;
    return 0;
}

static int pc_envs_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid || pc_env_require_change(req, cid, err) < 0)
        return -1;
    pc_env_body b;
    if (pc_env_parse_body(req->body, true, &b, err) < 0)
        return -1;
    const char *driver = b.driver ? b.driver : pc_env_driver_local.name;
    const char *status = b.status ? b.status : "active";
    const pc_env_driver *drv = pc_env_driver_find(driver);
    if (drv && drv->one_per_company) {
        json_t *row = pc_db_query_one_s(
            req->app->db, "SELECT id FROM environments WHERE company_id=? AND driver=?",
            json_pack("[s,s]", cid, driver), err);
        if (row) {
            json_decref(row);
            return pc_error_set(err, 409, "Only one %s environment is allowed per company",
                                driver);
        }
        if (pc_error_is_set(err))
            return -1;
    }
    pc_envcfg_ctx cc;
    pc_envcfg_ctx_init(&cc, req->app, cid, b.name, PC_ENVCFG_PERSIST);
    json_t *config = pc_envcfg_normalize(&cc, driver, b.config, NULL, err);
    if (!config) {
        pc_envcfg_ctx_abort(&cc);
        return -1;
    }
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    int rc = pc_db_exec_s(req->app->db,
                          "INSERT INTO environments(id,company_id,name,description,driver,status,"
                          "config,metadata,created_at,updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
                          json_pack("[s,s,s,s?,s,s,O,O?,s,s]", id, cid, b.name, b.description,
                                    driver, status, config, b.metadata, ts, ts),
                          NULL, err);
    json_decref(config);
    if (rc < 0) {
        pc_envcfg_ctx_abort(&cc);
        if (strstr(err->msg, "UNIQUE")) {
            pc_error_clear(err);
            return pc_error_set(err, 409, "Only one %s environment is allowed per company",
                                driver);
        }
        return -1;
    }
    pc_envcfg_ctx_commit(&cc);
    json_t *details = json_pack("{s:s,s:s,s:s}", "name", b.name, "driver", driver, "status",
                                status);
    pc_activity_log(req->app, &req->actor, cid, "environment.created", "environment", id, details,
                    err);
    json_decref(details);
    pc_error_clear(err);
    json_t *env = pc_env_load(req->app, id, err);
    return env ? pc_resp_json(resp, 201, env) : -1;
}

static int pc_envs_probe_config(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid || pc_env_require_manage(req, cid, err) < 0)
        return -1;
    pc_env_body b;
    if (pc_env_parse_body(req->body, false, &b, err) < 0)
        return -1;
    const char *driver = b.driver ? b.driver : pc_env_driver_local.name;
    pc_envcfg_ctx cc;
    pc_envcfg_ctx_init(&cc, req->app, cid, b.name, PC_ENVCFG_PROBE);
    json_t *config = pc_envcfg_normalize(&cc, driver, b.config, NULL, err);
    pc_envcfg_ctx_abort(&cc); /* PROBE mode creates nothing; this only frees */
    if (!config)
        return -1;
    json_t *resolved = pc_envcfg_resolve(req->app, cid, driver, config, err);
    json_decref(config);
    if (!resolved)
        return -1;
    json_t *out = pc_env_probe(req->app, cid, PC_ENV_UNSAVED_ID, driver, resolved, err);
    json_decref(resolved);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int pc_envs_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_env_for_req(req, err);
    if (!env)
        return -1;
    int can = pc_env_can_manage(req, pc_json_str(env, "companyId"), err);
    if (can < 0) {
        json_decref(env);
        return -1;
    }
    return pc_resp_json(resp, 200, can ? env : pc_env_redact(env));
}

static int pc_envs_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_env_for_req(req, err);
    if (!env)
        return -1;
    const char *id = pc_json_str(env, "id"), *cid = pc_json_str(env, "companyId");
    pc_env_body b;
    int rc = -1;
    json_t *config = NULL;
    pc_envcfg_ctx cc;
    memset(&cc, 0, sizeof cc);
    if (pc_env_require_change(req, cid, err) < 0 || pc_env_parse_body(req->body, false, &b, err) < 0)
        goto out;
    const char *old_driver = pc_json_str(env, "driver");
    const char *driver = b.driver ? b.driver : old_driver;
    bool driver_changed = strcmp(driver, old_driver) != 0;
    const pc_env_driver *drv = pc_env_driver_find(driver);
    if (driver_changed && drv && drv->one_per_company) {
        json_t *row = pc_db_query_one_s(
            req->app->db, "SELECT id FROM environments WHERE company_id=? AND driver=? AND id<>?",
            json_pack("[s,s,s]", cid, driver, id), err);
        if (row) {
            json_decref(row);
            pc_error_set(err, 409, "Only one %s environment is allowed per company", driver);
            goto out;
        }
        if (pc_error_is_set(err))
            goto out;
    }
    json_t *stored = json_object_get(env, "config");
    pc_envcfg_ctx_init(&cc, req->app, cid, b.name ? b.name : pc_json_str(env, "name"),
                       PC_ENVCFG_PERSIST);
    if (b.has_config || driver_changed) {
        /* Switching drivers starts from an empty config: the old driver's
         * fields mean nothing to the new one. Its secrets go with it. */
        config = pc_envcfg_normalize(&cc, driver, b.config, driver_changed ? NULL : stored, err);
        if (!config) {
            pc_envcfg_ctx_abort(&cc);
            goto out;
        }
        if (driver_changed) {
            json_t *old_ids = json_array();
            pc_envcfg_secret_ids(req->app, old_driver, stored, old_ids);
            json_array_extend(cc.obsolete, old_ids);
            json_decref(old_ids);
        }
    }
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_exec_s(req->app->db,
                     "UPDATE environments SET name=COALESCE(?,name),"
                     "description=CASE WHEN ? THEN ? ELSE description END,"
                     "driver=?, status=COALESCE(?,status),"
                     "config=CASE WHEN ? THEN ? ELSE config END,"
                     "metadata=CASE WHEN ? THEN ? ELSE metadata END, updated_at=? WHERE id=?",
                     json_pack("[s?,b,s?,s,s?,b,O?,b,O?,s,s]", b.name, b.has_description,
                               b.description, driver, b.status, config != NULL, config,
                               b.has_metadata, b.metadata, ts, id),
                     NULL, err) < 0) {
        pc_envcfg_ctx_abort(&cc);
        goto out;
    }
    pc_envcfg_ctx_commit(&cc);
    /* Upstream's redacted change summary: which fields, never their values. */
    json_t *changed = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(req->body, k, v) json_array_append_new(changed, json_string(k));
    json_t *details = json_pack(
        "{s:o,s:b,s:i,s:b,s:i}", "changedFields", changed, "configChanged",
        b.has_config || driver_changed, "configTopLevelKeyCount",
        b.config ? (int)json_object_size(b.config) : 0, "metadataChanged", b.has_metadata,
        "metadataTopLevelKeyCount", b.metadata ? (int)json_object_size(b.metadata) : 0);
    if (b.status)
        json_object_set_new(details, "status", json_string(b.status));
    if (driver_changed)
        json_object_set_new(details, "driver", json_string(driver));
    pc_activity_log(req->app, &req->actor, cid, "environment.updated", "environment", id, details,
                    err);
    json_decref(details);
    pc_error_clear(err);
    json_t *fresh = pc_env_load(req->app, id, err);
    if (fresh)
        rc = pc_resp_json(resp, 200, fresh);
out:
    json_decref(config);
    json_decref(env);
    return rc;
}

/* Rows of `table` whose JSON `column` selects env_id as its
 * "environmentId": issues (execution_workspace_settings), projects
 * (execution_workspace_policy) and execution workspaces (config). Counts
 * them, and with `clear` removes the selection so their runs fall back to
 * the next link of the chain. The match is done here rather than with JSON
 * SQL functions so the statement stays portable across store backends;
 * table and column are constants of this file. Returns the count or -1. */
static int pc_env_selection_scan(pc_app *app, const char *table, const char *column,
                                 const char *company_id, const char *env_id, bool clear,
                                 pc_error_t *err)
{
    json_t *rows = NULL;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id, %s AS sel FROM %s WHERE company_id=? AND %s LIKE ?",
             column, table, column);
    char *like = pc_xasprintf("%%%s%%", env_id);
    int rc = pc_db_query_s(app->db, sql, json_pack("[s,s]", company_id, like), &rows, err);
    free(like);
    if (rc < 0)
        return -1;
    snprintf(sql, sizeof sql, "UPDATE %s SET %s=? WHERE id=?", table, column);
    int n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *j = pc_json_from_text(pc_json_str(row, "sel"));
        const char *sel = pc_json_str(j, "environmentId");
        if (sel && !strcmp(sel, env_id)) {
            n++;
            json_object_del(j, "environmentId");
            if (clear && pc_db_exec_s(app->db, sql, json_pack("[O,s]", j, pc_json_str(row, "id")),
                                      NULL, err) < 0)
                n = -1;
        }
        json_decref(j);
        if (n < 0)
            break;
    }
    json_decref(rows);
    return n;
}

/* Every selection of env_id in the company, cleared (upstream's delete). */
static int pc_env_clear_selections(pc_app *app, const char *company_id, const char *env_id,
                                         pc_error_t *err)
{
    if (pc_env_selection_scan(app, "issues", "execution_workspace_settings", company_id, env_id,
                              true, err) < 0 ||
        pc_env_selection_scan(app, "projects", "execution_workspace_policy", company_id, env_id,
                              true, err) < 0 ||
        pc_env_selection_scan(app, "execution_workspaces", "config", company_id, env_id, true,
                              err) < 0)
        return -1;
    return 0;
}

static json_int_t pc_env_count(pc_app *app, const char *sql, const char *id, pc_error_t *err)
{
    json_t *row = pc_db_query_one_s(app->db, sql, json_pack("[s]", id), err);
    json_int_t n = row ? json_integer_value(json_object_get(row, "n")) : -1;
    json_decref(row);
    return n;
}

/* Upstream's delete blast radius for env: what selects it, what runs on it,
 * and why a delete would be refused (deleteBlockedReasons). Leases held by
 * runs always block; retained reusable sandboxes and pending cleanups block
 * unless the delete destroys them (?destroyReusableSandboxLeases=true). */
static json_t *pc_env_blast_radius(pc_app *app, json_t *env, pc_error_t *err)
{
    const char *id = pc_json_str(env, "id"), *cid = pc_json_str(env, "companyId");
    json_int_t agents = pc_env_count(
        app, "SELECT COUNT(*) AS n FROM agents WHERE default_environment_id=?", id, err);
    json_int_t active = pc_env_count(app,
                                     "SELECT COUNT(*) AS n FROM environment_leases WHERE "
                                     "environment_id=? AND status='active'",
                                     id, err);
    json_int_t retained = pc_env_count(app,
                                       "SELECT COUNT(*) AS n FROM environment_leases WHERE "
                                       "environment_id=? AND status='retained'",
                                       id, err);
    json_int_t pending = pc_env_count(app,
                                      "SELECT COUNT(*) AS n FROM environment_leases WHERE "
                                      "environment_id=? AND status='pending_cleanup'",
                                      id, err);
    int issues = pc_env_selection_scan(app, "issues", "execution_workspace_settings", cid, id,
                                       false, err);
    int projects = pc_env_selection_scan(app, "projects", "execution_workspace_policy", cid, id,
                                         false, err);
    int ews = pc_env_selection_scan(app, "execution_workspaces", "config", cid, id, false, err);
    if (agents < 0 || active < 0 || retained < 0 || pending < 0 || issues < 0 || projects < 0 ||
        ews < 0)
        return NULL;
    json_t *secret_ids = json_array();
    pc_envcfg_secret_ids(app, pc_json_str(env, "driver"), json_object_get(env, "config"),
                         secret_ids);
    json_t *reasons = json_array();
    if (active > 0)
        json_array_append_new(reasons, json_string("active_leases"));
    if (retained > 0)
        json_array_append_new(reasons, json_string("reusable_sandbox_leases"));
    if (pending > 0)
        json_array_append_new(reasons, json_string("pending_cleanup_leases"));
    json_t *out = json_pack(
        "{s:s,s:b,s:b,s:o,s:{s:b,s:b,s:I,s:i,s:i,s:i,s:i},s:{s:I,s:I,s:I,s:i,s:b}}",
        "environmentId", id, "canDelete", json_array_size(reasons) == 0,
        "canDeleteWithDestroyReusableSandboxLeases", active == 0, "deleteBlockedReasons", reasons,
        "staticReferences", "isManagedLocal", 0, "isInstanceDefault", 0, "agentDefaultCount",
        (json_int_t)agents, "executionWorkspaceSelectionCount", ews, "issueSelectionCount", issues,
        "projectSelectionCount", projects, "secretBindingCount", (int)json_array_size(secret_ids),
        "activeRuntimeUse", "activeLeaseCount", (json_int_t)active, "reusableLeaseCount",
        (json_int_t)retained, "pendingCleanupLeaseCount", (json_int_t)pending,
        "activeCustomImageSetupSessionCount", 0, "hasActiveRuntimeUse",
        active + retained + pending > 0);
    json_decref(secret_ids);
    return out;
}

static int pc_envs_blast_radius(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_env_for_req(req, err);
    if (!env)
        return -1;
    json_t *out = NULL;
    if (pc_env_require_manage(req, pc_json_str(env, "companyId"), err) == 0)
        out = pc_env_blast_radius(req->app, env, err);
    json_decref(env);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

/* A 409 carrying the blast radius's deleteBlockedReasons in its details. */
static int pc_env_delete_blocked(json_t *radius, const char *msg, pc_error_t *err)
{
    pc_error_set(err, 409, "%s", msg);
    pc_error_details(err, json_pack("{s:O,s:O}", "deleteBlockedReasons",
                                    json_object_get(radius, "deleteBlockedReasons"),
                                    "activeRuntimeUse",
                                    json_object_get(radius, "activeRuntimeUse")));
    return -1;
}

static int pc_envs_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_env_for_req(req, err);
    if (!env)
        return -1;
    const char *id = pc_json_str(env, "id"), *cid = pc_json_str(env, "companyId");
    int rc = -1, destroyed = 0;
    json_t *secret_ids = json_array(), *radius = NULL;
    if (pc_env_require_change(req, cid, err) < 0)
        goto out;
    const char *flag = pc_req_query(req, "destroyReusableSandboxLeases");
    if (flag && strcmp(flag, "true") != 0 && strcmp(flag, "false") != 0) {
        pc_error_validation(err, "destroyReusableSandboxLeases", "Expected true or false");
        goto out;
    }
    bool destroy = flag && !strcmp(flag, "true");
    if (!(radius = pc_env_blast_radius(req->app, env, err)))
        goto out;
    json_t *use = json_object_get(radius, "activeRuntimeUse");
    json_int_t n = json_integer_value(json_object_get(use, "activeLeaseCount"));
    if (n > 0) {
        char *msg = pc_xasprintf("Environment has %lld active lease%s; release them first",
                                 (long long)n, n == 1 ? "" : "s");
        pc_env_delete_blocked(radius, msg, err);
        free(msg);
        goto out;
    }
    if (!destroy && !json_is_true(json_object_get(radius, "canDelete"))) {
        pc_env_delete_blocked(radius,
                              "Environment has reusable sandbox leases; delete with "
                              "destroyReusableSandboxLeases=true to destroy them",
                              err);
        goto out;
    }
    if (destroy) {
        int left = 0;
        destroyed = pc_env_destroy_reusable_leases(req->app, cid, id, NULL,
                                                   "environment deleted", &left, err);
        if (destroyed < 0)
            goto out;
        if (left > 0) {
            json_decref(radius);
            if (!(radius = pc_env_blast_radius(req->app, env, err)))
                goto out;
            char *msg = pc_xasprintf("cannot destroy %d reusable sandbox lease%s; the cleanup "
                                     "is retried",
                                     left, left == 1 ? "" : "s");
            pc_env_delete_blocked(radius, msg, err);
            free(msg);
            goto out;
        }
    }
    pc_envcfg_secret_ids(req->app, pc_json_str(env, "driver"), json_object_get(env, "config"),
                         secret_ids);
    if (pc_db_begin(req->app->db, err) < 0)
        goto out;
    if (pc_env_clear_selections(req->app, cid, id, err) < 0 ||
        pc_db_exec_s(req->app->db,
                     "UPDATE agents SET default_environment_id=NULL WHERE default_environment_id=?",
                     json_pack("[s]", id), NULL, err) < 0 ||
        pc_db_exec_s(req->app->db, "DELETE FROM environments WHERE id=?", json_pack("[s]", id),
                     NULL, err) < 0 ||
        pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        goto out;
    }
    /* Secrets the config created go only after the row: a failure above
     * must not leave an environment pointing at a deleted key. Secrets made
     * through the secrets API stay; they may serve other environments. */
    size_t i;
    json_t *sid;
    json_array_foreach(secret_ids, i, sid) {
        pc_error_t e = PC_ERROR_INIT;
        if (pc_secret_delete_managed(req->app->db, cid, json_string_value(sid), &e) < 0)
            pc_warn("cannot delete secret %s of environment %s: %s", json_string_value(sid), id,
                    e.msg);
        pc_error_clear(&e);
    }
    json_t *details = json_pack("{s:O,s:O,s:O}", "name", json_object_get(env, "name"), "driver",
                                json_object_get(env, "driver"), "status",
                                json_object_get(env, "status"));
    pc_activity_log(req->app, &req->actor, cid, "environment.deleted", "environment", id, details,
                    err);
    json_decref(details);
    pc_error_clear(err);
    json_t *body = json_deep_copy(env);
    json_object_set_new(body, "destroyedReusableSandboxLeaseCount", json_integer(destroyed));
    rc = pc_resp_json(resp, 200, body);
out:
    json_decref(radius);
    json_decref(secret_ids);
    json_decref(env);
    return rc;
}

static int pc_envs_probe(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_env_for_req(req, err);
    if (!env)
        return -1;
    const char *id = pc_json_str(env, "id"), *cid = pc_json_str(env, "companyId");
    const char *driver = pc_json_str(env, "driver");
    int rc = -1;
    json_t *resolved = NULL, *out = NULL;
    if (pc_env_require_manage(req, cid, err) < 0)
        goto done;
    if (req->body && !json_is_object(req->body)) {
        pc_json_check_is_object(req->body, err);
        goto done;
    }
    resolved = pc_envcfg_resolve(req->app, cid, driver, json_object_get(env, "config"), err);
    if (!resolved && err->status >= 500)
        goto done;
    if (!resolved) {
        /* A secret that went missing makes the environment unusable, which
         * is what a probe reports, not a failed request. */
        out = json_pack("{s:b,s:s,s:s,s:{}}", "ok", 0, "driver", driver, "summary", err->msg,
                        "details");
        pc_error_clear(err);
    } else {
        out = pc_env_probe(req->app, cid, id, driver, resolved, err);
    }
    if (!out)
        goto done;
    json_t *details = json_pack("{s:s,s:O}", "driver", driver, "ok", json_object_get(out, "ok"));
    pc_activity_log(req->app, &req->actor, cid, "environment.probed", "environment", id, details,
                    err);
    json_decref(details);
    pc_error_clear(err);
    rc = pc_resp_json(resp, 200, out);
    out = NULL;
done:
    json_decref(out);
    json_decref(resolved);
    json_decref(env);
    return rc;
}

static int pc_envs_leases(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_env_for_req(req, err);
    if (!env)
        return -1;
    int rc = -1;
    const char *status = pc_req_query(req, "status");
    json_t *rows = NULL;
    if (pc_env_require_manage(req, pc_json_str(env, "companyId"), err) < 0)
        goto out;
    if (status) {
        bool ok = false;
        for (const char *const *s = lease_statuses; *s; s++)
            if (!strcmp(*s, status))
                ok = true;
        if (!ok) {
            pc_error_validation(err, "status", "Invalid lease status");
            goto out;
        }
    }
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM environment_leases WHERE environment_id=? AND (? IS NULL OR "
                      "status=?) ORDER BY acquired_at DESC, id DESC",
                      json_pack("[s,s?,s?]", pc_json_str(env, "id"), status, status), &rows,
                      err) < 0)
        goto out;
    json_t *list = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(list, pc_lease_from_row(row));
    rc = pc_resp_json(resp, 200, list);
out:
    json_decref(rows);
    json_decref(env);
    return rc;
}

static int pc_envs_lease(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "leaseId", "Environment lease not found", err);
    if (!id)
        return -1;
    json_t *lease = pc_lease_load(req->app, id, err);
    if (!lease)
        return -1;
    if (pc_env_require_manage(req, pc_json_str(lease, "companyId"), err) < 0) {
        json_decref(lease);
        return -1;
    }
    return pc_resp_json(resp, 200, lease);
}

const pc_route pc_routes_environments[] = {
    {"GET", "/api/companies/:companyId/environments", pc_envs_list, 0},
    {"POST", "/api/companies/:companyId/environments", pc_envs_create, 0},
    {"GET", "/api/companies/:companyId/environments/capabilities", pc_envs_capabilities, 0},
    {"POST", "/api/companies/:companyId/environments/probe-config", pc_envs_probe_config, 0},
    {"GET", "/api/environments/:id", pc_envs_get, 0},
    {"PATCH", "/api/environments/:id", pc_envs_patch, 0},
    {"DELETE", "/api/environments/:id", pc_envs_delete, 0},
    {"GET", "/api/environments/:id/delete-blast-radius", pc_envs_blast_radius, 0},
    {"POST", "/api/environments/:id/probe", pc_envs_probe, 0},
    {"GET", "/api/environments/:id/leases", pc_envs_leases, 0},
    {"GET", "/api/environment-leases/:leaseId", pc_envs_lease, 0},
    {"POST", "/api/environments/:id/test-lease", pc_env_hook_lease, 0},
    {"POST", "/api/environment-leases/:leaseId/test-execute", pc_env_hook_execute, 0},
    {"POST", "/api/environment-leases/:leaseId/test-release", pc_env_hook_release, 0},
    {"POST", "/api/environments/:id/test-destroy-reusable", pc_env_hook_destroy_reusable, 0},
    {"POST", "/api/environment-leases/:leaseId/test-cancel", pc_env_hook_cancel, 0},
    {NULL, NULL, NULL, 0},
};
