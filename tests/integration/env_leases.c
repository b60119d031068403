/*
 * The lease manager through a real daemon (lease test hooks enabled):
 * local execution (explicit env, stdin, exit codes, timeouts that kill the
 * whole process group, bounded output), the release status mapping, and
 * sandbox leases through the C fake plugin — lifecycle, reuse, config
 * mismatch, and kill -9 of the daemon with a lease active followed by
 * start-up reconciliation removing the provider's directory.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "env_common.h"

static const char *const hook_env[] = {"PAPERCLIP_ENABLE_TEST_HOOKS=1", NULL};
static char *cid;

/* Running (a zombie waiting for a reaper counts as dead). */
static bool alive(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static json_t *lease_acquire(const char *env_id, const char *body, long *status)
{
    pc_http_res r = req("POST", body ? body : "{}", "/api/environments/%s/test-lease", env_id);
    *status = r.status;
    if (r.status != 200)
        tap_diag("acquire: %ld %s", r.status, r.body);
    json_t *j = r.json ? json_incref(r.json) : NULL;
    pc_http_res_free(&r);
    return j;
}

static json_t *lease_exec(const char *lease_id, const char *body)
{
    pc_http_res r = req("POST", body, "/api/environment-leases/%s/test-execute", lease_id);
    if (r.status != 200)
        tap_diag("execute: %ld %s", r.status, r.body);
    json_t *j = r.status == 200 && r.json ? json_incref(r.json) : NULL;
    pc_http_res_free(&r);
    return j;
}

static json_t *lease_release(const char *lease_id, const char *run_status)
{
    char body[128];
    snprintf(body, sizeof body, "{\"runStatus\":\"%s\"}", run_status);
    pc_http_res r = req("POST", body, "/api/environment-leases/%s/test-release", lease_id);
    json_t *j = r.status == 200 && r.json ? json_incref(r.json) : NULL;
    pc_http_res_free(&r);
    return j;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v) ? json_string_value(v) : "";
}

struct bg_exec {
    char lid[64];
    const char *body;
    json_t *result;
};

static void *bg_exec_main(void *arg)
{
    struct bg_exec *b = arg;
    b->result = lease_exec(b->lid, b->body);
    return NULL;
}

/* Runs body on the lease in a thread, cancels it after 300 ms; returns the
 * execute result and the seconds it took. */
static json_t *exec_and_cancel(const char *lid, const char *body, long *secs)
{
    struct bg_exec b = {.body = body};
    snprintf(b.lid, sizeof b.lid, "%s", lid);
    time_t t0 = time(NULL);
    pthread_t th;
    pthread_create(&th, NULL, bg_exec_main, &b);
    pc_test_sleep_ms(300);
    pc_http_res r = req("POST", "{}", "/api/environment-leases/%s/test-cancel", lid);
    if (r.status != 200)
        tap_diag("cancel: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    pthread_join(th, NULL);
    *secs = (long)(time(NULL) - t0);
    return b.result;
}

static char *local_env(void)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/environments?driver=local", cid);
    char *id = strdup(jstr(json_array_get(r.json, 0), "id", NULL));
    pc_http_res_free(&r);
    return id;
}

