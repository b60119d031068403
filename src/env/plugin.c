/*
 * The plugin driver: environments served by an environment driver a plugin
 * declares in its manifest (environmentDrivers[] with kind
 * "environment_driver"; a sandbox_provider entry is reachable this way too,
 * as upstream allows). The host drives it through the same environment RPCs
 * as a sandbox provider, with {driverKey, companyId, environmentId, issueId,
 * config: driverConfig} as base params.
 *
 * Config: strict {pluginKey, driverKey, driverConfig (object, {})}. The
 * plugin validates driverConfig (environmentValidateConfig) whenever a
 * config is given, and its normalizedConfig is what we store.
 *
 * Resolution (upstream's texts, all 422): the plugin must be installed,
 * enabled and not parked in error ("... is not ready."), must declare the
 * driverKey ("Plugin \"k\" does not declare environment driver \"d\".") and
 * its worker must be running ("... has no running worker."). A worker that
 * is still starting is waited for, as for sandbox providers.
 *
 * Leases are ephemeral. The row records provider "plugin:<pluginKey>:<driverKey>"
 * and metadata {providerMetadata, driver, pluginId, pluginKey, driverKey},
 * which is also the lease metadata the plugin gets back on every later call.
 * Release and destroy use the environment's current driverConfig when it
 * still names the same plugin driver, else {} (upstream does the same).
 */
#include <string.h>
#include <time.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "plugin/registry.h"

/* The plugin that serves (plugin_key, driver_key). */
typedef struct pc_pdrv {
    char plugin_id[64];
} pc_pdrv;

static char *pc_pdrv_label(const char *pk, const char *dk)
{
    return pc_xasprintf("%s:%s", pk ? pk : "unknown", dk ? dk : "unknown");
}

/* Resolves a running plugin that declares driver_key; 422 with upstream's
 * texts otherwise. */
