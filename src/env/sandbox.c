/*
 * The sandbox driver: leases from a provider plugin (a plugin whose
 * manifest declares a sandbox_provider environment driver), reached through
 * the plugin host: environmentValidateConfig, environmentProbe,
 * environmentAcquireLease, environmentResumeLease, environmentReleaseLease,
 * environmentDestroyLease, environmentRealizeWorkspace, environmentExecute.
 * Every call carries upstream's base params {driverKey, companyId,
 * environmentId, issueId, config}, config being the stored config minus
 * `provider` with secret-ref fields resolved.
 *
 * Config: {provider, reuseLease (false), timeoutMs? 1..86400000, ...}. The
 * built-in "fake" provider is probe-only; plugin providers validate through
 * environmentValidateConfig and we store their normalizedConfig; schema
 * fields with format "secret-ref" are stored as secret ids. The host-level
 * fields (provider, reuseLease, timeoutMs, apiUrl) are the host's: set from
 * the validated input whatever the provider's normalizedConfig kept.
 *
 * Leases are ephemeral unless the provider supports reuse and the config
 * asks for it; a reusable lease stays active after its run and the next run
 * of the environment resumes it (when its provider config is unchanged).
 */
#include <ctype.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"

/* ------------------------------------------------------------- config */

/* Top-level properties of a provider configSchema declared format
 * "secret-ref" (nested objects are not walked: no provider uses them). */
static void pc_schema_secret_fields(json_t *schema, json_t *out)
{
    json_t *props = json_object_get(schema, "properties");
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
        const char *fmt = pc_json_str(v, "format");
        if (fmt && !strcmp(fmt, "secret-ref"))
            json_array_append_new(out, json_string(k));
    }
}

/* Accepts a binding object {type:"secret_ref", secretId, version} and
 * returns the bare id (upstream's canonical stored form). */
static int pc_canonical_secret_value(json_t *cfg, const char *field, pc_error_t *err)
{
    json_t *v = json_object_get(cfg, field);
    if (!json_is_object(v))
        return 0;
    const char *type = pc_json_str(v, "type"), *sid = pc_json_str(v, "secretId");
    if (!type || strcmp(type, "secret_ref") != 0 || !sid)
        return 0;
    json_t *ver = json_object_get(v, "version");
    if (ver && !(json_is_string(ver) && !strcmp(json_string_value(ver), "latest"))) {
        char *vs = json_dumps(ver, JSON_ENCODE_ANY);
        pc_error_set(err, 422,
                     "Secret binding at %s pins version %s; sandbox provider secret references "
                     "always resolve the latest version.",
                     field, vs ? vs : "?");
        free(vs);
        return -1;
    }
    json_object_set_new(cfg, field, json_string(sid));
    return 0;
}

/* Config sent to the provider: the stored config minus `provider` and
 * `apiUrl`, which is the host's business alone (a callback candidate,
 * docs/environments.md "Callbacks"). */
static json_t *pc_sandbox_driver_config(json_t *config)
{
    json_t *d = json_deep_copy(config);
    json_object_del(d, "provider");
    json_object_del(d, "apiUrl");
    return d;
}

