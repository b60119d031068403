/*
 * The ssh driver: config (upstream's texts), probe, and leases whose
 * commands run on a remote host through the system `ssh` client.
 *
 * Config: strict {host, port 1..65535 (22), username, remoteWorkspacePath
 * (absolute), privateKey (input only), privateKeySecretRef, knownHosts
 * (""->null), strictHostKeyChecking (true)}. A plaintext key becomes a
 * company secret in PERSIST mode; a partial PATCH merges onto the stored
 * config, so the secret ref survives it.
 *
 * Transport: the system `ssh` client, run through the
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
#include <math.h>
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

/* ------------------------------------------------------------- config */

static const char *const ssh_keys[] = {"host",       "port",      "username",
                                       "remoteWorkspacePath", "privateKey",
                                       "privateKeySecretRef", "knownHosts",
                                       "strictHostKeyChecking", NULL};

static int pc_parse_secret_ref(pc_envcfg_ctx *c, json_t *v, json_t **out, pc_error_t *err)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    static const char *const keys[] = {"type", "secretId", "version", NULL};
    if (!json_is_object(v) || pc_envcfg_unknown_key(v, keys, err) < 0)
        return pc_error_is_set(err) ? -1
                                    : pc_error_set(err, 422, "privateKeySecretRef: Invalid input");
    const char *type = pc_json_str(v, "type"), *sid = pc_json_str(v, "secretId");
    if (!type || strcmp(type, "secret_ref") != 0)
        return pc_error_set(err, 422, "privateKeySecretRef.type: Invalid input: expected \"secret_ref\"");
    if (!sid || !pc_uuid_valid(sid))
        return pc_error_set(err, 422, "privateKeySecretRef.secretId: Invalid UUID");
    json_t *ver = json_object_get(v, "version");
    if (ver && !(json_is_string(ver) && !strcmp(json_string_value(ver), "latest")) &&
        !(json_is_integer(ver) && json_integer_value(ver) > 0))
        return pc_error_set(err, 422, "privateKeySecretRef.version: Invalid input");
    if (!pc_envcfg_secret_exists(c->app, c->company_id, sid))
        return pc_error_set(err, 422, "Secret not found");
    *out = json_pack("{s:s,s:s,s:o}", "type", "secret_ref", "secretId", sid, "version",
                     ver ? json_incref(ver) : json_string("latest"));
    return 0;
}

static const char *pc_ref_secret_id(json_t *ref)
{
    return json_is_object(ref) ? pc_json_str(ref, "secretId") : NULL;
}

static json_t *pc_ssh_normalize(pc_envcfg_ctx *c, json_t *input, json_t *base, pc_error_t *err)
{
    /* A partial PATCH merges onto the stored config. */
    json_t *m = base && json_is_object(base) ? json_deep_copy(base) : json_object();
    if (input)
        json_object_update(m, input);
    char *host = NULL, *user = NULL, *path = NULL, *key = NULL, *known = NULL;
    json_t *out = NULL, *ref = NULL;
    int64_t port = 22;
    json_t *pv = json_object_get(m, "port");
    if (pc_envcfg_req_str(m, "host", "SSH environments require a host.", &host, err) < 0)
        goto done;
    if (pv && !json_is_null(pv)) {
        if (json_is_integer(pv)) {
            port = json_integer_value(pv);
        } else if (json_is_real(pv) && fabs(json_real_value(pv)) < 0x1p62 &&
                   json_real_value(pv) == (double)(int64_t)json_real_value(pv)) {
            port = (int64_t)json_real_value(pv);
        } else if (json_is_string(pv)) {
            char *end;
            port = strtoll(json_string_value(pv), &end, 10);
            if (*end || end == json_string_value(pv))
                port = -1;
        } else {
            port = -1;
        }
        if (port < 1 || port > 65535) {
            pc_error_set(err, 422, "SSH port must be an integer between 1 and 65535.");
            goto done;
        }
    }
    if (pc_envcfg_req_str(m, "username", "SSH environments require a username.", &user, err) < 0 ||
        pc_envcfg_req_str(m, "remoteWorkspacePath", "SSH environments require a remote workspace path.",
                   &path, err) < 0)
        goto done;
    if (path[0] != '/') {
        pc_error_set(err, 422, "SSH remote workspace path must be absolute.");
        goto done;
    }
    /* privateKey may also be given as a reference to a company secret. */
    json_t *pk = json_object_get(m, "privateKey");
    if (json_is_object(pk)) {
        json_object_set(m, "privateKeySecretRef", pk);
        json_object_del(m, "privateKey");
    }
    if (pc_envcfg_opt_str(m, "privateKey", &key, err) < 0 ||
        pc_parse_secret_ref(c, json_object_get(m, "privateKeySecretRef"), &ref, err) < 0 ||
        pc_envcfg_opt_str(m, "knownHosts", &known, err) < 0)
        goto done;
    bool strict = true;
    json_t *sv = json_object_get(m, "strictHostKeyChecking");
    if (sv && !json_is_null(sv)) {
        if (!json_is_boolean(sv)) {
            pc_error_set(err, 422, "strictHostKeyChecking: Invalid input: expected boolean");
            goto done;
        }
        strict = json_is_true(sv);
    }
    if (pc_envcfg_unknown_key(m, ssh_keys, err) < 0)
        goto done;
    const char *old_id = pc_ref_secret_id(base ? json_object_get(base, "privateKeySecretRef") : NULL);
    if (key && c->mode == PC_ENVCFG_PERSIST) {
        /* A new key replaces the stored one; the old secret goes once the
         * new config is committed. */
        char id[PC_SECRET_ID_LEN + 1];
        if (pc_envcfg_store_secret(c, "ssh", "private-key", key, id, err) < 0)
            goto done;
        json_decref(ref);
        ref = json_pack("{s:s,s:s,s:s}", "type", "secret_ref", "secretId", id, "version", "latest");
    }
    if (old_id && (!ref || strcmp(old_id, pc_ref_secret_id(ref)) != 0))
        json_array_append_new(c->obsolete, json_string(old_id));
    out = json_pack("{s:s,s:I,s:s,s:s,s:n,s:o,s:s?,s:b}", "host", host, "port", (json_int_t)port,
                    "username", user, "remoteWorkspacePath", path, "privateKey",
                    "privateKeySecretRef", ref ? json_incref(ref) : json_null(), "knownHosts",
                    known, "strictHostKeyChecking", strict);
    if (!known)
        json_object_set_new(out, "knownHosts", json_null());
    if (key && c->mode == PC_ENVCFG_PROBE)
        json_object_set_new(out, "privateKey", json_string(key));
done:
    json_decref(ref);
    json_decref(m);
    free(host);
    free(user);
    free(path);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    free(known);
    return out;
}


