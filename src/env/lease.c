/*
 * The lease manager: one lifecycle for every driver.
 *
 *   acquire   row written first (status active, metadata.phase "acquiring",
 *             no provider lease id) -> provider lease (sandbox) -> row
 *             updated with providerLeaseId, metadata (phase "ready"),
 *             expiresAt -> activity environment.lease_acquired
 *   realize   the directory commands run in (host / remote / sandbox)
 *   execute   any number of commands, each bounded and cancellable
 *   release   upstream's status mapping; ephemeral sandbox leases are
 *             released through the provider (cleanupStatus), reusable ones
 *             stay active for the next run -> activity
 *             environment.lease_released
 *
 * Because the row exists before the provider lease, a daemon that dies at
 * any point leaves a row that start-up reconciliation (pc_lease_reconcile)
 * finds: ephemeral sandbox leases are destroyed through their provider,
 * reusable ones are resumed (or destroyed when that fails), local and SSH
 * leases are closed. A row still "acquiring" means the provider may have
 * created a lease we never heard of; it is marked failed with cleanupStatus
 * failed so an operator can see it.
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

/* A sandbox RPC that a canceller may abandon: the waiting thread returns at
 * once and the late answer is dropped. Two references: waiter + callback. */
typedef struct pc_sbx_call {
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
} pc_sbx_call;

struct pc_lease {
    pc_app *app;
    char id[PC_UUID_LEN + 1];
    char company_id[64], env_id[64], run_id[64], agent_id[64], issue_id[64];
    char driver[16];
    char provider[256];
    char plugin_key[256];
    char policy[32];
    json_t *env;          /* environment API object (secret refs only) */
    json_t *plugin_lease; /* {providerLeaseId, metadata, expiresAt} for sandbox */
    char *cwd;
    char *api_url;
    pc_proc_ctl ctl;
    atomic_int exec_seq;  /* names the pid files of concurrent executes */
    pthread_mutex_t mu;
    atomic_bool cancelled;
    pc_sbx_call *active_call;
};

/* ------------------------------------------------------------ helpers */

static void pc_sbx_unref(pc_sbx_call *c)
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

static void pc_sbx_cb(void *ud, json_t *result, const pc_error_t *err)
{
    pc_sbx_call *c = ud;
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
    pc_sbx_unref(c);
}

static void pc_sbx_start(pc_loop *loop, void *arg)
{
    (void)loop;
    pc_sbx_call *c = arg;
    pc_plugin_call_async(c->host, c->plugin_key, c->method, c->params, c->timeout_ms, pc_sbx_cb,
                         c);
}

/* Calls the lease's provider; with a lease, the call can be abandoned by
 * pc_lease_cancel(). Returns 0 with *result, -1 with err, 1 if cancelled. */
