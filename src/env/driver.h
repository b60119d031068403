/*
 * The environment driver table: everything that differs between local, ssh,
 * sandbox and plugin environments lives behind one struct per driver, so
 * the routes, the config layer and the lease manager never branch on a
 * driver's name. A driver's name is looked up once (pc_env_driver_find) and
 * its hooks are called from there on.
 *
 * Every hook except name and normalize may be NULL when the driver has
 * nothing to do at that step; callers treat NULL as documented per hook.
 * The table is static and read-only: hooks run on any thread, so a driver
 * keeps no mutable state of its own outside the lease it is handed.
 *
 * Adding a driver: a src/env/<name>.c that defines `const pc_env_driver
 * pc_env_driver_<name>`, a line in the table in src/env/driver.c, and its
 * config texts in docs/environments.md.
 */
#ifndef PC_ENV_DRIVER_H
#define PC_ENV_DRIVER_H

#include <jansson.h>
#include <stdbool.h>

#include "app.h"
#include "env/env.h"
#include "lib/error.h"

struct pc_envcfg_ctx;

typedef struct pc_env_driver {
    const char *name;
    /* At most one environment of this driver per company (the store enforces
     * it with a partial unique index as well). */
    bool one_per_company;
    /* Capabilities: whether runs can execute here at all, and whether only
     * adapters able to drive a remote target can use it. */
    bool runs;
    bool remote;
    /* Commands run where the host's addresses may not be reachable, and the
     * driver has no path back of its own: callback URLs are probed from
     * inside the lease before a run (pc_lease_needs_callback_probe). */
    bool probe_callback;

    /* Validates input (NULL: none given) merged onto base (the stored
     * config, NULL on create) and returns the config to store, or NULL with
     * err (upstream's texts; 422 unless documented otherwise). Plaintext
     * secrets become company secrets in PERSIST mode (c->created) and the
     * ids the new config drops go to c->obsolete. Never NULL. */
    json_t *(*normalize)(struct pc_envcfg_ctx *c, json_t *input, json_t *base,
                         pc_error_t *err);
    /* Appends the secret ids a stored config references. NULL: none. */
    void (*secret_ids)(pc_app *app, json_t *config, json_t *out);
    /* Copy of a stored config with its secret refs replaced by their values.
     * NULL: the config has no secrets (a plain copy is used). */
    json_t *(*resolve)(pc_app *app, const char *company_id, json_t *config, pc_error_t *err);
    /* {ok, driver, summary, details} for a resolved config; a failed probe
     * is ok:false, NULL only on internal faults. NULL: "cannot be probed". */
    json_t *(*probe)(pc_app *app, const char *company_id, const char *env_id, json_t *resolved,
                     pc_error_t *err);
    /* Refuses an environment that can be selected for runs but never
     * execute one (422). NULL: every active environment of the driver can. */
    int (*check_runnable)(json_t *env, pc_error_t *err);

    /* Before the lease row exists: refuses leases the driver cannot serve
     * and sets *row_provider to what the row records as provider. NULL:
     * admitted, the provider is the driver's name. */
    int (*admit)(pc_lease *lease, const char **row_provider, pc_error_t *err);
    /* After the row is written (metadata.phase "acquiring"): takes hold of
     * the target and records what reconciliation needs in the row. On
     * failure the caller closes the row as failed. NULL: nothing to hold. */
    int (*acquire)(pc_lease *lease, const pc_lease_request *req, pc_error_t *err);
    /* Start-up reconciliation of a reusable lease a dead daemon left active
     * (row and its metadata as stored): takes it over again and returns the
     * provider's new metadata (new ref, may be NULL). NULL: never resumed,
     * the lease is destroyed. */
    int (*resume)(pc_app *app, json_t *row, json_t *meta, json_t **new_meta, pc_error_t *err);
    /* Makes the working directory exist on the target; *dir (malloc'd) is
     * where commands run. Never NULL for a driver whose admit accepts. */
    int (*realize)(pc_lease *lease, const char *local_path, char **dir, pc_error_t *err);
    /* Runs one command (see pc_lease_execute). pid_file is where a driver
     * whose commands are our children records them for reconciliation.
     * Never NULL for a driver whose admit accepts. */
    int (*execute)(pc_lease *lease, const pc_exec_request *req, const char *pid_file,
                   pc_exec_result *res, pc_error_t *err);
    /* Gives the lease back at the end of a run; *retain asks to keep the row
     * (status retained) for the next run. NULL: nothing to give back. */
    int (*release)(pc_lease *lease, bool *retain, pc_error_t *err);
    /* Destroys the provider side of a stored lease row (lease cleanup of
     * reusable leases, reconciliation); may be retried after a failure, so
     * a lease already gone is success. NULL: the driver holds nothing outside
     * the daemon, and reconciliation calls reconcile instead. */
    int (*destroy)(pc_app *app, json_t *row, json_t *meta, pc_error_t *err);
    /* Start-up reconciliation for a driver without destroy: cleans up what
     * the lease left on this host and returns how many processes it killed.
     * NULL: nothing to clean up. */
    int (*reconcile)(pc_app *app, json_t *row);
} pc_env_driver;

/* The driver called name, or NULL. */
const pc_env_driver *pc_env_driver_find(const char *name);
/* Every driver, in the order the API lists them; NULL-terminated. */
const pc_env_driver *const *pc_env_drivers(void);

extern const pc_env_driver pc_env_driver_local;
extern const pc_env_driver pc_env_driver_ssh;
extern const pc_env_driver pc_env_driver_sandbox;
extern const pc_env_driver pc_env_driver_plugin;

#endif