static int pc_pdrv_resolve(pc_app *app, const char *pk, const char *dk, pc_pdrv *out,
                           pc_error_t *err)
{
    memset(out, 0, sizeof *out);
    char *label = pc_pdrv_label(pk, dk);
    pc_error_t e = PC_ERROR_INIT;
    json_t *row = pk ? pc_plugin_row_get(app->db, pk, &e) : NULL;
    pc_error_clear(&e);
    json_t *rec = NULL;
    int rc = -1;
    for (int i = 0; row && i < 160; i++) {
        json_decref(rec);
        rec = pc_plugin_record(row, app->plugins);
        const char *state = pc_json_str(pc_json_obj(rec, "worker"), "state");
        /* A worker that is still starting (daemon start, restart after a
         * crash) is worth waiting for: its initialize is bounded (15 s). */
        if (!app->plugins || !state || strcmp(state, "starting") != 0)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    const char *status = rec ? pc_json_str(rec, "status") : NULL;
    if (!rec || !status || !strcmp(status, "disabled") || !strcmp(status, "error")) {
        pc_error_set(err, 422, "Plugin environment driver \"%s\" is not ready.", label);
        goto done;
    }
    json_t *declared = NULL, *d;
    size_t i;
    json_array_foreach(json_object_get(pc_json_obj(rec, "manifestJson"), "environmentDrivers"), i,
                       d) {
        const char *k = pc_json_str(d, "driverKey");
        if (k && dk && !strcmp(k, dk))
            declared = d;
    }
    if (!declared) {
        pc_error_set(err, 422, "Plugin \"%s\" does not declare environment driver \"%s\".", pk,
                     dk ? dk : "");
        goto done;
    }
    const char *state = pc_json_str(pc_json_obj(rec, "worker"), "state");
    if (!app->plugins || !state || strcmp(state, "running") != 0) {
        pc_error_set(err, 422, "Plugin environment driver \"%s\" has no running worker.", label);
        goto done;
    }
    snprintf(out->plugin_id, sizeof out->plugin_id, "%s", pc_json_str(rec, "id"));
    rc = 0;
done:
    json_decref(rec);
    json_decref(row);
    free(label);
    return rc;
}

/* ------------------------------------------------------------- config */

static json_t *pc_plugin_normalize_config(json_t *input, pc_error_t *err)
{
    static const char *const keys[] = {"pluginKey", "driverKey", "driverConfig", NULL};
    json_t *m = input ? input : json_object();
    json_t *out = NULL;
    const char *pk = pc_json_str(m, "pluginKey"), *dk = pc_json_str(m, "driverKey");
    json_t *dc = json_object_get(m, "driverConfig");
    if (!pk || !*pk)
        pc_error_set(err, 422, "pluginKey: Invalid input: expected string");
    else if (!pc_envcfg_key_valid(dk))
        pc_error_set(err, 422,
                     "Environment driver key must start with a lowercase alphanumeric and contain "
                     "only lowercase letters, digits, dots, hyphens, or underscores");
    else if (dc && !json_is_object(dc))
        pc_error_set(err, 422, "driverConfig: Invalid input: expected record");
    else if (pc_envcfg_unknown_key(m, keys, err) == 0)
        out = json_pack("{s:s,s:s,s:o}", "pluginKey", pk, "driverKey", dk, "driverConfig",
                        dc ? json_deep_copy(dc) : json_object());
    if (!input)
        json_decref(m);
    return out;
}

/* The plugin validates driverConfig and may normalize it. */
static int pc_plugin_validate(pc_app *app, json_t *cfg, pc_error_t *err)
{
    const char *pk = pc_json_str(cfg, "pluginKey"), *dk = pc_json_str(cfg, "driverKey");
    pc_pdrv pd;
    if (pc_pdrv_resolve(app, pk, dk, &pd, err) < 0)
        return -1;
    json_t *dc = json_object_get(cfg, "driverConfig");
    json_t *params = json_pack("{s:s,s:o}", "driverKey", dk, "config",
                               json_is_object(dc) ? json_incref(dc) : json_object());
    json_t *result = NULL;
    pc_error_t e = PC_ERROR_INIT;
    int rc = -1;
    char *label = pc_pdrv_label(pk, dk);
    if (pc_lease_rpc(app, NULL, pk, "environmentValidateConfig", params, 0, &result, &e) < 0) {
        if (e.rpc_code == PC_RPC_METHOD_NOT_IMPLEMENTED || e.rpc_code == PC_RPC_METHOD_NOT_FOUND) {
            /* A driver without a validator accepts its config as is. */
            rc = 0;
        } else {
            pc_error_set(err, 422, "Plugin environment driver \"%s\" could not validate its "
                                   "config: %s", label, e.msg);
        }
        pc_error_clear(&e);
        goto done;
    }
    if (pc_envcfg_plugin_verdict(result, "Plugin environment driver", label, err) < 0)
        goto done;
    json_t *norm = json_object_get(result, "normalizedConfig");
    if (json_is_object(norm))
        json_object_set(cfg, "driverConfig", norm);
    rc = 0;
done:
    free(label);
    json_decref(params);
    json_decref(result);
    return rc;
}

/* A config given replaces the stored one whole (no merge) and goes through
 * the plugin's validator; a stored one (a PATCH of other fields) is only
 * re-checked for shape, so a stopped plugin does not block a rename. */
static json_t *pc_plugin_normalize(pc_envcfg_ctx *c, json_t *input, json_t *base,
                                   pc_error_t *err)
{
    json_t *out = pc_plugin_normalize_config(input ? input : base, err);
    if (out && input && pc_plugin_validate(c->app, out, err) < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* -------------------------------------------------------------- probe */

/* Base params of every driver hook. */
static json_t *pc_pdrv_params(const char *dk, const char *company_id, const char *env_id,
                              const char *issue_id, json_t *driver_config)
{
    return json_pack("{s:s,s:s,s:s,s:s?,s:O}", "driverKey", dk, "companyId", company_id,
                     "environmentId", env_id, "issueId", issue_id && *issue_id ? issue_id : NULL,
                     "config", json_is_object(driver_config) ? driver_config : json_object());
}


static json_t *pc_plugin_probe(pc_app *app, const char *company_id, const char *env_id,
                               json_t *cfg, pc_error_t *err)
{
    (void)err;
    const char *pk = pc_json_str(cfg, "pluginKey"), *dk = pc_json_str(cfg, "driverKey");
    pc_pdrv pd;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_pdrv_resolve(app, pk, dk, &pd, &e) < 0) {
        json_t *out = json_pack("{s:b,s:s,s:s,s:{s:s?,s:s?}}", "ok", 0, "driver", "plugin",
                                "summary", e.msg, "details", "pluginKey", pk, "driverKey", dk);
        pc_error_clear(&e);
        return out;
    }
    json_t *params = pc_pdrv_params(dk, company_id, env_id, NULL,
                                    json_object_get(cfg, "driverConfig"));
    json_t *result = NULL;
    int rc = pc_lease_rpc(app, NULL, pk, "environmentProbe", params, 0, &result, &e);
    json_decref(params);
    char *label = pc_pdrv_label(pk, dk);
    json_t *out;
    if (rc < 0) {
        char *summary = pc_xasprintf("Plugin environment driver \"%s\" probe failed: %s", label,
                                     e.msg);
        out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s,s:[],s:{}}}", "ok", 0, "driver", "plugin",
                        "summary", summary, "details", "pluginKey", pk, "driverKey", dk,
                        "diagnostics", "metadata");
        free(summary);
        pc_error_clear(&e);
    } else {
        bool ok = json_is_true(json_object_get(result, "ok"));
        const char *s = pc_json_str(result, "summary");
        char *summary = s ? pc_xstrdup(s)
                          : pc_xasprintf("Plugin environment driver \"%s\" probe %s.", label,
                                         ok ? "passed" : "failed");
        json_t *diag = json_object_get(result, "diagnostics");
        json_t *meta = json_object_get(result, "metadata");
        out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s,s:O,s:O}}", "ok", ok, "driver", "plugin",
                        "summary", summary, "details", "pluginKey", pk, "driverKey", dk,
                        "diagnostics", json_is_array(diag) ? diag : json_array(), "metadata",
                        json_is_object(meta) ? meta : json_object());
        free(summary);
    }
    free(label);
    json_decref(result);
    return out;
}

