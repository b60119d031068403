#include "lib/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

#define PC_DEFAULT_BODY_LIMIT (10u * 1024 * 1024)
#define PC_DEFAULT_BODY_BUDGET ((size_t)64 * 1024 * 1024)
#define PC_DEFAULT_HEADER_TIMEOUT 10
#define PC_DEFAULT_IDLE_TIMEOUT 60
#define PC_DEFAULT_LEASE_IDLE_TTL 3600
#define PC_LEASE_IDLE_TTL_MAX 31536000
#define PC_DEFAULT_MAX_CONNECTIONS 1000
#define PC_DEFAULT_MAX_PER_ADDRESS 64

void pc_config_default_data_dir(char *out, size_t cap)
{
    const char *home = getenv("PAPERCLIP_HOME");
    if (home && *home) {
        snprintf(out, cap, "%s", home);
        return;
    }
    const char *h = getenv("HOME");
    snprintf(out, cap, "%s/.local/share/paperclip", h && *h ? h : "/root");
}

bool pc_config_is_loopback(const char *bind)
{
    return !strcmp(bind, "127.0.0.1") || !strcmp(bind, "localhost") || !strcmp(bind, "::1") ||
           !strncmp(bind, "127.", 4);
}

static int pc_parse_port(const char *s, int *out, pc_error_t *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > 65535)
        return pc_error_set(err, 400, "invalid port '%s' (expected 0-65535)", s);
    *out = (int)v;
    return 0;
}

static int pc_parse_size(const char *s, size_t *out, pc_error_t *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v < 1024 || v > (1ull << 32))
        return pc_error_set(err, 400, "invalid body limit '%s' (expected bytes, 1024..4294967296)",
                            s);
    *out = (size_t)v;
    return 0;
}

/* A bounded integer setting; `what` names it in the error. */
static int pc_parse_int(const char *what, const char *s, long min, long max, int *out,
                        pc_error_t *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return pc_error_set(err, 400, "invalid %s '%s' (expected %ld-%ld)", what, s, min, max);
    *out = (int)v;
    return 0;
}

/* Runs execute on a fixed pool of threads; the cap bounds threads and child
 * processes no matter how many wakeups are queued. */
static int pc_parse_max_runs(const char *s, int *out, pc_error_t *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > PC_MAX_CONCURRENT_RUNS_LIMIT)
        return pc_error_set(err, 400, "invalid max concurrent runs '%s' (expected 1..%d)", s,
                            PC_MAX_CONCURRENT_RUNS_LIMIT);
    *out = (int)v;
    return 0;
}

static int pc_parse_budget(const char *s, size_t *out, pc_error_t *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v < 65536 || v > (1ull << 40))
        return pc_error_set(err, 400,
                            "invalid body budget '%s' (expected bytes, 65536..1099511627776)", s);
    *out = (size_t)v;
    return 0;
}

