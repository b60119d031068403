/*
 * Execution workspace realization for a run (run/workspace.h).
 *
 * git runs through pc_spawn_run with an environment of its own (a fixed
 * PATH, no system or global config, no terminal prompt), so nothing of the
 * daemon's environment and no credential helper of the host reaches it.
 * Every argument that came from the API (refs, branch, URL) was checked not
 * to start with '-' and is passed after the options, never through a shell.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "run/workspace.h"
#include "store/db.h"

#define GIT_TIMEOUT_MS (10 * 60 * 1000)
#define OP_LOG_CAP (64 * 1024)
#define EXCERPT_CAP 2000

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static bool is_dir(const char *p)
{
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_git_repo(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/.git", dir);
    struct stat st;
    return stat(p, &st) == 0;
}

/* Runs `git args...` in cwd, recorded as a workspace operation of the run
 * (phase, command line, status, exit code, output). */
static int run_git(pc_app *app, const char *company_id, const char *ew_id, const char *run_id,
                   const char *phase, const char *cwd, const char *const *args, pc_error_t *err)
{
    char home[1100];
    snprintf(home, sizeof home, "HOME=%s", app->cfg.data_dir);
    char *envp[] = {"PATH=" PC_SPAWN_DEFAULT_PATH, home, "LANG=C", "GIT_TERMINAL_PROMPT=0",
                    "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", NULL};
    const char *argv[16] = {"git"};
    size_t n = 1;
    char cmdline[4096] = "git";
    size_t off = 3;
    for (; args[n - 1] && n < 15; n++) {
        argv[n] = args[n - 1];
        if (off < sizeof cmdline)
            off += (size_t)snprintf(cmdline + off, sizeof cmdline - off, " %s", args[n - 1]);
    }
    argv[n] = NULL;
    char op_id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(op_id);
    pc_iso_now(ts);
    pc_error_t e = PC_ERROR_INIT;
    if (pc_db_exec_s(app->db,
                     "INSERT INTO workspace_operations(id,company_id,execution_workspace_id,"
                     "heartbeat_run_id,phase,command,cwd,status,started_at,created_at,updated_at) "
                     "VALUES(?,?,?,?,?,?,?,'running',?,?,?)",
                     json_pack("[s,s,s?,s?,s,s,s?,s,s,s]", op_id, company_id, ew_id, run_id, phase,
                               cmdline, cwd, ts, ts, ts),
                     NULL, &e) < 0) {
        pc_warn("workspace operation not recorded: %s", e.msg);
        pc_error_clear(&e);
    }
    pc_spawn_opts so = {.file = "git", .argv = argv, .envp = envp, .cwd = cwd,
                        .no_shell_fallback = true};
    pc_spawn_run_opts ro = {.out_max = OP_LOG_CAP, .err_max = OP_LOG_CAP,
                            .timeout_ms = GIT_TIMEOUT_MS, .grace_ms = 2000,
                            .kill_group_at_end = true};
    pc_spawn_result res;
    pc_spawn_stage stage;
    int rc = pc_spawn_run(&so, &ro, &res, &stage);
    bool ok = rc == 0 && res.exit_code == 0;
    char *log = rc == 0 ? pc_xasprintf("%s%s", res.out.data, res.err.data)
                        : pc_xasprintf("cannot run git: %s\n", strerror(rc));
    char out_ex[EXCERPT_CAP + 1], err_ex[EXCERPT_CAP + 1];
    copy(out_ex, sizeof out_ex, rc == 0 ? res.out.data : "");
    copy(err_ex, sizeof err_ex, rc == 0 ? res.err.data : log);
    pc_iso_now(ts);
    if (pc_db_exec_s(app->db,
                     "UPDATE workspace_operations SET status=?, exit_code=?, stdout_excerpt=?, "
                     "stderr_excerpt=?, log=?, finished_at=?, updated_at=? WHERE id=?",
                     json_pack("[s,i,s,s,s,s,s,s]", ok ? "succeeded" : "failed",
                               rc == 0 ? res.exit_code : -1, out_ex, err_ex, log, ts, ts, op_id),
                     NULL, &e) < 0) {
        pc_warn("workspace operation not updated: %s", e.msg);
        pc_error_clear(&e);
    }
    if (!ok) {
        size_t l = strlen(err_ex);
        while (l && (err_ex[l - 1] == '\n' || err_ex[l - 1] == '\r'))
            err_ex[--l] = '\0';
        pc_error_set(err, 500, "workspace_realization_failed: %s failed: %s", cmdline,
                     err_ex[0] ? err_ex : "non-zero exit");
    }
    free(log);
    if (rc == 0)
        pc_spawn_result_free(&res);
    return ok ? 0 : -1;
}