static int pc_lease_rpc(pc_app *app, pc_lease *lease, const char *plugin_key, const char *method,
                        json_t *params, int64_t timeout_ms, json_t **result, pc_error_t *err)
{
    *result = NULL;
    if (!app->plugins)
        return pc_error_set(err, 503, "the plugin host is not running");
    if (!lease)
        return pc_plugin_call(app->plugins, plugin_key, method, params, timeout_ms, result, err);
    pc_sbx_call *c = pc_xcalloc(1, sizeof *c);
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
    if (cancelled || pc_loop_post(app->loop, pc_sbx_start, c) < 0) {
        pc_sbx_unref(c); /* the callback's reference: it will never run */
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
    pc_sbx_unref(c);
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

/* Merges fields into the row's metadata. */
static void pc_lease_meta_merge(pc_app *app, const char *lease_id, json_t *fields)
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

static void pc_lease_close_row(pc_app *app, const char *lease_id, const char *status,
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

/* Base params of every provider hook. config has secrets resolved. */
static json_t *pc_sbx_params(const char *provider, const char *company_id, const char *env_id,
                             const char *issue_id, json_t *resolved_cfg)
{
    return json_pack("{s:s,s:s,s:s,s:s?,s:o}", "driverKey", provider, "companyId", company_id,
                     "environmentId", env_id, "issueId", issue_id && *issue_id ? issue_id : NULL,
                     "config", pc_sandbox_driver_config(resolved_cfg));
}

static void pc_lease_free(pc_lease *l)
{
    if (!l)
        return;
    json_decref(l->env);
    json_decref(l->plugin_lease);
    free(l->cwd);
    free(l->api_url);
    pc_proc_ctl_destroy(&l->ctl);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static json_t *pc_lease_config(const pc_lease *l) { return json_object_get(l->env, "config"); }

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

/* An active reusable lease of env whose stored provider config equals the
 * current one (a different image or any other field means no reuse). */
static json_t *pc_find_reusable(pc_app *app, const char *env_id, json_t *config)
{
    json_t *rows = NULL;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_db_query_s(app->db,
                      "SELECT * FROM environment_leases WHERE environment_id=? AND status='active' "
                      "AND lease_policy='reuse_by_environment' AND provider_lease_id IS NOT NULL "
                      "ORDER BY last_used_at DESC",
                      json_pack("[s]", env_id), &rows, &e) < 0) {
        pc_error_clear(&e);
        return NULL;
    }
    json_t *found = NULL;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *m = pc_json_from_text(pc_json_str(row, "metadata"));
        bool same = json_equal(json_object_get(m, "providerConfig"), config);
        json_decref(m);
        if (same) {
            found = json_incref(row);
            break;
        }
    }
    json_decref(rows);
    return found;
}

static int pc_acquire_sandbox(pc_lease *l, const pc_lease_request *req, pc_error_t *err)
{
    pc_app *app = l->app;
    json_t *cfg = pc_lease_config(l);
    const char *prov = pc_json_str(cfg, "provider");
    if (!prov || !strcmp(prov, "fake"))
        return pc_error_set(err, 422,
                            "Environment \"%s\" uses the built-in fake sandbox provider, which is "
                            "probe-only and cannot execute runs.",
                            pc_json_str(l->env, "name"));
    pc_plugin_provider_info info;
    if (pc_sandbox_provider(app, prov, &info, err) < 0)
        return -1;
    snprintf(l->provider, sizeof l->provider, "%s", prov);
    snprintf(l->plugin_key, sizeof l->plugin_key, "%s", info.plugin_key);
    bool reusable = info.supports_reusable_leases && info.reuse_methods_supported &&
                    json_is_true(json_object_get(cfg, "reuseLease"));
    char plugin_id[64];
    snprintf(plugin_id, sizeof plugin_id, "%s", info.plugin_id);
    pc_plugin_provider_info_clear(&info);
    snprintf(l->policy, sizeof l->policy, "%s", reusable ? "reuse_by_environment" : "ephemeral");

    json_t *resolved = pc_envcfg_resolve(app, l->company_id, "sandbox", cfg, err);
    if (!resolved)
        return -1;
    json_t *result = NULL;
    int rc = -1;
    bool resumed = false;
    json_t *reuse_row = reusable ? pc_find_reusable(app, l->env_id, cfg) : NULL;
    if (reuse_row) {
        json_t *p = pc_sbx_params(prov, l->company_id, l->env_id, l->issue_id, resolved);
        json_t *meta = pc_json_from_text(pc_json_str(reuse_row, "metadata"));
        json_object_set_new(p, "providerLeaseId",
                            json_string(pc_json_str(reuse_row, "provider_lease_id")));
        json_object_set_new(p, "leaseMetadata", meta);
        pc_error_t e = PC_ERROR_INIT;
        int r = pc_lease_rpc(app, NULL, l->plugin_key, "environmentResumeLease", p, 0, &result,
                             &e);
        if (r == 0 && json_is_object(result)) {
            /* The resumed lease moves to this row's successor: the old row
             * is closed and the new row carries the provider lease on. */
            resumed = true;
            pc_lease_close_row(app, pc_json_str(reuse_row, "id"), "released", "success",
                               NULL);
        } else {
            pc_warn("cannot resume lease %s (%s); destroying it and acquiring a fresh one",
                    pc_json_str(reuse_row, "id"), r == 1 ? "cancelled" : e.msg);
            json_decref(result);
            result = NULL;
            pc_error_clear(&e);
            json_t *d = NULL;
            int dr = pc_lease_rpc(app, NULL, l->plugin_key, "environmentDestroyLease", p, 0, &d,
                                  &e);
            json_decref(d);
            pc_lease_close_row(app, pc_json_str(reuse_row, "id"), "failed",
                               dr == 0 ? "success" : "failed", "resume failed");
            pc_error_clear(&e);
        }
        json_decref(p);
        json_decref(reuse_row);
    }
    if (!resumed) {
        json_t *p = pc_sbx_params(prov, l->company_id, l->env_id, l->issue_id, resolved);
        json_object_set_new(p, "runId", json_string(l->run_id));
        json_object_set_new(p, "workspaceMode", json_string("isolated"));
        if (l->agent_id[0])
            json_object_set_new(p, "agentId", json_string(l->agent_id));
        if (req->execution_workspace_id)
            json_object_set_new(p, "executionWorkspaceId",
                                json_string(req->execution_workspace_id));
        /* Not cancellable: an abandoned acquire would leave a provider lease
         * nobody knows about. Cancellation takes effect at the next step. */
        int r = pc_lease_rpc(app, NULL, l->plugin_key, "environmentAcquireLease", p, 0, &result,
                             err);
        json_decref(p);
        if (r == 1)
            pc_error_set(err, 409, "lease acquisition cancelled");
        if (r != 0)
            goto out;
    }
    if (!json_is_object(result)) {
        pc_error_set(err, 502, "sandbox provider \"%s\" returned no lease", prov);
        goto out;
    }
    l->plugin_lease = json_pack("{s:O,s:O,s:O}", "providerLeaseId",
                                json_object_get(result, "providerLeaseId")
                                    ? json_object_get(result, "providerLeaseId")
                                    : json_null(),
                                "metadata",
                                json_object_get(result, "metadata")
                                    ? json_object_get(result, "metadata")
                                    : json_null(),
                                "expiresAt",
                                json_object_get(result, "expiresAt")
                                    ? json_object_get(result, "expiresAt")
                                    : json_null());
    (void)plugin_id;
    json_t *meta = json_object();
    json_t *pm = json_object_get(result, "metadata");
    if (json_is_object(pm))
        json_object_update(meta, pm);
    json_object_set_new(meta, "provider", json_string(prov));
    json_object_set_new(meta, "driver", json_string("sandbox"));
    json_object_set_new(meta, "pluginKey", json_string(l->plugin_key));
    json_object_set_new(meta, "pluginId", json_string(plugin_id));
    json_object_set_new(meta, "providerConfig", json_deep_copy(cfg));
    json_object_set_new(meta, "phase", json_string("ready"));
    const char *expires = pc_json_str(result, "expiresAt");
    const char *plid = pc_json_str(result, "providerLeaseId");
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    rc = pc_db_exec_s(app->db,
                      "UPDATE environment_leases SET provider=?, provider_lease_id=?, lease_policy=?,"
                      " metadata=?, expires_at=?, updated_at=? WHERE id=?",
                      json_pack("[s,s?,s,O,s?,s,s]", prov, plid, l->policy, meta, expires, ts,
                                l->id),
                      NULL, err);
    json_decref(meta);
out:
    json_decref(result);
    json_decref(resolved);
    return rc;
}

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
    pc_lease *l = pc_xcalloc(1, sizeof *l);
    l->app = app;
    l->env = json_deep_copy(env);
    pthread_mutex_init(&l->mu, NULL);
    pc_proc_ctl_init(&l->ctl);
    atomic_init(&l->cancelled, false);
    atomic_init(&l->exec_seq, 0);
    snprintf(l->company_id, sizeof l->company_id, "%s", pc_json_str(env, "companyId"));
    snprintf(l->env_id, sizeof l->env_id, "%s", pc_json_str(env, "id"));
    snprintf(l->driver, sizeof l->driver, "%s", pc_json_str(env, "driver"));
    snprintf(l->run_id, sizeof l->run_id, "%s", req->run_id);
    snprintf(l->agent_id, sizeof l->agent_id, "%s", req->agent_id ? req->agent_id : "");
    snprintf(l->issue_id, sizeof l->issue_id, "%s", req->issue_id ? req->issue_id : "");
    snprintf(l->policy, sizeof l->policy, "ephemeral");
    json_t *cfg = pc_lease_config(l);
    const char *api = pc_json_str(cfg, "apiUrl");
    if (api)
        l->api_url = pc_xstrdup(api);
    if (!strcmp(l->driver, "plugin")) {
        pc_error_set(err, 422, "Plugin environment drivers cannot execute runs yet.");
        pc_lease_free(l);
        return NULL;
    }
    const char *prov = !strcmp(l->driver, "sandbox") ? pc_json_str(cfg, "provider") : l->driver;
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
    int rc = 0;
    if (!strcmp(l->driver, "local")) {
        snprintf(l->provider, sizeof l->provider, "local");
        json_t *m = json_pack("{s:s,s:s}", "driver", "local", "phase", "ready");
        pc_lease_meta_merge(app, l->id, m);
        json_decref(m);
    } else if (!strcmp(l->driver, "ssh")) {
        snprintf(l->provider, sizeof l->provider, "ssh");
        char *plid = pc_xasprintf("ssh://%s@%s:%lld%s", pc_json_str(cfg, "username"),
                                  pc_json_str(cfg, "host"), (long long)pc_json_int(cfg, "port", 22),
                                  pc_json_str(cfg, "remoteWorkspacePath"));
        json_t *m = json_pack("{s:s,s:s,s:s}", "driver", "ssh", "phase", "ready", "remoteCwd",
                              pc_json_str(cfg, "remoteWorkspacePath"));
        pc_lease_meta_merge(app, l->id, m);
        json_decref(m);
        rc = pc_db_exec_s(app->db, "UPDATE environment_leases SET provider_lease_id=? WHERE id=?",
                          json_pack("[s,s]", plid, l->id), NULL, err);
        free(plid);
    } else {
        rc = pc_acquire_sandbox(l, req, err);
    }
    if (rc < 0) {
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
    pc_app *app = l->app;
    json_t *cfg = pc_lease_config(l);
    char *dir = NULL;
    if (!strcmp(l->driver, "local")) {
        dir = local_path && *local_path
                  ? pc_xstrdup(local_path)
                  : pc_xasprintf("%s/workspaces/%s", app->cfg.data_dir, l->env_id);
        if (pc_mkdir_p(dir, 0700) < 0) {
            pc_error_errno(err, errno, "workspace_realization_failed: cannot create %s", dir);
            free(dir);
            return -1;
        }
    } else if (!strcmp(l->driver, "ssh")) {
        dir = pc_xstrdup(pc_json_str(cfg, "remoteWorkspacePath"));
        json_t *resolved = pc_envcfg_resolve(app, l->company_id, "ssh", cfg, err);
        if (!resolved) {
            free(dir);
            return -1;
        }
        pc_ssh_target t;
        pc_ssh_target_from_config(app, resolved, l->env_id, &t);
        pc_buf cmd;
        pc_buf_init(&cmd, PC_BUF_UNBOUNDED);
        pc_buf_puts(&cmd, "mkdir -p -- ", NULL);
        pc_sh_quote(&cmd, dir);
        pc_exec_request req = {.timeout_ms = 60000, .output_cap = 64 * 1024};
        pc_exec_result res;
        int rc = pc_ssh_run(app, &t, cmd.data, &req, &l->ctl, &res, err);
        pc_buf_release(&cmd);
        json_decref(resolved);
        if (rc == 0 && !(res.has_exit_code && res.exit_code == 0))
            rc = pc_error_set(err, 502, "cannot create %s over ssh: %.300s", dir,
                              res.err.data ? res.err.data : "");
        pc_exec_result_free(&res);
        if (rc < 0) {
            pc_error_prefix(err, "workspace_realization_failed");
            free(dir);
            return -1;
        }
    } else {
        json_t *resolved = pc_envcfg_resolve(app, l->company_id, "sandbox", cfg, err);
        if (!resolved)
            return -1;
        json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id, resolved);
        json_decref(resolved);
        json_t *pmeta = json_object_get(l->plugin_lease, "metadata");
        json_object_set(p, "lease", l->plugin_lease);
        json_object_set_new(p, "workspace",
                            json_pack("{s:s?,s:s?,s:s}", "localPath", local_path, "remotePath",
                                      pc_json_str(pmeta, "remoteCwd"), "mode", "isolated"));
        json_t *result = NULL;
        int r = pc_lease_rpc(app, l, l->plugin_key, "environmentRealizeWorkspace", p, 0, &result,
                             err);
        json_decref(p);
        if (r == 1)
            pc_error_set(err, 409, "cancelled");
        const char *c = r == 0 ? pc_json_str(result, "cwd") : NULL;
        if (r == 0 && !c)
            pc_error_set(err, 502, "sandbox provider returned no cwd");
        if (!c) {
            json_decref(result);
            pc_error_prefix(err, "workspace_realization_failed");
            return -1;
        }
        dir = pc_xstrdup(c);
        json_decref(result);
    }
    if (strlen(dir) + 1 > cwd_cap) {
        free(dir);
        return pc_error_set(err, 500, "workspace_realization_failed: cwd too long");
    }
    snprintf(cwd, cwd_cap, "%s", dir);
    free(l->cwd);
    l->cwd = dir;
    json_t *m = json_pack("{s:s}", "cwd", dir);
    pc_lease_meta_merge(app, l->id, m);
    json_decref(m);
    return 0;
}

/* ------------------------------------------------------------ execute */

static int pc_exec_sandbox(pc_lease *l, const pc_exec_request *req, pc_exec_result *res,
                           pc_error_t *err)
{
    size_t cap = req->output_cap ? req->output_cap : PC_PROC_DEFAULT_CAP;
    memset(res, 0, sizeof *res);
    pc_buf_init(&res->out, cap);
    pc_buf_init(&res->err, cap);
    json_t *resolved = pc_envcfg_resolve(l->app, l->company_id, "sandbox", pc_lease_config(l), err);
    if (!resolved)
        return -1;
    json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id, resolved);
    json_decref(resolved);
    json_object_set(p, "lease", l->plugin_lease);
    json_object_set_new(p, "command", json_string(req->command));
    json_t *args = json_array();
    for (int i = 0; req->args && req->args[i]; i++)
        json_array_append_new(args, json_string(req->args[i]));
    json_object_set_new(p, "args", args);
    const char *cwd = req->cwd ? req->cwd : l->cwd;
    if (cwd)
        json_object_set_new(p, "cwd", json_string(cwd));
    json_object_set_new(p, "env", req->env ? json_deep_copy(req->env) : json_object());
    if (req->stdin_data)
        json_object_set_new(p, "stdin", json_string(req->stdin_data));
    int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms
                                          : pc_json_int(pc_lease_config(l), "timeoutMs", 0);
    if (timeout > 0)
        json_object_set_new(p, "timeoutMs", json_integer(timeout));
    json_t *result = NULL;
    /* The host adds its slack to timeoutMs (execute = timeoutMs + 30 s). */
    int r = pc_lease_rpc(l->app, l, l->plugin_key, "environmentExecute", p, 0, &result, err);
    json_decref(p);
    if (r == 1) {
        res->cancelled = true;
        return 0;
    }
    if (r < 0) {
        pc_error_prefix(err, "execution_failed");
        return -1;
    }
    json_t *ec = json_object_get(result, "exitCode");
    if (json_is_integer(ec)) {
        res->has_exit_code = true;
        res->exit_code = (int)json_integer_value(ec);
    }
    const char *sig = pc_json_str(result, "signal");
    if (sig)
        snprintf(res->signal, sizeof res->signal, "%s", sig);
    res->timed_out = json_is_true(json_object_get(result, "timedOut"));
    const char *so = pc_json_str(result, "stdout"), *se = pc_json_str(result, "stderr");
    size_t sol = so ? json_string_length(json_object_get(result, "stdout")) : 0;
    size_t sel = se ? json_string_length(json_object_get(result, "stderr")) : 0;
    if (so)
        pc_buf_append_trunc(&res->out, so, sol);
    if (se)
        pc_buf_append_trunc(&res->err, se, sel);
    /* Providers answer once at the end, so the stream is replayed then. */
    if (req->on_output) {
        if (sol)
            req->on_output(req->ud, "stdout", res->out.data, res->out.len);
        if (sel)
            req->on_output(req->ud, "stderr", res->err.data, res->err.len);
    }
    json_decref(result);
    return 0;
}