/* apiUrl: an absolute http(s) URL of bounded length, or absent. */
static int pc_sandbox_check_api_url(json_t *v, pc_error_t *err)
{
    if (!v || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (!s || n > 500 || (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) ||
        strcspn(s, " \t\r\n\"'`$;&|<>()") != n)
        return pc_error_set(err, 422, "apiUrl must be an absolute http(s) URL.");
    return 0;
}

/* Resolves a running provider; 422 with upstream's text otherwise. */
static int pc_sandbox_provider(pc_app *app, const char *provider,
                               pc_plugin_provider_info *info, pc_error_t *err)
{
    memset(info, 0, sizeof *info);
    pc_error_t e = PC_ERROR_INIT;
    int found = app->plugins ? pc_plugin_find_sandbox_provider(app->plugins, provider, info, &e) : -1;
    /* A worker that is still starting (daemon start, restart after a crash)
     * is worth waiting for: its initialize is bounded (15 s) by the host. */
    for (int i = 0; found == 0 && !info->running && info->state == PC_WORKER_STARTING && i < 160;
         i++) {
        pc_plugin_provider_info_clear(info);
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        found = pc_plugin_find_sandbox_provider(app->plugins, provider, info, &e);
    }
    if (found < 0 || !info->running) {
        pc_error_clear(&e);
        pc_plugin_provider_info_clear(info);
        return pc_error_set(err, 422,
                            "Sandbox provider \"%s\" is not installed or its plugin worker is not "
                            "running.",
                            provider);
    }
    return 0;
}

static json_t *pc_sandbox_normalize(pc_envcfg_ctx *c, json_t *input, json_t *base,
                                    pc_error_t *err)
{
    json_t *m = json_object();
    /* PATCH merges onto the stored config as for ssh, so changing one
     * provider field keeps the others (and their secret ids). */
    if (base && json_is_object(base))
        json_object_update(m, base);
    if (input)
        json_object_update(m, input);
    json_t *out = NULL, *secret_fields = json_array(), *result = NULL, *params = NULL;
    pc_plugin_provider_info info;
    memset(&info, 0, sizeof info);
    const char *provider = pc_json_str(m, "provider");
    char *prov = provider ? pc_envcfg_trim_dup(provider) : pc_xstrdup("fake");
    if (!*prov) {
        free(prov);
        prov = pc_xstrdup("fake");
    }
    json_t *rl = json_object_get(m, "reuseLease");
    if (rl && !json_is_null(rl) && !json_is_boolean(rl)) {
        pc_error_set(err, 422, "reuseLease: Invalid input: expected boolean");
        goto done;
    }
    bool reuse = rl && json_is_true(rl);
    if (pc_sandbox_check_api_url(json_object_get(m, "apiUrl"), err) < 0)
        goto done;
    json_t *tv = json_object_get(m, "timeoutMs");
    int64_t timeout = -1;
    if (tv && !json_is_null(tv)) {
        if (json_is_integer(tv))
            timeout = json_integer_value(tv);
        else if (json_is_real(tv) && fabs(json_real_value(tv)) < 0x1p62 &&
                 json_real_value(tv) == (double)(int64_t)json_real_value(tv))
            timeout = (int64_t)json_real_value(tv);
        else
            timeout = 0;
        if (timeout < 1 || timeout > 86400000) {
            pc_error_set(err, 422, "timeoutMs must be an integer between 1 and 86400000.");
            goto done;
        }
    }
    if (!strcmp(prov, "fake")) {
        if (c->mode == PC_ENVCFG_PERSIST) {
            pc_error_set(err, 422,
                         "Built-in fake sandbox environments are reserved for internal probes "
                         "and cannot be saved.");
            goto done;
        }
        static const char *const fake_keys[] = {"provider", "image", "reuseLease", NULL};
        char *image = NULL;
        if (pc_envcfg_unknown_key(m, fake_keys, err) < 0 || pc_envcfg_opt_str(m, "image", &image, err) < 0)
            goto done;
        out = json_pack("{s:s,s:s,s:b}", "provider", "fake", "image",
                        image ? image : "ubuntu:24.04", "reuseLease", reuse);
        free(image);
        goto done;
    }
    if (!pc_envcfg_key_valid(prov)) {
        pc_error_set(err, 422,
                     "Sandbox provider key must start with a lowercase alphanumeric and contain "
                     "only lowercase letters, digits, dots, hyphens, or underscores");
        goto done;
    }
    if (pc_sandbox_provider(c->app, prov, &info, err) < 0)
        goto done;
    pc_schema_secret_fields(info.config_schema, secret_fields);
    json_object_set_new(m, "provider", json_string(prov));
    size_t i;
    json_t *f;
    json_array_foreach(secret_fields, i, f) {
        if (pc_canonical_secret_value(m, json_string_value(f), err) < 0)
            goto done;
    }
    /* The provider validates what it will later receive: the config
     * without our envelope key. Secret ids stay ids here; a provider that
     * needs the value itself gets it at probe/run time only. */
    json_t *dcfg = pc_sandbox_driver_config(m);
    params = json_pack("{s:s,s:o}", "driverKey", prov, "config", dcfg);
    pc_error_t e = PC_ERROR_INIT;
    if (pc_plugin_call(c->app->plugins, info.plugin_key, "environmentValidateConfig", params, 0,
                       &result, &e) < 0) {
        if (e.rpc_code == PC_RPC_METHOD_NOT_IMPLEMENTED || e.rpc_code == PC_RPC_METHOD_NOT_FOUND) {
            /* A provider without a validator accepts its config as is. */
            pc_error_clear(&e);
            result = json_pack("{s:b}", "ok", 1);
        } else {
            pc_error_set(err, 422, "Sandbox provider \"%s\" could not validate its config: %s",
                         prov, e.msg);
            pc_error_clear(&e);
            goto done;
        }
    }
    if (pc_envcfg_plugin_verdict(result, "Sandbox provider", prov, err) < 0)
        goto done;
    json_t *norm = json_object_get(result, "normalizedConfig");
    out = json_object();
    json_object_set_new(out, "provider", json_string(prov));
    json_object_update(out, json_is_object(norm) ? norm : dcfg);
    json_object_del(out, "provider");
    json_object_set_new(out, "provider", json_string(prov));
    /* Host-level fields are the host's: the validated values given win over
     * whatever the provider normalized, and one it dropped is put back. A
     * default the provider fills in for a field not given stays. */
    json_object_set_new(out, "reuseLease", json_boolean(reuse));
    if (timeout > 0)
        json_object_set_new(out, "timeoutMs", json_integer(timeout));
    json_t *api = json_object_get(m, "apiUrl");
    if (json_is_string(api))
        json_object_set_new(out, "apiUrl", json_string(json_string_value(api)));
    const char *old;
    json_array_foreach(secret_fields, i, f) {
        const char *field = json_string_value(f);
        json_t *v = json_object_get(out, field);
        old = base ? pc_json_str(base, field) : NULL;
        if (json_is_string(v)) {
            char *t = pc_envcfg_trim_dup(json_string_value(v));
            if (!*t) {
                json_object_del(out, field);
            } else if (pc_uuid_valid(t)) {
                if (c->mode == PC_ENVCFG_PERSIST && !pc_envcfg_secret_exists(c->app, c->company_id, t)) {
                    free(t);
                    pc_error_set(err, 422, "Secret not found");
                    json_decref(out);
                    out = NULL;
                    goto done;
                }
                json_object_set_new(out, field, json_string(t));
            } else if (c->mode == PC_ENVCFG_PERSIST) {
                char id[PC_SECRET_ID_LEN + 1];
                char *fname = pc_xstrdup(field);
                for (char *p = fname; *p; p++)
                    *p = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '-';
                int rc = pc_envcfg_store_secret(c, "sandbox", fname, t, id, err);
                free(fname);
                memset(t, 0, strlen(t));
                free(t);
                if (rc < 0) {
                    json_decref(out);
                    out = NULL;
                    goto done;
                }
                json_object_set_new(out, field, json_string(id));
                t = NULL;
            }
            free(t);
        }
        const char *now = pc_json_str(out, field);
        if (old && pc_uuid_valid(old) && (!now || strcmp(now, old) != 0))
            json_array_append_new(c->obsolete, json_string(old));
    }
done:
    pc_plugin_provider_info_clear(&info);
    json_decref(params);
    json_decref(result);
    json_decref(secret_fields);
    json_decref(m);
    free(prov);
    return out;
}

static void pc_sandbox_secret_ids(pc_app *app, json_t *config, json_t *out)
{
    if (!app->plugins)
        return;
    const char *prov = pc_json_str(config, "provider");
    pc_plugin_provider_info info;
    pc_error_t e = PC_ERROR_INIT;
    if (!prov || pc_plugin_find_sandbox_provider(app->plugins, prov, &info, &e) < 0) {
        pc_error_clear(&e);
        return;
    }
    json_t *fields = json_array();
    pc_schema_secret_fields(info.config_schema, fields);
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        const char *id = pc_json_str(config, json_string_value(f));
        if (id && pc_uuid_valid(id))
            json_array_append_new(out, json_string(id));
    }
    json_decref(fields);
    pc_plugin_provider_info_clear(&info);
}