/* The branch of an isolated workspace: the policy's branchTemplate with
 * {{issue.identifier}} replaced, else paperclip/<identifier>. */
static void branch_name(json_t *strat, const char *identifier, char *out, size_t cap)
{
    const char *tpl = pc_json_str(strat, "branchTemplate");
    if (!tpl || !*tpl) {
        snprintf(out, cap, "paperclip/%s", identifier);
        return;
    }
    const char *mark = "{{issue.identifier}}";
    const char *at = strstr(tpl, mark);
    if (!at)
        snprintf(out, cap, "%s", tpl);
    else
        snprintf(out, cap, "%.*s%s%s", (int)(at - tpl), tpl, identifier, at + strlen(mark));
}

static void set_layout(pc_app *app, const pc_run_workspace *w)
{
    pc_error_t e = PC_ERROR_INIT;
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    json_t *meta = json_pack("{s:s,s:s?}", "gitLayout", w->layout, "sourceCwd",
                             w->src[0] ? w->src : NULL);
    if (pc_db_exec_s(app->db, "UPDATE execution_workspaces SET metadata=?, updated_at=? WHERE id=?",
                     json_pack("[o,s,s]", meta, ts, w->id), NULL, &e) < 0)
        pc_warn("execution workspace %s: layout not recorded: %s", w->id, e.msg);
    pc_error_clear(&e);
}

static struct timespec backdate_to;

static int backdate_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    struct timespec ts[2] = {backdate_to, backdate_to};
    utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

/* Workspace sync takes a file back only when its size or mtime second
 * differs from the host's copy; a git ref rewritten by the agent in the
 * same second the clone was made has the same size and second. Dating a
 * new workspace a few seconds back makes every change the run makes
 * visible. nftw's walk is not reentrant with backdate_to: guarded. */
static void backdate_tree(const char *dir)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    clock_gettime(CLOCK_REALTIME, &backdate_to);
    backdate_to.tv_sec -= 5;
    backdate_to.tv_nsec = 0;
    nftw(dir, backdate_one, 16, FTW_PHYS);
    pthread_mutex_unlock(&mu);
}

int pc_run_workspace_realize(pc_app *app, const char *company_id, const char *run_id,
                             pc_run_workspace *w, bool remote, pc_error_t *err)
{
    if (!w->pending)
        return 0;
    w->pending = false;
    int rc = 0;
    char parent[1100];
    snprintf(parent, sizeof parent, "%s/execution-workspaces", app->cfg.data_dir);
    bool git_src = w->src[0] && is_git_repo(w->src);
    if (!w->branch[0] && !w->repo_url[0]) {
        /* A directory of its own, empty. */
        if (pc_mkdir_p(w->cwd, 0700) < 0)
            rc = pc_error_errno(err, errno, "workspace_realization_failed: cannot create %s",
                                w->cwd);
    } else if (pc_mkdir_p(parent, 0700) < 0) {
        rc = pc_error_errno(err, errno, "workspace_realization_failed: cannot create %s", parent);
    } else if (git_src && w->branch[0] && !remote) {
        const char *a[] = {"worktree", "add", "-b", w->branch, "--", w->cwd, w->base_ref, NULL};
        rc = run_git(app, company_id, w->id, run_id, "worktree_prepare", w->src, a, err);
        snprintf(w->layout, sizeof w->layout, "worktree");
    } else if (!git_src && !w->repo_url[0]) {
        rc = pc_error_set(err, 422,
                          "workspace_realization_failed: the project workspace is not a git "
                          "repository and has no repoUrl");
    } else {
        /* A clone is self-contained: a worktree's .git names a directory of
         * the host repository, which a remote target does not have. */
        const char *from = git_src ? w->src : w->repo_url;
        const char *c[] = {"clone", "--no-hardlinks", "--", from, w->cwd, NULL};
        rc = run_git(app, company_id, w->id, run_id, "workspace_provision", parent, c, err);
        if (rc == 0 && w->branch[0]) {
            const char *b[] = {"checkout", "-b", w->branch, w->base_ref, "--", NULL};
            rc = run_git(app, company_id, w->id, run_id, "worktree_prepare", w->cwd, b, err);
        }
        snprintf(w->layout, sizeof w->layout, "clone");
        if (!git_src)
            w->src[0] = '\0'; /* nothing on the host to hand the branch to */
    }
    if (rc < 0) {
        pc_error_t mark = PC_ERROR_INIT;
        char ts[PC_ISO_LEN + 1];
        pc_iso_now(ts);
        pc_db_exec_s(app->db,
                     "UPDATE execution_workspaces SET status='cleanup_failed', "
                     "cleanup_reason='realization failed', updated_at=? WHERE id=?",
                     json_pack("[s,s]", ts, w->id), NULL, &mark);
        pc_error_clear(&mark);
        return -1;
    }
    if (w->layout[0])
        set_layout(app, w);
    if (remote)
        backdate_tree(w->cwd);
    return 0;
}

