/*
 * Lease test hooks: drive the lease manager over HTTP without a heartbeat
 * run, for black-box tests (acquire, execute, release, daemon crash while a
 * lease is active). They exist only when the daemon was started with
 * PAPERCLIP_ENABLE_TEST_HOOKS=1 and are board-only; otherwise every path
 * answers 404 like any unknown route.
 *
 *   POST /api/environments/:id/test-lease          {runId?, issueId?, localPath?}
 *        -> {lease, cwd}
 *   POST /api/environment-leases/:leaseId/test-execute
 *        {command, args?, env?, stdin?, timeoutMs?, graceMs?, outputCap?}
 *        -> {exitCode, signal, timedOut, cancelled, stdout, stderr,
 *            stdoutTruncated, stderrTruncated}
 *   POST /api/environment-leases/:leaseId/test-release {runStatus?}
 *   POST /api/environments/:id/test-destroy-reusable -> {destroyed}
 *   POST /api/environment-leases/:leaseId/test-cancel  (pc_lease_cancel)
 *
 * Held leases live in a small table until released (or the daemon dies,
 * which is exactly what the crash test wants).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

#define PC_HOOK_MAX 64

static pthread_mutex_t hooks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    pc_lease *lease;
    bool busy; /* an execute is in flight: cancel may reach it, release may not */
} held[PC_HOOK_MAX];

static int pc_hooks_enabled(pc_req *req, pc_error_t *err)
{
    const char *v = getenv("PAPERCLIP_ENABLE_TEST_HOOKS");
    if (!v || strcmp(v, "1") != 0)
        return pc_error_set(err, 404, "Not found");
    return pc_require_board(req, err);
}

/* Claims the idle held lease id (NULL if unknown or busy): take removes it
 * from the table and hands it over; otherwise it stays, marked busy until
 * pc_hook_return(). */
static pc_lease *pc_hook_claim(const char *id, bool take)
{
    pthread_mutex_lock(&hooks_mu);
    pc_lease *l = NULL;
    for (int i = 0; i < PC_HOOK_MAX && !l; i++)
        if (held[i].lease && !held[i].busy && !strcmp(pc_lease_id(held[i].lease), id)) {
            l = held[i].lease;
            if (take)
                held[i].lease = NULL;
            else
                held[i].busy = true;
        }
    pthread_mutex_unlock(&hooks_mu);
    return l;
}

static void pc_hook_return(pc_lease *l)
{
    pthread_mutex_lock(&hooks_mu);
    for (int i = 0; i < PC_HOOK_MAX; i++)
        if (held[i].lease == l)
            held[i].busy = false;
    pthread_mutex_unlock(&hooks_mu);
}

/* Releases a lease nobody will hear about again (its error is dropped). */
static void pc_hook_release_failed(pc_lease *l)
{
    pc_error_t e = PC_ERROR_INIT;
    pc_lease_release(l, "failed", &e);
    pc_error_clear(&e);
}

static void pc_hook_put(pc_lease *l)
{
    pthread_mutex_lock(&hooks_mu);
    for (int i = 0; i < PC_HOOK_MAX; i++)
        if (!held[i].lease) {
            held[i].lease = l;
            held[i].busy = false;
            l = NULL;
            break;
        }
    pthread_mutex_unlock(&hooks_mu);
    if (l)
        pc_hook_release_failed(l);
}

/* The environment of :id for a hook (no company check: hooks are
 * board-only), or NULL with err. */
static json_t *pc_hook_env(pc_req *req, pc_error_t *err)
{
    if (pc_hooks_enabled(req, err) < 0)
        return NULL;
    const char *id = pc_param_uuid(req, "id", "Environment not found", err);
    return id ? pc_env_load(req->app, id, err) : NULL;
}

int pc_env_hook_lease(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_hook_env(req, err);
    if (!env)
        return -1;
    json_t *b = req->body;
    char run[PC_UUID_LEN + 1];
    pc_uuid_v4(run);
    const char *run_id = pc_json_str(b, "runId") ? pc_json_str(b, "runId") : run;
    pc_lease_request lr = {.run_id = run_id, .issue_id = pc_json_str(b, "issueId")};
    pc_lease *l = pc_lease_acquire(req->app, env, &lr, err);
    json_decref(env);
    if (!l)
        return -1;
    char cwd[4096];
    if (pc_lease_realize(l, pc_json_str(b, "localPath"), cwd, sizeof cwd, err) < 0) {
        pc_hook_release_failed(l);
        return -1;
    }
    json_t *row = pc_lease_load(req->app, pc_lease_id(l), err);
    pc_hook_put(l);
    if (!row)
        return -1;
    return pc_resp_json(resp, 200, json_pack("{s:o,s:s}", "lease", row, "cwd", cwd));
}

