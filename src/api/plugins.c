/*
 * /api/plugins: install, list, inspect, enable/disable, uninstall plugins
 * and read their health and logs. Paths and record shapes follow upstream's
 * server/src/routes/plugins.ts; like upstream, every route needs the board.
 *
 * Only local-path installs exist here (no npm registry access from the
 * daemon): {"packageName": "/abs/dir", "isLocalPath": true}. Our extension:
 * optional "config" (sent in initialize) and "env" (extra worker env values,
 * e.g. a provider's credential variable) objects.
 */
#include <string.h>

#include "http/http.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "plugin/host.h"
#include "plugin/manifest.h"
#include "plugin/registry.h"

/* Install and enable wait this long for the worker's first initialize
 * outcome, so the answer shows `ready` or the reason it is not. */
#define START_WAIT_MS 20000

static json_t *load_row(pc_req *req, pc_error_t *err)
{
    return pc_plugin_row_get(req->app->db, pc_req_param(req, "pluginId"), err);
}

static int plugins_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *rows = pc_plugin_rows(req->app->db, err);
    if (!rows)
        return -1;
    const char *status = pc_req_query(req, "status");
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *rec = pc_plugin_record(row, req->app->plugins);
        if (status && strcmp(status, pc_json_str(rec, "status")))
            json_decref(rec);
        else
            json_array_append_new(out, rec);
    }
    return pc_resp_json(resp, 200, out);
}

static int plugins_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *row = load_row(req, err);
    if (!row)
        return -1;
    return pc_resp_json(resp, 200, pc_plugin_record(row, req->app->plugins));
}

static int check_env_object(json_t *env, pc_error_t *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (!json_is_string(v))
            return pc_error_validation(err, "env", "env.%s must be a string", k);
    }
    return 0;
}

static int plugins_install(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    json_t *body = req->body;
    if (pc_json_check_is_object(body, err) < 0)
        return -1;
    const char *name = NULL;
    bool local = false, local_present = false;
    json_t *config = NULL, *env = NULL;
    if (pc_json_check_string(body, "packageName", PC_J_REQUIRED, 1, 4096, &name, err) < 0 ||
        pc_json_check_bool(body, "isLocalPath", PC_J_OPTIONAL, &local, &local_present, err) < 0 ||
        pc_json_check_object(body, "config", PC_J_OPTIONAL, &config, err) < 0 ||
        pc_json_check_object(body, "env", PC_J_OPTIONAL, &env, err) < 0)
        return -1;
    if (!local)
        return pc_error_set(err, 422,
                            "only local-path installs are supported: send "
                            "{\"packageName\": \"/absolute/plugin/dir\", \"isLocalPath\": true}");
    if (env && check_env_object(env, err) < 0)
        return -1;

    pc_plugin_package pkg;
    if (pc_plugin_package_load(name, &pkg, err) < 0)
        return -1;
    json_t *row = pc_plugin_row_insert(req->app->db, &pkg, config, env, err);
    pc_plugin_package_clear(&pkg);
    if (!row)
        return -1;

    if (req->app->plugins) {
        pc_error_t e = PC_ERROR_INIT;
        int rc = pc_plugin_row_start(req->app->plugins, row, START_WAIT_MS, &e);
        pc_error_t ue = PC_ERROR_INIT;
        pc_plugin_row_update_status(req->app->db, pc_json_str(row, "id"), -1,
                                    rc < 0 ? "error" : "ready", rc < 0 ? e.msg : NULL, &ue);
        if (rc < 0)
            pc_warn("plugin %s installed but did not start: %s", pc_json_str(row, "plugin_key"),
                    e.msg);
        pc_error_clear(&e);
        pc_error_clear(&ue);
        json_t *fresh = pc_plugin_row_get(req->app->db, pc_json_str(row, "id"), err);
        if (fresh) {
            json_decref(row);
            row = fresh;
        }
    }
    pc_info("plugin %s installed from %s", pc_json_str(row, "plugin_key"),
            pc_json_str(row, "package_path"));
    json_t *rec = pc_plugin_record(row, req->app->plugins);
    json_decref(row);
    return pc_resp_json(resp, 200, rec);
}

static int set_enabled(pc_req *req, pc_resp *resp, bool enable, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *row = load_row(req, err);
    if (!row)
        return -1;
    const char *id = pc_json_str(row, "id");
    const char *key = pc_json_str(row, "plugin_key");
    pc_plugin_host *h = req->app->plugins;
    pc_error_t e = PC_ERROR_INIT;
    /* Enabling is also the way out of `error`: the old worker record (and
     * its crash history) is dropped and a fresh one starts. */
    if (h && pc_plugin_host_has(h, key) && pc_plugin_host_remove(h, key, &e) < 0 && e.status != 404)
        pc_warn("plugin %s: %s", key, e.msg);
    pc_error_clear(&e);
    const char *status = enable ? "ready" : "disabled";
    const char *last = NULL;
    if (enable && h) {
        if (pc_plugin_row_start(h, row, START_WAIT_MS, &e) < 0) {
            status = "error";
            last = e.msg;
        }
    }
    int rc = pc_plugin_row_update_status(req->app->db, id, enable ? 1 : 0, status, last, err);
    pc_error_clear(&e);
    if (rc < 0)
        return -1;
    _cleanup_json_ json_t *fresh = pc_plugin_row_get(req->app->db, id, err);
    if (!fresh)
        return -1;
    return pc_resp_json(resp, 200, pc_plugin_record(fresh, h));
}

