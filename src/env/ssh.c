/*
 * The SSH driver's transport: the system `ssh` client, run through the
 * process runner with an explicit environment and no user configuration
 * (-F /dev/null, no agent), so what a command does depends only on the
 * environment's config.
 *
 * Host keys: with strictHostKeyChecking the environment's knownHosts text is
 * written to <data-dir>/environments/<id>/known_hosts and ssh runs with
 * StrictHostKeyChecking=yes against that file alone; an unknown or changed
 * host key fails the connection. Without it, host keys are not checked at
 * all (StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null).
 *
 * The private key is written to a 0600 file under <data-dir>/tmp only for
 * the duration of one ssh invocation and removed right after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

void pc_sh_quote(pc_buf *b, const char *s)
{
    pc_buf_puts(b, "'", NULL);
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            pc_buf_puts(b, "'\\''", NULL);
        else
            pc_buf_append(b, p, 1, NULL);
    }
    pc_buf_puts(b, "'", NULL);
}

char *pc_ssh_remote_command(const char *cwd, json_t *env, const char *command,
                            const char *const *args)
{
    pc_buf b;
    pc_buf_init(&b, PC_BUF_UNBOUNDED);
    if (cwd && *cwd) {
        pc_buf_puts(&b, "mkdir -p -- ", NULL);
        pc_sh_quote(&b, cwd);
        pc_buf_puts(&b, " && cd -- ", NULL);
        pc_sh_quote(&b, cwd);
        pc_buf_puts(&b, " && ", NULL);
    }
    /* env -i: the remote command sees only the variables we pass, never the
     * login environment of the remote account. */
    pc_buf_puts(&b, "exec env -i", NULL);
    bool has_path = false;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        if (!json_is_string(v) || !*k || strchr(k, '='))
            continue;
        if (!strcmp(k, "PATH"))
            has_path = true;
        char *kv = pc_xasprintf("%s=%s", k, json_string_value(v));
        pc_buf_puts(&b, " ", NULL);
        pc_sh_quote(&b, kv);
        free(kv);
    }
    if (!has_path) {
        pc_buf_puts(&b, " ", NULL);
        pc_sh_quote(&b, "PATH=" PC_PROC_DEFAULT_PATH);
    }
    pc_buf_puts(&b, " ", NULL);
    pc_sh_quote(&b, command);
    for (int i = 0; args && args[i]; i++) {
        pc_buf_puts(&b, " ", NULL);
        pc_sh_quote(&b, args[i]);
    }
    return pc_buf_steal(&b, NULL);
}

void pc_ssh_target_from_config(pc_app *app, json_t *cfg, const char *env_id, pc_ssh_target *t)
{
    memset(t, 0, sizeof *t);
    t->host = pc_json_str(cfg, "host");
    t->port = (int)pc_json_int(cfg, "port", 22);
    t->user = pc_json_str(cfg, "username");
    t->remote_path = pc_json_str(cfg, "remoteWorkspacePath");
    t->private_key = pc_json_str(cfg, "privateKey");
    t->known_hosts = pc_json_str(cfg, "knownHosts");
    t->strict = pc_json_bool(cfg, "strictHostKeyChecking", true);
    t->connect_timeout_s = 10;
    snprintf(t->tmp_dir, sizeof t->tmp_dir, "%s/tmp", app->cfg.data_dir);
    if (env_id && pc_uuid_valid(env_id))
        snprintf(t->known_hosts_path, sizeof t->known_hosts_path,
                 "%s/environments/%s/known_hosts", app->cfg.data_dir, env_id);
}

/* Writes text (plus a final newline) to a fresh 0600 file in dir. */
static int pc_ssh_temp_file(const char *dir, const char *tag, const char *text, char *path,
                            size_t cap, pc_error_t *err)
{
    snprintf(path, cap, "%s/%s-XXXXXX", dir, tag);
    int fd = mkstemp(path); /* mode 0600 */
    if (fd < 0)
        return pc_error_errno(err, errno, "cannot create %s", path);
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n;
    if (ok && (n == 0 || text[n - 1] != '\n'))
        ok = write(fd, "\n", 1) == 1;
    close(fd);
    if (!ok) {
        unlink(path);
        return pc_error_errno(err, errno, "cannot write %s", path);
    }
    return 0;
}