static void test_local(void)
{
    char *env = local_env();
    long st;
    json_t *a = lease_acquire(env, "{\"runId\":\"run-local-1\"}", &st);
    is_int(st, 200, "local: acquire + realize");
    const char *lid = jstr(a, "lease", "id");
    const char *cwd = jstr(a, "cwd", NULL);
    is_str(jstr(a, "lease", "status"), "active", "local: lease row active");
    is_str(jstr(a, "lease", "heartbeatRunId"), "run-local-1", "local: lease carries the run id");
    struct stat sb;
    ok(stat(cwd, &sb) == 0 && S_ISDIR(sb.st_mode), "local: workspace directory exists");

    json_t *x = lease_exec(lid, "{\"command\":\"sh\",\"args\":[\"-c\",\"echo $FOO; pwd; echo oops >&2; exit 3\"],"
                                "\"env\":{\"FOO\":\"bar baz\"}}");
    char want[1200];
    snprintf(want, sizeof want, "bar baz\n%s\n", cwd);
    is_str(jstr(x, "stdout", NULL), want, "local: stdout, explicit env, realized cwd");
    is_str(jstr(x, "stderr", NULL), "oops\n", "local: stderr captured");
    is_int(json_integer_value(json_object_get(x, "exitCode")), 3, "local: exit code");
    json_decref(x);

    x = lease_exec(lid, "{\"command\":\"sh\",\"args\":[\"-c\",\"echo ${HOME:-nohome} ${PAPERCLIP_ENABLE_TEST_HOOKS:-clean}\"]}");
    is_str(jstr(x, "stdout", NULL), "nohome clean\n", "local: the daemon's environment is not inherited");
    json_decref(x);

    x = lease_exec(lid, "{\"command\":\"cat\",\"stdin\":\"line one\\nline two\\n\"}");
    is_str(jstr(x, "stdout", NULL), "line one\nline two\n", "local: stdin delivered then EOF");
    json_decref(x);

    x = lease_exec(lid, "{\"command\":\"cat\"}");
    ok(x && json_integer_value(json_object_get(x, "exitCode")) == 0 &&
           !strcmp(jstr(x, "stdout", NULL), ""),
       "local: no stdin means immediate EOF");
    json_decref(x);

    /* A command that ignores SIGTERM and leaves a background child: the
     * timeout escalates to SIGKILL for the whole group. */
    char pidfile[700];
    snprintf(pidfile, sizeof pidfile, "%s/bg.pid", d.data_dir);
    char body[2048];
    snprintf(body, sizeof body,
             "{\"command\":\"sh\",\"args\":[\"-c\",\"trap '' TERM; sleep 30 & echo $! > %s; "
             "while :; do sleep 1; done\"],\"timeoutMs\":300,\"graceMs\":300}",
             pidfile);
    int64_t t0 = time(NULL);
    x = lease_exec(lid, body);
    ok(x && json_is_true(json_object_get(x, "timedOut")) &&
           json_is_null(json_object_get(x, "exitCode")),
       "local: timeout -> timedOut, exitCode null");
    is_str(jstr(x, "signal", NULL), "SIGKILL", "local: SIGTERM ignored -> SIGKILL");
    ok(time(NULL) - t0 < 10, "local: timeout enforced promptly");
    json_decref(x);
    FILE *f = fopen(pidfile, "r");
    int bg = 0;
    if (f) {
        if (fscanf(f, "%d", &bg) != 1)
            bg = 0;
        fclose(f);
    }
    pc_test_sleep_ms(100);
    ok(bg > 0 && !alive(bg), "local: the background child died with its group");

    x = lease_exec(lid, "{\"command\":\"sh\",\"args\":[\"-c\",\"head -c 200000 /dev/zero | tr '\\\\0' x\"],"
                        "\"outputCap\":1000}");
    ok(x && strlen(jstr(x, "stdout", NULL)) == 1000 &&
           json_is_true(json_object_get(x, "stdoutTruncated")),
       "local: output bounded by outputCap, truncated flagged");
    json_decref(x);

    pc_http_res r = req("POST", "{\"command\":\"/nonexistent/binary\"}",
                        "/api/environment-leases/%s/test-execute", lid);
    ok(r.status >= 500, "local: exec failure is an error, not a hang");
    pc_http_res_free(&r);

    long secs = 0;
    x = exec_and_cancel(lid, "{\"command\":\"sleep\",\"args\":[\"30\"],\"graceMs\":200}", &secs);
    ok(x && json_is_true(json_object_get(x, "cancelled")) && secs < 10,
       "local: pc_lease_cancel stops a running command (%lds)", secs);
    json_decref(x);
    x = lease_exec(lid, "{\"command\":\"true\"}");
    ok(x && json_is_true(json_object_get(x, "cancelled")),
       "local: a cancelled lease stays cancelled for later commands");
    json_decref(x);

    json_t *rel = lease_release(lid, "failed");
    is_str(jstr(rel, "status", NULL), "failed", "release: failed run -> lease failed");
    ok(json_object_get(rel, "releasedAt") && !json_is_null(json_object_get(rel, "releasedAt")),
       "release: releasedAt set");
    json_decref(rel);
    json_t *act = activity(cid, "environment.lease_acquired", lid);
    ok(act != NULL, "activity environment.lease_acquired");
    json_decref(act);
    act = activity(cid, "environment.lease_released", lid);
    is_str(jstr(act, "details", "status"), "failed", "activity environment.lease_released {status}");
    json_decref(act);
    json_decref(a);

    const char *map[][2] = {{"cancelled", "expired"}, {"timed_out", "failed"},
                            {"succeeded", "released"}};
    for (int i = 0; i < 3; i++) {
        a = lease_acquire(env, NULL, &st);
        rel = lease_release(jstr(a, "lease", "id"), map[i][0]);
        is_str(jstr(rel, "status", NULL), map[i][1], "release mapping: %s -> %s", map[i][0],
               map[i][1]);
        json_decref(rel);
        json_decref(a);
    }
    r = req("GET", NULL, "/api/environments/%s/leases?status=expired", env);
    ok(r.status == 200 && json_array_size(r.json) == 1, "leases ?status=expired: one");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/environments/%s/leases", env);
    ok(r.status == 200 && json_array_size(r.json) == 4, "leases: all four");
    char *one = strdup(jstr(json_array_get(r.json, 0), "id", NULL));
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/environment-leases/%s", one);
    ok(r.status == 200 && !strcmp(pc_res_str(&r, "id"), one), "lease detail");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/environments/%s/leases?status=bogus", env);
    is_int(r.status, 400, "leases ?status=bogus: 400");
    pc_http_res_free(&r);
    free(one);

    /* A stored apiUrl that leaves the host (written before the rule, or
     * allowedHostnames changed since) fails the lease: the run token is
     * never handed out for it. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE environments SET config='{\"apiUrl\":\"http://collector.example.com/\"}' "
             "WHERE id='%s'",
             env);
    ok(db_exec(sql) == 0, "local: an off-host apiUrl stored behind the API's back");
    a = lease_acquire(env, "{\"runId\":\"run-local-api-url\"}", &st);
    is_int(st, 400, "local: acquire with an off-host apiUrl: 400");
    json_decref(a);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM environment_leases WHERE heartbeat_run_id='run-local-api-url' "
             "AND status='failed'");
    is_int(db_count(sql), 1, "local: that lease row is closed as failed");
    snprintf(sql, sizeof sql, "UPDATE environments SET config='{}' WHERE id='%s'", env);
    db_exec(sql);
    free(env);
}

static char *make_sandbox(const char *name, const char *cfg)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"driver\":\"sandbox\",\"config\":%s}", name, cfg);
    pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
    if (r.status != 201)
        tap_diag("sandbox create: %ld %s", r.status, r.body);
    char *id = res_dup(&r, "id");
    pc_http_res_free(&r);
    return id;
}

static bool dir_exists(const char *p)
{
    struct stat sb;
    return *p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static char *fake_root(json_t *lease)
{
    return strdup(jstr(json_object_get(lease, "metadata"), "fakeRootDir", NULL));
}

static void test_sandbox(void)
{
    char body[1200];
    snprintf(body, sizeof body, "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res r = pc_http(&d, "POST", "/api/plugins/install", body);
    ok(r.status == 200 || r.status == 201, "fake plugin installed (%ld)", r.status);
    if (r.status >= 300)
        tap_diag("%s", r.body);
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/companies/%s/environments/capabilities", cid);
    json_t *fp = json_object_get(json_object_get(r.json, "sandboxProviders"), "fake-plugin");
    ok(fp && !strcmp(jstr(fp, "status", NULL), "supported") &&
           json_is_object(json_object_get(fp, "configSchema")) &&
           json_is_true(json_object_get(fp, "supportsReusableLeases")),
       "capabilities: fake-plugin supported with its configSchema");
    pc_http_res_free(&r);

    char *env = make_sandbox("Fake", "{\"provider\":\"fake-plugin\",\"image\":\"fake:test\"}");
    r = req("GET", NULL, "/api/environments/%s", env);
    json_t *cfg = json_object_get(r.json, "config");
    ok(!strcmp(jstr(cfg, "provider", NULL), "fake-plugin") &&
           !strcmp(jstr(cfg, "image", NULL), "fake:test") &&
           json_integer_value(json_object_get(cfg, "timeoutMs")) == 300000 &&
           json_is_false(json_object_get(cfg, "reuseLease")),
       "sandbox: stored as the provider's normalizedConfig");
    pc_http_res_free(&r);

    r = req("POST", "{}", "/api/environments/%s/probe", env);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "ok")) &&
           !strcmp(pc_res_str(&r, "summary"), "Fake sandbox provider is ready for image fake:test.") &&
           !strcmp(jstr(json_object_get(r.json, "details"), "provider", NULL), "fake-plugin"),
       "sandbox: probe through the plugin");
    pc_http_res_free(&r);

    long st;
    json_t *a = lease_acquire(env, "{\"runId\":\"run-1\"}", &st);
    is_int(st, 200, "sandbox: acquire + realize");
    const char *lid = jstr(a, "lease", "id");
    ok(strstr(jstr(a, "lease", "providerLeaseId"), "fake-plugin://run-1/") != NULL,
       "sandbox: provider lease id");
    is_str(jstr(a, "lease", "leasePolicy"), "ephemeral", "sandbox: ephemeral by default");
    ok(strstr(jstr(a, "cwd", NULL), "paperclip-fake-sandbox-") != NULL, "sandbox: realized cwd");
    char *root = fake_root(json_object_get(a, "lease"));
    ok(dir_exists(root), "sandbox: provider directory exists");
    json_t *x = lease_exec(lid, "{\"command\":\"sh\",\"args\":[\"-lc\",\"printf fake-plugin-ok; pwd >&2\"],"
                                "\"env\":{\"ONLY\":\"me\"}}");
    is_str(jstr(x, "stdout", NULL), "fake-plugin-ok", "sandbox: execute stdout");
    ok(x && json_integer_value(json_object_get(x, "exitCode")) == 0 &&
           json_is_false(json_object_get(x, "timedOut")),
       "sandbox: exit 0");
    json_decref(x);
    x = lease_exec(lid, "{\"command\":\"sh\",\"args\":[\"-c\",\"trap '' TERM; while :; do sleep 1; done\"],"
                        "\"timeoutMs\":200}");
    ok(x && json_is_true(json_object_get(x, "timedOut")) &&
           json_is_null(json_object_get(x, "exitCode")),
       "sandbox: timeout -> timedOut, exitCode null");
    json_decref(x);
    long secs = 0;
    x = exec_and_cancel(lid, "{\"command\":\"sleep\",\"args\":[\"30\"],\"timeoutMs\":3000}", &secs);
    ok(x && json_is_true(json_object_get(x, "cancelled")) && secs < 3,
       "sandbox: cancel returns without waiting for the provider (%lds)", secs);
    json_decref(x);
    json_t *rel = lease_release(lid, "succeeded");
    is_str(jstr(rel, "status", NULL), "released", "sandbox: released");
    is_str(jstr(rel, "cleanupStatus", NULL), "success", "sandbox: cleanupStatus success");
    json_decref(rel);
    ok(!dir_exists(root), "sandbox: release removed the provider directory");
    free(root);
    json_decref(a);

    /* Reuse: the provider opts in and config.reuseLease is set. */
    char *renv = make_sandbox("Reuse", "{\"provider\":\"fake-plugin\",\"image\":\"fake:test\",\"reuseLease\":true}");
    a = lease_acquire(renv, "{\"runId\":\"run-2\"}", &st);
    is_str(jstr(a, "lease", "leasePolicy"), "reuse_by_environment", "reuse: policy");
    char *plid = strdup(jstr(a, "lease", "providerLeaseId"));
    char *lid2 = strdup(jstr(a, "lease", "id"));
    root = fake_root(json_object_get(a, "lease"));
    rel = lease_release(lid2, "succeeded");
    is_str(jstr(rel, "status", NULL), "retained", "reuse: lease retained after the run");
    json_decref(rel);
    ok(dir_exists(root), "reuse: provider directory kept");
    json_decref(a);
    a = lease_acquire(renv, "{\"runId\":\"run-3\"}", &st);
    is_str(jstr(a, "lease", "providerLeaseId"), plid, "reuse: the next run resumes the same lease");
    ok(json_is_true(json_object_get(json_object_get(json_object_get(a, "lease"), "metadata"),
                                    "resumedLease")),
       "reuse: metadata.resumedLease");
    char *lid3 = strdup(jstr(a, "lease", "id"));
    json_decref(a);
    r = req("GET", NULL, "/api/environment-leases/%s", lid2);
    is_str(pc_res_str(&r, "status"), "released", "reuse: the resumed lease moved to the new row");
    pc_http_res_free(&r);
    json_decref(lease_release(lid3, "succeeded"));
    /* A different image is a different sandbox: no reuse of lid3. */
    r = req("PATCH", "{\"config\":{\"image\":\"fake:other\"}}", "/api/environments/%s", renv);
    is_int(r.status, 200, "reuse: image changed");
    pc_http_res_free(&r);
    a = lease_acquire(renv, "{\"runId\":\"run-4\"}", &st);
    is_int(st, 200, "reuse: acquired after the config change");
    char *lid4 = strdup(jstr(a, "lease", "id"));
    json_decref(a);
    r = req("GET", NULL, "/api/environment-leases/%s", lid3);
    is_str(pc_res_str(&r, "status"), "retained", "reuse: config mismatch -> the old lease was not resumed");
    pc_http_res_free(&r);
    json_decref(lease_release(lid4, "succeeded"));
    r = req("POST", "{}", "/api/environments/%s/test-destroy-reusable", renv);
    is_int(json_integer_value(json_object_get(r.json, "destroyed")), 2,
           "reuse: destroying the environment's reusable leases");
    pc_http_res_free(&r);
    ok(!dir_exists(root), "reuse: provider directory removed by destroy");
    free(lid2);
    free(lid3), free(lid4), free(plid), free(root), free(renv);

    /* Crash: kill -9 with an ephemeral lease active; the restarted daemon
     * destroys it through the provider. */
    a = lease_acquire(env, "{\"runId\":\"run-crash\"}", &st);
    char *clid = strdup(jstr(a, "lease", "id"));
    root = fake_root(json_object_get(a, "lease"));
    ok(dir_exists(root), "crash: provider directory exists before the crash");
    json_decref(a);
    /* ...and a local command running on a local lease at the same moment. */
    char *lenv = local_env();
    json_t *la = lease_acquire(lenv, "{\"runId\":\"run-crash-local\"}", &st);
    char *llid = strdup(jstr(la, "lease", "id"));
    json_decref(la);
    char pidfile[700];
    snprintf(pidfile, sizeof pidfile, "%s/crash.pid", d.data_dir);
    snprintf(body, sizeof body,
             "{\"command\":\"sh\",\"args\":[\"-c\",\"echo $$ > %s; exec sleep 300\"]}", pidfile);
    struct bg_exec b = {.body = body};
    snprintf(b.lid, sizeof b.lid, "%s", llid);
    pthread_t th;
    pthread_create(&th, NULL, bg_exec_main, &b);
    int orphan = 0;
    for (int i = 0; i < 200 && orphan <= 0; i++) {
        FILE *pf = fopen(pidfile, "r");
        if (pf) {
            if (fscanf(pf, "%d", &orphan) != 1)
                orphan = 0;
            fclose(pf);
        }
        if (orphan <= 0)
            pc_test_sleep_ms(20);
    }
    ok(orphan > 0 && alive(orphan), "crash: a local command is running");

    pc_daemon_kill9(&d);
    pthread_join(th, NULL);
    json_decref(b.result);
    ok(orphan > 0 && alive(orphan), "crash: the command outlived the killed daemon");
    char dir[600];
    snprintf(dir, sizeof dir, "%s", d.data_dir);
    pc_daemon_opts o = {.env = hook_env, .data_dir = dir};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "crash: daemon restarts");
    } else {
        json_t *row = NULL;
        for (int i = 0; i < 200; i++) {
            r = req("GET", NULL, "/api/environment-leases/%s", clid);
            if (r.status == 200 && strcmp(pc_res_str(&r, "status"), "active") != 0) {
                row = json_incref(r.json);
                pc_http_res_free(&r);
                break;
            }
            pc_http_res_free(&r);
            pc_test_sleep_ms(50);
        }
        ok(row != NULL, "crash: the active lease was reconciled after restart");
        is_str(jstr(row, "status", NULL), "expired", "crash: lease expired");
        is_str(jstr(row, "cleanupStatus", NULL), "success", "crash: cleanupStatus success");
        ok(!dir_exists(root), "crash: the provider's directory is gone");
        json_decref(row);
        r = req("GET", NULL, "/api/environment-leases/%s", llid);
        is_str(pc_res_str(&r, "status"), "expired", "crash: the local lease was reconciled");
        ok(strstr(pc_res_str(&r, "failureReason"), "killed") != NULL,
           "crash: failureReason says leftover commands were killed");
        pc_http_res_free(&r);
        for (int i = 0; i < 100 && alive(orphan); i++)
            pc_test_sleep_ms(20);
        ok(!alive(orphan), "crash: the leftover command was killed at restart");
    }
    free(clid), free(root), free(env), free(lenv), free(llid);
}