static json_t *pc_sandbox_resolve(pc_app *app, const char *company_id, json_t *config,
                                  pc_error_t *err)
{
    json_t *r = json_deep_copy(config);
    if (!app->plugins)
        return r;
    const char *prov = pc_json_str(r, "provider");
    pc_plugin_provider_info info;
    pc_error_t e = PC_ERROR_INIT;
    if (!prov || pc_plugin_find_sandbox_provider(app->plugins, prov, &info, &e) < 0) {
        pc_error_clear(&e);
        return r;
    }
    json_t *fields = json_array();
    pc_schema_secret_fields(info.config_schema, fields);
    pc_plugin_provider_info_clear(&info);
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        const char *field = json_string_value(f);
        if (pc_canonical_secret_value(r, field, err) < 0)
            goto fail;
        const char *id = pc_json_str(r, field);
        if (!id || !pc_uuid_valid(id))
            continue;
        char *v = pc_secret_resolve(app->db, company_id, id, err);
        if (!v) {
            pc_error_prefix(err, "cannot resolve %s", field);
            goto fail;
        }
        json_object_set_new(r, field, json_string(v));
        pc_secret_free(v);
    }
    json_decref(fields);
    return r;
fail:
    json_decref(fields);
    json_decref(r);
    return NULL;
}

