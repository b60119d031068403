/*
 * Execution workspaces end to end in the local environment. A project whose
 * workspace is a git repository made here (git init in a temp dir) and
 * whose policy is isolated_workspace + git_worktree runs an issue: the run
 * works in a fresh worktree on a new branch, the agent commits there, and
 * the host repository has that branch with the commit (its main branch has
 * not). The run's PAPERCLIP_WORKSPACE_* variables, the lease's
 * executionWorkspaceId, the workspace-operations routes and reuse (the same
 * issue again: same worktree, no new operation; another issue: its own
 * worktree and branch) are checked; then a shared_workspace project runs
 * two issues in its one directory.
 */
#include <sys/stat.h>

#include "heartbeat_common.h"

static char *tmp;

static char *post_id(const char *path, const char *body, long want)
{
    pc_http_res r = req("POST", body, "%s", path);
    if (r.status != want)
        tap_diag("POST %s: %ld %s", path, r.status, r.body);
    char *id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    return id;
}

static char *issue_in(const char *cid, const char *project, const char *agent, const char *title)
{
    char body[512], path[200];
    snprintf(body, sizeof body,
             "{\"title\":\"%s\",\"projectId\":\"%s\",\"assigneeAgentId\":\"%s\"}", title, project,
             agent);
    snprintf(path, sizeof path, "/api/companies/%s/issues", cid);
    return post_id(path, body, 201);
}

/* Waits for the issue's first run to end; returns it (new ref) or NULL. */
static json_t *issue_run(const char *issue)
{
    char run[64];
    hb_first_run(issue, run, sizeof run);
    ok(run[0] != '\0', "the assignment started a run");
    return run[0] ? hb_wait_run(run, NULL, 60000) : NULL;
}

/* Reads "key=value" lines the agent wrote to out/<issue>.txt. */
static char *agent_out(const char *issue, const char *key)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/out/%s.txt", tmp, issue);
    char *txt = pc_test_read_file(path, 1 << 16);
    char want[128], *res = strdup("");
    snprintf(want, sizeof want, "%s=", key);
    char *at = txt ? strstr(txt, want) : NULL;
    if (at) {
        free(res);
        res = strndup(at + strlen(want), strcspn(at + strlen(want), "\n"));
    }
    free(txt);
    return res;
}

static int sh(const char *fmt, const char *a)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, a, a);
    return pc_test_sh(cmd);
}

