/*
 * Environment config per driver, with upstream's validation texts:
 *
 *   local    any object, stored as given;
 *   ssh      strict {host, port 1..65535 (22), username, remoteWorkspacePath
 *            (absolute), privateKey (input only), privateKeySecretRef,
 *            knownHosts (""->null), strictHostKeyChecking (true)};
 *   sandbox  {provider, reuseLease (false), timeoutMs? 1..86400000, ...} —
 *            the built-in "fake" provider is probe-only; plugin providers
 *            validate through environmentValidateConfig and we store their
 *            normalizedConfig; schema fields with format "secret-ref" are
 *            stored as secret ids;
 *   plugin   strict {pluginKey, driverKey, driverConfig}.
 *
 * Plaintext secrets (an SSH private key, a secret-ref field's value) become
 * company secrets in PERSIST mode and stay in memory only in PROBE mode.
 * Validation failures are 422 {"error": "<first issue>"}.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/secrets.h"
#include "lib/util.h"

void pc_envcfg_ctx_init(pc_envcfg_ctx *c, pc_app *app, const char *company_id,
                        const char *env_name, pc_envcfg_mode mode)
{
    memset(c, 0, sizeof *c);
    c->app = app;
    c->company_id = company_id;
    c->env_name = env_name ? env_name : "environment";
    c->mode = mode;
    c->created = json_array();
    c->obsolete = json_array();
}

static void pc_envcfg_delete_all(pc_envcfg_ctx *c, json_t *ids)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        pc_error_t e = PC_ERROR_INIT;
        if (pc_secret_delete(c->app->db, c->company_id, json_string_value(v), &e) < 0)
            pc_warn("cannot delete secret %s: %s", json_string_value(v), e.msg);
        pc_error_clear(&e);
    }
}

void pc_envcfg_ctx_abort(pc_envcfg_ctx *c)
{
    pc_envcfg_delete_all(c, c->created);
    json_decref(c->created);
    json_decref(c->obsolete);
    c->created = c->obsolete = NULL;
}

void pc_envcfg_ctx_commit(pc_envcfg_ctx *c)
{
    pc_envcfg_delete_all(c, c->obsolete);
    json_decref(c->created);
    json_decref(c->obsolete);
    c->created = c->obsolete = NULL;
}

static char *pc_trim_dup(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *r = pc_xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/* Upstream's secret name: environment-<driver>-<slug>-<field>-<8 hex>. */
static char *pc_secret_name(const char *env_name, const char *driver, const char *field)
{
    char slug[49];
    size_t n = 0;
    bool dash = false;
    for (const char *p = env_name; *p && n < 48; p++) {
        char ch = (char)tolower((unsigned char)*p);
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            if (dash && n > 0 && n < 47)
                slug[n++] = '-';
            dash = false;
            slug[n++] = ch;
        } else {
            dash = true;
        }
    }
    slug[n] = '\0';
    char rnd[9];
    pc_random_hex(rnd, 4);
    return pc_xasprintf("environment-%s-%s-%s-%s", driver, n ? slug : "environment", field, rnd);
}

static int pc_envcfg_store_secret(pc_envcfg_ctx *c, const char *driver, const char *field,
                                  const char *value, char id[PC_SECRET_ID_LEN + 1],
                                  pc_error_t *err)
{
    char *name = pc_secret_name(c->env_name, driver, field);
    char *desc = pc_xasprintf("Secret for %s %s.", c->env_name, field);
    int rc = pc_secret_create(c->app->db, c->company_id, name, desc, value, id, err);
    free(name);
    free(desc);
    if (rc == 0)
        json_array_append_new(c->created, json_string(id));
    return rc;
}

static bool pc_secret_exists(pc_app *app, const char *company_id, const char *id)
{
    pc_error_t e = PC_ERROR_INIT;
    json_t *row = pc_db_query_one_s(app->db,
                                    "SELECT id FROM company_secrets WHERE id=? AND company_id=?",
                                    json_pack("[s,s]", id, company_id), &e);
    pc_error_clear(&e);
    bool ok = row != NULL;
    json_decref(row);
    return ok;
}

/* ---------------------------------------------------------------- ssh */

static const char *const ssh_keys[] = {"host",       "port",      "username",
                                       "remoteWorkspacePath", "privateKey",
                                       "privateKeySecretRef", "knownHosts",
                                       "strictHostKeyChecking", NULL};