/* -------------------------------------------------------------- probe */

static json_t *pc_sandbox_probe(pc_app *app, const char *company_id, const char *env_id,
                                json_t *cfg, pc_error_t *err)
{
    (void)err;
    const char *prov = pc_json_str(cfg, "provider");
    if (!prov)
        prov = "fake";
    if (!strcmp(prov, "fake")) {
        const char *image = pc_json_str(cfg, "image");
        char *summary = pc_xasprintf("Fake sandbox provider is ready for image %s.",
                                     image ? image : "ubuntu:24.04");
        json_t *out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s}}", "ok", 1, "driver", "sandbox",
                                "summary", summary, "details", "provider", "fake", "image",
                                image ? image : "ubuntu:24.04");
        free(summary);
        return out;
    }
    pc_plugin_provider_info info;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_sandbox_provider(app, prov, &info, &e) < 0) {
        json_t *out = json_pack("{s:b,s:s,s:s,s:{s:s}}", "ok", 0, "driver", "sandbox", "summary",
                                e.msg, "details", "provider", prov);
        pc_error_clear(&e);
        return out;
    }
    json_t *params = json_pack("{s:s,s:s,s:s,s:n,s:o}", "driverKey", prov, "companyId", company_id,
                               "environmentId", env_id, "issueId", "config",
                               pc_sandbox_driver_config(cfg));
    json_t *result = NULL;
    int rc = pc_plugin_call(app->plugins, info.plugin_key, "environmentProbe", params, 0, &result,
                            &e);
    json_decref(params);
    json_t *out;
    if (rc < 0) {
        char *summary = pc_xasprintf("Sandbox provider \"%s\" probe failed: %s", prov, e.msg);
        out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s,s:[],s:n}}", "ok", 0, "driver", "sandbox",
                        "summary", summary, "details", "provider", prov, "pluginKey",
                        info.plugin_key, "diagnostics", "metadata");
        free(summary);
        pc_error_clear(&e);
    } else {
        bool ok = json_is_true(json_object_get(result, "ok"));
        const char *s = pc_json_str(result, "summary");
        char *summary = s ? pc_xstrdup(s)
                          : pc_xasprintf("Sandbox provider \"%s\" probe %s.", prov,
                                         ok ? "passed" : "failed");
        json_t *diag = json_object_get(result, "diagnostics");
        json_t *meta = json_object_get(result, "metadata");
        out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s,s:o,s:o}}", "ok", ok, "driver", "sandbox",
                        "summary", summary, "details", "provider", prov, "pluginKey",
                        info.plugin_key, "diagnostics",
                        json_is_array(diag) ? json_incref(diag) : json_array(), "metadata",
                        meta ? json_incref(meta) : json_null());
        free(summary);
    }
    json_decref(result);
    pc_plugin_provider_info_clear(&info);
    return out;
}

/* ------------------------------------------------------------- leases */

static int pc_sandbox_check_runnable(json_t *env, pc_error_t *err)
{
    const char *prov = pc_json_str(pc_json_obj(env, "config"), "provider");
    if (!prov || !strcmp(prov, "fake"))
        return pc_error_set(err, 422,
                            "Environment \"%s\" uses the built-in fake sandbox provider, which is "
                            "probe-only and cannot execute runs.",
                            pc_json_str(env, "name"));
    return 0;
}

static int pc_sandbox_admit(pc_lease *l, const char **row_provider, pc_error_t *err)
{
    (void)err;
    *row_provider = pc_json_str(pc_lease_config(l), "provider");
    return 0;
}

/* Base params of every provider hook. config has secrets resolved. */
static json_t *pc_sbx_params(const char *provider, const char *company_id, const char *env_id,
                             const char *issue_id, json_t *resolved_cfg)
{
    return json_pack("{s:s,s:s,s:s,s:s?,s:o}", "driverKey", provider, "companyId", company_id,
                     "environmentId", env_id, "issueId", issue_id && *issue_id ? issue_id : NULL,
                     "config", pc_sandbox_driver_config(resolved_cfg));
}

/* A retained reusable lease of env whose stored provider config equals the
 * current one (a different image or any other field means no reuse),
 * claimed for this run (status active again) so that neither another run
 * nor the cleanup sweeper takes it meanwhile. */
