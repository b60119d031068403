/*
 * The reusable-lease lifecycle through a real daemon (lease test hooks
 * enabled; a "run" here is test-lease + test-execute + test-release with an
 * issue id, the lease manager's calls of a heartbeat run):
 *
 * - a destroy that fails once (PAPERCLIP_TEST_LEASE_DESTROY_FAILURES=1):
 *   closing the issue shows the lease pending_cleanup, then the retry
 *   destroys it (released, cleanupStatus success, two attempts);
 * - 100 runs with reuse on through the fake provider and 100 through the
 *   bwrap provider (skipped without bwrap/user namespaces), over five
 *   issues; closing the issues leaves no active, retained or pending lease,
 *   no fake provider directory, no bwrap lease directory, none of the
 *   cgroups the bwrap leases recorded and no process under the bwrap
 *   plugin's data directory;
 * - real heartbeat runs (process adapter) in a reusable sandbox: a run that
 *   leaves its issue open retains the lease until the issue is cancelled; a
 *   run whose agent marks its issue done has its lease destroyed at release;
 * - delete-blast-radius (counts, blocked reasons, who may read it) and
 *   DELETE without the flag (409 listing deleteBlockedReasons), with a lease
 *   held by a run (409 active_leases), cross-site (403), and with
 *   ?destroyReusableSandboxLeases=true (200, destroyedReusableSandboxLeaseCount),
 *   and `paperclip env delete` with and without --destroy-reusable-leases;
 * - the idle TTL (PAPERCLIP_LEASE_IDLE_TTL_SEC=1) hands a retained lease to
 *   cleanup; with every destroy failing it stays pending_cleanup across a
 *   daemon restart, and the restarted daemon (no faults) finishes it.
 */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env_common.h"

static const char *const fault_env[] = {"PAPERCLIP_ENABLE_TEST_HOOKS=1",
                                        "PAPERCLIP_TEST_LEASE_DESTROY_FAILURES=1", NULL};
static const char *const ttl_fault_env[] = {"PAPERCLIP_ENABLE_TEST_HOOKS=1",
                                            "PAPERCLIP_TEST_LEASE_DESTROY_FAILURES=100000",
                                            "PAPERCLIP_LEASE_IDLE_TTL_SEC=1", NULL};
static const char *const hook_env[] = {"PAPERCLIP_ENABLE_TEST_HOOKS=1", NULL};

#define RUNS 100
#define ISSUES 5

static char *cid;

static const char *jstr(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    return json_string_value(v) ? json_string_value(v) : "";
}