static int pc_unknown_key(json_t *obj, const char *const *allowed, pc_error_t *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool found = false;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, k))
                found = true;
        if (!found)
            return pc_error_set(err, 422, "Unrecognized key: \"%s\"", k);
    }
    return 0;
}

/* Required trimmed non-empty string; sets *out (malloc'd). */
static int pc_req_str(json_t *obj, const char *key, const char *msg, char **out, pc_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return pc_error_set(err, 422, "%s", msg);
    char *t = pc_trim_dup(json_string_value(v));
    if (!*t) {
        free(t);
        return pc_error_set(err, 422, "%s", msg);
    }
    *out = t;
    return 0;
}

/* Optional trimmed string, empty -> NULL. */
static int pc_opt_str(json_t *obj, const char *key, char **out, pc_error_t *err)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return pc_error_set(err, 422, "%s: Invalid input: expected string", key);
    char *t = pc_trim_dup(json_string_value(v));
    if (!*t)
        free(t);
    else
        *out = t;
    return 0;
}

static int pc_parse_secret_ref(pc_envcfg_ctx *c, json_t *v, json_t **out, pc_error_t *err)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    static const char *const keys[] = {"type", "secretId", "version", NULL};
    if (!json_is_object(v) || pc_unknown_key(v, keys, err) < 0)
        return pc_error_is_set(err) ? -1
                                    : pc_error_set(err, 422, "privateKeySecretRef: Invalid input");
    const char *type = pc_json_str(v, "type"), *sid = pc_json_str(v, "secretId");
    if (!type || strcmp(type, "secret_ref") != 0)
        return pc_error_set(err, 422, "privateKeySecretRef.type: Invalid input: expected \"secret_ref\"");
    if (!sid || !pc_uuid_valid(sid))
        return pc_error_set(err, 422, "privateKeySecretRef.secretId: Invalid UUID");
    json_t *ver = json_object_get(v, "version");
    if (ver && !(json_is_string(ver) && !strcmp(json_string_value(ver), "latest")) &&
        !(json_is_integer(ver) && json_integer_value(ver) > 0))
        return pc_error_set(err, 422, "privateKeySecretRef.version: Invalid input");
    if (!pc_secret_exists(c->app, c->company_id, sid))
        return pc_error_set(err, 422, "Secret not found");
    *out = json_pack("{s:s,s:s,s:o}", "type", "secret_ref", "secretId", sid, "version",
                     ver ? json_incref(ver) : json_string("latest"));
    return 0;
}

static const char *pc_ref_secret_id(json_t *ref)
{
    return json_is_object(ref) ? pc_json_str(ref, "secretId") : NULL;
}

