/*
 * The lease manager: one lifecycle for every driver, whose hooks (driver.h)
 * do the driver-specific part of each step.
 *
 *   acquire   admit (may refuse before anything is written) -> row written
 *             (status active, metadata.phase "acquiring", no provider lease
 *             id) -> driver acquire (provider lease, providerLeaseId,
 *             metadata phase "ready", expiresAt) -> activity
 *             environment.lease_acquired
 *   realize   the directory commands run in (host / remote / sandbox)
 *   execute   any number of commands, each bounded and cancellable
 *   release   upstream's status mapping; the driver gives the lease back
 *             (cleanupStatus) or asks to retain it for the next run (status
 *             retained, unless its issue closed meanwhile) -> activity
 *             environment.lease_released
 *   cleanup   retained leases whose issue closed, that sat idle too long or
 *             whose environment is deleted are destroyed by the driver's
 *             destroy hook, retried with backoff (pending_cleanup) by the
 *             sweeper thread of the env service (see "cleanup" below)
 *
 * Because the row exists before the provider lease, a daemon that dies at
 * any point leaves a row that start-up reconciliation (pc_lease_reconcile)
 * finds. A driver that holds leases outside the daemon (destroy hook) gets
 * reusable ones resumed (or handed to cleanup when that fails) and the
 * others destroyed; a row still "acquiring" means the provider may have created a
 * lease we never heard of, so it is marked failed with cleanupStatus failed
 * for an operator to see. Other leases are closed after the driver's
 * reconcile hook killed what their commands left running.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/activity.h"
#include "env/internal.h"
#include "env/service.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "model/secrets.h"
#include "lib/util.h"

/* A plugin RPC that a canceller may abandon: the waiting thread returns at
 * once and the late answer is dropped. Two references: waiter + callback. */
struct pc_lease_call {
    atomic_int refs;
    pthread_mutex_t mu;
    pc_waiter w;
    bool done, abandoned;
    json_t *result;
    pc_error_t err;
    pc_plugin_host *host;
    char plugin_key[256];
    const char *method;
    json_t *params;
    int64_t timeout_ms;
    pc_output_fn on_output; /* streamed execute output; NULL: not wanted */
    void *output_ud;
    bool streamed;          /* on_output received at least one chunk */
};

/* ------------------------------------------------------------ helpers */

static void pc_call_unref(pc_lease_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    json_decref(c->result);
    json_decref(c->params);
    pc_error_clear(&c->err);
    pc_waiter_destroy(&c->w);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void pc_call_cb(void *ud, json_t *result, const pc_error_t *err)
{
    pc_lease_call *c = ud;
    pthread_mutex_lock(&c->mu);
    if (!c->abandoned) {
        c->result = result;
        result = NULL;
        if (err && pc_error_is_set(err)) {
            pc_error_set(&c->err, err->status ? err->status : 502, "%s", err->msg);
            c->err.rpc_code = err->rpc_code;
        }
    }
    c->done = true;
    pthread_mutex_unlock(&c->mu);
    json_decref(result);
    pc_waiter_signal(&c->w);
    pc_call_unref(c);
}

/* On the loop thread, while the waiter is blocked: nothing else touches the
 * run's output sink then. Once the call is abandoned (or answered) the run
 * thread has moved on, so later chunks are dropped. */
static void pc_call_chunk(void *ud, const char *stream, const char *chunk, size_t len)
{
    pc_lease_call *c = ud;
    pthread_mutex_lock(&c->mu);
    if (!c->abandoned && !c->done && c->on_output) {
        c->streamed = true;
        c->on_output(c->output_ud, stream, chunk, len);
    }
    pthread_mutex_unlock(&c->mu);
}

static void pc_call_start(pc_loop *loop, void *arg)
{
    (void)loop;
    pc_lease_call *c = arg;
    pc_plugin_call_async_stream(c->host, c->plugin_key, c->method, c->params, c->timeout_ms,
                                pc_call_cb, c->on_output ? pc_call_chunk : NULL, c);
}

int pc_lease_rpc(pc_app *app, pc_lease *lease, const char *plugin_key, const char *method,
                 json_t *params, int64_t timeout_ms, json_t **result, pc_error_t *err)
{
    return pc_lease_rpc_stream(app, lease, plugin_key, method, params, timeout_ms, NULL, NULL,
                               NULL, result, err);
}

int pc_lease_rpc_stored(pc_app *app, const char *plugin_key, const char *method, json_t *params,
                        json_t **metadata, pc_error_t *err)
{
    if (metadata)
        *metadata = NULL;
    json_t *result = NULL;
    int rc = pc_lease_rpc(app, NULL, plugin_key, method, params, 0, &result, err);
    if (rc == 0 && metadata) {
        json_t *m = json_object_get(result, "metadata");
        if (json_is_object(m))
            *metadata = json_incref(m);
    }
    json_decref(result);
    return rc == 0 ? 0 : -1;
}

int pc_lease_rpc_stream(pc_app *app, pc_lease *lease, const char *plugin_key, const char *method,
                        json_t *params, int64_t timeout_ms, pc_output_fn on_output,
                        void *output_ud, bool *streamed, json_t **result, pc_error_t *err)
{
    *result = NULL;
    if (streamed)
        *streamed = false;
    if (!app->plugins)
        return pc_error_set(err, 503, "the plugin host is not running");
    if (!lease)
        return pc_plugin_call(app->plugins, plugin_key, method, params, timeout_ms, result, err);
    pc_lease_call *c = pc_xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 2);
    pthread_mutex_init(&c->mu, NULL);
    pc_waiter_init(&c->w);
    c->host = app->plugins;
    snprintf(c->plugin_key, sizeof c->plugin_key, "%s", plugin_key);
    c->method = method;
    c->params = json_incref(params);
    c->timeout_ms = timeout_ms;
    c->on_output = on_output;
    c->output_ud = output_ud;
    pthread_mutex_lock(&lease->mu);
    lease->active_call = c;
    bool cancelled = atomic_load(&lease->cancelled);
    pthread_mutex_unlock(&lease->mu);
    int rc = 0;
    if (cancelled || pc_loop_post(app->loop, pc_call_start, c) < 0) {
        pc_call_unref(c); /* the callback's reference: it will never run */
        rc = cancelled ? 1 : pc_error_set(err, 503, "the runtime is stopping");
    } else {
        pc_waiter_wait(&c->w, -1);
        pthread_mutex_lock(&c->mu);
        if (!c->done) {
            c->abandoned = true;
            rc = 1;
        } else if (pc_error_is_set(&c->err)) {
            pc_error_move(err, &c->err);
            rc = -1;
        } else {
            *result = c->result ? c->result : json_null();
            c->result = NULL;
        }
        if (streamed)
            *streamed = c->streamed;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_lock(&lease->mu);
    lease->active_call = NULL;
    pthread_mutex_unlock(&lease->mu);
    pc_call_unref(c);
    return rc;
}

static void pc_lease_actor(const pc_lease *l, pc_actor *a)
{
    memset(a, 0, sizeof *a);
    if (l->agent_id[0]) {
        a->type = PC_ACTOR_AGENT;
        snprintf(a->agent_id, sizeof a->agent_id, "%.39s", l->agent_id);
        snprintf(a->company_id, sizeof a->company_id, "%.39s", l->company_id);
        snprintf(a->run_id, sizeof a->run_id, "%.39s", l->run_id);
    }
}

static json_t *pc_lease_row_meta(pc_app *app, const char *lease_id)
{
    pc_error_t e = PC_ERROR_INIT;
    json_t *row = pc_db_query_one_s(app->db, "SELECT metadata FROM environment_leases WHERE id=?",
                                    json_pack("[s]", lease_id), &e);
    pc_error_clear(&e);
    json_t *m = row ? pc_json_from_text(pc_json_str(row, "metadata")) : NULL;
    json_decref(row);
    if (!json_is_object(m)) {
        json_decref(m);
        m = json_object();
    }
    return m;
}

void pc_lease_meta_merge(pc_app *app, const char *lease_id, json_t *fields)
{
    json_t *m = pc_lease_row_meta(app, lease_id);
    json_object_update(m, fields);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    pc_error_t e = PC_ERROR_INIT;
    if (pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET metadata=?, last_used_at=?, updated_at=? "
                     "WHERE id=?",
                     json_pack("[O,s,s,s]", m, ts, ts, lease_id), NULL, &e) < 0)
        pc_warn("cannot update lease %s: %s", lease_id, e.msg);
    pc_error_clear(&e);
    json_decref(m);
}

