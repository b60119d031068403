/*
 * The execution workspace of a run (run/workspace.c): where in a project the
 * run works, and the first links of its environment chain.
 *
 * An issue in a project whose executionWorkspacePolicy is enabled with
 * defaultMode shared_workspace or isolated_workspace gets an
 * execution_workspaces row: shared_workspace has one per project (the
 * project workspace's cwd, or a clone of its repoUrl), isolated_workspace
 * one per issue (a git worktree on a new branch, or a clone). A row that is
 * not archived is reused by the next run of the same issue (isolated) or
 * project (shared). Each git command is a workspace_operations row of the
 * run, with its output.
 *
 * Environment selection (env_id): the execution workspace's
 * config.environmentId, then the issue's executionWorkspaceSettings
 * .environmentId, then the project policy's environmentId; empty when none
 * of them is set (the caller goes on to the agent's default, then the
 * company's Local environment).
 */
#ifndef PC_RUN_WORKSPACE_H
#define PC_RUN_WORKSPACE_H

#include <jansson.h>
#include <stdbool.h>

#include "app.h"
#include "lib/error.h"

typedef struct pc_run_workspace {
    char id[40];             /* execution workspace id; "" when the run has none */
    char mode[24];           /* "shared" or "isolated": the lease's workspaceMode */
    char strategy[24];       /* project_primary | git_worktree */
    char source[24];         /* project_primary | task_session: upstream's WORKSPACE_SOURCE */
    char cwd[1024];          /* host directory the run works in; "" when none */
    char repo_url[1024];
    char base_ref[256];
    char branch[256];
    char env_id[40];         /* the selection before the agent's default; "" when none */
    char src[1024];          /* the project's host repository, when it has one */
    char layout[12];         /* git: "worktree" or "clone"; "" otherwise */
    bool pending;            /* a new row whose directory is not made yet */
} pc_run_workspace;

/* Finds or creates the run's execution workspace row and picks env_id.
 * Returns 0 (out filled; out->id "" when the issue has no project workspace
 * to work in) or -1 with err set. A new row's directory is made by
 * pc_run_workspace_realize once the environment is known. */
int pc_run_workspace_prepare(pc_app *app, const char *company_id, const char *issue_id,
                             pc_run_workspace *out, pc_error_t *err);

/* Makes a new workspace's directory: a git worktree of the host
 * repository for a local run; for a remote one (remote: the environment's
 * driver is not local) a clone, since a worktree's .git names a directory
 * of the host repository the target does not have; a clone of repoUrl
 * without a host repository. 0, or -1 with err set (the failed git step is
 * a failed workspace operation of run_id; the row becomes cleanup_failed). */
int pc_run_workspace_realize(pc_app *app, const char *company_id, const char *run_id,
                             pc_run_workspace *w, bool remote, pc_error_t *err);

/* After the run: a clone of the host repository hands its branch back
 * (`git fetch -- <clone> +refs/heads/B:refs/heads/B` in the host
 * repository, phase branch_fetch), so the run's commits are on the branch
 * there as they are with a worktree. 0 when there is nothing to do. */
int pc_run_workspace_finish(pc_app *app, const char *company_id, const char *run_id,
                            const pc_run_workspace *w, pc_error_t *err);

/* Adds upstream's PAPERCLIP_WORKSPACE_* variables for w to env (a run's
 * environment object); cwd is where the command actually runs. */
void pc_run_workspace_env(const pc_run_workspace *w, const char *cwd, json_t *env);

#endif