/* config.json integer settings go through the same checks as flags. */
static int pc_json_int_setting(json_t *j, const char *key, const char *what, long min, long max,
                               int *out, const char *path, pc_error_t *err)
{
    json_t *v = json_object_get(j, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return pc_error_set(err, 400, "%s: %s must be an integer %ld-%ld", path, what, min, max);
    *out = (int)json_integer_value(v);
    return 0;
}

static int pc_parse_auth(const char *s, pc_auth_mode *out, pc_error_t *err)
{
    if (!strcmp(s, "local_trusted"))
        *out = PC_AUTH_LOCAL_TRUSTED;
    else if (!strcmp(s, "authenticated"))
        *out = PC_AUTH_AUTHENTICATED;
    else
        return pc_error_set(err, 400, "invalid auth mode '%s' (expected local_trusted or authenticated)",
                            s);
    return 0;
}

static void pc_usage(void)
{
    printf("usage: paperclip serve [--data-dir DIR] [--bind ADDR] [--port N]\n"
           "                       [--log-format text|json] [--auth-mode local_trusted|authenticated]\n"
           "                       [--body-limit BYTES] [--public-url URL] [--allow-insecure-bind]\n"
           "                       [--agent-port N] [--agent-bind ADDR] [--body-budget BYTES]\n"
           "                       [--header-timeout SEC] [--idle-timeout SEC]\n"
           "                       [--max-connections N] [--max-connections-per-address N]\n"
           "                       [--max-concurrent-runs N]\n"
           "\n"
           "Runs the control plane: the REST API under /api, the web UI at /, the\n"
           "heartbeat scheduler and the environment layer, on an embedded SQLite store.\n"
           "\n"
           "  --data-dir DIR      state directory (default $PAPERCLIP_HOME or\n"
           "                      ~/.local/share/paperclip)\n"
           "  --bind ADDR         listen address (default 127.0.0.1)\n"
           "  --port N            listen port (default 3100; 0 picks a free port)\n"
           "  --log-format FMT    text (default) or json\n"
           "  --auth-mode MODE    local_trusted (default; loopback only) or authenticated\n"
           "  --body-limit BYTES  largest accepted request body (default 10485760)\n"
           "  --public-url URL    base URL browsers use to reach this daemon (its host is\n"
           "                      an allowed Host); runs get the agent ingress instead\n"
           "  --allow-insecure-bind  permit local_trusted on a non-loopback address\n"
           "  --max-concurrent-runs N  heartbeat runs executing at once, across all agents\n"
           "                      (default max(8, 8 x CPUs); 1..1024); further runs stay queued\n"
           "\n"
           "Agent ingress: a second listener for runs' callbacks. Runs get its URL as\n"
           "PAPERCLIP_API_URL; it accepts only agent credentials (run token, agent key).\n"
           "  --agent-port N      agent ingress port (default 0: a free port)\n"
           "  --agent-bind ADDR   agent ingress address(es), comma-separated (default: the --bind address)\n"
           "\n"
           "HTTP limits (per listener unless noted; see docs/security.md):\n"
           "  --body-budget BYTES bytes all in-flight request bodies may hold together,\n"
           "                      both listeners (default 67108864); past it: 503\n"
           "  --header-timeout SEC  request headers must be complete within SEC of the\n"
           "                      connection opening or the last response (default 10)\n"
           "  --idle-timeout SEC  close a connection silent for SEC (default 60)\n"
           "  --max-connections N open connections per listener (default 1000)\n"
           "  --max-connections-per-address N  open connections from one client address\n"
           "                      on the operator listener (default 64; 0 = no limit)\n"
           "\n"
           "Server-side fetches (the http adapter) refuse loopback, private,\n"
           "link-local and metadata addresses unless config.json sets\n"
           "allowPrivateFetchTargets or PAPERCLIP_ALLOW_PRIVATE_FETCH=1.\n"
           "\n"
           "Flags override PAPERCLIP_* environment variables, which override\n"
           "<data-dir>/config.json. The bound URLs are written to <data-dir>/daemon.json\n"
           "(apiUrl, agentApiUrl).\n");
}

/* "a, b, c" in agent_bind: the first address stays in agent_bind (the
 * ingress URL names it), the others go to agent_bind_extra. */
static int pc_split_agent_bind(pc_config *cfg, pc_error_t *err)
{
    char all[sizeof cfg->agent_bind];
    snprintf(all, sizeof all, "%s", cfg->agent_bind);
    cfg->agent_bind[0] = cfg->agent_bind_extra[0] = '\0';
    size_t off = 0;
    int n = 0;
    for (char *save = NULL, *t = strtok_r(all, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ')
            t[--l] = '\0';
        if (!l)
            continue;
        if (n++ == 0) {
            snprintf(cfg->agent_bind, sizeof cfg->agent_bind, "%s", t);
            continue;
        }
        if (n > 5)
            return pc_error_set(err, 400, "agentBind: at most 5 addresses");
        off += (size_t)snprintf(cfg->agent_bind_extra + off, sizeof cfg->agent_bind_extra - off,
                                "%s%s", off ? "," : "", t);
    }
    if (!n)
        snprintf(cfg->agent_bind, sizeof cfg->agent_bind, "%s", cfg->bind);
    return 0;
}

int pc_config_load(pc_config *cfg, int argc, char **argv, pc_error_t *err)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->bind, sizeof cfg->bind, "127.0.0.1");
    cfg->port = 3100;
    cfg->body_limit = PC_DEFAULT_BODY_LIMIT;
    cfg->workspace_sync_max_bytes = PC_WORKSPACE_SYNC_DEFAULT_MAX;
    cfg->auth_mode = PC_AUTH_LOCAL_TRUSTED;
    cfg->body_budget = PC_DEFAULT_BODY_BUDGET;
    cfg->header_timeout_s = PC_DEFAULT_HEADER_TIMEOUT;
    cfg->idle_timeout_s = PC_DEFAULT_IDLE_TIMEOUT;
    cfg->lease_idle_ttl_s = PC_DEFAULT_LEASE_IDLE_TTL;
    cfg->max_connections = PC_DEFAULT_MAX_CONNECTIONS;
    cfg->max_connections_per_address = PC_DEFAULT_MAX_PER_ADDRESS;

    enum {
        O_DATA = 1, O_BIND, O_PORT, O_LOG, O_AUTH, O_BODY, O_PUBLIC, O_INSECURE, O_HELP,
        O_AGENT_PORT, O_AGENT_BIND, O_BUDGET, O_HEADER_TO, O_IDLE_TO, O_MAXCONN, O_PERADDR, O_MAXRUNS
    };
    static const struct option opts[] = {
        {"data-dir", required_argument, 0, O_DATA}, {"bind", required_argument, 0, O_BIND},
        {"port", required_argument, 0, O_PORT},     {"log-format", required_argument, 0, O_LOG},
        {"auth-mode", required_argument, 0, O_AUTH}, {"body-limit", required_argument, 0, O_BODY},
        {"public-url", required_argument, 0, O_PUBLIC},
        {"allow-insecure-bind", no_argument, 0, O_INSECURE}, {"help", no_argument, 0, O_HELP},
        {"agent-port", required_argument, 0, O_AGENT_PORT},
        {"agent-bind", required_argument, 0, O_AGENT_BIND},
        {"body-budget", required_argument, 0, O_BUDGET},
        {"header-timeout", required_argument, 0, O_HEADER_TO},
        {"idle-timeout", required_argument, 0, O_IDLE_TO},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"max-connections-per-address", required_argument, 0, O_PERADDR},
        {"max-concurrent-runs", required_argument, 0, O_MAXRUNS},
        {0, 0, 0, 0}};
    const char *f_agent_port = NULL, *f_agent_bind = NULL, *f_budget = NULL, *f_header_to = NULL,
               *f_idle_to = NULL, *f_maxconn = NULL, *f_peraddr = NULL;
    const char *f_data = NULL, *f_bind = NULL, *f_port = NULL, *f_log = NULL, *f_auth = NULL,
               *f_body = NULL, *f_public = NULL, *f_maxruns = NULL;
    bool f_insecure = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA: f_data = optarg; break;
        case O_BIND: f_bind = optarg; break;
        case O_PORT: f_port = optarg; break;
        case O_LOG: f_log = optarg; break;
        case O_AUTH: f_auth = optarg; break;
        case O_BODY: f_body = optarg; break;
        case O_PUBLIC: f_public = optarg; break;
        case O_INSECURE: f_insecure = true; break;
        case O_AGENT_PORT: f_agent_port = optarg; break;
        case O_AGENT_BIND: f_agent_bind = optarg; break;
        case O_BUDGET: f_budget = optarg; break;
        case O_HEADER_TO: f_header_to = optarg; break;
        case O_IDLE_TO: f_idle_to = optarg; break;
        case O_MAXCONN: f_maxconn = optarg; break;
        case O_PERADDR: f_peraddr = optarg; break;
        case O_MAXRUNS: f_maxruns = optarg; break;
        case 'h':
        case O_HELP: pc_usage(); return 1;
        default:
            return pc_error_set(err, 400, "unknown or incomplete option '%s' (see paperclip serve --help)",
                                argv[optind - 1]);
        }
    }
    if (optind < argc)
        return pc_error_set(err, 400, "unexpected argument '%s'", argv[optind]);

    if (f_data)
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", f_data);
    else
        pc_config_default_data_dir(cfg->data_dir, sizeof cfg->data_dir);
    if (!cfg->data_dir[0])
        return pc_error_set(err, 400, "data dir must not be empty");

    /* config.json: lowest precedence after defaults. */
    char path[1200], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", cfg->data_dir);
    if (pc_read_file(path, 1 << 20, &text, &len) == 0) {
        pc_error_t perr = PC_ERROR_INIT;
        json_t *j = pc_json_parse(text, len, &perr);
        free(text);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            pc_error_clear(&perr);
            return pc_error_set(err, 400, "cannot parse %s: expected a JSON object", path);
        }
        const char *s;
        json_t *v;
        if ((s = pc_json_str(j, "bind")))
            snprintf(cfg->bind, sizeof cfg->bind, "%s", s);
        if ((v = json_object_get(j, "port"))) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
                json_decref(j);
                return pc_error_set(err, 400, "%s: port must be an integer 0-65535", path);
            }
            cfg->port = (int)json_integer_value(v);
        }
        if ((s = pc_json_str(j, "logFormat")))
            cfg->log_json = pc_log_parse_format(s) == 1;
        if ((s = pc_json_str(j, "authMode")) && pc_parse_auth(s, &cfg->auth_mode, err) < 0) {
            json_decref(j);
            return -1;
        }
        if ((v = json_object_get(j, "bodyLimitBytes")) && json_is_integer(v))
            cfg->body_limit = (size_t)json_integer_value(v);
        if ((s = pc_json_str(j, "publicUrl")))
            snprintf(cfg->public_url, sizeof cfg->public_url, "%s", s);
        if ((s = pc_json_str(j, "apiUrl")))
            snprintf(cfg->api_url, sizeof cfg->api_url, "%s", s);
        if ((v = json_object_get(j, "allowedHostnames"))) {
            if (json_is_string(v)) {
                snprintf(cfg->allowed_hostnames, sizeof cfg->allowed_hostnames, "%s",
                         json_string_value(v));
            } else if (json_is_array(v)) {
                size_t i, off = 0;
                json_t *h;
                json_array_foreach(v, i, h) {
                    if (json_is_string(h) && off < sizeof cfg->allowed_hostnames)
                        off += (size_t)snprintf(cfg->allowed_hostnames + off,
                                                sizeof cfg->allowed_hostnames - off, "%s%s",
                                                off ? "," : "", json_string_value(h));
                }
            }
        }
        if ((v = json_object_get(j, "maxConcurrentRuns"))) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > PC_MAX_CONCURRENT_RUNS_LIMIT) {
                json_decref(j);
                return pc_error_set(err, 400, "%s: maxConcurrentRuns must be an integer 1-%d",
                                    path, PC_MAX_CONCURRENT_RUNS_LIMIT);
            }
            cfg->max_concurrent_runs = (int)json_integer_value(v);
        }
        cfg->allow_insecure_bind = pc_json_bool(j, "allowInsecureBind", false);
        if ((s = pc_json_str(j, "agentBind")))
            snprintf(cfg->agent_bind, sizeof cfg->agent_bind, "%s", s);
        if (json_is_array(v = json_object_get(j, "agentBind"))) {
            /* A list is kept as its comma-separated text, split below. */
            size_t i, off = 0;
            json_t *a;
            cfg->agent_bind[0] = '\0';
            json_array_foreach(v, i, a) {
                if (!json_is_string(a) || off + json_string_length(a) + 2 > sizeof cfg->agent_bind) {
                    json_decref(j);
                    return pc_error_set(err, 400, "%s: agentBind must be an address or a list of "
                                        "addresses", path);
                }
                off += (size_t)snprintf(cfg->agent_bind + off, sizeof cfg->agent_bind - off,
                                        "%s%s", off ? "," : "", json_string_value(a));
            }
        }
        if ((v = json_object_get(j, "bodyBudgetBytes"))) {
            if (!json_is_integer(v) || json_integer_value(v) < 65536 ||
                json_integer_value(v) > (1ll << 40)) {
                json_decref(j);
                return pc_error_set(err, 400, "%s: bodyBudgetBytes must be an integer "
                                              "65536-1099511627776", path);
            }
            cfg->body_budget = (size_t)json_integer_value(v);
        }
        if (pc_json_int_setting(j, "agentPort", "agentPort", 0, 65535, &cfg->agent_port, path,
                                err) < 0 ||
            pc_json_int_setting(j, "headerTimeoutSeconds", "headerTimeoutSeconds", 1, 3600,
                                &cfg->header_timeout_s, path, err) < 0 ||
            pc_json_int_setting(j, "idleTimeoutSeconds", "idleTimeoutSeconds", 1, 86400,
                                &cfg->idle_timeout_s, path, err) < 0 ||
            pc_json_int_setting(j, "maxConnections", "maxConnections", 16, 100000,
                                &cfg->max_connections, path, err) < 0 ||
            pc_json_int_setting(j, "maxConnectionsPerAddress", "maxConnectionsPerAddress", 0,
                                100000, &cfg->max_connections_per_address, path, err) < 0 ||
            pc_json_int_setting(j, "leaseIdleTtlSec", "leaseIdleTtlSec", 0,
                                PC_LEASE_IDLE_TTL_MAX, &cfg->lease_idle_ttl_s, path, err) < 0) {
            json_decref(j);
            return -1;
        }
        if ((v = json_object_get(j, "workspaceSyncMaxBytes"))) {
            if (!json_is_integer(v) || json_integer_value(v) < 1024 ||
                json_integer_value(v) > (json_int_t)PC_WORKSPACE_SYNC_MAX_LIMIT) {
                json_decref(j);
                return pc_error_set(err, 400, "%s: workspaceSyncMaxBytes must be an integer "
                                              "1024-1099511627776", path);
            }
            cfg->workspace_sync_max_bytes = (size_t)json_integer_value(v);
        }
        if ((v = json_object_get(j, "allowPrivateFetchTargets"))) {
            if (!json_is_boolean(v)) {
                json_decref(j);
                return pc_error_set(err, 400, "%s: allowPrivateFetchTargets must be a boolean",
                                    path);
            }
            cfg->allow_private_fetch = json_is_true(v);
        }
        json_decref(j);
    } else if (errno != ENOENT) {
        return pc_error_errno(err, errno, "cannot read %s", path);
    }

    /* Environment. */
    const char *e;
    if ((e = getenv("PAPERCLIP_BIND")) && *e)
        snprintf(cfg->bind, sizeof cfg->bind, "%s", e);
    if ((e = getenv("PAPERCLIP_PORT")) && *e && pc_parse_port(e, &cfg->port, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_LOG_FORMAT")) && *e) {
        int f = pc_log_parse_format(e);
        if (f < 0)
            return pc_error_set(err, 400, "invalid PAPERCLIP_LOG_FORMAT '%s'", e);
        cfg->log_json = f;
    }
    if ((e = getenv("PAPERCLIP_AUTH_MODE")) && *e && pc_parse_auth(e, &cfg->auth_mode, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_BODY_LIMIT")) && *e && pc_parse_size(e, &cfg->body_limit, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_PUBLIC_URL")) && *e)
        snprintf(cfg->public_url, sizeof cfg->public_url, "%s", e);
    if ((e = getenv("PAPERCLIP_API_URL")) && *e)
        snprintf(cfg->api_url, sizeof cfg->api_url, "%s", e);
    if ((e = getenv("PAPERCLIP_ALLOWED_HOSTNAMES")) && *e)
        snprintf(cfg->allowed_hostnames, sizeof cfg->allowed_hostnames, "%s", e);
    if ((e = getenv("PAPERCLIP_AGENT_PORT")) && *e && pc_parse_port(e, &cfg->agent_port, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_AGENT_BIND")) && *e)
        snprintf(cfg->agent_bind, sizeof cfg->agent_bind, "%s", e);
    if ((e = getenv("PAPERCLIP_BODY_BUDGET")) && *e && pc_parse_budget(e, &cfg->body_budget, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_HEADER_TIMEOUT")) && *e &&
        pc_parse_int("PAPERCLIP_HEADER_TIMEOUT", e, 1, 3600, &cfg->header_timeout_s, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_IDLE_TIMEOUT")) && *e &&
        pc_parse_int("PAPERCLIP_IDLE_TIMEOUT", e, 1, 86400, &cfg->idle_timeout_s, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_LEASE_IDLE_TTL_SEC")) && *e &&
        pc_parse_int("PAPERCLIP_LEASE_IDLE_TTL_SEC", e, 0, PC_LEASE_IDLE_TTL_MAX,
                     &cfg->lease_idle_ttl_s, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_MAX_CONNECTIONS")) && *e &&
        pc_parse_int("PAPERCLIP_MAX_CONNECTIONS", e, 16, 100000, &cfg->max_connections, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_MAX_CONNECTIONS_PER_ADDRESS")) && *e &&
        pc_parse_int("PAPERCLIP_MAX_CONNECTIONS_PER_ADDRESS", e, 0, 100000,
                     &cfg->max_connections_per_address, err) < 0)
        return -1;
    if ((e = getenv("PAPERCLIP_ALLOW_PRIVATE_FETCH")) && *e) {
        if (!strcmp(e, "1") || !strcmp(e, "true"))
            cfg->allow_private_fetch = true;
        else if (!strcmp(e, "0") || !strcmp(e, "false"))
            cfg->allow_private_fetch = false;
        else
            return pc_error_set(err, 400, "invalid PAPERCLIP_ALLOW_PRIVATE_FETCH '%s' (expected 1 or 0)",
                                e);
    }
    if ((e = getenv("PAPERCLIP_WORKSPACE_SYNC_MAX_BYTES")) && *e) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(e, &end, 10);
        if (errno || end == e || *end || n < 1024 || n > PC_WORKSPACE_SYNC_MAX_LIMIT)
            return pc_error_set(err, 400,
                                "invalid PAPERCLIP_WORKSPACE_SYNC_MAX_BYTES '%s' (bytes, "
                                "1024-1099511627776)", e);
        cfg->workspace_sync_max_bytes = (size_t)n;
    }
    if ((e = getenv("PAPERCLIP_MAX_CONCURRENT_RUNS")) && *e &&
        pc_parse_max_runs(e, &cfg->max_concurrent_runs, err) < 0)
        return -1;

    /* Flags. */
    if (f_bind)
        snprintf(cfg->bind, sizeof cfg->bind, "%s", f_bind);
    if (f_port && pc_parse_port(f_port, &cfg->port, err) < 0)
        return -1;
    if (f_log) {
        int f = pc_log_parse_format(f_log);
        if (f < 0)
            return pc_error_set(err, 400, "invalid --log-format '%s' (expected text or json)", f_log);
        cfg->log_json = f;
    }
    if (f_auth && pc_parse_auth(f_auth, &cfg->auth_mode, err) < 0)
        return -1;
    if (f_body && pc_parse_size(f_body, &cfg->body_limit, err) < 0)
        return -1;
    if (f_public)
        snprintf(cfg->public_url, sizeof cfg->public_url, "%s", f_public);
    if (f_insecure)
        cfg->allow_insecure_bind = true;
    if (f_agent_port && pc_parse_port(f_agent_port, &cfg->agent_port, err) < 0)
        return -1;
    if (f_agent_bind)
        snprintf(cfg->agent_bind, sizeof cfg->agent_bind, "%s", f_agent_bind);
    if (f_budget && pc_parse_budget(f_budget, &cfg->body_budget, err) < 0)
        return -1;
    if (f_header_to &&
        pc_parse_int("--header-timeout", f_header_to, 1, 3600, &cfg->header_timeout_s, err) < 0)
        return -1;
    if (f_idle_to && pc_parse_int("--idle-timeout", f_idle_to, 1, 86400, &cfg->idle_timeout_s, err) < 0)
        return -1;
    if (f_maxconn &&
        pc_parse_int("--max-connections", f_maxconn, 16, 100000, &cfg->max_connections, err) < 0)
        return -1;
    if (f_peraddr && pc_parse_int("--max-connections-per-address", f_peraddr, 0, 100000,
                                  &cfg->max_connections_per_address, err) < 0)
        return -1;
    if (!cfg->agent_bind[0])
        snprintf(cfg->agent_bind, sizeof cfg->agent_bind, "%s", cfg->bind);
    if (pc_split_agent_bind(cfg, err) < 0)
        return -1;
    if (cfg->body_budget < cfg->body_limit)
        return pc_error_set(err, 400,
                            "body budget %zu is below the body limit %zu: no large body could "
                            "ever be accepted",
                            cfg->body_budget, cfg->body_limit);
    if (f_maxruns && pc_parse_max_runs(f_maxruns, &cfg->max_concurrent_runs, err) < 0)
        return -1;
    if (cfg->max_concurrent_runs == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        /* Runs mostly wait on a model's API, not on the CPU: the cap guards
         * memory and process count, so it is generous per core. */
        long n = cpus > 1 ? 8 * cpus : 8;
        if (n < 8)
            n = 8;
        cfg->max_concurrent_runs = (int)(n > PC_MAX_CONCURRENT_RUNS_LIMIT
                                             ? PC_MAX_CONCURRENT_RUNS_LIMIT : n);
    }

    if (cfg->auth_mode == PC_AUTH_LOCAL_TRUSTED && !pc_config_is_loopback(cfg->bind) &&
        !cfg->allow_insecure_bind)
        return pc_error_set(err, 400,
                            "refusing local_trusted mode on non-loopback address %s: anyone who "
                            "can reach it would act as the board (use --auth-mode authenticated, "
                            "or --allow-insecure-bind to force)",
                            cfg->bind);
    return 0;
}