void pc_lease_close_row(pc_app *app, const char *lease_id, const char *status,
                               const char *cleanup, const char *reason)
{
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    pc_error_t e = PC_ERROR_INIT;
    if (pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET status=?, cleanup_status=?, failure_reason=?, "
                     "released_at=?, updated_at=? WHERE id=?",
                     json_pack("[s,s?,s?,s,s,s]", status, cleanup, reason, ts, ts, lease_id), NULL,
                     &e) < 0)
        pc_warn("cannot update lease %s: %s", lease_id, e.msg);
    pc_error_clear(&e);
}

static void pc_lease_free(pc_lease *l)
{
    if (!l)
        return;
    json_decref(l->env);
    json_decref(l->plugin_lease);
    free(l->cwd);
    free(l->api_url);
    free(l->cached_callback_url);
    pc_proc_ctl_destroy(&l->ctl);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

json_t *pc_lease_config(const pc_lease *l) { return json_object_get(l->env, "config"); }

/* ------------------------------------------------------------ resolve */

json_t *pc_env_resolve_for_run(pc_app *app, const char *company_id, const char *issue_env_id,
                               const char *agent_env_id, char code[PC_ENV_CODE_LEN],
                               pc_error_t *err)
{
    code[0] = '\0';
    const char *id = issue_env_id && *issue_env_id   ? issue_env_id
                     : agent_env_id && *agent_env_id ? agent_env_id
                                                     : NULL;
    json_t *env = NULL;
    if (!id) {
        env = pc_env_ensure_local(app, company_id, err);
    } else if (pc_uuid_valid(id)) {
        pc_error_t e = PC_ERROR_INIT;
        env = pc_env_load(app, id, &e);
        if (!env && e.status != 404) {
            pc_error_move(err, &e);
        } else if (!env || strcmp(pc_json_str(env, "companyId"), company_id) != 0) {
            pc_error_clear(&e);
            json_decref(env);
            env = NULL;
            snprintf(code, PC_ENV_CODE_LEN, "environment_not_found");
            pc_error_set(err, 404, "Environment %s not found", id);
        }
    } else {
        snprintf(code, PC_ENV_CODE_LEN, "environment_not_found");
        pc_error_set(err, 404, "Environment %s not found", id);
    }
    if (!env) {
        if (!code[0])
            snprintf(code, PC_ENV_CODE_LEN, "environment_not_found");
        return NULL;
    }
    const char *status = pc_json_str(env, "status");
    if (strcmp(status, "active") != 0) {
        snprintf(code, PC_ENV_CODE_LEN, "environment_inactive");
        pc_error_set(err, 409, "Environment \"%s\" is not active (status: %s)",
                     pc_json_str(env, "name"), status);
        json_decref(env);
        return NULL;
    }
    return env;
}

/* ------------------------------------------------------------ acquire */

pc_lease *pc_lease_acquire(pc_app *app, json_t *env, const pc_lease_request *req,
                           pc_error_t *err)
{
    if (!env || !req || !req->run_id) {
        pc_error_set(err, 400, "lease_acquire_failed: environment and run id are required");
        return NULL;
    }
    if (strcmp(pc_json_str(env, "status") ? pc_json_str(env, "status") : "", "active") != 0) {
        pc_error_set(err, 409, "Environment \"%s\" is not active (status: %s)",
                     pc_json_str(env, "name"), pc_json_str(env, "status"));
        return NULL;
    }
    const pc_env_driver *d = pc_env_driver_find(pc_json_str(env, "driver"));
    if (!d) {
        pc_error_set(err, 422, "lease_acquire_failed: unsupported environment driver \"%s\"",
                     pc_json_str(env, "driver") ? pc_json_str(env, "driver") : "");
        return NULL;
    }
    pc_lease *l = pc_xcalloc(1, sizeof *l);
    l->app = app;
    l->drv = d;
    l->env = json_deep_copy(env);
    pthread_mutex_init(&l->mu, NULL);
    pc_proc_ctl_init(&l->ctl);
    atomic_init(&l->cancelled, false);
    atomic_init(&l->exec_seq, 0);
    snprintf(l->company_id, sizeof l->company_id, "%s", pc_json_str(env, "companyId"));
    snprintf(l->env_id, sizeof l->env_id, "%s", pc_json_str(env, "id"));
    snprintf(l->driver, sizeof l->driver, "%s", d->name);
    snprintf(l->run_id, sizeof l->run_id, "%s", req->run_id);
    snprintf(l->agent_id, sizeof l->agent_id, "%s", req->agent_id ? req->agent_id : "");
    snprintf(l->issue_id, sizeof l->issue_id, "%s", req->issue_id ? req->issue_id : "");
    snprintf(l->policy, sizeof l->policy, "ephemeral");
    json_t *cfg = pc_lease_config(l);
    const char *api = pc_json_str(cfg, "apiUrl");
    if (api)
        l->api_url = pc_xstrdup(api);
    const char *prov = d->name;
    if (d->admit && d->admit(l, &prov, err) < 0) {
        pc_lease_free(l);
        return NULL;
    }
    /* The row first: from here on a crash leaves a trace. */
    pc_uuid_v7(l->id);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_exec_s(app->db,
                     "INSERT INTO environment_leases(id,company_id,environment_id,"
                     "execution_workspace_id,issue_id,heartbeat_run_id,status,lease_policy,provider,"
                     "acquired_at,last_used_at,metadata,created_at,updated_at) "
                     "VALUES(?,?,?,?,?,?,'active','ephemeral',?,?,?,?,?,?)",
                     json_pack("[s,s,s,s?,s?,s,s?,s,s,{s:s,s:s},s,s]", l->id, l->company_id,
                               l->env_id, req->execution_workspace_id,
                               l->issue_id[0] ? l->issue_id : NULL, l->run_id, prov, ts, ts,
                               "phase", "acquiring", "driver", l->driver, ts, ts),
                     NULL, err) < 0) {
        pc_error_prefix(err, "lease_acquire_failed");
        pc_lease_free(l);
        return NULL;
    }
    if (d->acquire && d->acquire(l, req, err) < 0) {
        pc_lease_close_row(app, l->id, "failed", l->plugin_lease ? "pending" : "success",
                           err->msg);
        pc_error_prefix(err, "lease_acquire_failed");
        pc_lease_free(l);
        return NULL;
    }
    pc_actor actor;
    pc_lease_actor(l, &actor);
    json_t *details = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?}", "environmentId", l->env_id,
                                "driver", l->driver, "leasePolicy", l->policy, "provider",
                                l->provider, "executionWorkspaceId", req->execution_workspace_id,
                                "issueId", l->issue_id[0] ? l->issue_id : NULL);
    pc_error_t e = PC_ERROR_INIT;
    pc_activity_log(app, actor.type ? &actor : NULL, l->company_id, "environment.lease_acquired",
                    "environment_lease", l->id, details, &e);
    pc_error_clear(&e);
    json_decref(details);
    return l;
}