static void isolated_worktrees(const char *cid, const char *agent)
{
    char repo[600];
    snprintf(repo, sizeof repo, "%s/repo", tmp);
    ok(sh("git init -q -b main '%s' && cd '%s' && echo base > README && git add README && "
          "git -c user.name=t -c user.email=t@example.com commit -qm base",
          repo) == 0,
       "test repository created with git init");

    char body[2048], path[300];
    snprintf(path, sizeof path, "/api/companies/%s/projects", cid);
    char *project = post_id(path,
                            "{\"name\":\"Repo project\",\"status\":\"in_progress\","
                            "\"executionWorkspacePolicy\":{\"enabled\":true,"
                            "\"defaultMode\":\"isolated_workspace\","
                            "\"workspaceStrategy\":{\"type\":\"git_worktree\"}}}",
                            201);
    snprintf(path, sizeof path, "/api/projects/%s/workspaces", project);
    snprintf(body, sizeof body, "{\"name\":\"main repo\",\"cwd\":\"%s\"}", repo);
    char *pw = post_id(path, body, 201);
    ok(pw[0] != '\0', "project workspace created");

    char *issue = issue_in(cid, project, agent, "Add work file");
    pc_http_res r = req("GET", NULL, "/api/issues/%s", issue);
    char ident[64];
    snprintf(ident, sizeof ident, "%s", pc_res_str(&r, "identifier"));
    is_str(pc_res_str(&r, "projectId"), project, "issue carries projectId");
    pc_http_res_free(&r);

    json_t *run = issue_run(issue);
    is_str(js(run, "status"), "succeeded", "run in the worktree succeeded");
    if (strcmp(js(run, "status"), "succeeded") != 0)
        tap_diag("run: %s", json_dumps(run, 0));

    r = req("GET", NULL, "/api/companies/%s/execution-workspaces?projectId=%s", cid, project);
    is_int(json_array_size(r.json), 1, "one execution workspace for the issue");
    json_t *ew = json_array_get(r.json, 0);
    char ew_id[64], ew_cwd[1200], branch[256];
    snprintf(ew_id, sizeof ew_id, "%s", js(ew, "id"));
    snprintf(ew_cwd, sizeof ew_cwd, "%s", js(ew, "cwd"));
    snprintf(branch, sizeof branch, "%s", js(ew, "branchName"));
    is_str(js(ew, "mode"), "isolated_workspace", "mode isolated_workspace");
    is_str(js(ew, "strategyType"), "git_worktree", "strategyType git_worktree");
    is_str(js(ew, "sourceIssueId"), issue, "sourceIssueId is the issue");
    is_str(js(ew, "projectWorkspaceId"), pw, "projectWorkspaceId");
    is_str(js(ew, "status"), "active", "status active");
    is_str(js(ew, "baseRef"), "HEAD", "baseRef defaults to HEAD");
    char want[300];
    snprintf(want, sizeof want, "paperclip/%s", ident);
    is_str(branch, want, "branch paperclip/<identifier>");
    ok(json_is_string(json_object_get(ew, "lastUsedAt")), "lastUsedAt set");
    ok(json_object_get(ew, "cleanupEligibleAt") != NULL, "cleanupEligibleAt present");
    char exp_cwd[1200];
    snprintf(exp_cwd, sizeof exp_cwd, "%s/execution-workspaces/%s", d.data_dir, ew_id);
    is_str(ew_cwd, exp_cwd, "worktree under <data>/execution-workspaces/<id>");
    pc_http_res_free(&r);

    /* What the agent saw. */
    char *pwd = agent_out(issue, "PWD");
    is_str(pwd, exp_cwd, "the run's cwd is the worktree");
    char *v = agent_out(issue, "BRANCH");
    is_str(v, want, "PAPERCLIP_WORKSPACE_BRANCH");
    free(v);
    v = agent_out(issue, "HEADREF");
    is_str(v, want, "the worktree has the new branch checked out");
    free(v);
    v = agent_out(issue, "WSID");
    is_str(v, ew_id, "PAPERCLIP_WORKSPACE_ID");
    free(v);
    v = agent_out(issue, "STRATEGY");
    is_str(v, "git_worktree", "PAPERCLIP_WORKSPACE_STRATEGY");
    free(v);
    v = agent_out(issue, "WTPATH");
    is_str(v, exp_cwd, "PAPERCLIP_WORKSPACE_WORKTREE_PATH");
    free(v);
    v = agent_out(issue, "WSCWD");
    is_str(v, exp_cwd, "PAPERCLIP_WORKSPACE_CWD");
    free(v);

    /* The commit is on the branch in the host repository, not on main. */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "git -C '%s' log --format=%%s '%s' | grep -qx 'agent work'", repo,
             want);
    ok(pc_test_sh(cmd) == 0, "git -C repo log <branch> shows the agent's commit");
    snprintf(cmd, sizeof cmd, "git -C '%s' log --format=%%s main | grep -q 'agent work'", repo);
    ok(pc_test_sh(cmd) != 0, "main is untouched");

    /* The lease names the execution workspace. */
    r = req("GET", NULL, "/api/environment-leases/%s", js(run, "leaseId"));
    is_str(pc_res_str(&r, "executionWorkspaceId"), ew_id, "lease executionWorkspaceId");
    pc_http_res_free(&r);

    /* Workspace operations of the run, and the log of one. */
    r = req("GET", NULL, "/api/heartbeat-runs/%s/workspace-operations", js(run, "id"));
    is_int(json_array_size(r.json), 1, "one workspace operation");
    json_t *op = json_array_get(r.json, 0);
    is_str(js(op, "phase"), "worktree_prepare", "phase worktree_prepare");
    is_str(js(op, "status"), "succeeded", "operation succeeded");
    ok(strstr(js(op, "command"), "git worktree add -b paperclip/") != NULL,
       "command is git worktree add -b <branch>");
    is_str(js(op, "executionWorkspaceId"), ew_id, "operation names the workspace");
    char op_id[64];
    snprintf(op_id, sizeof op_id, "%s", js(op, "id"));
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/workspace-operations/%s/log", op_id);
    is_int(r.status, 200, "operation log: 200");
    ok(strstr(pc_res_str(&r, "content"), "worktree") != NULL, "operation log has git's output");
    pc_http_res_free(&r);

    /* The same issue again reuses the worktree. */
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", issue);
    char *run2 = hb_wake(agent, body);
    json_t *r2 = hb_wait_run(run2, NULL, 60000);
    is_str(js(r2, "status"), "succeeded", "second run of the issue succeeded");
    ok(db_count("SELECT COUNT(*) FROM execution_workspaces") == 1, "workspace reused");
    r = req("GET", NULL, "/api/heartbeat-runs/%s/workspace-operations", run2);
    is_int(json_array_size(r.json), 0, "reuse runs no git command");
    pc_http_res_free(&r);
    free(pwd);
    pwd = agent_out(issue, "PWD");
    is_str(pwd, exp_cwd, "second run works in the same worktree");

    /* Another issue: its own worktree and branch. */
    char *issue2 = issue_in(cid, project, agent, "Second task");
    json_t *run3 = issue_run(issue2);
    is_str(js(run3, "status"), "succeeded", "second issue's run succeeded");
    ok(db_count("SELECT COUNT(*) FROM execution_workspaces WHERE mode='isolated_workspace'") == 2,
       "a second isolated workspace");
    char *pwd2 = agent_out(issue2, "PWD");
    ok(pwd2[0] && strcmp(pwd2, exp_cwd) != 0, "second issue works in another directory");
    char *br2 = agent_out(issue2, "HEADREF");
    ok(br2[0] && strcmp(br2, want) != 0 && !strncmp(br2, "paperclip/", 10),
       "second issue has its own branch");

    /* A workspace whose git step fails fails the run with
     * workspace_realization_failed and a failed operation. */
    char norepo[600];
    snprintf(norepo, sizeof norepo, "%s/plain", tmp);
    mkdir(norepo, 0700);
    snprintf(body, sizeof body,
             "{\"name\":\"No repo\",\"executionWorkspacePolicy\":{\"enabled\":true,"
             "\"defaultMode\":\"isolated_workspace\",\"workspaceStrategy\":{\"type\":"
             "\"git_worktree\"}}}");
    snprintf(path, sizeof path, "/api/companies/%s/projects", cid);
    char *bad = post_id(path, body, 201);
    snprintf(path, sizeof path, "/api/projects/%s/workspaces", bad);
    snprintf(body, sizeof body, "{\"cwd\":\"%s\"}", norepo);
    free(post_id(path, body, 201));
    char *issue3 = issue_in(cid, bad, agent, "Cannot work");
    json_t *run4 = issue_run(issue3);
    is_str(js(run4, "status"), "failed", "run without a repository fails");
    is_str(js(run4, "errorCode"), "workspace_realization_failed",
           "errorCode workspace_realization_failed");

    json_decref(run), json_decref(r2), json_decref(run3), json_decref(run4);
    free(project), free(pw), free(issue), free(issue2), free(issue3), free(run2), free(pwd),
        free(pwd2), free(br2), free(bad);
}

