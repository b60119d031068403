/*
 * Shared inside the environment layer (src/env) and its routes
 * (src/api/environments.c, src/api/env_hooks.c); not part of the contract in env.h.
 */
#ifndef PC_ENV_INTERNAL_H
#define PC_ENV_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "app.h"
#include "env/env.h"
#include "env/proc.h"
#include "lib/error.h"
#include "model/entities.h"
#include "plugin/host.h"

/* ---- rows (store.c) ---- */

/* Loads one environment; NULL with 404 "Environment not found". */
json_t *pc_env_load(pc_app *app, const char *env_id, pc_error_t *err);
/* The company's Local environment, created on first use. */
json_t *pc_env_ensure_local(pc_app *app, const char *company_id, pc_error_t *err);
json_t *pc_lease_load(pc_app *app, const char *lease_id, pc_error_t *err);

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

/* Validates and normalizes config for driver. `base` (may be NULL) is the
 * stored config a partial PATCH merges onto. 422 with upstream texts. */
json_t *pc_envcfg_normalize(pc_envcfg_ctx *c, const char *driver, json_t *input, json_t *base,
                            pc_error_t *err);
/* Appends to out the secret ids a stored config references. */
void pc_envcfg_secret_ids(pc_app *app, const char *driver, json_t *config, json_t *out);
/* Copy of a stored/probe config with secret refs replaced by their values
 * (ssh: privateKey; sandbox: schema secret-ref fields). Keep it short-lived
 * and never log it. */
json_t *pc_envcfg_resolve(pc_app *app, const char *company_id, const char *driver,
                          json_t *config, pc_error_t *err);

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

/* ---- probes (probe.c) ---- */

/* Probes a resolved config. env_id is "unsaved" for probe-config. Returns
 * {ok, driver, summary, details}; NULL only on internal faults. */
json_t *pc_env_probe(pc_app *app, const char *company_id, const char *env_id,
                     const char *driver, json_t *resolved_config, pc_error_t *err);

/* ---- sandbox providers (sandbox.c) ---- */

/* Config sent to the provider: the stored config minus `provider`. */
json_t *pc_sandbox_driver_config(json_t *config);
/* Resolves a running provider; 422 with upstream's text otherwise. */
int pc_sandbox_provider(pc_app *app, const char *provider, pc_plugin_provider_info *info,
                        pc_error_t *err);

/* ---- lease manager (lease.c) ---- */

/* Start-up reconciliation of leases a dead daemon left active. */
void pc_lease_reconcile(pc_app *app);

/* Environment id used for unsaved probes. */
#define PC_ENV_UNSAVED_ID "unsaved"

#endif