/* ------------------------------------------------------------- leases */

static int pc_plugin_admit(pc_lease *l, const char **row_provider, pc_error_t *err)
{
    json_t *cfg = pc_lease_config(l);
    const char *pk = pc_json_str(cfg, "pluginKey"), *dk = pc_json_str(cfg, "driverKey");
    pc_pdrv pd;
    /* Refused before the row exists: nothing was leased yet. */
    if (pc_pdrv_resolve(l->app, pk, dk, &pd, err) < 0)
        return -1;
    snprintf(l->provider, sizeof l->provider, "plugin:%s:%s", pk, dk);
    snprintf(l->plugin_key, sizeof l->plugin_key, "%s", pk);
    *row_provider = l->provider;
    return 0;
}

static int pc_plugin_acquire(pc_lease *l, const pc_lease_request *req, pc_error_t *err)
{
    pc_app *app = l->app;
    json_t *cfg = pc_lease_config(l);
    const char *pk = pc_json_str(cfg, "pluginKey"), *dk = pc_json_str(cfg, "driverKey");
    pc_pdrv pd;
    if (pc_pdrv_resolve(app, pk, dk, &pd, err) < 0)
        return -1;
    json_t *p = pc_pdrv_params(dk, l->company_id, l->env_id, l->issue_id,
                               json_object_get(cfg, "driverConfig"));
    json_object_set_new(p, "runId", json_string(l->run_id));
    json_object_set_new(p, "workspaceMode",
                        json_string(req->workspace_mode ? req->workspace_mode : "isolated"));
    if (l->agent_id[0])
        json_object_set_new(p, "agentId", json_string(l->agent_id));
    if (req->execution_workspace_id)
        json_object_set_new(p, "executionWorkspaceId", json_string(req->execution_workspace_id));
    json_t *result = NULL;
    /* Not cancellable: an abandoned acquire would leave a lease nobody
     * knows about. Cancellation takes effect at the next step. */
    int r = pc_lease_rpc(app, NULL, pk, "environmentAcquireLease", p, 0, &result, err);
    json_decref(p);
    if (r != 0)
        return -1;
    if (!json_is_object(result)) {
        json_decref(result);
        char *label = pc_pdrv_label(pk, dk);
        pc_error_set(err, 502, "plugin environment driver \"%s\" returned no lease", label);
        free(label);
        return -1;
    }
    json_t *pm = json_object_get(result, "metadata");
    json_t *meta = json_pack("{s:O,s:s,s:s,s:s,s:s,s:s}", "providerMetadata",
                             json_is_object(pm) ? pm : json_object(), "driver", "plugin",
                             "executionWorkspaceMode", "isolated", "pluginId", pd.plugin_id,
                             "pluginKey", pk, "driverKey", dk);
    json_t *plid = json_object_get(result, "providerLeaseId");
    json_t *exp = json_object_get(result, "expiresAt");
    l->plugin_lease = json_pack("{s:O,s:O,s:O}", "providerLeaseId",
                                json_is_string(plid) ? plid : json_null(), "metadata", meta,
                                "expiresAt", json_is_string(exp) ? exp : json_null());
    json_t *row_meta = json_deep_copy(meta);
    json_object_set_new(row_meta, "phase", json_string("ready"));
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    int rc = pc_db_exec_s(app->db,
                          "UPDATE environment_leases SET provider_lease_id=?, lease_policy=?,"
                          " metadata=?, expires_at=?, updated_at=? WHERE id=?",
                          json_pack("[s?,s,o,s?,s,s]", json_string_value(plid), l->policy,
                                    row_meta, json_string_value(exp), ts, l->id),
                          NULL, err);
    json_decref(meta);
    json_decref(result);
    return rc;
}