static void shared_workspace(const char *cid, const char *agent)
{
    char dir[600], body[1400], path[300];
    snprintf(dir, sizeof dir, "%s/shared", tmp);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "/api/companies/%s/projects", cid);
    char *project = post_id(path,
                            "{\"name\":\"Shared\",\"executionWorkspacePolicy\":{\"enabled\":true,"
                            "\"defaultMode\":\"shared_workspace\"}}",
                            201);
    snprintf(path, sizeof path, "/api/projects/%s/workspaces", project);
    snprintf(body, sizeof body, "{\"cwd\":\"%s\"}", dir);
    free(post_id(path, body, 201));
    char *a = issue_in(cid, project, agent, "Shared one");
    json_t *ra = issue_run(a);
    char *b = issue_in(cid, project, agent, "Shared two");
    json_t *rb = issue_run(b);
    is_str(js(ra, "status"), "succeeded", "shared: first run succeeded");
    is_str(js(rb, "status"), "succeeded", "shared: second run succeeded");
    char *pa = agent_out(a, "PWD"), *pb = agent_out(b, "PWD");
    is_str(pa, dir, "shared: first issue runs in the project's cwd");
    is_str(pb, dir, "shared: second issue runs there too");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM execution_workspaces WHERE project_id='%s' AND "
             "mode='shared_workspace' AND strategy_type='project_primary'",
             project);
    ok(db_count(sql) == 1, "shared: one execution workspace for the project");
    json_decref(ra), json_decref(rb);
    free(project), free(a), free(b), free(pa), free(pb);
}

int main(void)
{
    if (pc_test_sh("command -v git >/dev/null") != 0) {
        ok(0, "git is installed");
        return tap_done();
    }
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    tmp = pc_test_tmpdir("ws-git");
    char out[600];
    snprintf(out, sizeof out, "%s/out", tmp);
    mkdir(out, 0700);
    char *cid = hb_company("Workspace Co");
    /* The agent records where it runs, then commits a file there when the
     * directory is a git work tree. */
    char script[4096];
    snprintf(script, sizeof script,
             "o='%s/'\"$PAPERCLIP_TASK_ID\".txt; { echo PWD=$(pwd -P); "
             "echo BRANCH=$PAPERCLIP_WORKSPACE_BRANCH; echo WSID=$PAPERCLIP_WORKSPACE_ID; "
             "echo STRATEGY=$PAPERCLIP_WORKSPACE_STRATEGY; "
             "echo WTPATH=$PAPERCLIP_WORKSPACE_WORKTREE_PATH; "
             "echo WSCWD=$PAPERCLIP_WORKSPACE_CWD; "
             "echo HEADREF=$(git symbolic-ref --short HEAD 2>/dev/null); } > \"$o\"; "
             "if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then "
             "echo work >> work.txt && git add work.txt && "
             "git -c user.name=agent -c user.email=agent@example.com commit -qm 'agent work'; "
             "fi; true",
             out);
    char *agent = hb_sh_agent(cid, "Coder", script, NULL, NULL);
    isolated_worktrees(cid, agent);
    shared_workspace(cid, agent);
    free(cid), free(agent);
    pc_daemon_stop(&d);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    pc_test_sh(cmd);
    free(tmp);
    return tap_done();
}
