#include "plugin/registry.h"

#include <sodium.h>
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/secrets.h"
#include "lib/util.h"
#include "store/db.h"

/*
 * Sealing at rest. A plugin's env values (provider credentials, mostly) and
 * the config fields its manifest's instanceConfigSchema marks as secrets
 * (`format: "secret-ref"` or `"secret"`, or `secret: true`) are stored
 * sealed with the secrets module's key (model/secrets.h), each bound to its
 * plugin id and field name. They are opened only to start the worker.
 */
static bool config_field_is_secret(json_t *manifest, const char *key)
{
    json_t *props =
        json_object_get(json_object_get(manifest, "instanceConfigSchema"), "properties");
    json_t *prop = json_object_get(props, key);
    const char *fmt = pc_json_str(prop, "format");
    return (fmt && (!strcmp(fmt, "secret-ref") || !strcmp(fmt, "secret"))) ||
           json_is_true(json_object_get(prop, "secret"));
}

typedef enum { SEAL_ENV, SEAL_CONFIG } seal_kind;

static void seal_context(char *out, size_t cap, const char *plugin_id, seal_kind kind,
                         const char *key)
{
    snprintf(out, cap, "plugin:%s:%s:%s", plugin_id, kind == SEAL_ENV ? "env" : "config", key);
}

static bool seal_selected(seal_kind kind, json_t *manifest, const char *key, json_t *v)
{
    return json_is_string(v) && (kind == SEAL_ENV || config_field_is_secret(manifest, key));
}

/* A copy of obj with the selected values sealed. Values that already look
 * sealed are kept unless `all` (input from a request is never trusted to
 * be sealed already). *changed tells whether anything was sealed. */
static json_t *seal_values(json_t *obj, const char *plugin_id, seal_kind kind, json_t *manifest,
                           bool all, bool *changed, pc_error_t *err)
{
    json_t *out = json_is_object(obj) ? json_deep_copy(obj) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach(out, k, v)
    {
        if (!seal_selected(kind, manifest, k, v) ||
            (!all && pc_secret_is_sealed(json_string_value(v))))
            continue;
        char ctx[256];
        seal_context(ctx, sizeof ctx, plugin_id, kind, k);
        char *sealed = pc_secret_seal(ctx, json_string_value(v), err);
        if (!sealed) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, k, json_string(sealed));
        free(sealed);
        if (changed)
            *changed = true;
    }
    return out;
}

/* Overwrites the string values of a temporary object before it is freed. */
static void wipe_values(json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) if (json_is_string(v))
        sodium_memzero((char *)json_string_value(v), json_string_length(v));
    json_decref(obj);
}

/* A copy of obj with the sealed values opened (plaintext left by an older
 * version is passed through; pc_plugin_seal_rows seals it at start-up). */
static json_t *unseal_values(json_t *obj, const char *plugin_id, seal_kind kind,
                             json_t *manifest, pc_error_t *err)
{
    json_t *out = json_is_object(obj) ? json_deep_copy(obj) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach(out, k, v)
    {
        if (!seal_selected(kind, manifest, k, v) || !pc_secret_is_sealed(json_string_value(v)))
            continue;
        char ctx[256];
        seal_context(ctx, sizeof ctx, plugin_id, kind, k);
        char *plain = pc_secret_unseal(ctx, json_string_value(v), err);
        if (!plain) {
            wipe_values(out);
            return NULL;
        }
        json_object_set_new(out, k, json_string(plain));
        pc_secret_free(plain);
    }
    return out;
}

json_t *pc_plugin_row_get(pc_db *db, const char *id_or_key, pc_error_t *err)
{
    if (!id_or_key || !*id_or_key) {
        pc_error_set(err, 404, "Plugin not found");
        return NULL;
    }
    pc_error_t e = PC_ERROR_INIT;
    json_t *row = pc_db_query_one_s(db, "SELECT * FROM plugins WHERE id = ? OR plugin_key = ?",
                                    json_pack("[s,s]", id_or_key, id_or_key), &e);
    if (!row) {
        if (pc_error_is_set(&e))
            pc_error_move(err, &e);
        else
            pc_error_set(err, 404, "Plugin not found");
    }
    return row;
}

