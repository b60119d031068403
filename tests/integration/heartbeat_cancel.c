/*
 * Stopping runs: cancel mid-run, a timeout whose command ignores SIGTERM and
 * leaves a grandchild behind (nothing may survive), cancelling a queued run,
 * and the lease being released on every path.
 */
#include <pthread.h>

#include "heartbeat_common.h"

/* Follows a run's log (SSE) on its own thread until the stream ends. */
typedef struct follower {
    char url[512];
    pc_http_res res;
} follower;

static void *follow_main(void *p)
{
    follower *f = p;
    f->res = pc_http_ex(f->url, "GET", NULL, 0, NULL);
    return NULL;
}

static void check_lease(json_t *run, const char *want, const char *what)
{
    pc_http_res r = req("GET", NULL, "/api/environment-leases/%s", js(run, "leaseId"));
    is_str(pc_res_str(&r, "status"), want, "%s", what);
    pc_http_res_free(&r);
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Stop Co");

    /* Cancel mid-run: the process group is stopped, the lease expires. */
    char *a1 = hb_sh_agent(cid, "sleeper", "echo \"leader $$\"; sleep 60 & echo \"child $!\"; wait",
                           NULL, NULL);
    char *run = hb_wake(a1, NULL);
    ok(hb_wait_log(run, "child ", 10000), "long run started and printed its pids");
    char *log = hb_log(run);
    long leader = find_num(log, "leader "), child = find_num(log, "child ");
    free(log);
    ok(leader > 0 && child > 0, "pids known (%ld, %ld)", leader, child);
    follower fl;
    memset(&fl, 0, sizeof fl);
    snprintf(fl.url, sizeof fl.url, "%s/api/heartbeat-runs/%s/log?follow=1", d.url, run);
    pthread_t ft;
    pthread_create(&ft, NULL, follow_main, &fl);
    pc_test_sleep_ms(300);
    pc_http_res r = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", run);
    is_int(r.status, 200, "cancel answers 200");
    pc_http_res_free(&r);
    json_t *j = hb_wait_run(run, NULL, 30000);
    is_str(js(j, "status"), "cancelled", "run cancelled");
    is_str(js(j, "errorCode"), "cancelled", "errorCode cancelled");
    ok(leader > 0 && pc_test_pid_gone(leader), "agent process gone");
    ok(child > 0 && pc_test_pid_gone(child), "its child gone");
    check_lease(j, "expired", "lease released as expired after cancel");
    json_decref(j);
    pthread_join(ft, NULL);
    const char *fb = fl.res.body ? fl.res.body : "";
    ok(strstr(fb, "event: log") && strstr(fb, "leader "), "follow streamed the live output");
    ok(strstr(fb, "event: end\ndata: {\"status\":\"cancelled\"}") != NULL,
       "follow ended with the final status");
    pc_http_res_free(&fl.res);
    r = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", run);
    is_int(r.status, 200, "cancelling a finished run is harmless");
    is_str(pc_res_str(&r, "status"), "cancelled", "and changes nothing");
    pc_http_res_free(&r);
    free(run);

    /* Timeout: SIGTERM ignored by the command and by a forked grandchild. */
    char *a2 = hb_sh_agent(cid, "stubborn",
                           "trap '' TERM; (trap '' TERM; echo \"grandchild $$ $(sh -c 'echo $PPID')\";"
                           " while :; do sleep 1; done) & echo \"leader $$\"; while :; do sleep 1; done",
                           "\"timeoutSec\":1,\"graceSec\":1", NULL);
    run = hb_wake(a2, NULL);
    j = hb_wait_run(run, NULL, 30000);
    is_str(js(j, "status"), "timed_out", "run timed out");
    is_str(js(j, "errorCode"), "timeout", "errorCode timeout");
    ok(json_is_true(json_object_get(json_object_get(j, "resultJson"), "timeoutFired")),
       "resultJson.timeoutFired");
    log = hb_log(run);
    leader = find_num(log, "leader ");
    const char *g = strstr(log, "grandchild ");
    long gpid = 0;
    if (g) {
        /* "grandchild <subshell $$ (= leader)> <subshell's real pid>" */
        const char *sp = strchr(g + strlen("grandchild "), ' ');
        gpid = sp ? strtol(sp + 1, NULL, 10) : 0;
    }
    free(log);
    ok(leader > 0 && pc_test_pid_gone(leader), "leader that ignored SIGTERM is gone");
    ok(gpid > 0 && pc_test_pid_gone(gpid), "grandchild that ignored SIGTERM is gone (pid %ld)", gpid);
    check_lease(j, "failed", "lease released as failed after timeout");
    json_decref(j);
    free(run);

    /* A queued run is cancelled in place. maxConcurrentRuns 1 keeps the
     * second wake (another task) queued behind the first. */
    char *a3 = hb_sh_agent(cid, "single", "sleep 30", NULL,
                           "{\"heartbeat\":{\"maxConcurrentRuns\":1}}");
    char *i1 = hb_issue(cid, "first", NULL, NULL), *i2 = hb_issue(cid, "second", NULL, NULL);
    char body[200];
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", i1);
    char *r1 = hb_wake(a3, body);
    j = hb_wait_run(r1, "running", 10000);
    ok(j != NULL, "first run running");
    json_decref(j);
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", i2);
    char *r2 = hb_wake(a3, body);
    pc_test_sleep_ms(300);
    r = req("GET", NULL, "/api/heartbeat-runs/%s", r2);
    is_str(pc_res_str(&r, "status"), "queued", "second run waits for the slot");
    pc_http_res_free(&r);
    r = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", r2);
    is_str(pc_res_str(&r, "status"), "cancelled", "queued run cancelled at once");
    pc_http_res_free(&r);
    r = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", r1);
    pc_http_res_free(&r);
    j = hb_wait_run(r1, "cancelled", 30000);
    ok(j != NULL, "running run cancelled too");
    json_decref(j);
    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    r = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", "00000000-0000-7000-8000-000000000000");
    is_int(r.status, 404, "unknown run: 404");
    pc_http_res_free(&r);

    free(cid), free(a1), free(a2), free(a3), free(i1), free(i2), free(r1), free(r2);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