static bool dir_exists(const char *p)
{
    struct stat sb;
    return p && *p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* What the bwrap plugin's environmentProbe runs. */
static bool bwrap_usable(void)
{
    return pc_test_sh("command -v bwrap >/dev/null 2>&1 && "
                      "bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr "
                      "--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
                      "--proc /proc --dev /dev -- /usr/bin/true >/dev/null 2>&1") == 0;
}

static bool install_plugin(const char *dir, const char *data_dir)
{
    char body[2000];
    if (data_dir)
        snprintf(body, sizeof body,
                 "{\"packageName\":\"%s/plugins/%s\",\"isLocalPath\":true,"
                 "\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s\"}}",
                 pc_test_root(), dir, data_dir);
    else
        snprintf(body, sizeof body, "{\"packageName\":\"%s/plugins/%s\",\"isLocalPath\":true}",
                 pc_test_root(), dir);
    pc_http_res r = pc_http(&d, "POST", "/api/plugins/install", body);
    bool good = r.status == 200 || r.status == 201;
    if (!good)
        tap_diag("install %s: %ld %s", dir, r.status, r.body);
    pc_http_res_free(&r);
    return good;
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

static char *make_issue(const char *title, const char *env_id)
{
    char body[512];
    if (env_id)
        snprintf(body, sizeof body,
                 "{\"title\":\"%s\",\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
                 title, env_id);
    else
        snprintf(body, sizeof body, "{\"title\":\"%s\"}", title);
    pc_http_res r = req("POST", body, "/api/companies/%s/issues", cid);
    if (r.status != 201)
        tap_diag("issue create: %ld %s", r.status, r.body);
    char *id = res_dup(&r, "id");
    pc_http_res_free(&r);
    return id;
}

static long close_issue(const char *issue_id, const char *status)
{
    char body[64];
    snprintf(body, sizeof body, "{\"status\":\"%s\"}", status);
    pc_http_res r = req("PATCH", body, "/api/issues/%s", issue_id);
    long st = r.status;
    if (st != 200)
        tap_diag("close issue: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return st;
}

/* One run's lease: acquire (with the issue), one command, release. Returns
 * the released lease row (new ref) or NULL; *acquired gets the acquired
 * lease row. */
static json_t *run_once(const char *env_id, const char *issue_id, json_t **acquired)
{
    char body[256];
    if (issue_id)
        snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue_id);
    else
        snprintf(body, sizeof body, "{}");
    *acquired = NULL;
    pc_http_res r = req("POST", body, "/api/environments/%s/test-lease", env_id);
    if (r.status != 200) {
        tap_diag("acquire: %ld %s", r.status, r.body);
        pc_http_res_free(&r);
        return NULL;
    }
    *acquired = json_incref(json_object_get(r.json, "lease"));
    pc_http_res_free(&r);
    char lid[64];
    snprintf(lid, sizeof lid, "%s", jstr(*acquired, "id", NULL));
    r = req("POST", "{\"command\":\"sh\",\"args\":[\"-c\",\"echo run\"]}",
            "/api/environment-leases/%s/test-execute", lid);
    bool ran = r.status == 200 && !strcmp(pc_res_str(&r, "stdout"), "run\n");
    if (!ran)
        tap_diag("execute: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    r = req("POST", "{\"runStatus\":\"succeeded\"}", "/api/environment-leases/%s/test-release",
            lid);
    json_t *out = ran && r.status == 200 ? json_incref(r.json) : NULL;
    if (r.status != 200)
        tap_diag("release: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return out;
}

/* The lease row (new ref) once its status is no longer `from` (NULL: any
 * status satisfying min_attempts), polling up to ~60 s. */
static json_t *wait_lease(const char *lid, const char *from, int min_attempts)
{
    for (int i = 0; i < 1200; i++) {
        pc_http_res r = req("GET", NULL, "/api/environment-leases/%s", lid);
        bool done = r.status == 200 &&
                    (!from || strcmp(pc_res_str(&r, "status"), from) != 0) &&
                    json_integer_value(json_object_get(r.json, "cleanupAttempts")) >= min_attempts;
        if (done) {
            json_t *j = json_incref(r.json);
            pc_http_res_free(&r);
            return j;
        }
        pc_http_res_free(&r);
        pc_test_sleep_ms(50);
    }
    return NULL;
}

static long long open_leases(void)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM environment_leases WHERE company_id='%s' AND status IN "
             "('active','retained','pending_cleanup')",
             cid);
    return db_count(sql);
}

/* ------------------------------------------------------------ fault */

static void test_failed_cleanup_retried(void)
{
    char *env = make_sandbox("Flaky", "{\"provider\":\"fake-plugin\",\"image\":\"fake:flaky\","
                                      "\"reuseLease\":true}");
    char *issue = make_issue("flaky cleanup", NULL);
    json_t *acq = NULL;
    json_t *rel = run_once(env, issue, &acq);
    is_str(jstr(rel, "status", NULL), "retained", "fault: the reusable lease is retained");
    char *lid = strdup(jstr(acq, "id", NULL));
    char *root = strdup(jstr(json_object_get(acq, "metadata"), "fakeRootDir", NULL));
    ok(dir_exists(root), "fault: the provider directory exists");
    is_int(close_issue(issue, "done"), 200, "fault: issue closed (done)");
    pc_http_res r = req("GET", NULL, "/api/environment-leases/%s", lid);
    is_str(pc_res_str(&r, "status"), "pending_cleanup", "fault: lease pending_cleanup after close");
    is_str(pc_res_str(&r, "cleanupStatus"), "pending", "fault: cleanupStatus pending");
    is_str(pc_res_str(&r, "failureReason"), "issue done", "fault: the reason is the closed issue");
    pc_http_res_free(&r);
    json_t *row = wait_lease(lid, "pending_cleanup", 0);
    ok(row != NULL, "fault: the cleanup finished");
    is_str(jstr(row, "status", NULL), "released", "fault: released after the retry");
    is_str(jstr(row, "cleanupStatus", NULL), "success", "fault: cleanupStatus success");
    is_int(json_integer_value(json_object_get(row, "cleanupAttempts")), 2,
           "fault: two attempts (the first one failed)");
    ok(strstr(jstr(json_object_get(row, "metadata"), "lastCleanupError", NULL),
              "injected destroy failure") != NULL,
       "fault: the failed attempt's error is recorded");
    ok(!dir_exists(root), "fault: the provider directory is gone");
    json_t *act = activity(cid, "environment.lease_released", lid);
    ok(act && !strcmp(jstr(json_object_get(act, "details"), "cleanupStatus", NULL), "success"),
       "fault: activity environment.lease_released with cleanupStatus success");
    json_decref(act);
    json_decref(row), json_decref(rel), json_decref(acq);
    free(lid), free(root), free(issue), free(env);
}

/* ------------------------------------------------------------ 100 runs */

/* RUNS runs over ISSUES issues on env; returns the retained lease's row
 * after the last run (new ref) and whether every run succeeded. */
static json_t *many_runs(const char *env, char **issues, const char *label, int *failed,
                         int *fresh)
{
    json_t *last = NULL;
    char plid[512] = "";
    *failed = 0;
    *fresh = 0;
    for (int i = 0; i < RUNS; i++) {
        json_t *acq = NULL;
        json_t *rel = run_once(env, issues[i % ISSUES], &acq);
        if (!rel || strcmp(jstr(rel, "status", NULL), "retained") != 0) {
            if (*failed < 3)
                tap_diag("%s run %d: released %s", label, i, rel ? jstr(rel, "status", NULL) : "?");
            (*failed)++;
        }
        if (acq && strcmp(plid, jstr(acq, "providerLeaseId", NULL)) != 0) {
            snprintf(plid, sizeof plid, "%s", jstr(acq, "providerLeaseId", NULL));
            (*fresh)++;
        }
        json_decref(rel);
        json_decref(last);
        last = acq;
    }
    return last;
}

static void wait_all_closed(const char *label)
{
    long long n = -1;
    for (int i = 0; i < 1200 && (n = open_leases()) != 0; i++)
        pc_test_sleep_ms(50);
    is_int((int)n, 0, "%s: no active, retained or pending lease after the issues closed", label);
}

static void test_many_runs(bool bwrap, const char *plugin_data)
{
    char *issues[ISSUES];
    for (int i = 0; i < ISSUES; i++) {
        char t[32];
        snprintf(t, sizeof t, "reuse issue %d", i);
        issues[i] = make_issue(t, NULL);
    }
    char *fenv = make_sandbox("Reuse fake", "{\"provider\":\"fake-plugin\",\"image\":\"fake:reuse\","
                                            "\"reuseLease\":true}");
    int failed, fresh;
    json_t *last = many_runs(fenv, issues, "fake", &failed, &fresh);
    is_int(failed, 0, "fake: %d runs with reuse, each lease retained at release", RUNS);
    is_int(fresh, 1, "fake: every run resumed the same provider lease");
    char *froot = strdup(jstr(json_object_get(last, "metadata"), "fakeRootDir", NULL));
    ok(dir_exists(froot), "fake: the provider directory exists between runs");
    json_decref(last);

    char *benv = NULL;
    json_t *bcg = NULL;
    if (bwrap) {
        benv = make_sandbox("Reuse bwrap", "{\"provider\":\"bwrap\",\"reuseLease\":true}");
        last = many_runs(benv, issues, "bwrap", &failed, &fresh);
        is_int(failed, 0, "bwrap: %d runs with reuse, each lease retained at release", RUNS);
        is_int(fresh, 1, "bwrap: every run resumed the same provider lease");
        bcg = json_incref(json_object_get(json_object_get(last, "metadata"), "cgroups"));
        json_decref(last);
        char dir[800];
        snprintf(dir, sizeof dir, "%s/leases", plugin_data);
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "exit $(ls -A '%s' | wc -l)", dir);
        is_int(pc_test_sh(cmd), 1, "bwrap: one lease directory between runs");
        size_t i;
        json_t *cg;
        int there = 0;
        json_array_foreach(bcg, i, cg) there += dir_exists(json_string_value(cg));
        ok(json_array_size(bcg) == 0 || there == (int)json_array_size(bcg),
           "bwrap: the lease's %d cgroup(s) exist between runs", there);
    }

    for (int i = 0; i < ISSUES; i++)
        is_int(close_issue(issues[i], i % 2 ? "cancelled" : "done"), 200, "issue %d closed", i);
    wait_all_closed("close");
    ok(!dir_exists(froot), "fake: the provider directory is gone");
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM environment_leases WHERE environment_id='%s' AND "
             "status='released' AND cleanup_status='success' AND failure_reason LIKE 'issue %%'",
             fenv);
    is_int((int)db_count(sql), 1, "fake: the retained lease was destroyed for its closed issue");
    if (bwrap) {
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "test -d '%s/leases' && exit $(ls -A '%s/leases' | wc -l)",
                 plugin_data, plugin_data);
        is_int(pc_test_sh(cmd), 0, "bwrap: no lease directory left");
        size_t i;
        json_t *cg;
        int left = 0, seen = 0;
        json_array_foreach(bcg, i, cg) {
            const char *p = json_string_value(cg);
            if (p && !strncmp(p, "/sys/fs/cgroup/", 15)) {
                seen++;
                if (dir_exists(p)) {
                    tap_diag("cgroup left: %s", p);
                    left++;
                }
            }
        }
        is_int(left, 0, "bwrap: none of the %d cgroup(s) the lease recorded is left", seen);
        /* The bracket keeps the pattern from matching the shell running
         * pgrep, whose own command line contains it. */
        snprintf(cmd, sizeof cmd, "pgrep -f '%s/lease[s]/' >/dev/null", plugin_data);
        ok(pc_test_sh(cmd) != 0, "bwrap: no process of a lease is left (pgrep)");
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM environment_leases WHERE environment_id='%s' AND "
                 "status='released' AND cleanup_status='success' AND failure_reason LIKE 'issue %%'",
                 benv);
        is_int((int)db_count(sql), 1, "bwrap: the retained lease was destroyed for its closed issue");
    }
    json_decref(bcg);
    for (int i = 0; i < ISSUES; i++)
        free(issues[i]);
    free(froot), free(fenv), free(benv);
}