static json_t *pc_find_reusable(pc_app *app, const char *env_id, json_t *config)
{
    json_t *rows = NULL;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_db_query_s(app->db,
                      "SELECT * FROM environment_leases WHERE environment_id=? AND "
                      "status='retained' AND lease_policy='reuse_by_environment' AND "
                      "provider_lease_id IS NOT NULL "
                      "ORDER BY last_used_at DESC",
                      json_pack("[s]", env_id), &rows, &e) < 0) {
        pc_error_clear(&e);
        return NULL;
    }
    json_t *found = NULL;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *m = pc_json_from_text(pc_json_str(row, "metadata"));
        bool same = json_equal(json_object_get(m, "providerConfig"), config);
        json_decref(m);
        int64_t claimed = 0;
        if (same && pc_db_exec_s(app->db,
                                 "UPDATE environment_leases SET status='active' WHERE id=? AND "
                                 "status='retained'",
                                 json_pack("[s]", pc_json_str(row, "id")), &claimed, &e) < 0)
            pc_error_clear(&e);
        if (same && claimed > 0) {
            found = json_incref(row);
            break;
        }
    }
    json_decref(rows);
    return found;
}

static int pc_sandbox_acquire(pc_lease *l, const pc_lease_request *req, pc_error_t *err)
{
    pc_app *app = l->app;
    json_t *cfg = pc_lease_config(l);
    if (pc_sandbox_check_runnable(l->env, err) < 0)
        return -1;
    const char *prov = pc_json_str(cfg, "provider");
    pc_plugin_provider_info info;
    if (pc_sandbox_provider(app, prov, &info, err) < 0)
        return -1;
    snprintf(l->provider, sizeof l->provider, "%s", prov);
    snprintf(l->plugin_key, sizeof l->plugin_key, "%s", info.plugin_key);
    bool reusable = info.supports_reusable_leases && info.reuse_methods_supported &&
                    json_is_true(json_object_get(cfg, "reuseLease"));
    char plugin_id[64];
    snprintf(plugin_id, sizeof plugin_id, "%s", info.plugin_id);
    pc_plugin_provider_info_clear(&info);
    snprintf(l->policy, sizeof l->policy, "%s", reusable ? "reuse_by_environment" : "ephemeral");

    json_t *resolved = pc_sandbox_resolve(app, l->company_id, cfg, err);
    if (!resolved)
        return -1;
    json_t *result = NULL;
    int rc = -1;
    bool resumed = false;
    json_t *reuse_row = reusable ? pc_find_reusable(app, l->env_id, cfg) : NULL;
    if (reuse_row) {
        json_t *p = pc_sbx_params(prov, l->company_id, l->env_id, l->issue_id, resolved);
        json_t *meta = pc_json_from_text(pc_json_str(reuse_row, "metadata"));
        json_object_set_new(p, "providerLeaseId",
                            json_string(pc_json_str(reuse_row, "provider_lease_id")));
        json_object_set_new(p, "leaseMetadata", meta);
        pc_error_t e = PC_ERROR_INIT;
        int r = pc_lease_rpc(app, NULL, l->plugin_key, "environmentResumeLease", p, 0, &result,
                             &e);
        if (r == 0 && json_is_object(result)) {
            /* The resumed lease moves to this row's successor: the old row
             * is closed and the new row carries the provider lease on. */
            resumed = true;
            const char *cb = pc_json_str(meta, "callbackUrl");
            if (cb)
                l->cached_callback_url = pc_xstrdup(cb);
            pc_lease_close_row(app, pc_json_str(reuse_row, "id"), "released", "success",
                               NULL);
        } else {
            pc_warn("cannot resume lease %s (%s); destroying it and acquiring a fresh one",
                    pc_json_str(reuse_row, "id"), r == 1 ? "cancelled" : e.msg);
            json_decref(result);
            result = NULL;
            pc_error_clear(&e);
            json_t *d = NULL;
            int dr = pc_lease_rpc(app, NULL, l->plugin_key, "environmentDestroyLease", p, 0, &d,
                                  &e);
            json_decref(d);
            pc_lease_close_row(app, pc_json_str(reuse_row, "id"), "failed",
                               dr == 0 ? "success" : "failed", "resume failed");
            pc_error_clear(&e);
        }
        json_decref(p);
        json_decref(reuse_row);
    }
    if (!resumed) {
        json_t *p = pc_sbx_params(prov, l->company_id, l->env_id, l->issue_id, resolved);
        json_object_set_new(p, "runId", json_string(l->run_id));
        json_object_set_new(p, "workspaceMode", json_string("isolated"));
        if (l->agent_id[0])
            json_object_set_new(p, "agentId", json_string(l->agent_id));
        if (req->execution_workspace_id)
            json_object_set_new(p, "executionWorkspaceId",
                                json_string(req->execution_workspace_id));
        /* Not cancellable: an abandoned acquire would leave a provider lease
         * nobody knows about. Cancellation takes effect at the next step. */
        int r = pc_lease_rpc(app, NULL, l->plugin_key, "environmentAcquireLease", p, 0, &result,
                             err);
        json_decref(p);
        if (r == 1)
            pc_error_set(err, 409, "lease acquisition cancelled");
        if (r != 0)
            goto out;
    }
    if (!json_is_object(result)) {
        pc_error_set(err, 502, "sandbox provider \"%s\" returned no lease", prov);
        goto out;
    }
    l->plugin_lease = json_pack("{s:O,s:O,s:O}", "providerLeaseId",
                                json_object_get(result, "providerLeaseId")
                                    ? json_object_get(result, "providerLeaseId")
                                    : json_null(),
                                "metadata",
                                json_object_get(result, "metadata")
                                    ? json_object_get(result, "metadata")
                                    : json_null(),
                                "expiresAt",
                                json_object_get(result, "expiresAt")
                                    ? json_object_get(result, "expiresAt")
                                    : json_null());
    (void)plugin_id;
    json_t *meta = json_object();
    json_t *pm = json_object_get(result, "metadata");
    if (json_is_object(pm))
        json_object_update(meta, pm);
    json_object_set_new(meta, "provider", json_string(prov));
    json_object_set_new(meta, "driver", json_string("sandbox"));
    json_object_set_new(meta, "pluginKey", json_string(l->plugin_key));
    json_object_set_new(meta, "pluginId", json_string(plugin_id));
    json_object_set_new(meta, "providerConfig", json_deep_copy(cfg));
    json_object_set_new(meta, "phase", json_string("ready"));
    if (l->cached_callback_url)
        json_object_set_new(meta, "callbackUrl", json_string(l->cached_callback_url));
    const char *expires = pc_json_str(result, "expiresAt");
    const char *plid = pc_json_str(result, "providerLeaseId");
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    rc = pc_db_exec_s(app->db,
                      "UPDATE environment_leases SET provider=?, provider_lease_id=?, lease_policy=?,"
                      " metadata=?, expires_at=?, updated_at=? WHERE id=?",
                      json_pack("[s,s?,s,O,s?,s,s]", prov, plid, l->policy, meta, expires, ts,
                                l->id),
                      NULL, err);
    json_decref(meta);
out:
    json_decref(result);
    json_decref(resolved);
    return rc;
}