/* ------------------------------------------------------------ realize */

int pc_lease_realize(pc_lease *l, const char *local_path, char *cwd, size_t cwd_cap,
                     pc_error_t *err)
{
    char *dir = NULL;
    if (!l->drv->realize)
        return pc_error_set(err, 422, "workspace_realization_failed: the %s driver has no workspace",
                            l->driver);
    if (l->drv->realize(l, local_path, &dir, err) < 0)
        return -1;
    if (strlen(dir) + 1 > cwd_cap) {
        free(dir);
        return pc_error_set(err, 500, "workspace_realization_failed: cwd too long");
    }
    snprintf(cwd, cwd_cap, "%s", dir);
    free(l->cwd);
    l->cwd = dir;
    json_t *m = json_pack("{s:s}", "cwd", dir);
    pc_lease_meta_merge(l->app, l->id, m);
    json_decref(m);
    return 0;
}

/* ------------------------------------------------------------ execute */

int pc_lease_execute(pc_lease *l, const pc_exec_request *req, pc_exec_result *res,
                     pc_error_t *err)
{
    if (!req || !req->command || !*req->command) {
        memset(res, 0, sizeof *res);
        return pc_error_set(err, 400, "execution_failed: no command");
    }
    if (!l->drv->execute) {
        memset(res, 0, sizeof *res);
        return pc_error_set(err, 422, "execution_failed: the %s driver cannot execute commands",
                            l->driver);
    }
    /* Commands that are our child processes are recorded here, so a daemon
     * that dies mid-command leaves enough to kill them at restart. */
    char pid_file[1400];
    snprintf(pid_file, sizeof pid_file, "%s/leases/%s.%d.pid", l->app->cfg.data_dir, l->id,
             atomic_fetch_add(&l->exec_seq, 1));
    int rc = l->drv->execute(l, req, pid_file, res, err);
    if (rc < 0)
        pc_error_prefix(err, "execution_failed");
    if (atomic_load(&l->cancelled))
        res->cancelled = true;
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    pc_error_t e = PC_ERROR_INIT;
    pc_db_exec_s(l->app->db, "UPDATE environment_leases SET last_used_at=? WHERE id=?",
                 json_pack("[s,s]", ts, l->id), NULL, &e);
    pc_error_clear(&e);
    return rc;
}

