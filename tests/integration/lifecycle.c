/*
 * Agent lifecycle and live runs against a real daemon: pausing an agent
 * whose run blocks on a marker file cancels that run (its process goes) and
 * its queued run, and no wakeup starts a run until the board resumes it;
 * terminating is final (its key stops working, resume and wakeups answer
 * 409); the wrong actors (the agent itself, another agent, another
 * company's agent, a cross-site browser request) change nothing; the
 * live-runs routes during and after a run; and the instance's experimental
 * settings round trip with their validation errors.
 */
#include <sys/stat.h>

#include "heartbeat_common.h"

static char marker[700];

static char *key_for(const char *agent)
{
    pc_http_res r = req("POST", "{\"name\":\"k\"}", "/api/agents/%s/keys", agent);
    char *t = strdup(pc_res_str(&r, "token"));
    if (r.status != 201)
        tap_diag("key create: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return t;
}

/* POST with a cross-site Origin, as a browser on another site would send it. */
static long cross_site(const char *method, const char *path, const char *body)
{
    char url[700];
    snprintf(url, sizeof url, "%s%s", d.url, path);
    const char *hdrs[] = {"Origin: http://evil.example", "Content-Type: application/json", NULL};
    pc_http_res r = pc_http_ex(url, method, body, body ? strlen(body) : 0, hdrs);
    long st = r.status;
    pc_http_res_free(&r);
    return st;
}

static long status_of(const char *token, const char *method, const char *body, const char *path,
                      const char *id)
{
    pc_http_res r = areq(token, method, body, path, id);
    long st = r.status;
    pc_http_res_free(&r);
    return st;
}

static const char *agent_status(const char *agent)
{
    static char buf[64];
    pc_http_res r = req("GET", NULL, "/api/agents/%s", agent);
    snprintf(buf, sizeof buf, "%s", pc_res_str(&r, "status"));
    pc_http_res_free(&r);
    return buf;
}

/* Whether the JSON array holds an object whose "id" is id; returns it. */
static json_t *find_id(json_t *arr, const char *key, const char *id)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) if (!strcmp(js(o, key), id)) return o;
    return NULL;
}

