/*
 * Honest capabilities and the selection matrix against a real daemon:
 * capabilities list only the adapters that execute here and mark the fake
 * provider (which runs commands on the host) as a test provider; every
 * selection write (agent defaultEnvironmentId on create and patch, issue
 * executionWorkspaceSettings.environmentId, also when the assignee changes)
 * is checked against adapter × driver × provider with upstream's texts; and
 * `paperclip env create` warns about a provider that isolates nothing.
 */
#include <signal.h>

#include "env_common.h"

static char *cid;

static char *env_of(const char *body)
{
    pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
    if (r.status != 201)
        tap_diag("env create: %ld %s", r.status, r.body);
    char *id = res_dup(&r, "id");
    pc_http_res_free(&r);
    return id;
}

/* POSTs an agent with the adapter and default environment; returns the
 * status, the error text into err (when given) and the id into *id. */
static long agent_with(const char *adapter, const char *env, char **id, char *err, size_t errlen)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"%s agent\",\"adapterType\":\"%s\",\"adapterConfig\":{},"
             "\"defaultEnvironmentId\":\"%s\"}",
             adapter, adapter, env);
    pc_http_res r = req("POST", body, "/api/companies/%s/agents", cid);
    long st = r.status;
    if (id)
        *id = res_dup(&r, "id");
    if (err)
        snprintf(err, errlen, "%s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    return st;
}

static void test_capabilities(void)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/environments/capabilities", cid);
    is_int(r.status, 200, "capabilities: 200");
    json_t *fp = json_object_get(json_object_get(r.json, "sandboxProviders"), "fake-plugin");
    ok(json_is_true(json_object_get(fp, "testOnly")), "capabilities: fake-plugin is testOnly");
    is_str(json_string_value(json_object_get(fp, "isolation")), "none",
           "capabilities: fake-plugin isolation none");
    bool listed_cursor = false, http_fake = true, process_fake = false;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(r.json, "adapters"), i, a) {
        const char *t = json_string_value(json_object_get(a, "adapterType"));
        const char *fake =
            json_string_value(json_object_get(json_object_get(a, "sandboxProviders"), "fake-plugin"));
        if (!strcmp(t, "cursor") || !strcmp(t, "gemini_local") || !strcmp(t, "opencode_local") ||
            !strcmp(t, "pi_local"))
            listed_cursor = true;
        if (!strcmp(t, "http"))
            http_fake = fake && !strcmp(fake, "supported");
        if (!strcmp(t, "process"))
            process_fake = fake && !strcmp(fake, "supported");
    }
    ok(!listed_cursor, "capabilities: adapters that do not execute here are not listed");
    ok(process_fake && !http_fake, "capabilities: providers for lease adapters, not for http");
    pc_http_res_free(&r);
}