void pc_lease_cancel(pc_lease *l)
{
    atomic_store(&l->cancelled, true);
    pc_proc_cancel(&l->ctl);
    pthread_mutex_lock(&l->mu);
    pc_lease_call *c = l->active_call;
    if (c) {
        pthread_mutex_lock(&c->mu);
        if (!c->done)
            c->abandoned = true;
        pthread_mutex_unlock(&c->mu);
        pc_waiter_signal(&c->w);
    }
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------ release */

static const char *pc_release_status(const char *run_status)
{
    if (!run_status)
        return "released";
    if (!strcmp(run_status, "cancelled"))
        return "expired";
    if (!strcmp(run_status, "failed") || !strcmp(run_status, "timed_out"))
        return "failed";
    return "released";
}

int pc_lease_release(pc_lease *l, const char *run_status, pc_error_t *err)
{
    if (!l)
        return 0;
    pc_app *app = l->app;
    const char *status = pc_release_status(run_status);
    const char *cleanup = "success";
    char *reason = NULL;
    int rc = 0;
    bool retained = false;
    if (l->drv->release) {
        pc_error_t e = PC_ERROR_INIT;
        if (l->drv->release(l, &retained, &e) < 0) {
            cleanup = "failed";
            reason = pc_xasprintf("release failed: %s", e.msg);
            pc_error_set(err, e.status ? e.status : 502, "cannot release lease %s: %s", l->id,
                         e.msg);
            rc = -1;
            retained = false;
        }
        pc_error_clear(&e);
    }
    const char *closed = retained ? pc_lease_issue_closed(app, l->issue_id) : NULL;
    if (retained && closed) {
        /* The issue closed while this run held the lease: nothing will
         * resume it, so it goes the way of the issue's other leases. */
        char *why = pc_xasprintf("issue %s", closed);
        pc_lease_schedule_cleanup(app, l->id, "active", why);
        free(why);
        status = "pending_cleanup";
        cleanup = "pending";
        retained = false;
    } else if (retained) {
        /* A reusable lease outlives the run; the next run resumes it. */
        char ts[PC_ISO_LEN + 1];
        pc_iso_now(ts);
        pc_error_t e = PC_ERROR_INIT;
        pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET status='retained', last_used_at=?, "
                     "updated_at=? WHERE id=?",
                     json_pack("[s,s,s]", ts, ts, l->id), NULL, &e);
        pc_error_clear(&e);
        status = "retained";
        cleanup = NULL;
    } else {
        pc_lease_close_row(app, l->id, status, cleanup, reason);
    }
    pc_actor actor;
    pc_lease_actor(l, &actor);
    json_t *details = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:b,s:s?,s:s?}", "environmentId",
                                l->env_id, "driver", l->driver, "leasePolicy", l->policy,
                                "provider", l->provider, "status", status, "cleanupStatus",
                                cleanup, "retained", retained, "runStatus", run_status,
                                "issueId", l->issue_id[0] ? l->issue_id : NULL);
    pc_error_t e = PC_ERROR_INIT;
    pc_activity_log(app, actor.type ? &actor : NULL, l->company_id, "environment.lease_released",
                    "environment_lease", l->id, details, &e);
    pc_error_clear(&e);
    json_decref(details);
    free(reason);
    pc_lease_free(l);
    return rc;
}

const char *pc_lease_id(const pc_lease *l) { return l->id; }
const char *pc_lease_driver(const pc_lease *l) { return l->driver; }
const char *pc_lease_api_url(const pc_lease *l) { return l->api_url; }

bool pc_lease_needs_callback_probe(const pc_lease *l) { return l->drv->probe_callback; }

const char *pc_lease_cached_callback_url(const pc_lease *l) { return l->cached_callback_url; }

bool pc_lease_declares_no_network(const pc_lease *l)
{
    const char *n = pc_json_str(json_object_get(l->plugin_lease, "metadata"), "network");
    return n && !strcmp(n, "none");
}

void pc_lease_set_callback_url(pc_lease *l, const char *url)
{
    free(l->api_url);
    l->api_url = pc_xstrdup(url);
    json_t *m = json_pack("{s:s}", "callbackUrl", url);
    pc_lease_meta_merge(l->app, l->id, m);
    json_decref(m);
}

/* ------------------------------------------------------------ cleanup */