static void test_pause_resume(const char *cid, const char *cid2)
{
    char script[2048];
    snprintf(script, sizeof script,
             "echo \"pid $$\"; while [ ! -f '%s' ]; do sleep 0.05; done; echo finished", marker);
    char *a = hb_sh_agent(cid, "blocker", script, NULL,
                          "{\"heartbeat\":{\"maxConcurrentRuns\":1}}");
    char *peer = hb_sh_agent(cid, "peer", "true", NULL, NULL);
    char *foreign = hb_sh_agent(cid2, "foreign", "true", NULL, NULL);
    char *self_key = key_for(a), *peer_key = key_for(peer), *foreign_key = key_for(foreign);
    char *issue = hb_issue(cid, "Blocked work", NULL, NULL);
    char *issue2 = hb_issue(cid, "Queued work", NULL, NULL);

    char body[200];
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue);
    char *run = hb_wake(a, body);
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue2);
    char *queued = hb_wake(a, body);
    ok(hb_wait_log(run, "pid ", 15000), "blocking run started");
    char *log = hb_log(run);
    long pid = find_num(log, "pid ");
    free(log);
    ok(pid > 0, "run's pid known (%ld)", pid);

    /* live-runs while it runs */
    pc_http_res r = req("GET", NULL, "/api/companies/%s/live-runs", cid);
    is_int(r.status, 200, "company live-runs: 200");
    json_t *lr = find_id(r.json, "id", run);
    ok(lr != NULL, "the running run is live");
    is_str(js(lr, "status"), "running", "live run status running");
    is_str(js(lr, "agentName"), "blocker", "live run carries the agent name");
    is_str(js(lr, "adapterType"), "process", "and the adapter type");
    is_str(js(lr, "issueId"), issue, "and the issue it is about");
    ok(json_object_get(lr, "invocationSource") && json_object_get(lr, "startedAt") &&
           json_object_get(lr, "createdAt") && json_object_get(lr, "finishedAt"),
       "with upstream's summary fields");
    json_t *lq = find_id(r.json, "id", queued);
    is_str(js(lq, "status"), "queued", "the second run waits queued (one slot)");
    pc_http_res_free(&r);
    r = areq(peer_key, "GET", NULL, "/api/companies/%s/live-runs", cid);
    is_int(r.status, 200, "an agent of the company reads live-runs");
    pc_http_res_free(&r);
    is_int(status_of(foreign_key, "GET", NULL, "/api/companies/%s/live-runs", cid), 403,
           "another company's agent: live-runs 403");
    r = req("GET", NULL, "/api/issues/%s/live-runs", issue);
    is_int(r.status, 200, "issue live-runs: 200");
    ok(json_array_size(r.json) == 1 && !strcmp(js(json_array_get(r.json, 0), "id"), run),
       "issue live-runs lists only its run");
    is_str(js(json_array_get(r.json, 0), "agentName"), "blocker", "with the agent name");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/active-run", issue);
    is_int(r.status, 200, "active-run: 200");
    is_str(js(r.json, "id"), run, "active-run is the running run");
    is_str(js(r.json, "agentName"), "blocker", "active-run carries the agent name");
    is_str(js(r.json, "adapterType"), "process", "and the adapter type");
    pc_http_res_free(&r);
    is_int(status_of(foreign_key, "GET", NULL, "/api/issues/%s/active-run", issue), 403,
           "another company's agent: active-run 403");

    /* wrong actors change nothing */
    is_int(status_of(self_key, "POST", "{}", "/api/agents/%s/pause", a), 403,
           "the agent cannot pause itself");
    is_int(status_of(peer_key, "POST", "{}", "/api/agents/%s/pause", a), 403,
           "another agent of the company cannot pause it");
    is_int(status_of(foreign_key, "POST", "{}", "/api/agents/%s/pause", a), 403,
           "another company's agent cannot pause it");
    is_int(status_of(peer_key, "POST", "{}", "/api/agents/%s/terminate", a), 403,
           "an agent cannot terminate another");
    char path[300];
    snprintf(path, sizeof path, "/api/agents/%s/pause", a);
    is_int(cross_site("POST", path, "{}"), 403, "cross-site pause: 403");
    snprintf(path, sizeof path, "/api/agents/%s/terminate", a);
    is_int(cross_site("POST", path, "{}"), 403, "cross-site terminate: 403");
    is_str(agent_status(a), "running", "the agent is still running");
    ok(!pc_test_pid_gone(pid), "and so is its process");

    /* the board pauses: the running run and the queued one are cancelled */
    r = req("POST", "{}", "/api/agents/%s/pause", a);
    is_int(r.status, 200, "board pause: 200");
    is_str(pc_res_str(&r, "status"), "paused", "agent paused");
    is_str(pc_res_str(&r, "pauseReason"), "manual", "pauseReason manual");
    ok(pc_res_str(&r, "pausedAt")[0] != '\0', "pausedAt set");
    pc_http_res_free(&r);
    json_t *j = hb_wait_run(run, NULL, 30000);
    is_str(js(j, "status"), "cancelled", "running run cancelled");
    is_str(js(j, "error"), "Cancelled due to agent pause", "recorded as upstream records it");
    is_str(js(j, "errorCode"), "cancelled", "errorCode cancelled");
    json_decref(j);
    ok(pid > 0 && pc_test_pid_gone(pid), "its process is gone");
    j = hb_wait_run(queued, NULL, 10000);
    is_str(js(j, "status"), "cancelled", "queued run cancelled too");
    is_str(js(j, "error"), "Cancelled due to agent pause", "with the same reason");
    json_decref(j);
    is_str(agent_status(a), "paused", "the agent stays paused after its run ended");

    /* no new run while paused */
    r = req("POST", "{}", "/api/agents/%s/wakeup", a);
    is_int(r.status, 409, "wakeup of a paused agent: 409");
    is_str(pc_res_str(&r, "error"), "Agent is not invokable in its current state", "409 text");
    pc_http_res_free(&r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id='%s' AND status IN "
             "('queued','running')",
             a);
    is_int(db_count(sql), 0, "no run queued or running for the paused agent");

    /* live-runs after the run */
    r = req("GET", NULL, "/api/companies/%s/live-runs", cid);
    ok(!find_id(r.json, "id", run) && !find_id(r.json, "id", queued),
       "cancelled runs are no longer live");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/live-runs?minCount=5", cid);
    json_t *recent = find_id(r.json, "id", run);
    is_str(js(recent, "status"), "cancelled", "minCount tops the list up with finished runs");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/active-run", issue);
    is_int(r.status, 200, "active-run after: 200");
    ok(r.json && json_is_null(r.json), "active-run after the run: null");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/live-runs", issue);
    is_int((long)json_array_size(r.json), 0, "issue live-runs after: empty");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/heartbeat-runs/%s/issues", run);
    is_int(r.status, 200, "run issues: 200");
    json_t *ri = find_id(r.json, "issueId", issue);
    is_str(js(ri, "title"), "Blocked work", "the run's issue is listed with its title");
    ok(json_object_get(ri, "identifier") && json_object_get(ri, "status") &&
           json_object_get(ri, "priority"),
       "and identifier, status, priority");
    pc_http_res_free(&r);
    is_int(status_of(foreign_key, "GET", NULL, "/api/heartbeat-runs/%s/issues", run), 403,
           "another company's agent: run issues 403");
    is_int(status_of(NULL, "GET", NULL, "/api/heartbeat-runs/%s/issues",
                     "00000000-0000-4000-8000-000000000000"),
           404, "unknown run: 404");

    /* the agent cannot resume itself */
    is_int(status_of(self_key, "POST", "{}", "/api/agents/%s/resume", a), 403,
           "the paused agent cannot resume itself");
    is_int(status_of(self_key, "PATCH", "{\"status\":\"idle\"}", "/api/agents/%s", a), 403,
           "nor set its status through PATCH");
    is_int(status_of(peer_key, "POST", "{}", "/api/agents/%s/resume", a), 403,
           "another agent cannot resume it");
    snprintf(path, sizeof path, "/api/agents/%s/resume", a);
    is_int(cross_site("POST", path, "{}"), 403, "cross-site resume: 403");
    is_str(agent_status(a), "paused", "still paused");

    /* the board resumes: a wakeup runs again */
    r = req("POST", "{}", "/api/agents/%s/resume", a);
    is_int(r.status, 200, "board resume: 200");
    is_str(pc_res_str(&r, "status"), "idle", "agent idle");
    ok(json_is_null(json_object_get(r.json, "pauseReason")) &&
           json_is_null(json_object_get(r.json, "pausedAt")),
       "pauseReason and pausedAt cleared");
    pc_http_res_free(&r);
    FILE *f = fopen(marker, "w");
    if (f)
        fclose(f);
    char *run2 = hb_wake(a, NULL);
    j = hb_wait_run(run2, NULL, 30000);
    is_str(js(j, "status"), "succeeded", "a wakeup after resume runs to the end");
    json_decref(j);
    unlink(marker);

    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM activity_log WHERE entity_id='%s' AND action='agent.paused' "
             "AND actor_type='user'",
             a);
    is_int(db_count(sql), 1, "one agent.paused activity row, by the board");
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM activity_log WHERE entity_id='%s' AND action='agent.resumed'",
             a);
    is_int(db_count(sql), 1, "one agent.resumed activity row");
    free(run), free(queued), free(run2), free(issue), free(issue2);
    free(self_key), free(peer_key), free(foreign_key), free(a), free(peer), free(foreign);
}

