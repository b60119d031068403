/*
 * The environment layer as the rest of the daemon sees it: choosing the
 * environment for a run and driving a lease through its lifecycle.
 *
 *   env   = pc_env_resolve_for_run(app, company, issue_env, agent_env, code, err)
 *   lease = pc_lease_acquire(app, env, &req, err)        lease row written first
 *   pc_lease_realize(lease, local_path, cwd, sizeof cwd, err)
 *   pc_lease_execute(lease, &exec, &res, err)           any number of times
 *   pc_lease_release(lease, run_status, err)            always; frees lease
 *
 * Reusable leases outlive their run (status retained) until their issue
 * closes, they sit idle too long or their environment is deleted; a
 * sweeper thread started with the env service destroys them.
 *
 * All calls block the calling thread (a run's own thread or an HTTP thread);
 * the work itself happens on the runtime loop or in the provider plugin.
 * pc_lease_cancel() may be called from any other thread while an execute is
 * in flight: it stops the local process group, the ssh client (and with it
 * the remote command), or the provider execution, and execute returns with
 * res->cancelled set.
 *
 * Failures carry upstream's run error codes in `code` where the caller needs
 * them: environment_not_found, environment_inactive, lease_acquire_failed,
 * workspace_realization_failed, execution_failed.
 */
#ifndef PC_ENV_ENV_H
#define PC_ENV_ENV_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "app.h"
#include "lib/buf.h"
#include "lib/error.h"

#define PC_ENV_CODE_LEN 64

/* Returns the environment API object (new ref) chosen for a run: the issue's
 * environment when set, else the agent's default, else the company's Local
 * environment (created on first use). NULL with code + err on failure. */
json_t *pc_env_resolve_for_run(pc_app *app, const char *company_id, const char *issue_env_id,
                               const char *agent_env_id, char code[PC_ENV_CODE_LEN],
                               pc_error_t *err);

/* 0 when env_id names an active environment of company_id that can execute
 * runs of `adapter` (an agent's adapterType; NULL skips the matrix checks):
 * the driver must be one the adapter can use and a sandbox provider one a
 * running plugin offers to it. Otherwise -1 with a 422 carrying upstream's
 * text ("Environment driver \"ssh\" is not allowed here. Allowed drivers:
 * local"). */
int pc_env_validate_selection(pc_app *app, const char *company_id, const char *env_id,
                              const char *adapter, pc_error_t *err);

/* The adapter × driver × provider matrix (select.c). */
extern const char *const pc_env_exec_adapters[]; /* adapters that execute here */
bool pc_env_adapter_executes(const char *adapter);
/* Whether the adapter can use sandbox providers at all. */
bool pc_env_adapter_provider_ok(const char *adapter);
/* Providers that run commands on the host unisolated (test use only). */
bool pc_env_provider_test_only(const char *provider);
/* Keys of the sandbox providers running plugins offer (new array). */
json_t *pc_env_run_providers(pc_app *app);

typedef struct pc_lease pc_lease;

typedef struct pc_lease_request {
    const char *run_id;       /* heartbeat run id (required) */
    const char *agent_id;
    const char *issue_id;     /* may be NULL */
    const char *execution_workspace_id; /* may be NULL */
    const char *workspace_mode; /* "isolated" (NULL) or "shared": the project policy's */
} pc_lease_request;

pc_lease *pc_lease_acquire(pc_app *app, json_t *env, const pc_lease_request *req,
                           pc_error_t *err);
/* Realizes the workspace; cwd receives the directory commands run in (on the
 * target: host path, remote path, or sandbox path). */
int pc_lease_realize(pc_lease *lease, const char *local_path, char *cwd, size_t cwd_cap,
                     pc_error_t *err);

/* Output callback: called as output arrives, possibly on another thread, never
 * concurrently for one execute. stream is "stdout" or "stderr". */
typedef void (*pc_output_fn)(void *ud, const char *stream, const char *chunk, size_t len);

