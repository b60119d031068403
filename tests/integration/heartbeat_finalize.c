/*
 * The end of a run is recorded all at once or not at all. A trigger that
 * makes clearing the issue's execution lock fail stands in for a store that
 * refuses one write in the middle: the run must then not look finished
 * (status, wakeup, events) while its issue stays locked. Once the store
 * accepts writes again, the retried end is recorded whole.
 */
#include "heartbeat_common.h"

static char *sqlf(const char *fmt, const char *a)
{
    char *s = NULL;
    if (asprintf(&s, fmt, a) < 0)
        return NULL;
    return s;
}

static long long count1(const char *fmt, const char *a)
{
    char *s = sqlf(fmt, a);
    long long n = db_count(s);
    free(s);
    return n;
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Finalize Co");
    char *agent = hb_sh_agent(cid, "fin", "echo finishing", NULL, NULL);
    char *issue = hb_issue(cid, "locked task", NULL, NULL);
    is_int(pc_test_db_exec(&d, "CREATE TRIGGER test_refuse_unlock BEFORE UPDATE OF "
                               "execution_run_id ON issues WHEN NEW.execution_run_id IS NULL "
                               "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"),
           0, "trigger refusing the issue unlock installed");

    char body[200];
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue);
    char *run = hb_wake(agent, body);
    ok(run[0], "run queued");
    char needle[200];
    snprintf(needle, sizeof needle, "cannot record the end of run %s", run);
    bool refused = false;
    for (int waited = 0; waited < 60000 && !refused; waited += 20) {
        refused = pc_test_file_contains(d.log_path, needle);
        if (!refused)
            pc_test_sleep_ms(20);
    }
    ok(refused, "the daemon reports that it cannot record the end");

    /* Nothing of the end is visible while it cannot all be written. */
    pc_http_res r = req("GET", NULL, "/api/heartbeat-runs/%s", run);
    is_str(pc_res_str(&r, "status"), "running", "the run is not shown finished");
    pc_http_res_free(&r);
    is_int(count1("SELECT COUNT(*) FROM issues WHERE execution_run_id='%s'", run), 1,
           "the issue is still locked by the run");
    is_int(count1("SELECT COUNT(*) FROM agent_wakeup_requests WHERE run_id='%s' AND "
                  "status='claimed'", run),
           1, "the wakeup request is still claimed");
    is_int(count1("SELECT COUNT(*) FROM heartbeat_run_events WHERE run_id='%s' AND "
                  "message='run finished'", run),
           0, "no 'run finished' event");

    is_int(pc_test_db_exec(&d, "DROP TRIGGER test_refuse_unlock"), 0, "trigger dropped");
    json_t *j = hb_wait_run(run, NULL, 60000);
    is_str(j ? js(j, "status") : "", "succeeded", "the retried end is recorded");
    json_decref(j);
    is_int(count1("SELECT COUNT(*) FROM issues WHERE execution_run_id='%s'", run), 0,
           "the issue is unlocked");
    is_int(count1("SELECT COUNT(*) FROM agent_wakeup_requests WHERE run_id='%s' AND "
                  "status='completed'", run),
           1, "the wakeup request completed");
    is_int(count1("SELECT COUNT(*) FROM heartbeat_run_events WHERE run_id='%s' AND "
                  "message='run finished'", run),
           1, "exactly one 'run finished' event");
    char *log = hb_log(run);
    ok(strstr(log, "finishing") != NULL, "the run's output is in its log");
    free(log);

    free(cid), free(agent), free(issue), free(run);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
