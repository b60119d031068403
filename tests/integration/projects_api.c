/*
 * Projects, project workspaces, goals, execution workspaces and workspace
 * operations over HTTP: shapes, bad input with upstream's texts, issue
 * links validated within the company, and who may do what (the board; an
 * agent of the company for plain fields; environments:manage for what
 * decides where runs execute; nothing for another company's agent; nothing
 * for a cross-site browser request).
 */
#include "env_common.h"

static char *cid, *cid2;

static long st_of(const char *token, const char *method, const char *body, const char *fmt,
                  const char *id)
{
    char path[300];
    snprintf(path, sizeof path, fmt, id);
    pc_http_res r = areq(token, method, body, "%s", path);
    long st = r.status;
    pc_http_res_free(&r);
    return st;
}

static char *create(const char *token, const char *fmt, const char *id, const char *body)
{
    char path[300];
    snprintf(path, sizeof path, fmt, id);
    pc_http_res r = areq(token, "POST", body, "%s", path);
    if (r.status != 201)
        tap_diag("POST %s: %ld %s", path, r.status, r.body);
    char *out = res_dup(&r, "id");
    pc_http_res_free(&r);
    return out;
}

/* Status and error text of a request. */
static long call(const char *method, const char *body, char *errbuf, size_t cap, const char *fmt,
                 const char *id)
{
    char path[300];
    snprintf(path, sizeof path, fmt, id);
    pc_http_res r = req(method, body, "%s", path);
    long st = r.status;
    snprintf(errbuf, cap, "%s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    return st;
}

static void test_projects_board(void)
{
    char err[300];
    char *goal = create(NULL, "/api/companies/%s/goals", cid, "{\"title\":\"Ship 1.0\"}");
    char body[600];
    snprintf(body, sizeof body,
             "{\"name\":\"Website\",\"description\":\"d\",\"status\":\"planned\",\"goalId\":\"%s\","
             "\"env\":{\"FOO\":\"bar\"},\"executionWorkspacePolicy\":{\"enabled\":true,"
             "\"defaultMode\":\"shared_workspace\"}}",
             goal);
    pc_http_res r = req("POST", body, "/api/companies/%s/projects", cid);
    is_int(r.status, 201, "board creates a project");
    is_str(pc_res_str(&r, "name"), "Website", "name");
    is_str(pc_res_str(&r, "status"), "planned", "status");
    is_str(pc_res_str(&r, "goalId"), goal, "goalId");
    is_str(json_string_value(json_array_get(json_object_get(r.json, "goalIds"), 0)), goal,
           "goalIds");
    is_str(pc_res_str(&r, "companyId"), cid, "companyId");
    is_str(json_string_value(json_object_get(json_object_get(r.json, "env"), "FOO")), "bar", "env");
    is_str(json_string_value(json_object_get(json_object_get(r.json, "executionWorkspacePolicy"),
                                             "defaultMode")),
           "shared_workspace", "executionWorkspacePolicy stored");
    ok(json_is_null(json_object_get(r.json, "archivedAt")), "archivedAt null");
    char *pid = res_dup(&r, "id");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/companies/%s/projects", cid);
    is_int(json_array_size(r.json), 1, "list has the project");
    pc_http_res_free(&r);

    /* Bad input. */
    is_int(call("POST", "{}", err, sizeof err, "/api/companies/%s/projects", cid), 400,
           "missing name: 400");
    is_int(call("POST", "{\"name\":\"x\",\"bogus\":1}", err, sizeof err,
                "/api/companies/%s/projects", cid),
           400, "unknown key: 400");
    is_int(call("POST", "{\"name\":\"x\",\"status\":\"done\"}", err, sizeof err,
                "/api/companies/%s/projects", cid),
           400, "bad status: 400");
    is_int(call("POST",
                "{\"name\":\"x\",\"executionWorkspacePolicy\":{\"defaultMode\":\"anywhere\"}}",
                err, sizeof err, "/api/companies/%s/projects", cid),
           400, "bad policy mode: 400");
    is_int(call("POST",
                "{\"name\":\"x\",\"executionWorkspacePolicy\":{\"environmentId\":\"nope\"}}", err,
                sizeof err, "/api/companies/%s/projects", cid),
           400, "policy environmentId not a uuid: 400");
    is_int(call("POST",
                "{\"name\":\"x\",\"executionWorkspacePolicy\":{\"workspaceStrategy\":{\"type\":"
                "\"git_worktree\",\"baseRef\":\"--upload-pack=x\"}}}",
                err, sizeof err, "/api/companies/%s/projects", cid),
           400, "option-looking baseRef: 400");
    char *other_goal = create(NULL, "/api/companies/%s/goals", cid2, "{\"title\":\"Theirs\"}");
    snprintf(body, sizeof body, "{\"name\":\"x\",\"goalId\":\"%s\"}", other_goal);
    is_int(call("POST", body, err, sizeof err, "/api/companies/%s/projects", cid), 422,
           "goal of another company: 422");
    is_str(err, "Goal not found", "goal of another company: upstream's text");
    r = req("GET", NULL, "/api/companies/%s/environments?driver=local", cid2);
    const char *env2 = json_string_value(json_object_get(json_array_get(r.json, 0), "id"));
    char *other_env = strdup(env2 ? env2 : "");
    pc_http_res_free(&r);
    if (!other_env[0]) {
        r = req("POST", "{\"name\":\"Local\",\"driver\":\"local\"}",
                "/api/companies/%s/environments", cid2);
        free(other_env);
        other_env = res_dup(&r, "id");
        pc_http_res_free(&r);
    }
    snprintf(body, sizeof body,
             "{\"executionWorkspacePolicy\":{\"enabled\":true,\"environmentId\":\"%s\"}}",
             other_env);
    is_int(call("PATCH", body, err, sizeof err, "/api/projects/%s", pid), 422,
           "policy environment of another company: 422");
    is_str(err, "Environment not found.", "…with upstream's text");
    is_int(call("GET", NULL, err, sizeof err, "/api/projects/%s", "not-a-uuid"), 404,
           "malformed project id: 404");
    is_str(err, "Project not found", "404 text");

    /* PATCH plain fields and archive. */
    r = req("PATCH", "{\"name\":\"Site\",\"archivedAt\":\"2026-01-01T00:00:00.000Z\"}",
            "/api/projects/%s", pid);
    is_int(r.status, 200, "patch: 200");
    is_str(pc_res_str(&r, "name"), "Site", "name patched");
    is_str(pc_res_str(&r, "archivedAt"), "2026-01-01T00:00:00.000Z", "archivedAt patched");
    is_str(json_string_value(json_object_get(json_object_get(r.json, "executionWorkspacePolicy"),
                                             "defaultMode")),
           "shared_workspace", "policy kept by a patch that does not name it");
    pc_http_res_free(&r);

    /* Project workspaces. */
    is_int(call("POST", "{\"name\":\"w\"}", err, sizeof err, "/api/projects/%s/workspaces", pid),
           422, "workspace without cwd or repoUrl: 422");
    is_str(err, "Workspace requires at least one of cwd or repoUrl", "…upstream's text");
    is_int(call("POST", "{\"cwd\":\"relative/dir\"}", err, sizeof err,
                "/api/projects/%s/workspaces", pid),
           400, "relative cwd: 400");
    is_int(call("POST", "{\"repoUrl\":\"--upload-pack=touch /tmp/x\"}", err, sizeof err,
                "/api/projects/%s/workspaces", pid),
           400, "option-looking repoUrl: 400");
    char *w1 = create(NULL, "/api/projects/%s/workspaces", pid, "{\"cwd\":\"/tmp\"}");
    char *w2 = create(NULL, "/api/projects/%s/workspaces", pid,
                      "{\"name\":\"remote\",\"repoUrl\":\"file:///srv/repo.git\","
                      "\"repoRef\":\"main\"}");
    r = req("GET", NULL, "/api/projects/%s/workspaces", pid);
    is_int(json_array_size(r.json), 2, "two workspaces listed");
    json_t *first = json_array_get(r.json, 0);
    is_str(json_string_value(json_object_get(first, "id")), w1, "the first one is primary");
    ok(json_is_true(json_object_get(first, "isPrimary")), "isPrimary true");
    is_str(json_string_value(json_object_get(json_array_get(r.json, 1), "sourceType")), "git_repo",
           "a repoUrl workspace is git_repo");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"isPrimary\":true}", "/api/projects/%s/workspaces/%s", pid, w2);
    is_int(r.status, 200, "workspace patch: 200");
    ok(json_is_true(json_object_get(r.json, "isPrimary")), "now primary");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/projects/%s", pid);
    is_str(json_string_value(json_object_get(json_object_get(r.json, "primaryWorkspace"), "id")),
           w2, "project shows its primary workspace");
    is_int(json_array_size(json_object_get(r.json, "workspaces")), 2, "project lists workspaces");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"cwd\":null,\"repoUrl\":null}", "/api/projects/%s/workspaces/%s", pid, w1);
    is_int(r.status, 422, "patch removing both cwd and repoUrl: 422");
    pc_http_res_free(&r);
    snprintf(body, sizeof body,
             "{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultProjectWorkspaceId\":\"%s\"}}",
             w1);
    is_int(call("PATCH", body, err, sizeof err, "/api/projects/%s", pid), 200,
           "policy names its own project's workspace");
    r = req("DELETE", NULL, "/api/projects/%s/workspaces/%s", pid, w1);
    is_int(r.status, 200, "workspace deleted");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/projects/%s/workspaces/%s", pid, w1);
    is_int(r.status, 404, "deleted workspace: 404");
    pc_http_res_free(&r);

    /* Issues link to projects and goals of their own company only. */
    snprintf(body, sizeof body, "{\"title\":\"t\",\"projectId\":\"%s\",\"goalId\":\"%s\"}", pid,
             goal);
    r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "issue in the project");
    is_str(pc_res_str(&r, "projectId"), pid, "issue projectId");
    is_str(pc_res_str(&r, "goalId"), goal, "issue goalId");
    char *issue = res_dup(&r, "id");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"title\":\"t\",\"projectId\":\"%s\"}", pid);
    is_int(call("POST", body, err, sizeof err, "/api/companies/%s/issues", cid2), 422,
           "issue of another company naming the project: 422");
    is_str(err, "Project not found", "…Project not found");
    snprintf(body, sizeof body, "{\"goalId\":\"%s\"}", other_goal);
    is_int(call("PATCH", body, err, sizeof err, "/api/issues/%s", issue), 422,
           "patch to another company's goal: 422");
    is_int(call("PATCH", "{\"projectId\":null}", err, sizeof err, "/api/issues/%s", issue), 200,
           "issue leaves the project");

    /* Delete: the project goes, its issues stay without it. */
    snprintf(body, sizeof body, "{\"projectId\":\"%s\"}", pid);
    call("PATCH", body, err, sizeof err, "/api/issues/%s", issue);
    r = req("DELETE", NULL, "/api/projects/%s", pid);
    is_int(r.status, 200, "board deletes the project");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s", issue);
    ok(json_is_null(json_object_get(r.json, "projectId")), "its issue lost the projectId");
    pc_http_res_free(&r);
    is_int(call("GET", NULL, err, sizeof err, "/api/projects/%s", pid), 404, "deleted: 404");
    free(goal), free(pid), free(other_goal), free(other_env), free(w1), free(w2), free(issue);
}