/*
 * Reusable leases that no run will resume again are destroyed through their
 * driver's destroy hook (environmentDestroyLease for sandbox providers):
 *
 *   retained ──claim──> pending_cleanup ──destroy ok──> released (success)
 *                        (cleanup pending)  │
 *                             ^             └─destroy fails─> retry later,
 *                             └──────────────── backoff      or failed/failed
 *                                                             after the last
 *
 * A claim is one conditional UPDATE, so a run resuming the lease and a
 * cleanup never both get it. Attempts are serialised by cleanup_mu so that
 * the sweeper and a synchronous caller (environment delete) never destroy
 * the same lease twice at once; each attempt re-reads its row.
 */

#define PC_CLEANUP_MAX_ATTEMPTS 8
#define PC_CLEANUP_BACKOFF_BASE_MS 1000
#define PC_CLEANUP_BACKOFF_MAX_MS 300000
#define PC_SWEEP_INTERVAL_MS 1000

static pthread_mutex_t cleanup_mu = PTHREAD_MUTEX_INITIALIZER;
/* Destroy attempts the test fault hook still makes fail (see
 * pc_env_service_start). */
static atomic_int destroy_faults;

static pthread_mutex_t sweep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sweep_cv;
static bool sweep_stop, sweep_kick;

static void pc_sweep_wake(void)
{
    pthread_mutex_lock(&sweep_mu);
    sweep_kick = true;
    pthread_cond_signal(&sweep_cv);
    pthread_mutex_unlock(&sweep_mu);
}

const char *pc_lease_issue_closed(pc_app *app, const char *issue_id)
{
    if (!issue_id || !*issue_id)
        return NULL;
    pc_error_t e = PC_ERROR_INIT;
    json_t *row = pc_db_query_one_s(app->db, "SELECT status FROM issues WHERE id=?",
                                    json_pack("[s]", issue_id), &e);
    if (!row && pc_error_is_set(&e)) {
        /* Unknown is not closed: the lease stays for its idle TTL. */
        pc_warn("cannot read issue %s: %s", issue_id, e.msg);
        pc_error_clear(&e);
        return NULL;
    }
    pc_error_clear(&e);
    const char *st = row ? pc_json_str(row, "status") : NULL;
    const char *out = !row                               ? "deleted"
                      : st && !strcmp(st, "done")      ? "done"
                      : st && !strcmp(st, "cancelled") ? "cancelled"
                                                       : NULL;
    json_decref(row);
    return out;
}

/* The claim itself. hold_ms > 0 keeps the sweeper off the lease for that
 * long because the caller destroys it at once; 0 hands it to the sweeper. */
static int pc_lease_claim(pc_app *app, const char *lease_id, const char *from_status,
                          const char *reason, int64_t hold_ms)
{
    char ts[PC_ISO_LEN + 1], hold[PC_ISO_LEN + 1];
    int64_t now = pc_now_ms();
    pc_iso8601(now, ts);
    pc_iso8601(now + hold_ms, hold);
    int64_t changed = 0;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET status='pending_cleanup', "
                     "cleanup_status='pending', failure_reason=?, next_cleanup_at=?, "
                     "updated_at=? WHERE id=? AND status=?",
                     json_pack("[s,s?,s,s,s]", reason, hold_ms > 0 ? hold : NULL, ts, lease_id,
                               from_status),
                     &changed, &e) < 0)
        pc_warn("cannot schedule cleanup of lease %s: %s", lease_id, e.msg);
    pc_error_clear(&e);
    if (changed > 0 && hold_ms <= 0)
        pc_sweep_wake();
    return changed > 0;
}

int pc_lease_schedule_cleanup(pc_app *app, const char *lease_id, const char *from_status,
                              const char *reason)
{
    return pc_lease_claim(app, lease_id, from_status, reason, 0);
}

/* Destroys the provider side of one stored lease row through its driver. */
static int pc_lease_destroy_row(pc_app *app, json_t *row, json_t *meta, pc_error_t *err)
{
    const pc_env_driver *d = pc_env_driver_find(pc_json_str(meta, "driver"));
    if (!d || !d->destroy)
        return pc_error_set(err, 500, "lease %s has no provider record", pc_json_str(row, "id"));
    int left = atomic_load(&destroy_faults);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&destroy_faults, &left, left - 1))
            return pc_error_set(err, 502, "injected destroy failure");
    }
    return d->destroy(app, row, meta, err);
}

static int64_t pc_cleanup_backoff_ms(int attempts)
{
    int64_t ms = PC_CLEANUP_BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && ms < PC_CLEANUP_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < PC_CLEANUP_BACKOFF_MAX_MS ? ms : PC_CLEANUP_BACKOFF_MAX_MS;
}

/* One destroy attempt for a pending_cleanup lease (its id); 1 when the
 * provider side is gone, 0 when it will be retried or gave up, -1 when the
 * row is no longer pending. */