int pc_lease_execute(pc_lease *l, const pc_exec_request *req, pc_exec_result *res,
                     pc_error_t *err)
{
    if (!req || !req->command || !*req->command) {
        memset(res, 0, sizeof *res);
        return pc_error_set(err, 400, "execution_failed: no command");
    }
    int rc;
    /* Local and ssh commands are our child processes: record them so a
     * daemon that dies mid-command leaves enough to kill them at restart. */
    char pid_file[1400];
    snprintf(pid_file, sizeof pid_file, "%s/leases/%s.%d.pid", l->app->cfg.data_dir, l->id,
             atomic_fetch_add(&l->exec_seq, 1));
    if (!strcmp(l->driver, "local")) {
        size_t n = 0;
        while (req->args && req->args[n])
            n++;
        const char **argv = pc_xcalloc(n + 2, sizeof *argv);
        argv[0] = req->command;
        for (size_t i = 0; i < n; i++)
            argv[i + 1] = req->args[i];
        pc_proc_opts po = {
            .file = req->command,
            .argv = argv,
            .cwd = req->cwd ? req->cwd : l->cwd,
            .env = req->env,
            .stdin_data = req->stdin_data,
            .stdin_len = req->stdin_data ? strlen(req->stdin_data) : 0,
            .timeout_ms = req->timeout_ms,
            .grace_ms = req->grace_ms,
            .output_cap = req->output_cap,
            .on_output = req->on_output,
            .ud = req->ud,
            .pid_file = pid_file,
        };
        rc = pc_proc_run(l->app->loop, &po, &l->ctl, res, err);
        free(argv);
    } else if (!strcmp(l->driver, "ssh")) {
        json_t *resolved = pc_envcfg_resolve(l->app, l->company_id, "ssh", pc_lease_config(l), err);
        if (!resolved) {
            memset(res, 0, sizeof *res);
            return -1;
        }
        pc_ssh_target t;
        pc_ssh_target_from_config(l->app, resolved, l->env_id, &t);
        t.pid_file = pid_file;
        char *cmd = pc_ssh_remote_command(req->cwd ? req->cwd : l->cwd, req->env, req->command,
                                          req->args);
        rc = pc_ssh_run(l->app, &t, cmd, req, &l->ctl, res, err);
        free(cmd);
        json_decref(resolved);
    } else {
        rc = pc_exec_sandbox(l, req, res, err);
    }
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
    pc_sbx_call *c = l->active_call;
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
    if (!strcmp(l->driver, "sandbox") && l->plugin_lease) {
        retained = !strcmp(l->policy, "reuse_by_environment");
        pc_error_t e = PC_ERROR_INIT;
        json_t *resolved = pc_envcfg_resolve(app, l->company_id, "sandbox", pc_lease_config(l), &e);
        json_t *result = NULL;
        int r = -1;
        if (resolved) {
            json_t *p = pc_sbx_params(l->provider, l->company_id, l->env_id, l->issue_id,
                                      resolved);
            json_object_set(p, "providerLeaseId", json_object_get(l->plugin_lease, "providerLeaseId"));
            json_t *md = json_object_get(l->plugin_lease, "metadata");
            json_object_set_new(p, "leaseMetadata", md ? json_incref(md) : json_null());
            /* Never the cancellable path: a cancelled run must still clean up. */
            r = pc_lease_rpc(app, NULL, l->plugin_key, "environmentReleaseLease", p, 0, &result,
                             &e);
            json_decref(p);
            json_decref(resolved);
        }
        json_decref(result);
        if (r < 0) {
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

/* Calls environmentDestroyLease for one lease row; 0 on success. */
static int pc_destroy_row(pc_app *app, json_t *row, json_t *meta, pc_error_t *err)
{
    const char *cid = pc_json_str(row, "company_id"), *prov = pc_json_str(row, "provider");
    const char *plugin_key = pc_json_str(meta, "pluginKey");
    json_t *cfg = json_object_get(meta, "providerConfig");
    if (!plugin_key || !prov || !cfg)
        return pc_error_set(err, 500, "lease %s has no provider record", pc_json_str(row, "id"));
    json_t *resolved = pc_envcfg_resolve(app, cid, "sandbox", cfg, err);
    if (!resolved)
        return -1;
    json_t *p = pc_sbx_params(prov, cid, pc_json_str(row, "environment_id"),
                              pc_json_str(row, "issue_id"), resolved);
    json_decref(resolved);
    const char *plid = pc_json_str(row, "provider_lease_id");
    json_object_set_new(p, "providerLeaseId", plid ? json_string(plid) : json_null());
    json_object_set(p, "leaseMetadata", meta);
    json_t *result = NULL;
    int rc = pc_lease_rpc(app, NULL, plugin_key, "environmentDestroyLease", p, 0, &result, err);
    json_decref(result);
    json_decref(p);
    return rc;
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
        int rc = pc_destroy_row(app, row, meta, &e);
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

/* Kills what the lease's commands left running (see pc_proc_opts.pid_file). */
static int pc_kill_lease_processes(pc_app *app, const char *lease_id)
{
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
    const char *driver = pc_json_str(meta, "driver");
    const char *phase = pc_json_str(meta, "phase");
    const char *plid = pc_json_str(row, "provider_lease_id");
    const char *policy = pc_json_str(row, "lease_policy");
    const char *action = "closed";
    if (!driver || strcmp(driver, "sandbox") != 0) {
        int killed = pc_kill_lease_processes(app, id);
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
        const char *prov = pc_json_str(row, "provider");
        const char *plugin_key = pc_json_str(meta, "pluginKey");
        json_t *cfg = json_object_get(meta, "providerConfig");
        pc_error_t e = PC_ERROR_INIT;
        json_t *resolved = cfg ? pc_envcfg_resolve(app, cid, "sandbox", cfg, &e) : NULL;
        json_t *p = NULL, *result = NULL;
        int r = -1;
        if (resolved && plugin_key && prov) {
            p = pc_sbx_params(prov, cid, pc_json_str(row, "environment_id"),
                              pc_json_str(row, "issue_id"), resolved);
            json_object_set_new(p, "providerLeaseId", plid ? json_string(plid) : json_null());
            json_object_set(p, "leaseMetadata", meta);
            if (policy && !strcmp(policy, "reuse_by_environment")) {
                r = pc_lease_rpc(app, NULL, plugin_key, "environmentResumeLease", p, 0, &result,
                                 &e);
                if (r == 0) {
                    action = "resumed";
                    json_t *m = json_object();
                    json_t *rm = json_object_get(result, "metadata");
                    if (json_is_object(rm))
                        json_object_update(m, rm);
                    json_object_set_new(m, "reconciledAt", json_null());
                    char ts[PC_ISO_LEN + 1];
                    pc_iso_now(ts);
                    json_object_set_new(m, "reconciledAt", json_string(ts));
                    pc_lease_meta_merge(app, id, m);
                    json_decref(m);
                } else {
                    pc_error_clear(&e);
                }
            }
            if (r != 0) {
                json_decref(result);
                result = NULL;
                r = pc_lease_rpc(app, NULL, plugin_key, "environmentDestroyLease", p, 0, &result,
                                 &e);
                action = r == 0 ? "destroyed" : "destroy failed";
                char *why = r == 0 ? pc_xstrdup("daemon restarted while the lease was active")
                                   : pc_xasprintf("cleanup after restart failed: %s", e.msg);
                pc_lease_close_row(app, id, r == 0 ? "expired" : "failed",
                                   r == 0 ? "success" : "failed", why);
                free(why);
            }
        } else {
            action = "destroy failed";
            char *why = pc_xasprintf("cleanup after restart failed: %s",
                                     pc_error_is_set(&e) ? e.msg : "provider unknown");
            pc_lease_close_row(app, id, "failed", "failed", why);
            free(why);
        }
        pc_error_clear(&e);
        json_decref(result);
        json_decref(p);
        json_decref(resolved);
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
