/* Whether an environment may be selected for an agent's runs (env.h). */
#include <string.h>

#include "env/internal.h"
#include "lib/json.h"

/* agents.defaultEnvironmentId: an active environment of the same company
 * that can run work (not the probe-only built-in fake sandbox). */
int pc_env_validate_selection(pc_app *app, const char *company_id, const char *env_id,
                              pc_error_t *err)
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
    const pc_env_driver *d = pc_env_driver_find(pc_json_str(env, "driver"));
    if (strcmp(pc_json_str(env, "companyId"), company_id) != 0)
        rc = pc_error_set(err, 422, "Environment not found.");
    else if (strcmp(pc_json_str(env, "status"), "active") != 0)
        rc = pc_error_set(err, 422, "Environment \"%s\" is not active (status: %s).",
                          pc_json_str(env, "name"), pc_json_str(env, "status"));
    else if (d && d->check_runnable)
        rc = d->check_runnable(env, err);
    json_decref(env);
    return rc;
}
