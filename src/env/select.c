/*
 * Which environments an agent may select (env.h): the adapter × driver ×
 * sandbox-provider matrix, shared by the capabilities route and every
 * selection write so the two cannot drift apart.
 *
 * Only adapters this daemon executes are in the matrix. http runs its
 * request from the daemon itself, so only the local driver means anything
 * for it; process, claude_local and codex_local run their command through
 * a lease and so can use every driver that runs work (local, ssh, sandbox)
 * and every sandbox provider a running plugin offers.
 */
#include <stdio.h>
#include <string.h>

#include "env/internal.h"
#include "lib/json.h"
#include "plugin/host.h"

const char *const pc_env_exec_adapters[] = {"process", "http", "claude_local", "codex_local",
                                            NULL};

/* Adapters that run commands through a lease, hence on any runnable driver. */
static const char *const lease_adapters[] = {"process", "claude_local", "codex_local", NULL};

/* Providers that execute on the host with no isolation at all; offered for
 * tests, flagged in capabilities so nobody mistakes them for a sandbox. */
static const char *const test_only_providers[] = {"fake-plugin", NULL};

static bool pc_in(const char *const *list, const char *s)
{
    for (; s && *list; list++)
        if (!strcmp(*list, s))
            return true;
    return false;
}

bool pc_env_adapter_executes(const char *adapter) { return pc_in(pc_env_exec_adapters, adapter); }

bool pc_env_adapter_driver_ok(const char *adapter, const pc_env_driver *d)
{
    if (!d->runs)
        return false;
    return !d->remote || pc_in(lease_adapters, adapter);
}

bool pc_env_adapter_provider_ok(const char *adapter) { return pc_in(lease_adapters, adapter); }

bool pc_env_provider_test_only(const char *provider)
{
    return pc_in(test_only_providers, provider);
}

json_t *pc_env_run_providers(pc_app *app)
{
    json_t *out = json_array();
    json_t *list = app->plugins ? pc_plugin_list_sandbox_providers(app->plugins) : NULL;
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        const char *key = pc_json_str(p, "driverKey");
        if (key && json_is_true(json_object_get(p, "running")))
            json_array_append_new(out, json_string(key));
    }
    json_decref(list);
    return out;
}

/* Upstream's refusal for a driver the adapter cannot use. */
static int pc_refuse_driver(const char *adapter, const char *driver, pc_error_t *err)
{
    char list[256] = "";
    size_t off = 0;
    for (const pc_env_driver *const *d = pc_env_drivers(); *d && off < sizeof list; d++)
        if (pc_env_adapter_driver_ok(adapter, *d))
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "",
                                    (*d)->name);
    return pc_error_set(err, 422, "Environment driver \"%s\" is not allowed here. Allowed drivers: %s",
                        driver, list);
}

static int pc_check_provider(pc_app *app, const char *adapter, json_t *env, pc_error_t *err)
{
    const char *prov = pc_json_str(pc_json_obj(env, "config"), "provider");
    if (!prov || !strcmp(prov, "fake"))
        return 0; /* the driver's check_runnable has the text for these */
    json_t *allowed = pc_env_adapter_provider_ok(adapter) ? pc_env_run_providers(app) : json_array();
    bool ok = false;
    char list[512] = "";
    size_t off = 0, i;
    json_t *k;
    json_array_foreach(allowed, i, k) {
        if (!strcmp(json_string_value(k), prov))
            ok = true;
        if (off < sizeof list)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "",
                                    json_string_value(k));
    }
    json_decref(allowed);
    if (ok)
        return 0;
    return pc_error_set(err, 422,
                        "Environment sandbox provider \"%s\" is not allowed here. Allowed "
                        "providers: %s",
                        prov, off ? list : "none");
}

int pc_env_validate_selection(pc_app *app, const char *company_id, const char *env_id,
                              const char *adapter, pc_error_t *err)
{
    pc_error_t e = PC_ERROR_INIT;
    json_t *env = pc_env_load(app, env_id, &e);
    if (!env) {
        int st = e.status;
        pc_error_clear(&e);
        return st == 404 ? pc_error_set(err, 422, "Environment not found.")
                         : pc_error_set(err, 500, "cannot load environment %s", env_id);
    }
    int rc = 0;
    const char *driver = pc_json_str(env, "driver");
    const pc_env_driver *d = pc_env_driver_find(driver);
    if (strcmp(pc_json_str(env, "companyId"), company_id) != 0)
        rc = pc_error_set(err, 422, "Environment not found.");
    else if (strcmp(pc_json_str(env, "status"), "active") != 0)
        rc = pc_error_set(err, 422, "Environment \"%s\" is not active (status: %s).",
                          pc_json_str(env, "name"), pc_json_str(env, "status"));
    else if (d && d->check_runnable && d->check_runnable(env, err) < 0)
        rc = -1;
    else if (adapter && (!d || !pc_env_adapter_driver_ok(adapter, d)))
        rc = pc_refuse_driver(adapter, driver, err);
    else if (adapter && !strcmp(driver, "sandbox"))
        rc = pc_check_provider(app, adapter, env, err);
    json_decref(env);
    return rc;
}
