/*
 * 200 wakeups across 20 agents, each about its own issue (so none may
 * coalesce): every wakeup gets a run, every run executes exactly once and
 * succeeds, and no agent ever exceeds its maxConcurrentRuns. The daemon-wide
 * cap is raised so that the per-agent limit is the one that binds.
 */
#include "heartbeat_common.h"

#define AGENTS 20
#define WAKES 200

int main(void)
{
    const char *const args[] = {"--max-concurrent-runs", "60", NULL};
    pc_daemon_opts opts = {.args = args};
    if (pc_daemon_start(&d, &opts) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Load Co");
    char *dir = pc_test_tmpdir("hbstress");
    char script[1600];
    /* Each execution appends its run id to a per-run file: a duplicate
     * execution would show up as a second line. While it executes, a run
     * keeps a marker in its agent's live/ directory and waits (up to 5 s) for
     * a second marker, then records how many it saw: runs of one agent that
     * overlap leave evidence no matter how the machine schedules the test. */
    snprintf(script, sizeof script,
             "echo \"$PAPERCLIP_RUN_ID\" >> %s/\"$PAPERCLIP_RUN_ID\"; "
             "live=%s/live/$PAPERCLIP_AGENT_ID; mkdir -p \"$live\" %s/peers; "
             ": > \"$live/$PAPERCLIP_RUN_ID\"; i=0; "
             "while [ \"$(ls \"$live\" | wc -l)\" -lt 2 ] && [ $i -lt 100 ]; do "
             "sleep 0.05; i=$((i+1)); done; "
             "ls \"$live\" | wc -l > %s/peers/\"$PAPERCLIP_RUN_ID\"; "
             "rm -f \"$live/$PAPERCLIP_RUN_ID\"",
             dir, dir, dir, dir);
    char *agents[AGENTS];
    for (int i = 0; i < AGENTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "w%d", i);
        agents[i] = hb_sh_agent(cid, name, script, NULL,
                                "{\"heartbeat\":{\"maxConcurrentRuns\":3}}");
    }
    char *runs[WAKES], *issues[WAKES];
    for (int i = 0; i < WAKES; i++)
        issues[i] = hb_issue(cid, "load", NULL, NULL);
    int accepted = 0;
    for (int i = 0; i < WAKES; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"issueId\":\"%s\",\"idempotencyKey\":\"w-%d\"}",
                 issues[i], i);
        runs[i] = hb_wake(agents[i % AGENTS], body);
        accepted += runs[i][0] != '\0';
        free(issues[i]);
    }
    is_int(accepted, WAKES, "every wakeup answered with a run");
    int distinct = 0;
    for (int i = 0; i < WAKES; i++) {
        bool dup = false;
        for (int k = 0; k < i && !dup; k++)
            dup = !strcmp(runs[i], runs[k]);
        distinct += !dup;
    }
    is_int(distinct, WAKES, "200 distinct runs (different tasks never coalesce)");

    /* Watch concurrency while waiting for all of them to end (a sample: it
     * can miss an overlap, never invent one). */
    long long max_running = 0;
    for (int waited = 0; waited < 120000; waited += 50) {
        long long over = db_count("SELECT COALESCE(MAX(n),0) FROM (SELECT COUNT(*) AS n FROM "
                                  "heartbeat_runs WHERE status='running' GROUP BY agent_id)");
        if (over > max_running)
            max_running = over;
        if (db_count("SELECT COUNT(*) FROM heartbeat_runs WHERE status IN ('queued','running')") ==
            0)
            break;
        pc_test_sleep_ms(50);
    }
    ok(max_running <= 3, "no agent ran more than maxConcurrentRuns=3 at once (max %lld)",
       max_running);
    int max_peers = 0;
    for (int i = 0; i < WAKES; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/peers/%s", dir, runs[i]);
        char *c = pc_test_read_file(path, 64);
        int n = c ? atoi(c) : 0;
        if (n > max_peers)
            max_peers = n;
        free(c);
    }
    ok(max_peers <= 3, "no run saw more than 3 runs of its agent executing (max %d)", max_peers);
    ok(max_peers >= 2, "runs of one agent did execute concurrently (max %d)", max_peers);
    is_int(db_count("SELECT COUNT(*) FROM heartbeat_runs WHERE status='succeeded'"), WAKES,
           "all 200 runs succeeded");
    is_int(db_count("SELECT COUNT(*) FROM agent_wakeup_requests WHERE status='completed'"), WAKES,
           "all 200 wakeup requests completed");
    int once = 0, missing = 0;
    for (int i = 0; i < WAKES; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, runs[i]);
        char *c = pc_test_read_file(path, 1 << 20);
        int lines = 0;
        for (char *p = c; *p; p++)
            lines += *p == '\n';
        once += lines == 1;
        missing += lines == 0;
        free(c);
    }
    is_int(once, WAKES, "every run executed exactly once");
    is_int(missing, 0, "no run lost");
    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "every lease released");

    /* The same keys again: answered from the earlier wakeups, no new runs. */
    char *issue = hb_issue(cid, "again", NULL, NULL);
    char body[200];
    snprintf(body, sizeof body, "{\"issueId\":\"%s\",\"idempotencyKey\":\"w-7\"}", issue);
    char *again = hb_wake(agents[7], body);
    is_str(again, runs[7], "repeated idempotency key returns the original run");
    is_int(db_count("SELECT COUNT(*) FROM heartbeat_runs"), WAKES, "no extra run created");
    free(again), free(issue);

    for (int i = 0; i < WAKES; i++)
        free(runs[i]);
    for (int i = 0; i < AGENTS; i++)
        free(agents[i]);
    pc_test_rmrf(dir);
    free(dir), free(cid);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
