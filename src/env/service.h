/* The environment layer's daemon service (see daemon/services.h): start
 * loads the secrets master key and creates the leases directory; ready
 * reconciles leases a dead daemon left active (on its own thread, after the
 * plugin host is up); stop waits for that thread. */
#ifndef PC_ENV_SERVICE_H
#define PC_ENV_SERVICE_H

#include "app.h"
#include "lib/error.h"

int pc_env_service_start(pc_app *app, pc_error_t *err);
void pc_env_service_ready(pc_app *app);
void pc_env_service_stop(pc_app *app);

#endif
