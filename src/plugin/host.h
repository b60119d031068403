/*
 * The plugin host: runs plugin workers as supervised child processes and
 * speaks Paperclip's JSON-RPC 2.0 worker protocol (newline-delimited JSON on
 * the worker's stdin/stdout; stderr is free-form log text).
 *
 * Ownership and threads. Every worker, pipe, timer and pending call lives on
 * the runtime loop (pc_loop) and is touched only by the loop thread. Every
 * public function below may be called from any OTHER thread: it posts a task
 * to the loop and waits for the answer. Calling a blocking function from the
 * loop thread itself would deadlock, so those calls fail with a 500 instead;
 * loop-side code uses pc_plugin_call_async(). JSON passed in is borrowed and
 * copied (serialised) on the calling thread; JSON handed out is a new
 * reference the caller owns and no other thread shares.
 *
 * Worker lifecycle (an explicit state machine, see docs/plugins.md):
 *
 *   stopped -> starting -> running -> stopping -> stopped
 *                  |           |
 *                  +-----------+--> crashed -> backoff -> starting ...
 *                                        \--> error (too many crashes; stays
 *                                             until re-enabled)
 *
 * starting = spawned, `initialize` in flight (15 s). Calls made while a
 * worker is starting wait for it; calls to a worker in any other non-running
 * state fail at once with -32000 (HTTP 503). A crash fails every pending
 * call with -32000 and restarts the worker after 1 s, doubling to 5 min;
 * the 10th crash within 10 min parks the plugin in `error` with the last
 * stderr in last_error.
 *
 * Limits: one stdout line (one message) is at most 16 MiB — a longer line
 * kills that worker (crash path) and affects nothing else; the last 8 KB of
 * stderr and the last 500 log lines are kept per plugin.
 */
#ifndef PC_PLUGIN_HOST_H
#define PC_PLUGIN_HOST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/loop.h"

struct pc_app;
typedef struct pc_plugin_host pc_plugin_host;

/* JSON-RPC error codes (upstream's JSONRPC_ERROR_CODES + PLUGIN_RPC_ERROR_CODES). */
#define PC_RPC_PARSE_ERROR -32700
#define PC_RPC_INVALID_REQUEST -32600
#define PC_RPC_METHOD_NOT_FOUND -32601
#define PC_RPC_INVALID_PARAMS -32602
#define PC_RPC_INTERNAL_ERROR -32603
#define PC_RPC_WORKER_UNAVAILABLE -32000
#define PC_RPC_CAPABILITY_DENIED -32001
#define PC_RPC_WORKER_ERROR -32002
#define PC_RPC_TIMEOUT -32003
#define PC_RPC_METHOD_NOT_IMPLEMENTED -32004
#define PC_RPC_UNKNOWN -32099

typedef enum {
    PC_WORKER_STOPPED = 0,
    PC_WORKER_STARTING,
    PC_WORKER_RUNNING,
    PC_WORKER_STOPPING,
    PC_WORKER_CRASHED,
    PC_WORKER_BACKOFF,
    PC_WORKER_ERROR,
} pc_worker_state;

const char *pc_worker_state_name(pc_worker_state s);

/* Supervision constants. Zero fields take the defaults in brackets; tests
 * shrink them instead of sleeping for minutes. */
typedef struct pc_plugin_host_opts {
    int64_t init_timeout_ms;     /* initialize [15000] */
    int64_t call_timeout_ms;     /* default per call [30000] */
    int64_t probe_timeout_ms;    /* environmentProbe [120000] */
    int64_t execute_slack_ms;    /* added to an execute's timeoutMs [30000] */
    int64_t drain_timeout_ms;    /* in-flight calls may finish on stop [10000] */
    int64_t shutdown_timeout_ms; /* exit after `shutdown` [10000] */
    int64_t term_grace_ms;       /* SIGTERM -> SIGKILL [5000] */
    int64_t backoff_initial_ms;  /* first restart delay [1000] */
    int64_t backoff_max_ms;      /* cap [300000] */
    int crash_limit;             /* crashes within the window -> error [10] */
    int64_t crash_window_ms;     /* [600000] */
    size_t max_line;             /* stdout message limit [16 MiB] */
    const char *instance_id;     /* initialize.instanceInfo.instanceId ["paperclip-c"] */
    const char *host_version;    /* [PC_VERSION] */
} pc_plugin_host_opts;

/* What the host needs to run one plugin; every field is copied. */
typedef struct pc_plugin_spec {
    const char *plugin_key;  /* manifest id */
    const char *plugin_id;   /* registry row id (uuid) */
    const char *package_dir; /* canonical; the worker's cwd */
    const char *worker_path; /* canonical */
    bool worker_is_js;       /* run as `node worker_path` */
    const json_t *manifest;  /* validated manifest */
    const json_t *config;    /* plugin instance config, sent in initialize (NULL = {}) */
    const json_t *env;       /* extra worker env {NAME: "value"} (NULL = none) */
} pc_plugin_spec;

/* Creates a host on a running loop (not started by the host, not stopped by
 * it). opts may be NULL. */
pc_plugin_host *pc_plugin_host_new(pc_loop *loop, const pc_plugin_host_opts *opts,
                                   pc_error_t *err);
/* Stops every worker gracefully (drain, shutdown, SIGTERM, SIGKILL), waits
 * until all of them and their handles are gone, and frees the host. */
void pc_plugin_host_free(pc_plugin_host *host);