static void test_goals(void)
{
    char err[300];
    pc_http_res r = req("POST",
                        "{\"title\":\"Grow\",\"level\":\"company\",\"status\":\"active\","
                        "\"description\":\"more\"}",
                        "/api/companies/%s/goals", cid);
    is_int(r.status, 201, "goal created");
    is_str(pc_res_str(&r, "level"), "company", "level");
    is_str(pc_res_str(&r, "status"), "active", "status");
    char *g = res_dup(&r, "id");
    pc_http_res_free(&r);
    is_int(call("POST", "{\"title\":\"x\",\"level\":\"galaxy\"}", err, sizeof err,
                "/api/companies/%s/goals", cid),
           400, "bad level: 400");
    is_int(call("POST", "{}", err, sizeof err, "/api/companies/%s/goals", cid), 400,
           "missing title: 400");
    char *theirs = create(NULL, "/api/companies/%s/goals", cid2, "{\"title\":\"Theirs\"}");
    char body[300];
    snprintf(body, sizeof body, "{\"parentId\":\"%s\"}", theirs);
    is_int(call("PATCH", body, err, sizeof err, "/api/goals/%s", g), 422,
           "parent goal of another company: 422");
    snprintf(body, sizeof body, "{\"parentId\":\"%s\"}", g);
    is_int(call("PATCH", body, err, sizeof err, "/api/goals/%s", g), 422, "own parent: 422");
    r = req("PATCH", "{\"status\":\"achieved\"}", "/api/goals/%s", g);
    is_int(r.status, 200, "goal patched");
    is_str(pc_res_str(&r, "status"), "achieved", "status achieved");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/goals", cid);
    ok(json_array_size(r.json) >= 1, "goals listed");
    pc_http_res_free(&r);
    is_int(call("GET", NULL, err, sizeof err, "/api/goals/%s", "00000000-0000-7000-8000-000000000000"),
           404, "unknown goal: 404");
    is_str(err, "Goal not found", "404 text");
    free(g), free(theirs);
}

