#include "cli/services.h"
#include "plugin/host.h"
#include "env/service.h"
#include "run/runtime.h"

const pc_service pc_services[] = {
    {"plugins", pc_plugin_host_start, NULL, pc_plugin_host_stop},
    /* After the plugin host: start-up lease reconciliation calls providers. */
    {"environments", pc_env_service_start, pc_env_service_ready, pc_env_service_stop},
    /* After environments: services stop in reverse order, so running runs
     * are stopped and their leases released while the environment layer
     * is still up. */
    {"heartbeats", pc_runtime_start, pc_runtime_ready, pc_runtime_stop},
    {NULL, NULL, NULL, NULL},
};