/* ------------------------------------------------------ heartbeat runs */

static char *make_process_agent(const char *name, const char *args_json)
{
    char body[1500];
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"adapterType\":\"process\",\"adapterConfig\":"
             "{\"command\":\"sh\",\"args\":%s}}",
             name, args_json);
    pc_http_res r = req("POST", body, "/api/companies/%s/agents", cid);
    if (r.status != 201)
        tap_diag("agent create: %ld %s", r.status, r.body);
    char *id = res_dup(&r, "id");
    pc_http_res_free(&r);
    return id;
}

/* Assigns a new issue (in env) to agent and waits for its run to finish;
 * returns the run (new ref) and the issue id in issue. */
static json_t *heartbeat_run(const char *agent, const char *env, char issue[64])
{
    char body[600];
    snprintf(body, sizeof body,
             "{\"title\":\"heartbeat job\",\"assigneeAgentId\":\"%s\","
             "\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             agent, env);
    pc_http_res r = req("POST", body, "/api/companies/%s/issues", cid);
    snprintf(issue, 64, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    char run[64] = "";
    for (int i = 0; i < 500 && !run[0]; i++) {
        r = req("GET", NULL, "/api/issues/%s/runs", issue);
        if (json_array_size(r.json) >= 1)
            snprintf(run, sizeof run, "%s", jstr(json_array_get(r.json, 0), "id", NULL));
        pc_http_res_free(&r);
        if (!run[0])
            pc_test_sleep_ms(20);
    }
    for (int i = 0; run[0] && i < 3000; i++) {
        r = req("GET", NULL, "/api/heartbeat-runs/%s", run);
        const char *st = pc_res_str(&r, "status");
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled") ||
            !strcmp(st, "timed_out")) {
            json_t *j = json_incref(r.json);
            pc_http_res_free(&r);
            return j;
        }
        pc_http_res_free(&r);
        pc_test_sleep_ms(20);
    }
    tap_diag("no finished run for issue %s", issue);
    return NULL;
}

/* The run orchestrator's release: a run that leaves its issue open retains
 * the lease until the issue closes; a run whose agent marks its issue done
 * cleans its lease up at release. */
static void test_heartbeat_runs(void)
{
    char *env = make_sandbox("Heartbeat reuse",
                             "{\"provider\":\"fake-plugin\",\"image\":\"fake:hb\","
                             "\"reuseLease\":true}");
    char *idle = make_process_agent("Idler", "[\"-c\",\"echo working\"]");
    char issue[64];
    json_t *run = heartbeat_run(idle, env, issue);
    is_str(jstr(run, "status", NULL), "succeeded", "heartbeat: the run succeeded");
    char *lid = strdup(jstr(run, "leaseId", NULL));
    json_decref(run);
    pc_http_res r = req("GET", NULL, "/api/environment-leases/%s", lid);
    is_str(pc_res_str(&r, "status"), "retained", "heartbeat: the run's lease is retained");
    is_str(pc_res_str(&r, "issueId"), issue, "heartbeat: the lease records the run's issue");
    char *root = strdup(jstr(json_object_get(r.json, "metadata"), "fakeRootDir", NULL));
    pc_http_res_free(&r);
    ok(dir_exists(root), "heartbeat: the sandbox is kept for the next run");
    is_int(close_issue(issue, "cancelled"), 200, "heartbeat: issue cancelled");
    json_t *row = wait_lease(lid, "pending_cleanup", 1);
    is_str(jstr(row, "status", NULL), "released", "heartbeat: lease released after the close");
    is_str(jstr(row, "failureReason", NULL), "issue cancelled", "heartbeat: reason issue cancelled");
    ok(!dir_exists(root), "heartbeat: the sandbox is gone");
    json_decref(row);
    free(lid), free(root);

    char script[1200];
    snprintf(script, sizeof script, "[\"%s/tests/agents/checkout_agent.sh\"]", pc_test_root());
    char *closer = make_process_agent("Closer", script);
    run = heartbeat_run(closer, env, issue);
    is_str(jstr(run, "status", NULL), "succeeded", "heartbeat: the closing agent's run succeeded");
    lid = strdup(jstr(run, "leaseId", NULL));
    json_decref(run);
    r = req("GET", NULL, "/api/issues/%s", issue);
    is_str(pc_res_str(&r, "status"), "done", "heartbeat: the agent marked its issue done");
    pc_http_res_free(&r);
    row = wait_lease(lid, "pending_cleanup", 1);
    is_str(jstr(row, "status", NULL), "released",
           "heartbeat: the lease of a run that closed its issue is destroyed at release");
    is_str(jstr(row, "cleanupStatus", NULL), "success", "heartbeat: cleanupStatus success");
    root = strdup(jstr(json_object_get(row, "metadata"), "fakeRootDir", NULL));
    ok(!dir_exists(root), "heartbeat: that sandbox is gone too");
    json_decref(row);
    free(lid), free(root), free(idle), free(closer), free(env);
}

/* ------------------------------------------------------- delete, radius */

static json_t *radius(const char *token, const char *env, long *status)
{
    pc_http_res r = areq(token, "GET", NULL, "/api/environments/%s/delete-blast-radius", env);
    *status = r.status;
    json_t *j = r.json ? json_incref(r.json) : NULL;
    pc_http_res_free(&r);
    return j;
}

static bool has_reason(json_t *reasons, const char *want)
{
    size_t i;
    json_t *v;
    json_array_foreach(reasons, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), want))
        return true;
    return false;
}