typedef struct pc_exec_request {
    const char *command;
    const char *const *args;  /* NULL-terminated, may be NULL */
    const char *cwd;          /* NULL: the realized cwd */
    json_t *env;              /* object of string values: the ONLY environment */
    const char *stdin_data;   /* NULL: stdin is empty (EOF at once) */
    int64_t timeout_ms;       /* <= 0: none */
    int64_t grace_ms;         /* SIGTERM -> SIGKILL grace (default 20000) */
    size_t output_cap;        /* per stream captured in the result (default 4 MiB) */
    pc_output_fn on_output;
    void *ud;
} pc_exec_request;

typedef struct pc_exec_result {
    bool has_exit_code;
    int exit_code;
    char signal[16];          /* "SIGKILL" or "" */
    bool timed_out;
    bool cancelled;
    pc_buf out;               /* captured stdout (bounded by output_cap; .truncated) */
    pc_buf err;               /* captured stderr */
} pc_exec_result;

int pc_lease_execute(pc_lease *lease, const pc_exec_request *req, pc_exec_result *res,
                     pc_error_t *err);
void pc_exec_result_free(pc_exec_result *res);
void pc_lease_cancel(pc_lease *lease);

/* Releases with upstream's status mapping (cancelled -> expired,
 * failed|timed_out -> failed, else released) and frees the handle. */
int pc_lease_release(pc_lease *lease, const char *run_status, pc_error_t *err);

/* Reusable sandbox leases wait between runs in status "retained". These
 * end them through the driver's destroy hook (see "Lease cleanup" in
 * docs/environments.md); a failed destroy is retried with backoff while the
 * lease shows status pending_cleanup, cleanupStatus pending.
 *
 * pc_env_destroy_reusable_leases destroys, now and on the calling thread,
 * the retained and pending-cleanup leases scoped to an environment and/or an
 * issue (both NULL: a no-op). Returns how many were destroyed; *left (may be
 * NULL) receives how many are still pending after their attempt failed. */
int pc_env_destroy_reusable_leases(pc_app *app, const char *company_id, const char *env_id,
                                   const char *issue_id, const char *reason, int *left,
                                   pc_error_t *err);
/* Hands the retained leases in scope to the cleanup sweeper and returns at
 * once with how many it took (they show pending_cleanup from here on). */
int pc_env_schedule_reusable_cleanup(pc_app *app, const char *company_id, const char *env_id,
                                     const char *issue_id, const char *reason, pc_error_t *err);
/* An issue reached done or cancelled (or was deleted: status "deleted"):
 * its retained leases are scheduled for cleanup. A run that still holds one
 * of them cleans it up at release instead of retaining it. */
int pc_env_issue_closed(pc_app *app, const char *company_id, const char *issue_id,
                        const char *issue_status, pc_error_t *err);

const char *pc_lease_id(const pc_lease *lease);
const char *pc_lease_driver(const pc_lease *lease);
/* The API URL runs in this lease should use, when the environment sets one
 * (config.apiUrl / a provider bridge); NULL otherwise. */
const char *pc_lease_api_url(const pc_lease *lease);
/* True when the lease's commands may not reach the daemon the way the host
 * does (their own network namespace, another machine) and the environment
 * offers no path of its own: the run layer then probes callback candidates
 * from inside the lease (docs/environments.md, "Callbacks"). */
bool pc_lease_needs_callback_probe(const pc_lease *lease);
/* True when the provider says the lease has no network at all (its lease
 * metadata has `network: "none"`, as the bwrap provider's does): there is
 * nothing to probe, and no callback is possible by the operator's choice. */
bool pc_lease_declares_no_network(const pc_lease *lease);
/* The callback URL a previous run of this reusable lease found reachable,
 * or NULL. */
const char *pc_lease_cached_callback_url(const pc_lease *lease);
/* Records the URL runs in this lease call back on: the lease's API URL from
 * now on, and `callbackUrl` in the lease row's metadata. */
void pc_lease_set_callback_url(pc_lease *lease, const char *url);

#endif
