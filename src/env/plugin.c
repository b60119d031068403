/*
 * The plugin driver: environments served by a plugin's own environment
 * driver (pluginKey, driverKey). The plugin side is not implemented yet, so
 * the driver validates and stores the config, probes as "not ready" and
 * refuses leases before any row is written. The hooks a working driver
 * needs (acquire, realize, execute, release, destroy) are the slots a
 * plugin-backed implementation fills in.
 *
 * Config: strict {pluginKey, driverKey, driverConfig (object, {})}.
 */
#include <string.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"

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

/* A config given replaces the stored one whole (no merge). */
static json_t *pc_plugin_normalize(pc_envcfg_ctx *c, json_t *input, json_t *base,
                                   pc_error_t *err)
{
    (void)c;
    return pc_plugin_normalize_config(input ? input : base, err);
}

static json_t *pc_plugin_probe(pc_app *app, const char *company_id, const char *env_id,
                               json_t *cfg, pc_error_t *err)
{
    (void)app;
    (void)company_id;
    (void)env_id;
    (void)err;
    const char *pk = pc_json_str(cfg, "pluginKey"), *dk = pc_json_str(cfg, "driverKey");
    char *summary = pc_xasprintf("Plugin environment driver \"%s:%s\" is not ready.",
                                 pk ? pk : "", dk ? dk : "");
    json_t *out = json_pack("{s:b,s:s,s:s,s:{}}", "ok", 0, "driver", "plugin", "summary", summary,
                            "details");
    free(summary);
    return out;
}

static int pc_plugin_admit(pc_lease *l, const char **row_provider, pc_error_t *err)
{
    (void)l;
    (void)row_provider;
    return pc_error_set(err, 422, "Plugin environment drivers cannot execute runs yet.");
}

const pc_env_driver pc_env_driver_plugin = {
    .name = "plugin",
    .runs = false,
    .normalize = pc_plugin_normalize,
    .probe = pc_plugin_probe,
    .admit = pc_plugin_admit,
};
