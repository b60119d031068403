/*
 * Environment config: the context a normalization runs in (which secrets it
 * created, which the new config makes obsolete), the helpers the drivers'
 * normalize hooks share, and the entry points the routes call, which
 * dispatch through the driver table. The per-driver rules and texts live in
 * the driver files (local.c, ssh.c, sandbox.c, plugin.c).
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
        if (pc_secret_delete_managed(c->app->db, c->company_id, json_string_value(v), &e) < 0)
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

char *pc_envcfg_trim_dup(const char *s)
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

int pc_envcfg_store_secret(pc_envcfg_ctx *c, const char *driver, const char *field,
                           const char *value, char id[PC_SECRET_ID_LEN + 1], pc_error_t *err)
{
    char *name = pc_secret_name(c->env_name, driver, field);
    char *desc = pc_xasprintf("Secret for %s %s.", c->env_name, field);
    int rc = pc_secret_create(c->app->db, c->company_id, name, desc, value, true, id, err);
    free(name);
    free(desc);
    if (rc == 0)
        json_array_append_new(c->created, json_string(id));
    return rc;
}

bool pc_envcfg_secret_exists(pc_app *app, const char *company_id, const char *id)
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

/* ------------------------------------------------------ shared checks */

int pc_envcfg_unknown_key(json_t *obj, const char *const *allowed, pc_error_t *err)
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
int pc_envcfg_req_str(json_t *obj, const char *key, const char *msg, char **out, pc_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return pc_error_set(err, 422, "%s", msg);
    char *t = pc_envcfg_trim_dup(json_string_value(v));
    if (!*t) {
        free(t);
        return pc_error_set(err, 422, "%s", msg);
    }
    *out = t;
    return 0;
}

/* Optional trimmed string, empty -> NULL. */
int pc_envcfg_opt_str(json_t *obj, const char *key, char **out, pc_error_t *err)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return pc_error_set(err, 422, "%s: Invalid input: expected string", key);
    char *t = pc_envcfg_trim_dup(json_string_value(v));
    if (!*t)
        free(t);
    else
        *out = t;
    return 0;
}

int pc_envcfg_plugin_verdict(json_t *result, const char *kind, const char *name,
                             pc_error_t *err)
{
    if (json_is_true(json_object_get(result, "ok")))
        return 0;
    json_t *errors = json_object_get(result, "errors");
    const char *first = json_string_value(json_array_get(errors, 0));
    if (first)
        pc_error_set(err, 422, "%s", first);
    else
        pc_error_set(err, 422, "%s \"%s\" rejected its config.", kind, name);
    json_t *warnings = json_object_get(result, "warnings");
    pc_error_details(err, json_pack("{s:o,s:o}", "errors",
                                    json_is_array(errors) ? json_incref(errors) : json_array(),
                                    "warnings",
                                    json_is_array(warnings) ? json_incref(warnings)
                                                            : json_array()));
    return -1;
}

bool pc_envcfg_key_valid(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-'))
            return false;
    return true;
}

json_t *pc_envcfg_normalize(pc_envcfg_ctx *c, const char *driver, json_t *input, json_t *base,
                            pc_error_t *err)
{
    if (input && !json_is_object(input)) {
        pc_error_set(err, 422, "Environment config must be an object.");
        return NULL;
    }
    const pc_env_driver *d = pc_env_driver_find(driver);
    if (!d) {
        pc_error_set(err, 422, "Unsupported environment driver \"%s\".", driver);
        return NULL;
    }
    return d->normalize(c, input, base, err);
}

void pc_envcfg_secret_ids(pc_app *app, const char *driver, json_t *config, json_t *out)
{
    const pc_env_driver *d = pc_env_driver_find(driver);
    if (json_is_object(config) && d && d->secret_ids)
        d->secret_ids(app, config, out);
}

json_t *pc_envcfg_resolve(pc_app *app, const char *company_id, const char *driver,
                          json_t *config, pc_error_t *err)
{
    const pc_env_driver *d = pc_env_driver_find(driver);
    if (d && d->resolve)
        return d->resolve(app, company_id, config, err);
    return json_deep_copy(config);
}