static void test_access(void)
{
    char *worker = make_agent(cid, "Worker", NULL);
    char *manager = make_agent(cid, "Manager", "{\"environments:manage\":true}");
    char *outsider = make_agent(cid2, "Outsider", "{\"environments:manage\":true}");
    char *wk = make_key(worker), *mk = make_key(manager), *ok_ = make_key(outsider);

    /* An agent of the company: plain fields yes, where runs execute no. */
    char *pid = create(wk, "/api/companies/%s/projects", cid, "{\"name\":\"Agent made\"}");
    ok(pid[0] != '\0', "agent of the company creates a plain project");
    is_int(st_of(wk, "PATCH", "{\"description\":\"x\"}", "/api/projects/%s", pid), 200,
           "agent patches a plain field");
    is_int(st_of(wk, "PATCH",
                 "{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultMode\":"
                 "\"isolated_workspace\"}}",
                 "/api/projects/%s", pid),
           403, "agent without environments:manage: policy 403");
    is_int(st_of(wk, "POST", "{\"name\":\"x\",\"env\":{\"A\":\"b\"}}", "/api/companies/%s/projects",
                 cid),
           403, "agent without environments:manage: env 403");
    is_int(st_of(wk, "POST", "{\"cwd\":\"/etc\"}", "/api/projects/%s/workspaces", pid), 403,
           "agent without environments:manage: workspace create 403");
    is_int(st_of(mk, "POST", "{\"cwd\":\"/tmp\"}", "/api/projects/%s/workspaces", pid), 201,
           "agent with environments:manage: workspace create 201");
    is_int(st_of(mk, "PATCH",
                 "{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultMode\":"
                 "\"shared_workspace\"}}",
                 "/api/projects/%s", pid),
           200, "agent with environments:manage: policy 200");
    is_int(st_of(mk, "DELETE", NULL, "/api/projects/%s", pid), 403,
           "project delete needs the board, even with manage");
    is_int(st_of(wk, "GET", NULL, "/api/projects/%s/workspaces", pid), 200,
           "agent of the company reads workspaces");

    /* Putting an issue into a project chooses where its runs execute. */
    char ibody[300];
    snprintf(ibody, sizeof ibody, "{\"title\":\"sub\",\"projectId\":\"%s\"}", pid);
    pc_http_res ir = areq(wk, "POST", ibody, "/api/companies/%s/issues", cid);
    is_int(ir.status, 403, "agent without manage: issue into a project 403");
    ok(strstr(pc_res_str(&ir, "error"), "environments:manage") != NULL, "…naming the permission");
    pc_http_res_free(&ir);
    is_int(st_of(mk, "POST", ibody, "/api/companies/%s/issues", cid), 201,
           "agent with manage: issue into a project 201");

    /* A confined agent (its default environment is not the host) writes
     * no host workspace and no policy pointing at the host. */
    pc_http_res er = req("POST",
                         "{\"name\":\"Remote\",\"driver\":\"ssh\",\"config\":{\"host\":"
                         "\"127.0.0.1\",\"username\":\"u\",\"remoteWorkspacePath\":\"/w\"}}",
                         "/api/companies/%s/environments", cid);
    char *ssh = res_dup(&er, "id");
    pc_http_res_free(&er);
    char abody[400];
    snprintf(abody, sizeof abody,
             "{\"name\":\"Confined\",\"permissions\":{\"environments:manage\":true},"
             "\"defaultEnvironmentId\":\"%s\"}",
             ssh);
    er = req("POST", abody, "/api/companies/%s/agents", cid);
    char *confined = res_dup(&er, "id");
    pc_http_res_free(&er);
    char *ck = make_key(confined);
    er = areq(ck, "POST", "{\"cwd\":\"/tmp\"}", "/api/projects/%s/workspaces", pid);
    is_int(er.status, 403, "confined agent: host workspace 403");
    is_str(pc_res_str(&er, "error"), "A confined agent cannot move execution out of its environment",
           "…containment text");
    pc_http_res_free(&er);
    is_int(st_of(ck, "PATCH",
                 "{\"executionWorkspacePolicy\":{\"enabled\":true,\"defaultMode\":"
                 "\"shared_workspace\"}}",
                 "/api/projects/%s", pid),
           403, "confined agent: policy on the host 403");
    snprintf(abody, sizeof abody, "{\"executionWorkspacePolicy\":{\"environmentId\":\"%s\"}}",
             ssh);
    is_int(st_of(ck, "PATCH", abody, "/api/projects/%s", pid), 200,
           "confined agent: policy on its own environment 200");
    free(ssh), free(confined), free(ck);

    /* Another company's agent: nothing. */
    is_int(st_of(ok_, "GET", NULL, "/api/projects/%s", pid), 403, "outsider: get 403");
    is_int(st_of(ok_, "GET", NULL, "/api/companies/%s/projects", cid), 403, "outsider: list 403");
    is_int(st_of(ok_, "PATCH", "{\"name\":\"pwn\"}", "/api/projects/%s", pid), 403,
           "outsider: patch 403");
    is_int(st_of(ok_, "POST", "{\"name\":\"pwn\"}", "/api/companies/%s/projects", cid), 403,
           "outsider: create 403");
    is_int(st_of(ok_, "POST", "{\"cwd\":\"/\"}", "/api/projects/%s/workspaces", pid), 403,
           "outsider (with manage in its own company): workspace create 403");
    is_int(st_of(ok_, "GET", NULL, "/api/companies/%s/goals", cid), 403, "outsider: goals 403");
    is_int(st_of(ok_, "POST", "{\"title\":\"x\"}", "/api/companies/%s/goals", cid), 403,
           "outsider: goal create 403");
    is_int(st_of(ok_, "GET", NULL, "/api/companies/%s/execution-workspaces", cid), 403,
           "outsider: execution workspaces 403");

    /* Execution workspaces: a row as the run layer writes it. */
    char sql[900];
    snprintf(sql, sizeof sql,
             "INSERT INTO execution_workspaces(id,company_id,project_id,mode,strategy_type,name,"
             "status,cwd,last_used_at,opened_at,created_at,updated_at) VALUES("
             "'0190a000-0000-7000-8000-00000000e001','%s','%s','shared_workspace',"
             "'project_primary','w','active','/tmp','2026-01-01T00:00:00.000Z',"
             "'2026-01-01T00:00:00.000Z','2026-01-01T00:00:00.000Z','2026-01-01T00:00:00.000Z')",
             cid, pid);
    ok(db_exec(sql) == 0, "execution workspace row");
    const char *ew = "0190a000-0000-7000-8000-00000000e001";
    is_int(st_of(wk, "GET", NULL, "/api/execution-workspaces/%s", ew), 200,
           "agent of the company reads it");
    is_int(st_of(ok_, "GET", NULL, "/api/execution-workspaces/%s", ew), 403, "outsider: 403");
    is_int(st_of(wk, "PATCH", "{\"status\":\"idle\"}", "/api/execution-workspaces/%s", ew), 403,
           "agent without manage: patch 403");
    is_int(st_of(ok_, "PATCH", "{\"status\":\"idle\"}", "/api/execution-workspaces/%s", ew), 403,
           "outsider: patch 403");
    is_int(st_of(NULL, "PATCH", "{\"status\":\"gone\"}", "/api/execution-workspaces/%s", ew), 400,
           "bad status: 400");
    is_int(st_of(NULL, "PATCH", "{\"config\":{\"environmentId\":\"x\"}}",
                 "/api/execution-workspaces/%s", ew),
           400, "config.environmentId not a uuid: 400");
    pc_http_res r = req("PATCH", "{\"status\":\"archived\",\"cleanupReason\":\"done\"}",
                        "/api/execution-workspaces/%s", ew);
    is_int(r.status, 200, "board archives it");
    is_str(pc_res_str(&r, "status"), "archived", "status archived");
    ok(json_is_string(json_object_get(r.json, "closedAt")), "closedAt set");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/execution-workspaces?status=archived", cid);
    is_int(json_array_size(r.json), 1, "list filters by status");
    pc_http_res_free(&r);
    is_int(st_of(NULL, "GET", NULL, "/api/execution-workspaces/%s", "nope"), 404, "bad id: 404");
    is_int(st_of(NULL, "GET", NULL, "/api/heartbeat-runs/%s/workspace-operations",
                 "0190a000-0000-7000-8000-0000000000ff"),
           404, "operations of an unknown run: 404");
    is_int(st_of(NULL, "GET", NULL, "/api/workspace-operations/%s/log",
                 "0190a000-0000-7000-8000-0000000000ff"),
           404, "log of an unknown operation: 404");

    /* A cross-site browser request changes nothing. */
    char url[700];
    snprintf(url, sizeof url, "%s/api/companies/%s/projects", d.url, cid);
    const char *hdrs[] = {"Origin: http://evil.example", "Content-Type: application/json", NULL};
    const char *body = "{\"name\":\"cross-site\"}";
    r = pc_http_ex(url, "POST", body, strlen(body), hdrs);
    is_int(r.status, 403, "cross-site create: 403");
    pc_http_res_free(&r);
    ok(db_count("SELECT COUNT(*) FROM projects WHERE name IN ('cross-site','pwn')") == 0,
       "refused writes stored nothing");
    free(worker), free(manager), free(outsider), free(wk), free(mk), free(ok_), free(pid);
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("Proj Co");
    cid2 = make_company("Other Co");
    test_projects_board();
    test_goals();
    test_access();
    pc_daemon_stop(&d);
    free(cid), free(cid2);
    return tap_done();
}
