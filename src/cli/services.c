#include "cli/services.h"

const pc_service pc_services[] = {
    {NULL, NULL, NULL, NULL},
};
