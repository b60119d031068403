/*
 * `paperclip plugin check DIR`: the contract test a provider author runs
 * before installing. It loads the package exactly as install does, starts
 * the worker in a scratch plugin host on a private loop (no daemon), and
 * drives the environment lifecycle with the checks upstream's SDK testing
 * harness makes, plus the ones our users asked for: stdin, environment
 * isolation, timeouts and large output.
 */
#include "plugin/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "plugin/host.h"
#include "plugin/manifest.h"

typedef struct checker {
    FILE *out;
    pc_plugin_host *host;
    const char *key;
    const char *driver;
    json_t *config;
    json_t *supported;
    json_t *events; /* env methods that succeeded, in order */
    int passed, failed;
} checker;

static void report(checker *c, bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(checker *c, bool ok, const char *name, const char *fmt, ...)
{
    char detail[1200] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    /* One line per check, whatever the plugin answered. */
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(c->out, "  %s %s%s%s\n", ok ? "PASS" : "FAIL", name, detail[0] ? ": " : "", detail);
    if (ok)
        c->passed++;
    else
        c->failed++;
}

static bool supported(checker *c, const char *m)
{
    size_t i;
    json_t *v;
    json_array_foreach(c->supported, i, v) if (!strcmp(json_string_value(v), m)) return true;
    return false;
}

static json_t *base_params(checker *c)
{
    return json_pack("{s:s,s:s,s:s,s:n,s:O}", "driverKey", c->driver, "companyId", "check-company",
                     "environmentId", "check-environment", "issueId", "config", c->config);
}

/* Calls method; on success records the event and returns the result. */
static json_t *env_call(checker *c, const char *method, json_t *params, pc_error_t *err)
{
    json_t *res = NULL;
    pc_error_clear(err);
    if (pc_plugin_call(c->host, c->key, method, params, 0, &res, err) < 0)
        return NULL;
    const char *short_name = method + strlen("environment");
    char ev[64];
    snprintf(ev, sizeof ev, "%c%s", short_name[0] + ('a' - 'A'), short_name + 1);
    json_array_append_new(c->events, json_string(ev));
    return res;
}

static json_t *exec_params(checker *c, json_t *lease, const char *cwd, const char *cmd,
                           json_t *args, json_t *env, const char *stdin_text, int64_t timeout_ms)
{
    json_t *p = base_params(c);
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "command", json_string(cmd));
    json_object_set_new(p, "args", args);
    if (cwd)
        json_object_set_new(p, "cwd", json_string(cwd));
    json_object_set_new(p, "env", env ? env : json_object());
    if (stdin_text)
        json_object_set_new(p, "stdin", json_string(stdin_text));
    json_object_set_new(p, "timeoutMs", json_integer(timeout_ms));
    return p;
}

static json_t *run_sh(checker *c, json_t *lease, const char *cwd, const char *script, json_t *env,
                      const char *stdin_text, int64_t timeout_ms, pc_error_t *err)
{
    json_t *p = exec_params(c, lease, cwd, "sh", json_pack("[s,s]", "-c", script), env, stdin_text,
                            timeout_ms);
    json_t *r = env_call(c, "environmentExecute", p, err);
    json_decref(p);
    return r;
}

static const char *str_or(json_t *o, const char *k, const char *d)
{
    const char *s = pc_json_str(o, k);
    return s ? s : d;
}

