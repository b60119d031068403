/*
 * The daemon's shared context. One pc_app exists per `paperclip serve`; every
 * handler receives it through its request. Fields are set up before the HTTP
 * server starts and torn down after it stops, so handlers may read them
 * without locks. Mutable runtime state lives behind the modules' own APIs
 * (the store, the plugin host, the runtime loop), never in here.
 */
#ifndef PC_APP_H
#define PC_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/loop.h"
#include "store/db.h"

#define PC_VERSION "0.1.0"

struct pc_plugin_host;
struct pc_runtime;

typedef struct pc_app {
    pc_config cfg;
    pc_db *db;
    pc_loop *loop;
    struct pc_plugin_host *plugins; /* NULL until the plugin host is started */
    struct pc_runtime *runtime;     /* heartbeat runtime; NULL until started */
    char instance_id[40];
    char listen_url[600];           /* http://bind:port as actually bound */
    char agent_listen_url[600];     /* the agent ingress, http://agentBind:agentPort */
    /* Set by the main thread when SIGTERM arrives; read by the scheduler and
     * the lease layer on their own threads. */
    atomic_bool stopping;
} pc_app;

#endif