json_t *pc_plugin_rows(pc_db *db, pc_error_t *err)
{
    json_t *rows = NULL;
    if (pc_db_query_s(db, "SELECT * FROM plugins ORDER BY install_order, installed_at", json_array(),
                      &rows, err) < 0)
        return NULL;
    return rows;
}

json_t *pc_plugin_row_insert(pc_db *db, const pc_plugin_package *pkg, json_t *config, json_t *env,
                             pc_error_t *err)
{
    const char *key = pc_json_str(pkg->manifest, "id");
    char id[PC_UUID_LEN + 1], now[PC_ISO_LEN + 1];
    /* v4: upstream clients recognise plugin ids with a v1-5 uuid pattern. */
    pc_uuid_v4(id);
    pc_iso_now(now);
    if (pc_db_begin(db, err) < 0)
        return NULL;
    json_t *dup = pc_db_query_one_s(db, "SELECT id FROM plugins WHERE plugin_key = ?",
                                    json_pack("[s]", key), err);
    if (dup) {
        json_decref(dup);
        pc_db_rollback(db);
        pc_error_set(err, 409, "Plugin already installed: %s", key);
        return NULL;
    }
    if (pc_error_is_set(err)) {
        pc_db_rollback(db);
        return NULL;
    }
    _cleanup_json_ json_t *sealed_env =
        seal_values(env, id, SEAL_ENV, pkg->manifest, true, NULL, err);
    _cleanup_json_ json_t *sealed_config =
        sealed_env ? seal_values(config, id, SEAL_CONFIG, pkg->manifest, true, NULL, err) : NULL;
    if (!sealed_config) {
        pc_db_rollback(db);
        return NULL;
    }
    json_t *order = pc_db_query_one_s(db, "SELECT COALESCE(MAX(install_order),0)+1 AS n FROM plugins",
                                      json_array(), err);
    int64_t n = pc_json_int(order, "n", 1);
    json_decref(order);
    int rc = pc_db_exec_s(
        db,
        "INSERT INTO plugins (id, plugin_key, package_name, version, api_version, categories, "
        "manifest_json, status, enabled, install_order, package_path, worker_path, worker_is_js, "
        "config, env, installed_at, updated_at) VALUES (?,?,?,?,?,?,?,'installed',1,?,?,?,?,?,?,?,?)",
        json_pack("[s,s,s,s,i,O,O,I,s,s,b,o,o,s,s]", id, key, pkg->package_name,
                  pc_json_str(pkg->manifest, "version"), 1,
                  json_object_get(pkg->manifest, "categories"), pkg->manifest, (json_int_t)n,
                  pkg->dir, pkg->worker_path, pkg->worker_is_js, json_incref(sealed_config),
                  json_incref(sealed_env), now, now),
        NULL, err);
    if (rc < 0 || pc_db_commit(db, err) < 0) {
        pc_db_rollback(db);
        return NULL;
    }
    return pc_plugin_row_get(db, id, err);
}

int pc_plugin_row_update_status(pc_db *db, const char *id, int enabled, const char *status,
                                const char *last_error, pc_error_t *err)
{
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    return pc_db_exec_s(db,
                        "UPDATE plugins SET enabled = CASE WHEN ? < 0 THEN enabled ELSE ? END, "
                        "status = ?, last_error = ?, updated_at = ? WHERE id = ?",
                        json_pack("[i,i,s,s?,s,s]", enabled, enabled, status, last_error, now, id),
                        NULL, err);
}

int pc_plugin_row_delete(pc_db *db, const char *id, pc_error_t *err)
{
    return pc_db_exec_s(db, "DELETE FROM plugins WHERE id = ?", json_pack("[s]", id), NULL, err);
}