static void check_lifecycle(checker *c)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *r;

    /* Error codes: an unknown method is -32601. */
    r = NULL;
    pc_plugin_call(c->host, c->key, "paperclipCheckNoSuchMethod", NULL, 0, &r, &err);
    report(c, !r && err.rpc_code == PC_RPC_METHOD_NOT_FOUND, "unknown method answers -32601",
           r ? "it succeeded" : "got %d %s", err.rpc_code, err.msg);
    json_decref(r);
    pc_error_clear(&err);

    /* Hooks the worker does not list must answer -32004, never hang. */
    static const char *const env_methods[] = {
        "environmentValidateConfig", "environmentProbe",        "environmentAcquireLease",
        "environmentResumeLease",    "environmentReleaseLease", "environmentDestroyLease",
        "environmentRealizeWorkspace", "environmentExecute", NULL};
    for (size_t i = 0; env_methods[i]; i++) {
        if (supported(c, env_methods[i]))
            continue;
        json_t *p = base_params(c);
        r = NULL;
        pc_plugin_call(c->host, c->key, env_methods[i], p, 10000, &r, &err);
        char name[128];
        snprintf(name, sizeof name, "absent hook %s answers -32004", env_methods[i]);
        report(c, !r && err.rpc_code == PC_RPC_METHOD_NOT_IMPLEMENTED, name, "got %d %s",
               err.rpc_code, r ? "(success)" : err.msg);
        json_decref(p);
        json_decref(r);
        pc_error_clear(&err);
    }

    json_t *vp = json_pack("{s:s,s:O}", "driverKey", c->driver, "config", c->config);
    r = env_call(c, "environmentValidateConfig", vp, &err);
    json_decref(vp);
    report(c, r && json_is_true(json_object_get(r, "ok")), "validateConfig accepts {}", "%s",
           r ? "" : err.msg);
    json_t *norm = json_object_get(r, "normalizedConfig");
    if (json_is_object(norm)) {
        json_decref(c->config);
        c->config = json_deep_copy(norm);
    }
    json_decref(r);

    json_t *p = base_params(c);
    r = env_call(c, "environmentProbe", p, &err);
    json_decref(p);
    report(c, r && json_is_true(json_object_get(r, "ok")), "probe", "%s",
           r ? str_or(r, "summary", "") : err.msg);
    json_decref(r);

    p = base_params(c);
    json_object_set_new(p, "runId", json_string("check-run-1"));
    json_t *lease = env_call(c, "environmentAcquireLease", p, &err);
    json_decref(p);
    json_t *lid = json_object_get(lease, "providerLeaseId");
    report(c, lease && json_is_object(lease) && (json_is_string(lid) || json_is_null(lid)),
           "acquireLease returns a lease", "%s",
           lease ? (json_is_string(lid) ? json_string_value(lid) : "(null id)") : err.msg);
    if (!lease) {
        pc_error_clear(&err);
        return;
    }

    p = base_params(c);
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "workspace", json_object());
    r = env_call(c, "environmentRealizeWorkspace", p, &err);
    json_decref(p);
    const char *cwd0 = pc_json_str(r, "cwd");
    _cleanup_free_ char *cwd = cwd0 ? pc_xstrdup(cwd0) : NULL;
    report(c, cwd && *cwd, "realizeWorkspace returns a cwd", "%s", cwd ? cwd : err.msg);
    json_decref(r);

    r = run_sh(c, lease, cwd, "printf paperclip-check-ok", NULL, NULL, 20000, &err);
    report(c,
           r && json_integer_value(json_object_get(r, "exitCode")) == 0 &&
               json_is_integer(json_object_get(r, "exitCode")) &&
               json_is_false(json_object_get(r, "timedOut")) &&
               !strcmp(str_or(r, "stdout", ""), "paperclip-check-ok"),
           "execute runs a command", "%s",
           r ? str_or(r, "stdout", "(no stdout)") : err.msg);
    json_decref(r);

    r = run_sh(c, lease, cwd, "exit 3", NULL, NULL, 20000, &err);
    report(c, r && json_integer_value(json_object_get(r, "exitCode")) == 3,
           "execute reports the exit code", "%s", r ? "" : err.msg);
    json_decref(r);

    json_t *ip = exec_params(c, lease, cwd, "cat", json_array(), NULL,
                             "line one\nline two, no newline", 20000);
    r = env_call(c, "environmentExecute", ip, &err);
    json_decref(ip);
    report(c, r && !strcmp(str_or(r, "stdout", ""), "line one\nline two, no newline"),
           "execute passes stdin and closes it", "%s", r ? str_or(r, "stdout", "") : err.msg);
    json_decref(r);

    /* The canary is in this process's environment (and so would be in a
     * careless worker's); only the explicit env may reach the command. */
    char canary[33];
    pc_random_hex(canary, 16);
    setenv("PAPERCLIP_CHECK_CANARY", canary, 1);
    r = run_sh(c, lease, cwd,
               "printf '%s|%s|%s' \"${PAPERCLIP_CHECK_CANARY:-absent}\" "
               "\"${CHECK_EXPLICIT:-absent}\" \"${PATH:+has-path}\"",
               json_pack("{s:s}", "CHECK_EXPLICIT", "present"), NULL, 20000, &err);
    report(c, r && !strcmp(str_or(r, "stdout", ""), "absent|present|has-path"),
           "execute env isolation (host env hidden, explicit env and a PATH visible)", "%s",
           r ? str_or(r, "stdout", "") : err.msg);
    json_decref(r);
    unsetenv("PAPERCLIP_CHECK_CANARY");

    int64_t t0 = pc_mono_ms();
    r = run_sh(c, lease, cwd, "trap '' TERM; while :; do :; done", NULL, NULL, 300, &err);
    int64_t took = pc_mono_ms() - t0;
    report(c,
           r && json_is_true(json_object_get(r, "timedOut")) &&
               json_is_null(json_object_get(r, "exitCode")),
           "execute timeout kills a command that ignores SIGTERM",
           "timedOut=%s exitCode=%s after %lld ms",
           r && json_is_true(json_object_get(r, "timedOut")) ? "true" : "false",
           r && json_is_null(json_object_get(r, "exitCode")) ? "null" : "not null",
           (long long)took);
    json_decref(r);

    r = run_sh(c, lease, cwd, "head -c 3000000 /dev/zero | tr '\\000' x", NULL, NULL, 60000, &err);
    size_t got = r ? strlen(str_or(r, "stdout", "")) : 0;
    bool trunc = r && json_is_true(json_object_get(json_object_get(r, "metadata"), "stdoutTruncated"));
    report(c, r && (got == 3000000 || (trunc && got > 0 && got < 3000000)),
           "execute returns a large output (3 MB) whole or flagged stdoutTruncated",
           "%zu bytes%s%s", got, trunc ? ", truncated" : "", r ? "" : err.msg);
    json_decref(r);

    const char *lease_id = json_string_value(lid);
    json_t *lmeta = json_object_get(lease, "metadata");
    if (supported(c, "environmentResumeLease") && lease_id) {
        p = base_params(c);
        json_object_set_new(p, "providerLeaseId", json_string(lease_id));
        if (lmeta)
            json_object_set(p, "leaseMetadata", lmeta);
        r = env_call(c, "environmentResumeLease", p, &err);
        json_decref(p);
        report(c, r && !strcmp(str_or(r, "providerLeaseId", ""), lease_id), "resumeLease",
               "%s", r ? str_or(r, "providerLeaseId", "(no id)") : err.msg);
        json_decref(r);
    }
    if (supported(c, "environmentReleaseLease")) {
        p = base_params(c);
        json_object_set(p, "providerLeaseId", lid);
        if (lmeta)
            json_object_set(p, "leaseMetadata", lmeta);
        r = env_call(c, "environmentReleaseLease", p, &err);
        json_decref(p);
        report(c, r != NULL, "releaseLease", "%s", r ? "" : err.msg);
        json_decref(r);
    }
    if (supported(c, "environmentDestroyLease")) {
        p = base_params(c);
        json_object_set(p, "providerLeaseId", lid);
        if (lmeta)
            json_object_set(p, "leaseMetadata", lmeta);
        r = env_call(c, "environmentDestroyLease", p, &err);
        json_decref(p);
        report(c, r != NULL, "destroyLease", "%s", r ? "" : err.msg);
        json_decref(r);
        /* Destroying what is already gone must be a no-op, not an error:
         * the host retries cleanup after restarts. */
        p = base_params(c);
        json_object_set(p, "providerLeaseId", lid);
        r = env_call(c, "environmentDestroyLease", p, &err);
        json_decref(p);
        report(c, r != NULL, "destroyLease again is a no-op", "%s", r ? "" : err.msg);
        json_decref(r);
    }
    json_decref(lease);
    pc_error_clear(&err);
}