static void test_delete(void)
{
    char *env = make_sandbox("Doomed", "{\"provider\":\"fake-plugin\",\"image\":\"fake:doomed\","
                                       "\"reuseLease\":true}");
    char *agent = make_agent(cid, "Selector", NULL);
    char body[256];
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", env);
    pc_http_res r = req("PATCH", body, "/api/agents/%s", agent);
    is_int(r.status, 200, "delete: agent selects the environment");
    pc_http_res_free(&r);
    char *issue = make_issue("selects doomed", env);
    json_t *acq = NULL;
    json_decref(run_once(env, NULL, &acq));
    char *lid = strdup(jstr(acq, "id", NULL));
    char *root = strdup(jstr(json_object_get(acq, "metadata"), "fakeRootDir", NULL));
    json_decref(acq);

    long st;
    json_t *br = radius(NULL, env, &st);
    is_int(st, 200, "radius: board reads it");
    is_str(jstr(br, "environmentId", NULL), env, "radius: environmentId");
    ok(json_is_false(json_object_get(br, "canDelete")), "radius: canDelete false");
    ok(has_reason(json_object_get(br, "deleteBlockedReasons"), "reusable_sandbox_leases") &&
           json_array_size(json_object_get(br, "deleteBlockedReasons")) == 1,
       "radius: deleteBlockedReasons [reusable_sandbox_leases]");
    json_t *sr = json_object_get(br, "staticReferences");
    is_int(json_integer_value(json_object_get(sr, "agentDefaultCount")), 1,
           "radius: agentDefaultCount 1");
    is_int(json_integer_value(json_object_get(sr, "issueSelectionCount")), 1,
           "radius: issueSelectionCount 1");
    json_t *use = json_object_get(br, "activeRuntimeUse");
    is_int(json_integer_value(json_object_get(use, "activeLeaseCount")), 0,
           "radius: activeLeaseCount 0");
    is_int(json_integer_value(json_object_get(use, "reusableLeaseCount")), 1,
           "radius: reusableLeaseCount 1");
    ok(json_is_true(json_object_get(use, "hasActiveRuntimeUse")), "radius: hasActiveRuntimeUse");
    json_decref(br);

    /* Who may read it: environments:manage only. */
    char *other = make_company("Other Co");
    char *stranger = make_agent(other, "Stranger", "{\"environments:manage\":true}");
    char *stranger_key = make_key(stranger);
    char *plain = make_agent(cid, "Plain", NULL);
    char *plain_key = make_key(plain);
    char *mgr = make_agent(cid, "Manager", "{\"environments:manage\":true}");
    char *mgr_key = make_key(mgr);
    json_decref(radius(stranger_key, env, &st));
    is_int(st, 403, "radius: an agent of another company gets 403");
    json_decref(radius(plain_key, env, &st));
    is_int(st, 403, "radius: an agent without environments:manage gets 403");
    json_decref(radius(mgr_key, env, &st));
    is_int(st, 200, "radius: an agent with environments:manage reads it");
    r = areq(stranger_key, "DELETE", NULL, "/api/environments/%s?destroyReusableSandboxLeases=true",
             env);
    is_int(r.status, 403, "delete: an agent of another company gets 403");
    pc_http_res_free(&r);

    r = req("DELETE", NULL, "/api/environments/%s", env);
    is_int(r.status, 409, "delete without the flag: 409");
    ok(has_reason(json_object_get(json_object_get(r.json, "details"), "deleteBlockedReasons"),
                  "reusable_sandbox_leases"),
       "delete without the flag: the body lists deleteBlockedReasons");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/environments/%s?destroyReusableSandboxLeases=maybe", env);
    is_int(r.status, 400, "delete: a flag that is not true/false is a 400");
    pc_http_res_free(&r);

    /* A run holding the lease blocks even the destroying delete. */
    r = req("POST", "{}", "/api/environments/%s/test-lease", env);
    char *held = strdup(jstr(r.json, "lease", "id"));
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/environments/%s?destroyReusableSandboxLeases=true", env);
    is_int(r.status, 409, "delete with a lease held by a run: 409");
    ok(has_reason(json_object_get(json_object_get(r.json, "details"), "deleteBlockedReasons"),
                  "active_leases"),
       "delete with a lease held by a run: active_leases");
    pc_http_res_free(&r);
    r = req("POST", "{\"runStatus\":\"succeeded\"}", "/api/environment-leases/%s/test-release", held);
    is_str(pc_res_str(&r, "status"), "retained", "delete: the held lease is retained again");
    pc_http_res_free(&r);

    char url[700];
    snprintf(url, sizeof url, "%s/api/environments/%s?destroyReusableSandboxLeases=true", d.url,
             env);
    const char *xsite[] = {"Sec-Fetch-Site: cross-site", NULL};
    r = pc_http_ex(url, "DELETE", NULL, 0, xsite);
    is_int(r.status, 403, "delete: a cross-site browser request gets 403");
    pc_http_res_free(&r);
    ok(dir_exists(root), "delete: nothing was destroyed by the refused deletes");

    r = req("DELETE", NULL, "/api/environments/%s?destroyReusableSandboxLeases=true", env);
    is_int(r.status, 200, "delete with destroyReusableSandboxLeases=true: 200");
    is_int(json_integer_value(json_object_get(r.json, "destroyedReusableSandboxLeaseCount")), 1,
           "delete: destroyedReusableSandboxLeaseCount 1");
    is_str(pc_res_str(&r, "id"), env, "delete: the answer is the environment");
    pc_http_res_free(&r);
    ok(!dir_exists(root), "delete: the provider directory is gone");
    r = req("GET", NULL, "/api/environments/%s", env);
    is_int(r.status, 404, "delete: the environment is gone");
    pc_http_res_free(&r);

    /* The CLI: refused without --destroy-reusable-leases, done with it. */
    char *cenv = make_sandbox("CLI doomed", "{\"provider\":\"fake-plugin\",\"image\":\"fake:cli\","
                                            "\"reuseLease\":true}");
    json_decref(run_once(cenv, NULL, &acq));
    char *croot = strdup(jstr(json_object_get(acq, "metadata"), "fakeRootDir", NULL));
    json_decref(acq);
    char *out = NULL;
    char *argv1[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "env", "delete", cenv,
                     NULL};
    int rc = pc_run_capture(argv1, &out);
    ok(rc != 0 && dir_exists(croot), "cli: env delete without the flag is refused");
    free(out);
    out = NULL;
    char *argv2[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "env", "delete", cenv,
                     "--destroy-reusable-leases", NULL};
    rc = pc_run_capture(argv2, &out);
    json_t *j = json_loads(out ? out : "", 0, NULL);
    ok(rc == 0 && json_integer_value(json_object_get(j, "destroyedReusableSandboxLeaseCount")) == 1,
       "cli: env delete --destroy-reusable-leases destroys the lease");
    ok(!dir_exists(croot), "cli: the provider directory is gone");
    json_decref(j);
    free(out), free(croot), free(cenv);

    /* An environment without leases deletes with or without the flag. */
    char *plain_env = make_sandbox("Unused", "{\"provider\":\"fake-plugin\",\"image\":\"fake:x\"}");
    r = req("DELETE", NULL, "/api/environments/%s", plain_env);
    is_int(r.status, 200, "delete: an unused environment deletes without the flag");
    is_int(json_integer_value(json_object_get(r.json, "destroyedReusableSandboxLeaseCount")), 0,
           "delete: destroyedReusableSandboxLeaseCount 0");
    pc_http_res_free(&r);
    free(plain_env);
    free(held), free(lid), free(root), free(issue), free(agent), free(env);
    free(other), free(stranger), free(stranger_key), free(plain), free(plain_key), free(mgr),
        free(mgr_key);
}