static int pc_plugin_realize(pc_lease *l, const char *local_path, char **dir, pc_error_t *err)
{
    json_t *cfg = pc_lease_config(l);
    json_t *p = pc_pdrv_params(pc_json_str(cfg, "driverKey"), l->company_id, l->env_id,
                               l->issue_id, json_object_get(cfg, "driverConfig"));
    return pc_env_rpc_realize(l, p, local_path, NULL, dir, err);
}

static int pc_plugin_execute(pc_lease *l, const pc_exec_request *req, const char *pid_file,
                             pc_exec_result *res, pc_error_t *err)
{
    (void)pid_file; /* the plugin runs the command, not us */
    json_t *cfg = pc_lease_config(l);
    json_t *dc = json_object_get(cfg, "driverConfig");
    json_t *p = pc_pdrv_params(pc_json_str(cfg, "driverKey"), l->company_id, l->env_id,
                               l->issue_id, dc);
    return pc_env_rpc_execute(l, p, pc_json_int(dc, "timeoutMs", 0), req, res, err);
}

static int pc_plugin_release(pc_lease *l, bool *retain, pc_error_t *err)
{
    *retain = false;
    if (!l->plugin_lease)
        return 0;
    json_t *cfg = pc_lease_config(l);
    json_t *p = pc_pdrv_params(pc_json_str(cfg, "driverKey"), l->company_id, l->env_id,
                               l->issue_id, json_object_get(cfg, "driverConfig"));
    json_object_set(p, "providerLeaseId", json_object_get(l->plugin_lease, "providerLeaseId"));
    json_object_set(p, "leaseMetadata", json_object_get(l->plugin_lease, "metadata"));
    json_t *result = NULL;
    /* Never the cancellable path: a cancelled run must still clean up. */
    int r = pc_lease_rpc(l->app, NULL, l->plugin_key, "environmentReleaseLease", p, 0, &result,
                         err);
    json_decref(p);
    json_decref(result);
    return r == 0 ? 0 : -1;
}

