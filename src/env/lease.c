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
 *             (cleanupStatus) or asks to retain it for the next run ->
 *             activity environment.lease_released
 *
 * Because the row exists before the provider lease, a daemon that dies at
 * any point leaves a row that start-up reconciliation (pc_lease_reconcile)
 * finds. A driver that holds leases outside the daemon (destroy hook) gets
 * reusable ones resumed (or destroyed when that fails) and the others
 * destroyed; a row still "acquiring" means the provider may have created a
 * lease we never heard of, so it is marked failed with cleanupStatus failed
 * for an operator to see. Other leases are closed after the driver's
 * reconcile hook killed what their commands left running.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

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

static void pc_call_start(pc_loop *loop, void *arg)
{
    (void)loop;
    pc_lease_call *c = arg;
    pc_plugin_call_async(c->host, c->plugin_key, c->method, c->params, c->timeout_ms, pc_call_cb,
                         c);
}

int pc_lease_rpc(pc_app *app, pc_lease *lease, const char *plugin_key, const char *method,
                        json_t *params, int64_t timeout_ms, json_t **result, pc_error_t *err)
{
    *result = NULL;
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
    if (retained) {
        /* A reusable lease outlives the run; the next run resumes it. */
        char ts[PC_ISO_LEN + 1];
        pc_iso_now(ts);
        pc_error_t e = PC_ERROR_INIT;
        pc_db_exec_s(app->db, "UPDATE environment_leases SET last_used_at=?, updated_at=? WHERE id=?",
                     json_pack("[s,s,s]", ts, ts, l->id), NULL, &e);
        pc_error_clear(&e);
        status = "active";
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

void pc_lease_set_callback_url(pc_lease *l, const char *url)
{
    free(l->api_url);
    l->api_url = pc_xstrdup(url);
    json_t *m = json_pack("{s:s}", "callbackUrl", url);
    pc_lease_meta_merge(l->app, l->id, m);
    json_decref(m);
}

/* Destroys the provider side of one stored lease row through its driver. */
static int pc_lease_destroy_row(pc_app *app, json_t *row, json_t *meta, pc_error_t *err)
{
    const pc_env_driver *d = pc_env_driver_find(pc_json_str(meta, "driver"));
    if (!d || !d->destroy)
        return pc_error_set(err, 500, "lease %s has no provider record", pc_json_str(row, "id"));
    return d->destroy(app, row, meta, err);
}

int pc_env_destroy_reusable_leases(pc_app *app, const char *company_id, const char *env_id,
                                   const char *issue_id, const char *reason, pc_error_t *err)
{
    if (!env_id && !issue_id)
        return 0;
    json_t *rows = NULL;
    if (pc_db_query_s(app->db,
                      "SELECT * FROM environment_leases WHERE company_id=? AND status='active' AND "
                      "lease_policy='reuse_by_environment' AND (? IS NULL OR environment_id=?) "
                      "AND (? IS NULL OR issue_id=?)",
                      json_pack("[s,s?,s?,s?,s?]", company_id, env_id, env_id, issue_id, issue_id),
                      &rows, err) < 0)
        return -1;
    int n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *meta = pc_json_from_text(pc_json_str(row, "metadata"));
        pc_error_t e = PC_ERROR_INIT;
        int rc = pc_lease_destroy_row(app, row, meta, &e);
        char *why = rc == 0 ? pc_xstrdup(reason ? reason : "destroyed")
                            : pc_xasprintf("destroy failed: %s", e.msg);
        pc_lease_close_row(app, pc_json_str(row, "id"), rc == 0 ? "released" : "failed",
                           rc == 0 ? "success" : "failed", why);
        free(why);
        pc_error_clear(&e);
        json_decref(meta);
        if (rc == 0)
            n++;
    }
    json_decref(rows);
    return n;
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
        if (d->resume && policy && !strcmp(policy, "reuse_by_environment")) {
            json_t *pm = NULL;
            r = d->resume(app, row, meta, &pm, &e);
            if (r == 0) {
                action = "resumed";
                json_t *m = json_object();
                if (json_is_object(pm))
                    json_object_update(m, pm);
                char ts[PC_ISO_LEN + 1];
                pc_iso_now(ts);
                json_object_set_new(m, "reconciledAt", json_string(ts));
                pc_lease_meta_merge(app, id, m);
                json_decref(m);
            } else {
                pc_error_clear(&e);
            }
            json_decref(pm);
        }
        if (r != 0) {
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
    if (strcmp(action, "resumed") != 0)
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
                      "SELECT * FROM environment_leases WHERE status='active' AND created_at < ? "
                      "ORDER BY acquired_at",
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
}

/* ------------------------------------------------------------ service */

static pthread_t reconcile_thread;
static bool reconcile_started;

static void *pc_reconcile_main(void *arg)
{
    pc_lease_reconcile(arg);
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
    return 0;
}

void pc_env_service_ready(pc_app *app)
{
    /* Off the main thread: plugin workers may still be starting and the
     * daemon must answer requests (and signals) meanwhile. */
    if (pthread_create(&reconcile_thread, NULL, pc_reconcile_main, app) == 0)
        reconcile_started = true;
    else
        pc_warn("cannot start lease reconciliation");
}

void pc_env_service_stop(pc_app *app)
{
    (void)app;
    if (reconcile_started)
        pthread_join(reconcile_thread, NULL);
    reconcile_started = false;
}