static void pc_ssh_secret_ids(pc_app *app, json_t *config, json_t *out)
{
    (void)app;
    const char *id = pc_ref_secret_id(json_object_get(config, "privateKeySecretRef"));
    if (id && pc_uuid_valid(id))
        json_array_append_new(out, json_string(id));
}

static json_t *pc_ssh_resolve(pc_app *app, const char *company_id, json_t *config,
                              pc_error_t *err)
{
    json_t *r = json_deep_copy(config);
    const char *id = pc_ref_secret_id(json_object_get(r, "privateKeySecretRef"));
    if (id && !pc_json_str(r, "privateKey")) {
        char *v = pc_secret_resolve(app->db, company_id, id, err);
        if (!v) {
            pc_error_prefix(err, "cannot resolve the SSH private key");
            json_decref(r);
            return NULL;
        }
        json_object_set_new(r, "privateKey", json_string(v));
        pc_secret_free(v);
    }
    return r;
}

/* -------------------------------------------------------------- probe */

/* The last non-empty line(s) of ssh's stderr, cut to a readable size. */
static char *pc_excerpt(const pc_buf *b, size_t max)
{
    size_t n = b->len;
    while (n && (b->data[n - 1] == '\n' || b->data[n - 1] == '\r'))
        n--;
    size_t start = n > max ? n - max : 0;
    return pc_utf8_sanitize(b->data ? b->data + start : "", n - start);
}

static json_t *pc_ssh_probe(pc_app *app, const char *company_id, const char *env_id, json_t *cfg,
                            pc_error_t *err)
{
    (void)company_id;
    pc_ssh_target t;
    pc_ssh_target_from_config(app, cfg, env_id, &t);
    pc_buf cmd;
    pc_buf_init(&cmd, PC_BUF_UNBOUNDED);
    pc_buf_puts(&cmd, "mkdir -p -- ", NULL);
    pc_sh_quote(&cmd, t.remote_path);
    pc_buf_puts(&cmd, " && cd -- ", NULL);
    pc_sh_quote(&cmd, t.remote_path);
    pc_buf_puts(&cmd, " && pwd", NULL);
    pc_exec_request req = {.timeout_ms = 30000, .grace_ms = 2000, .output_cap = 64 * 1024};
    pc_exec_result res;
    int64_t t0 = pc_mono_ms();
    int rc = pc_ssh_run(app, &t, cmd.data, &req, NULL, &res, err);
    pc_buf_release(&cmd);
    if (rc < 0) {
        pc_exec_result_free(&res);
        return NULL;
    }
    char target[700];
    snprintf(target, sizeof target, "%s@%s:%d", t.user, t.host, t.port);
    json_t *details = json_pack("{s:s,s:i,s:s,s:s,s:b,s:I}", "host", t.host, "port", t.port,
                                "username", t.user, "remoteWorkspacePath", t.remote_path,
                                "strictHostKeyChecking", t.strict, "durationMs",
                                (json_int_t)(pc_mono_ms() - t0));
    json_t *out;
    if (res.has_exit_code && res.exit_code == 0) {
        char summary[1024];
        snprintf(summary, sizeof summary, "Connected to %s and verified %s.", target,
                 t.remote_path);
        out = json_pack("{s:b,s:s,s:s,s:o}", "ok", 1, "driver", "ssh", "summary", summary,
                        "details", details);
    } else {
        char *why = pc_excerpt(&res.err, 600);
        if (!*why) {
            free(why);
            why = res.timed_out ? pc_xstrdup("timed out")
                                : pc_xasprintf("ssh exited with status %d", res.exit_code);
        }
        char *summary = pc_xasprintf("SSH connection to %s failed: %s", target, why);
        json_object_set_new(details, "error", json_string(why));
        if (res.has_exit_code)
            json_object_set_new(details, "exitCode", json_integer(res.exit_code));
        json_object_set_new(details, "timedOut", json_boolean(res.timed_out));
        out = json_pack("{s:b,s:s,s:s,s:o}", "ok", 0, "driver", "ssh", "summary", summary,
                        "details", details);
        free(summary);
        free(why);
    }
    pc_exec_result_free(&res);
    return out;
}