static json_t *pc_envcfg_ssh(pc_envcfg_ctx *c, json_t *input, json_t *base, pc_error_t *err)
{
    /* A partial PATCH merges onto the stored config. */
    json_t *m = base && json_is_object(base) ? json_deep_copy(base) : json_object();
    if (input)
        json_object_update(m, input);
    char *host = NULL, *user = NULL, *path = NULL, *key = NULL, *known = NULL;
    json_t *out = NULL, *ref = NULL;
    int64_t port = 22;
    json_t *pv = json_object_get(m, "port");
    if (pc_req_str(m, "host", "SSH environments require a host.", &host, err) < 0)
        goto done;
    if (pv && !json_is_null(pv)) {
        if (json_is_integer(pv)) {
            port = json_integer_value(pv);
        } else if (json_is_real(pv) && fabs(json_real_value(pv)) < 0x1p62 &&
                   json_real_value(pv) == (double)(int64_t)json_real_value(pv)) {
            port = (int64_t)json_real_value(pv);
        } else if (json_is_string(pv)) {
            char *end;
            port = strtoll(json_string_value(pv), &end, 10);
            if (*end || end == json_string_value(pv))
                port = -1;
        } else {
            port = -1;
        }
        if (port < 1 || port > 65535) {
            pc_error_set(err, 422, "SSH port must be an integer between 1 and 65535.");
            goto done;
        }
    }
    if (pc_req_str(m, "username", "SSH environments require a username.", &user, err) < 0 ||
        pc_req_str(m, "remoteWorkspacePath", "SSH environments require a remote workspace path.",
                   &path, err) < 0)
        goto done;
    if (path[0] != '/') {
        pc_error_set(err, 422, "SSH remote workspace path must be absolute.");
        goto done;
    }
    if (pc_opt_str(m, "privateKey", &key, err) < 0 ||
        pc_parse_secret_ref(c, json_object_get(m, "privateKeySecretRef"), &ref, err) < 0 ||
        pc_opt_str(m, "knownHosts", &known, err) < 0)
        goto done;
    bool strict = true;
    json_t *sv = json_object_get(m, "strictHostKeyChecking");
    if (sv && !json_is_null(sv)) {
        if (!json_is_boolean(sv)) {
            pc_error_set(err, 422, "strictHostKeyChecking: Invalid input: expected boolean");
            goto done;
        }
        strict = json_is_true(sv);
    }
    if (pc_unknown_key(m, ssh_keys, err) < 0)
        goto done;
    const char *old_id = pc_ref_secret_id(base ? json_object_get(base, "privateKeySecretRef") : NULL);
    if (key && c->mode == PC_ENVCFG_PERSIST) {
        /* A new key replaces the stored one; the old secret goes once the
         * new config is committed. */
        char id[PC_SECRET_ID_LEN + 1];
        if (pc_envcfg_store_secret(c, "ssh", "private-key", key, id, err) < 0)
            goto done;
        json_decref(ref);
        ref = json_pack("{s:s,s:s,s:s}", "type", "secret_ref", "secretId", id, "version", "latest");
    }
    if (old_id && (!ref || strcmp(old_id, pc_ref_secret_id(ref)) != 0))
        json_array_append_new(c->obsolete, json_string(old_id));
    out = json_pack("{s:s,s:I,s:s,s:s,s:n,s:o,s:s?,s:b}", "host", host, "port", (json_int_t)port,
                    "username", user, "remoteWorkspacePath", path, "privateKey",
                    "privateKeySecretRef", ref ? json_incref(ref) : json_null(), "knownHosts",
                    known, "strictHostKeyChecking", strict);
    if (!known)
        json_object_set_new(out, "knownHosts", json_null());
    if (key && c->mode == PC_ENVCFG_PROBE)
        json_object_set_new(out, "privateKey", json_string(key));
done:
    json_decref(ref);
    json_decref(m);
    free(host);
    free(user);
    free(path);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    free(known);
    return out;
}

/* ------------------------------------------------------------ sandbox */

static bool pc_key_valid(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-'))
            return false;
    return true;
}

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

json_t *pc_sandbox_driver_config(json_t *config)
{
    json_t *d = json_deep_copy(config);
    json_object_del(d, "provider");
    return d;
}

int pc_sandbox_provider(pc_app *app, const char *provider, pc_plugin_provider_info *info,
                        pc_error_t *err)
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