/* `env_leases --bench N`: probe latency (local, fake sandbox) and a lease
 * acquire+realize+release round trip through the C fake plugin, as a table
 * for `make bench`. Numbers include the loopback HTTP round trip. */
static int bench(int n)
{
    pc_daemon_opts o = {.env = hook_env};
    if (pc_daemon_start(&d, &o) < 0)
        return 1;
    cid = make_company("Bench Co");
    char *env = local_env(), path[256], body[1200];
    snprintf(path, sizeof path, "/api/environments/%s/probe", env);
    bench_row("env probe, local (median, incl. HTTP)", median_ms(n, "POST", path, "{}"));
    snprintf(path, sizeof path, "/api/environments/%s", env);
    bench_row("GET environment (read baseline, median)", median_ms(n, "GET", path, NULL));
    snprintf(path, sizeof path, "/api/health");
    bench_row("GET /api/health (HTTP baseline, median)", median_ms(n, "GET", path, NULL));
    snprintf(body, sizeof body, "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res r = pc_http(&d, "POST", "/api/plugins/install", body);
    pc_http_res_free(&r);
    char *sbx = make_sandbox("Bench fake", "{\"provider\":\"fake-plugin\",\"image\":\"fake:bench\"}");
    snprintf(path, sizeof path, "/api/environments/%s/probe", sbx);
    bench_row("env probe, fake sandbox plugin (median)", median_ms(n, "POST", path, "{}"));
    int64_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        long st;
        int64_t t0 = now_us();
        json_t *a = lease_acquire(sbx, "{}", &st);
        json_decref(lease_release(jstr(a, "lease", "id"), "succeeded"));
        t[i] = now_us() - t0;
        json_decref(a);
    }
    qsort(t, (size_t)n, sizeof *t, cmp_i64);
    bench_row("lease acquire+realize+release, fake (median)", t[n / 2] / 1000.0);
    free(t);
    pc_daemon_stop(&d);
    free(env), free(sbx), free(cid);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 2 && !strcmp(argv[1], "--bench"))
        return bench(atoi(argv[2]) > 0 ? atoi(argv[2]) : 100);
    pc_daemon_opts o = {.env = hook_env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("Lease Co");
    test_local();
    test_sandbox();
    if (tap_failures())
        pc_daemon_dump_log(&d);
    d.keep_dir = false;
    is_int(pc_daemon_stop(&d), 0, "daemon exits cleanly (no sanitizer report)");
    free(cid);
    return tap_done();
}
