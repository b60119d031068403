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
 * the duration of one ssh invocation (for the tunnel: until it is
 * established) and removed right after.
 *
 * Callbacks: a run on the remote host cannot reach the daemon's loopback
 * ingress, so each lease opens a reverse tunnel once its workspace exists:
 * a background `ssh -N -R 127.0.0.1:0:<ingress host>:<ingress port>` with
 * ExitOnForwardFailure, whose "Allocated port N" (ssh's own log line, on
 * its stderr, kept in <data-dir>/leases/<lease>.tunnel.log) names the
 * remote port. The run's PAPERCLIP_API_URL is then http://127.0.0.1:N on
 * the remote host. The tunnel is its own process group, recorded in
 * <data-dir>/leases/<lease>.tunnel.pid so start-up reconciliation kills it
 * after a crash, and is torn down when the lease is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/spawn.h"

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

/* The files one ssh invocation needs while it authenticates: the host
 * keys it trusts and the private key. */
typedef struct ssh_files {
    char key_path[1200], kh_tmp[1200];
    const char *kh_path;
} ssh_files;

static void ssh_files_drop(ssh_files *f)
{
    if (f->key_path[0])
        unlink(f->key_path);
    if (f->kh_tmp[0])
        unlink(f->kh_tmp);
    f->key_path[0] = f->kh_tmp[0] = '\0';
}

static int ssh_files_make(const pc_ssh_target *t, ssh_files *f, pc_error_t *err)
{
    memset(f, 0, sizeof *f);
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
            f->kh_path = t->known_hosts_path;
        } else {
            if (pc_ssh_temp_file(t->tmp_dir, "known-hosts", text, f->kh_tmp, sizeof f->kh_tmp,
                                 err) < 0)
                return -1;
            f->kh_path = f->kh_tmp;
        }
    }
    if (t->private_key && *t->private_key &&
        pc_ssh_temp_file(t->tmp_dir, "ssh-key", t->private_key, f->key_path, sizeof f->key_path,
                         err) < 0) {
        ssh_files_drop(f);
        return -1;
    }
    return 0;
}

/* An ssh command line and the strings it points to. */
typedef struct ssh_cmd {
    const char *argv[56];
    char port[16], cto[48], khopt[1300];
} ssh_cmd;

/* ssh with no user configuration, no agent and only the target's keys.
 * `pre` (NULL-terminated, may be NULL) goes before the shared options: ssh
 * keeps the first value an option gets, so these override them. */
static void ssh_cmd_build(ssh_cmd *c, const pc_ssh_target *t, const ssh_files *f,
                          const char *const *pre, const char *remote_command)
{
    snprintf(c->port, sizeof c->port, "%d", t->port);
    snprintf(c->cto, sizeof c->cto, "ConnectTimeout=%lld", (long long)t->connect_timeout_s);
    snprintf(c->khopt, sizeof c->khopt, "UserKnownHostsFile=%s",
             f->kh_path ? f->kh_path : "/dev/null");
    int a = 0;
    c->argv[a++] = "ssh";
    c->argv[a++] = "-F";
    c->argv[a++] = "/dev/null";
    c->argv[a++] = "-T";
    for (int i = 0; pre && pre[i] && a < 20; i++)
        c->argv[a++] = pre[i];
    const char *opts[] = {"BatchMode=yes",        c->cto,
                          "ServerAliveInterval=15", "ServerAliveCountMax=4",
                          "LogLevel=ERROR",       "IdentitiesOnly=yes",
                          "IdentityAgent=none",   "PasswordAuthentication=no",
                          "KbdInteractiveAuthentication=no",
                          "GlobalKnownHostsFile=/dev/null",
                          t->strict ? "StrictHostKeyChecking=yes" : "StrictHostKeyChecking=no",
                          c->khopt,               NULL};
    for (int i = 0; opts[i]; i++) {
        c->argv[a++] = "-o";
        c->argv[a++] = opts[i];
    }
    if (f->key_path[0]) {
        c->argv[a++] = "-i";
        c->argv[a++] = f->key_path;
    }
    c->argv[a++] = "-p";
    c->argv[a++] = c->port;
    c->argv[a++] = "-l";
    c->argv[a++] = t->user;
    c->argv[a++] = "--";
    c->argv[a++] = t->host;
    if (remote_command)
        c->argv[a++] = remote_command;
    c->argv[a] = NULL;
}

