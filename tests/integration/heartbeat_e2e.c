/*
 * End to end in the local environment: an issue assigned to a process agent
 * wakes it; the agent (tests/agents/checkout_agent.sh, sh + curl) calls back
 * with PAPERCLIP_API_URL and its run JWT to check the issue out, comment and
 * mark it done. Then the run row, the log (redacted), the events, the
 * released lease, the agent's exact environment (no daemon canary) and the
 * JWT's rules are checked.
 */
#include "heartbeat_common.h"

#define CANARY "canary-7f3a9d"

int main(void)
{
    const char *env[] = {"PC_TEST_CANARY=" CANARY, "AWS_SECRET_ACCESS_KEY=" CANARY, NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Heart Co");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/agents/checkout_agent.sh", pc_test_root());
    char aconf[1400];
    snprintf(aconf, sizeof aconf,
             "{\"command\":\"sh\",\"args\":[\"%s\"],\"env\":{\"AGENT_SECRET_TOKEN\":"
             "{\"type\":\"secret\",\"value\":\"s3cr3t-value-42\"},\"PLAIN_VAR\":\"plain-1\","
             "\"PAPERCLIP_RUN_ID\":\"spoofed\"}}",
             script);
    char *agent = hb_agent(cid, "Worker", "process", aconf, NULL);
    char *issue = hb_issue(cid, "Write the report", agent, NULL);

    /* The assignment wake produced exactly one run for the issue. */
    json_t *run = NULL;
    char run_id[64] = "";
    for (int i = 0; i < 250 && !run_id[0]; i++) {
        pc_http_res r = req("GET", NULL, "/api/issues/%s/runs", issue);
        if (json_array_size(r.json) == 1)
            snprintf(run_id, sizeof run_id, "%s", js(json_array_get(r.json, 0), "id"));
        pc_http_res_free(&r);
        if (!run_id[0])
            pc_test_sleep_ms(20);
    }
    ok(run_id[0] != '\0', "assignment queued a run for the issue");
    run = hb_wait_run(run_id, NULL, 20000);
    is_str(js(run, "status"), "succeeded", "run succeeded");
    is_str(js(run, "invocationSource"), "assignment", "invocationSource assignment");
    is_int(json_integer_value(json_object_get(run, "exitCode")), 0, "exit code 0");
    ok(json_integer_value(json_object_get(run, "logBytes")) > 0, "logBytes recorded");
    is_int(strlen(js(run, "logSha256")), 64, "logSha256 recorded");
    is_str(js(run, "logStore"), "local_file", "logStore local_file");
    json_t *ctx = json_object_get(run, "contextSnapshot");
    is_str(js(ctx, "wakeReason"), "issue_assigned", "context wakeReason");
    is_str(js(ctx, "issueId"), issue, "context issueId");
    ok(strstr(js(run, "stdoutExcerpt"), "finished") != NULL, "stdout excerpt on the row");
    ok(strstr(js(run, "stderrExcerpt"), "to stderr") != NULL, "stderr excerpt on the row");

    pc_http_res r = req("GET", NULL, "/api/issues/%s", issue);
    is_str(pc_res_str(&r, "status"), "done", "the agent marked the issue done");
    is_str(pc_res_str(&r, "assigneeAgentId"), agent, "issue still assigned to the agent");
    ok(json_is_string(json_object_get(r.json, "completedAt")), "completedAt set");
    ok(json_is_null(json_object_get(r.json, "executionRunId")), "execution lock cleared");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/issues/%s/comments", issue);
    is_int(json_array_size(r.json), 1, "one comment");
    json_t *cm = json_array_get(r.json, 0);
    is_str(js(cm, "authorAgentId"), agent, "comment authored by the agent");
    is_str(js(cm, "runId"), run_id, "comment linked to the run");
    ok(strstr(js(cm, "body"), run_id) != NULL, "comment body names the run");
    pc_http_res_free(&r);

    /* Log: ndjson lines, secrets redacted. */
    char *log = hb_log(run_id);
    ok(strstr(log, "\"stream\":\"stdout\"") && strstr(log, "\"seq\":1") &&
           strstr(log, "\"ts\":\""),
       "log lines carry ts, stream, chunk, seq");
    ok(strstr(log, "finished") != NULL, "log has the agent's output");
    ok(strstr(log, "token ***REDACTED***") != NULL, "run token redacted in the log");
    ok(strstr(log, "secret ***REDACTED***") != NULL, "secret env value redacted in the log");
    ok(strstr(log, "s3cr3t-value-42") == NULL, "secret value absent from the log");
    ok(strstr(log, "eyJhbGciOiJIUzI1Ni") == NULL, "no JWT in the log");
    free(log);
    char path[1400];
    snprintf(path, sizeof path, "%s/run-logs/%s/%s/%s.ndjson", d.data_dir, cid, agent, run_id);
    ok(access(path, R_OK) == 0, "log file under run-logs/<company>/<agent>/<run>.ndjson");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/heartbeat-runs/%s/log?follow=1", run_id);
    ok(strstr(r.body ? r.body : "", "event: end") != NULL &&
           strstr(r.body, "data: {\"ts\"") != NULL,
       "follow on a finished run streams its lines then ends");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/heartbeat-runs/%s/events", run_id);
    char *ev = json_dumps(r.json, 0);
    ok(ev && strstr(ev, "run started") && strstr(ev, "adapter.invoke") && strstr(ev, "run finished"),
       "lifecycle and adapter events recorded");
    free(ev);
    pc_http_res_free(&r);

    /* The lease was released. */
    r = req("GET", NULL, "/api/environment-leases/%s", js(run, "leaseId"));
    is_str(pc_res_str(&r, "status"), "released", "lease released");
    is_str(pc_res_str(&r, "heartbeatRunId"), run_id, "lease belongs to the run");
    pc_http_res_free(&r);

    /* What reached the agent: exactly the runtime's variables, no canary. */
    snprintf(path, sizeof path, "%s/workspaces/%s/env-%s.txt", d.data_dir, agent, run_id);
    char *envtxt = pc_test_read_file(path, 1 << 20);
    char want[300];
    snprintf(want, sizeof want, "PAPERCLIP_AGENT_ID=%s\n", agent);
    ok(strstr(envtxt, want) != NULL, "PAPERCLIP_AGENT_ID");
    snprintf(want, sizeof want, "PAPERCLIP_COMPANY_ID=%s\n", cid);
    ok(strstr(envtxt, want) != NULL, "PAPERCLIP_COMPANY_ID");
    snprintf(want, sizeof want, "PAPERCLIP_RUN_ID=%s\n", run_id);
    ok(strstr(envtxt, want) != NULL, "PAPERCLIP_RUN_ID (the runtime's wins over adapter env)");
    snprintf(want, sizeof want, "PAPERCLIP_TASK_ID=%s\n", issue);
    ok(strstr(envtxt, want) != NULL, "PAPERCLIP_TASK_ID");
    ok(strstr(envtxt, "PAPERCLIP_WAKE_REASON=issue_assigned\n") != NULL, "PAPERCLIP_WAKE_REASON");
    snprintf(want, sizeof want, "PAPERCLIP_API_URL=%s\n", d.agent_url);
    ok(strstr(envtxt, want) != NULL, "PAPERCLIP_API_URL is the agent ingress's loopback URL");
    ok(strstr(envtxt, "PAPERCLIP_API_KEY=eyJ") != NULL, "PAPERCLIP_API_KEY is a JWT");
    ok(strstr(envtxt, "PAPERCLIP_WORKSPACE_CWD=/") != NULL, "PAPERCLIP_WORKSPACE_CWD");
    ok(strstr(envtxt, "PAPERCLIP_RUNTIME_API_CANDIDATES_JSON=[") != NULL,
       "PAPERCLIP_RUNTIME_API_CANDIDATES_JSON");
    ok(strstr(envtxt, "PLAIN_VAR=plain-1\n") != NULL, "adapterConfig.env passed");
    ok(strstr(envtxt, "PATH=") != NULL, "default PATH");
    ok(strstr(envtxt, CANARY) == NULL, "no daemon environment variable reached the agent");
    ok(strstr(envtxt, "PC_TEST_CANARY") == NULL, "canary name absent too");

    /* The run JWT. */
    char jwt[2048] = "";
    const char *k = strstr(envtxt, "PAPERCLIP_API_KEY=");
    if (k)
        sscanf(k + strlen("PAPERCLIP_API_KEY="), "%2047[^\n]", jwt);
    /* The run has ended, so its token no longer authenticates (what a live
     * token may do is tested in authz.c). */
    r = areq(jwt, "GET", NULL, "/api/agents/me");
    is_int(r.status, 401, "the finished run's JWT is refused");
    is_str(pc_res_str(&r, "error"), "Run token is no longer valid", "refusal names the run token");
    pc_http_res_free(&r);
    char auth[2200], rid_hdr[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jwt);
    snprintf(rid_hdr, sizeof rid_hdr, "X-Paperclip-Run-Id: %s", agent);
    const char *hdrs[] = {auth, rid_hdr, NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/api/agents/me", d.url);
    r = pc_http_ex(url, "GET", NULL, 0, hdrs);
    is_int(r.status, 422, "X-Paperclip-Run-Id not matching the token: 422");
    pc_http_res_free(&r);
    char bad[2048];
    snprintf(bad, sizeof bad, "%s", jwt);
    size_t bl = strlen(bad);
    if (bl > 5)
        bad[bl - 3] = bad[bl - 3] == 'A' ? 'B' : 'A';
    r = areq(bad, "GET", NULL, "/api/agents/me");
    is_int(r.status, 401, "tampered JWT: 401");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/agents/me");
    is_int(r.status, 401, "/api/agents/me needs an agent");
    pc_http_res_free(&r);
    free(envtxt);

    /* On-demand wakeup: 202 with the queued run; idempotency key honoured. */
    r = req("POST", "{\"reason\":\"ping\",\"idempotencyKey\":\"k-1\"}", "/api/agents/%s/wakeup",
            agent);
    is_int(r.status, 202, "wakeup answers 202");
    char wake_run[64];
    snprintf(wake_run, sizeof wake_run, "%s", pc_res_str(&r, "id"));
    ok(!strcmp(pc_res_str(&r, "status"), "queued") || !strcmp(pc_res_str(&r, "status"), "running"),
       "with the queued run row");
    is_str(pc_res_str(&r, "invocationSource"), "on_demand", "on_demand source");
    pc_http_res_free(&r);
    r = req("POST", "{\"reason\":\"ping\",\"idempotencyKey\":\"k-1\"}", "/api/agents/%s/wakeup",
            agent);
    is_str(pc_res_str(&r, "id"), wake_run, "same idempotency key, same run");
    pc_http_res_free(&r);
    json_t *w = hb_wait_run(wake_run, NULL, 20000);
    is_str(js(w, "status"), "succeeded", "on-demand run succeeded");
    json_decref(w);
    r = req("POST", NULL, "/api/agents/%s/heartbeat/invoke", agent);
    is_int(r.status, 202, "heartbeat/invoke answers 202");
    w = hb_wait_run(pc_res_str(&r, "id"), NULL, 20000);
    is_str(js(w, "status"), "succeeded", "invoked run succeeded");
    json_decref(w);
    pc_http_res_free(&r);
    r = req("POST", "{\"source\":\"bogus\"}", "/api/agents/%s/wakeup", agent);
    is_int(r.status, 400, "bad wakeup body: 400");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/companies/%s/heartbeat-runs", cid);
    is_int(json_array_size(r.json), 3, "company run list has the three runs");
    pc_http_res_free(&r);

    /* The CLI reads the same API. */
    char *out = NULL;
    char *argv1[] = {(char *)pc_test_bin(), "--api-url", d.url, "run", "get", run_id, NULL};
    is_int(pc_run_capture(argv1, &out), 0, "paperclip run get");
    ok(out && strstr(out, "succeeded"), "run get prints the status");
    free(out);
    char *argv2[] = {(char *)pc_test_bin(), "--api-url", d.url, "issue", "list", cid, NULL};
    is_int(pc_run_capture(argv2, &out), 0, "paperclip issue list");
    ok(out && strstr(out, "HEA-1"), "issue list shows the identifier");
    free(out);
    char *argv3[] = {(char *)pc_test_bin(), "--api-url", d.url, "run", "log", run_id, NULL};
    is_int(pc_run_capture(argv3, &out), 0, "paperclip run log");
    ok(out && strstr(out, "finished"), "run log prints the output");
    free(out);

    char *argv5[] = {(char *)pc_test_bin(), "--api-url", d.url, "run", "log", run_id, "--follow",
                     NULL};
    is_int(pc_run_capture(argv5, &out), 0, "paperclip run log --follow");
    ok(out && strstr(out, "finished"), "follow prints the output and returns when the run ended");
    free(out);
    char *argv4[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "agent", "wake", agent,
                     "--reason", "from-cli", NULL};
    is_int(pc_run_capture(argv4, &out), 0, "paperclip agent wake");
    json_error_t je;
    json_t *woke = out ? json_loads(out, 0, &je) : NULL;
    ok(woke && json_is_string(json_object_get(woke, "id")), "agent wake prints the queued run");
    json_t *wctx = json_object_get(woke, "contextSnapshot");
    is_str(js(wctx, "wakeReason"), "from-cli", "with the reason");
    if (woke) {
        w = hb_wait_run(js(woke, "id"), NULL, 20000);
        is_str(js(w, "status"), "succeeded", "CLI-woken run succeeded");
        json_decref(w);
    }
    json_decref(woke);
    free(out);

    json_decref(run);
    free(cid), free(agent), free(issue);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