/* environmentRealizeWorkspace for a plugin-backed lease (sandbox and
 * plugin drivers): p holds the base params and is consumed. */
int pc_env_rpc_realize(pc_lease *l, json_t *p, const char *local_path, const char *remote_path,
                       char **dir, pc_error_t *err)
{
    json_object_set(p, "lease", l->plugin_lease);
    json_object_set_new(p, "workspace",
                        json_pack("{s:s?,s:s?,s:s}", "localPath", local_path, "remotePath",
                                  remote_path, "mode", "isolated"));
    json_t *result = NULL;
    int r = pc_lease_rpc(l->app, l, l->plugin_key, "environmentRealizeWorkspace", p, 0, &result,
                         err);
    json_decref(p);
    if (r == 1)
        pc_error_set(err, 409, "cancelled");
    const char *c = r == 0 ? pc_json_str(result, "cwd") : NULL;
    if (r == 0 && !c)
        pc_error_set(err, 502, "%s returned no cwd",
                     strcmp(l->driver, "plugin") ? "sandbox provider" : "plugin environment driver");
    if (!c) {
        json_decref(result);
        pc_error_prefix(err, "workspace_realization_failed");
        return -1;
    }
    *dir = pc_xstrdup(c);
    json_decref(result);
    return 0;
}

static int pc_sandbox_realize(pc_lease *l, const char *local_path, char **dir, pc_error_t *err)
{
    json_t *resolved = pc_sandbox_resolve(l->app, l->company_id, pc_lease_config(l), err);
    if (!resolved)
        return -1;
    json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id, resolved);
    json_decref(resolved);
    json_t *pmeta = json_object_get(l->plugin_lease, "metadata");
    return pc_env_rpc_realize(l, p, local_path, pc_json_str(pmeta, "remoteCwd"), dir, err);
}

/* environmentExecute for a plugin-backed lease: p holds the base params
 * and is consumed; config_timeout_ms applies when the request has none. */
