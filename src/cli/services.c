#include "cli/services.h"
#include "plugin/host.h"

const pc_service pc_services[] = {
    {"plugins", pc_plugin_host_start, NULL, pc_plugin_host_stop},
    {NULL, NULL, NULL, NULL},
};
