/*
 * Adapters and failure codes: the http adapter (2xx success, other statuses
 * fail with upstream's text, timeouts), claude_local/codex_local when the CLI
 * is missing on the target, a process agent without a command, and the
 * environment failures (inactive environment, unreachable SSH host) — each
 * with its errorCode on the run and no lease left active.
 */
#include <sys/stat.h>

#include "heartbeat_common.h"

static json_t *wake_and_wait(const char *agent, const char *body)
{
    char *run = hb_wake(agent, body);
    json_t *j = hb_wait_run(run, NULL, 30000);
    free(run);
    return j;
}

int main(void)
{
    /* The http cases below target the daemon itself on loopback. */
    const char *env[] = {"PAPERCLIP_RUN_LOG_MAX_BYTES=1048576", "PAPERCLIP_ALLOW_PRIVATE_FETCH=1",
                         NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Adapt Co");
    pc_http_res r;
    char conf[600];

    /* http: the daemon's own health endpoint answers 200 (GET). */
    snprintf(conf, sizeof conf, "{\"url\":\"%s/api/health\",\"method\":\"GET\"}", d.url);
    char *h1 = hb_agent(cid, "hook-ok", "http", conf, NULL);
    json_t *j = wake_and_wait(h1, NULL);
    is_str(js(j, "status"), "succeeded", "http adapter: 2xx is success");
    is_int(json_integer_value(json_object_get(json_object_get(j, "resultJson"), "httpStatus")),
           200, "resultJson.httpStatus");
    char *log = hb_log(js(j, "id"));
    ok(strstr(log, "status") != NULL, "response body streamed into the log");
    free(log);
    json_decref(j);

    /* A POST to a route that does not exist: 404 fails the run. */
    snprintf(conf, sizeof conf,
             "{\"url\":\"%s/api/no-such-hook\",\"headers\":{\"X-Test\":\"1\"},"
             "\"payloadTemplate\":{\"hello\":\"world\"}}",
             d.url);
    char *h2 = hb_agent(cid, "hook-404", "http", conf, NULL);
    j = wake_and_wait(h2, NULL);
    is_str(js(j, "status"), "failed", "http adapter: non-2xx fails");
    is_str(js(j, "error"), "HTTP invoke failed with status 404", "upstream's error text");
    json_decref(j);

    /* Nothing listens on port 1. */
    char *h3 = hb_agent(cid, "hook-down", "http", "{\"url\":\"http://127.0.0.1:1/x\"}", NULL);
    j = wake_and_wait(h3, NULL);
    is_str(js(j, "status"), "failed", "http adapter: connection refused fails");
    is_str(js(j, "errorCode"), "adapter_failed", "errorCode adapter_failed");
    json_decref(j);

    char *h4 = hb_agent(cid, "hook-bad", "http", "{\"url\":\"file:///etc/passwd\"}", NULL);
    j = wake_and_wait(h4, NULL);
    is_str(js(j, "status"), "failed", "http adapter refuses non-http URLs");
    json_decref(j);

    /* claude_local / codex_local with a CLI that is not on the target. */
    char *c1 = hb_agent(cid, "claude", "claude_local",
                        "{\"command\":\"claude-not-installed-here\"}", NULL);
    j = wake_and_wait(c1, NULL);
    is_str(js(j, "status"), "failed", "claude_local without the CLI fails");
    is_str(js(j, "error"), "Command not found in PATH: \"claude-not-installed-here\"",
           "with a clear error");
    json_decref(j);
    char *c2 = hb_agent(cid, "codex", "codex_local", "{\"env\":{\"PATH\":\"/nonexistent\"}}",
                        NULL);
    j = wake_and_wait(c2, NULL);
    is_str(js(j, "status"), "failed", "codex_local without the CLI fails");
    is_str(js(j, "error"), "Command not found in PATH: \"codex\"", "names the command");
    json_decref(j);

    /* claude_local preset against a fake `claude` on PATH: it gets the prompt
     * on stdin and the preset's flags. */
    char *bin = pc_test_tmpdir("hbbin");
    char path[700];
    snprintf(path, sizeof path, "%s/claude", bin);
    FILE *f = fopen(path, "w");
    if (f) {
        /* Prints its arguments and prompt, then stream-json events like
         * claude's, with a new session id each run. */
        fputs("#!/bin/sh\necho \"args: $*\"\necho \"prompt: $(cat)\"\nn=$(date +%s%N)\n"
              "echo '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"sess-'$n'\"}'\n"
              "echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,"
              "\"result\":\"all done\",\"session_id\":\"sess-'$n'\",\"total_cost_usd\":0.25,"
              "\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":40,"
              "\"output_tokens\":7}}'\n",
              f);
        fclose(f);
        chmod(path, 0755);
    }
    snprintf(conf, sizeof conf, "{\"env\":{\"PATH\":\"%s:/usr/bin:/bin\"}}", bin);
    char *c3 = hb_agent(cid, "claude-fake", "claude_local", conf, NULL);
    j = wake_and_wait(c3, NULL);
    is_str(js(j, "status"), "succeeded", "claude_local runs the CLI found on the target");
    log = hb_log(js(j, "id"));
    ok(strstr(log, "args: --print - --output-format stream-json --verbose") != NULL,
       "with the preset's arguments");
    ok(strstr(log, "prompt: You are agent claude-fake") != NULL, "and the prompt on stdin");
    free(log);
    char first_session[200];
    snprintf(first_session, sizeof first_session, "%s", js(j, "sessionIdAfter"));
    ok(!strncmp(first_session, "sess-", 5), "sessionIdAfter from the stream (%s)", first_session);
    ok(json_is_null(json_object_get(j, "sessionIdBefore")), "first run starts a new session");
    json_t *u = json_object_get(j, "usageJson");
    ok(json_integer_value(json_object_get(u, "inputTokens")) == 100 &&
           json_integer_value(json_object_get(u, "cachedInputTokens")) == 40 &&
           json_integer_value(json_object_get(u, "outputTokens")) == 7,
       "usageJson from the result event");
    json_t *res = json_object_get(j, "resultJson");
    ok(json_real_value(json_object_get(res, "costUsd")) == 0.25, "resultJson.costUsd");
    is_str(js(res, "summary"), "all done", "resultJson.summary");
    json_decref(j);
    j = wake_and_wait(c3, NULL);
    is_str(js(j, "sessionIdBefore"), first_session, "next run resumes the session");
    log = hb_log(js(j, "id"));
    char want[300];
    snprintf(want, sizeof want, "args: --resume %s --print", first_session);
    ok(strstr(log, want) != NULL, "with --resume <session>");
    free(log);
    json_decref(j);
    j = wake_and_wait(c3, "{\"forceFreshSession\":true}");
    ok(json_is_null(json_object_get(j, "sessionIdBefore")), "forceFreshSession starts anew");
    log = hb_log(js(j, "id"));
    ok(strstr(log, "--resume") == NULL, "without --resume");
    free(log);
    json_decref(j);

    /* process without a command. */
    char *p1 = hb_agent(cid, "empty", "process", "{}", NULL);
    j = wake_and_wait(p1, NULL);
    is_str(js(j, "errorCode"), "adapter_config_invalid", "process without command");
    json_decref(j);
    /* process whose command cannot be executed. */
    char *p2 = hb_agent(cid, "missing", "process", "{\"command\":\"/nonexistent/bin\"}", NULL);
    j = wake_and_wait(p2, NULL);
    is_str(js(j, "status"), "failed", "exec failure fails the run");
    is_str(js(j, "errorCode"), "execution_failed", "errorCode execution_failed");
    json_decref(j);
    /* non-zero exit. */
    char *p3 = hb_sh_agent(cid, "exit3", "exit 3", NULL, NULL);
    j = wake_and_wait(p3, NULL);
    is_str(js(j, "error"), "Process exited with code 3", "exit code reported");
    is_int(json_integer_value(json_object_get(j, "exitCode")), 3, "exitCode 3");
    json_decref(j);

    /* A flood of output: the log keeps the cap, then a marker; the run
     * still ends normally. */
    char *flood = hb_sh_agent(cid, "flood", "head -c 20000000 /dev/zero | tr '\\000' x; echo; echo tail-line",
                              NULL, NULL);
    j = wake_and_wait(flood, NULL);
    is_str(js(j, "status"), "succeeded", "flooding run succeeded");
    ok(json_is_true(json_object_get(json_object_get(j, "resultJson"), "logTruncated")),
       "resultJson.logTruncated");
    long long bytes = json_integer_value(json_object_get(j, "logBytes"));
    ok(bytes > 1000000 && bytes < 1400000, "log file bounded by the cap (%lld bytes)", bytes);
    ok(strstr(js(j, "stdoutExcerpt"), "tail-line") != NULL, "excerpt still shows the end");
    r = req("GET", NULL, "/api/heartbeat-runs/%s/log?offset=%lld", js(j, "id"), bytes - 400);
    ok(strstr(pc_res_str(&r, "content"), "run log truncated") != NULL, "truncation marker at the end");
    ok(json_is_true(json_object_get(r.json, "endOfLog")), "paged read reaches the end");
    pc_http_res_free(&r);
    json_decref(j);
    free(flood);

    /* Environment selection failures, through an issue's environment. */
    r = req("POST",
                        "{\"name\":\"far\",\"driver\":\"ssh\",\"config\":{\"host\":\"127.0.0.1\","
                        "\"port\":1,\"username\":\"nobody\",\"remoteWorkspacePath\":\"/tmp/pc\","
                        "\"strictHostKeyChecking\":false}}",
                        "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "ssh environment created");
    char env_id[64];
    snprintf(env_id, sizeof env_id, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    char *worker = hb_sh_agent(cid, "remote", "echo hi", NULL, NULL);
    char body[400];
    snprintf(body, sizeof body,
             "{\"title\":\"remote work\",\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             env_id);
    r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "issue with an environment created");
    char issue[64];
    snprintf(issue, sizeof issue, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue);
    j = wake_and_wait(worker, body);
    is_str(js(j, "status"), "failed", "unreachable SSH host fails the run");
    const char *code = js(j, "errorCode");
    ok(!strcmp(code, "lease_acquire_failed") || !strcmp(code, "workspace_realization_failed") ||
           !strcmp(code, "execution_failed"),
       "with an environment error code (%s)", code);
    is_str(js(j, "environmentId"), env_id, "the issue's environment was used");
    json_decref(j);
    r = req("PATCH", "{\"status\":\"archived\"}", "/api/environments/%s", env_id);
    pc_http_res_free(&r);
    j = wake_and_wait(worker, body);
    is_str(js(j, "errorCode"), "environment_inactive", "archived environment: environment_inactive");
    json_decref(j);
    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    snprintf(body, sizeof body,
             "{\"title\":\"x\",\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}", env_id);
    r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 422, "selecting an archived environment: 422");
    pc_http_res_free(&r);

    pc_test_rmrf(bin);
    free(bin), free(cid), free(h1), free(h2), free(h3), free(h4), free(c1), free(c2), free(c3),
        free(p1), free(p2), free(p3), free(worker);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