static int pc_cleanup_attempt(pc_app *app, const char *lease_id)
{
    pthread_mutex_lock(&cleanup_mu);
    pc_error_t e = PC_ERROR_INIT;
    json_t *row = pc_db_query_one_s(
        app->db, "SELECT * FROM environment_leases WHERE id=? AND status='pending_cleanup'",
        json_pack("[s]", lease_id), &e);
    pc_error_clear(&e);
    if (!row) {
        pthread_mutex_unlock(&cleanup_mu);
        return -1;
    }
    json_t *meta = pc_json_from_text(pc_json_str(row, "metadata"));
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    int attempts = (int)json_integer_value(json_object_get(row, "cleanup_attempts")) + 1;
    int rc = pc_lease_destroy_row(app, row, meta, &e);
    const char *reason = pc_json_str(row, "failure_reason");
    char ts[PC_ISO_LEN + 1], next[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    const char *status, *cleanup;
    char *why = NULL;
    pc_error_t e2 = PC_ERROR_INIT;
    if (rc == 0) {
        status = "released";
        cleanup = "success";
        pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET status='released', cleanup_status='success', "
                     "cleanup_attempts=?, next_cleanup_at=NULL, released_at=?, updated_at=? "
                     "WHERE id=?",
                     json_pack("[i,s,s,s]", attempts, ts, ts, lease_id), NULL, &e2);
    } else if (attempts >= PC_CLEANUP_MAX_ATTEMPTS) {
        status = "failed";
        cleanup = "failed";
        why = pc_xasprintf("destroy failed after %d attempts: %s", attempts, e.msg);
        pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET status='failed', cleanup_status='failed', "
                     "cleanup_attempts=?, next_cleanup_at=NULL, failure_reason=?, released_at=?, "
                     "updated_at=? WHERE id=?",
                     json_pack("[i,s,s,s,s]", attempts, why, ts, ts, lease_id), NULL, &e2);
    } else {
        status = "pending_cleanup";
        cleanup = "pending";
        pc_iso8601(pc_now_ms() + pc_cleanup_backoff_ms(attempts), next);
        json_t *m = json_pack("{s:s,s:s}", "lastCleanupError", e.msg, "lastCleanupAttemptAt", ts);
        pc_lease_meta_merge(app, lease_id, m);
        json_decref(m);
        pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET cleanup_attempts=?, next_cleanup_at=?, "
                     "updated_at=? WHERE id=?",
                     json_pack("[i,s,s,s]", attempts, next, ts, lease_id), NULL, &e2);
        pc_warn("cannot destroy lease %s (attempt %d, next at %s): %s", lease_id, attempts, next,
                e.msg);
    }
    if (pc_error_is_set(&e2))
        pc_warn("cannot update lease %s: %s", lease_id, e2.msg);
    pc_error_clear(&e2);
    if (strcmp(status, "pending_cleanup") != 0) {
        json_t *details = json_pack(
            "{s:s,s:s?,s:s?,s:s,s:s,s:i,s:s?}", "environmentId",
            pc_json_str(row, "environment_id"), "driver", pc_json_str(meta, "driver"), "provider",
            pc_json_str(row, "provider"), "status", status, "cleanupStatus", cleanup,
            "cleanupAttempts", attempts, "reason", reason);
        pc_activity_log(app, NULL, pc_json_str(row, "company_id"), "environment.lease_released",
                        "environment_lease", lease_id, details, &e2);
        pc_error_clear(&e2);
        json_decref(details);
    }
    free(why);
    pc_error_clear(&e);
    json_decref(meta);
    json_decref(row);
    pthread_mutex_unlock(&cleanup_mu);
    return rc == 0 ? 1 : 0;
}

/* Claims the retained leases in scope (pending_cleanup) and returns their
 * ids. with_pending: the caller destroys them itself (the sweeper keeps
 * off them) and wants the ids of those already pending there too. */
static json_t *pc_cleanup_claim(pc_app *app, const char *company_id, const char *env_id,
                                const char *issue_id, const char *reason, bool with_pending,
                                pc_error_t *err)
{
    json_t *rows = NULL;
    if (pc_db_query_s(app->db,
                      "SELECT id, status FROM environment_leases WHERE company_id=? AND "
                      "status IN ('retained','pending_cleanup') AND (? IS NULL OR "
                      "environment_id=?) AND (? IS NULL OR issue_id=?) ORDER BY created_at",
                      json_pack("[s,s?,s?,s?,s?]", company_id, env_id, env_id, issue_id, issue_id),
                      &rows, err) < 0)
        return NULL;
    json_t *ids = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *id = pc_json_str(row, "id");
        bool retained = !strcmp(pc_json_str(row, "status"), "retained");
        if (retained ? pc_lease_claim(app, id, "retained", reason,
                                      with_pending ? PC_CLEANUP_BACKOFF_MAX_MS : 0)
                     : with_pending)
            json_array_append_new(ids, json_string(id));
    }
    json_decref(rows);
    return ids;
}

int pc_env_schedule_reusable_cleanup(pc_app *app, const char *company_id, const char *env_id,
                                     const char *issue_id, const char *reason, pc_error_t *err)
{
    if (!env_id && !issue_id)
        return 0;
    json_t *ids = pc_cleanup_claim(app, company_id, env_id, issue_id, reason, false, err);
    if (!ids)
        return -1;
    int n = (int)json_array_size(ids);
    json_decref(ids);
    return n;
}

int pc_env_issue_closed(pc_app *app, const char *company_id, const char *issue_id,
                        const char *issue_status, pc_error_t *err)
{
    char *why = pc_xasprintf("issue %s", issue_status ? issue_status : "closed");
    int n = pc_env_schedule_reusable_cleanup(app, company_id, NULL, issue_id, why, err);
    free(why);
    return n;
}

int pc_env_destroy_reusable_leases(pc_app *app, const char *company_id, const char *env_id,
                                   const char *issue_id, const char *reason, int *left,
                                   pc_error_t *err)
{
    if (left)
        *left = 0;
    if (!env_id && !issue_id)
        return 0;
    json_t *ids = pc_cleanup_claim(app, company_id, env_id, issue_id,
                                   reason ? reason : "destroyed", true, err);
    if (!ids)
        return -1;
    int n = 0;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        int r = pc_cleanup_attempt(app, json_string_value(id));
        if (r == 1)
            n++;
        else if (r == 0 && left)
            (*left)++;
    }
    json_decref(ids);
    return n;
}

