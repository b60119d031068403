/*
 * The driver table (see driver.h) and the entry points that only dispatch
 * through it.
 */
#include <string.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"

/* The order is the API's: capabilities list drivers in it. */
static const pc_env_driver *const drivers[] = {
    &pc_env_driver_local,
    &pc_env_driver_ssh,
    &pc_env_driver_sandbox,
    &pc_env_driver_plugin,
    NULL,
};

const pc_env_driver *pc_env_driver_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; drivers[i]; i++)
        if (!strcmp(drivers[i]->name, name))
            return drivers[i];
    return NULL;
}

const pc_env_driver *const *pc_env_drivers(void) { return drivers; }

json_t *pc_env_probe(pc_app *app, const char *company_id, const char *env_id,
                     const char *driver, json_t *cfg, pc_error_t *err)
{
    const pc_env_driver *d = pc_env_driver_find(driver);
    if (d && d->probe)
        return d->probe(app, company_id, env_id, cfg, err);
    char *summary = pc_xasprintf("Environment driver \"%s\" cannot be probed.", driver);
    json_t *out = json_pack("{s:b,s:s,s:s,s:{}}", "ok", 0, "driver", driver, "summary", summary,
                            "details");
    free(summary);
    return out;
}
