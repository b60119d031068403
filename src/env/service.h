/* The environment layer's daemon service (see daemon/services.h): start
 * loads the secrets master key and creates the leases directory; ready
 * starts the lease thread, which reconciles leases a dead daemon left
 * active (after the plugin host is up) and then sweeps reusable leases
 * (idle TTL, pending cleanups with their retries); stop wakes that thread
 * and waits for it, before the plugin host stops. */
#ifndef PC_ENV_SERVICE_H
#define PC_ENV_SERVICE_H

#include "app.h"
#include "lib/error.h"

int pc_env_service_start(pc_app *app, pc_error_t *err);
void pc_env_service_ready(pc_app *app);
void pc_env_service_stop(pc_app *app);

#endif
