#include "daemon/services.h"
#include "env/service.h"
#include "http/auth.h"
#include "plugin/host.h"
#include "run/runtime.h"

static int heartbeats_start(pc_app *app, pc_error_t *err)
{
    if (pc_runtime_start(app, err) < 0)
        return -1;
    pc_auth_set_jwt_verifier(pc_daemon_jwt_auth);
    return 0;
}

/* Designated initialisers: a hook added to pc_service later leaves these
 * entries valid (NULL) under -Wmissing-field-initializers. */
const pc_service pc_services[] = {
    {.name = "plugins", .start = pc_plugin_host_start, .stop = pc_plugin_host_stop},
    /* After the plugin host: start-up lease reconciliation calls providers. */
    {.name = "environments",
     .start = pc_env_service_start,
     .ready = pc_env_service_ready,
     .stop = pc_env_service_stop},
    /* After environments: services drain and stop in reverse order, so
     * running runs finish (or are stopped) and their leases are released
     * while the environment layer is still up. The drain runs before the
     * HTTP server stops, so runs finishing in the grace period can still call
     * the API. */
    {.name = "heartbeats",
     .start = heartbeats_start,
     .ready = pc_runtime_ready,
     .drain = pc_runtime_drain,
     .stop = pc_runtime_stop},
    {.name = NULL},
};