int pc_run_workspace_finish(pc_app *app, const char *company_id, const char *run_id,
                            const pc_run_workspace *w, pc_error_t *err)
{
    if (strcmp(w->layout, "clone") != 0 || !w->src[0] || !w->branch[0] || !is_git_repo(w->src))
        return 0;
    char spec[600];
    snprintf(spec, sizeof spec, "+refs/heads/%s:refs/heads/%s", w->branch, w->branch);
    const char *a[] = {"fetch", "--", w->cwd, spec, NULL};
    return run_git(app, company_id, w->id, run_id, "branch_fetch", w->src, a, err);
}

static json_t *first_row(pc_app *app, const char *sql, json_t *params, pc_error_t *err)
{
    json_t *row = pc_db_query_one_s(app->db, sql, params, err);
    return row;
}

int pc_run_workspace_prepare(pc_app *app, const char *company_id, const char *issue_id,
                             pc_run_workspace *out, pc_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (!issue_id)
        return 0;
    _cleanup_json_ json_t *issue = first_row(
        app, "SELECT project_id, identifier, execution_workspace_settings FROM issues WHERE id=?",
        json_pack("[s]", issue_id), err);
    if (!issue)
        return pc_error_is_set(err) ? -1 : 0;
    _cleanup_json_ json_t *ews =
        pc_json_from_text(pc_json_str(issue, "execution_workspace_settings"));
    const char *issue_env = pc_json_str(ews, "environmentId");
    const char *project_id = pc_json_str(issue, "project_id");
    _cleanup_json_ json_t *project = NULL, *policy = NULL, *pw = NULL, *ew = NULL;
    if (project_id)
        project = first_row(app,
                            "SELECT execution_workspace_policy FROM projects WHERE id=? AND "
                            "company_id=?",
                            json_pack("[s,s]", project_id, company_id), err);
    if (!project && pc_error_is_set(err))
        return -1;
    policy = pc_json_from_text(project ? pc_json_str(project, "execution_workspace_policy") : NULL);
    const char *policy_env = pc_json_str(policy, "environmentId");
    const char *mode = pc_json_str(policy, "defaultMode");
    bool enabled = pc_json_bool(policy, "enabled", false) && mode &&
                   (!strcmp(mode, "shared_workspace") || !strcmp(mode, "isolated_workspace"));
    if (enabled) {
        const char *dpw = pc_json_str(policy, "defaultProjectWorkspaceId");
        pw = first_row(app,
                       "SELECT * FROM project_workspaces WHERE project_id=? AND (? IS NULL OR "
                       "id=?) ORDER BY is_primary DESC, created_at, id LIMIT 1",
                       json_pack("[s,s?,s?]", project_id, dpw, dpw), err);
        if (!pw && pc_error_is_set(err))
            return -1;
    }
    if (pw) {
        bool isolated = !strcmp(mode, "isolated_workspace");
        ew = isolated ? first_row(app,
                                  "SELECT * FROM execution_workspaces WHERE project_id=? AND "
                                  "source_issue_id=? AND mode='isolated_workspace' AND "
                                  "status NOT IN ('archived','cleanup_failed') "
                                  "ORDER BY created_at DESC LIMIT 1",
                                  json_pack("[s,s]", project_id, issue_id), err)
                      : first_row(app,
                                  "SELECT * FROM execution_workspaces WHERE project_id=? AND "
                                  "mode='shared_workspace' AND "
                                  "status NOT IN ('archived','cleanup_failed') "
                                  "ORDER BY created_at DESC LIMIT 1",
                                  json_pack("[s]", project_id), err);
        if (!ew && pc_error_is_set(err))
            return -1;
        char ts[PC_ISO_LEN + 1];
        pc_iso_now(ts);
        if (ew && !is_dir(pc_json_str(ew, "cwd"))) {
            /* Its directory is gone (removed by hand, or a failed first
             * realization): the row is done with, a new one is made. */
            pc_db_exec_s(app->db,
                         "UPDATE execution_workspaces SET status='archived', closed_at=?, "
                         "cleanup_reason='directory missing', updated_at=? WHERE id=?",
                         json_pack("[s,s,s]", ts, ts, pc_json_str(ew, "id")), NULL, err);
            pc_error_clear(err);
            json_decref(ew);
            ew = NULL;
        }
        if (ew) {
            pc_db_exec_s(app->db,
                         "UPDATE execution_workspaces SET last_used_at=?, status='active', "
                         "updated_at=? WHERE id=?",
                         json_pack("[s,s,s]", ts, ts, pc_json_str(ew, "id")), NULL, err);
            pc_error_clear(err);
        } else {
            json_t *strat = pc_json_obj(policy, "workspaceStrategy");
            const char *stype = pc_json_str(strat, "type");
            const char *src = pc_json_str(pw, "cwd");
            const char *url = pc_json_str(pw, "repo_url");
            bool git = isolated && (stype ? !strcmp(stype, "git_worktree")
                                          : (src && is_git_repo(src)) || (!src && url));
            char id[PC_UUID_LEN + 1], branch[256] = "", dir[1200];
            pc_uuid_v7(id);
            const char *base = pc_json_str(strat, "baseRef");
            if (!base)
                base = pc_json_str(pw, "repo_ref");
            if (!base)
                base = pc_json_str(pw, "default_ref");
            if (!base)
                base = "HEAD";
            if (git)
                branch_name(strat, pc_json_str(issue, "identifier"), branch, sizeof branch);
            /* A shared workspace works in the project's own directory; one
             * without a directory, and every isolated one, gets its own. */
            bool in_place = !isolated && src;
            if (in_place)
                snprintf(dir, sizeof dir, "%s", src);
            else
                snprintf(dir, sizeof dir, "%s/execution-workspaces/%s", app->cfg.data_dir, id);
            char name[300];
            snprintf(name, sizeof name, "%s", git ? branch : pc_json_str(pw, "name"));
            /* Insert only if no live workspace of this kind exists, in one
             * statement: two runs racing to make a project's first workspace
             * end up sharing one row, the loser reusing the winner's. */
            const char *wmode = isolated ? "isolated_workspace" : "shared_workspace";
            int64_t inserted = 0;
            if (pc_db_exec_s(
                    app->db,
                    "INSERT INTO execution_workspaces(id,company_id,project_id,"
                    "project_workspace_id,source_issue_id,mode,strategy_type,name,status,cwd,"
                    "repo_url,base_ref,branch_name,provider_type,last_used_at,opened_at,"
                    "created_at,updated_at) SELECT ?,?,?,?,?,?,?,?,'active',?,?,?,?,?,?,?,?,? "
                    "WHERE NOT EXISTS (SELECT 1 FROM execution_workspaces WHERE project_id=? "
                    "AND mode=? AND (? IS NULL OR source_issue_id=?) AND "
                    "status NOT IN ('archived','cleanup_failed'))",
                    json_pack("[s,s,s,s,s?,s,s,s,s,s?,s?,s?,s,s,s,s,s,s,s,s?,s?]", id, company_id,
                              project_id, pc_json_str(pw, "id"), isolated ? issue_id : NULL,
                              wmode, git ? "git_worktree" : "project_primary", name, dir, url,
                              git ? base : NULL, git ? branch : NULL,
                              git ? "git_worktree" : "local_fs", ts, ts, ts, ts, project_id,
                              wmode, isolated ? issue_id : NULL, isolated ? issue_id : NULL),
                    &inserted, err) < 0)
                return -1;
            if (inserted == 0)
                ew = first_row(app,
                               "SELECT * FROM execution_workspaces WHERE project_id=? AND mode=? "
                               "AND (? IS NULL OR source_issue_id=?) AND "
                               "status NOT IN ('archived','cleanup_failed') "
                               "ORDER BY created_at DESC LIMIT 1",
                               json_pack("[s,s,s?,s?]", project_id, wmode,
                                         isolated ? issue_id : NULL, isolated ? issue_id : NULL),
                               err);
            else
                ew = first_row(app, "SELECT * FROM execution_workspaces WHERE id=?",
                               json_pack("[s]", id), err);
            if (!ew)
                return pc_error_is_set(err) ? -1 : pc_error_set(err, 500, "workspace vanished");
            if (inserted) {
                out->pending = !in_place;
                copy(out->src, sizeof out->src, src);
            }
        }
        copy(out->id, sizeof out->id, pc_json_str(ew, "id"));
        copy(out->mode, sizeof out->mode, isolated ? "isolated" : "shared");
        copy(out->strategy, sizeof out->strategy, pc_json_str(ew, "strategy_type"));
        copy(out->source, sizeof out->source, isolated ? "task_session" : "project_primary");
        copy(out->cwd, sizeof out->cwd, pc_json_str(ew, "cwd"));
        copy(out->repo_url, sizeof out->repo_url, pc_json_str(ew, "repo_url"));
        copy(out->base_ref, sizeof out->base_ref, pc_json_str(ew, "base_ref"));
        copy(out->branch, sizeof out->branch, pc_json_str(ew, "branch_name"));
        if (!out->pending) {
            _cleanup_json_ json_t *meta = pc_json_from_text(pc_json_str(ew, "metadata"));
            copy(out->layout, sizeof out->layout, pc_json_str(meta, "gitLayout"));
            copy(out->src, sizeof out->src, pc_json_str(meta, "sourceCwd"));
        }
    }
    _cleanup_json_ json_t *cfg = pc_json_from_text(ew ? pc_json_str(ew, "config") : NULL);
    const char *ws_env = pc_json_str(cfg, "environmentId");
    const char *sel = ws_env && *ws_env       ? ws_env
                      : issue_env && *issue_env ? issue_env
                                                : policy_env;
    copy(out->env_id, sizeof out->env_id, sel);
    return 0;
}

void pc_run_workspace_env(const pc_run_workspace *w, const char *cwd, json_t *env)
{
    if (!w->id[0])
        return;
    json_object_set_new(env, "PAPERCLIP_WORKSPACE_ID", json_string(w->id));
    json_object_set_new(env, "PAPERCLIP_WORKSPACE_SOURCE", json_string(w->source));
    json_object_set_new(env, "PAPERCLIP_WORKSPACE_STRATEGY", json_string(w->strategy));
    if (w->repo_url[0])
        json_object_set_new(env, "PAPERCLIP_WORKSPACE_REPO_URL", json_string(w->repo_url));
    if (w->base_ref[0])
        json_object_set_new(env, "PAPERCLIP_WORKSPACE_REPO_REF", json_string(w->base_ref));
    if (w->branch[0])
        json_object_set_new(env, "PAPERCLIP_WORKSPACE_BRANCH", json_string(w->branch));
    if (!strcmp(w->strategy, "git_worktree"))
        json_object_set_new(env, "PAPERCLIP_WORKSPACE_WORKTREE_PATH", json_string(cwd));
}