static void check_order(checker *c)
{
    /* The order a run uses them: validate, probe, acquire, realize, execute
     * (any number), then resume/release/destroy. */
    static const char *const phases[] = {"validateConfig", "probe", "acquireLease",
                                         "realizeWorkspace", "execute", "resumeLease",
                                         "releaseLease", "destroyLease", NULL};
    int last = -1;
    bool ok = true;
    char seq[1024] = "";
    size_t off = 0, i;
    json_t *v;
    json_array_foreach(c->events, i, v)
    {
        const char *e = json_string_value(v);
        off += (size_t)snprintf(seq + off, off < sizeof seq ? sizeof seq - off : 0, "%s%s",
                                i ? "," : "", e);
        int ph = -1;
        for (int j = 0; phases[j]; j++)
            if (!strcmp(phases[j], e))
                ph = j;
        if (ph < last)
            ok = false;
        last = ph > last ? ph : last;
    }
    bool complete = json_array_size(c->events) >= 5;
    report(c, ok && complete, "event order", "%s", seq);
}

int pc_plugin_check(const char *dir, FILE *out)
{
    pc_plugin_package pkg;
    pc_error_t err = PC_ERROR_INIT;
    checker c = {.out = out, .events = json_array(), .config = json_object()};
    fprintf(out, "checking plugin package %s\n", dir);
    if (pc_plugin_package_load(dir, &pkg, &err) < 0) {
        report(&c, false, "package and manifest", "%s", err.msg);
        if (err.details) {
            char *d = pc_json_dumps(err.details);
            fprintf(out, "    details: %s\n", d);
            free(d);
        }
        pc_error_clear(&err);
        json_decref(c.events);
        json_decref(c.config);
        fprintf(out, "%d passed, %d failed\n", c.passed, c.failed);
        return 1;
    }
    c.key = pc_json_str(pkg.manifest, "id");
    report(&c, true, "package and manifest", "%s %s, worker %s%s", c.key,
           pc_json_str(pkg.manifest, "version"), pkg.worker_is_js ? "node " : "", pkg.worker_path);
    json_t *drv = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(pkg.manifest, "environmentDrivers"), i, d)
    {
        if (!drv)
            drv = d;
    }
    c.driver = drv ? pc_json_str(drv, "driverKey") : NULL;

    pc_loop *loop = pc_loop_new(&err);
    if (!loop || pc_loop_start(loop, &err) < 0) {
        report(&c, false, "start a scratch host", "%s", err.msg);
        goto out;
    }
    c.host = pc_plugin_host_new(loop, NULL, &err);
    pc_plugin_spec spec = {.plugin_key = c.key, .plugin_id = "00000000-0000-4000-8000-000000000000",
                           .package_dir = pkg.dir, .worker_path = pkg.worker_path,
                           .worker_is_js = pkg.worker_is_js, .manifest = pkg.manifest};
    int64_t t0 = pc_mono_ms();
    if (pc_plugin_host_add(c.host, &spec, 1, &err) < 0) {
        report(&c, false, "initialize", "%s", err.msg);
        pc_error_clear(&err);
        json_t *logs = pc_plugin_host_logs(c.host, c.key, &err);
        json_array_foreach(logs, i, d)
        {
            fprintf(out, "    log: [%s] %s\n", pc_json_str(d, "source"), pc_json_str(d, "message"));
        }
        json_decref(logs);
    } else {
        json_t *st = pc_plugin_host_status(c.host, c.key, &err);
        c.supported = json_deep_copy(json_object_get(st, "supportedMethods"));
        char *sm = pc_json_dumps(c.supported);
        report(&c, true, "initialize", "%lld ms, supportedMethods %s",
               (long long)(pc_mono_ms() - t0), sm);
        free(sm);
        json_decref(st);
        json_t *h = NULL;
        pc_plugin_call(c.host, c.key, "health", NULL, 0, &h, &err);
        report(&c, h && !strcmp(str_or(h, "status", ""), "ok"), "health", "%s",
               h ? str_or(h, "message", str_or(h, "status", "?")) : err.msg);
        json_decref(h);
        pc_error_clear(&err);
        if (!c.driver) {
            report(&c, false, "environment driver", "the manifest declares no environmentDrivers");
        } else {
            check_lifecycle(&c);
            check_order(&c);
        }
    }
    pc_plugin_host_free(c.host);
    c.host = NULL;
out:
    if (loop) {
        pc_loop_stop(loop, NULL, NULL);
        pc_loop_join(loop);
        pc_loop_free(loop);
    }
    fprintf(out, "%d passed, %d failed\n", c.passed, c.failed);
    json_decref(c.events);
    json_decref(c.config);
    json_decref(c.supported);
    pc_plugin_package_clear(&pkg);
    pc_error_clear(&err);
    return c.failed ? 1 : 0;
}