/* When a retained lease stops being worth keeping: the provider's expiresAt
 * passed, or it sat unused for the operator's idle TTL. NULL: keep it. */
static char *pc_idle_reason(pc_app *app, json_t *row, int64_t now)
{
    int64_t t;
    const char *exp = pc_json_str(row, "expires_at");
    if (exp && pc_iso_parse(exp, &t) == 0 && t <= now)
        return pc_xstrdup("provider lease expired");
    int ttl = app->cfg.lease_idle_ttl_s;
    const char *used = pc_json_str(row, "last_used_at");
    if (ttl > 0 && used && pc_iso_parse(used, &t) == 0 && t + (int64_t)ttl * 1000 <= now)
        return pc_xasprintf("idle for more than %d s", ttl);
    return NULL;
}

/* One pass of the sweeper: idle retained leases are claimed, due pending
 * cleanups are attempted. */
static void pc_cleanup_sweep(pc_app *app)
{
    json_t *rows = NULL;
    pc_error_t e = PC_ERROR_INIT;
    int64_t now = pc_now_ms();
    if (pc_db_query_s(app->db,
                      "SELECT id, expires_at, last_used_at FROM environment_leases "
                      "WHERE status='retained'",
                      json_pack("[]"), &rows, &e) == 0) {
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            char *why = pc_idle_reason(app, row, now);
            if (why)
                pc_lease_schedule_cleanup(app, pc_json_str(row, "id"), "retained", why);
            free(why);
        }
    }
    json_decref(rows);
    rows = NULL;
    pc_error_clear(&e);
    char ts[PC_ISO_LEN + 1];
    pc_iso8601(now, ts);
    if (pc_db_query_s(app->db,
                      "SELECT id FROM environment_leases WHERE status='pending_cleanup' AND "
                      "(next_cleanup_at IS NULL OR next_cleanup_at <= ?) ORDER BY updated_at",
                      json_pack("[s]", ts), &rows, &e) == 0) {
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            if (atomic_load(&app->stopping))
                break;
            pc_cleanup_attempt(app, pc_json_str(row, "id"));
        }
    } else {
        pc_warn("cannot list pending lease cleanups: %s", e.msg);
    }
    json_decref(rows);
    pc_error_clear(&e);
}

/* ------------------------------------------------------ reconciliation */

int pc_lease_kill_processes(pc_app *app, json_t *row)
{
    const char *lease_id = pc_json_str(row, "id");
    if (!lease_id)
        return 0;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/leases", app->cfg.data_dir);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t idlen = strlen(lease_id);
    int killed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > idlen + 5 && !strncmp(e->d_name, lease_id, idlen) && e->d_name[idlen] == '.' &&
            !strcmp(e->d_name + n - 4, ".pid")) {
            char path[1500];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            killed += pc_proc_kill_recorded(path);
        }
    }
    closedir(d);
    return killed;
}

static void pc_reconcile_one(pc_app *app, json_t *row)
{
    const char *id = pc_json_str(row, "id"), *cid = pc_json_str(row, "company_id");
    json_t *meta = pc_json_from_text(pc_json_str(row, "metadata"));
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    const char *driver = pc_json_str(meta, "driver");
    const char *phase = pc_json_str(meta, "phase");
    const char *policy = pc_json_str(row, "lease_policy");
    const pc_env_driver *d = pc_env_driver_find(driver);
    const char *action = "closed";
    if (!d || !d->destroy) {
        /* Nothing outside the daemon holds the lease; what its commands
         * left on this host goes (an unknown driver's too, to be safe). */
        int killed = d ? (d->reconcile ? d->reconcile(app, row) : 0)
                       : pc_lease_kill_processes(app, row);
        char *why = pc_xasprintf("daemon restarted while the lease was active%s",
                                 killed ? "; its leftover commands were killed" : "");
        pc_lease_close_row(app, id, "expired", "success", why);
        free(why);
        if (killed)
            action = "closed, leftover processes killed";
    } else if (phase && !strcmp(phase, "acquiring")) {
        /* The provider may hold a lease we never learned the id of. */
        pc_lease_close_row(app, id, "failed", "failed",
                           "daemon stopped while acquiring the lease; the provider lease (if "
                           "any) is unknown");
        action = "abandoned";
    } else {
        pc_error_t e = PC_ERROR_INIT;
        int r = -1;
        bool reusable = policy && !strcmp(policy, "reuse_by_environment");
        if (d->resume && reusable) {
            json_t *pm = NULL;
            r = d->resume(app, row, meta, &pm, &e);
            if (r == 0) {
                /* The run that held it (if any) died with the daemon: the
                 * lease waits for the next run like any retained one. */
                action = "resumed";
                json_t *m = json_object();
                if (json_is_object(pm))
                    json_object_update(m, pm);
                char ts[PC_ISO_LEN + 1];
                pc_iso_now(ts);
                json_object_set_new(m, "reconciledAt", json_string(ts));
                pc_lease_meta_merge(app, id, m);
                json_decref(m);
                pc_db_exec_s(app->db,
                             "UPDATE environment_leases SET status='retained' WHERE id=? AND "
                             "status='active'",
                             json_pack("[s]", id), NULL, &e);
            }
            pc_error_clear(&e);
            json_decref(pm);
        }
        if (r != 0 && reusable) {
            /* Destroyed like any reusable lease: retried with backoff. */
            const char *st = pc_json_str(row, "status");
            pc_lease_schedule_cleanup(app, id, st ? st : "active",
                                      "daemon restarted and the lease could not be resumed");
            action = "scheduled for cleanup";
        } else if (r != 0) {
            r = d->destroy(app, row, meta, &e);
            action = r == 0 ? "destroyed" : "destroy failed";
            char *why = r == 0 ? pc_xstrdup("daemon restarted while the lease was active")
                               : pc_xasprintf("cleanup after restart failed: %s", e.msg);
            pc_lease_close_row(app, id, r == 0 ? "expired" : "failed",
                               r == 0 ? "success" : "failed", why);
            free(why);
        }
        pc_error_clear(&e);
    }
    pc_info("reconciled environment lease %s (%s): %s", id, driver ? driver : "?", action);
    json_t *details = json_pack("{s:s,s:s,s:s}", "environmentId",
                                pc_json_str(row, "environment_id"), "driver",
                                driver ? driver : "unknown", "reconciliation", action);
    pc_error_t e = PC_ERROR_INIT;
    if (strcmp(action, "resumed") != 0 && strcmp(action, "scheduled for cleanup") != 0)
        pc_activity_log(app, NULL, cid, "environment.lease_released", "environment_lease", id,
                        details, &e);
    pc_error_clear(&e);
    json_decref(details);
    json_decref(meta);
}