/* ------------------------------------------------------------- leases */

static int pc_ssh_acquire(pc_lease *l, const pc_lease_request *req, pc_error_t *err)
{
    (void)req;
    json_t *cfg = pc_lease_config(l);
    snprintf(l->provider, sizeof l->provider, "ssh");
    char *plid = pc_xasprintf("ssh://%s@%s:%lld%s", pc_json_str(cfg, "username"),
                              pc_json_str(cfg, "host"), (long long)pc_json_int(cfg, "port", 22),
                              pc_json_str(cfg, "remoteWorkspacePath"));
    json_t *m = json_pack("{s:s,s:s,s:s}", "driver", "ssh", "phase", "ready", "remoteCwd",
                          pc_json_str(cfg, "remoteWorkspacePath"));
    pc_lease_meta_merge(l->app, l->id, m);
    json_decref(m);
    int rc = pc_db_exec_s(l->app->db, "UPDATE environment_leases SET provider_lease_id=? WHERE id=?",
                          json_pack("[s,s]", plid, l->id), NULL, err);
    free(plid);
    return rc;
}

static int pc_ssh_realize(pc_lease *l, const char *local_path, char **out, pc_error_t *err)
{
    (void)local_path;
    pc_app *app = l->app;
    json_t *cfg = pc_lease_config(l);
    char *dir = pc_xstrdup(pc_json_str(cfg, "remoteWorkspacePath"));
    json_t *resolved = pc_ssh_resolve(app, l->company_id, cfg, err);
    if (!resolved) {
        free(dir);
        return -1;
    }
    pc_ssh_target t;
    pc_ssh_target_from_config(app, resolved, l->env_id, &t);
    pc_buf cmd;
    pc_buf_init(&cmd, PC_BUF_UNBOUNDED);
    pc_buf_puts(&cmd, "mkdir -p -- ", NULL);
    pc_sh_quote(&cmd, dir);
    pc_exec_request req = {.timeout_ms = 60000, .output_cap = 64 * 1024};
    pc_exec_result res;
    int rc = pc_ssh_run(app, &t, cmd.data, &req, &l->ctl, &res, err);
    pc_buf_release(&cmd);
    json_decref(resolved);
    if (rc == 0 && !(res.has_exit_code && res.exit_code == 0))
        rc = pc_error_set(err, 502, "cannot create %s over ssh: %.300s", dir,
                          res.err.data ? res.err.data : "");
    pc_exec_result_free(&res);
    if (rc < 0) {
        pc_error_prefix(err, "workspace_realization_failed");
        free(dir);
        return -1;
    }
    *out = dir;
    return 0;
}

static int pc_ssh_execute(pc_lease *l, const pc_exec_request *req, const char *pid_file,
                          pc_exec_result *res, pc_error_t *err)
{
    json_t *resolved = pc_ssh_resolve(l->app, l->company_id, pc_lease_config(l), err);
    if (!resolved) {
        memset(res, 0, sizeof *res);
        return -1;
    }
    pc_ssh_target t;
    pc_ssh_target_from_config(l->app, resolved, l->env_id, &t);
    t.pid_file = pid_file;
    char *cmd = pc_ssh_remote_command(req->cwd ? req->cwd : l->cwd, req->env, req->command,
                                      req->args);
    int rc = pc_ssh_run(l->app, &t, cmd, req, &l->ctl, res, err);
    free(cmd);
    json_decref(resolved);
    return rc;
}

const pc_env_driver pc_env_driver_ssh = {
    .name = "ssh",
    .runs = true,
    .remote = true,
    .normalize = pc_ssh_normalize,
    .secret_ids = pc_ssh_secret_ids,
    .resolve = pc_ssh_resolve,
    .probe = pc_ssh_probe,
    .acquire = pc_ssh_acquire,
    .realize = pc_ssh_realize,
    .execute = pc_ssh_execute,
    /* The ssh client of a command is our child: killing its recorded
     * process group ends the remote command with it. */
    .reconcile = pc_lease_kill_processes,
};