int pc_env_hook_execute(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_hooks_enabled(req, err) < 0)
        return -1;
    const char *id = pc_req_param(req, "leaseId");
    json_t *b = req->body;
    const char *command = pc_json_str(b, "command");
    if (!command)
        return pc_error_validation(err, "command", "Required");
    pc_lease *l = pc_hook_claim(id, false);
    if (!l)
        return pc_error_set(err, 404, "Environment lease not found");
    json_t *args = json_object_get(b, "args");
    size_t n = json_array_size(args);
    const char **argv = pc_xcalloc(n + 1, sizeof *argv);
    for (size_t i = 0; i < n; i++)
        argv[i] = json_string_value(json_array_get(args, i)) ? json_string_value(json_array_get(args, i)) : "";
    pc_exec_request er = {
        .command = command,
        .args = argv,
        .env = pc_json_obj(b, "env"),
        .stdin_data = pc_json_str(b, "stdin"),
        .timeout_ms = pc_json_int(b, "timeoutMs", 0),
        .grace_ms = pc_json_int(b, "graceMs", 0),
        .output_cap = (size_t)pc_json_int(b, "outputCap", 0),
    };
    pc_exec_result res;
    int rc = pc_lease_execute(l, &er, &res, err);
    free(argv);
    pc_hook_return(l);
    if (rc < 0) {
        pc_exec_result_free(&res);
        return -1;
    }
    char *so = pc_utf8_sanitize(res.out.data ? res.out.data : "", res.out.len);
    char *se = pc_utf8_sanitize(res.err.data ? res.err.data : "", res.err.len);
    json_t *out = json_pack("{s:o,s:s?,s:b,s:b,s:s,s:s,s:b,s:b}", "exitCode",
                            res.has_exit_code ? json_integer(res.exit_code) : json_null(),
                            "signal", res.signal[0] ? res.signal : NULL, "timedOut",
                            res.timed_out, "cancelled", res.cancelled, "stdout", so, "stderr", se,
                            "stdoutTruncated", res.out.truncated, "stderrTruncated",
                            res.err.truncated);
    free(so);
    free(se);
    pc_exec_result_free(&res);
    return pc_resp_json(resp, 200, out);
}

int pc_env_hook_release(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_hooks_enabled(req, err) < 0)
        return -1;
    const char *id = pc_req_param(req, "leaseId");
    pc_lease *l = pc_hook_claim(id, true);
    if (!l)
        return pc_error_set(err, 404, "Environment lease not found");
    char lid[PC_UUID_LEN + 1];
    snprintf(lid, sizeof lid, "%s", pc_lease_id(l));
    if (pc_lease_release(l, pc_json_str(req->body, "runStatus"), err) < 0)
        return -1;
    json_t *row = pc_lease_load(req->app, lid, err);
    return row ? pc_resp_json(resp, 200, row) : -1;
}

int pc_env_hook_destroy_reusable(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *env = pc_hook_env(req, err);
    if (!env)
        return -1;
    int n = pc_env_destroy_reusable_leases(req->app, pc_json_str(env, "companyId"),
                                           pc_json_str(env, "id"), NULL,
                                           "destroyed by test hook", NULL, err);
    json_decref(env);
    return n < 0 ? -1 : pc_resp_json(resp, 200, json_pack("{s:i}", "destroyed", n));
}

int pc_env_hook_cancel(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_hooks_enabled(req, err) < 0)
        return -1;
    const char *id = pc_req_param(req, "leaseId");
    bool found = false;
    pthread_mutex_lock(&hooks_mu);
    for (int i = 0; i < PC_HOOK_MAX; i++)
        if (held[i].lease && !strcmp(pc_lease_id(held[i].lease), id)) {
            /* Under the table lock: the lease cannot be released meanwhile. */
            pc_lease_cancel(held[i].lease);
            found = true;
        }
    pthread_mutex_unlock(&hooks_mu);
    if (!found)
        return pc_error_set(err, 404, "Environment lease not found");
    return pc_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}