int pc_plugin_row_start(pc_plugin_host *host, json_t *row, int64_t wait_ms, pc_error_t *err)
{
    _cleanup_json_ json_t *manifest = pc_json_from_text(pc_json_str(row, "manifest_json"));
    _cleanup_json_ json_t *stored_config = pc_json_from_text(pc_json_str(row, "config"));
    _cleanup_json_ json_t *stored_env = pc_json_from_text(pc_json_str(row, "env"));
    if (!json_is_object(manifest))
        return pc_error_set(err, 500, "plugin %s has an unreadable stored manifest",
                            pc_json_str(row, "plugin_key"));
    const char *pid = pc_json_str(row, "id");
    json_t *env = unseal_values(stored_env, pid ? pid : "", SEAL_ENV, manifest, err);
    json_t *config =
        env ? unseal_values(stored_config, pid ? pid : "", SEAL_CONFIG, manifest, err) : NULL;
    if (!config) {
        if (env)
            wipe_values(env);
        pc_error_prefix(err, "cannot start plugin %s", pc_json_str(row, "plugin_key"));
        return -1;
    }
    pc_plugin_spec s = {
        .plugin_key = pc_json_str(row, "plugin_key"),
        .plugin_id = pc_json_str(row, "id"),
        .package_dir = pc_json_str(row, "package_path"),
        .worker_path = pc_json_str(row, "worker_path"),
        .worker_is_js = pc_json_int(row, "worker_is_js", 0) != 0,
        .manifest = manifest,
        .config = json_is_object(stored_config) ? config : NULL,
        .env = json_is_object(stored_env) ? env : NULL,
    };
    /* The host keeps its own copies for restarts; ours are wiped. */
    int rc = pc_plugin_host_add(host, &s, wait_ms, err);
    wipe_values(env);
    wipe_values(config);
    return rc;
}

int pc_plugin_seal_rows(pc_db *db, pc_error_t *err)
{
    json_t *rows = pc_plugin_rows(db, err);
    if (!rows)
        return -1;
    size_t i, sealed = 0;
    json_t *row;
    int rc = 0;
    json_array_foreach(rows, i, row)
    {
        const char *id = pc_json_str(row, "id");
        _cleanup_json_ json_t *manifest = pc_json_from_text(pc_json_str(row, "manifest_json"));
        _cleanup_json_ json_t *env = pc_json_from_text(pc_json_str(row, "env"));
        _cleanup_json_ json_t *config = pc_json_from_text(pc_json_str(row, "config"));
        if (!id || !json_is_object(manifest))
            continue;
        bool changed = false;
        _cleanup_json_ json_t *senv =
            seal_values(env, id, SEAL_ENV, manifest, false, &changed, err);
        _cleanup_json_ json_t *sconf =
            senv ? seal_values(config, id, SEAL_CONFIG, manifest, false, &changed, err) : NULL;
        if (!sconf) {
            rc = -1;
            break;
        }
        if (!changed)
            continue;
        if (!sealed++)
            /* Overwrite the plaintext's old bytes instead of leaving them
             * in free space of the page (this thread's connection only). */
            pc_db_exec_s(db, "PRAGMA secure_delete=ON", NULL, NULL, NULL);
        if (pc_db_exec_s(db, "UPDATE plugins SET env = ?, config = ? WHERE id = ?",
                         json_pack("[O,O,s]", senv, sconf, id), NULL, err) < 0) {
            rc = -1;
            break;
        }
    }
    json_decref(rows);
    if (sealed) {
        /* Old page images in the WAL still hold the plaintext until a
         * checkpoint resets it. */
        pc_error_t e = PC_ERROR_INIT;
        pc_db_exec_s(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, &e);
        pc_error_clear(&e);
        pc_info("sealed plaintext env/secret config values of %zu plugin(s)", sealed);
    }
    return rc;
}

