/*
 * Plugin host benchmarks, run by `make bench` (bench/plugin.bench.sh).
 *
 * In-process, like `paperclip plugin check`: a private runtime loop and a
 * plugin host, no daemon. Measures
 *   - the `health` round trip through the C fake plugin (plugins/fake-sandbox),
 *   - environmentExecute of /bin/true through it, against a bare
 *     posix_spawn + waitpid of /bin/true in the same run (interleaved, so
 *     both see the same machine load),
 *   - the same two through the JS plugin tests/compat/js-sandbox-plugin on
 *     the published SDK, when build/npm-cache holds it (tests/node/
 *     plugin_compat.mjs installs it there).
 * Prints rows "measure value" like bench/run.sh, the targets beside
 * the values. Nothing is asserted: the machine is shared and noisy.
 *
 *   plugin_bench [health-calls [execute-calls]]     (PC_ROOT locates the tree)
 */
#include <errno.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "plugin/host.h"
#include "plugin/manifest.h"
#include "../tests/lib/harness.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and returns the q-quantile (nearest rank). */
static int64_t quantile(int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)(q * (double)n);
    return v[i >= n ? n - 1 : i];
}

static void row(const char *measure, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row(const char *measure, const char *fmt, ...)
{
    char val[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    printf("%-44s %s\n", measure, val);
    fflush(stdout);
}

/* "12.3 µs" / "1.23 ms" */
static const char *dur(char *buf, size_t cap, int64_t ns)
{
    if (ns < 1000000)
        snprintf(buf, cap, "%.1f µs", (double)ns / 1e3);
    else
        snprintf(buf, cap, "%.2f ms", (double)ns / 1e6);
    return buf;
}

static void row_p(const char *measure, int64_t p50, int64_t p99, const char *target)
{
    char a[32], b[32];
    row(measure, "p50 %s, p99 %s%s%s", dur(a, sizeof a, p50), dur(b, sizeof b, p99),
        target ? "  " : "", target ? target : "");
}

static pc_plugin_host *host;

static int add_plugin(const char *key, const char *dir, pc_error_t *err)
{
    pc_plugin_package pkg;
    if (pc_plugin_package_load(dir, &pkg, err) < 0)
        return -1;
    pc_plugin_spec s = {.plugin_key = key,
                        .plugin_id = "00000000-0000-4000-8000-0000000000be",
                        .package_dir = pkg.dir,
                        .worker_path = pkg.worker_path,
                        .worker_is_js = pkg.worker_is_js,
                        .manifest = pkg.manifest};
    int rc = pc_plugin_host_add(host, &s, 20000, err);
    pc_plugin_package_clear(&pkg);
    return rc;
}

/* health round trips; returns -1 (err filled) if any call failed. */
static int bench_health(const char *key, size_t n, int64_t *p50, int64_t *p99, pc_error_t *err)
{
    int64_t *t = pc_xcalloc(n, sizeof *t);
    int rc = 0;
    for (size_t i = 0; i < n / 10 + 10 && rc == 0; i++) { /* warm up */
        json_t *r = NULL;
        rc = pc_plugin_call(host, key, "health", NULL, 0, &r, err);
        json_decref(r);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *r = NULL;
        int64_t t0 = now_ns();
        rc = pc_plugin_call(host, key, "health", NULL, 0, &r, err);
        t[i] = now_ns() - t0;
        json_decref(r);
    }
    *p50 = quantile(t, n, 0.50);
    *p99 = quantile(t, n, 0.99);
    free(t);
    return rc;
}

static int64_t bare_spawn_ns(void)
{
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
    int64_t t0 = now_ns();
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, envp) != 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return now_ns() - t0;
}

static int execute_once(const char *key, const char *driver, json_t *params, int64_t *ns,
                        pc_error_t *err)
{
    (void)driver;
    json_t *r = NULL;
    int64_t t0 = now_ns();
    int rc = pc_plugin_call(host, key, "environmentExecute", params, 0, &r, err);
    *ns = now_ns() - t0;
    if (rc == 0 && json_integer_value(json_object_get(r, "exitCode")) != 0) {
        pc_error_set(err, 500, "/bin/true did not exit 0");
        rc = -1;
    }
    json_decref(r);
    return rc;
}

/* Interleaves plugin executes of /bin/true with bare spawns of it. */
static int bench_execute(const char *key, const char *driver, size_t n, int64_t *x50, int64_t *x99,
                         int64_t *b50, int64_t *b99, pc_error_t *err)
{
    json_t *params = json_pack("{s:s,s:s,s:s,s:{},s:s,s:[],s:{},s:i}", "driverKey", driver,
                               "companyId", "bench-company", "environmentId", "bench-env",
                               "config", "command", "/bin/true", "args", "env", "timeoutMs",
                               30000);
    int64_t *x = pc_xcalloc(n, sizeof *x), *b = pc_xcalloc(n, sizeof *b);
    int rc = 0;
    int64_t ignore;
    for (size_t i = 0; i < 10 && rc == 0; i++) {
        rc = execute_once(key, driver, params, &ignore, err);
        bare_spawn_ns();
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = execute_once(key, driver, params, &x[i], err);
        b[i] = bare_spawn_ns();
    }
    *x50 = quantile(x, n, 0.50);
    *x99 = quantile(x, n, 0.99);
    *b50 = quantile(b, n, 0.50);
    *b99 = quantile(b, n, 0.99);
    free(x);
    free(b);
    json_decref(params);
    return rc;
}

static void report_execute(const char *label, int64_t x50, int64_t x99, int64_t b50, int64_t b99)
{
    char m[64], a[32], c[32];
    snprintf(m, sizeof m, "execute /bin/true via %s", label);
    row_p(m, x50, x99, NULL);
    snprintf(m, sizeof m, "  overhead over bare spawn (%s)", label);
    row(m, "p50 %s, p99 %s  (target < 0.5 ms)", dur(a, sizeof a, x50 - b50),
        dur(c, sizeof c, x99 - b99));
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

int main(int argc, char **argv)
{
    size_t n_health = argc > 1 ? (size_t)atol(argv[1]) : 10000;
    size_t n_exec = argc > 2 ? (size_t)atol(argv[2]) : 500;
    if (n_health < 1)
        n_health = 1;
    if (n_exec < 1)
        n_exec = 1;
    pc_log_setup(0, PC_LOG_ERROR);
    const char *root = getenv("PC_ROOT") ? getenv("PC_ROOT") : ".";
    pc_error_t err = PC_ERROR_INIT;
    pc_loop *loop = pc_loop_new(&err);
    if (!loop || pc_loop_start(loop, &err) < 0) {
        fprintf(stderr, "plugin bench: %s\n", err.msg);
        return 1;
    }
    host = pc_plugin_host_new(loop, NULL, &err);
    int64_t p50, p99, b50, b99;

    /* The C fake plugin. */
    const char *ckey = "paperclip.fake-sandbox-provider";
    _cleanup_free_ char *cdir = pc_xasprintf("%s/plugins/fake-sandbox", root);
    if (add_plugin(ckey, cdir, &err) < 0) {
        row("plugin bench (C fake plugin)", "failed: %s", err.msg);
        pc_error_clear(&err);
    } else {
        char m[64];
        snprintf(m, sizeof m, "plugin health RPC, C worker (%zu calls)", n_health);
        if (bench_health(ckey, n_health, &p50, &p99, &err) == 0)
            row_p(m, p50, p99, "(target p50 < 50 µs)");
        else
            row(m, "failed: %s", err.msg);
        pc_error_clear(&err);
        if (bench_execute(ckey, "fake-plugin", n_exec, &p50, &p99, &b50, &b99, &err) == 0) {
            snprintf(m, sizeof m, "bare posix_spawn+waitpid /bin/true (%zu)", n_exec);
            row_p(m, b50, b99, NULL);
            report_execute("C plugin", p50, p99, b50, b99);
        } else {
            row("execute /bin/true via C plugin", "failed: %s", err.msg);
        }
        pc_error_clear(&err);
    }

    /* The JS plugin on the published SDK, laid out as plugin_compat.mjs
     * does: a copy of the package with node_modules from build/npm-cache. */
    _cleanup_free_ char *cache = pc_xasprintf("%s/build/npm-cache/node_modules", root);
    _cleanup_free_ char *sdk = pc_xasprintf("%s/@paperclipai/plugin-sdk/package.json", cache);
    char node[4096];
    struct stat st;
    if (stat(sdk, &st) != 0) {
        row("plugin health RPC, JS worker", "n/a (sdk not installed)");
        row("execute /bin/true via JS plugin", "n/a (sdk not installed)");
    } else if (pc_plugin_find_node(node, sizeof node) < 0) {
        row("plugin health RPC, JS worker", "n/a (node not installed)");
        row("execute /bin/true via JS plugin", "n/a (node not installed)");
    } else {
        const char *jkey = "paperclip.js-sandbox-compat"; /* manifest.mjs id */
        _cleanup_free_ char *work = pc_test_tmpdir("plugin-bench");
        _cleanup_free_ char *pkg = pc_xasprintf("%s/js-sandbox-plugin", work);
        _cleanup_free_ char *abs_cache = realpath(cache, NULL);
        bool ready = abs_cache && mkdir(pkg, 0700) == 0;
        static const char *const files[] = {"package.json", "manifest.mjs", "worker.mjs", NULL};
        for (size_t i = 0; ready && files[i]; i++) {
            _cleanup_free_ char *from =
                pc_xasprintf("%s/tests/compat/js-sandbox-plugin/%s", root, files[i]);
            _cleanup_free_ char *to = pc_xasprintf("%s/%s", pkg, files[i]);
            ready = copy_file(from, to) == 0;
        }
        _cleanup_free_ char *nm = pc_xasprintf("%s/node_modules", pkg);
        ready = ready && symlink(abs_cache, nm) == 0;
        if (!ready || add_plugin(jkey, pkg, &err) < 0) {
            row("plugin bench (JS plugin)", "failed: %s", err.msg[0] ? err.msg : "cannot set up");
        } else {
            size_t nh = n_health / 5 ? n_health / 5 : 1;
            char m[64];
            snprintf(m, sizeof m, "plugin health RPC, JS worker (%zu calls)", nh);
            if (bench_health(jkey, nh, &p50, &p99, &err) == 0)
                row_p(m, p50, p99, "(target p50 < 50 µs)");
            else
                row(m, "failed: %s", err.msg);
            pc_error_clear(&err);
            if (bench_execute(jkey, "js-fake", n_exec / 2 ? n_exec / 2 : 1, &p50, &p99, &b50,
                              &b99, &err) == 0)
                report_execute("JS plugin", p50, p99, b50, b99);
            else
                row("execute /bin/true via JS plugin", "failed: %s", err.msg);
        }
        pc_error_clear(&err);
        pc_plugin_host_free(host); /* stops the worker before its dir goes */
        host = NULL;
        pc_test_rmrf(work);
    }
    if (host)
        pc_plugin_host_free(host);
    pc_loop_stop(loop, NULL, NULL);
    pc_loop_join(loop);
    pc_loop_free(loop);
    pc_error_clear(&err);
    return 0;
}
