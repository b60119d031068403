/*
 * Shared inside the environment layer (src/env) and its routes
 * (src/api/environments.c, src/api/env_hooks.c); not part of the contract in env.h.
 */
#ifndef PC_ENV_INTERNAL_H
#define PC_ENV_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "app.h"
#include "env/driver.h"
#include "env/env.h"
#include "env/proc.h"
#include "lib/error.h"
#include "lib/util.h"
#include "model/entities.h"
#include "model/secrets.h"
#include "plugin/host.h"

/* ---- rows (store.c) ---- */

/* Loads one environment; NULL with 404 "Environment not found". */
json_t *pc_env_load(pc_app *app, const char *env_id, pc_error_t *err);
/* The company's Local environment, created on first use. */
json_t *pc_env_ensure_local(pc_app *app, const char *company_id, pc_error_t *err);
json_t *pc_lease_load(pc_app *app, const char *lease_id, pc_error_t *err);

/* ---- selection matrix (select.c) ---- */

/* Whether runs of the adapter can use an environment of driver d. */
bool pc_env_adapter_driver_ok(const char *adapter, const pc_env_driver *d);

/* ---- config per driver (config.c) ---- */

typedef enum {
    PC_ENVCFG_PERSIST, /* plaintext secrets become company secrets */
    PC_ENVCFG_PROBE,   /* nothing is stored; plaintext stays in memory */
} pc_envcfg_mode;

typedef struct pc_envcfg_ctx {
    pc_app *app;
    const char *company_id;
    const char *env_name;   /* for secret names */
    pc_envcfg_mode mode;
    json_t *created;        /* secret ids created here (delete them if the write fails) */
    json_t *obsolete;       /* secret ids the new config no longer references */
} pc_envcfg_ctx;

void pc_envcfg_ctx_init(pc_envcfg_ctx *c, pc_app *app, const char *company_id,
                        const char *env_name, pc_envcfg_mode mode);
/* Deletes `created` (after a failed write) and frees the lists. */
void pc_envcfg_ctx_abort(pc_envcfg_ctx *c);
/* Deletes `obsolete` (after a committed write) and frees the lists. */
void pc_envcfg_ctx_commit(pc_envcfg_ctx *c);

/* Validates and normalizes config for driver (through its table entry).
 * `base` (may be NULL) is the stored config a partial PATCH merges onto.
 * 422 with upstream texts. */
json_t *pc_envcfg_normalize(pc_envcfg_ctx *c, const char *driver, json_t *input, json_t *base,
                            pc_error_t *err);
/* Appends to out the secret ids a stored config references. */
void pc_envcfg_secret_ids(pc_app *app, const char *driver, json_t *config, json_t *out);
/* Copy of a stored/probe config with secret refs replaced by their values
 * (ssh: privateKey; sandbox: schema secret-ref fields). Keep it short-lived
 * and never log it. */
json_t *pc_envcfg_resolve(pc_app *app, const char *company_id, const char *driver,
                          json_t *config, pc_error_t *err);

/* Helpers the drivers' normalize hooks share (config.c). */

/* s without leading/trailing white space; caller frees. */
char *pc_envcfg_trim_dup(const char *s);
/* 422 "Unrecognized key" for the first key of obj not in allowed. */
int pc_envcfg_unknown_key(json_t *obj, const char *const *allowed, pc_error_t *err);
/* Required trimmed non-empty string (malloc'd into *out); 422 msg otherwise. */
int pc_envcfg_req_str(json_t *obj, const char *key, const char *msg, char **out,
                      pc_error_t *err);
/* Optional trimmed string; absent, null or empty -> *out NULL. */
int pc_envcfg_opt_str(json_t *obj, const char *key, char **out, pc_error_t *err);
/* Lowercase key syntax shared by provider and driver keys. */
bool pc_envcfg_key_valid(const char *s);
/* Reads a plugin's environmentValidateConfig answer: 0 when it is ok;
 * otherwise 422 with its first error (or `<kind> "<name>" rejected its
 * config.`) and {errors, warnings} as details. */
