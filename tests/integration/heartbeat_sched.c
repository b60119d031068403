/*
 * Scheduling: timer wakeups (claimed once per interval), coalescing of
 * wakeups for the same task, serialised execution per task, per-agent
 * maxConcurrentRuns, wakeOnDemand off, and non-invokable agents.
 */
#include "heartbeat_common.h"

/* Milliseconds since the epoch of the daemon's "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static int64_t iso_ms(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

int main(void)
{
    const char *env[] = {"PAPERCLIP_HEARTBEAT_TICK_MS=100", NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Sched Co");

    /* Timer: intervalSec 1 -> one claim per interval, never two per tick.
     * Wait for three timer runs, then check the daemon's own timestamps: a
     * tick claimed twice would put two runs within the same second. */
    char *timer = hb_sh_agent(cid, "ticker", "true", NULL,
                              "{\"heartbeat\":{\"enabled\":true,\"intervalSec\":1}}");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id='%s' AND invocation_source='timer'",
             timer);
    for (int waited = 0; waited < 60000 && db_count(sql) < 3; waited += 50)
        pc_test_sleep_ms(50);
    pc_http_res r = req("PATCH", "{\"runtimeConfig\":{\"heartbeat\":{\"enabled\":false}}}",
                        "/api/agents/%s", timer);
    pc_http_res_free(&r);
    long long n = db_count(sql);
    ok(n >= 3, "the timer fires repeatedly (%lld runs)", n);
    r = req("GET", NULL, "/api/companies/%s/heartbeat-runs?agentId=%s&limit=100", cid, timer);
    long long min_gap = -1;
    int64_t prev = -1;
    for (size_t i = json_array_size(r.json); i-- > 0;) { /* newest first */
        json_t *run = json_array_get(r.json, i);
        if (strcmp(js(run, "invocationSource"), "timer") != 0)
            continue;
        int64_t t = iso_ms(js(run, "createdAt"));
        if (prev >= 0 && (min_gap < 0 || t - prev < min_gap))
            min_gap = t - prev;
        prev = t;
    }
    pc_http_res_free(&r);
    ok(min_gap >= 900, "consecutive timer runs are an interval apart (closest %lld ms)", min_gap);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM agent_wakeup_requests WHERE agent_id='%s' AND "
             "reason='heartbeat_timer'",
             timer);
    is_int(db_count(sql), n, "one wakeup request per timer run");
    pc_test_sleep_ms(1500);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id='%s' AND invocation_source='timer'",
             timer);
    ok(db_count(sql) <= n + 1, "disabling the heartbeat stops the timer");

    /* Coalescing and per-task serialisation, with one slot. */
    char *a = hb_sh_agent(cid, "solo", "sleep 1", NULL, "{\"heartbeat\":{\"maxConcurrentRuns\":1}}");
    char *ia = hb_issue(cid, "task A", NULL, NULL), *ib = hb_issue(cid, "task B", NULL, NULL);
    char ba[200], bb[200];
    snprintf(ba, sizeof ba, "{\"issueId\":\"%s\"}", ia);
    snprintf(bb, sizeof bb, "{\"issueId\":\"%s\"}", ib);
    char *ra = hb_wake(a, ba);
    json_t *j = hb_wait_run(ra, "running", 10000);
    ok(j != NULL, "task A running");
    json_decref(j);
    char *rb1 = hb_wake(a, bb), *rb2 = hb_wake(a, bb), *rb3 = hb_wake(a, bb);
    ok(rb1[0] && !strcmp(rb1, rb2) && !strcmp(rb1, rb3), "three wakes for task B coalesce into one run");
    snprintf(sql, sizeof sql,
             "SELECT coalesced_count FROM agent_wakeup_requests WHERE run_id='%s' AND "
             "status<>'coalesced'",
             rb1);
    is_int(db_count(sql), 2, "coalescedCount counts the extra wakes");
    char *ra2 = hb_wake(a, ba);
    ok(ra2[0] && strcmp(ra2, ra) != 0, "a wake for running task A queues a new run");
    r = req("GET", NULL, "/api/heartbeat-runs/%s", ra2);
    is_str(pc_res_str(&r, "status"), "queued", "and it waits");
    pc_http_res_free(&r);
    json_t *jb = hb_wait_run(rb1, NULL, 20000), *ja2 = hb_wait_run(ra2, NULL, 20000);
    is_str(js(jb, "status"), "succeeded", "task B ran");
    is_str(js(ja2, "status"), "succeeded", "task A ran again after the first");
    j = hb_wait_run(ra, NULL, 1000);
    ok(j && strcmp(js(ja2, "startedAt"), js(j, "finishedAt")) >= 0,
       "the second task-A run started after the first ended");
    json_decref(j), json_decref(jb), json_decref(ja2);

    /* maxConcurrentRuns 2 with 5 distinct tasks. */
    char *c2 = hb_sh_agent(cid, "duo", "sleep 0.5", NULL, "{\"heartbeat\":{\"maxConcurrentRuns\":2}}");
    char *runs[5];
    for (int i = 0; i < 5; i++) {
        char *is = hb_issue(cid, "t", NULL, NULL);
        char b[200];
        snprintf(b, sizeof b, "{\"issueId\":\"%s\"}", is);
        runs[i] = hb_wake(c2, b);
        free(is);
    }
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id='%s' AND status='running'", c2);
    long long peak = 0;
    for (int i = 0; i < 200; i++) {
        long long now = db_count(sql);
        if (now > peak)
            peak = now;
        pc_test_sleep_ms(20);
    }
    is_int(peak, 2, "at most two runs at once, and two did run together");
    for (int i = 0; i < 5; i++) {
        j = hb_wait_run(runs[i], NULL, 20000);
        is_str(js(j, "status"), "succeeded", "run %d succeeded", i);
        json_decref(j);
        free(runs[i]);
    }

    /* wakeOnDemand off: on-demand wakes are skipped, timer would not be. */
    char *quiet = hb_sh_agent(cid, "quiet", "true", NULL, "{\"heartbeat\":{\"wakeOnDemand\":false}}");
    r = req("POST", "{}", "/api/agents/%s/wakeup", quiet);
    is_int(r.status, 202, "wake of a wakeOnDemand=false agent answers 202");
    is_str(pc_res_str(&r, "status"), "skipped", "but is skipped");
    pc_http_res_free(&r);
    /* Paused agents are not invokable. */
    r = req("PATCH", "{\"status\":\"paused\"}", "/api/agents/%s", quiet);
    pc_http_res_free(&r);
    r = req("POST", "{}", "/api/agents/%s/wakeup", quiet);
    is_int(r.status, 409, "paused agent: 409");
    pc_http_res_free(&r);
    r = req("POST", "{}", "/api/agents/%s/wakeup", "00000000-0000-7000-8000-000000000000");
    is_int(r.status, 404, "unknown agent: 404");
    pc_http_res_free(&r);

    free(cid), free(timer), free(a), free(ia), free(ib), free(ra), free(rb1), free(rb2),
        free(rb3), free(ra2), free(c2), free(quiet);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