int pc_env_rpc_execute(pc_lease *l, json_t *p, int64_t config_timeout_ms,
                       const pc_exec_request *req, pc_exec_result *res, pc_error_t *err)
{
    size_t cap = req->output_cap ? req->output_cap : PC_PROC_DEFAULT_CAP;
    memset(res, 0, sizeof *res);
    pc_buf_init(&res->out, cap);
    pc_buf_init(&res->err, cap);
    json_object_set(p, "lease", l->plugin_lease);
    json_object_set_new(p, "command", json_string(req->command));
    json_t *args = json_array();
    for (int i = 0; req->args && req->args[i]; i++)
        json_array_append_new(args, json_string(req->args[i]));
    json_object_set_new(p, "args", args);
    const char *cwd = req->cwd ? req->cwd : l->cwd;
    if (cwd)
        json_object_set_new(p, "cwd", json_string(cwd));
    json_object_set_new(p, "env", req->env ? json_deep_copy(req->env) : json_object());
    if (req->stdin_data)
        json_object_set_new(p, "stdin", json_string(req->stdin_data));
    int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : config_timeout_ms;
    if (timeout > 0)
        json_object_set_new(p, "timeoutMs", json_integer(timeout));
    json_t *result = NULL;
    bool streamed = false;
    /* The host adds its slack to timeoutMs (execute = timeoutMs + 30 s). */
    int r = pc_lease_rpc_stream(l->app, l, l->plugin_key, "environmentExecute", p, 0,
                                req->on_output, req->ud, &streamed, &result, err);
    json_decref(p);
    if (r == 1) {
        res->cancelled = true;
        return 0;
    }
    if (r < 0) {
        pc_error_prefix(err, "execution_failed");
        return -1;
    }
    json_t *ec = json_object_get(result, "exitCode");
    if (json_is_integer(ec)) {
        res->has_exit_code = true;
        res->exit_code = (int)json_integer_value(ec);
    }
    const char *sig = pc_json_str(result, "signal");
    if (sig)
        snprintf(res->signal, sizeof res->signal, "%s", sig);
    res->timed_out = json_is_true(json_object_get(result, "timedOut"));
    const char *so = pc_json_str(result, "stdout"), *se = pc_json_str(result, "stderr");
    size_t sol = so ? json_string_length(json_object_get(result, "stdout")) : 0;
    size_t sel = se ? json_string_length(json_object_get(result, "stderr")) : 0;
    if (so)
        pc_buf_append_trunc(&res->out, so, sol);
    if (se)
        pc_buf_append_trunc(&res->err, se, sel);
    /* A provider that streamed (execute.log) already delivered this output
     * as it was produced; one that answers only at the end (e.g. built on
     * the npm SDK) has it replayed now. */
    if (req->on_output && !streamed) {
        if (sol)
            req->on_output(req->ud, "stdout", res->out.data, res->out.len);
        if (sel)
            req->on_output(req->ud, "stderr", res->err.data, res->err.len);
    }
    json_decref(result);
    return 0;
}

static int pc_sandbox_execute(pc_lease *l, const pc_exec_request *req, const char *pid_file,
                              pc_exec_result *res, pc_error_t *err)
{
    (void)pid_file; /* the provider runs the command, not us */
    json_t *resolved = pc_sandbox_resolve(l->app, l->company_id, pc_lease_config(l), err);
    if (!resolved) {
        memset(res, 0, sizeof *res);
        pc_buf_init(&res->out, req->output_cap ? req->output_cap : PC_PROC_DEFAULT_CAP);
        pc_buf_init(&res->err, req->output_cap ? req->output_cap : PC_PROC_DEFAULT_CAP);
        return -1;
    }
    json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id, resolved);
    json_decref(resolved);
    return pc_env_rpc_execute(l, p, pc_json_int(pc_lease_config(l), "timeoutMs", 0), req, res,
                              err);
}

/* Ephemeral leases are released through the provider; reusable ones are
 * told the run ended (environmentReleaseLease as well) and stay active. */
static int pc_sandbox_release(pc_lease *l, bool *retain, pc_error_t *err)
{
    *retain = false;
    if (!l->plugin_lease)
        return 0;
    json_t *resolved = pc_sandbox_resolve(l->app, l->company_id, pc_lease_config(l), err);
    if (!resolved)
        return -1;
    json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id, resolved);
    json_decref(resolved);
    json_object_set(p, "providerLeaseId", json_object_get(l->plugin_lease, "providerLeaseId"));
    json_t *md = json_object_get(l->plugin_lease, "metadata");
    json_object_set_new(p, "leaseMetadata", md ? json_incref(md) : json_null());
    json_t *result = NULL;
    /* Never the cancellable path: a cancelled run must still clean up. */
    int r = pc_lease_rpc(l->app, NULL, l->plugin_key, "environmentReleaseLease", p, 0, &result,
                         err);
    json_decref(p);
    json_decref(result);
    if (r != 0)
        return -1;
    *retain = !strcmp(l->policy, "reuse_by_environment");
    return 0;
}

