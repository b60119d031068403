/*
 * The plugin host's error paths, driven in-process against the deliberately
 * misbehaving worker in tests/plugins/misbehave: garbage lines, an oversized
 * line, a crash mid-call, a call that is never answered, a duplicate answer,
 * slow/failed initialize, crash loops into `error`, graceful stop with calls
 * in flight, SIGKILL escalation, and the scrubbed worker environment.
 *
 * Supervision constants are shrunk through pc_plugin_host_opts so nothing
 * here sleeps for the production values.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "plugin/host.h"
#include "plugin/manifest.h"
#include "../lib/tap.h"

static pc_plugin_package pkg;
static pc_plugin_host *host;

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int add(const char *key, const char *mode, int64_t wait_ms, pc_error_t *err)
{
    json_t *config = json_pack("{s:s}", "mode", mode);
    json_t *env = json_pack("{s:s,s:s,s:s}", "PLUGIN_CONFIGURED", "yes", "PAPERCLIP_PLUGIN_ID",
                            "spoofed", "BAD NAME", "x");
    pc_plugin_spec s = {.plugin_key = key, .plugin_id = "00000000-0000-7000-8000-000000000001",
                        .package_dir = pkg.dir, .worker_path = pkg.worker_path,
                        .worker_is_js = false, .manifest = pkg.manifest, .config = config,
                        .env = env};
    int rc = pc_plugin_host_add(host, &s, wait_ms, err);
    json_decref(config);
    json_decref(env);
    return rc;
}

static json_t *call(const char *key, const char *method, json_t *params, int64_t timeout,
                    pc_error_t *err)
{
    json_t *res = NULL;
    pc_error_clear(err);
    pc_plugin_call(host, key, method, params, timeout, &res, err);
    return res;
}

static const char *state_of(const char *key, char *buf, size_t cap)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *st = pc_plugin_host_status(host, key, &err);
    snprintf(buf, cap, "%s", st ? pc_json_str(st, "state") : "absent");
    json_decref(st);
    pc_error_clear(&err);
    return buf;
}

static bool wait_state(const char *key, const char *want, int64_t ms)
{
    char buf[64];
    int64_t end = pc_mono_ms() + ms;
    while (pc_mono_ms() < end) {
        if (!strcmp(state_of(key, buf, sizeof buf), want))
            return true;
        msleep(10);
    }
    return false;
}

static bool logs_contain(const char *key, const char *source, const char *needle)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *logs = pc_plugin_host_logs(host, key, &err);
    bool found = false;
    size_t i;
    json_t *e;
    json_array_foreach(logs, i, e)
    {
        const char *m = pc_json_str(e, "message");
        const char *s = pc_json_str(e, "source");
        if (m && strstr(m, needle) && (!source || (s && !strcmp(s, source))))
            found = true;
    }
    json_decref(logs);
    pc_error_clear(&err);
    return found;
}

/* The worker's pid from the host's status, or 0. */
static pid_t worker_pid(const char *key)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *st = pc_plugin_host_status(host, key, &err);
    pid_t pid = st ? (pid_t)pc_json_int(st, "pid", 0) : 0;
    json_decref(st);
    pc_error_clear(&err);
    return pid;
}

/* Whether pid has exited and been reaped; waits up to 20 s. */
static bool process_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    for (int i = 0; i < 2000; i++) {
        if (access(path, F_OK) < 0)
            return true;
        msleep(10);
    }
    return false;
}

/* Waits up to 20 s for a log line: the log is fed on the loop thread. */
static bool wait_log(const char *key, const char *source, const char *needle)
{
    for (int i = 0; i < 2000; i++) {
        if (logs_contain(key, source, needle))
            return true;
        msleep(10);
    }
    return false;
}

typedef struct {
    const char *key;
    int rc;
} remove_call;

static void *bg_remove(void *arg)
{
    remove_call *c = arg;
    pc_error_t err = PC_ERROR_INIT;
    c->rc = pc_plugin_host_remove(host, c->key, &err);
    pc_error_clear(&err);
    return NULL;
}

typedef struct {
    json_t *res;
    pc_error_t err;
    const char *key, *method;
    json_t *params;
} bg_call;

static void *bg(void *arg)
{
    bg_call *c = arg;
    c->res = call(c->key, c->method, c->params, 0, &c->err);
    return NULL;
}