static json_t *pc_envcfg_sandbox(pc_envcfg_ctx *c, json_t *input, json_t *base, pc_error_t *err)
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
    char *prov = provider ? pc_trim_dup(provider) : pc_xstrdup("fake");
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
        if (pc_unknown_key(m, fake_keys, err) < 0 || pc_opt_str(m, "image", &image, err) < 0)
            goto done;
        out = json_pack("{s:s,s:s,s:b}", "provider", "fake", "image",
                        image ? image : "ubuntu:24.04", "reuseLease", reuse);
        free(image);
        goto done;
    }
    if (!pc_key_valid(prov)) {
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
    if (!json_is_true(json_object_get(result, "ok"))) {
        json_t *errors = json_object_get(result, "errors");
        const char *first = json_string_value(json_array_get(errors, 0));
        if (first)
            pc_error_set(err, 422, "%s", first);
        else
            pc_error_set(err, 422, "Sandbox provider \"%s\" rejected its config.", prov);
        json_t *warnings = json_object_get(result, "warnings");
        pc_error_details(err, json_pack("{s:o,s:o}", "errors",
                                        errors ? json_incref(errors) : json_array(), "warnings",
                                        warnings ? json_incref(warnings) : json_array()));
        goto done;
    }
    json_t *norm = json_object_get(result, "normalizedConfig");
    out = json_object();
    json_object_set_new(out, "provider", json_string(prov));
    json_object_update(out, json_is_object(norm) ? norm : dcfg);
    json_object_del(out, "provider");
    json_object_set_new(out, "provider", json_string(prov));
    /* Host-owned flags win over whatever the provider normalized. */
    json_object_set_new(out, "reuseLease", json_boolean(reuse));
    if (timeout > 0)
        json_object_set_new(out, "timeoutMs", json_integer(timeout));
    const char *old;
    json_array_foreach(secret_fields, i, f) {
        const char *field = json_string_value(f);
        json_t *v = json_object_get(out, field);
        old = base ? pc_json_str(base, field) : NULL;
        if (json_is_string(v)) {
            char *t = pc_trim_dup(json_string_value(v));
            if (!*t) {
                json_object_del(out, field);
            } else if (pc_uuid_valid(t)) {
                if (c->mode == PC_ENVCFG_PERSIST && !pc_secret_exists(c->app, c->company_id, t)) {
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

/* ------------------------------------------------------------- plugin */

static json_t *pc_envcfg_plugin(json_t *input, pc_error_t *err)
{
    static const char *const keys[] = {"pluginKey", "driverKey", "driverConfig", NULL};
    json_t *m = input ? input : json_object();
    json_t *out = NULL;
    const char *pk = pc_json_str(m, "pluginKey"), *dk = pc_json_str(m, "driverKey");
    json_t *dc = json_object_get(m, "driverConfig");
    if (!pk || !*pk)
        pc_error_set(err, 422, "pluginKey: Invalid input: expected string");
    else if (!pc_key_valid(dk))
        pc_error_set(err, 422,
                     "Environment driver key must start with a lowercase alphanumeric and contain "
                     "only lowercase letters, digits, dots, hyphens, or underscores");
    else if (dc && !json_is_object(dc))
        pc_error_set(err, 422, "driverConfig: Invalid input: expected record");
    else if (pc_unknown_key(m, keys, err) == 0)
        out = json_pack("{s:s,s:s,s:o}", "pluginKey", pk, "driverKey", dk, "driverConfig",
                        dc ? json_deep_copy(dc) : json_object());
    if (!input)
        json_decref(m);
    return out;
}

json_t *pc_envcfg_normalize(pc_envcfg_ctx *c, const char *driver, json_t *input, json_t *base,
                            pc_error_t *err)
{
    if (input && !json_is_object(input)) {
        pc_error_set(err, 422, "Environment config must be an object.");
        return NULL;
    }
    if (!strcmp(driver, "local")) {
        json_t *m = base && json_is_object(base) ? json_deep_copy(base) : json_object();
        if (input) {
            json_decref(m);
            m = json_deep_copy(input);
        }
        return m;
    }
    if (!strcmp(driver, "ssh"))
        return pc_envcfg_ssh(c, input, base, err);
    if (!strcmp(driver, "sandbox"))
        return pc_envcfg_sandbox(c, input, base, err);
    if (!strcmp(driver, "plugin"))
        return pc_envcfg_plugin(input ? input : base, err);
    pc_error_set(err, 422, "Unsupported environment driver \"%s\".", driver);
    return NULL;
}

void pc_envcfg_secret_ids(pc_app *app, const char *driver, json_t *config, json_t *out)
{
    if (!json_is_object(config))
        return;
    if (!strcmp(driver, "ssh")) {
        const char *id = pc_ref_secret_id(json_object_get(config, "privateKeySecretRef"));
        if (id && pc_uuid_valid(id))
            json_array_append_new(out, json_string(id));
        return;
    }
    if (strcmp(driver, "sandbox") != 0 || !app->plugins)
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

json_t *pc_envcfg_resolve(pc_app *app, const char *company_id, const char *driver,
                          json_t *config, pc_error_t *err)
{
    json_t *r = json_deep_copy(config);
    if (!strcmp(driver, "ssh")) {
        const char *id = pc_ref_secret_id(json_object_get(r, "privateKeySecretRef"));
        if (id && !pc_json_str(r, "privateKey")) {
            char *v = pc_secret_resolve(app->db, company_id, id, err);
            if (!v) {
                pc_error_prefix(err, "cannot resolve the SSH private key");
                json_decref(r);
                return NULL;
            }
            json_object_set_new(r, "privateKey", json_string(v));
            pc_secret_free(v);
        }
        return r;
    }
    if (!strcmp(driver, "sandbox") && app->plugins) {
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
    return r;
}
