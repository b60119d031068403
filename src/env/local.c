/*
 * The local driver: commands run on this host through the process runner
 * (proc.c), in <data-dir>/workspaces/<env-id> unless the run brings its own
 * directory.
 *
 * Config: any object, stored as given (a PATCH replaces it whole).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"

static json_t *pc_local_normalize(pc_envcfg_ctx *c, json_t *input, json_t *base,
                                  pc_error_t *err)
{
    json_t *m = input                          ? json_deep_copy(input)
                : base && json_is_object(base) ? json_deep_copy(base)
                                               : json_object();
    (void)c;
    (void)err;
    return m;
}

static json_t *pc_local_probe(pc_app *app, const char *company_id, const char *env_id,
                              json_t *cfg, pc_error_t *err)
{
    (void)app;
    (void)company_id;
    (void)env_id;
    (void)cfg;
    (void)err;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    return json_pack("{s:b,s:s,s:s,s:{s:s}}", "ok", 1, "driver", "local", "summary",
                     "Local environment is available on this Paperclip host.", "details",
                     "hostname", host);
}

static int pc_local_acquire(pc_lease *l, const pc_lease_request *req, pc_error_t *err)
{
    (void)req;
    (void)err;
    snprintf(l->provider, sizeof l->provider, "local");
    json_t *m = json_pack("{s:s,s:s}", "driver", "local", "phase", "ready");
    pc_lease_meta_merge(l->app, l->id, m);
    json_decref(m);
    return 0;
}

static int pc_local_realize(pc_lease *l, const char *local_path, char **out, pc_error_t *err)
{
    char *dir = local_path && *local_path
                    ? pc_xstrdup(local_path)
                    : pc_xasprintf("%s/workspaces/%s", l->app->cfg.data_dir, l->env_id);
    if (pc_mkdir_p(dir, 0700) < 0) {
        pc_error_errno(err, errno, "workspace_realization_failed: cannot create %s", dir);
        free(dir);
        return -1;
    }
    *out = dir;
    return 0;
}

static int pc_local_execute(pc_lease *l, const pc_exec_request *req, const char *pid_file,
                            pc_exec_result *res, pc_error_t *err)
{
    size_t n = 0;
    while (req->args && req->args[n])
        n++;
    const char **argv = pc_xcalloc(n + 2, sizeof *argv);
    argv[0] = req->command;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = req->args[i];
    pc_proc_opts po = {
        .file = req->command,
        .argv = argv,
        .cwd = req->cwd ? req->cwd : l->cwd,
        .env = req->env,
        .stdin_data = req->stdin_data,
        .stdin_len = req->stdin_data ? strlen(req->stdin_data) : 0,
        .timeout_ms = req->timeout_ms,
        .grace_ms = req->grace_ms,
        .output_cap = req->output_cap,
        .on_output = req->on_output,
        .ud = req->ud,
        .pid_file = pid_file,
    };
    int rc = pc_proc_run(l->app->loop, &po, &l->ctl, res, err);
    free(argv);
    return rc;
}

const pc_env_driver pc_env_driver_local = {
    .name = "local",
    .one_per_company = true,
    .runs = true,
    .remote = false,
    .normalize = pc_local_normalize,
    .probe = pc_local_probe,
    .acquire = pc_local_acquire,
    .realize = pc_local_realize,
    .execute = pc_local_execute,
    /* Commands are our children in their own process groups and outlive a
     * daemon that dies; their recorded groups are killed at restart. */
    .reconcile = pc_lease_kill_processes,
};