int main(void)
{
    pc_log_setup(0, PC_LOG_ERROR);
    const char *root = getenv("PC_ROOT");
    _cleanup_free_ char *dir = pc_xasprintf("%s/tests/plugins/misbehave", root ? root : ".");
    pc_error_t err = PC_ERROR_INIT;
    if (pc_plugin_package_load(dir, &pkg, &err) < 0) {
        ok(0, "load misbehave package: %s", err.msg);
        return tap_done();
    }
    /* A secret in the daemon's own environment must never reach a worker. */
    setenv("PC_DAEMON_CANARY_SECRET", "canary-4f1d9", 1);

    pc_loop *loop = pc_loop_new(&err);
    pc_loop_start(loop, &err);
    pc_plugin_host_opts o = {.init_timeout_ms = 400, .backoff_initial_ms = 30,
                             .backoff_max_ms = 60, .crash_limit = 3, .crash_window_ms = 60000,
                             .drain_timeout_ms = 2000, .shutdown_timeout_ms = 300,
                             .term_grace_ms = 300, .max_line = 1 << 20};
    host = pc_plugin_host_new(loop, &o, &err);

    ok(add("mb", "", 5000, &err) == 0, "misbehave worker starts and initializes (%s)", err.msg);
    pc_error_clear(&err);
    json_t *st = pc_plugin_host_status(host, "mb", &err);
    is_str(pc_json_str(st, "state"), "running", "state is running");
    ok(json_array_size(json_object_get(st, "supportedMethods")) == 2,
       "supportedMethods remembered from initialize");
    json_decref(st);

    json_t *r = call("mb", "health", NULL, 0, &err);
    is_str(pc_json_str(r, "status"), "ok", "health answers ok");
    json_decref(r);

    json_t *p = json_pack("{s:s,s:i}", "hello", "w\xc3\xb6rld", "n", 42);
    r = call("mb", "echo", p, 0, &err);
    ok(r && json_equal(r, p), "params round-trip unchanged");
    json_decref(r);
    json_decref(p);

    /* Environment isolation. */
    r = call("mb", "envdump", NULL, 0, &err);
    json_t *env = json_object_get(r, "env");
    ok(env && !json_object_get(env, "PC_DAEMON_CANARY_SECRET"),
       "daemon canary variable is not in the worker environment");
    is_str(pc_json_str(env, "PAPERCLIP_PLUGIN_ID"), "mb",
           "PAPERCLIP_PLUGIN_ID is the plugin key and cannot be overridden by config");
    is_str(pc_json_str(env, "TZ"), getenv("TZ") ? getenv("TZ") : "UTC", "TZ defaults to UTC");
    ok(pc_json_str(env, "PATH") != NULL, "PATH is passed");
    is_str(pc_json_str(env, "PLUGIN_CONFIGURED"), "yes", "configured env value is passed");
    ok(json_object_size(env) == 4, "nothing else is in the worker environment (%zu vars)",
       json_object_size(env));
    ok(!json_object_get(env, "NODE_ENV"), "NODE_ENV only for JS workers");
    json_decref(r);

    /* Garbage on stdout is logged and ignored. */
    r = call("mb", "garbage", NULL, 0, &err);
    ok(json_is_true(json_object_get(r, "survived")), "call answered after garbage lines");
    json_decref(r);
    ok(logs_contain("mb", "host", "not a JSON-RPC message"), "non-JSON line was logged");
    ok(logs_contain("mb", "host", "unknown or already answered request id 987654"),
       "unknown response id was logged");
    r = call("mb", "health", NULL, 0, &err);
    ok(r != NULL, "worker still healthy after garbage");
    json_decref(r);

    /* Error answers keep their code. */
    r = call("mb", "no.such.method", NULL, 0, &err);
    ok(!r && err.rpc_code == PC_RPC_METHOD_NOT_FOUND && err.status == 502,
       "worker's -32601 is passed through as 502 (got %d/%d)", err.rpc_code, err.status);
    r = call("mb", "fail", NULL, 0, &err);
    ok(!r && err.rpc_code == -32002 && strstr(err.msg, "misbehave failed"),
       "worker error message and -32002 are passed through: %s", err.msg);

    /* Never answered -> -32003, worker unaffected; a late answer is ignored. */
    r = call("mb", "hang", NULL, 200, &err);
    ok(!r && err.rpc_code == PC_RPC_TIMEOUT && err.status == 504,
       "unanswered call times out with -32003/504 (%d/%d)", err.rpc_code, err.status);
    ok(strstr(err.msg, "hang timed out after 200 ms") != NULL,
       "the requested 200 ms timeout was the one applied: %s", err.msg);
    ok(logs_contain("mb", "host", "timed out after 200 ms"), "the timeout was logged");
    r = call("mb", "health", NULL, 0, &err);
    ok(r != NULL, "worker still answers after a timeout");
    json_decref(r);

    /* Duplicate answer: first wins, second logged. */
    r = call("mb", "twice", NULL, 0, &err);
    is_int(pc_json_int(r, "answer", 0), 1, "first of two answers is the result");
    json_decref(r);
    r = call("mb", "health", NULL, 0, &err);
    ok(r != NULL, "worker still answers after a duplicate answer");
    json_decref(r);
    ok(logs_contain("mb", "host", "already answered"), "duplicate answer was logged");

    /* Worker -> host request gets -32601. */
    r = call("mb", "callhost", NULL, 0, &err);
    json_t *e = json_object_get(r, "error");
    is_int(pc_json_int(e, "code", 0), PC_RPC_METHOD_NOT_FOUND,
           "worker->host request answered with -32601");
    is_str(pc_json_str(r, "id"), "w-1", "answer echoes the worker's string id");
    json_decref(r);

    /* log notification and stderr go to the plugin log. */
    r = call("mb", "log", NULL, 0, &err);
    json_decref(r);
    ok(wait_log("mb", "worker", "misbehave log notification"), "log notification recorded");
    ok(wait_log("mb", "stderr", "misbehave stderr line"), "stderr line recorded");

    /* Timeouts per method. */
    json_t *ep = json_pack("{s:i}", "timeoutMs", 1000);
    is_int(pc_plugin_default_timeout(host, "environmentExecute", ep), 31000,
           "execute timeout = timeoutMs + 30 s");
    json_decref(ep);
    ep = json_pack("{s:{s:i}}", "config", "timeoutMs", 5000);
    is_int(pc_plugin_default_timeout(host, "environmentExecute", ep), 35000,
           "execute timeout falls back to config.timeoutMs + 30 s");
    json_decref(ep);
    is_int(pc_plugin_default_timeout(host, "environmentProbe", NULL), 120000, "probe 120 s");
    is_int(pc_plugin_default_timeout(host, "health", NULL), 30000, "default 30 s");

    /* An oversized line kills only that worker; it is restarted. */
    json_t *op = json_pack("{s:i}", "bytes", 2 << 20);
    r = call("mb", "oversized", op, 0, &err);
    json_decref(op);
    ok(!r && err.rpc_code == PC_RPC_WORKER_UNAVAILABLE,
       "oversized line fails the call with -32000 (%d: %s)", err.rpc_code, err.msg);
    ok(strstr(err.msg, "exceeds") != NULL, "message says the line was too long: %s", err.msg);
    ok(wait_state("mb", "running", 3000), "worker restarted after the oversized line");
    r = call("mb", "health", NULL, 0, &err);
    ok(r != NULL, "restarted worker answers");
    json_decref(r);

    /* Crash mid-call. */
    r = call("mb", "crash", NULL, 0, &err);
    ok(!r && err.rpc_code == PC_RPC_WORKER_UNAVAILABLE && strstr(err.msg, "code 7"),
       "crash mid-call fails the call with -32000: %s", err.msg);
    ok(wait_state("mb", "running", 3000), "worker restarted after the crash");
    st = pc_plugin_host_status(host, "mb", &err);
    ok(pc_json_int(st, "restartCount", 0) >= 2, "restartCount counts restarts");
    ok(strstr(pc_json_str(st, "lastError") ? pc_json_str(st, "lastError") : "", "") != NULL,
       "status carries lastError field");
    json_decref(st);

    /* Unknown plugin / stopped worker. */
    r = call("nope", "health", NULL, 0, &err);
    ok(!r && err.status == 404 && err.rpc_code == PC_RPC_WORKER_UNAVAILABLE,
       "unknown plugin -> 404/-32000");

    /* Slow initialize -> initialize timeout -> crash path. */
    int rc = add("mb-slow", "slow_init", 5000, &err);
    ok(rc < 0 && strstr(err.msg, "initialize") && strstr(err.msg, "timed out"),
       "slow initialize times out: %s", err.msg);
    pc_error_clear(&err);
    st = pc_plugin_host_status(host, "mb-slow", &err);
    const char *s = pc_json_str(st, "state");
    ok(s && (!strcmp(s, "backoff") || !strcmp(s, "starting") || !strcmp(s, "error")),
       "slow plugin is being retried (%s)", s ? s : "?");
    json_decref(st);
    r = call("mb-slow", "health", NULL, 0, &err);
    ok(!r && err.rpc_code == PC_RPC_WORKER_UNAVAILABLE,
       "calls to a plugin that cannot start fail with -32000");
    ok(pc_plugin_host_remove(host, "mb-slow", &err) == 0, "remove the slow plugin");

    /* ok:false */
    rc = add("mb-notok", "init_not_ok", 5000, &err);
    ok(rc < 0 && strstr(err.msg, "ok:false"), "initialize ok:false is a failed start: %s",
       err.msg);
    pc_error_clear(&err);
    pc_plugin_host_remove(host, "mb-notok", &err);

    /* Crash loop -> error with the last stderr. */
    rc = add("mb-crashy", "crash_init", 5000, &err);
    ok(rc < 0, "crashing plugin does not start");
    pc_error_clear(&err);
    ok(wait_state("mb-crashy", "error", 5000), "after crash_limit crashes the plugin is in error");
    st = pc_plugin_host_status(host, "mb-crashy", &err);
    const char *le = pc_json_str(st, "lastError");
    ok(le && strstr(le, "crashing on initialize") && strstr(le, "3 times"),
       "lastError has the crash count and last stderr: %s", le ? le : "(null)");
    is_int(pc_json_int(st, "crashesInWindow", 0), 3, "three crashes in the window");
    json_int_t restarts = pc_json_int(st, "restartCount", -1);
    json_decref(st);
    /* Longer than the largest backoff: a restart would have happened. */
    msleep(150);
    st = pc_plugin_host_status(host, "mb-crashy", &err);
    is_str(pc_json_str(st, "state"), "error", "error is sticky");
    is_int(pc_json_int(st, "restartCount", -2), restarts, "no restart after giving up");
    json_decref(st);
    r = call("mb-crashy", "health", NULL, 0, &err);
    ok(!r && err.status == 503, "calls to an errored plugin get 503");
    pc_plugin_host_remove(host, "mb-crashy", &err);

    /* Graceful stop lets an in-flight call finish before shutdown. */
    bg_call c = {.key = "mb", .method = "sleep", .params = json_pack("{s:i}", "ms", 300)};
    pthread_t th;
    pthread_create(&th, NULL, bg, &c);
    msleep(80);
    ok(pc_plugin_host_remove(host, "mb", &err) == 0, "remove running plugin");
    pthread_join(th, NULL);
    ok(c.res && json_is_true(json_object_get(c.res, "slept")),
       "in-flight call finished during graceful stop (%s)", c.err.msg);
    ok(!pc_plugin_host_has(host, "mb"), "plugin is gone after remove");
    json_decref(c.res);
    json_decref(c.params);
    pc_error_clear(&c.err);

    /* A worker that ignores shutdown and SIGTERM is SIGKILLed. */
    ok(add("mb-stubborn", "ignore_term", 5000, &err) == 0, "stubborn worker starts");
    pid_t stubborn = worker_pid("mb-stubborn");
    ok(stubborn > 1 && kill(stubborn, 0) == 0, "stubborn worker runs (pid %d)", (int)stubborn);
    remove_call rm = {.key = "mb-stubborn"};
    pthread_create(&th, NULL, bg_remove, &rm);
    /* The log stays readable until the plugin is gone, which takes at
     * least the whole SIGTERM grace period after the SIGTERM. */
    bool saw_term = false;
    for (int i = 0; i < 2000 && !saw_term && pc_plugin_host_has(host, "mb-stubborn"); i++) {
        saw_term = logs_contain("mb-stubborn", "host",
                                "did not exit after shutdown; sending SIGTERM");
        if (!saw_term)
            msleep(10);
    }
    pthread_join(th, NULL);
    ok(saw_term, "an ignored shutdown was followed by SIGTERM");
    is_int(rm.rc, 0, "stubborn worker removed");
    ok(process_gone(stubborn), "the worker that ignored SIGTERM was killed");
    ok(kill(-stubborn, 0) < 0 && errno == ESRCH, "nothing is left of its process group");

    /* Host teardown with a live worker. */
    ok(add("mb-last", "", 5000, &err) == 0, "another worker for teardown");
    pid_t last = worker_pid("mb-last");
    ok(last > 1 && kill(last, 0) == 0, "teardown worker runs (pid %d)", (int)last);
    pc_plugin_host_free(host);
    ok(process_gone(last), "host teardown stopped the live worker");
    ok(kill(-last, 0) < 0 && errno == ESRCH, "and its process group");
    pc_loop_stop(loop, NULL, NULL);
    pc_loop_join(loop);
    pc_loop_free(loop);
    pc_plugin_package_clear(&pkg);
    pc_error_clear(&err);
    return tap_done();
}
