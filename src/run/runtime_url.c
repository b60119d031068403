/*
 * Runtime API URL discovery, following upstream's choosePrimaryRuntimeApiUrl
 * and buildRuntimeApiCandidateUrls: which URL a run should use to reach the
 * daemon, and an ordered list of alternatives a remote target can probe.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "run/runtime.h"

static char primary_url[600];
static char *candidates_text;

static bool is_loopback_host(const char *h)
{
    return !strcmp(h, "127.0.0.1") || !strcmp(h, "localhost") || !strcmp(h, "::1") ||
           !strcmp(h, "[::1]");
}

static bool is_wildcard_host(const char *h)
{
    return !*h || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]");
}

/* "http://host:port" with IPv6 hosts bracketed. */
static void origin_of(char *out, size_t cap, const char *proto, const char *host, int port)
{
    bool v6 = strchr(host, ':') && host[0] != '[';
    snprintf(out, cap, "%s//%s%s%s:%d", proto, v6 ? "[" : "", host, v6 ? "]" : "", port);
}

/* Origin (scheme://host[:port]) of a URL; "" when it is not http(s). */
static void url_origin(const char *url, char *out, size_t cap, char *proto, size_t pcap,
                       char *host, size_t hcap)
{
    out[0] = proto[0] = host[0] = '\0';
    const char *p = strstr(url, "://");
    if (!p || (strncmp(url, "http", 4) != 0))
        return;
    snprintf(proto, pcap, "%.*s", (int)(p - url + 1), url);
    const char *h = p + 3;
    size_t hl = strcspn(h, "/?#");
    snprintf(out, cap, "%.*s", (int)(p + 3 - url + hl), url);
    /* Host without the port, brackets kept off. */
    const char *hs = h;
    size_t n = hl;
    if (*hs == '[') {
        const char *e = memchr(hs, ']', hl);
        if (e) {
            snprintf(host, hcap, "%.*s", (int)(e - hs - 1), hs + 1);
            return;
        }
    }
    const char *colon = memchr(hs, ':', n);
    snprintf(host, hcap, "%.*s", (int)(colon ? (size_t)(colon - hs) : n), hs);
}

static void add_unique(json_t *arr, const char *url)
{
    if (!url || !*url)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), url)) return;
    json_array_append_new(arr, json_string(url));
}

json_t *pc_runtime_url_build(const char *public_url, const char *api_url, const char *allowed,
                             const char *bind, int port, bool with_interfaces, char *primary,
                             size_t primary_cap)
{
    char pub_origin[600], pub_proto[16], pub_host[300], buf[700];
    url_origin(public_url ? public_url : "", pub_origin, sizeof pub_origin, pub_proto,
               sizeof pub_proto, pub_host, sizeof pub_host);
    const char *proto = pub_proto[0] ? pub_proto : "http:";
    char first_allowed[300] = "";
    if (allowed) {
        const char *s = allowed;
        while (*s) {
            size_t n = strcspn(s, ",");
            const char *t = s;
            while (n && (*t == ' ')) t++, n--;
            while (n && t[n - 1] == ' ') n--;
            if (n && !first_allowed[0])
                snprintf(first_allowed, sizeof first_allowed, "%.*s", (int)n, t);
            s += strcspn(s, ",");
            if (*s == ',')
                s++;
        }
    }
    bind = bind ? bind : "";
    if (pub_origin[0])
        snprintf(primary, primary_cap, "%s", pub_origin);
    else if (is_loopback_host(bind))
        origin_of(primary, primary_cap, "http:", bind, port);
    else if (first_allowed[0])
        origin_of(primary, primary_cap, "http:", first_allowed, port);
    else if (!is_wildcard_host(bind))
        origin_of(primary, primary_cap, "http:", bind, port);
    else
        origin_of(primary, primary_cap, "http:", "localhost", port);

    json_t *arr = json_array();
    add_unique(arr, api_url && *api_url ? api_url : primary);
    add_unique(arr, pub_origin);
    if (allowed) {
        const char *s = allowed;
        while (*s) {
            size_t n = strcspn(s, ",");
            const char *t = s;
            while (n && *t == ' ') t++, n--;
            while (n && t[n - 1] == ' ') n--;
            if (n) {
                char h[300];
                snprintf(h, sizeof h, "%.*s", (int)n, t);
                origin_of(buf, sizeof buf, proto, h, port);
                add_unique(arr, buf);
            }
            s += strcspn(s, ",");
            if (*s == ',')
                s++;
        }
    }
    if (!is_wildcard_host(bind)) {
        origin_of(buf, sizeof buf, "http:", bind, port);
        add_unique(arr, buf);
    }
    if (pub_host[0] && is_loopback_host(pub_host)) {
        origin_of(buf, sizeof buf, "http:", "host.docker.internal", port);
        add_unique(arr, buf);
    }
    struct ifaddrs *ifs = NULL;
    if (with_interfaces && getifaddrs(&ifs) == 0) {
        for (int fam = 0; fam < 2; fam++) {
            for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
                if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
                    continue;
                char a[INET6_ADDRSTRLEN];
                if (fam == 0 && i->ifa_addr->sa_family == AF_INET) {
                    struct in_addr in = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
                    uint32_t h = ntohl(in.s_addr);
                    if ((h >> 24) == 127 || (h >> 16) == 0xA9FE) /* loopback, 169.254/16 */
                        continue;
                    inet_ntop(AF_INET, &in, a, sizeof a);
                } else if (fam == 1 && i->ifa_addr->sa_family == AF_INET6) {
                    struct in6_addr *in6 = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                    if (IN6_IS_ADDR_LOOPBACK(in6) || IN6_IS_ADDR_LINKLOCAL(in6))
                        continue;
                    inet_ntop(AF_INET6, in6, a, sizeof a);
                } else {
                    continue;
                }
                origin_of(buf, sizeof buf, "http:", a, port);
                add_unique(arr, buf);
            }
        }
        freeifaddrs(ifs);
    }
    add_unique(arr, primary);
    return arr;
}

/* Runs call back on the agent ingress, never on the operator listener: the
 * public URL names the operator listener (the board's browser), so it takes
 * no part here, and every candidate carries the ingress port. An explicit
 * apiUrl still wins as the first candidate. */
void pc_runtime_url_compute(pc_app *app)
{
    const char *colon = strrchr(app->agent_listen_url, ':');
    int port = colon ? (int)strtol(colon + 1, NULL, 10) : 0;
    json_t *arr = pc_runtime_url_build("", app->cfg.api_url, app->cfg.allowed_hostnames,
                                       app->cfg.agent_bind, port, true, primary_url,
                                       sizeof primary_url);
    /* The ingress's further addresses (agentBind as a list) come last. */
    char extra[sizeof app->cfg.agent_bind_extra], buf[700];
    snprintf(extra, sizeof extra, "%s", app->cfg.agent_bind_extra);
    for (char *save = NULL, *t = strtok_r(extra, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        origin_of(buf, sizeof buf, "http:", t, port);
        add_unique(arr, buf);
    }
    free(candidates_text);
    candidates_text = pc_json_dumps(arr);
    json_decref(arr);
}

const char *pc_runtime_api_url(void) { return primary_url; }

const char *pc_runtime_api_candidates_json(void)
{
    return candidates_text ? candidates_text : "[]";
}