/* Base params for a stored lease row: the driver recorded in its metadata,
 * and the environment's driverConfig while it still names that driver. */
static json_t *pc_plugin_row_params(pc_app *app, json_t *row, json_t *meta, const char **pk_out,
                                    pc_error_t *err)
{
    const char *pk = pc_json_str(meta, "pluginKey"), *dk = pc_json_str(meta, "driverKey");
    if (!pk || !dk) {
        pc_error_set(err, 500, "lease %s has no plugin driver record", pc_json_str(row, "id"));
        return NULL;
    }
    pc_pdrv pd;
    if (pc_pdrv_resolve(app, pk, dk, &pd, err) < 0)
        return NULL;
    pc_error_t e = PC_ERROR_INIT;
    json_t *env = pc_env_load(app, pc_json_str(row, "environment_id"), &e);
    pc_error_clear(&e);
    json_t *cfg = pc_json_obj(env, "config");
    const char *cpk = pc_json_str(cfg, "pluginKey"), *cdk = pc_json_str(cfg, "driverKey");
    bool same = env && !strcmp(pc_json_str(env, "driver"), "plugin") && cpk && cdk &&
                !strcmp(cpk, pk) && !strcmp(cdk, dk);
    json_t *p = pc_pdrv_params(dk, pc_json_str(row, "company_id"),
                               pc_json_str(row, "environment_id"), pc_json_str(row, "issue_id"),
                               same ? json_object_get(cfg, "driverConfig") : NULL);
    json_decref(env);
    const char *plid = pc_json_str(row, "provider_lease_id");
    json_object_set_new(p, "providerLeaseId", plid ? json_string(plid) : json_null());
    json_t *lm = json_deep_copy(meta);
    json_object_del(lm, "phase");
    json_object_del(lm, "cwd");
    json_object_set_new(p, "leaseMetadata", lm);
    *pk_out = pk;
    return p;
}

static int pc_plugin_destroy(pc_app *app, json_t *row, json_t *meta, pc_error_t *err)
{
    const char *pk = NULL;
    json_t *p = pc_plugin_row_params(app, row, meta, &pk, err);
    if (!p)
        return -1;
    int rc = pc_lease_rpc_stored(app, pk, "environmentDestroyLease", p, NULL, err);
    json_decref(p);
    return rc;
}

/* Plugin leases are ephemeral, so the lease manager never resumes one at
 * start-up (it destroys it); the hook exists for the reusable-lease paths
 * that ask a driver to take a stored lease over. */
static int pc_plugin_resume(pc_app *app, json_t *row, json_t *meta, json_t **new_meta,
                            pc_error_t *err)
{
    *new_meta = NULL;
    if (!pc_json_str(row, "provider_lease_id"))
        return pc_error_set(err, 422,
                            "Plugin environment lease \"%s\" does not have a provider lease id "
                            "to resume.",
                            pc_json_str(row, "id"));
    const char *pk = NULL;
    json_t *p = pc_plugin_row_params(app, row, meta, &pk, err);
    if (!p)
        return -1;
    json_t *rm = NULL;
    int rc = pc_lease_rpc_stored(app, pk, "environmentResumeLease", p, &rm, err);
    json_decref(p);
    if (rm)
        *new_meta = json_pack("{s:o}", "providerMetadata", rm);
    return rc;
}

const pc_env_driver pc_env_driver_plugin = {
    .name = "plugin",
    .runs = true,
    /* Commands run wherever the plugin puts them, so only adapters able to
     * drive a remote target can use it (as for sandbox). */
    .remote = true,
    .normalize = pc_plugin_normalize,
    .probe = pc_plugin_probe,
    .admit = pc_plugin_admit,
    .acquire = pc_plugin_acquire,
    .resume = pc_plugin_resume,
    .realize = pc_plugin_realize,
    .execute = pc_plugin_execute,
    .release = pc_plugin_release,
    .destroy = pc_plugin_destroy,
};
