/*
 * The daemon-wide cap on executing runs (PAPERCLIP_MAX_CONCURRENT_RUNS=1):
 * two runs of two agents (so no per-agent limit binds) never execute at once
 * — the second stays queued while the first runs — and both complete.
 *
 * Each run leaves a marker in live/ while it executes and blocks until the
 * test creates `release`, so if the cap did not hold both markers would be
 * there together; on its way out each run records how many markers it saw.
 * A follower of a run that waits in the queue ends when that run is
 * cancelled there.
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

static int count_entries(const char *dir)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls '%s' | wc -l", dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    if (pc_run_capture(argv, &out) != 0) {
        free(out);
        return -1;
    }
    int n = atoi(out ? out : "-1");
    free(out);
    return n;
}

int main(void)
{
    const char *env[] = {"PAPERCLIP_MAX_CONCURRENT_RUNS=1", "PAPERCLIP_HEARTBEAT_TICK_MS=10",
                         NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Cap Co");
    char *dir = pc_test_tmpdir("hbcap");
    char live[1200], script[8192], cmd[1400];
    snprintf(live, sizeof live, "%s/live", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", live);
    is_int(pc_test_sh(cmd), 0, "marker directory created");
    /* At most 60 s of waiting for `release`, so a broken test cannot hang. */
    snprintf(script, sizeof script,
             ": > %s/\"$PAPERCLIP_RUN_ID\"; i=0; "
             "while [ ! -e %s/release ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; "
             "ls %s | wc -l > %s/seen-\"$PAPERCLIP_RUN_ID\"; rm -f %s/\"$PAPERCLIP_RUN_ID\"",
             live, dir, live, dir, live);
    char *p = hb_sh_agent(cid, "p", script, NULL, NULL);
    char *q = hb_sh_agent(cid, "q", script, NULL, NULL);
    char *rp = hb_wake(p, "{}");
    char *rq = hb_wake(q, "{}");
    ok(rp[0] && rq[0] && strcmp(rp, rq) != 0, "two wakeups, two runs");

    int n = 0;
    for (int waited = 0; waited < 30000 && (n = count_entries(live)) < 1; waited += 20)
        pc_test_sleep_ms(20);
    is_int(n, 1, "one run is executing");
    /* The scheduler ticks every 10 ms: give it many chances to start the
     * second run. This pause cannot make a broken cap look right for long;
     * it can only fail to catch one. */
    pc_test_sleep_ms(500);
    is_int(count_entries(live), 1, "the second run does not execute beside the first");
    json_t *jp = hb_wait_run(rp, NULL, 0), *jq = hb_wait_run(rq, NULL, 0);
    ok(!jp && !jq, "neither run has ended");
    json_decref(jp), json_decref(jq);
    pc_http_res a = req("GET", NULL, "/api/heartbeat-runs/%s", rp);
    pc_http_res b = req("GET", NULL, "/api/heartbeat-runs/%s", rq);
    const char *sa = pc_res_str(&a, "status"), *sb = pc_res_str(&b, "status");
    ok((!strcmp(sa, "running") && !strcmp(sb, "queued")) ||
           (!strcmp(sa, "queued") && !strcmp(sb, "running")),
       "one run running, the other still queued (%s, %s)", sa, sb);
    pc_http_res_free(&a), pc_http_res_free(&b);

    /* A third run waits in the queue too; its follower ends when it is
     * cancelled there. */
    char *x = hb_sh_agent(cid, "x", "echo never", NULL, NULL);
    char *rx = hb_wake(x, "{}");
    follower fl;
    memset(&fl, 0, sizeof fl);
    snprintf(fl.url, sizeof fl.url, "%s/api/heartbeat-runs/%s/log?follow=1", d.url, rx);
    pthread_t ft;
    pthread_create(&ft, NULL, follow_main, &fl);
    pc_http_res cr = req("POST", "{}", "/api/heartbeat-runs/%s/cancel", rx);
    is_int(cr.status, 200, "the queued third run is cancelled");
    pc_http_res_free(&cr);
    pthread_join(ft, NULL);
    ok(fl.res.body && strstr(fl.res.body, "event: end") &&
           strstr(fl.res.body, "\"status\":\"cancelled\""),
       "its follower ends with the cancelled status");
    ok(fl.res.body && !strstr(fl.res.body, "never"), "having streamed nothing of it");
    pc_http_res_free(&fl.res);
    free(x), free(rx);

    snprintf(cmd, sizeof cmd, ": > '%s/release'", dir);
    is_int(pc_test_sh(cmd), 0, "runs released");
    jp = hb_wait_run(rp, NULL, 60000);
    jq = hb_wait_run(rq, NULL, 60000);
    is_str(jp ? js(jp, "status") : "", "succeeded", "first run succeeded");
    is_str(jq ? js(jq, "status") : "", "succeeded", "second run succeeded");
    if (jp && jq) {
        json_t *first = strcmp(js(jp, "startedAt"), js(jq, "startedAt")) <= 0 ? jp : jq;
        json_t *second = first == jp ? jq : jp;
        ok(strcmp(js(second, "startedAt"), js(first, "finishedAt")) >= 0,
           "the second run started after the first finished (%s >= %s)",
           js(second, "startedAt"), js(first, "finishedAt"));
    }
    json_decref(jp), json_decref(jq);
    const char *ids[] = {rp, rq};
    for (int i = 0; i < 2; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/seen-%s", dir, ids[i]);
        char *c = pc_test_read_file(path, 64);
        is_int(atoi(c), 1, "run %d saw only itself executing", i + 1);
        free(c);
    }

    /* The option is documented where an operator looks. */
    char *argv[] = {(char *)pc_test_bin(), "serve", "--help", NULL};
    char *help = NULL;
    pc_run_capture(argv, &help);
    ok(help && strstr(help, "--max-concurrent-runs"), "serve --help documents --max-concurrent-runs");
    free(help);

    free(cid), free(p), free(q), free(rp), free(rq);
    pc_test_rmrf(dir);
    free(dir);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