static const char *upstream_status(json_t *row, json_t *live)
{
    if (!pc_json_int(row, "enabled", 1))
        return "disabled";
    const char *state = live ? pc_json_str(live, "state") : NULL;
    if (!state)
        return pc_json_str(row, "status") && !strcmp(pc_json_str(row, "status"), "error")
                   ? "error"
                   : "installed";
    if (!strcmp(state, "running"))
        return "ready";
    if (!strcmp(state, "error"))
        return "error";
    return "installed";
}

json_t *pc_plugin_record(json_t *row, pc_plugin_host *host)
{
    const char *key = pc_json_str(row, "plugin_key");
    json_t *live = NULL;
    if (host && key) {
        pc_error_t e = PC_ERROR_INIT;
        live = pc_plugin_host_status(host, key, &e);
        pc_error_clear(&e);
    }
    json_t *rec = json_object();
    json_object_set(rec, "id", json_object_get(row, "id"));
    json_object_set(rec, "pluginKey", json_object_get(row, "plugin_key"));
    json_object_set(rec, "packageName", json_object_get(row, "package_name"));
    json_object_set(rec, "version", json_object_get(row, "version"));
    json_object_set(rec, "apiVersion", json_object_get(row, "api_version"));
    json_object_set_new(rec, "categories", pc_json_from_text(pc_json_str(row, "categories")));
    json_object_set_new(rec, "manifestJson", pc_json_from_text(pc_json_str(row, "manifest_json")));
    json_object_set_new(rec, "status", json_string(upstream_status(row, live)));
    json_object_set(rec, "installOrder", json_object_get(row, "install_order"));
    json_object_set(rec, "packagePath", json_object_get(row, "package_path"));
    const char *le = live ? pc_json_str(live, "lastError") : NULL;
    if (!le)
        le = pc_json_str(row, "last_error");
    json_object_set_new(rec, "lastError", le ? json_string(le) : json_null());
    json_object_set(rec, "installedAt", json_object_get(row, "installed_at"));
    json_object_set(rec, "updatedAt", json_object_get(row, "updated_at"));
    json_object_set_new(rec, "enabled", json_boolean(pc_json_int(row, "enabled", 1) != 0));
    /* "o" steals: live values are increfed, fresh ones are handed over. */
    json_t *worker = json_pack(
        "{s:s,s:o?,s:o?,s:o?}", "state", live ? pc_json_str(live, "state") : "stopped", "pid",
        live ? json_incref(json_object_get(live, "pid")) : json_null(), "restartCount",
        live ? json_incref(json_object_get(live, "restartCount")) : json_integer(0),
        "supportedMethods",
        live ? json_incref(json_object_get(live, "supportedMethods")) : json_array());
    json_object_set_new(rec, "worker", worker);
    json_decref(live);
    return rec;
}

int pc_plugin_host_start(pc_app *app, pc_error_t *err)
{
    if (pc_secrets_init(app->cfg.data_dir, err) < 0 || pc_plugin_seal_rows(app->db, err) < 0) {
        pc_error_prefix(err, "cannot seal plugin secrets");
        return -1;
    }
    pc_plugin_host_opts o = {.instance_id = app->instance_id, .host_version = PC_VERSION};
    pc_plugin_host *h = pc_plugin_host_new(app->loop, &o, err);
    if (!h)
        return -1;
    app->plugins = h;
    json_t *rows = pc_plugin_rows(app->db, err);
    if (!rows)
        return -1;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (!pc_json_int(row, "enabled", 1))
            continue;
        pc_error_t e = PC_ERROR_INIT;
        /* Start without waiting: one slow plugin must not delay the others
         * or the HTTP server; calls made meanwhile wait for initialize. */
        if (pc_plugin_row_start(h, row, 0, &e) < 0)
            pc_warn("cannot start plugin %s: %s", pc_json_str(row, "plugin_key"), e.msg);
        pc_error_clear(&e);
    }
    json_decref(rows);
    return 0;
}

void pc_plugin_host_stop(pc_app *app)
{
    if (!app->plugins)
        return;
    pc_plugin_host *h = app->plugins;
    app->plugins = NULL;
    pc_plugin_host_free(h);
}