static void test_agents(const char *ssh, const char *sandbox, const char *local)
{
    char err[512];
    is_int(agent_with("http", ssh, NULL, err, sizeof err), 422, "http agent on ssh: 422");
    is_str(err, "Environment driver \"ssh\" is not allowed here. Allowed drivers: local",
           "http agent on ssh: upstream's text");
    is_int(agent_with("http", sandbox, NULL, err, sizeof err), 422, "http agent on sandbox: 422");
    is_int(agent_with("cursor", sandbox, NULL, err, sizeof err), 422,
           "an adapter that does not execute here, on sandbox: 422");
    is_int(agent_with("http", local, NULL, NULL, 0), 201, "http agent on local: 201");
    char *proc = NULL;
    is_int(agent_with("process", ssh, &proc, NULL, 0), 201, "process agent on ssh: 201");
    is_int(agent_with("claude_local", sandbox, NULL, NULL, 0), 201,
           "claude_local agent on the fake-plugin sandbox: 201");

    /* Changing the adapter is checked against the kept default. */
    pc_http_res r = req("PATCH", "{\"adapterType\":\"http\"}", "/api/agents/%s", proc);
    is_int(r.status, 422, "patch adapter to http while the default is ssh: 422");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"adapterType\":\"http\",\"defaultEnvironmentId\":null}", "/api/agents/%s",
            proc);
    is_int(r.status, 200, "patch adapter to http and clear the default: 200");
    pc_http_res_free(&r);
    char body[256];
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", ssh);
    r = req("PATCH", body, "/api/agents/%s", proc);
    is_int(r.status, 422, "patch: http agent selecting ssh: 422");
    pc_http_res_free(&r);

    /* A provider no running plugin offers. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE environments SET config='{\"provider\":\"gone\"}' WHERE id='%s'", sandbox);
    db_exec(sql);
    is_int(agent_with("process", sandbox, NULL, err, sizeof err), 422,
           "process agent on a provider nobody offers: 422");
    is_str(err,
           "Environment sandbox provider \"gone\" is not allowed here. Allowed providers: fake-plugin",
           "unknown provider: upstream's text");
    snprintf(sql, sizeof sql,
             "UPDATE environments SET config='{\"provider\":\"fake-plugin\"}' WHERE id='%s'",
             sandbox);
    db_exec(sql);
    free(proc);
}

static void test_issues(const char *ssh)
{
    char *http_agent = NULL, *proc = NULL;
    pc_http_res r = req("POST", "{\"name\":\"Caller\",\"adapterType\":\"http\",\"adapterConfig\":{}}",
                        "/api/companies/%s/agents", cid);
    http_agent = res_dup(&r, "id");
    pc_http_res_free(&r);
    r = req("POST", "{\"name\":\"Worker\",\"adapterType\":\"process\",\"adapterConfig\":{}}",
            "/api/companies/%s/agents", cid);
    proc = res_dup(&r, "id");
    pc_http_res_free(&r);

    char body[512];
    snprintf(body, sizeof body,
             "{\"title\":\"T\",\"assigneeAgentId\":\"%s\",\"status\":\"backlog\","
             "\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             http_agent, ssh);
    r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 422, "issue for an http agent selecting ssh: 422");
    is_str(pc_res_str(&r, "error"),
           "Environment driver \"ssh\" is not allowed here. Allowed drivers: local",
           "issue selection: upstream's text");
    pc_http_res_free(&r);

    snprintf(body, sizeof body,
             "{\"title\":\"T\",\"assigneeAgentId\":\"%s\",\"status\":\"backlog\","
             "\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             proc, ssh);
    r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "issue for a process agent selecting ssh: 201");
    char *issue = res_dup(&r, "id");
    pc_http_res_free(&r);

    snprintf(body, sizeof body, "{\"assigneeAgentId\":\"%s\"}", http_agent);
    r = req("PATCH", body, "/api/issues/%s", issue);
    is_int(r.status, 422, "reassigning to an http agent keeps the ssh selection: 422");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"priority\":\"high\"}", "/api/issues/%s", issue);
    is_int(r.status, 200, "an unrelated patch is not re-checked: 200");
    pc_http_res_free(&r);
    free(http_agent), free(proc), free(issue);
}

static void test_cli_warning(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' --api-url '%s' env create %s --name 'Fake CLI' --driver sandbox "
             "--provider fake-plugin 2>&1",
             pc_test_bin(), d.url, cid);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    int rc = pc_run_capture(argv, &out);
    ok(rc == 0 && out && strstr(out, "warning:") && strstr(out, "isolates nothing"),
       "cli: env create on the fake provider warns that it isolates nothing");
    if (!out || !strstr(out, "warning:"))
        tap_diag("rc %d: %s", rc, out ? out : "");
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd,
             "'%s' --api-url '%s' env create %s --name 'Plain SSH' --driver ssh --host h.test "
             "--user u --remote-path /w 2>&1",
             pc_test_bin(), d.url, cid);
    rc = pc_run_capture(argv, &out);
    ok(rc == 0 && out && !strstr(out, "warning:"), "cli: no warning for other environments");
    free(out);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("Selection Co");
    char body[1200];
    snprintf(body, sizeof body, "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res r = pc_http(&d, "POST", "/api/plugins/install", body);
    ok(r.status == 200 || r.status == 201, "fake plugin installed (%ld)", r.status);
    pc_http_res_free(&r);

    char *ssh = env_of("{\"name\":\"SSH\",\"driver\":\"ssh\",\"config\":{\"host\":\"h.test\","
                       "\"username\":\"u\",\"remoteWorkspacePath\":\"/w\"}}");
    char *sandbox = env_of("{\"name\":\"Fake sandbox\",\"driver\":\"sandbox\","
                           "\"config\":{\"provider\":\"fake-plugin\"}}");
    r = req("GET", NULL, "/api/companies/%s/environments?driver=local", cid);
    char *local = strdup(json_string_value(json_object_get(json_array_get(r.json, 0), "id")) ?: "");
    pc_http_res_free(&r);

    test_capabilities();
    test_agents(ssh, sandbox, local);
    test_issues(ssh);
    test_cli_warning();
    pc_daemon_stop(&d);
    free(ssh), free(sandbox), free(local), free(cid);
    return tap_done();
}
