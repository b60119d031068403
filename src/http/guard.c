/*
 * Browser guards, applied to every request on both listeners before its
 * credentials are looked at or a body byte is read.
 *
 * Host: a page on evil.example whose name is re-pointed at 127.0.0.1 (DNS
 * rebinding) reaches the daemon as a same-origin page, but its requests
 * still carry `Host: evil.example`. Only loopback names and addresses, the
 * bound addresses, the configured allowed hostnames and the public URL's host
 * are served.
 *
 * Origin: a cross-site page can send a POST without a preflight (a form, or
 * fetch with a simple body). Browsers mark such requests with Origin and
 * Sec-Fetch-Site; programs (the CLI, curl, agents) send neither and are not
 * affected. A mutating request whose Origin names another host:port than its
 * Host, or that a browser labels cross-site or same-site, is refused.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"
#include "lib/util.h"

#define PC_HOST_MAX 256

/* Lower-cased host part of a Host header value ("[::1]:80" -> "::1");
 * false when it does not fit or is malformed. */
static bool pc_host_name(const char *hostport, char *out, size_t cap)
{
    const char *h = hostport;
    size_t n;
    while (*h == ' ')
        h++;
    if (*h == '[') {
        const char *e = strchr(h, ']');
        if (!e)
            return false;
        h++;
        n = (size_t)(e - h);
    } else {
        n = strcspn(h, ":/?# ");
    }
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)h[i]);
    out[n] = '\0';
    return true;
}

static bool pc_is_loopback_name(const char *h)
{
    if (!strcmp(h, "localhost") || !strcmp(h, "::1"))
        return true;
    /* 127.0.0.0/8 written as a dotted quad: digits and dots only. */
    if (strncmp(h, "127.", 4) != 0)
        return false;
    for (const char *p = h; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            return false;
    return true;
}

static bool pc_is_wildcard(const char *h)
{
    return !*h || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]");
}

/* True when `name` is one of the comma-separated entries of `list`. */
static bool pc_in_list(const char *list, const char *name)
{
    const char *s = list;
    size_t nlen = strlen(name);
    while (*s) {
        size_t n = strcspn(s, ",");
        const char *t = s;
        while (n && *t == ' ')
            t++, n--;
        while (n && t[n - 1] == ' ')
            n--;
        if (n == nlen && !strncasecmp(t, name, n))
            return true;
        s += strcspn(s, ",");
        if (*s == ',')
            s++;
    }
    return false;
}

bool pc_http_host_allowed(const pc_config *cfg, const char *host_header)
{
    char h[PC_HOST_MAX], b[PC_HOST_MAX];
    if (!host_header || !pc_host_name(host_header, h, sizeof h))
        return false;
    if (pc_is_loopback_name(h) || pc_in_list(cfg->allowed_hostnames, h))
        return true;
    if (!pc_is_wildcard(cfg->bind) && pc_host_name(cfg->bind, b, sizeof b) && !strcmp(b, h))
        return true;
    if (!pc_is_wildcard(cfg->agent_bind) && pc_host_name(cfg->agent_bind, b, sizeof b) &&
        !strcmp(b, h))
        return true;
    if (pc_in_list(cfg->agent_bind_extra, h))
        return true;
    const char *p = strstr(cfg->public_url, "://");
    if (p && pc_host_name(p + 3, b, sizeof b) && !strcmp(b, h))
        return true;
    return false;
}

/* "host:port" of an authority with the scheme's default port made explicit,
 * lower-cased, so "Example:80" and "example" compare equal under http. */
static bool pc_authority(const char *auth, size_t n, bool https, char *out, size_t cap)
{
    char tmp[PC_HOST_MAX];
    if (n == 0 || n >= sizeof tmp)
        return false;
    for (size_t i = 0; i < n; i++)
        tmp[i] = (char)tolower((unsigned char)auth[i]);
    tmp[n] = '\0';
    const char *close = tmp[0] == '[' ? strchr(tmp, ']') : NULL;
    const char *colon = strrchr(close ? close : tmp, ':');
    int w = colon ? snprintf(out, cap, "%s", tmp)
                  : snprintf(out, cap, "%s:%s", tmp, https ? "443" : "80");
    return w > 0 && (size_t)w < cap;
}

bool pc_http_origin_allowed(const char *method, const char *origin, const char *fetch_site,
                            const char *host_header)
{
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS"))
        return true;
    if (fetch_site && (!strcasecmp(fetch_site, "cross-site") || !strcasecmp(fetch_site, "same-site")))
        return false;
    if (!origin)
        return true;
    /* "null" (sandboxed frames, file: pages) and anything unparsable fail. */
    bool https;
    const char *a;
    if (!strncasecmp(origin, "http://", 7))
        https = false, a = origin + 7;
    else if (!strncasecmp(origin, "https://", 8))
        https = true, a = origin + 8;
    else
        return false;
    char o[PC_HOST_MAX + 8], h[PC_HOST_MAX + 8];
    if (!pc_authority(a, strcspn(a, "/?#"), https, o, sizeof o) || !host_header ||
        !pc_authority(host_header, strlen(host_header), https, h, sizeof h))
        return false;
    return !strcmp(o, h);
}
