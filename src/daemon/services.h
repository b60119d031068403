/*
 * Daemon services started by `paperclip serve` in table order after the
 * store and the runtime loop are up. start() failing aborts start-up; ready()
 * runs once the HTTP server listens (app->listen_url is set).
 *
 * On SIGTERM/SIGINT, drain() runs for every service in reverse order while
 * the HTTP API is still up (app->stopping is already set): a service finishes
 * or winds down work that may still call the API (running heartbeat runs).
 * Then the HTTP server stops, then stop() runs in reverse order and only
 * tears down. drain() is not called when start-up fails, so stop() must cope
 * with a service that was never drained. Every hook but start may be NULL;
 * the table uses designated initialisers so a new hook needs no edits there.
 */
#ifndef PC_DAEMON_SERVICES_H
#define PC_DAEMON_SERVICES_H

#include "app.h"
#include "lib/error.h"

typedef struct pc_service {
    const char *name;
    int (*start)(pc_app *app, pc_error_t *err);
    void (*ready)(pc_app *app);
    void (*stop)(pc_app *app);
    void (*drain)(pc_app *app);
} pc_service;

extern const pc_service pc_services[];

int pc_daemon_serve(int argc, char **argv);

/* Every route table of the api layer in match order, NULL-terminated; serve
 * hands it to the HTTP layer (pc_http_set_routes). */
struct pc_route;
extern const struct pc_route *const pc_daemon_routes[];

struct pc_req;
/* The HTTP layer's JWT verifier (see http/auth.h): a valid run token acts as
 * its agent, bound to its run. Installed once the heartbeat layer, which
 * owns the signing secret, has started. */
int pc_daemon_jwt_auth(struct pc_req *req, const char *token, pc_error_t *err);

#endif