int pc_ssh_run(pc_app *app, const pc_ssh_target *t, const char *remote_command,
               const pc_exec_request *req, pc_proc_ctl *ctl, pc_exec_result *res,
               pc_error_t *err)
{
    memset(res, 0, sizeof *res);
    ssh_files f;
    if (ssh_files_make(t, &f, err) < 0)
        return -1;
    ssh_cmd c;
    ssh_cmd_build(&c, t, &f, NULL, remote_command);
    json_t *env = json_pack("{s:s}", "PATH", PC_PROC_DEFAULT_PATH);
    pc_proc_opts po = {
        .file = "ssh",
        .argv = c.argv,
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
    int rc = pc_proc_run(app->loop, &po, ctl, res, err);
    json_decref(env);
    ssh_files_drop(&f);
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

static void pc_ssh_tunnel_paths(pc_lease *l, char *pid_file, size_t cap)
{
    snprintf(pid_file, cap, "%s/leases/%s.tunnel.pid", l->app->cfg.data_dir, l->id);
    snprintf(l->tunnel_log, sizeof l->tunnel_log, "%s/leases/%s.tunnel.log",
             l->app->cfg.data_dir, l->id);
}

static void pc_ssh_tunnel_close(pc_lease *l)
{
    if (l->tunnel_pid > 0) {
        pc_spawn_kill_group(l->tunnel_pid, SIGTERM);
        /* ssh exits at once on SIGTERM; SIGKILL if it has not after 5 s. */
        int st;
        for (int i = 0; i < 500 && waitpid(l->tunnel_pid, &st, WNOHANG) == 0; i++) {
            if (i == 499) {
                pc_spawn_kill_group(l->tunnel_pid, SIGKILL);
                waitpid(l->tunnel_pid, &st, 0);
            }
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    l->tunnel_pid = 0;
    char pid_file[1300];
    pc_ssh_tunnel_paths(l, pid_file, sizeof pid_file);
    unlink(pid_file);
    unlink(l->tunnel_log);
}

/* Host and port of the agent ingress, as the daemon reaches it itself. */
static int pc_ingress_target(pc_app *app, char *host, size_t hcap, int *port)
{
    const char *u = strstr(app->agent_listen_url, "://");
    const char *colon = strrchr(app->agent_listen_url, ':');
    if (!u || !colon || colon < u + 3)
        return -1;
    u += 3;
    snprintf(host, hcap, "%.*s", (int)(colon - u), u);
    *port = atoi(colon + 1);
    if (!strcmp(host, "0.0.0.0") || !*host)
        snprintf(host, hcap, "127.0.0.1");
    else if (!strcmp(host, "[::]"))
        snprintf(host, hcap, "[::1]");
    return *port > 0 ? 0 : -1;
}

/* Starts the lease's reverse tunnel and waits until ssh reports the remote
 * port; sets the lease's API URL to it. */
static int pc_ssh_tunnel_open(pc_lease *l, pc_error_t *err)
{
    pc_app *app = l->app;
    char ihost[300];
    int iport;
    if (pc_ingress_target(app, ihost, sizeof ihost, &iport) < 0)
        return pc_error_set(err, 500, "the agent ingress has no address to tunnel to");
    json_t *resolved = pc_ssh_resolve(app, l->company_id, pc_lease_config(l), err);
    if (!resolved)
        return -1;
    pc_ssh_target t;
    pc_ssh_target_from_config(app, resolved, l->env_id, &t);
    char pid_file[1300], dir[1200];
    snprintf(dir, sizeof dir, "%s/leases", app->cfg.data_dir);
    pc_ssh_tunnel_paths(l, pid_file, sizeof pid_file);
    ssh_files f;
    int rc = -1, logfd = -1, nullfd = -1;
    if (pc_mkdir_p(dir, 0700) < 0) {
        json_decref(resolved);
        return pc_error_errno(err, errno, "cannot create %s", dir);
    }
    if (ssh_files_make(&t, &f, err) < 0) {
        json_decref(resolved);
        return -1;
    }
    char fwd[400];
    snprintf(fwd, sizeof fwd, "127.0.0.1:0:%s:%d", ihost, iport);
    /* INFO: "Allocated port N" is logged at that level. */
    const char *pre[] = {"-N", "-R", fwd, "-o", "ExitOnForwardFailure=yes", "-o",
                         "LogLevel=INFO", NULL};
    ssh_cmd c;
    ssh_cmd_build(&c, &t, &f, pre, NULL);
    logfd = open(l->tunnel_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        pc_error_errno(err, errno, "cannot open %s", l->tunnel_log);
        goto out;
    }
    char *envp[] = {"PATH=" PC_PROC_DEFAULT_PATH, NULL};
    pc_spawn_opts so = {.file = "ssh",
                        .argv = c.argv,
                        .envp = envp,
                        .stdin_fd = nullfd,
                        .stdout_fd = nullfd,
                        .stderr_fd = logfd};
    pid_t pid;
    int e = pc_spawn(&so, &pid, NULL);
    if (e) {
        pc_error_errno(err, e, "cannot start ssh for the callback tunnel");
        goto out;
    }
    l->tunnel_pid = pid;
    pc_proc_record(pid_file, pid);
    /* Authentication is bounded by ConnectTimeout; the forward request
     * follows at once. Poll ssh's log for its answer. */
    int remote_port = 0;
    bool exited = false;
    for (int i = 0; i < (int)(t.connect_timeout_s + 20) * 20 && !remote_port && !exited; i++) {
        char *log = NULL;
        size_t n = 0;
        if (pc_read_file(l->tunnel_log, 64 * 1024, &log, &n) == 0 && log) {
            const char *p = strstr(log, "Allocated port ");
            if (p)
                remote_port = atoi(p + 15);
        }
        free(log);
        int st;
        if (!remote_port && waitpid(pid, &st, WNOHANG) == pid) {
            exited = true;
            l->tunnel_pid = 0;
        }
        if (!remote_port && !exited) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (remote_port <= 0 || remote_port > 65535) {
        char *log = NULL;
        size_t n = 0;
        pc_read_file(l->tunnel_log, 4096, &log, &n);
        pc_error_set(err, 502, "cannot open the callback tunnel to %s: %s", t.host,
                     log && *log ? log : exited ? "ssh exited" : "no port allocated in time");
        free(log);
        pc_ssh_tunnel_close(l);
        goto out;
    }
    free(l->api_url);
    l->api_url = pc_xasprintf("http://127.0.0.1:%d", remote_port);
    json_t *m = json_pack("{s:i,s:s}", "tunnelRemotePort", remote_port, "callbackUrl", l->api_url);
    pc_lease_meta_merge(app, l->id, m);
    json_decref(m);
    rc = 0;
out:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    ssh_files_drop(&f);
    json_decref(resolved);
    return rc;
}

static int pc_ssh_release(pc_lease *l, bool *retain, pc_error_t *err)
{
    (void)err;
    *retain = false;
    pc_ssh_tunnel_close(l);
    return 0;
}

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
    if (rc == 0 && !l->tunnel_pid)
        rc = pc_ssh_tunnel_open(l, err);
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
    .release = pc_ssh_release,
    /* The ssh client of a command is our child: killing its recorded
     * process group ends the remote command with it. */
    .reconcile = pc_lease_kill_processes,
};