/* Leases created before this instant belong to a previous daemon; later
 * ones are live leases of this one and must not be touched. */
static char boot_iso[PC_ISO_LEN + 1];

void pc_lease_reconcile(pc_app *app)
{
    json_t *rows = NULL;
    pc_error_t e = PC_ERROR_INIT;
    if (!boot_iso[0])
        pc_iso_now(boot_iso);
    if (pc_db_query_s(app->db,
                      "SELECT * FROM environment_leases WHERE status IN ('active','retained') "
                      "AND created_at < ? ORDER BY acquired_at",
                      json_pack("[s]", boot_iso), &rows, &e) < 0) {
        pc_warn("cannot list active leases: %s", e.msg);
        pc_error_clear(&e);
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (app->stopping)
            break;
        pc_reconcile_one(app, row);
    }
    json_decref(rows);
    /* Cleanups a previous daemon left pending are due now, not at the
     * backoff it had computed. */
    if (pc_db_exec_s(app->db,
                     "UPDATE environment_leases SET next_cleanup_at=NULL "
                     "WHERE status='pending_cleanup' AND created_at < ?",
                     json_pack("[s]", boot_iso), NULL, &e) < 0)
        pc_warn("cannot resume pending lease cleanups: %s", e.msg);
    pc_error_clear(&e);
}

/* ------------------------------------------------------------ service */

/* One thread reconciles at start-up and then sweeps: idle retained leases
 * and due cleanups, every PC_SWEEP_INTERVAL_MS or at once when woken. The
 * provider calls block this thread only, never the runtime loop. */
static pthread_t sweep_thread;
static bool sweep_started;

static void *pc_sweep_main(void *arg)
{
    pc_app *app = arg;
    pc_lease_reconcile(app);
    pthread_mutex_lock(&sweep_mu);
    while (!sweep_stop) {
        sweep_kick = false;
        pthread_mutex_unlock(&sweep_mu);
        if (!atomic_load(&app->stopping))
            pc_cleanup_sweep(app);
        pthread_mutex_lock(&sweep_mu);
        if (sweep_stop || sweep_kick)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += PC_SWEEP_INTERVAL_MS / 1000;
        until.tv_nsec += (long)(PC_SWEEP_INTERVAL_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!sweep_stop && !sweep_kick &&
               pthread_cond_timedwait(&sweep_cv, &sweep_mu, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&sweep_mu);
    return NULL;
}

int pc_env_service_start(pc_app *app, pc_error_t *err)
{
    pc_iso_now(boot_iso);
    if (pc_secrets_init(app->cfg.data_dir, err) < 0)
        return -1;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/leases", app->cfg.data_dir);
    if (pc_mkdir_p(dir, 0700) < 0)
        return pc_error_errno(err, errno, "cannot create %s", dir);
    /* Fault injection for the cleanup tests: the first N destroys of
     * reusable leases fail, only where the test hooks are enabled. */
    const char *hooks = getenv("PAPERCLIP_ENABLE_TEST_HOOKS");
    const char *faults = getenv("PAPERCLIP_TEST_LEASE_DESTROY_FAILURES");
    long n = 0;
    if (hooks && !strcmp(hooks, "1") && faults && *faults) {
        char *end;
        n = strtol(faults, &end, 10);
        if (*end || n < 0 || n > 1000000)
            n = 0;
    }
    atomic_store(&destroy_faults, (int)n);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sweep_cv, &ca);
    pthread_condattr_destroy(&ca);
    sweep_stop = false;
    sweep_kick = false;
    return 0;
}

void pc_env_service_ready(pc_app *app)
{
    /* Off the main thread: plugin workers may still be starting and the
     * daemon must answer requests (and signals) meanwhile. */
    if (pthread_create(&sweep_thread, NULL, pc_sweep_main, app) == 0)
        sweep_started = true;
    else
        pc_warn("cannot start lease reconciliation");
}

void pc_env_service_stop(pc_app *app)
{
    (void)app;
    pthread_mutex_lock(&sweep_mu);
    sweep_stop = true;
    pthread_cond_signal(&sweep_cv);
    pthread_mutex_unlock(&sweep_mu);
    if (sweep_started)
        pthread_join(sweep_thread, NULL);
    sweep_started = false;
    pthread_cond_destroy(&sweep_cv);
}