static int plugins_enable(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    return set_enabled(req, resp, true, err);
}

static int plugins_disable(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    return set_enabled(req, resp, false, err);
}

static int plugins_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *row = load_row(req, err);
    if (!row)
        return -1;
    const char *key = pc_json_str(row, "plugin_key");
    pc_plugin_host *h = req->app->plugins;
    pc_error_t e = PC_ERROR_INIT;
    if (h && pc_plugin_host_remove(h, key, &e) < 0 && e.status != 404)
        pc_warn("plugin %s: %s", key, e.msg);
    pc_error_clear(&e);
    json_t *rec = pc_plugin_record(row, NULL);
    if (pc_plugin_row_delete(req->app->db, pc_json_str(row, "id"), err) < 0) {
        json_decref(rec);
        return -1;
    }
    json_object_set_new(rec, "status", json_string("uninstalled"));
    pc_info("plugin %s uninstalled", key);
    return pc_resp_json(resp, 200, rec);
}

static json_t *check(const char *name, bool passed, const char *message)
{
    return json_pack("{s:s,s:b,s:s?}", "name", name, "passed", passed, "message", message);
}

static int plugins_health(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *row = load_row(req, err);
    if (!row)
        return -1;
    json_t *rec = pc_plugin_record(row, req->app->plugins);
    const char *status = pc_json_str(rec, "status");
    json_t *checks = json_array();
    bool healthy = false;
    json_t *details = NULL;
    const char *wstate = pc_json_str(json_object_get(rec, "worker"), "state");
    /* A starting worker is asked too: the call waits for its initialize. */
    if (strcmp(status, "ready") && !(wstate && !strcmp(wstate, "starting") &&
                                     json_is_true(json_object_get(rec, "enabled")))) {
        char msg[256];
        snprintf(msg, sizeof msg, "worker is %s", wstate ? wstate : "stopped");
        json_array_append_new(checks, check("worker", false, msg));
    } else {
        json_array_append_new(checks, check("worker", true, NULL));
        json_t *res = NULL;
        pc_error_t e = PC_ERROR_INIT;
        if (pc_plugin_call(req->app->plugins, pc_json_str(row, "plugin_key"), "health", NULL, 0,
                           &res, &e) < 0) {
            json_array_append_new(checks, check("health", false, e.msg));
        } else {
            const char *hs = pc_json_str(res, "status");
            healthy = hs && !strcmp(hs, "ok");
            json_object_set_new(rec, "status", json_string("ready"));
            status = "ready";
            json_array_append_new(checks, check("health", healthy, pc_json_str(res, "message")));
            details = json_incref(res);
        }
        json_decref(res);
        pc_error_clear(&e);
    }
    json_t *out = json_pack("{s:O,s:s,s:b,s:o}", "pluginId", json_object_get(rec, "id"), "status",
                            status, "healthy", healthy, "checks", checks);
    json_t *le = json_object_get(rec, "lastError");
    if (json_is_string(le))
        json_object_set(out, "lastError", le);
    if (details)
        json_object_set_new(out, "details", details);
    json_decref(rec);
    return pc_resp_json(resp, 200, out);
}

static int plugins_logs(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *row = load_row(req, err);
    if (!row)
        return -1;
    long limit = 200;
    const char *ls = pc_req_query(req, "limit");
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (*end || limit < 1 || limit > 1000)
            return pc_error_validation(err, "limit", "limit must be an integer 1..1000");
    }
    json_t *out = json_array();
    pc_error_t e = PC_ERROR_INIT;
    _cleanup_json_ json_t *logs =
        req->app->plugins ? pc_plugin_host_logs(req->app->plugins, pc_json_str(row, "plugin_key"), &e)
                          : NULL;
    pc_error_clear(&e);
    size_t n = json_array_size(logs);
    size_t start = n > (size_t)limit ? n - (size_t)limit : 0;
    /* Newest first, like upstream's plugin_logs query. */
    for (size_t i = n; i > start; i--) {
        json_t *l = json_array_get(logs, i - 1);
        json_array_append_new(out, json_pack("{s:O,s:O,s:O,s:{s:O},s:O}", "pluginId",
                                             json_object_get(row, "id"), "level",
                                             json_object_get(l, "level"), "message",
                                             json_object_get(l, "message"), "meta", "source",
                                             json_object_get(l, "source"), "createdAt",
                                             json_object_get(l, "ts")));
    }
    return pc_resp_json(resp, 200, out);
}

const pc_route pc_routes_plugins[] = {
    {"GET", "/api/plugins", plugins_list, 0},
    {"POST", "/api/plugins/install", plugins_install, 0},
    {"GET", "/api/plugins/:pluginId", plugins_get, 0},
    {"GET", "/api/plugins/:pluginId/health", plugins_health, 0},
    {"GET", "/api/plugins/:pluginId/logs", plugins_logs, 0},
    {"POST", "/api/plugins/:pluginId/enable", plugins_enable, 0},
    {"POST", "/api/plugins/:pluginId/disable", plugins_disable, 0},
    {"DELETE", "/api/plugins/:pluginId", plugins_delete, 0},
    {NULL, NULL, NULL, 0},
};
