/*
 * Daemon services started by `paperclip serve` in table order after the
 * store and the runtime loop are up, and stopped in reverse order after the
 * HTTP server has stopped. start() failing aborts start-up; ready() runs once
 * the HTTP server listens (app->listen_url is set).
 */
#ifndef PC_CLI_SERVICES_H
#define PC_CLI_SERVICES_H

#include "app.h"
#include "lib/error.h"

typedef struct pc_service {
    const char *name;
    int (*start)(pc_app *app, pc_error_t *err);
    void (*ready)(pc_app *app);
    void (*stop)(pc_app *app);
} pc_service;

extern const pc_service pc_services[];

int pc_cli_serve(int argc, char **argv);

#endif