static void test_terminate(const char *cid)
{
    char script[2048];
    char tokfile[760];
    snprintf(tokfile, sizeof tokfile, "%s.token", marker);
    snprintf(script, sizeof script,
             "printf %%s \"$PAPERCLIP_API_KEY\" > '%s'; echo \"pid $$\"; "
             "while [ ! -f '%s' ]; do sleep 0.05; done",
             tokfile, marker);
    char *a = hb_sh_agent(cid, "doomed", script, NULL, NULL);
    char *key = key_for(a);
    is_int(status_of(key, "GET", NULL, "/api/agents/me%s", ""), 200, "the key works before");
    char *run = hb_wake(a, NULL);
    ok(hb_wait_log(run, "pid ", 15000), "doomed run started");
    char *log = hb_log(run);
    long pid = find_num(log, "pid ");
    free(log);
    is_int(status_of(key, "POST", "{}", "/api/agents/%s/terminate", a), 403,
           "the agent cannot terminate itself");
    char *tok = pc_test_read_file(tokfile, 4096);
    ok(tok && tok[0], "the run's token was captured");
    is_int(status_of(tok, "GET", NULL, "/api/agents/me%s", ""), 200, "the run token works before");
    is_int(status_of(tok, "POST", "{}", "/api/agents/%s/terminate", a), 403,
           "the run token cannot terminate its agent");

    pc_http_res r = req("POST", "{}", "/api/agents/%s/terminate", a);
    is_int(r.status, 200, "board terminate: 200");
    is_str(pc_res_str(&r, "status"), "terminated", "agent terminated");
    pc_http_res_free(&r);
    json_t *j = hb_wait_run(run, NULL, 30000);
    is_str(js(j, "status"), "cancelled", "its running run is cancelled");
    json_decref(j);
    ok(pid > 0 && pc_test_pid_gone(pid), "its process is gone");
    is_int(status_of(key, "GET", NULL, "/api/agents/me%s", ""), 401,
           "its key stops working");
    is_int(status_of(tok, "GET", NULL, "/api/agents/me%s", ""), 401,
           "its run token stops working");
    free(tok);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM agent_api_keys WHERE agent_id='%s' AND revoked_at IS NULL", a);
    is_int(db_count(sql), 0, "its keys are revoked");

    r = req("POST", "{}", "/api/agents/%s/resume", a);
    is_int(r.status, 409, "resume after terminate: 409");
    is_str(pc_res_str(&r, "error"), "Cannot resume terminated agent", "409 text");
    pc_http_res_free(&r);
    r = req("POST", "{}", "/api/agents/%s/pause", a);
    is_int(r.status, 409, "pause after terminate: 409");
    is_str(pc_res_str(&r, "error"), "Cannot pause terminated agent", "409 text");
    pc_http_res_free(&r);
    is_int(status_of(NULL, "POST", "{}", "/api/agents/%s/wakeup", a), 409,
           "wakeup after terminate: 409");
    is_int(status_of(NULL, "PATCH", "{\"status\":\"idle\"}", "/api/agents/%s", a), 409,
           "PATCH cannot bring it back");
    is_str(agent_status(a), "terminated", "still terminated");
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id='%s' AND status IN "
             "('queued','running')",
             a);
    is_int(db_count(sql), 0, "no run for the terminated agent");
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM activity_log WHERE entity_id='%s' AND "
             "action='agent.terminated'",
             a);
    is_int(db_count(sql), 1, "one agent.terminated activity row");
    is_int(status_of(NULL, "POST", "{}", "/api/agents/%s/pause",
                     "00000000-0000-4000-8000-000000000000"),
           404, "unknown agent: 404");
    free(run), free(key), free(a);
}

