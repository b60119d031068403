/*
 * Daemon configuration: flags > environment > <data-dir>/config.json >
 * defaults. The data dir itself comes from --data-dir, $PAPERCLIP_HOME, or
 * ~/.local/share/paperclip (it must be known before config.json is read).
 *
 * Environment: PAPERCLIP_HOME, PAPERCLIP_BIND, PAPERCLIP_PORT,
 * PAPERCLIP_LOG_FORMAT, PAPERCLIP_AUTH_MODE (local_trusted|authenticated),
 * PAPERCLIP_BODY_LIMIT (bytes), PAPERCLIP_PUBLIC_URL, PAPERCLIP_API_URL,
 * PAPERCLIP_ALLOWED_HOSTNAMES, PAPERCLIP_MAX_CONCURRENT_RUNS, PAPERCLIP_AGENT_PORT,
 * PAPERCLIP_AGENT_BIND, PAPERCLIP_BODY_BUDGET, PAPERCLIP_HEADER_TIMEOUT,
 * PAPERCLIP_IDLE_TIMEOUT, PAPERCLIP_MAX_CONNECTIONS,
 * PAPERCLIP_MAX_CONNECTIONS_PER_ADDRESS, PAPERCLIP_LEASE_IDLE_TTL_SEC,
 * PAPERCLIP_WORKSPACE_SYNC_MAX_BYTES.
 * config.json keys: bind, port, logFormat, authMode, bodyLimitBytes,
 * publicUrl, apiUrl, allowedHostnames (array or comma string),
 * allowInsecureBind, maxConcurrentRuns, agentPort, agentBind,
 * bodyBudgetBytes, headerTimeoutSeconds, idleTimeoutSeconds,
 * maxConnections, maxConnectionsPerAddress, workspaceSyncMaxBytes. After loading, agent_bind is
 * never empty.
 */
#ifndef PC_LIB_CONFIG_H
#define PC_LIB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

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
    /* HTTP limits (docs/security.md, "HTTP limits"). */
    int agent_port;             /* agent ingress port (0 = ephemeral) */
    char agent_bind[256];       /* agent ingress address (the bind address when not set) */
    /* Further agent ingress addresses, comma-separated, all on the ingress
     * port: agentBind may list several ("127.0.0.1,10.200.0.1") so that runs
     * in other network namespaces reach the ingress on an address of theirs
     * without exposing it on every interface. */
    char agent_bind_extra[512];
    size_t body_budget;         /* bytes all in-flight request bodies may hold together */
    int header_timeout_s;       /* a request's headers must arrive within this */
    int idle_timeout_s;         /* a connection with no traffic for this long is closed */
    int max_connections;        /* per listener */
    int max_connections_per_address; /* operator listener, per client address (0 = no limit) */
    int max_concurrent_runs;    /* runs executing at once, all agents (1..limit) */
    /* A reusable sandbox lease idle (no run) for this long is destroyed;
     * 0: only the provider's expiresAt ends an idle lease. */
    int lease_idle_ttl_s;
    /* Largest tar archive a workspace sync moves either way (default 256 MiB). */
    size_t workspace_sync_max_bytes;
} pc_config;

#define PC_MAX_CONCURRENT_RUNS_LIMIT 1024
#define PC_WORKSPACE_SYNC_DEFAULT_MAX ((size_t)256 << 20)
#define PC_WORKSPACE_SYNC_MAX_LIMIT ((size_t)1 << 40)

/* Parses `serve` arguments (argv[0] is "serve") into cfg. Returns 0, 1 when
 * --help was printed, or -1 with err (status 400 = usage). */
int pc_config_load(pc_config *cfg, int argc, char **argv, pc_error_t *err);
/* Default data dir into out. */
void pc_config_default_data_dir(char *out, size_t cap);
bool pc_config_is_loopback(const char *bind);

#endif