int pc_envcfg_plugin_verdict(json_t *result, const char *kind, const char *name,
                             pc_error_t *err);
/* Whether a company secret with this id exists in company_id. */
bool pc_envcfg_secret_exists(pc_app *app, const char *company_id, const char *id);
/* Stores value as a new company secret named after the environment, driver
 * and field, and remembers it in c->created. */
int pc_envcfg_store_secret(pc_envcfg_ctx *c, const char *driver, const char *field,
                           const char *value, char id[PC_SECRET_ID_LEN + 1], pc_error_t *err);

/* ---- ssh (ssh.c) ---- */

typedef struct pc_ssh_target {
    const char *host;
    int port;
    const char *user;
    const char *remote_path;
    const char *private_key;       /* plaintext or NULL */
    const char *known_hosts;       /* NULL: none */
    bool strict;
    char known_hosts_path[1200];   /* known_hosts of this environment ("" for unsaved) */
    char tmp_dir[1100];            /* where key files live while needed */
    int64_t connect_timeout_s;
    const char *pid_file;          /* see pc_proc_opts.pid_file; may be NULL */
} pc_ssh_target;

/* Fills t from a resolved ssh config; strings point into cfg. */
void pc_ssh_target_from_config(pc_app *app, json_t *cfg, const char *env_id, pc_ssh_target *t);
/* Runs `remote_command` (already quoted for a POSIX shell) on the target. */
int pc_ssh_run(pc_app *app, const pc_ssh_target *t, const char *remote_command,
               const pc_exec_request *req, pc_proc_ctl *ctl, pc_exec_result *res,
               pc_error_t *err);
/* "mkdir -p CWD && cd CWD && exec env -i K=V... CMD ARGS" with every word
 * single-quoted. cwd may be NULL. Caller frees. */
char *pc_ssh_remote_command(const char *cwd, json_t *env, const char *command,
                            const char *const *args);
/* Appends s single-quoted for a POSIX shell. */
void pc_sh_quote(pc_buf *b, const char *s);

/* ---- sandbox provider sync methods (sandbox.c) ---- */

/* Whether the lease's provider serves both environmentSyncIn and
 * environmentSyncOut. */
bool pc_sandbox_native_sync(pc_lease *lease);
/* Calls environmentSyncIn/Out with the given operations (borrowed):
 * [{operationId, files: [{sourcePath, targetPath, kind, mode}]}]. 409 when
 * the run was cancelled. */
int pc_sandbox_sync_call(pc_lease *lease, const char *method, json_t *operations,
                         pc_error_t *err);

/* ---- plugin-backed leases (sandbox.c; used by sandbox.c and plugin.c) ---- */

/* environmentRealizeWorkspace on the lease's plugin: p (consumed) holds the
 * base params {driverKey, companyId, environmentId, issueId, config}; lease
 * and workspace {localPath, remotePath, mode} are added here. Cancellable. */
int pc_env_rpc_realize(pc_lease *l, json_t *p, const char *local_path, const char *remote_path,
                       char **dir, pc_error_t *err);
/* environmentExecute on the lease's plugin: p (consumed) holds the base
 * params; config_timeout_ms applies when the request sets no timeout.
 * Fills res (its buffers always initialised); a cancelled call is 0 with
 * res->cancelled. */
int pc_env_rpc_execute(pc_lease *l, json_t *p, int64_t config_timeout_ms,
                       const pc_exec_request *req, pc_exec_result *res, pc_error_t *err);

/* ---- probes (driver.c) ---- */

/* Probes a resolved config through the driver's probe hook. env_id is
 * "unsaved" for probe-config. Returns {ok, driver, summary, details}; NULL
 * only on internal faults. */
json_t *pc_env_probe(pc_app *app, const char *company_id, const char *env_id,
                     const char *driver, json_t *resolved_config, pc_error_t *err);

/* ---- lease manager (lease.c) ---- */