static void test_instance_settings(const char *cid)
{
    pc_http_res r = req("GET", NULL, "/api/instance/settings/experimental");
    is_int(r.status, 200, "experimental settings: 200");
    ok(json_is_false(json_object_get(r.json, "enableEnvironments")),
       "enableEnvironments defaults to false");
    ok(json_is_true(json_object_get(r.json, "enableStreamlinedLeftNavigation")),
       "enableStreamlinedLeftNavigation defaults to true");
    is_int(json_integer_value(json_object_get(r.json, "issueGraphLivenessAutoRecoveryLookbackHours")),
           24, "lookback hours default 24");
    pc_http_res_free(&r);

    r = req("PATCH", "{\"enableEnvironments\":true,\"enableIsolatedWorkspaces\":true,"
                     "\"issueGraphLivenessAutoRecoveryLookbackHours\":48,\"noSuchFlag\":true}",
            "/api/instance/settings/experimental");
    is_int(r.status, 200, "PATCH: 200");
    ok(json_is_true(json_object_get(r.json, "enableEnvironments")), "enableEnvironments on");
    ok(json_is_true(json_object_get(r.json, "enableIsolatedWorkspaces")),
       "enableIsolatedWorkspaces on");
    ok(json_object_get(r.json, "noSuchFlag") == NULL, "unknown keys are dropped");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/instance/settings/experimental");
    ok(json_is_true(json_object_get(r.json, "enableEnvironments")), "the change persists");
    is_int(json_integer_value(json_object_get(r.json, "issueGraphLivenessAutoRecoveryLookbackHours")),
           48, "lookback hours stored");
    ok(json_is_true(json_object_get(r.json, "enableStreamlinedLeftNavigation")),
       "untouched flags keep their values");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM instance_settings WHERE experimental LIKE "
                    "'%\"enableEnvironments\":true%'"),
           1, "stored in the instance_settings row");

    r = req("PATCH", "{\"enableEnvironments\":\"yes\",\"enablePipelines\":true}",
            "/api/instance/settings/experimental");
    is_int(r.status, 400, "a non-boolean flag: 400");
    is_str(pc_res_str(&r, "error"), "Validation error", "Validation error");
    ok(r.body && strstr(r.body, "enableEnvironments"), "details name the field");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"issueGraphLivenessAutoRecoveryLookbackHours\":0}",
            "/api/instance/settings/experimental");
    is_int(r.status, 400, "lookback hours below 1: 400");
    pc_http_res_free(&r);
    r = req("PATCH", "[true]", "/api/instance/settings/experimental");
    is_int(r.status, 400, "a body that is not an object: 400");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/instance/settings/experimental");
    ok(json_is_false(json_object_get(r.json, "enablePipelines")),
       "a refused PATCH changes nothing");
    pc_http_res_free(&r);

    char *ag = hb_sh_agent(cid, "settings-reader", "true", NULL, NULL);
    char *key = key_for(ag);
    is_int(status_of(key, "GET", NULL, "/api/instance/settings/experimental%s", ""), 403,
           "an agent cannot read instance settings");
    is_int(status_of(key, "PATCH", "{\"enableEnvironments\":false}",
                     "/api/instance/settings/experimental%s", ""),
           403, "an agent cannot change them");
    is_int(cross_site("PATCH", "/api/instance/settings/experimental",
                      "{\"enableEnvironments\":false}"),
           403, "cross-site PATCH: 403");
    r = req("GET", NULL, "/api/instance/settings/experimental");
    ok(json_is_true(json_object_get(r.json, "enableEnvironments")),
       "refused actors changed nothing");
    pc_http_res_free(&r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM activity_log WHERE company_id='%s' AND "
             "action='instance.settings.experimental_updated'",
             cid);
    is_int(db_count(sql), 1, "one activity row per company for the accepted PATCH");
    free(key), free(ag);
}

