/*
 * The local driver: commands run on this host through the process runner
 * (proc.c), in <data-dir>/workspaces/<env-id> unless the run brings its own
 * directory.
 *
 * Config: any object, stored as given (a PATCH replaces it whole), except
 * `apiUrl`, the URL runs call back on instead of the daemon's own. A run
 * sends its token there, so it must name this host: a loopback address
 * (127.0.0.0/8, ::1, localhost) or one of the daemon's allowedHostnames.
 * Anything else is a 400 validation error on apiUrl, and a stored config
 * that no longer passes (allowedHostnames changed) fails the lease instead
 * of handing out the token.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"

#define PC_API_URL_MAX 2048

static const char *const api_url_rule =
    "apiUrl must be an http(s) URL whose host is a loopback address or an allowed hostname";

/* Whether host (without brackets, lower case) is listed in the
 * comma-separated allowed list. */
static bool pc_host_allowed(const char *list, const char *host)
{
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (n && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (n && n == strlen(host) && !strncasecmp(s, host, n))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

static bool pc_host_loopback(const char *host, bool bracketed)
{
    if (bracketed) {
        struct in6_addr a6;
        return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    if (!strcasecmp(host, "localhost"))
        return true;
    /* inet_pton takes strict dotted decimal only, so no octal, hex or
     * shortened form can name another address. */
    struct in_addr a4;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* Checks an apiUrl value; 400 naming the field when it may leave the host. */
static int pc_local_check_api_url(pc_app *app, json_t *v, pc_error_t *err)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return pc_error_validation(err, "apiUrl", "Expected string");
    const char *url = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || len > PC_API_URL_MAX || strlen(url) != len)
        return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
    const char *rest;
    if (!strncasecmp(url, "http://", 7))
        rest = url + 7;
    else if (!strncasecmp(url, "https://", 8))
        rest = url + 8;
    else
        return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
    size_t alen = strcspn(rest, "/?#");
    /* Clients disagree on where userinfo, backslashes and white space end an
     * authority; refusing them leaves one reading of the host. */
    for (size_t i = 0; i < alen; i++) {
        unsigned char ch = (unsigned char)rest[i];
        if (ch == '@' || ch == '\\' || ch <= ' ' || ch >= 0x7f || ch == '%')
            return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
    }
    for (const char *p = rest + alen; *p; p++)
        if ((unsigned char)*p < ' ' || *p == '\\')
            return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
    char host[256];
    const char *port;
    bool bracketed = rest[0] == '[';
    if (bracketed) {
        const char *close = memchr(rest, ']', alen);
        size_t hn = close ? (size_t)(close - rest - 1) : 0;
        if (!close || hn == 0 || hn >= sizeof host)
            return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
        memcpy(host, rest + 1, hn);
        host[hn] = '\0';
        port = close + 1;
    } else {
        size_t hn = strcspn(rest, ":/?#");
        if (hn == 0 || hn >= sizeof host)
            return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
        memcpy(host, rest, hn);
        host[hn] = '\0';
        for (size_t i = 0; i < hn; i++) {
            unsigned char ch = (unsigned char)host[i];
            if (!isalnum(ch) && ch != '.' && ch != '-')
                return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
        }
        port = rest + hn;
    }
    if (port < rest + alen) {
        if (*port != ':')
            return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
        const char *digits = port + 1;
        size_t dn = (size_t)(rest + alen - digits);
        long pn = 0;
        for (size_t i = 0; i < dn; i++) {
            if (!isdigit((unsigned char)digits[i]) || pn > 65535)
                return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
            pn = pn * 10 + (digits[i] - '0');
        }
        if (dn == 0 || pn < 1 || pn > 65535)
            return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
    }
    if (pc_host_loopback(host, bracketed))
        return 0;
    if (!bracketed && app && pc_host_allowed(app->cfg.allowed_hostnames, host))
        return 0;
    return pc_error_validation(err, "apiUrl", "%s", api_url_rule);
}

static json_t *pc_local_normalize(pc_envcfg_ctx *c, json_t *input, json_t *base,
                                  pc_error_t *err)
{
    json_t *m = input                          ? json_deep_copy(input)
                : base && json_is_object(base) ? json_deep_copy(base)
                                               : json_object();
    if (pc_local_check_api_url(c->app, json_object_get(m, "apiUrl"), err) < 0) {
        json_decref(m);
        return NULL;
    }
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
    if (pc_local_check_api_url(l->app, json_object_get(pc_lease_config(l), "apiUrl"), err) < 0)
        return -1;
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