/* Params for a lifecycle call on a stored lease row (its provider record in
 * meta); *plugin_key points into meta. NULL with err when the record is
 * incomplete or its secrets do not resolve. */
static json_t *pc_sandbox_row_params(pc_app *app, json_t *row, json_t *meta,
                                     const char **plugin_key, pc_error_t *err)
{
    const char *cid = pc_json_str(row, "company_id"), *prov = pc_json_str(row, "provider");
    json_t *cfg = json_object_get(meta, "providerConfig");
    *plugin_key = pc_json_str(meta, "pluginKey");
    if (!*plugin_key || !prov || !cfg) {
        pc_error_set(err, 500, "lease %s has no provider record", pc_json_str(row, "id"));
        return NULL;
    }
    json_t *resolved = pc_sandbox_resolve(app, cid, cfg, err);
    if (!resolved)
        return NULL;
    json_t *p = pc_sbx_params(prov, cid, pc_json_str(row, "environment_id"),
                              pc_json_str(row, "issue_id"), resolved);
    json_decref(resolved);
    const char *plid = pc_json_str(row, "provider_lease_id");
    json_object_set_new(p, "providerLeaseId", plid ? json_string(plid) : json_null());
    json_object_set(p, "leaseMetadata", meta);
    return p;
}

/* Calls environmentDestroyLease for one lease row; 0 on success. */
static int pc_sandbox_destroy(pc_app *app, json_t *row, json_t *meta, pc_error_t *err)
{
    const char *plugin_key;
    json_t *p = pc_sandbox_row_params(app, row, meta, &plugin_key, err);
    if (!p)
        return -1;
    int rc = pc_lease_rpc_stored(app, plugin_key, "environmentDestroyLease", p, NULL, err);
    json_decref(p);
    return rc;
}

/* Resumes a reusable lease row at start-up; *new_meta is the provider's. */
static int pc_sandbox_resume(pc_app *app, json_t *row, json_t *meta, json_t **new_meta,
                             pc_error_t *err)
{
    *new_meta = NULL;
    const char *plugin_key;
    json_t *p = pc_sandbox_row_params(app, row, meta, &plugin_key, err);
    if (!p)
        return -1;
    int rc = pc_lease_rpc_stored(app, plugin_key, "environmentResumeLease", p, new_meta, err);
    json_decref(p);
    return rc;
}

/* Whether the lease's provider serves environmentSyncIn and
 * environmentSyncOut (both, as upstream requires; one alone is ignored). */
bool pc_sandbox_native_sync(pc_lease *l)
{
    if (l->drv != &pc_env_driver_sandbox || !l->app->plugins || !l->provider[0])
        return false;
    pc_plugin_provider_info info;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_plugin_find_sandbox_provider(l->app->plugins, l->provider, &info, &e) < 0) {
        pc_error_clear(&e);
        return false;
    }
    bool ok = info.running && info.sync_methods_supported;
    pc_plugin_provider_info_clear(&info);
    return ok;
}

int pc_sandbox_sync_call(pc_lease *l, const char *method, json_t *operations, pc_error_t *err)
{
    json_t *resolved = pc_sandbox_resolve(l->app, l->company_id, pc_lease_config(l), err);
    if (!resolved)
        return -1;
    json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id, resolved);
    json_decref(resolved);
    json_object_set(p, "lease", l->plugin_lease);
    json_object_set(p, "operations", operations);
    json_t *result = NULL;
    int r = pc_lease_rpc(l->app, l, l->plugin_key, method, p, 0, &result, err);
    json_decref(p);
    json_decref(result);
    if (r == 1)
        return pc_error_set(err, 409, "cancelled");
    if (r < 0)
        pc_error_prefix(err, "%s", method);
    return r < 0 ? -1 : 0;
}

const pc_env_driver pc_env_driver_sandbox = {
    .name = "sandbox",
    .runs = true,
    .remote = true,
    .probe_callback = true,
    .normalize = pc_sandbox_normalize,
    .secret_ids = pc_sandbox_secret_ids,
    .resolve = pc_sandbox_resolve,
    .probe = pc_sandbox_probe,
    .check_runnable = pc_sandbox_check_runnable,
    .admit = pc_sandbox_admit,
    .acquire = pc_sandbox_acquire,
    .resume = pc_sandbox_resume,
    .realize = pc_sandbox_realize,
    .execute = pc_sandbox_execute,
    .release = pc_sandbox_release,
    .destroy = pc_sandbox_destroy,
};