/* `paperclip agent pause|resume|terminate`; returns the exit code and the
 * output (malloc'd) in *out. */
static int cli_agent(const char *sub, const char *id, char **out)
{
    char *argv[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "agent",
                    (char *)sub, (char *)id, NULL};
    return pc_run_capture(argv, out);
}

static void test_cli(const char *cid)
{
    char *a = hb_sh_agent(cid, "cli-target", "true", NULL, NULL);
    char *out = NULL;
    is_int(cli_agent("pause", a, &out), 0, "paperclip agent pause: exit 0");
    ok(out && strstr(out, "\"paused\""), "prints the paused agent");
    free(out);
    is_str(agent_status(a), "paused", "the agent is paused");
    is_int(cli_agent("resume", a, &out), 0, "paperclip agent resume: exit 0");
    free(out);
    is_str(agent_status(a), "idle", "the agent is idle again");
    is_int(cli_agent("terminate", a, &out), 0, "paperclip agent terminate: exit 0");
    free(out);
    is_str(agent_status(a), "terminated", "the agent is terminated");
    is_int(cli_agent("resume", a, &out), 1, "resuming a terminated agent: exit 1");
    free(out);
    is_str(agent_status(a), "terminated", "and it stays terminated");
    free(a);
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    snprintf(marker, sizeof marker, "%s/lifecycle-marker", d.data_dir);
    char *cid = hb_company("Life Co");
    char *cid2 = hb_company("Other Co");
    test_pause_resume(cid, cid2);
    test_terminate(cid);
    test_instance_settings(cid);
    test_cli(cid);
    free(cid), free(cid2);
    pc_daemon_stop(&d);
    return tap_done();
}
