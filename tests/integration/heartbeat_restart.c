/*
 * Restart safety. kill -9 mid-run: at the next start the run is
 * `interrupted` (process_lost) and its lease no longer active. SIGTERM
 * mid-run: a run that ends within the grace period succeeds — and can still
 * call the API after the signal arrived (it comments on its issue only once
 * the daemon has logged the SIGTERM); one that does not is stopped (process
 * group gone), recorded as interrupted, and its lease released before the
 * daemon exits.
 */
#include <sys/wait.h>

#include "heartbeat_common.h"

int main(void)
{
    const char *env[] = {"PAPERCLIP_RUN_SHUTDOWN_GRACE_MS=1500", NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    d.keep_dir = true;
    char data_dir[512];
    snprintf(data_dir, sizeof data_dir, "%s", d.data_dir);
    char *cid = hb_company("Crash Co");
    char *agent = hb_sh_agent(cid, "long", "echo \"leader $$\"; exec sleep 60", NULL, NULL);
    char *run = hb_wake(agent, NULL);
    ok(hb_wait_log(run, "leader ", 10000), "run is running");
    char *log = hb_log(run);
    long leader = find_num(log, "leader ");
    free(log);

    pc_daemon_kill9(&d);
    /* The orphaned command outlives a SIGKILLed daemon (nothing could stop
     * it); the test removes it. */
    if (leader > 0)
        kill((pid_t)leader, SIGKILL);
    o.data_dir = data_dir;
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon restarts");
        return tap_done();
    }
    d.keep_dir = true;
    json_t *j = hb_wait_run(run, NULL, 5000);
    is_str(js(j, "status"), "interrupted", "run left running is interrupted at start");
    is_str(js(j, "errorCode"), "process_lost", "errorCode process_lost");
    ok(json_is_string(json_object_get(j, "finishedAt")), "finishedAt set");
    json_decref(j);
    long long active = -1;
    for (int i = 0; i < 100; i++) {
        active = db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'");
        if (active == 0)
            break;
        pc_test_sleep_ms(50);
    }
    is_int(active, 0, "its lease was reconciled");
    pc_http_res r = req("GET", NULL, "/api/agents/%s", agent);
    is_str(pc_res_str(&r, "status"), "idle", "agent no longer shown running");
    pc_http_res_free(&r);
    free(run);

    /* SIGTERM: a short run finishes inside the grace period, calling the API
     * after the signal: it waits for a flag the test creates only once the
     * daemon has logged the SIGTERM, then comments on its issue. */
    char *tmp = pc_test_tmpdir("hbrestart");
    char flag[700], script[2000];
    snprintf(flag, sizeof flag, "%s/sigterm-seen", tmp);
    snprintf(script, sizeof script,
             "echo go; i=0; while [ ! -e '%s' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); "
             "done; curl -sS -f -X POST -H \"Authorization: Bearer $PAPERCLIP_API_KEY\" "
             "-H \"X-Paperclip-Run-Id: $PAPERCLIP_RUN_ID\" -H 'Content-Type: application/json' "
             "--data '{\"body\":\"after sigterm\"}' "
             "\"$PAPERCLIP_API_URL/api/issues/$PAPERCLIP_TASK_ID/comments\" > /dev/null && "
             "echo commented",
             flag);
    char *quick = hb_sh_agent(cid, "quick", script, NULL, NULL);
    char *qissue = hb_issue(cid, "Finish during shutdown", NULL, "backlog");
    char wbody[200];
    snprintf(wbody, sizeof wbody, "{\"issueId\":\"%s\"}", qissue);
    char *qrun = hb_wake(quick, wbody);
    ok(hb_wait_log(qrun, "go", 10000), "short run started");
    /* ...a long one does not. */
    run = hb_wake(agent, NULL);
    ok(hb_wait_log(run, "leader ", 10000), "long run started");
    log = hb_log(run);
    leader = find_num(log, "leader ");
    free(log);
    kill(d.pid, SIGTERM);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        char *dlog = pc_test_read_file(d.log_path, 1 << 20);
        seen = strstr(dlog, "received SIGTERM") != NULL;
        free(dlog);
        if (!seen)
            pc_test_sleep_ms(10);
    }
    ok(seen, "the daemon took the SIGTERM");
    FILE *f = fopen(flag, "w");
    if (f)
        fclose(f);
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 600 && w == 0; i++) {
        w = waitpid(d.pid, &st, WNOHANG);
        if (w == 0)
            pc_test_sleep_ms(50);
    }
    ok(w == d.pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exits cleanly on SIGTERM");
    d.pid = 0;
    ok(leader > 0 && pc_test_pid_gone(leader), "the long run's process was stopped");
    is_int(db_count("SELECT COUNT(*) FROM heartbeat_runs WHERE status='running'"), 0,
           "no run left running");
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon restarts");
        return tap_done();
    }
    j = hb_wait_run(qrun, NULL, 2000);
    is_str(js(j, "status"), "succeeded", "short run finished within the grace period");
    if (strcmp(js(j, "status"), "succeeded") != 0)
        tap_diag("short run: %s (%s)", js(j, "error"), js(j, "errorCode"));
    json_decref(j);
    log = hb_log(qrun);
    ok(strstr(log, "commented") != NULL, "it called the API after the SIGTERM");
    free(log);
    r = req("GET", NULL, "/api/issues/%s/comments", qissue);
    is_int(json_array_size(r.json), 1, "its comment is there after the restart");
    is_str(js(json_array_get(r.json, 0), "body"), "after sigterm", "comment body");
    is_str(js(json_array_get(r.json, 0), "runId"), qrun, "comment from the short run");
    pc_http_res_free(&r);
    j = hb_wait_run(run, NULL, 2000);
    is_str(js(j, "status"), "interrupted", "long run recorded as interrupted");
    is_str(js(j, "errorCode"), "daemon_shutdown", "errorCode daemon_shutdown");
    r = req("GET", NULL, "/api/environment-leases/%s", js(j, "leaseId"));
    is_str(pc_res_str(&r, "status"), "released", "its lease was released before exit");
    pc_http_res_free(&r);
    json_decref(j);

    pc_test_rmrf(tmp);
    free(tmp), free(qissue);
    free(cid), free(agent), free(run), free(quick), free(qrun);
    d.keep_dir = false;
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
