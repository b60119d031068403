/*
 * Callback reachability: which URL a run inside a lease can reach the agent
 * ingress on. The host cannot know whether a sandbox's commands share its
 * network namespace, so the candidates are tried from inside the lease,
 * through the lease's own execute, before the run starts; the first that
 * answers as the ingress does becomes the run's PAPERCLIP_API_URL and is
 * recorded on the lease. A reusable lease keeps it for its next runs.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/common.h"
#include "lib/config.h"
#include "lib/json.h"
#include "run/internal.h"
#include "run/runtime.h"

#define PC_CALLBACK_MAX_CANDIDATES 16

static void add_url(json_t *arr, const char *url)
{
    if (!url || !*url || json_array_size(arr) >= PC_CALLBACK_MAX_CANDIDATES)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), url)) return;
    json_array_append_new(arr, json_string(url));
}

static void add_host(json_t *arr, const char *host, int port)
{
    char u[300];
    bool v6 = strchr(host, ':') != NULL;
    snprintf(u, sizeof u, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    add_url(arr, u);
}

static bool is_wildcard(const char *h)
{
    return !*h || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]");
}

json_t *pc_callback_candidates(pc_app *app, const char *env_api_url)
{
    json_t *arr = json_array();
    /* An explicit URL is the operator's statement of the path: first. */
    add_url(arr, env_api_url);
    add_url(arr, app->cfg.api_url);
    const char *colon = strrchr(app->agent_listen_url, ':');
    int port = colon ? (int)strtol(colon + 1, NULL, 10) : 0;
    if (!is_wildcard(app->cfg.agent_bind))
        add_host(arr, app->cfg.agent_bind, port);
    else
        add_url(arr, app->agent_listen_url);
    char extra[sizeof app->cfg.agent_bind_extra];
    snprintf(extra, sizeof extra, "%s", app->cfg.agent_bind_extra);
    for (char *save = NULL, *t = strtok_r(extra, ",", &save); t; t = strtok_r(NULL, ",", &save))
        add_host(arr, t, port);
    /* Interface addresses only where the ingress listens on them: a
     * wildcard or non-loopback bind (docs/environments.md, "Callbacks"). */
    if (pc_config_is_loopback(app->cfg.agent_bind))
        return arr;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return arr;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
            continue;
        char a[INET6_ADDRSTRLEN];
        if (i->ifa_addr->sa_family == AF_INET) {
            struct in_addr in = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
            if ((ntohl(in.s_addr) >> 16) == 0xA9FE) /* 169.254/16 */
                continue;
            inet_ntop(AF_INET, &in, a, sizeof a);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            struct in6_addr *in6 = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
            if (IN6_IS_ADDR_LINKLOCAL(in6))
                continue;
            inet_ntop(AF_INET6, in6, a, sizeof a);
        } else {
            continue;
        }
        add_host(arr, a, port);
    }
    freeifaddrs(ifs);
    return arr;
}

/* Exits 0 when $PAPERCLIP_API_URL answers as the ingress does: 2xx with the
 * run token, or 401 (credentials refused, still the ingress); a 403 is the
 * Host check refusing that name, so runs could not use it. curl when
 * present; otherwise bash's /dev/tcp or nc proves a TCP connect. Bounded to
 * 3 s. The URL comes in the environment, as a run's does, so a provider
 * that bridges it (rewrites PAPERCLIP_API_URL to a relay inside the
 * sandbox) is probed through its bridge. */
static const char probe_script[] =
    "u=$PAPERCLIP_API_URL\n"
    "if command -v curl >/dev/null 2>&1; then\n"
    "  c=$(curl -sS -m 3 -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer "
    "$PAPERCLIP_API_KEY\" \"$u/api/health\")\n"
    "  case \"$c\" in 2[0-9][0-9]|401) exit 0;; esac\n"
    "  echo \"HTTP $c from $u/api/health\" >&2\n"
    "  exit 3\n"
    "fi\n"
    "hp=${u#*://}; hp=${hp%%/*}; p=${hp##*:}; h=${hp%:*}; h=${h#[}; h=${h%]}\n"
    "if command -v bash >/dev/null 2>&1; then\n"
    "  exec timeout 3 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' \"$h\" \"$p\"\n"
    "elif command -v nc >/dev/null 2>&1; then\n"
    "  exec nc -z -w 3 \"$h\" \"$p\"\n"
    "fi\n"
    "echo 'neither curl, bash nor nc to probe with' >&2\n"
    "exit 4\n";

/* 1: cand answers from inside the lease, 0: it does not, -1: execute
 * failed (err set). why receives a short reason for a miss. */
static int probe_one(pc_lease *lease, const char *cand, const char *token, char *why,
                     size_t why_cap, pc_error_t *err)
{
    const char *argv[] = {"-c", probe_script, NULL};
    json_t *env = json_pack("{s:s,s:s,s:s}", "PATH",
                            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "PAPERCLIP_API_URL", cand, "PAPERCLIP_API_KEY", token ? token : "");
    pc_exec_request req = {
        .command = "sh",
        .args = argv,
        .env = env,
        .timeout_ms = 15000,
        .grace_ms = 2000,
        .output_cap = 4096,
    };
    pc_exec_result res;
    int rc = pc_lease_execute(lease, &req, &res, err);
    json_decref(env);
    if (rc < 0)
        return -1;
    if (res.cancelled) {
        pc_exec_result_free(&res);
        return pc_error_set(err, 409, "cancelled");
    }
    rc = res.has_exit_code && res.exit_code == 0;
    if (!rc) {
        /* curl's own message: the first line of stderr. */
        size_t n = res.err.len ? strcspn(res.err.data, "\r\n") : 0;
        snprintf(why, why_cap, "%.*s", (int)(n > 120 ? 120 : n), n ? res.err.data : "");
    }
    pc_exec_result_free(&res);
    return rc;
}

int pc_callback_probe(pc_lease *lease, json_t *candidates, const char *token, char *url,
                      size_t cap, pc_error_t *err)
{
    size_t i;
    json_t *v;
    char why[128] = "";
    json_array_foreach(candidates, i, v) {
        const char *cand = json_string_value(v);
        char w[128] = "";
        int r = probe_one(lease, cand, token, w, sizeof w, err);
        if (r < 0)
            return -1;
        if (r == 1) {
            snprintf(url, cap, "%s", cand);
            return 0;
        }
        if (w[0])
            snprintf(why, sizeof why, "%s", w);
    }
    char *list = pc_json_dumps(candidates);
    pc_error_set(err, 502,
                 "No callback URL is reachable from inside the environment; tried %s%s%s%s",
                 list, why[0] ? " (last: " : "", why, why[0] ? ")" : "");
    free(list);
    return -1;
}