/* A plugin RPC that pc_lease_cancel() may abandon (lease.c). */
typedef struct pc_lease_call pc_lease_call;

/* One lease while a run holds it. The lease manager owns the lifecycle;
 * driver hooks read the identity fields and fill provider, plugin_key,
 * policy and plugin_lease during acquire. */
struct pc_lease {
    pc_app *app;
    const pc_env_driver *drv;
    char id[PC_UUID_LEN + 1];
    char company_id[64], env_id[64], run_id[64], agent_id[64], issue_id[64];
    char driver[16];
    char provider[256];
    char plugin_key[256];
    char policy[32];      /* "ephemeral" unless acquire says otherwise */
    json_t *env;          /* environment API object (secret refs only) */
    json_t *plugin_lease; /* {providerLeaseId, metadata, expiresAt} for sandbox */
    char *cwd;
    char *api_url;
    char *cached_callback_url; /* callbackUrl of the resumed reusable lease */
    /* The ssh driver's reverse tunnel (0: none): a background ssh in its own
     * process group, its log file (stderr) and the remote port. */
    pid_t tunnel_pid;
    char tunnel_log[1200];
    pc_proc_ctl ctl;
    atomic_int exec_seq;  /* names the pid files of concurrent executes */
    pthread_mutex_t mu;
    atomic_bool cancelled;
    pc_lease_call *active_call;
};

/* The environment's stored config (borrowed). */
json_t *pc_lease_config(const pc_lease *lease);
/* Calls a plugin; with a lease the call can be abandoned by
 * pc_lease_cancel(). Returns 0 with *result, -1 with err, 1 if cancelled. */
int pc_lease_rpc(pc_app *app, pc_lease *lease, const char *plugin_key, const char *method,
                 json_t *params, int64_t timeout_ms, json_t **result, pc_error_t *err);
/* pc_lease_rpc() for a lifecycle call on a stored lease row (destroy,
 * resume), which no run can cancel: 0 or -1 with err; *metadata (may be
 * NULL) gets the answer's metadata object, if any. params stay the caller's. */
int pc_lease_rpc_stored(pc_app *app, const char *plugin_key, const char *method, json_t *params,
                        json_t **metadata, pc_error_t *err);
/* Like pc_lease_rpc(), for environmentExecute: output the provider streams
 * (execute.log) goes to on_output on the loop thread while the call is in
 * flight, and *streamed (may be NULL) says whether any arrived. Needs a
 * lease (without one nothing is streamed). */
int pc_lease_rpc_stream(pc_app *app, pc_lease *lease, const char *plugin_key, const char *method,
                        json_t *params, int64_t timeout_ms, pc_output_fn on_output,
                        void *output_ud, bool *streamed, json_t **result, pc_error_t *err);
/* Merges fields into the lease row's metadata (and touches last_used_at). */
void pc_lease_meta_merge(pc_app *app, const char *lease_id, json_t *fields);
/* Closes a lease row: status, cleanup status and failure reason. */
void pc_lease_close_row(pc_app *app, const char *lease_id, const char *status,
                        const char *cleanup, const char *reason);
/* Kills the process groups the lease's commands left running, recorded in
 * their pid files (see pc_proc_opts.pid_file); returns how many. */
int pc_lease_kill_processes(pc_app *app, json_t *row);

/* Moves lease_id from from_status to pending_cleanup (cleanupStatus
 * pending, failureReason reason) and wakes the sweeper; 1 if this call
 * claimed it, 0 if the row was not in from_status. */
int pc_lease_schedule_cleanup(pc_app *app, const char *lease_id, const char *from_status,
                              const char *reason);
/* "done", "cancelled" or "deleted" when the issue is closed, else NULL. */
const char *pc_lease_issue_closed(pc_app *app, const char *issue_id);

/* Start-up reconciliation of leases a dead daemon left active. */
void pc_lease_reconcile(pc_app *app);

/* Environment id used for unsaved probes. */
#define PC_ENV_UNSAVED_ID "unsaved"

#endif