int pc_ssh_run(pc_app *app, const pc_ssh_target *t, const char *remote_command,
               const pc_exec_request *req, pc_proc_ctl *ctl, pc_exec_result *res,
               pc_error_t *err)
{
    char key_path[1200] = "", kh_tmp[1200] = "";
    const char *kh_path = NULL;
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (pc_mkdir_p(t->tmp_dir, 0700) < 0)
        return pc_error_errno(err, errno, "cannot create %s", t->tmp_dir);
    if (t->strict) {
        const char *text = t->known_hosts ? t->known_hosts : "";
        if (t->known_hosts_path[0]) {
            char dir[1200];
            snprintf(dir, sizeof dir, "%s", t->known_hosts_path);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            if (pc_mkdir_p(dir, 0700) < 0)
                return pc_error_errno(err, errno, "cannot create %s", dir);
            size_t n = strlen(text);
            char *body = pc_xasprintf("%s%s", text, n && text[n - 1] != '\n' ? "\n" : "");
            int w = pc_write_file_atomic(t->known_hosts_path, body, strlen(body), 0600);
            free(body);
            if (w < 0)
                return pc_error_errno(err, errno, "cannot write %s", t->known_hosts_path);
            kh_path = t->known_hosts_path;
        } else {
            if (pc_ssh_temp_file(t->tmp_dir, "known-hosts", text, kh_tmp, sizeof kh_tmp, err) < 0)
                return -1;
            kh_path = kh_tmp;
        }
    }
    if (t->private_key && *t->private_key &&
        pc_ssh_temp_file(t->tmp_dir, "ssh-key", t->private_key, key_path, sizeof key_path,
                         err) < 0)
        goto out;

    char port[16], cto[48], khopt[1300];
    snprintf(port, sizeof port, "%d", t->port);
    snprintf(cto, sizeof cto, "ConnectTimeout=%lld", (long long)t->connect_timeout_s);
    snprintf(khopt, sizeof khopt, "UserKnownHostsFile=%s", kh_path ? kh_path : "/dev/null");
    const char *argv[48];
    int a = 0;
    argv[a++] = "ssh";
    argv[a++] = "-F";
    argv[a++] = "/dev/null";
    argv[a++] = "-T";
    const char *opts[] = {"BatchMode=yes",        cto,
                          "ServerAliveInterval=15", "ServerAliveCountMax=4",
                          "LogLevel=ERROR",       "IdentitiesOnly=yes",
                          "IdentityAgent=none",   "PasswordAuthentication=no",
                          "KbdInteractiveAuthentication=no",
                          "GlobalKnownHostsFile=/dev/null",
                          t->strict ? "StrictHostKeyChecking=yes" : "StrictHostKeyChecking=no",
                          khopt,                  NULL};
    for (int i = 0; opts[i]; i++) {
        argv[a++] = "-o";
        argv[a++] = opts[i];
    }
    if (key_path[0]) {
        argv[a++] = "-i";
        argv[a++] = key_path;
    }
    argv[a++] = "-p";
    argv[a++] = port;
    argv[a++] = "-l";
    argv[a++] = t->user;
    argv[a++] = "--";
    argv[a++] = t->host;
    argv[a++] = remote_command;
    argv[a] = NULL;

    json_t *env = json_pack("{s:s}", "PATH", PC_PROC_DEFAULT_PATH);
    pc_proc_opts po = {
        .file = "ssh",
        .argv = argv,
        .env = env,
        .stdin_data = req ? req->stdin_data : NULL,
        .stdin_len = req && req->stdin_data ? strlen(req->stdin_data) : 0,
        .timeout_ms = req ? req->timeout_ms : 60000,
        .grace_ms = req && req->grace_ms > 0 ? req->grace_ms : 5000,
        .output_cap = req ? req->output_cap : 0,
        .on_output = req ? req->on_output : NULL,
        .ud = req ? req->ud : NULL,
        .pid_file = t->pid_file,
    };
    rc = pc_proc_run(app->loop, &po, ctl, res, err);
    json_decref(env);
out:
    if (key_path[0])
        unlink(key_path);
    if (kh_tmp[0])
        unlink(kh_tmp);
    return rc;
}