/* Daemon wiring: creates app->plugins on app->loop and starts every enabled
 * plugin in the registry (the plugins table) without waiting for them. */
int pc_plugin_host_start(struct pc_app *app, pc_error_t *err);
/* Graceful stop of every worker; blocks until all are gone; app->plugins = NULL. */
void pc_plugin_host_stop(struct pc_app *app);

/* Registers and starts a plugin. With wait_ms > 0, blocks until the first
 * initialize outcome (or wait_ms) and returns -1 with the failure when the
 * worker did not reach `running`; the plugin stays registered either way
 * (it is supervised and will be retried). 409 if the key is registered. */
int pc_plugin_host_add(pc_plugin_host *host, const pc_plugin_spec *spec, int64_t wait_ms,
                       pc_error_t *err);
/* Stops the plugin gracefully and forgets it. Blocks until the worker is
 * gone. 404 if the key is not registered. */
int pc_plugin_host_remove(pc_plugin_host *host, const char *plugin_key, pc_error_t *err);
bool pc_plugin_host_has(pc_plugin_host *host, const char *plugin_key);

/* A blocking JSON-RPC call. params is borrowed (NULL = {}). timeout_ms <= 0
 * picks the method default (30 s; environmentProbe 120 s; environmentExecute
 * = params.timeoutMs, else params.config.timeoutMs, + 30 s). On success
 * *result is a new reference (json null for void results). On failure
 * err->rpc_code holds the JSON-RPC code and err->status is 502 (the worker
 * answered with an error or died mid-call), 504 (-32003 timeout) or 503
 * (-32000, the worker is not running / the plugin is unknown: 404). */
int pc_plugin_call(pc_plugin_host *host, const char *plugin_key, const char *method,
                   json_t *params, int64_t timeout_ms, json_t **result, pc_error_t *err);

/* The same, for code running ON the loop thread: never blocks; cb runs on
 * the loop thread later (never inline) with the result (owned by cb) or
 * err (borrowed, valid during cb). */
typedef void (*pc_plugin_call_cb)(void *ud, json_t *result, const pc_error_t *err);
void pc_plugin_call_async(pc_plugin_host *host, const char *plugin_key, const char *method,
                          json_t *params, int64_t timeout_ms, pc_plugin_call_cb cb, void *ud);

/* Like pc_plugin_call_async(), and every `execute.log` notification the
 * worker sends for this request (see docs/plugins.md) is passed to on_chunk
 * on the loop thread, before cb: stream is "stdout" or "stderr", chunk is
 * UTF-8 of len bytes, both borrowed for the call. A chunk is at most one
 * protocol line (16 MiB); what on_chunk keeps is its own bound to enforce. */
typedef void (*pc_plugin_chunk_cb)(void *ud, const char *stream, const char *chunk, size_t len);
void pc_plugin_call_async_stream(pc_plugin_host *host, const char *plugin_key, const char *method,
                                 json_t *params, int64_t timeout_ms, pc_plugin_call_cb cb,
                                 pc_plugin_chunk_cb on_chunk, void *ud);

/* Live status: {"pluginKey", "pluginId", "state", "pid" (null when none),
 * "restartCount", "crashesInWindow", "lastError" (null), "supportedMethods",
 * "stderrTail"}. NULL with 404 if unknown. */
json_t *pc_plugin_host_status(pc_plugin_host *host, const char *plugin_key, pc_error_t *err);
/* Recent log lines, oldest first: [{"ts", "level", "source"
 * ("stderr"|"worker"|"host"), "message"}]. NULL with 404 if unknown. */
json_t *pc_plugin_host_logs(pc_plugin_host *host, const char *plugin_key, pc_error_t *err);

/* Sandbox providers (environmentDrivers with kind "sandbox_provider"). */
typedef struct pc_plugin_provider_info {
    char plugin_key[256];
    char plugin_id[64];
    char driver_key[256];
    char display_name[512];
    char description[2048];
    json_t *config_schema;         /* new reference (a private copy) */
    bool supports_reusable_leases; /* the manifest opts in */
    bool reuse_methods_supported;  /* resume + release + destroy all in supportedMethods */
    bool sync_methods_supported;   /* environmentSyncIn + environmentSyncOut both supported */
    bool running;                  /* worker state is `running` */
    pc_worker_state state;
} pc_plugin_provider_info;

/* Finds the provider for driver_key, preferring a running worker. Returns 0
 * and fills out (clear it with pc_plugin_provider_info_clear), or -1 with a
 * 404 "Sandbox provider \"<k>\" is not installed or its plugin worker is not
 * running." when no plugin declares it. A declared but stopped provider is
 * returned with running=false so callers can word their own error. */
int pc_plugin_find_sandbox_provider(pc_plugin_host *host, const char *driver_key,
                                    pc_plugin_provider_info *out, pc_error_t *err);
void pc_plugin_provider_info_clear(pc_plugin_provider_info *info);
/* Every declared sandbox provider of every registered plugin:
 * [{"driverKey", "pluginKey", "pluginId", "displayName", "description"
 * (null), "configSchema", "supportsReusableLeases" (manifest opt-in AND the
 * worker implements resume/release/destroy), "running", "state"}]. */
json_t *pc_plugin_list_sandbox_providers(pc_plugin_host *host);

/* The default timeout the host applies to method with params (exposed for
 * tests and callers that want to wait a little longer themselves). */
int64_t pc_plugin_default_timeout(const pc_plugin_host *host, const char *method,
                                  const json_t *params);

#endif
