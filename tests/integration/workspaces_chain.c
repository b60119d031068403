/*
 * The run's environment selection chain, in order: execution workspace
 * config.environmentId → issue executionWorkspaceSettings.environmentId →
 * project executionWorkspacePolicy.environmentId → agent
 * defaultEnvironmentId → the company's Local environment.
 *
 * Four SSH environments (never contacted) are selected one per link, then
 * archived: a run fails on the first link's environment with upstream's
 * environment_inactive and its name, so removing the links one by one shows
 * which one the run took. With every link removed the run succeeds on the
 * Local environment. Deleting an environment clears the project policy's
 * and the execution workspace's selection, and the delete-check counts them
 * beforehand.
 */
#include <sys/stat.h>

#include "heartbeat_common.h"

static char *cid;

static char *post_id(const char *path, const char *body)
{
    pc_http_res r = req("POST", body, "%s", path);
    if (r.status != 201)
        tap_diag("POST %s: %ld %s", path, r.status, r.body);
    char *id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    return id;
}

static char *ssh_env(const char *name)
{
    char body[400], path[200];
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"driver\":\"ssh\",\"config\":{\"host\":\"127.0.0.1\","
             "\"username\":\"u\",\"remoteWorkspacePath\":\"/w\"}}",
             name);
    snprintf(path, sizeof path, "/api/companies/%s/environments", cid);
    return post_id(path, body);
}

static long patch(const char *body, const char *fmt, const char *id)
{
    char path[200];
    snprintf(path, sizeof path, fmt, id);
    pc_http_res r = req("PATCH", body, "%s", path);
    long st = r.status;
    if (st != 200)
        tap_diag("PATCH %s: %ld %s", path, r.status, r.body);
    pc_http_res_free(&r);
    return st;
}

/* Wakes the agent for the issue; returns the finished run (new ref). */
static json_t *run_issue(const char *agent, const char *issue)
{
    char body[200];
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue);
    char *run = hb_wake(agent, body);
    json_t *r = run[0] ? hb_wait_run(run, NULL, 60000) : NULL;
    free(run);
    return r;
}

