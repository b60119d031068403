/*
 * The daemon's shared context. One pc_app exists per `paperclip serve`; every
 * handler receives it through its request. Fields are set up before the HTTP
 * server starts and torn down after it stops, so handlers may read them
 * without locks. Mutable runtime state lives behind the modules' own APIs
 * (the store, the plugin host, the runtime loop), never in here.
 */
#ifndef PC_APP_H
#define PC_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/loop.h"
#include "store/db.h"

#define PC_VERSION "0.1.0"

typedef enum { PC_AUTH_LOCAL_TRUSTED, PC_AUTH_AUTHENTICATED } pc_auth_mode;

typedef struct pc_config {
    char data_dir[1024];
    char bind[256];
    int port;
    int log_json;
    size_t body_limit;          /* max request body bytes (default 10 MiB) */
    pc_auth_mode auth_mode;
    bool allow_insecure_bind;   /* local_trusted on a non-loopback bind */
    char public_url[512];       /* optional public base URL ("" if unset) */
    char api_url[512];          /* PAPERCLIP_API_URL override for agents ("" if unset) */
    char allowed_hostnames[1024]; /* comma-separated */
    bool allow_private_fetch;   /* server-side fetches may reach loopback/private targets */
} pc_config;

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
    volatile int stopping;
} pc_app;

#endif