/* ------------------------------------------------------- TTL, restart */

static void test_idle_ttl_and_restart(void)
{
    pc_daemon_opts o = {.env = ttl_fault_env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "ttl: daemon starts");
        return;
    }
    free(cid);
    cid = make_company("TTL Co");
    ok(install_plugin("fake-sandbox", NULL), "ttl: fake plugin installed");
    char *env = make_sandbox("Idle", "{\"provider\":\"fake-plugin\",\"image\":\"fake:idle\","
                                     "\"reuseLease\":true}");
    json_t *acq = NULL;
    json_t *rel = run_once(env, NULL, &acq);
    is_str(jstr(rel, "status", NULL), "retained", "ttl: lease retained after the run");
    char *lid = strdup(jstr(acq, "id", NULL));
    char *root = strdup(jstr(json_object_get(acq, "metadata"), "fakeRootDir", NULL));
    json_decref(rel), json_decref(acq);
    json_t *row = wait_lease(lid, "retained", 1);
    ok(row != NULL, "ttl: the idle lease was handed to cleanup");
    is_str(jstr(row, "status", NULL), "pending_cleanup", "ttl: pending_cleanup while destroy fails");
    is_str(jstr(row, "cleanupStatus", NULL), "pending", "ttl: cleanupStatus pending");
    ok(strstr(jstr(row, "failureReason", NULL), "idle for more than 1 s") != NULL,
       "ttl: the reason is the idle TTL");
    ok(json_is_string(json_object_get(row, "nextCleanupAt")), "ttl: the next attempt is scheduled");
    ok(dir_exists(root), "ttl: the provider directory is still there");
    json_decref(row);

    d.keep_dir = true;
    is_int(pc_daemon_stop(&d), 0, "restart: daemon stops cleanly");
    char dir[600];
    snprintf(dir, sizeof dir, "%s", d.data_dir);
    o = (pc_daemon_opts){.env = hook_env, .data_dir = dir};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "restart: daemon restarts");
    } else {
        row = wait_lease(lid, "pending_cleanup", 0);
        ok(row != NULL, "restart: the pending cleanup resumed");
        is_str(jstr(row, "status", NULL), "released", "restart: released");
        is_str(jstr(row, "cleanupStatus", NULL), "success", "restart: cleanupStatus success");
        ok(!dir_exists(root), "restart: the provider directory is gone");
        json_decref(row);
    }
    d.keep_dir = false;
    free(lid), free(root), free(env);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bool bwrap = bwrap_usable();
    char *tmp = pc_test_tmpdir("envcleanup");
    char plugin_data[700];
    snprintf(plugin_data, sizeof plugin_data, "%s/bwrap-data", tmp);
    pc_daemon_opts o = {.env = fault_env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("Cleanup Co");
    ok(install_plugin("fake-sandbox", NULL), "fake plugin installed");
    if (bwrap)
        ok(install_plugin("bwrap-sandbox", plugin_data), "bwrap plugin installed");
    else
        tap_skip("bwrap is missing or the kernel refuses user namespaces",
                 "bwrap runs with reuse");
    test_failed_cleanup_retried();
    test_many_runs(bwrap, plugin_data);
    test_heartbeat_runs();
    test_delete();
    if (tap_failures())
        pc_daemon_dump_log(&d);
    is_int(pc_daemon_stop(&d), 0, "daemon exits cleanly");
    test_idle_ttl_and_restart();
    if (tap_failures())
        pc_daemon_dump_log(&d);
    is_int(pc_daemon_stop(&d), 0, "restarted daemon exits cleanly");
    pc_test_rmrf(tmp);
    free(tmp), free(cid);
    return tap_done();
}