static void expect_env(const char *agent, const char *issue, const char *env_id,
                       const char *name, const char *what)
{
    json_t *r = run_issue(agent, issue);
    char want[200];
    snprintf(want, sizeof want, "Environment \"%s\" is not active", name);
    ok(r && !strcmp(js(r, "status"), "failed") &&
           !strcmp(js(r, "errorCode"), "environment_inactive") && strstr(js(r, "error"), want),
       "%s: the run took %s", what, name);
    if (r && strcmp(js(r, "errorCode"), "environment_inactive") != 0)
        tap_diag("run: %s / %s", js(r, "errorCode"), js(r, "error"));
    (void)env_id;
    json_decref(r);
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = hb_company("Chain Co");
    char *tmp = pc_test_tmpdir("ws-chain");
    char *agent = hb_sh_agent(cid, "Runner", "true", NULL, NULL);
    char *e_ws = ssh_env("Workspace env"), *e_issue = ssh_env("Issue env"),
         *e_proj = ssh_env("Project env"), *e_agent = ssh_env("Agent env");

    char path[300], body[1200];
    snprintf(path, sizeof path, "/api/companies/%s/projects", cid);
    char *project = post_id(path, "{\"name\":\"Chain\",\"executionWorkspacePolicy\":{\"enabled\":"
                                  "true,\"defaultMode\":\"isolated_workspace\"}}");
    snprintf(path, sizeof path, "/api/projects/%s/workspaces", project);
    snprintf(body, sizeof body, "{\"cwd\":\"%s\"}", tmp);
    free(post_id(path, body));
    snprintf(path, sizeof path, "/api/companies/%s/issues", cid);
    snprintf(body, sizeof body, "{\"title\":\"Chain\",\"projectId\":\"%s\"}", project);
    char *issue = post_id(path, body);

    /* A first run on Local creates the issue's execution workspace. */
    json_t *r = run_issue(agent, issue);
    is_str(js(r, "status"), "succeeded", "no selection: the run succeeds on Local");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM environments WHERE id='%s' AND driver='local'",
             js(r, "environmentId"));
    ok(db_count(sql) == 1, "no selection: the run's environment is the company's Local one");
    json_decref(r);
    pc_http_res lr = req("GET", NULL, "/api/companies/%s/execution-workspaces", cid);
    char ew[64];
    snprintf(ew, sizeof ew, "%s", js(json_array_get(lr.json, 0), "id"));
    ok(ew[0] != '\0', "the issue has an execution workspace");
    pc_http_res_free(&lr);

    /* Every link selected while active, then archived. */
    snprintf(body, sizeof body, "{\"config\":{\"environmentId\":\"%s\"}}", e_ws);
    is_int(patch(body, "/api/execution-workspaces/%s", ew), 200, "workspace selects its env");
    snprintf(body, sizeof body, "{\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             e_issue);
    is_int(patch(body, "/api/issues/%s", issue), 200, "issue selects its env");
    snprintf(body, sizeof body,
             "{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultMode\":"
             "\"isolated_workspace\",\"environmentId\":\"%s\"}}",
             e_proj);
    is_int(patch(body, "/api/projects/%s", project), 200, "project policy selects its env");
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", e_agent);
    is_int(patch(body, "/api/agents/%s", agent), 200, "agent default selects its env");
    const char *all[] = {e_ws, e_issue, e_proj, e_agent, NULL};
    for (int i = 0; all[i]; i++)
        patch("{\"status\":\"archived\"}", "/api/environments/%s", all[i]);

    expect_env(agent, issue, e_ws, "Workspace env", "all four links");
    is_int(patch("{\"config\":null}", "/api/execution-workspaces/%s", ew), 200,
           "workspace selection removed");
    expect_env(agent, issue, e_issue, "Issue env", "issue, project, agent");
    is_int(patch("{\"executionWorkspaceSettings\":null}", "/api/issues/%s", issue), 200,
           "issue selection removed");
    expect_env(agent, issue, e_proj, "Project env", "project, agent");
    is_int(patch("{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultMode\":"
                 "\"isolated_workspace\"}}",
                 "/api/projects/%s", project),
           200, "project selection removed");
    expect_env(agent, issue, e_agent, "Agent env", "agent only");
    is_int(patch("{\"defaultEnvironmentId\":null}", "/api/agents/%s", agent), 200,
           "agent default removed");
    r = run_issue(agent, issue);
    is_str(js(r, "status"), "succeeded", "no link left: Local again");
    json_decref(r);

    /* Deleting an environment clears project and workspace selections. */
    char *e_del = ssh_env("Doomed env");
    snprintf(body, sizeof body, "{\"config\":{\"environmentId\":\"%s\"}}", e_del);
    patch(body, "/api/execution-workspaces/%s", ew);
    snprintf(body, sizeof body,
             "{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultMode\":"
             "\"isolated_workspace\",\"environmentId\":\"%s\"}}",
             e_del);
    patch(body, "/api/projects/%s", project);
    pc_http_res c = req("GET", NULL, "/api/environments/%s/delete-blast-radius", e_del);
    json_t *refs = json_object_get(c.json, "staticReferences");
    is_int(json_integer_value(json_object_get(refs, "projectSelectionCount")), 1,
           "blast radius counts the project selection");
    is_int(json_integer_value(json_object_get(refs, "executionWorkspaceSelectionCount")), 1,
           "blast radius counts the workspace selection");
    pc_http_res_free(&c);
    pc_http_res dr = req("DELETE", NULL, "/api/environments/%s", e_del);
    is_int(dr.status, 200, "environment deleted");
    pc_http_res_free(&dr);
    pc_http_res p = req("GET", NULL, "/api/projects/%s", project);
    json_t *pol = json_object_get(p.json, "executionWorkspacePolicy");
    ok(json_object_get(pol, "environmentId") == NULL &&
           json_is_true(json_object_get(pol, "enabled")),
       "project policy lost only its environmentId");
    pc_http_res_free(&p);
    p = req("GET", NULL, "/api/execution-workspaces/%s", ew);
    ok(json_object_get(json_object_get(p.json, "config"), "environmentId") == NULL,
       "execution workspace config lost its environmentId");
    pc_http_res_free(&p);

    pc_daemon_stop(&d);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    pc_test_sh(cmd);
    free(tmp), free(agent), free(e_ws), free(e_issue), free(e_proj), free(e_agent), free(e_del),
        free(project), free(issue), free(cid);
    return tap_done();
}
